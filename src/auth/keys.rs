//! Loading verification keys from the configuration: HMAC secrets (from an
//! environment variable or a file), PEM public keys and local JWKS files.
//! Every failure names the configuration key; no key material is ever logged.

use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::config::{ConfigError, KeyConfig};

/// The shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the
/// hash size of HS256). `wsguard token` refuses shorter secrets too.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// One verification key, ready to use.
pub struct Key {
    /// The `kid` this key answers to, if any (shared with the identities it verifies).
    pub kid: Option<std::sync::Arc<str>>,
    /// Which algorithms the key can verify.
    pub family: AlgorithmFamily,
    /// The one algorithm the key may verify, when its source names one (a
    /// JWK's `alg`).
    pub alg: Option<Algorithm>,
    /// The parsed key (parsed once, reused for every token).
    pub key: DecodingKey,
    /// SHA-256 of the key's material (the secret, the PEM text, the JWK):
    /// what a configuration reload compares to tell which keys it removed.
    /// Never logged.
    pub fingerprint: [u8; 32],
}

/// The fingerprint of a key's material.
pub fn fingerprint(material: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(material).into()
}

impl Key {
    /// Whether this key may check a token signed with `alg` (already
    /// allowlisted) whose header has `kid`: same family, the key's own `alg`
    /// (if it has one) equal to the token's, and the same `kid` unless one
    /// of the two has none. A key without a kid answers to any kid (a single
    /// PEM key works with an issuer that always sends one); a token without
    /// a kid is tried against every key that fits otherwise.
    pub fn fits(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.family == alg.family()
            && self.alg.is_none_or(|own| own == alg)
            && match (kid, &self.kid) {
                (Some(want), Some(have)) => want == &**have,
                _ => true,
            }
    }
}

/// Loads one `[[auth.providers.keys]]` entry (a JWKS file yields several keys).
pub fn load(at: &str, config: &KeyConfig) -> Result<Vec<Key>, ConfigError> {
    match config {
        KeyConfig::Hmac {
            kid,
            secret_env,
            secret_file,
        } => hmac(at, kid, secret_env.as_deref(), secret_file.as_deref()),
        KeyConfig::Rsa { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Rsa),
        KeyConfig::Ec { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Ec),
        KeyConfig::Ed25519 { kid, pem_file } => pem(at, kid, pem_file, AlgorithmFamily::Ed),
        KeyConfig::Jwks { file } => jwks(&format!("{at}.file"), file),
        // Fetched by the provider's refresh task (`auth/remote.rs`).
        KeyConfig::JwksUrl { .. } => Ok(Vec::new()),
    }
}

/// An HMAC secret from exactly one of an environment variable and a file.
fn hmac(
    at: &str,
    kid: &Option<String>,
    secret_env: Option<&str>,
    secret_file: Option<&Path>,
) -> Result<Vec<Key>, ConfigError> {
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
        kid: kid.as_deref().map(Into::into),
        family: AlgorithmFamily::Hmac,
        alg: None,
        key: DecodingKey::from_secret(secret.as_bytes()),
        fingerprint: fingerprint(secret.as_bytes()),
    }])
}

/// The keys of a local JWKS file that may verify signatures (see
/// [`super::jwk::verification_key`]); `key` is the configuration key naming it.
fn jwks(key: &str, file: &Path) -> Result<Vec<Key>, ConfigError> {
    let text = read(key, file)?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| ConfigError::invalid(key, format!("not a JWKS document: {e}")))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let usable = super::jwk::verification_key(jwk)
            .map_err(|problem| ConfigError::invalid(key, format!("keys[{i}] {problem}")))?;
        keys.extend(usable);
    }
    if set.keys.is_empty() {
        return Err(ConfigError::invalid(key, "the JWKS has no keys"));
    }
    if keys.is_empty() {
        return Err(ConfigError::invalid(
            key,
            "the JWKS has no key for verifying signatures (each one's \"use\", \"key_ops\" or \"alg\" excludes it)",
        ));
    }
    Ok(keys)
}

fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// A public key in PEM of the given family.
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
        kid: kid.as_deref().map(Into::into),
        family,
        alg: None,
        key: parsed,
        fingerprint: fingerprint(text.as_bytes()),
    }])
}
