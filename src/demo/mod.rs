//! `wsguard demo`: a built-in upstream (an echo WebSocket server, a chat
//! page, a development-only token endpoint and a protected HTTP route), the
//! proxy in front of it with a fresh random key, optionally its admin
//! listener, and the command that connects to it, all in one process.

mod admin;
mod http;
pub mod page;
pub mod tokens;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::proxy::Proxy;

pub use page::PAGE_PATH;
use tokens::Minter;
pub use tokens::TOKEN_PATH;

/// The demo's configuration template.
const TEMPLATE: &str = include_str!("../../config/demo.toml");
/// The `iss` of the demo's tokens (its provider pins it).
pub const ISSUER: &str = "wsguard-demo";
/// The `sub` of a token asked for without `?sub=`.
pub const DEFAULT_SUB: &str = "alice";

/// What `wsguard demo` can be told.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Lifetime of each token the demo mints.
    pub token_ttl: Duration,
    /// `session.reauth_lead`: how long before `exp` the proxy sends `auth_required`.
    pub reauth_lead: Duration,
    /// Where the admin listener (`/metrics`, `/connections`, ...) listens; none by default.
    pub admin: Option<SocketAddr>,
}

/// Starts the built-in upstream and the proxy, prints how to connect, and serves until `shutdown`.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if options.token_ttl.as_secs() == 0 {
        anyhow::bail!("--token-ttl must be at least 1s");
    }
    let minter = Arc::new(Minter::new(random_hex(32), options.token_ttl));
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(upstream::serve(upstream, minter.clone()));

    let (config, proxy) = build_proxy(&options, upstream_addr, &minter.secret)?;
    let process = Arc::new(crate::process::Process::default());
    let admin = match options.admin {
        Some(bind) => Some(admin::start(bind, &config, &proxy, process.clone()).await?),
        None => None,
    };
    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let (token, _) = minter.mint(DEFAULT_SUB)?;
    print_banner(&banner(&options, upstream_addr, addr, admin, &token));
    crate::listener::run(
        listener,
        proxy,
        process.local(0),
        config.listener.header_read_timeout,
        shutdown,
    )
    .await;
    Ok(())
}

/// The demo's configuration and proxy; the secret's file exists only while the proxy loads it.
fn build_proxy(
    options: &Options,
    upstream: SocketAddr,
    secret: &str,
) -> anyhow::Result<(Config, Arc<Proxy>)> {
    let secret_file = std::env::temp_dir().join(format!(
        "wsguard-demo-{}-{}.secret",
        std::process::id(),
        random_hex(8)
    ));
    write_private(&secret_file, secret)?;
    let text = TEMPLATE
        .replace("@LISTEN@", &options.listen.to_string())
        .replace("@UPSTREAM@", &upstream.to_string())
        .replace("@ISSUER@", ISSUER)
        .replace(
            "@REAUTH_LEAD@",
            &humantime::format_duration(options.reauth_lead).to_string(),
        )
        .replace(
            "@SECRET_FILE@",
            &secret_file.display().to_string().replace('\\', "\\\\"),
        );
    let built = Config::parse(&text)
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let proxy = Proxy::new(&config)?;
            Ok((config, proxy))
        });
    let _ = std::fs::remove_file(&secret_file);
    built
}

/// What the demo prints at start.
fn banner(
    options: &Options,
    upstream: SocketAddr,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    token: &str,
) -> String {
    let ttl = options.token_ttl.as_secs();
    let lead = humantime::format_duration(options.reauth_lead);
    let admin = admin.map_or(String::new(), |a| {
        format!("admin: http://{a}/connections\n")
    });
    format!(
        "page: http://{addr}{PAGE_PATH} (open it in a browser: a chat that outlives its tokens)\n\
         wsguard demo\n\
         upstream: ws://{upstream} (built-in echo server, chat page, token endpoint)\n\
         proxy: ws://{addr}/chat\n\
         {admin}\
         token endpoint: http://{addr}{TOKEN_PATH}?sub={DEFAULT_SUB} (development only: anyone who reaches it gets a token)\n\
         token: {token}\n\
         (tokens are for sub \"{DEFAULT_SUB}\" unless ?sub= says otherwise, and last {ttl}s; auth_required comes {lead} before exp)\n\
         connect: {} connect ws://{addr}/chat --token-url http://{addr}{TOKEN_PATH}\n\
         (it re-authenticates on the same socket each time auth_required comes; type lines to have them echoed, ctrl-D to close)\n\
         protected route: http://{addr}{} (401 without a token; try it from the page)\n\
         refresh switch: http://{addr}{} (POST ?refresh_fails=true makes refreshes fail until a sign-in)\n",
        self_command(),
        upstream::WHOAMI_PATH,
        tokens::SWITCH_PATH,
    )
}

/// How to run this same binary again: its path, quoted for a shell when needed.
fn self_command() -> String {
    let path = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "wsguard".to_owned());
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:".contains(c))
    {
        path
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// Writes the banner; a closed standard output (a reader that went away) must not stop the demo.
fn print_banner(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `bytes` random bytes from the OS-seeded CSPRNG (`rand::rng()`), in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
