//! Authentication at the HTTP level: what an upgrade request's own
//! credentials decide ([`admit_upgrade`]: the Origin allowlist, then a
//! legacy method's token), and protected plain HTTP routes
//! ([`HttpRules::check`]: public prefixes, path safety, the 401 a front
//! end refreshes on, CORS headers on wsguard's own answers).

use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_METHOD,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::BodyExt;

use crate::auth::legacy::{bearer, cookie};
use crate::auth::Identity;
use crate::config::{ConfigError, HttpConfig};
use crate::metrics::AuthReason;
use crate::proxy::{Body, Proxy};
use crate::rescue::HttpError;
use crate::session::Start;

/// The `[http]` rules for plain HTTP requests, built once.
#[derive(Debug, Clone, Default)]
pub struct HttpRules {
    /// Whether plain HTTP requests need a token.
    protect: bool,
    /// The public prefixes as decoded path segments (a trailing `/` dropped).
    public: Vec<Vec<String>>,
}

/// What a plain HTTP request may do.
pub enum Verdict {
    /// Go upstream without identity (not protected, public, a preflight).
    Pass,
    /// Go upstream with this identity; the token is sent only with
    /// `upstream.forward_token`.
    Verified(Arc<Identity>, String),
    /// Answered by wsguard.
    Refused(Response<Body>),
}

/// A path's segments, percent-decoded; `None` when one is `..`, holds an
/// encoded `/` or `\`, or does not decode to UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .skip(1)
        .map(|raw| {
            let decoded = percent_decode(raw)?;
            let bad = decoded == ".." || decoded.contains(['/', '\\']) || raw.contains('\\');
            (!bad).then_some(decoded)
        })
        .collect()
}

/// Strict percent-decoding of a path segment (`+` stays `+`).
fn percent_decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        out.push(if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()?
        } else {
            b
        });
    }
    String::from_utf8(out).ok()
}

/// Whether a request is a CORS preflight.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

