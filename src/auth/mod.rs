//! Token verification: providers chosen by `iss`, keys chosen by `kid`,
//! algorithm family and a JWK's own `alg`, signature and claim checks, and a
//! cache of verified tokens (by the SHA-256 of their text). Only `iss`, `alg`
//! and `kid` are read before the signature is verified, and only to choose
//! the provider and the key: the identity is taken from the verified claims.

mod changes;
mod fetch;
mod jwk;
mod keys;
pub mod legacy;
mod provider;
mod remote;
mod sets;

pub use changes::Removed;
pub use fetch::FetchError;
pub use keys::MIN_HMAC_SECRET_BYTES;
pub use remote::KeyStats;
pub use sets::{KeyWait, ProviderKeys, Verdict};

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{AuthConfig, ConfigError, JwksConfig};
use provider::Provider;
use remote::{Miss, RemoteKeys};

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
    /// The `kid` of the key that verified it (shared with the key), if the
    /// key has one: connections are found by it when the key is removed.
    pub kid: Option<Arc<str>>,
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
    /// Verified tokens by the SHA-256 of their text (32 bytes a token, not
    /// its length), with the remote set whose key verified it (a hit whose
    /// key left that set is dropped).
    cache: Option<moka::sync::Cache<[u8; 32], Cached>>,
    /// `[auth.jwks]`.
    jwks: JwksConfig,
    /// The refresh tasks started (stopped when the verifier is dropped).
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// `auth.require_jti`: a token without a string `jti` is refused.
    require_jti: bool,
}

/// A cached verification.
#[derive(Clone)]
struct Cached {
    /// The identity.
    identity: Arc<Identity>,
    /// The remote set of the key that verified it, if it is one.
    remote: Option<Arc<RemoteKeys>>,
}

