//! Minting HS256 tokens for development and tests (`wsguard token`, the
//! demo's token endpoint, `wsguard connect`'s tests).

use std::time::Duration;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::{unix_now, MIN_HMAC_SECRET_BYTES};

/// What goes into a minted token besides `sub`, `iat` and `exp`.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The `iss` claim, if any.
    pub iss: Option<String>,
    /// The `aud` claim: absent when empty, a string for one value, an array for several.
    pub aud: Vec<String>,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// Further claims (they override the ones above when they share a name).
    pub extra: Map<String, Value>,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The secret is shorter than the proxy accepts.
    #[error("the HMAC secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes, so the proxy would refuse it; use a longer random secret (openssl rand -base64 48)")]
    ShortSecret,
    /// A lifetime below one second makes a token that is already expired.
    #[error("--ttl must be at least 1s")]
    ZeroTtl,
    /// The signing library failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Mints an HS256 token for `sub`, valid for `ttl`, with extra claims.
pub fn mint_hs256(
    secret: &[u8],
    sub: &str,
    ttl: Duration,
    extra: &Map<String, Value>,
) -> Result<String, MintError> {
    let claims = Claims {
        extra: extra.clone(),
        ..Claims::default()
    };
    mint(secret, sub, ttl, &claims)
}

/// Mints an HS256 token for `sub`, valid for `ttl` (whole seconds, at least
/// one), with `iss`, `aud`, `kid` and extra claims. Refuses a secret the
/// proxy would refuse.
pub fn mint(secret: &[u8], sub: &str, ttl: Duration, more: &Claims) -> Result<String, MintError> {
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        return Err(MintError::ShortSecret);
    }
    if ttl.as_secs() == 0 {
        return Err(MintError::ZeroTtl);
    }
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(sub));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl.as_secs()));
    if let Some(iss) = &more.iss {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    match more.aud.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), Value::from(one.as_str()));
        }
        many => {
            claims.insert("aud".into(), Value::from(many.to_vec()));
        }
    }
    for (k, v) in &more.extra {
        claims.insert(k.clone(), v.clone());
    }
    let header = Header {
        kid: more.kid.clone(),
        ..Header::default()
    };
    Ok(encode(&header, &claims, &EncodingKey::from_secret(secret))?)
}

/// Parses `--claim k=v`: the value is JSON when it parses as JSON (numbers,
/// arrays, booleans, quoted strings), otherwise a plain string.
pub fn parse_claim(pair: &str) -> Result<(String, Value), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("--claim {pair:?}: expected key=value"))?;
    if key.is_empty() {
        return Err(format!("--claim {pair:?}: the key is empty"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(
            parse_claim("scope=chat read"),
            Ok(("scope".into(), Value::from("chat read")))
        );
        assert_eq!(
            parse_claim("roles=[\"a\",\"b\"]"),
            Ok(("roles".into(), serde_json::json!(["a", "b"])))
        );
        assert!(parse_claim("novalue").is_err());
    }

    #[test]
    fn short_secrets_and_zero_ttl_are_refused() {
        let ttl = Duration::from_secs(60);
        let short = &SECRET[..MIN_HMAC_SECRET_BYTES - 1];
        assert!(matches!(
            mint(short, "a", ttl, &Claims::default()),
            Err(MintError::ShortSecret)
        ));
        assert!(matches!(
            mint(SECRET, "a", Duration::from_millis(900), &Claims::default()),
            Err(MintError::ZeroTtl)
        ));
        assert!(mint(SECRET, "a", ttl, &Claims::default()).is_ok());
    }
}
