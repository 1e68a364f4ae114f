//! First-frame authentication end to end: every key kind (HMAC, RSA, EC,
//! Ed25519, JWKS by kid), the `AUTHENTICATE` synonym, the claim checks
//! (`exp`, `nbf`, `iat`, `aud`, `iss`, `sub`, required claims), forged
//! tokens (`alg: none`, bad signature, HMAC with a public key) and several
//! providers chosen by `iss`; which JWKS keys may verify a token (`use`,
//! `key_ops`, `alg`), and `crit`. Every refused first token closes 1008
//! `invalid token` and never reaches the upstream; where the reason matters
//! it is read from the `error` answer to the same token sent as a REAUTH.

mod support;
use support::*;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How long to watch for an upstream connection that must not come.
const NO_UPSTREAM: Duration = Duration::from_millis(400);

const RSA_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "rsa"
algorithms = ["RS256"]
[[auth.providers.keys]]
kind = "rsa"
pem_file = "@KEYS@/rsa.pub.pem"
"#;

const EC_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "ec"
algorithms = ["ES256"]
[[auth.providers.keys]]
kind = "ec"
pem_file = "@KEYS@/ec.pub.pem"
"#;

const ED_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "ed"
algorithms = ["EdDSA"]
[[auth.providers.keys]]
kind = "ed25519"
pem_file = "@KEYS@/ed25519.pub.pem"
"#;

const JWKS_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "jwks"
algorithms = ["ES256", "RS256"]
[[auth.providers.keys]]
kind = "jwks"
file = "@KEYS@/jwks.json"
"#;

/// Two providers, each answering for its own `iss`.
const TWO_PROVIDERS: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "shared-secret"
issuer = "https://hs.example"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
[[auth.providers]]
name = "rsa-idp"
issuer = "https://rs.example"
algorithms = ["RS256"]
[[auth.providers.keys]]
kind = "rsa"
pem_file = "@KEYS@/rsa.pub.pem"
"#;

/// HS256 with an issuer and an audience.
const ISS_AUD_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "strict"
issuer = "https://idp.example"
audience = ["wsguard", "chat-api"]
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
"#;

/// HS256 requiring `scope` to contain `chat` and `roles` to contain `member`.
const REQUIRED_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "required"
algorithms = ["HS256"]
required_claims = { scope = "chat", roles = "member" }
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
"#;

/// HS256 with the default leeway (no `leeway` key).
const DEFAULT_LEEWAY_AUTH: &str = r#"
[auth]
[[auth.providers]]
name = "default-leeway"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
"#;

/// Authenticates with `token` against a proxy using `auth` (None = the
/// default HS256 provider), checks the upstream saw the subject, and does
/// one round trip. Returns the upstream connection.
async fn accepted(auth: Option<&str>, token: &str, sub: &str) -> UpConn {
    let mut upstream = Upstream::start(true).await;
    let mut builder = proxy(upstream.addr);
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    let proxy = builder.start().await;
    let mut ws = connect(&proxy, "/chat").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "a1", "{v}");
    assert_eq!(v["payload"]["sub"], sub, "{v}");
    let up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some(sub));
    ws.send(Message::text("ping-1")).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text("ping-1"));
    up
}

/// Sends `token` as the first frame and checks the close is 1008
/// `invalid token` and the upstream was never contacted.
async fn refused(auth: Option<&str>, token: &str) {
    let mut upstream = Upstream::start(true).await;
    let mut builder = proxy(upstream.addr);
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    let proxy = builder.start().await;
    let mut ws = connect(&proxy, "/chat").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "invalid token".to_string())
    );
    assert!(
        upstream.accept_within(NO_UPSTREAM).await.is_none(),
        "the upstream was contacted for a refused token"
    );
}

