//! Legacy auth methods: a token taken from the upgrade request itself
//! (`Authorization: Bearer`, a named cookie, a query parameter), in that
//! order of precedence, for clients that predate first-message auth; and
//! the one place where their use is counted ([`DEPRECATED_AUTH`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;

use crate::config::LegacyAuthConfig;

/// A legacy way of presenting a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `Authorization: Bearer <JWT>`.
    Header,
    /// The cookie named by `auth.legacy.cookie`.
    Cookie,
    /// The query parameter named by `auth.legacy.query`.
    Query,
}

impl Method {
    /// Every method, in order of precedence.
    pub const ALL: [Method; 3] = [Method::Header, Method::Cookie, Method::Query];

    /// The method's name: the `method` label of
    /// `wsguard_deprecated_auth_total` and the `method` field of log lines.
    pub fn label(self) -> &'static str {
        match self {
            Method::Header => "header",
            Method::Cookie => "cookie",
            Method::Query => "query",
        }
    }

    /// Its place in [`Method::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Per-method use counters (a token presented by that method, valid or
/// not), process-wide; each use is also counted in the metric
/// `wsguard_deprecated_auth_total{method}` ([`crate::metrics::deprecated_auth`]).
#[derive(Debug)]
pub struct DeprecatedAuth {
    /// Uses per method, indexed like [`Method::ALL`].
    uses: [AtomicU64; 3],
    /// Whether the once-per-process deprecation warning was logged.
    warned: [AtomicBool; 3],
}

/// The process's counters of legacy auth use.
pub static DEPRECATED_AUTH: DeprecatedAuth = DeprecatedAuth {
    uses: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    warned: [
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ],
};

impl DeprecatedAuth {
    /// How many times a token was presented by `method`.
    pub fn count(&self, method: Method) -> u64 {
        self.uses[method.index()].load(Ordering::Relaxed)
    }

    /// Counts one use; the first use of each method in the process is
    /// logged at `warn`.
    pub fn record(&self, method: Method) {
        let i = method.index();
        self.uses[i].fetch_add(1, Ordering::Relaxed);
        crate::metrics::deprecated_auth(method);
        if !self.warned[i].swap(true, Ordering::Relaxed) {
            tracing::warn!(
                method = method.label(),
                "deprecated auth method in use (token in the upgrade request); clients should move to first-message auth (logged once per method)"
            );
        }
    }
}

/// The legacy methods switched on, built once from `[auth.legacy]`.
#[derive(Debug, Clone, Default)]
pub struct LegacyAuth {
    /// `Authorization: Bearer` on the upgrade.
    header: bool,
    /// The auth cookie's name.
    cookie: Option<String>,
    /// The token query parameter's name, lower-case.
    query: Option<String>,
    /// Answer an invalid token with HTTP 401 instead of a 1008 close.
    pub reject_with_http: bool,
}

/// The `Authorization: Bearer` token of a request (the scheme
/// case-insensitive), if its one `Authorization` header is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut lines = headers.get_all(AUTHORIZATION).into_iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let text = line.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of the first cookie named `name` in the `Cookie` header(s)
/// (RFC 6265 §5.4; surrounding double quotes removed).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .into_iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

impl LegacyAuth {
    /// The methods of `[auth.legacy]`.
    pub fn new(config: &LegacyAuthConfig) -> LegacyAuth {
        LegacyAuth {
            header: config.header,
            cookie: config.cookie.clone(),
            query: config.query.as_ref().map(|q| q.to_lowercase()),
            reject_with_http: config.reject_with_http,
        }
    }

    /// The auth cookie's name, when cookie auth is on.
    pub fn cookie_name(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// The token of the first method that is on and present in the
    /// request, header before cookie before query; its use is counted.
    pub fn find(&self, headers: &HeaderMap, path_and_query: &str) -> Option<(Method, String)> {
        let found = self.find_uncounted(headers, path_and_query);
        if let Some((method, _)) = &found {
            DEPRECATED_AUTH.record(*method);
        }
        found
    }

    fn find_uncounted(
        &self,
        headers: &HeaderMap,
        path_and_query: &str,
    ) -> Option<(Method, String)> {
        if self.header {
            if let Some(t) = bearer(headers) {
                return Some((Method::Header, t.to_owned()));
            }
        }
        if let Some(name) = &self.cookie {
            if let Some(t) = cookie(headers, name) {
                return Some((Method::Cookie, t.to_owned()));
            }
        }
        let name = self.query.as_deref()?;
        let (_, query) = path_and_query.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = crate::upstream::decode_query_name(raw_name)?;
            (decoded.to_lowercase() == name).then(|| {
                let value = crate::upstream::decode_query_name(raw_value).unwrap_or_default();
                (Method::Query, value)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn legacy() -> LegacyAuth {
        LegacyAuth::new(&LegacyAuthConfig {
            header: true,
            cookie: Some("sid".into()),
            query: Some("token".into()),
            reject_with_http: false,
        })
    }

    #[test]
    fn precedence_and_parsing() {
        let l = legacy();
        let mut h = HeaderMap::new();
        assert_eq!(
            l.find_uncounted(&h, "/c?a=1&%74oken=q%2Bx"),
            Some((Method::Query, "q+x".into()))
        );
        h.insert(COOKIE, HeaderValue::from_static("a=1; sid=\"c1\"; b=2"));
        assert_eq!(
            l.find_uncounted(&h, "/c?token=q"),
            Some((Method::Cookie, "c1".into()))
        );
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            l.find_uncounted(&h, "/"),
            Some((Method::Cookie, "c1".into()))
        );
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer h1"));
        assert_eq!(
            l.find_uncounted(&h, "/"),
            Some((Method::Header, "h1".into()))
        );
        assert_eq!(LegacyAuth::default().find_uncounted(&h, "/?token=x"), None);
    }
}
