//! The `wsguard` command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use wsguard::config::{Config, KeyConfig, LogConfig, LogFormat};
use wsguard::control::Control;
use wsguard::process::Process;
use wsguard::proxy::Proxy;

/// Authenticating WebSocket reverse proxy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (runs the proxy when no subcommand is given).
    #[command(flatten)]
    config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--config`, for the subcommands that read a configuration.
#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file of the proxy.
    #[arg(long, env = "WSGUARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run(ConfigArg),
    /// Validate a configuration file and exit.
    Check(CheckArgs),
    /// Mint an HS256 token for development and tests.
    Token(TokenArgs),
    /// Connect to a proxy as a client: authenticate, print every frame, send
    /// stdin lines, answer auth_required with a REAUTH.
    Connect(ConnectArgs),
    /// Start a built-in echo upstream and the proxy in front of it, and print how to connect.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Lifetime of the tokens the demo mints.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        token_ttl: Duration,
        /// How long before a token's `exp` the proxy sends `auth_required`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        reauth_lead: Duration,
    },
}

/// The flags of `wsguard check`.
#[derive(Args)]
struct CheckArgs {
    /// Configuration file of the proxy.
    #[command(flatten)]
    config: ConfigArg,
    /// Also fetch every provider's keys (discovery, JWKS URL) and print,
    /// per provider, the kids and algorithms found.
    #[arg(long)]
    online: bool,
}

/// The flags of `wsguard connect`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("source").args(["token", "token_cmd", "token_url"]))]
struct ConnectArgs {
    /// The proxy's WebSocket URL, for example ws://127.0.0.1:8080/chat.
    url: String,
    /// A token (cannot be refreshed, and other users may see it in `ps`:
    /// prefer --token-cmd or --token-url).
    #[arg(long)]
    token: Option<String>,
    /// A shell command printing a token; run again for every refresh.
    #[arg(long)]
    token_cmd: Option<String>,
    /// An http:// URL answering `{"token": ...}` (the demo's endpoint) or a plain-text token.
    #[arg(long)]
    token_url: Option<String>,
    /// Show tokens in the frames printed (replaced by <token> otherwise).
    #[arg(long)]
    show_token: bool,
    /// Type of the first frame (dialect.auth).
    #[arg(long, default_value = "auth")]
    auth_type: String,
    /// Type of the refresh frame (dialect.reauth).
    #[arg(long, default_value = "REAUTH")]
    reauth_type: String,
    /// Frame types answered with a refresh; repeatable (replaces the defaults).
    #[arg(long, default_values = ["auth_required", "TOKEN_EXPIRED"])]
    refresh_on: Vec<String>,
}

/// The flags of `wsguard token`.
#[derive(Args)]
struct TokenArgs {
    /// Environment variable holding the HMAC secret.
    #[arg(long)]
    secret_env: String,
    /// The `sub` claim.
    #[arg(long)]
    sub: String,
    /// Lifetime, for example `90s` or `15m` (at least 1s).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The `iss` claim (a provider with `issuer` takes only tokens naming it).
    #[arg(long)]
    iss: Option<String>,
    /// An `aud` value; repeatable (one gives a string, several an array).
    #[arg(long)]
    aud: Vec<String>,
    /// The header's `kid`.
    #[arg(long)]
    kid: Option<String>,
    /// Extra claim `key=value` (value parsed as JSON when it is JSON); repeatable.
    #[arg(long = "claim", value_parser = wsguard::token::parse_claim)]
    claims: Vec<(String, serde_json::Value)>,
}

/// mimalloc instead of the system allocator: a connection's handshake makes
/// many small short-lived allocations (HTTP heads, headers, frames), and
/// glibc's malloc took about 12 % of the proxy's CPU per handshake
/// (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the command; a failure is one line on standard error (never a
/// backtrace, whatever `RUST_BACKTRACE` says) and exit status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsguard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error: `[log] format` (text with colours only when
/// standard error is a terminal and `NO_COLOR` is not set, or one JSON
/// object per line) at `[log] level`, which `RUST_LOG` overrides.
fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(ansi).init()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Run(cli.config.clone()));
    if !matches!(command, Command::Run(_)) {
        init_logging(&LogConfig::default());
    }
    match command {
        Command::Check(args) => check(
            &config_path(args.config, &cli.config, "check")?,
            args.online,
        ),
        Command::Token(args) => token(args),
        Command::Connect(args) => connect(args),
        Command::Demo {
            listen,
            token_ttl,
            reauth_lead,
        } => {
            let options = wsguard::demo::Options {
                listen,
                token_ttl,
                reauth_lead,
            };
            runtime()?.block_on(wsguard::demo::run(options, ctrl_c()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(arg) => serve(&config_path(arg, &cli.config, "run")?),
    }
}

/// The subcommand's `--config`, else the one given before the subcommand.
fn config_path(arg: ConfigArg, top: &ConfigArg, what: &str) -> anyhow::Result<PathBuf> {
    arg.config.or_else(|| top.config.clone()).with_context(|| {
        format!("{what} needs --config FILE (or WSGUARD_CONFIG); to try wsguard without one, run `wsguard demo`")
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `wsguard check`: loads the file and every key, prints `ok`; warns when the
/// only key is the reference configuration's throwaway example key. With
/// `online`, also fetches every provider's keys and prints them.
fn check(path: &Path, online: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let proxy = Proxy::new(&config)?;
    if online && !check_online(&proxy)? {
        return Ok(ExitCode::FAILURE);
    }
    if only_example_key(&config) {
        eprintln!(
            "wsguard: warning: the only key configured is the throwaway example key \
             (config/keys/example-es256.pub.pem): no token can verify against it; \
             replace the example provider with your issuer and its key"
        );
    }
    println!("{}: ok", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `wsguard check --online`: one line per provider with fetched keys (its
/// kids and algorithms, or why they could not be loaded); false if one failed.
fn check_online(proxy: &Proxy) -> anyhow::Result<bool> {
    let fetched = runtime()?.block_on(proxy.verifier.fetch_all());
    let mut ok = true;
    for set in fetched {
        match set.keys {
            Ok(keys) => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(kid, alg)| format!("{kid:?} {alg}"))
                    .collect();
                println!("provider {:?}: {}", set.provider, keys.join(", "));
            }
            Err(e) => {
                ok = false;
                eprintln!(
                    "wsguard: provider {:?}: cannot load keys: {e}",
                    set.provider
                );
            }
        }
    }
    Ok(ok)
}

/// The public half of the reference configuration's example key, whose
/// private half was discarded.
const EXAMPLE_KEY: &str = include_str!("../config/keys/example-es256.pub.pem");

/// True when every configured key is a PEM file holding the example key.
fn only_example_key(config: &Config) -> bool {
    let is_example = |key: &KeyConfig| match key {
        KeyConfig::Rsa { pem_file, .. }
        | KeyConfig::Ec { pem_file, .. }
        | KeyConfig::Ed25519 { pem_file, .. } => {
            std::fs::read_to_string(pem_file).is_ok_and(|text| text.trim() == EXAMPLE_KEY.trim())
        }
        KeyConfig::Hmac { .. } | KeyConfig::Jwks { .. } | KeyConfig::JwksUrl { .. } => false,
    };
    let providers = &config.auth.providers;
    !providers.iter().any(|p| p.discovery) && providers.iter().flat_map(|p| &p.keys).all(is_example)
}

/// `wsguard token`: prints one token on standard output.
fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let var = &args.secret_env;
    let secret = std::env::var(var)
        .with_context(|| format!("--secret-env: environment variable {var} is not set"))?;
    let claims = wsguard::token::Claims {
        iss: args.iss,
        aud: args.aud,
        kid: args.kid,
        extra: args.claims.into_iter().collect(),
    };
    let token = wsguard::token::mint(secret.as_bytes(), &args.sub, args.ttl, &claims)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `wsguard connect`: exit status 0 after a normal close (1000), 1 otherwise.
fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    use wsguard::connect::{Options, TokenSource};
    let source = match (args.token, args.token_cmd, args.token_url) {
        (Some(token), _, _) => TokenSource::Static(token),
        (_, Some(command), _) => TokenSource::Command(command),
        (_, _, Some(url)) => TokenSource::Url(url),
        _ => TokenSource::None,
    };
    let options = Options {
        url: args.url,
        source,
        show_token: args.show_token,
        auth_type: args.auth_type,
        reauth_type: args.reauth_type,
        refresh_on: args.refresh_on,
    };
    let runtime = runtime()?;
    let ended = runtime.block_on(wsguard::connect::run(options));
    // Standard input is read on a blocking thread that may be waiting for a line.
    runtime.shutdown_background();
    let ended = ended?;
    if ended.is_normal() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "wsguard connect: closed with {} {:?}",
            ended.code, ended.reason
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Resolves `upstream.url`'s host once (an error names the key), then
/// every `upstream.resolve_interval` on the control thread.
fn resolve_upstream(proxy: &Proxy, config: &Config, control: &Control) -> anyhow::Result<()> {
    let addresses = proxy.target.addresses().clone();
    let first = addresses.clone();
    control
        .run(async move { first.resolve().await })
        .map_err(|e| anyhow::anyhow!("upstream.url: {e}"))?
        .map_err(|e| {
            anyhow::anyhow!(
                "upstream.url: cannot resolve {}: {e}",
                proxy.target.authority()
            )
        })?;
    let literal = proxy
        .target
        .authority()
        .parse::<std::net::SocketAddr>()
        .is_ok();
    let interval = config.upstream.resolve_interval;
    if !literal && !interval.is_zero() {
        control.handle().spawn(addresses.refresh_every(interval));
    }
    Ok(())
}

/// `wsguard run`: serves on `listener.worker_threads` workers until ctrl-c;
/// the control thread runs the admin listener and the background work.
fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    init_logging(&config.log);
    let proxy = Proxy::new(&config)?;
    let metrics = wsguard::metrics::install().context("cannot install the metrics recorder")?;
    // Background work (key refresh, admin listener, probes) runs there, never on a worker.
    let control = Control::start().context("cannot start the control thread")?;
    let bind = config.listener.bind;
    let workers = config
        .listener
        .worker_threads
        .unwrap_or_else(wsguard::workers::default_count);
    resolve_upstream(&proxy, &config, &control)?;
    // Owned by the process: a reload of the configuration keeps it.
    let process = std::sync::Arc::new(Process::new(workers).with_limits(&config.limits));
    proxy.verifier.start(
        control.handle(),
        process.registry.clone(),
        config.session.grace,
    );
    control
        .run(proxy.verifier.first_keys())?
        .map_err(|e| anyhow::anyhow!("auth.providers: {e}"))?;
    if let Some(tls) = &proxy.tls {
        tls.resolver
            .start(tls.watch_interval, control.handle())
            .context("listener.tls: cannot watch the certificate")?;
    }
    control
        .handle()
        .spawn(wsguard::admin::upkeep(metrics.clone()));
    // The admin listener first: a bad admin.bind never follows a "listening" line.
    start_admin(&config, &proxy, &control, metrics, process.clone())?;
    let listeners = wsguard::workers::bind(bind, workers)
        .with_context(|| format!("listener.bind: cannot bind {bind}"))?;
    let addr = listeners
        .first()
        .context("no listening socket was bound")?
        .local_addr()?;
    tracing::info!(addr = %addr, workers, tls = proxy.tls.is_some(), "wsguard listening");
    // ctrl-c is awaited on this thread and broadcast to the workers.
    wsguard::workers::serve(
        listeners,
        proxy,
        process,
        config.listener.header_read_timeout,
        workers,
        ctrl_c(),
    )?;
    drop(control);
    Ok(ExitCode::SUCCESS)
}

/// Binds the admin listener (unless `admin.bind = ""`) and serves it, and
/// the upstream probe behind `/readyz`, on the control thread.
fn start_admin(
    config: &Config,
    proxy: &std::sync::Arc<Proxy>,
    control: &Control,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    process: std::sync::Arc<Process>,
) -> anyhow::Result<()> {
    let Some(bind) = config.admin.address()? else {
        tracing::info!("admin listener off (admin.bind = \"\")");
        return Ok(());
    };
    let token = config.admin.token()?;
    let listener = std::net::TcpListener::bind(bind)
        .with_context(|| format!("admin.bind: cannot bind {bind}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let health = wsguard::admin::Health::new(config.admin.upstream_check_interval);
    let authority = proxy.target.authority().to_owned();
    control
        .handle()
        .spawn(health.clone().probe_upstream(authority));
    control
        .handle()
        .spawn(wsguard::admin::watch_keys(proxy.clone(), health.clone()));
    let admin = wsguard::admin::Admin::new(metrics, health, process, token.as_deref());
    control.handle().spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => wsguard::admin::serve(listener, std::sync::Arc::new(admin)).await,
            Err(e) => tracing::error!(error = %e, "admin listener failed"),
        }
    });
    tracing::info!(addr = %addr, "admin listening");
    Ok(())
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