/// A token assembled by hand from a header, claims and a signature segment.
fn hand_made(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

// ---- every key kind -------------------------------------------------------

#[tokio::test]
async fn hs256_with_the_default_provider() {
    accepted(None, &hs256("alice", 300), "alice").await;
}

#[tokio::test]
async fn hs256_secret_from_env() {
    std::env::set_var("WSGUARD_AUTH_TEST_SECRET", SECRET);
    let auth = r#"
[auth]
[[auth.providers]]
name = "env"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_env = "WSGUARD_AUTH_TEST_SECRET"
"#;
    accepted(Some(auth), &hs256("erin", 300), "erin").await;
}

#[tokio::test]
async fn rs256_with_a_pem_public_key() {
    accepted(
        Some(RSA_AUTH),
        &rs256(&claims("rob", 300, json!({}))),
        "rob",
    )
    .await;
}

#[tokio::test]
async fn es256_with_a_pem_public_key() {
    accepted(Some(EC_AUTH), &es256(&claims("eve", 300, json!({}))), "eve").await;
}

#[tokio::test]
async fn eddsa_with_a_pem_public_key() {
    accepted(Some(ED_AUTH), &eddsa(&claims("ed", 300, json!({}))), "ed").await;
}

#[tokio::test]
async fn jwks_kid_a_es256() {
    accepted(
        Some(JWKS_AUTH),
        &jwks_a(&claims("anna", 300, json!({}))),
        "anna",
    )
    .await;
}

#[tokio::test]
async fn jwks_kid_b_rs256() {
    accepted(
        Some(JWKS_AUTH),
        &jwks_b(&claims("bert", 300, json!({}))),
        "bert",
    )
    .await;
}

#[tokio::test]
async fn jwks_unknown_kid_is_refused() {
    let key = EncodingKey::from_ec_pem(&key_file("jwks-a.key")).expect("jwks-a key");
    let token = sign(
        Algorithm::ES256,
        &key,
        Some("kid-z"),
        &claims("anna", 300, json!({})),
    );
    refused(Some(JWKS_AUTH), &token).await;
}

#[tokio::test]
async fn jwks_kid_pointing_at_another_key_is_refused() {
    // Signed with kid-b's key but claiming kid-a: kid-a is an EC key, so
    // nothing can verify an RS256 signature under that kid.
    let key = EncodingKey::from_rsa_pem(&key_file("jwks-b.key")).expect("jwks-b key");
    let token = sign(
        Algorithm::RS256,
        &key,
        Some("kid-a"),
        &claims("bert", 300, json!({})),
    );
    refused(Some(JWKS_AUTH), &token).await;
}

#[tokio::test]
async fn jwks_key_whose_algorithm_is_not_allowed_is_refused() {
    // The JWKS holds kid-b (RSA), but this provider only allows ES256.
    let auth = JWKS_AUTH.replace(r#"["ES256", "RS256"]"#, r#"["ES256"]"#);
    refused(Some(&auth), &jwks_b(&claims("bert", 300, json!({})))).await;
}

// ---- which JWKS keys may verify a token -----------------------------------

/// The JWK `of` (`kid-a` or `kid-b`) under another kid: the same key, for a
/// key that still verifies alongside one that must not.
fn copy_of(of: &str, kid: &str) -> Value {
    let mut key = jwk(of);
    key["kid"] = json!(kid);
    key
}

/// With a JWKS holding `keys`, `bad` is refused as the first frame (1008,
/// upstream never contacted) and, as a REAUTH on a connection that `good`
/// opened, answered `invalid_token` with the reason `no matching key`; then
/// `good` is accepted again on the same connection. Both tokens are for
/// `anna`.
async fn key_not_used(keys: &[Value], bad: &str, good: &str) {
    refused_because(keys, bad, good, "no matching key").await;
}

/// Like [`key_not_used`], with another reason for refusing `bad`.
async fn refused_because(keys: &[Value], bad: &str, good: &str, reason: &str) {
    let (_dir, path) = jwks_file(keys);
    let auth = JWKS_AUTH.replace("@KEYS@/jwks.json", &path);
    refused(Some(&auth), bad).await;

    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .auth(&auth)
        .session("reauth_min_interval = \"0s\"")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", good).await;
    let _up = upstream.accept().await;
    lifecycle::send(&mut ws, lifecycle::reauth("r1", bad)).await;
    let v = lifecycle::recv_type(&mut ws, "error").await;
    assert_eq!(v["payload"]["code"], "invalid_token", "{v}");
    assert_eq!(v["payload"]["message"], reason, "{v}");
    lifecycle::send(&mut ws, lifecycle::reauth("r2", good)).await;
    let v = lifecycle::recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r2", "{v}");
}

fn anna() -> Value {
    claims("anna", 300, json!({}))
}

#[tokio::test]
async fn jwks_key_for_encryption_is_never_used() {
    let mut enc = jwk("kid-a");
    enc["use"] = json!("enc");
    key_not_used(
        &[enc, copy_of("kid-a", "kid-a-sig"), jwk("kid-b")],
        &jwks_a(&anna()),
        &jwks_a_as(Some("kid-a-sig"), &anna()),
    )
    .await;
}

#[tokio::test]
async fn jwks_key_with_an_unknown_use_is_never_used() {
    let mut other = jwk("kid-a");
    other["use"] = json!("tls");
    key_not_used(
        &[other, copy_of("kid-a", "kid-a-sig"), jwk("kid-b")],
        &jwks_a(&anna()),
        &jwks_a_as(Some("kid-a-sig"), &anna()),
    )
    .await;
}

#[tokio::test]
async fn jwks_key_whose_alg_differs_from_the_tokens_is_never_used() {
    // kid-a is a P-256 key, but its JWK says ES384: an ES256 token may not use it.
    let mut es384 = jwk("kid-a");
    es384["alg"] = json!("ES384");
    key_not_used(
        &[es384, copy_of("kid-a", "kid-a-sig"), jwk("kid-b")],
        &jwks_a(&anna()),
        &jwks_a_as(Some("kid-a-sig"), &anna()),
    )
    .await;
}

#[tokio::test]
async fn jwks_key_with_an_encryption_alg_is_never_used() {
    let mut oaep = jwk("kid-b");
    oaep["alg"] = json!("RSA-OAEP");
    oaep.as_object_mut().map(|k| k.remove("use"));
    key_not_used(
        &[oaep, copy_of("kid-b", "kid-b-sig"), jwk("kid-a")],
        &jwks_b(&anna()),
        &jwks_b_as(Some("kid-b-sig"), &anna()),
    )
    .await;
}

#[tokio::test]
async fn jwks_key_ops_without_verify_is_never_used_and_with_verify_is() {
    let mut sign_only = jwk("kid-a");
    sign_only["key_ops"] = json!(["sign"]);
    let mut verify = copy_of("kid-a", "kid-a-verify");
    verify["key_ops"] = json!(["verify"]);
    key_not_used(
        &[sign_only, verify, jwk("kid-b")],
        &jwks_a(&anna()),
        &jwks_a_as(Some("kid-a-verify"), &anna()),
    )
    .await;
}

#[tokio::test]
async fn jwks_excluded_key_is_not_tried_for_a_token_without_kid() {
    // Without a kid a token is tried against every key that fits: not the
    // encryption key that would verify it, only the other EC key, which
    // does not.
    let mut enc = jwk("kid-a");
    enc["use"] = json!("enc");
    refused_because(
        &[enc, ec_pem_jwk("ec-other"), jwk("kid-b")],
        &jwks_a_as(None, &anna()),
        &jwks_b(&anna()),
        "bad signature",
    )
    .await;
}

#[tokio::test]
async fn authenticate_synonym_is_accepted() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = connect(&proxy, "/chat").await;
    let frame =
        json!({"type": "AUTHENTICATE", "id": "syn-1", "payload": {"token": hs256("alice", 300)}});
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "syn-1", "{v}");
    assert_eq!(v["payload"]["sub"], "alice", "{v}");
    let up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
}

