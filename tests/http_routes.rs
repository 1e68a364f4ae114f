//! Protected plain HTTP routes (`[http] protect`): a valid token goes
//! upstream with the identity headers; a missing or refused one gets the
//! 401 front ends refresh on (RFC 6750 `WWW-Authenticate`, the JSON body,
//! CORS headers for an allowed Origin); public prefixes, path safety and
//! preflights.

mod support;

use std::time::Duration;

use support::requests::{raw_http, HttpUpstream, RawResponse, HTTP_UPSTREAM_STATUS};
use support::*;

const ORIGIN: &str = "https://app.example.com";

async fn protected(upstream: &HttpUpstream, legacy: &str) -> TestProxy {
    proxy(upstream.addr)
        .legacy(legacy)
        .http(&format!(
            "protect = true\npublic_prefixes = [\"/health\", \"/static/\"]\nallowed_origins = [\"{ORIGIN}\"]"
        ))
        .start()
        .await
}

/// `METHOD target` with extra header lines, answered whole.
async fn http(p: &TestProxy, line: &str, extra: &str) -> RawResponse {
    let raw = format!(
        "{line} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
        p.addr
    );
    raw_http(p.addr, &raw).await
}

fn assert_401(answer: &RawResponse, challenge: &str, message: &str) {
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(challenge),
        "{answer:?}"
    );
    let body = answer.json();
    assert_eq!(body["error"], "token_not_valid", "{body}");
    assert_eq!(body["message"], message, "{body}");
}

#[tokio::test]
async fn missing_and_refused_tokens_get_401() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    let answer = http(&p, "GET /api/items", "").await;
    assert_401(
        &answer,
        "Bearer realm=\"wsguard\"",
        "a valid token is required",
    );
    let answer = http(&p, "GET /api/items", "Authorization: Bearer not.a.jwt\r\n").await;
    assert_401(
        &answer,
        "Bearer realm=\"wsguard\", error=\"invalid_token\", error_description=\"malformed token\"",
        "malformed token",
    );
    let expired = hs256("alice", -60);
    let answer = http(
        &p,
        "GET /api",
        &format!("Authorization: Bearer {expired}\r\n"),
    )
    .await;
    assert_eq!(answer.json()["message"], "token expired", "{answer:?}");
    assert!(upstream
        .request_within(Duration::from_millis(200))
        .await
        .is_none());
}

#[tokio::test]
async fn cors_headers_only_for_an_allowed_origin() {
    let upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    let answer = http(&p, "GET /api", &format!("Origin: {ORIGIN}\r\n")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    let answer = http(&p, "GET /api", "Origin: https://evil.example\r\n").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(answer.header("vary"), None);
    // With cookie auth the browser sends credentials: they must be allowed.
    let p = protected(&upstream, "cookie = \"sid\"").await;
    let answer = http(&p, "GET /api", &format!("Origin: {ORIGIN}\r\n")).await;
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn a_verified_request_goes_upstream_with_identity() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    let token = hs256("alice", 300);
    let spoof = "X-Auth-Subject: admin\r\nX-Auth-Roles: root\r\n";
    let extra = format!("Authorization: Bearer {token}\r\n{spoof}");
    let answer = http(&p, "GET /api/items?x=1", &extra).await;
    assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{answer:?}");
    let seen = upstream.request().await;
    assert_eq!(seen.path, "/api/items?x=1");
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.count("x-auth-subject"), 1);
    assert_eq!(seen.header("x-auth-roles"), None);
    assert_eq!(
        seen.header("authorization"),
        None,
        "the token went upstream"
    );
}

/// A cookie travels with cross-site requests: a state-changing request
/// authenticated by it needs an allowed Origin (CSRF).
#[tokio::test]
async fn cookie_authenticated_writes_need_an_allowed_origin() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "cookie = \"sid\"").await;
    let cookie = format!("Cookie: sid={}\r\n", hs256("carol", 300));
    for origin in ["", "Origin: https://evil.example\r\n"] {
        let answer = http(
            &p,
            "POST /api",
            &format!("{cookie}{origin}Content-Length: 0\r\n"),
        )
        .await;
        assert_eq!(answer.status, 403, "{origin:?}: {answer:?}");
        assert_eq!(answer.json()["error"], "origin_not_allowed");
    }
    assert!(upstream
        .request_within(std::time::Duration::from_millis(200))
        .await
        .is_none());
    let allowed = format!("{cookie}Origin: {ORIGIN}\r\nContent-Length: 0\r\n");
    let answer = http(&p, "POST /api", &allowed).await;
    assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{answer:?}");
    assert_eq!(
        upstream.request().await.header("x-auth-subject").as_deref(),
        Some("carol")
    );
    // A bearer token is not sent by the browser on its own: no Origin needed.
    let bearer = format!(
        "Authorization: Bearer {}\r\nContent-Length: 0\r\n",
        hs256("dan", 300)
    );
    assert_eq!(
        http(&p, "POST /api", &bearer).await.status,
        HTTP_UPSTREAM_STATUS
    );
}

#[tokio::test]
async fn the_auth_cookie_verifies_when_cookie_auth_is_on() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "cookie = \"sid\"").await;
    let token = hs256("carol", 300);
    let answer = http(&p, "GET /api", &format!("Cookie: a=1; sid={token}\r\n")).await;
    assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{answer:?}");
    let seen = upstream.request().await;
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("carol"));
    assert_eq!(seen.header("cookie").as_deref(), Some("a=1"));
}

#[tokio::test]
async fn public_prefixes_pass_on_whole_segments() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    for path in ["/health", "/health/live", "/static/app.js"] {
        let answer = http(&p, &format!("GET {path}"), "").await;
        assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{path}: {answer:?}");
        let seen = upstream.request().await;
        assert_eq!(seen.header("x-auth-subject"), None);
    }
    for path in ["/healthz", "/statics/x"] {
        assert_eq!(
            http(&p, &format!("GET {path}"), "").await.status,
            401,
            "{path}"
        );
    }
}

#[tokio::test]
async fn dot_dot_and_encoded_slash_are_refused() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    for path in [
        "/health/../admin",
        "/health/%2e%2e/admin",
        "/static%2F..%2Fadmin",
        "/health%2fx",
    ] {
        let answer = http(&p, &format!("GET {path}"), "").await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert_eq!(answer.json()["error"], "bad_path", "{answer:?}");
    }
    assert!(upstream
        .request_within(Duration::from_millis(200))
        .await
        .is_none());
}

#[tokio::test]
async fn preflights_pass_without_a_token() {
    let mut upstream = HttpUpstream::start().await;
    let p = protected(&upstream, "").await;
    let extra = format!("Origin: {ORIGIN}\r\nAccess-Control-Request-Method: POST\r\n");
    let answer = http(&p, "OPTIONS /api/items", &extra).await;
    assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{answer:?}");
    assert_eq!(upstream.request().await.method, "OPTIONS");
    // An OPTIONS that is not a preflight is protected.
    assert_eq!(http(&p, "OPTIONS /api/items", "").await.status, 401);
}

#[tokio::test]
async fn unprotected_requests_pass_as_before() {
    let mut upstream = HttpUpstream::start().await;
    let p = proxy(upstream.addr).start().await;
    let answer = http(&p, "GET /api/../x", "").await;
    assert_eq!(answer.status, HTTP_UPSTREAM_STATUS, "{answer:?}");
    assert_eq!(upstream.request().await.header("x-auth-subject"), None);
}
