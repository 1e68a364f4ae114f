//! The demo's development-only token endpoint: `GET /demo/token` mints a
//! token; `/demo/switch` makes refreshes fail (to show the "session
//! expired" flow); `POST /demo/signin` is the "sign in again" that turns
//! the switch off and mints a token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::http::{error, json};
use super::{DEFAULT_SUB, ISSUER};

/// The path of the token endpoint, on the proxy's address.
pub const TOKEN_PATH: &str = "/demo/token";
/// The switch that makes refreshes fail: `GET` reads it, `POST ?refresh_fails=true|false` sets it.
pub const SWITCH_PATH: &str = "/demo/switch";
/// "Sign in again": `POST` turns the switch off and mints a token.
pub const SIGNIN_PATH: &str = "/demo/signin";
/// The longest `sub` the token endpoint mints for.
const MAX_SUB_BYTES: usize = 64;

/// Mints the demo's tokens with its secret.
pub struct Minter {
    /// The HS256 secret (from the OS-seeded CSPRNG; never written anywhere but the proxy's key file, deleted at once).
    pub secret: String,
    /// Lifetime of each token.
    ttl: Duration,
    /// While on, `GET /demo/token` is refused (401 `refresh_refused`) until a sign-in.
    refresh_fails: AtomicBool,
}

impl Minter {
    /// A minter of `ttl` tokens with `secret`, refreshes working.
    pub fn new(secret: String, ttl: Duration) -> Minter {
        Minter {
            secret,
            ttl,
            refresh_fails: AtomicBool::new(false),
        }
    }

    /// A fresh token for `sub` and its `exp`.
    pub fn mint(&self, sub: &str) -> Result<(String, u64), crate::token::MintError> {
        let claims = crate::token::Claims {
            iss: Some(ISSUER.to_owned()),
            ..Default::default()
        };
        let token = crate::token::mint(self.secret.as_bytes(), sub, self.ttl, &claims)?;
        let exp = crate::auth::unix_now() + self.ttl.as_secs();
        tracing::info!(sub = ?sub, exp, "demo token minted");
        Ok((token, exp))
    }

    /// Answers the endpoint's paths (`None`: not one of them).
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Option<Response<Full<Bytes>>> {
        let answer = match (path, method) {
            (TOKEN_PATH, &Method::GET) if self.refresh_fails.load(Ordering::Relaxed) => json(
                StatusCode::UNAUTHORIZED,
                &error(
                    "refresh_refused",
                    "the demo's switch makes refreshes fail: sign in again",
                ),
            ),
            (TOKEN_PATH, &Method::GET) | (SIGNIN_PATH, &Method::POST) => {
                if path == SIGNIN_PATH {
                    self.set_switch(false);
                }
                self.answer(query)
            }
            (SWITCH_PATH, &Method::GET) => self.switch_state(),
            (SWITCH_PATH, &Method::POST) => match query_value(query, "refresh_fails") {
                Some("true") => self.set_switch(true),
                Some("false") => self.set_switch(false),
                _ => json(
                    StatusCode::BAD_REQUEST,
                    &error(
                        "bad_switch",
                        "use ?refresh_fails=true or ?refresh_fails=false",
                    ),
                ),
            },
            (TOKEN_PATH, _) => not_allowed("GET"),
            (SIGNIN_PATH, _) => not_allowed("POST"),
            (SWITCH_PATH, _) => not_allowed("GET or POST"),
            _ => return None,
        };
        Some(answer)
    }

    /// Sets the switch and answers its state.
    fn set_switch(&self, on: bool) -> Response<Full<Bytes>> {
        if self.refresh_fails.swap(on, Ordering::Relaxed) != on {
            tracing::info!(refresh_fails = on, "demo refresh switch flipped");
        }
        self.switch_state()
    }

    /// `{"refresh_fails": bool}`.
    fn switch_state(&self) -> Response<Full<Bytes>> {
        let on = self.refresh_fails.load(Ordering::Relaxed);
        json(StatusCode::OK, &serde_json::json!({ "refresh_fails": on }))
    }

    /// A token for the query's `sub`, as JSON.
    fn answer(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let sub = match requested_sub(query) {
            Ok(sub) => sub,
            Err(message) => return json(StatusCode::BAD_REQUEST, &error("bad_sub", message)),
        };
        match self.mint(sub) {
            Ok((token, exp)) => json(StatusCode::OK, &token_body(&token, sub, exp, self.ttl)),
            Err(e) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error("mint_failed", &e.to_string()),
            ),
        }
    }
}

/// 405 naming the methods allowed.
fn not_allowed(methods: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        &error("method_not_allowed", &format!("use {methods}")),
    )
}

/// The token endpoint's JSON.
fn token_body(token: &str, sub: &str, exp: u64, ttl: Duration) -> serde_json::Value {
    let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    serde_json::json!({
        "token": token,
        "sub": sub,
        "exp": exp,
        "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
        "expires_in": ttl.as_secs(),
    })
}

/// The last value of `key` in a query string (no escapes decoded).
fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// `?sub=` if given: 1 to 64 of `A-Z a-z 0-9 . _ @ -` (no escapes, so what is
/// minted is exactly what was asked for); `alice` without it.
fn requested_sub(query: Option<&str>) -> Result<&str, &'static str> {
    let sub = query_value(query, "sub").unwrap_or(DEFAULT_SUB);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if sub.is_empty() || sub.len() > MAX_SUB_BYTES || !sub.chars().all(allowed) {
        return Err("sub must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -");
    }
    Ok(sub)
}
