//! Minting JWTs for the benchmark (HS256 shared secret or ES256 PEM key).

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    Hs256,
    Es256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "hs256",
            Alg::Es256 => "es256",
        }
    }
}

/// Token options shared by all modes.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Signing algorithm of minted tokens.
    #[arg(long, value_enum, default_value = "hs256", global = true)]
    pub alg: Alg,
    /// HS256 secret given directly (prefer --secret-env).
    #[arg(long, global = true)]
    pub secret: Option<String>,
    /// Name of an environment variable holding the HS256 secret.
    #[arg(long, global = true)]
    pub secret_env: Option<String>,
    /// PKCS8 PEM file with the ES256 private key.
    #[arg(long, global = true)]
    pub es256_key: Option<std::path::PathBuf>,
    /// Token lifetime for modes that don't set exp themselves.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, global = true)]
    pub ttl: Duration,
    /// `sub` claim prefix; the connection index is appended.
    #[arg(long, default_value = "bench-user", global = true)]
    pub sub: String,
    /// Optional `iss` claim.
    #[arg(long, global = true)]
    pub iss: Option<String>,
    /// Optional `aud` claim.
    #[arg(long, global = true)]
    pub aud: Option<String>,
    /// Optional `kid` header.
    #[arg(long, global = true)]
    pub kid: Option<String>,
}

/// A ready-to-use signer.
pub struct Minter {
    key: EncodingKey,
    header: Header,
    sub: String,
    iss: Option<String>,
    aud: Option<String>,
    pub alg: Alg,
    pub ttl: Duration,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Minter {
    pub fn new(args: &TokenArgs) -> Result<Self> {
        let (key, algorithm) = match args.alg {
            Alg::Hs256 => {
                let secret = match (&args.secret, &args.secret_env) {
                    (Some(s), _) => s.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .with_context(|| format!("environment variable {var} not set"))?,
                    (None, None) => bail!("hs256 needs --secret or --secret-env"),
                };
                (
                    EncodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            Alg::Es256 => {
                let path = args
                    .es256_key
                    .as_ref()
                    .context("es256 needs --es256-key FILE")?;
                let pem =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let key = EncodingKey::from_ec_pem(&pem).context("parsing ES256 PEM key")?;
                (key, Algorithm::ES256)
            }
        };
        let mut header = Header::new(algorithm);
        header.kid = args.kid.clone();
        Ok(Self {
            key,
            header,
            sub: args.sub.clone(),
            iss: args.iss.clone(),
            aud: args.aud.clone(),
            alg: args.alg,
            ttl: args.ttl,
        })
    }

    /// Mint one token for connection `idx` expiring at unix second `exp`.
    pub fn mint(&self, idx: usize, exp: u64) -> Result<String> {
        let mut claims = json!({
            "sub": format!("{}-{idx}", self.sub),
            "iat": unix_now(),
            "exp": exp,
        });
        if let Some(iss) = &self.iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = &self.aud {
            claims["aud"] = json!(aud);
        }
        encode(&self.header, &claims, &self.key).context("signing token")
    }

    /// Mint `n` tokens expiring at `exp` (or one shared token cloned `n` times).
    pub fn mint_many(&self, n: usize, exp: u64, shared: bool) -> Result<Vec<String>> {
        if shared {
            let t = self.mint(0, exp)?;
            return Ok(vec![t; n]);
        }
        (0..n).map(|i| self.mint(i, exp)).collect()
    }

    /// Default expiry: now + ttl.
    pub fn default_exp(&self) -> u64 {
        unix_now() + self.ttl.as_secs()
    }
}
