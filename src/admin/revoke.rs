//! `POST /revoke`, `DELETE /revoke` and `GET /revocations` (behind the
//! admin token): revocations made, lifted and listed, from the process's
//! [`crate::revocation::Revocations`]; the matching live connections are
//! closed at once (`token revoked`).

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use super::{json, Admin};
use crate::metrics::REVOCATION_KINDS;
use crate::rescue::HttpError;
use crate::revocation::{parse_request, Revocation};

/// Largest request body read.
const MAX_BODY: usize = 16 * 1024;

/// Whether this module answers `path`.
pub fn routes(path: &str) -> bool {
    matches!(path, "/revoke" | "/revocations")
}

/// Answers `/revoke` and `/revocations`.
pub async fn answer(
    admin: &Admin,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let method = request.method().clone();
    let allowed = match path {
        "/revocations" => method == Method::GET,
        _ => method == Method::POST || method == Method::DELETE,
    };
    if !allowed {
        return if path == "/revocations" {
            HttpError::AdminMethodNotAllowed.response()
        } else {
            HttpError::AdminRevokeMethodNotAllowed.response()
        };
    }
    if !admin.authorized(&request) {
        return HttpError::AdminUnauthorized.response();
    }
    if path == "/revocations" {
        let list: Vec<Value> = admin
            .process
            .revocations
            .list()
            .iter()
            .map(render)
            .collect();
        return json(StatusCode::OK, &json!({ "revocations": list }));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return bad("the body could not be read or is over 16 KiB"),
    };
    let store = &admin.process.revocations;
    let providers = store.providers.load(std::sync::atomic::Ordering::Relaxed);
    let revocation = match parse_request(&body, providers, store.default_ttl) {
        Ok(r) => r,
        Err(e) => return bad(e.0),
    };
    if method == Method::DELETE {
        return lift(admin, &revocation);
    }
    let kind = revocation.target.kind();
    let (stored, closed) = store.revoke(revocation, &admin.process.registry, true);
    crate::metrics::revoked(kind, closed);
    audit("revoked", &stored, closed);
    json(
        StatusCode::OK,
        &json!({"closed": closed, "revocation": render(&stored)}),
    )
}

/// `DELETE /revoke`.
fn lift(admin: &Admin, revocation: &Revocation) -> Response<Full<Bytes>> {
    if !admin.process.revocations.lift(&revocation.target, true) {
        return HttpError::AdminRevocationNotFound.response();
    }
    audit("revocation_lifted", revocation, 0);
    json(StatusCode::OK, &json!({"lifted": true}))
}

/// 400 `bad_revocation` with what is wrong in `detail`.
fn bad(detail: &str) -> Response<Full<Bytes>> {
    let mut extra = serde_json::Map::new();
    extra.insert("detail".into(), detail.into());
    HttpError::AdminBadRevocation.response_with(extra)
}

/// The audit line of a revocation made or lifted (`sub`/`iss` escaped;
/// a `jti` or session id is a claim: never logged).
fn audit(event: &'static str, r: &Revocation, closed: usize) {
    let v = serde_json::to_value(&r.target).unwrap_or_default();
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(tracing::field::debug)
    };
    tracing::info!(
        target: crate::session::AUDIT,
        event,
        kind = REVOCATION_KINDS[r.target.kind()],
        sub = field("sub"),
        iss = field("iss"),
        closed,
        source = "admin",
        "{}",
        if event == "revoked" { "token revoked" } else { "revocation lifted" }
    );
}

/// RFC 3339 text for unix seconds (the number itself past the year 9999,
/// which RFC 3339 cannot write: never a panic).
fn rfc3339(secs: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(t) if write!(out, "{}", humantime::format_rfc3339_seconds(t)).is_ok() => out,
        _ => secs.to_string(),
    }
}

/// A revocation as the API shows it.
fn render(r: &Revocation) -> Value {
    let mut v = serde_json::to_value(&r.target).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("revoked_at".into(), rfc3339(r.at).into());
        o.insert("until".into(), rfc3339(r.until).into());
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_rfc3339_cannot_write_are_shown_as_numbers() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(253_402_300_800), "253402300800");
        assert_eq!(super::rfc3339(u64::MAX), u64::MAX.to_string());
    }
}
