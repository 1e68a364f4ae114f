//! Values from `wsguard run`'s command line that replace keys of the file:
//! `--listen` (`listener.bind`) and `--upstream-url` (`upstream.url`), so
//! that one ConfigMap serves many sidecars. Applied to every configuration
//! loaded from the file, before `Proxy::new` validates it.

use super::*;

/// `wsguard run --listen / --upstream-url`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `listener.bind`.
    pub listen: Option<SocketAddr>,
    /// Replaces `upstream.url` (validated as it is).
    pub upstream_url: Option<String>,
}

impl Overrides {
    /// Sets the overridden keys of `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listener.bind = listen;
        }
        if let Some(url) = &self.upstream_url {
            config.upstream.url = url.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_given_keys_change() {
        let text = "[upstream]\nurl = \"ws://127.0.0.1:9000\"\n[[auth.providers]]\nname = \"t\"\n\
                    algorithms = [\"HS256\"]\n[[auth.providers.keys]]\nkind = \"hmac\"\nsecret_env = \"S\"\n";
        let mut config = Config::parse(text).expect("parses");
        let before = config.listener.bind;
        Overrides::default().apply(&mut config);
        assert_eq!(config.listener.bind, before);
        assert_eq!(config.upstream.url, "ws://127.0.0.1:9000");
        let overrides = Overrides {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8081))),
            upstream_url: Some("ws://127.0.0.1:7000".to_owned()),
        };
        overrides.apply(&mut config);
        assert_eq!(config.listener.bind.to_string(), "0.0.0.0:8081");
        assert_eq!(config.upstream.url, "ws://127.0.0.1:7000");
    }
}
