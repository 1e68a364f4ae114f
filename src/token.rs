//! Minting HS256 tokens for development and tests (`wsguard token`).

use std::time::Duration;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::unix_now;

/// Mints an HS256 token for `sub`, valid for `ttl`, with extra claims.
pub fn mint_hs256(
    secret: &[u8],
    sub: &str,
    ttl: Duration,
    extra: &Map<String, Value>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(sub));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl.as_secs()));
    for (k, v) in extra {
        claims.insert(k.clone(), v.clone());
    }
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
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
}
