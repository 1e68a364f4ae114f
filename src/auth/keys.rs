//! Loading verification keys from the configuration: HMAC secrets (from an
//! environment variable or a file), PEM public keys and local JWKS files.
//! Every failure names the configuration key; no key material is ever logged.

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};

use crate::config::{ConfigError, KeyConfig};

/// The shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the
/// hash size of HS256). `wsguard token` refuses shorter secrets too.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// One verification key, ready to use.
pub struct Key {
    /// The `kid` this key answers to, if any.
    pub kid: Option<String>,
    /// Which algorithms the key can verify.
    pub family: AlgorithmFamily,
    /// The parsed key (parsed once, reused for every token).
    pub key: DecodingKey,
}

/// Loads one `[[auth.providers.keys]]` entry (a JWKS file yields several keys).
pub fn load(at: &str, config: &KeyConfig) -> Result<Vec<Key>, ConfigError> {
    match config {
        KeyConfig::Hmac {
            kid,
            secret_env,
            secret_file,
        } => {
            let secret = match (secret_env, secret_file) {
                (Some(var), None) => std::env::var(var).map_err(|_| {
                    ConfigError::invalid(
                        format!("{at}.secret_env"),
                        format!("environment variable {var} is not set or not UTF-8"),
                    )
                })?,
                (None, Some(path)) => {
                    let text = read(&format!("{at}.secret_file"), path)?;
                    text.trim_end_matches(['\r', '\n']).to_owned()
                }
                _ => {
                    return Err(ConfigError::invalid(
                        at,
                        "an hmac key needs exactly one of secret_env and secret_file",
                    ))
                }
            };
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(ConfigError::invalid(
                    at,
                    format!("the HMAC secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes; use a longer random secret"),
                ));
            }
            Ok(vec![Key {
                kid: kid.clone(),
                family: AlgorithmFamily::Hmac,
                key: DecodingKey::from_secret(secret.as_bytes()),
            }])
        }
        KeyConfig::Rsa { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Rsa),
        KeyConfig::Ec { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Ec),
        KeyConfig::Ed25519 { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Ed),
        KeyConfig::Jwks { file } => {
            let key = format!("{at}.file");
            let text = read(&key, file)?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| ConfigError::invalid(&key, format!("not a JWKS document: {e}")))?;
            let mut keys = Vec::new();
            for (i, jwk) in set.keys.iter().enumerate() {
                let kid = jwk.common.key_id.clone().ok_or_else(|| {
                    ConfigError::invalid(&key, format!("keys[{i}] has no \"kid\""))
                })?;
                let decoding = DecodingKey::from_jwk(jwk).map_err(|e| {
                    ConfigError::invalid(
                        &key,
                        format!("keys[{i}] (kid {kid:?}) is not usable: {e}"),
                    )
                })?;
                keys.push(Key {
                    kid: Some(kid),
                    family: decoding.family(),
                    key: decoding,
                });
            }
            if keys.is_empty() {
                return Err(ConfigError::invalid(key, "the JWKS has no keys"));
            }
            Ok(keys)
        }
    }
}

fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn pem(
    at: &str,
    kid: &Option<String>,
    path: &Path,
    family: AlgorithmFamily,
) -> Result<Vec<Key>, ConfigError> {
    let key = format!("{at}.pem_file");
    let text = read(&key, path)?;
    if text.contains("PRIVATE KEY") {
        return Err(ConfigError::invalid(
            key,
            "this is a private key; give the public key (the proxy only verifies)",
        ));
    }
    let parsed = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(text.as_bytes()),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(text.as_bytes()),
        _ => DecodingKey::from_ed_pem(text.as_bytes()),
    }
    .map_err(|e| ConfigError::invalid(&key, format!("not a usable public key PEM: {e}")))?;
    Ok(vec![Key {
        kid: kid.clone(),
        family,
        key: parsed,
    }])
}
