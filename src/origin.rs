//! The Origin allowlist (cross-site WebSocket hijacking): which serialized
//! origins may open a WebSocket, and may read wsguard's own 401s (CORS).
//! Exact origins and wildcards where `*` is exactly one DNS label; scheme
//! and host compared case-insensitively, default ports normalized.

use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue};

use crate::config::{Config, ConfigError};
use crate::rescue::HttpError;

/// One entry of `http.allowed_origins`, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `scheme://host[:port]`, lower-case, default port left out.
    Exact(String),
    /// `scheme://*.suffix[:port]`: the scheme, the suffix with its leading
    /// dot, and the port part (`:8443` or empty).
    Wildcard {
        /// `https`, `http`, ...
        scheme: String,
        /// `.example.com`.
        suffix: String,
        /// `:8443`, or empty for the default port.
        port: String,
    },
}

/// The allowlist, built once from `[http]`.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// The allowed origins; empty: no Origin check at all.
    patterns: Vec<Pattern>,
    /// Whether an upgrade without `Origin` passes (when there is a list).
    allow_missing: bool,
}

/// An origin split into scheme, host and port part (`:port` or empty,
/// the scheme's default port dropped), lower-case.
fn split(origin: &str) -> Option<(String, String, String)> {
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    };
    if !plain(scheme) || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match rest.rfind(':') {
        Some(at) if !rest[at..].contains(']') => (&rest[..at], Some(&rest[at + 1..])),
        _ => (rest, None),
    };
    if host.is_empty() {
        return None;
    }
    let default = match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    let port = match port {
        None => String::new(),
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            if Some(n) == default {
                String::new()
            } else {
                format!(":{n}")
            }
        }
    };
    Some((scheme.to_owned(), host.to_owned(), port))
}

/// An origin in its normalized form, or `None` if it is not one.
fn normalize(origin: &str) -> Option<String> {
    let (scheme, host, port) = split(origin)?;
    Some(format!("{scheme}://{host}{port}"))
}

impl Pattern {
    /// Parses one configured entry.
    fn parse(entry: &str) -> Option<Pattern> {
        let (scheme, host, port) = split(entry)?;
        match host.strip_prefix('*') {
            Some(suffix)
                if suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*') =>
            {
                Some(Pattern::Wildcard {
                    scheme,
                    suffix: suffix.to_owned(),
                    port,
                })
            }
            Some(_) => None,
            None if host.contains('*') => None,
            None => Some(Pattern::Exact(format!("{scheme}://{host}{port}"))),
        }
    }

    /// Whether a normalized origin matches.
    fn matches(&self, origin: &str) -> bool {
        match self {
            Pattern::Exact(o) => o == origin,
            Pattern::Wildcard {
                scheme,
                suffix,
                port,
            } => {
                let Some((s, host, p)) = split(origin) else {
                    return false;
                };
                let label = host.strip_suffix(suffix.as_str());
                s == *scheme
                    && p == *port
                    && label.is_some_and(|l| !l.is_empty() && !l.contains('.'))
            }
        }
    }
}

impl OriginPolicy {
    /// The allowlist of a configuration; an entry that is not an origin is
    /// an error naming it.
    pub fn from_config(config: &Config) -> Result<OriginPolicy, ConfigError> {
        let patterns = config
            .http
            .allowed_origins
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                Pattern::parse(entry).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("http.allowed_origins[{i}]"),
                        format!("{entry:?} is not an origin such as \"https://app.example.com\" or \"https://*.example.com\" (`*` as the first label only)"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy {
            patterns,
            allow_missing: config.allow_missing_origin(),
        })
    }

    /// Whether a list is configured (without one, nothing is checked).
    pub fn is_on(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether an origin (as the client sent it) is on the list.
    pub fn allows(&self, origin: &str) -> bool {
        normalize(origin).is_some_and(|o| self.patterns.iter().any(|p| p.matches(&o)))
    }

    /// The check of an upgrade request: `Err(OriginNotAllowed)` when a list
    /// is configured and the request's single `Origin` is not on it (or is
    /// missing without `allow_missing_origin`).
    pub fn check_upgrade(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        if !self.is_on() {
            return Ok(());
        }
        let mut origins = headers.get_all(ORIGIN).into_iter();
        let ok = match (origins.next(), origins.next()) {
            (None, _) => self.allow_missing,
            (Some(o), None) => o.to_str().is_ok_and(|o| self.allows(o)),
            (Some(_), Some(_)) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(HttpError::OriginNotAllowed)
        }
    }

    /// The request's `Origin` when it is on the list (for CORS headers on
    /// wsguard's own answers); `None` without a list.
    pub fn cors_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut origins = headers.get_all(ORIGIN).into_iter();
        match (origins.next(), origins.next()) {
            (Some(o), None) if o.to_str().is_ok_and(|o| self.allows(o)) => Some(o.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy {
            patterns: list.iter().filter_map(|e| Pattern::parse(e)).collect(),
            allow_missing: false,
        }
    }

    #[test]
    fn exact_wildcard_and_default_ports() {
        let p = policy(&[
            "https://app.example.com",
            "https://*.example.org",
            "http://x:8080",
        ]);
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("HTTPS://App.Example.COM:443"));
        assert!(!p.allows("http://app.example.com"));
        assert!(!p.allows("https://app.example.com:8443"));
        assert!(p.allows("https://a.example.org"));
        assert!(!p.allows("https://example.org"));
        assert!(!p.allows("https://a.b.example.org"));
        assert!(!p.allows("https://evilexample.org"));
        assert!(p.allows("http://x:8080"));
        assert!(!p.allows("http://x"));
        assert!(!p.allows("null"));
        assert!(!p.allows("https://app.example.com/"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "app.example.com",
            "https://a.*.com",
            "https://*",
            "https://x/y",
            "https://x:99999",
        ] {
            assert_eq!(Pattern::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Pattern::parse("https://[::1]:443"),
            Some(Pattern::Exact("https://[::1]".into()))
        );
    }
}
