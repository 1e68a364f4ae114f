//! `[auth]`: token verification, providers and their keys.

use super::*;

/// Default verification leeway, for clock skew only.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Clock-skew allowance at verification.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Verified tokens remembered (by the SHA-256 of their text, for at
    /// most 5 minutes) so that a token seen again skips the signature
    /// check; 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    /// Keys fetched from identity providers: refresh, refetch, limits, start-up.
    #[serde(default)]
    pub jwks: JwksConfig,
    /// Token issuers and their keys.
    pub providers: Vec<ProviderConfig>,
    /// Tokens taken from the upgrade request (header, cookie, query).
    #[serde(default)]
    pub legacy: LegacyAuthConfig,
    /// Live connections one token (its `jti`, else its SHA-256) may
    /// authenticate at once; unlimited when absent (see `session/tokens.rs`).
    #[serde(default)]
    pub max_connections_per_token: Option<u32>,
    /// Refuse tokens without a string `jti` claim.
    #[serde(default)]
    pub require_jti: bool,
}

pub(super) fn default_leeway() -> Duration {
    DEFAULT_LEEWAY
}

pub(super) fn default_cache_size() -> u64 {
    10_000
}

/// `[[auth.providers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// A name for logs and errors.
    pub name: String,
    /// The `iss` this provider answers for; a provider without one takes tokens without `iss`
    /// or with an `iss` that no other provider claims.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; when set, a token must carry one of them.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Allowed signature algorithms (`none` is never allowed).
    pub algorithms: Vec<String>,
    /// Claims a token must carry: a string claim must equal the value or
    /// contain it as a space-separated word (OAuth `scope`), an array claim
    /// must contain it.
    #[serde(default)]
    pub required_claims: std::collections::BTreeMap<String, String>,
    /// Take the keys from the issuer's OpenID Connect discovery document
    /// (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`).
    #[serde(default)]
    pub discovery: bool,
    /// PEM bundle of the CAs trusted for this provider's HTTPS fetches
    /// (instead of the built-in web roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` discovery and JWKS URLs (tests only: keys fetched
    /// without TLS can be replaced by anyone on the path).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Verification keys (none needed with `discovery` or a `jwks_url` key).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// `[[auth.providers.keys]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum KeyConfig {
    /// A shared HMAC secret, from an environment variable or a file.
    Hmac {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// Environment variable holding the secret.
        #[serde(default)]
        secret_env: Option<String>,
        /// File holding the secret (trailing newline removed).
        #[serde(default)]
        secret_file: Option<PathBuf>,
    },
    /// An RSA public key in PEM.
    Rsa {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// An EC (P-256/P-384) public key in PEM.
    Ec {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// An Ed25519 public key in PEM.
    Ed25519 {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// A local JWKS file; keys are chosen by `kid` and, when a key has one,
    /// its `alg` (keys not for verifying signatures are left out, see
    /// `auth/jwk.rs`).
    Jwks {
        /// JSON file with `{"keys": [...]}`.
        file: PathBuf,
    },
    /// A JWKS fetched over HTTPS and refreshed in the background (`[auth.jwks]`).
    #[serde(rename = "jwks_url")]
    JwksUrl {
        /// The JWKS document's URL.
        url: String,
    },
}

impl Config {
    /// Makes relative key file paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for provider in &mut self.auth.providers {
            if let Some(ca) = &mut provider.ca_file {
                if ca.is_relative() {
                    *ca = base.join(&*ca);
                }
            }
            for key in &mut provider.keys {
                let path = match key {
                    KeyConfig::Hmac {
                        secret_file: Some(p),
                        ..
                    } => p,
                    KeyConfig::Hmac { .. } | KeyConfig::JwksUrl { .. } => continue,
                    KeyConfig::Rsa { pem_file, .. }
                    | KeyConfig::Ec { pem_file, .. }
                    | KeyConfig::Ed25519 { pem_file, .. } => pem_file,
                    KeyConfig::Jwks { file } => file,
                };
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// `[auth]`: at least one provider (each is checked as it is built).
    pub(super) fn check_auth(&self) -> Result<(), ConfigError> {
        require(
            self.auth.max_connections_per_token != Some(0),
            "auth.max_connections_per_token",
            "must be at least 1 (leave it out for no limit)",
        )?;
        require(
            !self.auth.providers.is_empty(),
            "auth.providers",
            "at least one provider is required",
        )
    }
}