// ---- time claims ----------------------------------------------------------

#[tokio::test]
async fn expired_token_is_refused() {
    let c = json!({"sub": "alice", "iat": now() - 600, "exp": now() - 60});
    refused(None, &hs256_claims(&c)).await;
}

#[tokio::test]
async fn token_expired_within_leeway_is_still_refused() {
    // The leeway absorbs clock skew for nbf/iat; a token whose exp has
    // already passed never opens a connection.
    let c = json!({"sub": "alice", "iat": now() - 600, "exp": now() - 1});
    refused(None, &hs256_claims(&c)).await;
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    refused(None, &hs256_claims(&json!({"sub": "alice", "iat": now()}))).await;
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let c = claims("alice", 300, json!({"nbf": now() + 120}));
    refused(None, &hs256_claims(&c)).await;
}

#[tokio::test]
async fn iat_in_the_future_is_refused() {
    let c = json!({"sub": "alice", "iat": now() + 120, "exp": now() + 600});
    refused(None, &hs256_claims(&c)).await;
}

#[tokio::test]
async fn default_leeway_absorbs_small_nbf_and_iat_skew() {
    // Default leeway is 30 s: nbf and iat 10 s ahead are clock skew.
    let c = json!({"sub": "skew", "iat": now() + 10, "nbf": now() + 10, "exp": now() + 600});
    accepted(Some(DEFAULT_LEEWAY_AUTH), &hs256_claims(&c), "skew").await;
}

