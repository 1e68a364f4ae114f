//! The configuration loader never panics: any text gives a configuration or
//! a `ConfigError` (a parse error with a message, or an invalid value naming
//! its key), through every check `Proxy::new` runs that needs no I/O:
//! `Config::parse`, `Config::validate`, the upstream URLs
//! (`Target::from_config`), the Origin allowlist, the HTTP rules, and the
//! dialect, header-policy and wire settings built from a valid file.
//! Left out (they read files or the environment): the TLS files
//! (`UpstreamTls`/`ServerTls::from_config`) and the providers' keys
//! (`Verifier::from_config`); `tests/` covers their errors.
//!
//! Input: the file's text (lossy UTF-8).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsguard::config::{Config, ConfigError, UpstreamConfig};
use wsguard::headers::HeaderPolicy;
use wsguard::protocol::Dialect;
use wsguard::proxy::WireSettings;
use wsguard::tls::UpstreamTls;
use wsguard::upstream::Target;

/// The upstream TLS settings without files (the public roots), built once.
fn tls() -> &'static UpstreamTls {
    static TLS: OnceLock<UpstreamTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let Ok(config) = toml::from_str::<UpstreamConfig>("url = \"ws://127.0.0.1:9\"") else {
            panic!("the fixed [upstream] does not parse");
        };
        match UpstreamTls::from_config(&config) {
            Ok(tls) => tls,
            Err(e) => panic!("the public roots: {e}"),
        }
    })
}

/// An error must say what is wrong, and name its key.
fn check(result: Result<(), ConfigError>) -> bool {
    match result {
        Ok(()) => true,
        Err(ConfigError::Invalid { key, problem }) => {
            assert!(
                !key.is_empty() && !problem.is_empty(),
                "{key:?}: {problem:?}"
            );
            false
        }
        Err(ConfigError::Parse(message)) => panic!("a parse error after parsing: {message}"),
        Err(e @ ConfigError::Read { .. }) => panic!("read a file: {e}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let config = match Config::parse(&text) {
        Ok(config) => config,
        Err(ConfigError::Parse(message)) => {
            assert!(!message.is_empty());
            return;
        }
        Err(e) => panic!("parse gave {e}"),
    };
    let _ = check(Target::from_config(&config.upstream, tls()).map(drop));
    let valid = check(config.validate());
    let _ = check(wsguard::origin::OriginPolicy::from_config(&config).map(drop));
    let _ = check(wsguard::http_auth::HttpRules::new(&config.http).map(drop));
    if valid {
        let _ = Dialect::new(&config.dialect, config.session.upstream_notice);
        let _ = HeaderPolicy::new(&config.upstream, &config.listener.trusted_proxies);
        let _ = WireSettings::new(&config.websocket, &config.session);
    }
});
