//! Tokens for tests: HS256 with the test secret, RS256/ES256/EdDSA with the
//! keys in tests/keys, and JWKS keys by kid.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The HMAC secret the default test proxy uses.
pub const SECRET: &str = "wsguard-test-secret-0123456789abcdef";

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims `{sub, iat, exp: now + ttl}` merged with `extra` (an object).
pub fn claims(sub: &str, ttl: i64, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "iat": now(), "exp": now() + ttl});
    if let (Some(map), Value::Object(more)) = (c.as_object_mut(), extra) {
        map.extend(more);
    }
    c
}

/// Signs claims with an algorithm, a key and an optional kid.
pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("encode token")
}

/// A key file from tests/keys.
pub fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}", super::keys_dir())).expect("read key")
}

/// HS256 with the test secret.
pub fn hs256(sub: &str, ttl: i64) -> String {
    hs256_claims(&claims(sub, ttl, json!({})))
}

/// HS256 with the test secret and arbitrary claims.
pub fn hs256_claims(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

/// RS256 with tests/keys/rsa.key.
pub fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&key_file("rsa.key")).expect("rsa key");
    sign(Algorithm::RS256, &key, None, claims)
}

/// ES256 with tests/keys/ec.key.
pub fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&key_file("ec.key")).expect("ec key");
    sign(Algorithm::ES256, &key, None, claims)
}

/// EdDSA with tests/keys/ed25519.key.
pub fn eddsa(claims: &Value) -> String {
    let key = EncodingKey::from_ed_pem(&key_file("ed25519.key")).expect("ed key");
    sign(Algorithm::EdDSA, &key, None, claims)
}

/// ES256 with the JWKS key `kid-a`.
pub fn jwks_a(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&key_file("jwks-a.key")).expect("jwks-a key");
    sign(Algorithm::ES256, &key, Some("kid-a"), claims)
}

/// RS256 with the JWKS key `kid-b`.
pub fn jwks_b(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&key_file("jwks-b.key")).expect("jwks-b key");
    sign(Algorithm::RS256, &key, Some("kid-b"), claims)
}

/// The public JWK `kid` (`kid-a` or `kid-b`) from tests/keys/jwks.json, to
/// edit (`use`, `alg`, `key_ops`) and write with [`jwks_file`].
pub fn jwk(kid: &str) -> Value {
    let set: Value = serde_json::from_slice(&key_file("jwks.json")).expect("jwks.json");
    set["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .cloned()
        .unwrap_or_else(|| panic!("no {kid} in jwks.json"))
}

/// A JWKS document holding `keys`, written to `jwks.json` in a fresh folder
/// (removed when the returned guard drops); the file's path.
pub fn jwks_file(keys: &[Value]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({ "keys": keys }).to_string()).expect("write jwks");
    let path = path.display().to_string();
    (dir, path)
}

/// ES256 with the JWKS key `kid-a`'s private key and any `kid` (or none).
pub fn jwks_a_as(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&key_file("jwks-a.key")).expect("jwks-a key");
    sign(Algorithm::ES256, &key, kid, claims)
}

/// RS256 with the JWKS key `kid-b`'s private key and any `kid` (or none).
pub fn jwks_b_as(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&key_file("jwks-b.key")).expect("jwks-b key");
    sign(Algorithm::RS256, &key, kid, claims)
}

/// tests/keys/ec.pub.pem (P-256, private key `ec.key`) as a JWK with `kid`
/// and `alg` ES256: an EC key that fits ES256 tokens but is not `kid-a`.
pub fn ec_pem_jwk(kid: &str) -> Value {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let pem = String::from_utf8(key_file("ec.pub.pem")).expect("ec.pub.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).expect("ec.pub.pem base64");
    // A P-256 SubjectPublicKeyInfo ends with the point 0x04 || x || y.
    let (x, y) = der[der.len() - 64..].split_at(32);
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    })
}
