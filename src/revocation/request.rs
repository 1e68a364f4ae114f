//! The body of `POST /revoke` and `DELETE /revoke`: one of `{"sub", "iss"}`,
//! `{"jti"}` or `{"sid"}`, and optionally `until` (RFC 3339) or `ttl`
//! (`"1h"` or seconds).

use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use super::{Revocation, Target};
use crate::auth::unix_now;

/// Longest a revocation may apply (ten years).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// What is wrong with a request body (safe to show: it never repeats a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub &'static str);

/// The body as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// A subject.
    sub: Option<String>,
    /// Its issuer.
    iss: Option<String>,
    /// A token id.
    jti: Option<String>,
    /// A session id.
    sid: Option<String>,
    /// The end, RFC 3339.
    until: Option<String>,
    /// The life, `"1h"` or seconds.
    ttl: Option<Value>,
}

/// Parses a body into the revocation it asks for, made now; `providers`
/// (more than one: `iss` is required with `sub`) and `default_ttl` come
/// from the configuration.
pub fn parse_request(
    body: &[u8],
    providers: usize,
    default_ttl: Duration,
) -> Result<Revocation, RequestError> {
    let body: Body = serde_json::from_slice(body).map_err(|_| {
        RequestError("not a JSON object with only sub, iss, jti, sid, until and ttl")
    })?;
    let target = match (body.sub, body.iss, body.jti, body.sid) {
        (Some(sub), iss, None, None) => {
            if iss.is_none() && providers > 1 {
                return Err(RequestError(
                    "iss is required with sub: several providers are configured",
                ));
            }
            Target::Sub { sub, iss }
        }
        (None, None, Some(jti), None) => Target::Jti { jti },
        (None, None, None, Some(sid)) => Target::Sid { sid },
        _ => {
            return Err(RequestError(
                "give exactly one of sub (with iss if needed), jti or sid",
            ))
        }
    };
    if matches!(&target, Target::Sub { sub, .. } | Target::Jti { jti: sub } | Target::Sid { sid: sub } if sub.is_empty())
    {
        return Err(RequestError("the value must not be empty"));
    }
    let now = unix_now();
    let until = match (body.until, body.ttl) {
        (Some(_), Some(_)) => return Err(RequestError("give until or ttl, not both")),
        (Some(until), None) => {
            let at = humantime::parse_rfc3339_weak(&until).map_err(|_| {
                RequestError("until is not an RFC 3339 time like 2026-12-01T12:00:00Z")
            })?;
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map_err(|_| RequestError("until is before 1970"))?
                .as_secs();
            if secs <= now {
                return Err(RequestError("until is in the past"));
            }
            if secs - now > MAX_TTL.as_secs() {
                return Err(RequestError("until is more than ten years away"));
            }
            secs
        }
        (None, ttl) => now + ttl_of(ttl, default_ttl)?.as_secs(),
    };
    Ok(Revocation {
        target,
        at: now,
        until,
    })
}

/// `ttl` as `"1h"` or seconds, at least 1 s, at most ten years.
fn ttl_of(ttl: Option<Value>, default_ttl: Duration) -> Result<Duration, RequestError> {
    let ttl = match ttl {
        None => default_ttl,
        Some(Value::String(s)) => humantime::parse_duration(&s).map_err(|_| {
            RequestError("ttl is not a duration like \"1h\" or a number of seconds")
        })?,
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or(RequestError("ttl must be a whole number of seconds"))?,
        Some(_) => {
            return Err(RequestError(
                "ttl is not a duration like \"1h\" or a number of seconds",
            ))
        }
    };
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(RequestError("ttl must be between 1s and ten years"));
    }
    Ok(ttl)
}
