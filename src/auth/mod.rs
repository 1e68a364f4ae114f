//! Token verification: providers chosen by `iss`, keys chosen by `kid`,
//! algorithm family and a JWK's own `alg`, signature and claim checks, and a
//! cache of verified tokens (by the SHA-256 of their text). Only `iss`, `alg`
//! and `kid` are read before the signature is verified, and only to choose
//! the provider and the key: the identity is taken from the verified claims.

mod jwk;
mod keys;
pub mod legacy;
mod provider;

pub use keys::MIN_HMAC_SECRET_BYTES;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{AuthConfig, ConfigError};
use provider::Provider;

/// Why a token was refused. The messages are safe to show the client: they
/// never contain the token or its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not three base64url parts, or not JSON inside.
    #[error("malformed token")]
    Malformed,
    /// No provider answers for the token's `iss`.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The algorithm is not in the provider's allowlist.
    #[error("algorithm not allowed")]
    Algorithm,
    /// No configured key matches the token's `kid` and algorithm.
    #[error("no matching key")]
    NoKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `aud` does not match.
    #[error("wrong audience")]
    Audience,
    /// `iss` does not match.
    #[error("wrong issuer")]
    Issuer,
    /// A required claim is missing or has the wrong value.
    #[error("missing or wrong claim: {0}")]
    Claim(String),
}

/// A verified identity: what the upstream is told and what a connection is pinned to.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `sub`.
    pub sub: String,
    /// `iss`, when the token has one.
    pub iss: Option<String>,
    /// `exp`, unix seconds.
    pub exp: u64,
    /// The token's payload segment: unpadded base64url of the claims JSON.
    /// The claims are kept only in this form (decoded on demand by
    /// [`Identity::claims`]): an idle connection holds no parsed map.
    pub claims_b64: String,
    /// The name of the provider that verified it.
    pub provider: Arc<str>,
    /// Whether that provider pins an `issuer` (then `iss` is that issuer;
    /// otherwise whoever holds the provider's key chose it).
    pub issuer_pinned: bool,
}

impl Identity {
    /// All verified claims, decoded from the verified payload segment.
    pub fn claims(&self) -> Map<String, Value> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.claims_b64.trim_end_matches('='))
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_default()
    }
}

/// Verifies tokens against the configured providers.
pub struct Verifier {
    /// Providers in configuration order.
    providers: Vec<Provider>,
    /// Clock-skew allowance, seconds.
    leeway: u64,
    /// Verified tokens by the SHA-256 of their text (32 bytes a token, not its length).
    cache: Option<moka::sync::Cache<[u8; 32], Arc<Identity>>>,
}

/// The latest `exp` accepted: the end of year 9999 (an `exp` in
/// milliseconds, a common issuer bug, is refused rather than trusted).
const MAX_EXP: u64 = 253_402_300_799;

/// How long a verified token stays in the cache at most (its `exp` still applies).
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Only the claims needed to choose a provider, read before verification.
#[derive(Deserialize)]
struct Unverified {
    /// The claimed issuer.
    #[serde(default)]
    iss: Option<Value>,
}