/// Why a token was not verified, inside the verifier.
enum Failure {
    /// Refused.
    Auth(AuthError),
    /// Its `kid` is not in the provider's remote set of this generation.
    Miss(Arc<RemoteKeys>, u64),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Failure {
        Failure::Auth(e)
    }
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
            providers.push(Provider::from_config(&at, p, leeway, &config.jwks)?);
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
            jwks: config.jwks.clone(),
            tasks: Mutex::new(Vec::new()),
            require_jti: config.require_jti,
        })
    }

    /// Verifies a token and returns the identity it proves. A token is only
    /// accepted while its `exp` is ahead of our clock: the leeway absorbs
    /// clock skew in `nbf` and `iat`, but a connection's identity cannot
    /// outlive `exp`, so accepting an expired token would buy nothing. An
    /// unknown `kid` is refused at once (`no matching key`); see
    /// [`Verifier::verify_or_wait`] for the refetch.
    pub fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        match self.check(token, false) {
            Verdict::Done(result) => result,
            Verdict::Wait(_) => Err(AuthError::NoKey),
        }
    }

    /// Like [`Verifier::verify`], but a `kid` unknown to a provider's
    /// remote set asks for a refetch (at most one per
    /// `auth.jwks.refetch_cooldown`): then the caller waits for the
    /// [`KeyWait`] and verifies the token again with [`Verifier::verify`].
    pub fn verify_or_wait(&self, token: &str) -> Verdict {
        self.check(token, true)
    }

    /// [`Verifier::verify_or_wait`], waiting (at most `limit`) for the
    /// refetch an unknown `kid` asks for, then verifying again: for tokens
    /// checked outside a session (the upgrade request, protected HTTP
    /// routes), so that they too see a rotated key without waiting for the
    /// next scheduled refresh.
    pub async fn verify_waiting(
        &self,
        token: &str,
        limit: std::time::Duration,
    ) -> Result<Arc<Identity>, AuthError> {
        match self.verify_or_wait(token) {
            Verdict::Done(result) => result,
            Verdict::Wait(wait) => {
                let _ = tokio::time::timeout(limit, wait).await;
                self.verify(token)
            }
        }
    }

    fn check(&self, token: &str, may_wait: bool) -> Verdict {
        let now = unix_now();
        let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(&key) {
                if hit.identity.exp <= now {
                    cache.invalidate(&key);
                    return Verdict::Done(Err(AuthError::Expired));
                }
                if still_keyed(&hit) {
                    return Verdict::Done(Ok(hit.identity));
                }
                // Its key left the set: verified again, from scratch.
                cache.invalidate(&key);
            }
        }
        let mut retried = false;
        loop {
            return match self.verify_uncached(token, now) {
                Ok(cached) => Verdict::Done(self.remember(key, cached, now)),
                Err(Failure::Auth(e)) => Verdict::Done(Err(e)),
                Err(Failure::Miss(..)) if !may_wait || retried => {
                    Verdict::Done(Err(AuthError::NoKey))
                }
                Err(Failure::Miss(remote, generation)) => match remote.miss(generation) {
                    Miss::Retry => {
                        retried = true;
                        continue;
                    }
                    Miss::Wait(done) => Verdict::Wait(KeyWait::new(done)),
                    Miss::Refuse => Verdict::Done(Err(AuthError::NoKey)),
                },
            };
        }
    }

    /// Caches a fresh verification.
    fn remember(
        &self,
        key: [u8; 32],
        cached: Cached,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        if cached.identity.exp <= now {
            return Err(AuthError::Expired);
        }
        let identity = cached.identity.clone();
        if let Some(cache) = &self.cache {
            cache.insert(key, cached);
        }
        Ok(identity)
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<Cached, Failure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions that must be understood; wsguard
            // implements none (an empty list is not allowed either).
            return Err(AuthError::Malformed.into());
        }
        let unverified: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Malformed)?;
        let iss = match &unverified.iss {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(AuthError::Malformed.into()),
        };
        let provider = self.provider_for(iss)?;
        let (claims, kid, remote) = verified_claims(provider, token, &header)?;
        self.check_claims(provider, &claims, now)?;
        let identity = Arc::new(identity(provider, token, claims, kid)?);
        Ok(Cached { identity, remote })
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
        if self.require_jti && !claims.get("jti").is_some_and(Value::is_string) {
            return Err(AuthError::Claim("jti".into()));
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
/// whose signature matches (its local keys, then its remote set), with the
/// `kid` of that key and the remote set it is from. A `kid` that no key has
/// is a miss of the remote set, if the provider has one.
fn verified_claims(
    provider: &Provider,
    token: &str,
    header: &jsonwebtoken::Header,
) -> Result<Verified, Failure> {
    let validation = provider
        .validation(header.alg)
        .ok_or(AuthError::Algorithm)?;
    let kid = header.kid.as_deref();
    let set = provider.remote.as_ref().map(|r| (r, r.current()));
    let remote_keys = set.iter().flat_map(|(_, set)| set.keys.iter());
    let mut result = Err(AuthError::NoKey);
    let mut from_remote = false;
    for (key, remote) in provider
        .keys
        .iter()
        .map(|k| (k, false))
        .chain(remote_keys.map(|k| (k, true)))
        .filter(|(k, _)| k.fits(header.alg, kid))
    {
        result = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map(|data| (data.claims, key.kid.clone()))
            .map_err(map_error);
        from_remote = remote;
        if !matches!(result, Err(AuthError::Signature)) {
            break;
        }
    }
    match (result, &set) {
        (Ok((claims, kid)), Some((remote, _))) if from_remote => {
            Ok((claims, kid, Some((*remote).clone())))
        }
        (Ok((claims, kid)), _) => Ok((claims, kid, None)),
        (Err(AuthError::NoKey), Some((remote, set)))
            if kid.is_some_and(|kid| unknown(provider, set, kid)) =>
        {
            Err(Failure::Miss((*remote).clone(), set.generation))
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// Verified claims, the `kid` of the key that verified them and its remote set.
type Verified = (
    Map<String, Value>,
    Option<Arc<str>>,
    Option<Arc<RemoteKeys>>,
);

/// Whether no key of the provider (local or in `set`) has this `kid`.
fn unknown(provider: &Provider, set: &remote::KeySet, kid: &str) -> bool {
    !provider
        .keys
        .iter()
        .chain(&set.keys)
        .any(|k| k.kid.as_deref() == Some(kid))
}

/// Whether a cached verification's key is still in its set.
fn still_keyed(hit: &Cached) -> bool {
    match (&hit.remote, &hit.identity.kid) {
        (Some(remote), Some(kid)) => remote.has(kid),
        _ => true,
    }
}

/// The identity proved by verified `claims` (`sub`, `iss` and `exp` taken
/// out of them; `token`'s payload segment kept as it was signed).
fn identity(
    provider: &Provider,
    token: &str,
    mut claims: Map<String, Value>,
    kid: Option<Arc<str>>,
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
        kid,
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