#[tokio::test]
async fn default_leeway_is_30s_not_more() {
    let c = json!({"sub": "skew", "iat": now(), "nbf": now() + 90, "exp": now() + 600});
    refused(Some(DEFAULT_LEEWAY_AUTH), &hs256_claims(&c)).await;
}

// ---- iss / aud ------------------------------------------------------------

#[tokio::test]
async fn matching_iss_and_aud_are_accepted() {
    let c = claims(
        "alice",
        300,
        json!({"iss": "https://idp.example", "aud": "chat-api"}),
    );
    let up = accepted(Some(ISS_AUD_AUTH), &hs256_claims(&c), "alice").await;
    assert_eq!(
        up.header("x-auth-issuer").as_deref(),
        Some("https://idp.example")
    );
}

#[tokio::test]
async fn aud_array_containing_a_configured_audience_is_accepted() {
    let c = claims(
        "alice",
        300,
        json!({"iss": "https://idp.example", "aud": ["other", "wsguard"]}),
    );
    accepted(Some(ISS_AUD_AUTH), &hs256_claims(&c), "alice").await;
}

#[tokio::test]
async fn wrong_aud_is_refused() {
    let c = claims(
        "alice",
        300,
        json!({"iss": "https://idp.example", "aud": "billing"}),
    );
    refused(Some(ISS_AUD_AUTH), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn missing_aud_is_refused_when_configured() {
    let c = claims("alice", 300, json!({"iss": "https://idp.example"}));
    refused(Some(ISS_AUD_AUTH), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn wrong_iss_is_refused() {
    let c = claims(
        "alice",
        300,
        json!({"iss": "https://evil.example", "aud": "wsguard"}),
    );
    refused(Some(ISS_AUD_AUTH), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn missing_iss_is_refused_when_configured() {
    let c = claims("alice", 300, json!({"aud": "wsguard"}));
    refused(Some(ISS_AUD_AUTH), &hs256_claims(&c)).await;
}

// ---- forged and broken tokens --------------------------------------------

#[tokio::test]
async fn wrong_signature_is_refused() {
    let other = EncodingKey::from_secret(b"another-secret-that-is-long-enough-0123");
    let token = sign(
        Algorithm::HS256,
        &other,
        None,
        &claims("alice", 300, json!({})),
    );
    refused(None, &token).await;
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let good = hs256("alice", 300);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(claims("mallory", 300, json!({})).to_string());
    let token = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    refused(None, &token).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let token = hand_made(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("alice", 300, json!({})),
        "",
    );
    refused(None, &token).await;
}

#[tokio::test]
async fn alg_none_uppercase_is_refused() {
    let token = hand_made(
        &json!({"alg": "NONE", "typ": "JWT"}),
        &claims("alice", 300, json!({})),
        "",
    );
    refused(None, &token).await;
}

#[tokio::test]
async fn token_with_a_crit_header_is_refused() {
    // A JWS extension that must be understood (RFC 7515 §4.1.11): wsguard
    // understands none, so even a correctly signed token is refused.
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let token = jsonwebtoken::encode(
        &header,
        &claims("alice", 300, json!({})),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode");
    refused(None, &token).await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic key-confusion attack: the public key's PEM bytes used as
    // an HMAC secret against an RS256 provider.
    let public_pem = key_file("rsa.pub.pem");
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        None,
        &claims("alice", 300, json!({})),
    );
    refused(Some(RSA_AUTH), &token).await;
}

#[tokio::test]
async fn rs256_token_against_the_hs256_provider_is_refused() {
    refused(None, &rs256(&claims("alice", 300, json!({})))).await;
}

#[tokio::test]
async fn garbage_token_is_refused() {
    refused(None, "not-a-jwt").await;
}

#[tokio::test]
async fn auth_frame_without_token_is_refused() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = connect(&proxy, "/chat").await;
    ws.send(Message::text(r#"{"type":"auth","payload":{}}"#))
        .await
        .expect("send");
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "invalid token".to_string())
    );
    assert!(upstream.accept_within(NO_UPSTREAM).await.is_none());
}

#[tokio::test]
async fn missing_sub_is_refused() {
    let c = json!({"iat": now(), "exp": now() + 300, "scope": "chat"});
    refused(None, &hs256_claims(&c)).await;
}

#[tokio::test]
async fn non_string_sub_is_refused() {
    let c = json!({"sub": 42, "iat": now(), "exp": now() + 300});
    refused(None, &hs256_claims(&c)).await;
}

// ---- required claims ------------------------------------------------------

#[tokio::test]
async fn required_claims_present_are_accepted() {
    let c = claims(
        "alice",
        300,
        json!({"scope": "read chat write", "roles": ["admin", "member"]}),
    );
    accepted(Some(REQUIRED_AUTH), &hs256_claims(&c), "alice").await;
}

#[tokio::test]
async fn missing_required_scope_is_refused() {
    let c = claims("alice", 300, json!({"roles": ["member"]}));
    refused(Some(REQUIRED_AUTH), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn scope_without_the_required_word_is_refused() {
    // "chatter" contains "chat" as a substring but not as a scope word.
    let c = claims(
        "alice",
        300,
        json!({"scope": "read chatter", "roles": ["member"]}),
    );
    refused(Some(REQUIRED_AUTH), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn role_array_without_the_required_role_is_refused() {
    let c = claims(
        "alice",
        300,
        json!({"scope": "chat", "roles": ["admin", "guest"]}),
    );
    refused(Some(REQUIRED_AUTH), &hs256_claims(&c)).await;
}

// ---- several providers ----------------------------------------------------

#[tokio::test]
async fn provider_chosen_by_iss_rs256() {
    let c = claims("rita", 300, json!({"iss": "https://rs.example"}));
    let up = accepted(Some(TWO_PROVIDERS), &rs256(&c), "rita").await;
    assert_eq!(
        up.header("x-auth-issuer").as_deref(),
        Some("https://rs.example")
    );
}

#[tokio::test]
async fn provider_chosen_by_iss_hs256() {
    let c = claims("hans", 300, json!({"iss": "https://hs.example"}));
    let up = accepted(Some(TWO_PROVIDERS), &hs256_claims(&c), "hans").await;
    assert_eq!(
        up.header("x-auth-issuer").as_deref(),
        Some("https://hs.example")
    );
}

#[tokio::test]
async fn token_signed_for_the_other_provider_is_refused() {
    // An RS256 token claiming the HMAC provider's issuer: that provider
    // allows HS256 only.
    let c = claims("rita", 300, json!({"iss": "https://hs.example"}));
    refused(Some(TWO_PROVIDERS), &rs256(&c)).await;
}

#[tokio::test]
async fn unknown_issuer_is_refused() {
    let c = claims("hans", 300, json!({"iss": "https://nobody.example"}));
    refused(Some(TWO_PROVIDERS), &hs256_claims(&c)).await;
}

#[tokio::test]
async fn token_without_iss_is_refused_when_every_provider_has_one() {
    refused(Some(TWO_PROVIDERS), &hs256("hans", 300)).await;
}