impl Verifier {
    /// Builds the verifier, loading every key; errors name the configuration key.
    pub fn from_config(config: &AuthConfig) -> Result<Verifier, ConfigError> {
        let leeway = config.leeway.as_secs();
        let mut providers = Vec::new();
        let mut seen_issuers = std::collections::HashSet::new();
        for (i, p) in config.providers.iter().enumerate() {
            let at = format!("auth.providers[{i}]");
            if !seen_issuers.insert(p.issuer.clone()) {
                return Err(ConfigError::invalid(
                    format!("{at}.issuer"),
                    "another provider already has this issuer",
                ));
            }
            providers.push(Provider::from_config(&at, p, leeway)?);
        }
        let cache = (config.cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.cache_size)
                .time_to_live(CACHE_TTL)
                .build()
        });
        Ok(Verifier {
            providers,
            leeway,
            cache,
        })
    }

    /// Verifies a token and returns the identity it proves. A token is only
    /// accepted while its `exp` is ahead of our clock: the leeway absorbs
    /// clock skew in `nbf` and `iat`, but a connection's identity cannot
    /// outlive `exp`, so accepting an expired token would buy nothing.
    pub fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let now = unix_now();
        let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        if let Some(cache) = &self.cache {
            if let Some(identity) = cache.get(&key) {
                if identity.exp > now {
                    return Ok(identity);
                }
                cache.invalidate(&key);
                return Err(AuthError::Expired);
            }
        }
        let identity = Arc::new(self.verify_uncached(token, now)?);
        if identity.exp <= now {
            return Err(AuthError::Expired);
        }
        if let Some(cache) = &self.cache {
            cache.insert(key, identity.clone());
        }
        Ok(identity)
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions that must be understood; wsguard
            // implements none (an empty list is not allowed either).
            return Err(AuthError::Malformed);
        }
        let unverified: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Malformed)?;
        let iss = match &unverified.iss {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(AuthError::Malformed),
        };
        let provider = self.provider_for(iss)?;
        let claims = verified_claims(provider, token, &header)?;
        self.check_claims(provider, &claims, now)?;
        identity(provider, token, claims)
    }

    /// Checks `iat` and the provider's `required_claims` (jsonwebtoken has
    /// checked the rest).
    fn check_claims(
        &self,
        provider: &Provider,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<(), AuthError> {
        if let Some(iat) = claims.get("iat") {
            match iat.as_f64() {
                Some(iat) if iat > (now + self.leeway) as f64 => {
                    return Err(AuthError::IssuedInFuture)
                }
                Some(_) => {}
                None => return Err(AuthError::Claim("iat".into())),
            }
        }
        for (name, want) in &provider.required {
            if !claim_satisfies(claims.get(name), want) {
                return Err(AuthError::Claim(name.clone()));
            }
        }
        Ok(())
    }

    /// The provider for an (unverified) `iss`: the one naming it, else the one without an issuer.
    fn provider_for(&self, iss: Option<&str>) -> Result<&Provider, AuthError> {
        if let Some(iss) = iss {
            if let Some(p) = self
                .providers
                .iter()
                .find(|p| p.issuer.as_deref() == Some(iss))
            {
                return Ok(p);
            }
        }
        self.providers
            .iter()
            .find(|p| p.issuer.is_none())
            .ok_or(AuthError::UnknownIssuer)
    }
}

/// The claims of `token`, checked by jsonwebtoken (signature, `exp`, `nbf`,
/// `aud`, `iss`) with the first key of `provider` that fits the header and
/// whose signature matches.
fn verified_claims(
    provider: &Provider,
    token: &str,
    header: &jsonwebtoken::Header,
) -> Result<Map<String, Value>, AuthError> {
    let validation = provider
        .validation(header.alg)
        .ok_or(AuthError::Algorithm)?;
    let kid = header.kid.as_deref();
    let mut result = Err(AuthError::NoKey);
    for key in provider.keys.iter().filter(|k| k.fits(header.alg, kid)) {
        result = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map(|data| data.claims)
            .map_err(map_error);
        if !matches!(result, Err(AuthError::Signature)) {
            break;
        }
    }
    result
}

/// The identity proved by verified `claims` (`sub`, `iss` and `exp` taken
/// out of them; `token`'s payload segment kept as it was signed).
fn identity(
    provider: &Provider,
    token: &str,
    mut claims: Map<String, Value>,
) -> Result<Identity, AuthError> {
    let sub = match claims.remove("sub") {
        Some(Value::String(s)) => s,
        _ => return Err(AuthError::Claim("sub".into())),
    };
    // The same text as the unverified `iss` that chose the provider (a
    // duplicated claim is malformed), but taken from the verified claims.
    let iss = match claims.remove("iss") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(AuthError::Malformed),
    };
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| (0.0..=MAX_EXP as f64).contains(e))
        .map(|e| e as u64)
        .ok_or_else(|| AuthError::Claim("exp".into()))?;
    let claims_b64 = token.split('.').nth(1).unwrap_or_default().to_owned();
    Ok(Identity {
        sub,
        iss,
        exp,
        claims_b64,
        provider: provider.name.clone(),
        issuer_pinned: provider.issuer.is_some(),
    })
}

fn map_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => AuthError::Signature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidAudience => AuthError::Audience,
        K::InvalidIssuer => AuthError::Issuer,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            AuthError::Algorithm
        }
        K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => AuthError::Claim(c.clone()),
        _ => AuthError::Malformed,
    }
}

/// Whether a claim satisfies a `required_claims` entry.
fn claim_satisfies(claim: Option<&Value>, want: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == want || s.split(' ').any(|w| w == want),
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(want)),
        Some(Value::Bool(b)) => want == if *b { "true" } else { "false" },
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_roles_match() {
        let scope = Value::String("read chat write".into());
        assert!(claim_satisfies(Some(&scope), "chat"));
        assert!(!claim_satisfies(Some(&scope), "cha"));
        let roles = serde_json::json!(["member", "admin"]);
        assert!(claim_satisfies(Some(&roles), "admin"));
        assert!(!claim_satisfies(Some(&roles), "owner"));
        assert!(!claim_satisfies(None, "x"));
    }
}
