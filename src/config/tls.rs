//! `[listener.tls]` and the TLS keys of `[upstream]` (`ca_file`,
//! `client_cert_file`, `client_key_file`). The files themselves are read,
//! and their errors named by key, in [`crate::tls`].

use super::*;

/// Default time a TLS handshake may take (not counted against `session.auth_timeout`).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default interval at which the certificate and key files are checked for changes.
pub const DEFAULT_TLS_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether clients must present a certificate signed by `client_ca_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A client without a valid certificate fails the handshake.
    Required,
    /// A client may present none; one that presents an invalid one fails.
    Optional,
}

/// `[listener.tls]`: TLS on the listening socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates must chain to (mTLS); absent = no client certificates.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `required` or `optional`, with `client_ca_file` (default `required`).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// Time a TLS handshake may take.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How often the certificate and key files are checked for changes
    /// (a change is applied once two checks in a row see the same files).
    #[serde(default = "default_watch_interval", with = "humantime_serde")]
    pub watch_interval: Duration,
}

fn default_handshake_timeout() -> Duration {
    DEFAULT_TLS_HANDSHAKE_TIMEOUT
}

fn default_watch_interval() -> Duration {
    DEFAULT_TLS_WATCH_INTERVAL
}

/// A relative path made relative to `base`.
fn rebase(path: &mut PathBuf, base: &Path) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl Config {
    /// TLS file paths relative to the configuration file's folder.
    pub(super) fn resolve_tls_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.listener.tls {
            rebase(&mut tls.cert_file, base);
            rebase(&mut tls.key_file, base);
            if let Some(p) = &mut tls.client_ca_file {
                rebase(p, base);
            }
        }
        let u = &mut self.upstream;
        for path in [
            &mut u.ca_file,
            &mut u.client_cert_file,
            &mut u.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            rebase(path, base);
        }
    }

    /// `[listener.tls]` and the upstream's client certificate keys.
    pub(super) fn check_tls(&self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.listener.tls {
            require(
                tls.client_auth.is_none() || tls.client_ca_file.is_some(),
                "listener.tls.client_auth",
                "needs listener.tls.client_ca_file",
            )?;
            for (key, value) in [
                ("listener.tls.handshake_timeout", tls.handshake_timeout),
                ("listener.tls.watch_interval", tls.watch_interval),
            ] {
                require(!value.is_zero(), key, "must be more than 0s")?;
                require(value <= MAX_DURATION, key, "must be at most ten years")?;
            }
        }
        let u = &self.upstream;
        require(
            u.client_cert_file.is_some() == u.client_key_file.is_some(),
            if u.client_cert_file.is_some() {
                "upstream.client_key_file"
            } else {
                "upstream.client_cert_file"
            },
            "upstream.client_cert_file and upstream.client_key_file go together",
        )
    }
}
