//! One configured issuer, built from `[[auth.providers]]`: its algorithm
//! allowlist, its keys and jsonwebtoken's checks, prepared once per
//! algorithm so that verifying a token clones nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};

use super::fetch::Fetcher;
use super::keys::{self, Key};
use super::remote::{RemoteKeys, Source};
use crate::config::{ConfigError, JwksConfig, KeyConfig, ProviderConfig};

/// One configured issuer.
pub(super) struct Provider {
    /// Name from the configuration.
    pub name: Arc<str>,
    /// `iss` it answers for.
    pub issuer: Option<String>,
    /// The allowed algorithms, each with jsonwebtoken's checks (exp, nbf,
    /// aud, iss, leeway) for that algorithm alone: jsonwebtoken refuses a
    /// key unless every algorithm of the validation is of the key's family,
    /// so a provider mixing families (a JWKS with EC and RSA keys) checks a
    /// token with its own (allowlisted) algorithm only.
    pub validations: Vec<(Algorithm, Validation)>,
    /// Claims that must be present with a value.
    pub required: BTreeMap<String, String>,
    /// Verification keys from the configuration.
    pub keys: Vec<Key>,
    /// The set fetched from the identity provider, if it has one.
    pub remote: Option<Arc<RemoteKeys>>,
}

impl Provider {
    /// Builds `auth.providers[i]` (`at`), loading its keys.
    pub fn from_config(
        at: &str,
        p: &ProviderConfig,
        leeway: u64,
        jwks: &JwksConfig,
    ) -> Result<Provider, ConfigError> {
        let algorithms = algorithms(at, &p.algorithms)?;
        let source = source(at, p)?;
        let keys = load_keys(at, p, source.is_some())?;
        let remote = match source {
            // The families of a fetched set are checked when it loads.
            Some(source) => {
                let covered = algorithms
                    .iter()
                    .copied()
                    .filter(|&alg| keys.iter().any(|k| k.fits(alg, None)))
                    .collect();
                Some(Arc::new(RemoteKeys::new(
                    Arc::from(p.name.as_str()),
                    source,
                    Fetcher::new(at, p, jwks)?,
                    algorithms.clone(),
                    covered,
                    p.allow_insecure_http,
                    jwks.clone(),
                )))
            }
            None => {
                check_key_families(at, &algorithms, &keys)?;
                None
            }
        };
        Ok(Provider {
            remote,
            name: Arc::from(p.name.as_str()),
            issuer: p.issuer.clone(),
            validations: algorithms
                .iter()
                .map(|&alg| (alg, validation(p, alg, leeway)))
                .collect(),
            required: p.required_claims.clone(),
            keys,
        })
    }

    /// jsonwebtoken's checks for a token signed with `alg`, if `alg` is allowed.
    pub fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find(|(allowed, _)| *allowed == alg)
            .map(|(_, validation)| validation)
    }
}

/// `algorithms`: known names, not `none`, at least one.
fn algorithms(at: &str, names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    let key = format!("{at}.algorithms");
    let mut algorithms = Vec::new();
    for a in names {
        if a.eq_ignore_ascii_case("none") {
            return Err(ConfigError::invalid(key, "\"none\" is not allowed"));
        }
        let alg: Algorithm = a.parse().map_err(|_| {
            ConfigError::invalid(&key, format!("{a:?} is not a known JWT algorithm"))
        })?;
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err(ConfigError::invalid(
            key,
            "at least one algorithm is required",
        ));
    }
    Ok(algorithms)
}

/// Where the provider's remote set comes from: `discovery`, or its one
/// `jwks_url` key; `http://` only with `allow_insecure_http`.
fn source(at: &str, p: &ProviderConfig) -> Result<Option<Source>, ConfigError> {
    let urls: Vec<(usize, &String)> = p
        .keys
        .iter()
        .enumerate()
        .filter_map(|(k, key)| match key {
            KeyConfig::JwksUrl { url } => Some((k, url)),
            _ => None,
        })
        .collect();
    if p.discovery {
        let issuer = p.issuer.as_ref().ok_or_else(|| {
            ConfigError::invalid(format!("{at}.discovery"), "needs the provider's issuer")
        })?;
        if let Some((k, _)) = urls.first() {
            return Err(ConfigError::invalid(
                format!("{at}.keys[{k}]"),
                "a provider with discovery = true takes its JWKS URL from the issuer; remove this jwks_url key",
            ));
        }
        check_url(&format!("{at}.issuer"), issuer, p.allow_insecure_http)?;
        return Ok(Some(Source::Discovery {
            issuer: issuer.clone(),
        }));
    }
    match urls.as_slice() {
        [] => Ok(None),
        [(k, url)] => {
            check_url(&format!("{at}.keys[{k}].url"), url, p.allow_insecure_http)?;
            Ok(Some(Source::Jwks((*url).clone())))
        }
        [_, (k, _), ..] => Err(ConfigError::invalid(
            format!("{at}.keys[{k}]"),
            "a provider takes at most one jwks_url key",
        )),
    }
}

/// An `https://` URL (or `http://` when insecure HTTP is allowed) with a host.
fn check_url(key: &str, url: &str, allow_http: bool) -> Result<(), ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::invalid(key, "not a valid URL"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => {
            return Err(ConfigError::invalid(
                key,
                "http:// is refused (keys fetched without TLS can be replaced on the way); use https://, or allow_insecure_http = true for tests",
            ))
        }
        _ => return Err(ConfigError::invalid(key, "must be an https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, "the URL has no host"));
    }
    Ok(())
}

/// Every local `keys` entry, loaded; at least one key in all unless the
/// provider has a remote set.
fn load_keys(at: &str, p: &ProviderConfig, remote: bool) -> Result<Vec<Key>, ConfigError> {
    let mut loaded = Vec::new();
    for (k, key) in p.keys.iter().enumerate() {
        loaded.extend(keys::load(&format!("{at}.keys[{k}]"), key)?);
    }
    if loaded.is_empty() && !remote {
        return Err(ConfigError::invalid(
            format!("{at}.keys"),
            "at least one key is required",
        ));
    }
    Ok(loaded)
}

/// Each allowed algorithm has at least one key that may verify it: of its
/// family, and with no `alg` of its own or that same one.
fn check_key_families(at: &str, algorithms: &[Algorithm], keys: &[Key]) -> Result<(), ConfigError> {
    for &alg in algorithms {
        if !keys.iter().any(|k| k.fits(alg, None)) {
            return Err(ConfigError::invalid(
                format!("{at}.algorithms"),
                format!("{alg:?} has no key of its kind in {at}.keys"),
            ));
        }
    }
    Ok(())
}

/// jsonwebtoken's checks for one algorithm of provider `p`.
fn validation(p: &ProviderConfig, alg: Algorithm, leeway: u64) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // jsonwebtoken only checks `aud` when the token has one: a configured
    // audience must make it required.
    let mut required = vec!["exp", "sub"];
    if !p.audience.is_empty() {
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    match &p.issuer {
        Some(iss) => validation.set_issuer(&[iss]),
        None => validation.iss = None,
    }
    if p.audience.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&p.audience);
    }
    validation
}