impl HttpRules {
    /// The rules of `[http]`; a public prefix that is not an absolute
    /// path of plain segments is an error naming it.
    pub fn new(config: &HttpConfig) -> Result<HttpRules, ConfigError> {
        let public = config
            .public_prefixes
            .iter()
            .enumerate()
            .map(|(i, prefix)| {
                let decoded = prefix
                    .starts_with('/')
                    .then(|| segments(prefix.trim_end_matches('/')))
                    .flatten();
                decoded.ok_or_else(|| {
                    ConfigError::invalid(
                        format!("http.public_prefixes[{i}]"),
                        "must be a path starting with / without '..' segments, encoded '/' or bad %-sequences",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpRules {
            protect: config.protect,
            public,
        })
    }

    /// Whether decoded segments start with a public prefix's segments.
    fn is_public(&self, path: &[String]) -> bool {
        self.public
            .iter()
            .any(|prefix| path.len() >= prefix.len() && path[..prefix.len()] == prefix[..])
    }

    /// Whether plain HTTP routes are protected (`http.protect`).
    pub fn protects(&self) -> bool {
        self.protect
    }

    /// The verdict on a plain HTTP request.
    pub async fn check(
        &self,
        proxy: &Proxy,
        revocations: &crate::revocation::Revocations,
        method: &Method,
        headers: &HeaderMap,
        path: &str,
    ) -> Verdict {
        if !self.protect || is_preflight(method, headers) {
            return Verdict::Pass;
        }
        let Some(decoded) = segments(path) else {
            return Verdict::Refused(own_answer(proxy, headers, HttpError::BadPath.response()));
        };
        if self.is_public(&decoded) {
            return Verdict::Pass;
        }
        let (token, from_cookie) = match bearer(headers) {
            Some(token) => (Some(token), false),
            None => (
                proxy
                    .legacy
                    .cookie_name()
                    .and_then(|name| cookie(headers, name)),
                true,
            ),
        };
        let Some(token) = token else {
            return Verdict::Refused(own_answer(proxy, headers, HttpError::unauthorized(None)));
        };
        // A cookie travels with cross-site requests too (CSRF): a request
        // that may change state, authenticated by the cookie, must come
        // from an allowed Origin (the list cookie auth requires).
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if from_cookie && !safe && proxy.origins.cors_origin(headers).is_none() {
            let refused = HttpError::OriginNotAllowed.response();
            return Verdict::Refused(own_answer(proxy, headers, refused));
        }
        let verified = proxy
            .verifier
            .verify_waiting(token, proxy.session.auth_timeout)
            .await;
        match verified {
            // Revocation is checked on every auth, HTTP ones included.
            Ok(identity) if revocations.refuses(&identity) => {
                tracing::debug!("http request token refused: revoked");
                let answer = HttpError::unauthorized(Some("token revoked"));
                Verdict::Refused(own_answer(proxy, headers, answer))
            }
            Ok(identity) => Verdict::Verified(identity, token.to_owned()),
            Err(e) => {
                tracing::debug!(error = %e, "http request token refused");
                let reason = e.to_string();
                let answer = HttpError::unauthorized(Some(&reason));
                Verdict::Refused(own_answer(proxy, headers, answer))
            }
        }
    }
}

/// One of wsguard's own answers, with CORS headers when the request's
/// `Origin` is allowed (so that browser code can read it).
fn own_answer(
    proxy: &Proxy,
    headers: &HeaderMap,
    response: Response<http_body_util::Full<bytes::Bytes>>,
) -> Response<Body> {
    let mut response = response.map(|b| b.map_err(|never| match never {}).boxed());
    if let Some(origin) = proxy.origins.cors_origin(headers) {
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(VARY, HeaderValue::from_static("Origin"));
        if proxy.legacy.cookie_name().is_some() {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    response
}

/// What an upgrade request's own credentials decide, before any `101`:
/// an `Origin` not allowed is answered 403 before any token is looked at;
/// then the first legacy method present decides (header, cookie, query):
/// a valid token starts the session authenticated; an invalid one closes
/// it at once (1008 `invalid token`), or is answered 401 with
/// `auth.legacy.reject_with_http`; none: first-message auth.
pub async fn admit_upgrade(
    proxy: &Proxy,
    headers: &HeaderMap,
    path_and_query: &str,
) -> Result<Start, Box<Response<Body>>> {
    if let Err(e) = proxy.origins.check_upgrade(headers) {
        return Err(Box::new(own_answer(proxy, headers, e.response())));
    }
    let Some((method, token)) = proxy.legacy.find(headers, path_and_query) else {
        return Ok(Start::FirstFrame);
    };
    let started = std::time::Instant::now();
    let verified = proxy
        .verifier
        .verify_waiting(&token, proxy.session.auth_timeout)
        .await;
    match verified {
        // Counted by the session, which checks revocation and reuse first.
        Ok(identity) => Ok(Start::Verified {
            identity,
            token,
            method,
            took: started.elapsed(),
        }),
        Err(e) => {
            let (kind, reason) = (crate::metrics::AuthKind::legacy(method), AuthReason::of(&e));
            crate::metrics::auth(kind, reason, started.elapsed());
            tracing::debug!(method = method.label(), error = %e, "upgrade token refused");
            if proxy.legacy.reject_with_http {
                let answer = HttpError::unauthorized(Some(&e.to_string()));
                return Err(Box::new(own_answer(proxy, headers, answer)));
            }
            Ok(Start::Refused { method, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_refuse_dot_dot_and_encoded_slash() {
        assert_eq!(
            segments("/health/x"),
            Some(vec!["health".into(), "x".into()])
        );
        assert_eq!(segments("/a%20b"), Some(vec!["a b".into()]));
        for bad in [
            "/health/../admin",
            "/health/%2e%2e/admin",
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/%zz",
            "/%FF",
        ] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }

    #[test]
    fn public_prefixes_match_whole_segments() {
        let rules = HttpRules::new(&HttpConfig {
            public_prefixes: vec!["/health".into(), "/static/".into()],
            ..HttpConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        for bad in ["health", "/a/../b", "/a%2Fb"] {
            let config = HttpConfig {
                public_prefixes: vec!["/ok".into(), bad.into()],
                ..HttpConfig::default()
            };
            let err = HttpRules::new(&config).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .unwrap_or_default()
                    .starts_with("http.public_prefixes[1]:"),
                "{bad}: {err:?}"
            );
        }
        let public = |p: &str| segments(p).is_some_and(|s| rules.is_public(&s));
        assert!(public("/health"));
        assert!(public("/health/live"));
        assert!(public("/static/app.js"));
        assert!(public("/st%61tic/app.js"));
        assert!(!public("/healthz"));
        assert!(!public("/statics/x"));
        assert!(!public("/admin"));
    }
}
