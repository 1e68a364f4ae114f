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
    Run(RunArgs),
    /// Validate a configuration file and exit.
    Check(CheckArgs),
    /// Mint an HS256 token for development and tests.
    Token(TokenArgs),
    /// Connect to a proxy as a client: authenticate, print every frame, send
    /// stdin lines, answer auth_required with a REAUTH.
    Connect(ConnectArgs),
    /// Start a built-in echo upstream (with a chat page) and the proxy in front of it, and print how to connect.
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
        /// Also serve the admin endpoints (`/metrics`, `/connections`, ...) here, without a token.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Revoke tokens on a running proxy (its admin API): by --sub (with
    /// --iss), --jti or --sid; prints how many live connections it closed.
    Revoke(RevokeArgs),
    /// Add the wsguard sidecar to Kubernetes YAML (stdin or -f) and print it.
    Inject(InjectArgs),
}

/// The flags of `wsguard revoke`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").args(["sub", "jti", "sid"]).required(true))]
struct RevokeArgs {
    /// Revoke a subject's tokens issued until now.
    #[arg(long)]
    sub: Option<String>,
    /// The subject's issuer (needed when several providers are configured).
    #[arg(long, requires = "sub")]
    iss: Option<String>,
    /// Revoke the token with this `jti`.
    #[arg(long)]
    jti: Option<String>,
    /// Revoke the tokens of this session id (`revocation.sid_claim`).
    #[arg(long)]
    sid: Option<String>,
    /// How long it applies, for example `1h` (default: revocation.default_ttl).
    #[arg(long, conflicts_with = "until")]
    ttl: Option<String>,
    /// When it stops applying (RFC 3339, e.g. 2026-12-01T12:00:00Z).
    #[arg(long)]
    until: Option<String>,
    /// The admin listener's URL.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// Environment variable holding the admin token.
    #[arg(long, default_value = "WSGUARD_ADMIN_TOKEN")]
    token_env: String,
    /// Lift the revocation instead (DELETE /revoke).
    #[arg(long)]
    lift: bool,
}

/// The flags of `wsguard run`.
#[derive(Args, Clone)]
struct RunArgs {
    /// Configuration file of the proxy.
    #[command(flatten)]
    config: ConfigArg,
    /// Overrides `listener.bind` (one ConfigMap, many workloads).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Overrides `upstream.url` (one ConfigMap, many workloads).
    #[arg(long)]
    upstream_url: Option<String>,
}

/// The flags of `wsguard inject`.
#[derive(Args)]
struct InjectArgs {
    /// Kubernetes YAML to read (one or many documents); `-` or absent: stdin.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    file: PathBuf,
    /// The ConfigMap holding wsguard.toml (annotation wsguard.io/config-map).
    #[arg(long, default_value = "wsguard")]
    config_map: String,
    /// The Secret whose keys become the sidecar's environment (wsguard.io/secret).
    #[arg(long, default_value = "wsguard")]
    secret: String,
    /// The app's container port, number or name (wsguard.io/app-port);
    /// default: the first TCP port of the first container declaring one.
    #[arg(long)]
    app_port: Option<String>,
    /// wsguard's port (wsguard.io/proxy-port); default: the first of
    /// 8080..=8099 the pod leaves free.
    #[arg(long)]
    proxy_port: Option<u16>,
    /// wsguard's admin port: the port of admin.bind in the ConfigMap.
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// The sidecar's image (wsguard.io/image).
    #[arg(long, default_value = concat!("wsguard:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Inject only pod templates annotated wsguard.io/inject: "enabled".
    #[arg(long)]
    annotated_only: bool,
    /// Exit 0 even when documents were left out (they are still reported).
    #[arg(long)]
    skip_errors: bool,
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
/// Returns how to change the level later (a reload), unless `RUST_LOG` set it.
fn init_logging(log: &LogConfig) -> Option<wsguard::reload::SetLevel> {
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env
        .or_else(|| tracing_subscriber::EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let set: wsguard::reload::SetLevel = match log.format {
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            std::sync::Arc::new(move |level: &str| {
                let filter =
                    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            })
        }
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let builder = builder.with_ansi(ansi).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            std::sync::Arc::new(move |level: &str| {
                let filter =
                    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            })
        }
    };
    (!fixed).then_some(set)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Run(RunArgs {
        config: cli.config.clone(),
        listen: None,
        upstream_url: None,
    }));
    if !matches!(command, Command::Run(_)) {
        drop(init_logging(&LogConfig::default()));
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
            admin,
        } => {
            let options = wsguard::demo::Options {
                listen,
                token_ttl,
                reauth_lead,
                admin,
            };
            runtime()?.block_on(wsguard::demo::run(options, ctrl_c()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let path = config_path(args.config.clone(), &cli.config, "run")?;
            serve(&path, &args)
        }
        Command::Revoke(args) => revoke(args),
        Command::Inject(args) => inject(args),
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

/// `wsguard inject`: the YAML on standard output, warnings and the
/// documents left out on standard error; exit 1 if any was left out
/// (unless `--skip-errors`).
fn inject(args: InjectArgs) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let input = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("-f -: cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("-f {}: cannot read", args.file.display()))?
    };
    let options = wsguard::inject::Options {
        config_map: args.config_map,
        secret: args.secret,
        image: args.image,
        app_port: args.app_port,
        proxy_port: args.proxy_port,
        admin_port: args.admin_port,
        annotated_only: args.annotated_only,
    };
    let report = wsguard::inject::inject(&input, &options);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(report.output.as_bytes())
            .and_then(|()| out.flush())
            .context("cannot write standard output")?;
    }
    for warning in &report.warnings {
        eprintln!("wsguard inject: warning: {warning}");
    }
    for error in &report.errors {
        eprintln!("wsguard inject: left out: {error}");
    }
    if report.errors.is_empty() || args.skip_errors {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Resolves `upstream.url`'s host once (an error names the key), then
/// every `upstream.resolve_interval` on the control thread.
fn resolve_upstream(proxy: &Proxy, config: &Config, control: &Control) -> anyhow::Result<()> {
    let addresses = proxy.target.addresses().clone();
    let interval = config.upstream.resolve_interval;
    control
        .run(async move { addresses.start(interval).await })
        .map_err(|e| anyhow::anyhow!("upstream.url: {e}"))?
        .map_err(|e| {
            anyhow::anyhow!(
                "upstream.url: cannot resolve {}: {e}",
                proxy.target.authority()
            )
        })
}

/// `wsguard run`: serves on `listener.worker_threads` workers until a
/// drain (SIGTERM, SIGINT, `POST /drain`) is over; the control thread runs
/// the admin listener, the drain and the background work.
fn serve(path: &Path, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(path)?;
    // Before validation: `Proxy::new` checks the overridden values (and a
    // reload applies them again to the file it reads).
    let overrides = wsguard::config::Overrides {
        listen: args.listen,
        upstream_url: args.upstream_url.clone(),
    };
    overrides.apply(&mut config);
    let set_level = init_logging(&config.log);
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
    let mut process = Process::new(workers);
    process.revocations = std::sync::Arc::new(wsguard::revocation::Revocations::new(
        &config.revocation,
        config.auth.providers.len(),
    ));
    let process = std::sync::Arc::new(process.with_limits(&config.limits));
    process.proxy.swap(proxy.clone());
    start_revocation_link(&config, &process, &control)?;
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
    let health = wsguard::admin::Health::new(config.admin.upstream_check_interval);
    let drain = wsguard::drain::Drain::new(process.clone(), health.clone(), config.drain.clone());
    // From here on SIGTERM and SIGINT drain (on the control thread).
    let leave = wsguard::signals::Leave::install(control.handle())
        .context("cannot install the SIGTERM/SIGINT handlers")?;
    control.handle().spawn(leave.run(drain.clone()));
    // SIGHUP and `POST /reload` reload the configuration (on the control thread).
    let reloader = wsguard::reload::Reloader::new(path.to_owned(), process.clone(), config.clone())
        .with_log_level(set_level)
        .with_overrides(overrides);
    let hangup = wsguard::signals::Hangup::install(control.handle())
        .context("cannot install the SIGHUP handler")?;
    control.handle().spawn(hangup.run(reloader.clone()));
    // The admin listener first: a bad admin.bind never follows a "listening" line.
    start_admin(
        &config,
        &proxy,
        &control,
        metrics,
        process.clone(),
        (health, &drain, reloader),
    )?;
    let listeners = wsguard::workers::bind(bind, workers)
        .with_context(|| format!("listener.bind: cannot bind {bind}"))?;
    let addr = listeners
        .first()
        .context("no listening socket was bound")?
        .local_addr()?;
    tracing::info!(addr = %addr, workers, tls = proxy.tls.is_some(), "wsguard listening");
    // The end of the drain is awaited on this thread and broadcast to the workers.
    let drained = drain.clone();
    wsguard::workers::serve(
        listeners,
        proxy,
        process,
        config.listener.header_read_timeout,
        workers,
        async move { drained.finished().await },
    )?;
    // The answers of `GET /drain?wait=true` are written before the exit.
    control.run(async move { drain.answered().await })?;
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
    (health, drain, reloader): (
        std::sync::Arc<wsguard::admin::Health>,
        &std::sync::Arc<wsguard::drain::Drain>,
        std::sync::Arc<wsguard::reload::Reloader>,
    ),
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
    let authority = proxy.target.authority().to_owned();
    control
        .handle()
        .spawn(health.clone().probe_upstream(authority));
    control.handle().spawn(wsguard::admin::watch_keys(
        proxy.clone(),
        health.clone(),
        process.clone(),
    ));
    let admin = wsguard::admin::Admin::new(metrics, health, process, token.as_deref())
        .with_drain(drain.clone(), config.admin.drain_without_token)
        .with_reload(reloader);
    control.handle().spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => wsguard::admin::serve(listener, std::sync::Arc::new(admin)).await,
            Err(e) => tracing::error!(error = %e, "admin listener failed"),
        }
    });
    tracing::info!(addr = %addr, "admin listening");
    Ok(())
}

/// With `revocation.redis_url`, the Redis link on the control thread.
fn start_revocation_link(
    config: &Config,
    process: &std::sync::Arc<Process>,
    control: &Control,
) -> anyhow::Result<()> {
    let r = &config.revocation;
    let Some(url) = r.redis()? else {
        return Ok(());
    };
    let link = wsguard::revocation::redis::Link::new(
        &url,
        r,
        process.revocations.clone(),
        process.registry.clone(),
    )
    .map_err(|_| anyhow::anyhow!("revocation.redis_url: not a usable Redis URL"))?;
    link.start(r.redis_queue, control.handle());
    Ok(())
}

/// `wsguard revoke`: one line on success, the server's error otherwise.
fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let mut body = serde_json::Map::new();
    let fields = [
        ("sub", args.sub),
        ("iss", args.iss),
        ("jti", args.jti),
        ("sid", args.sid),
        ("ttl", args.ttl.filter(|_| !args.lift)),
        ("until", args.until.filter(|_| !args.lift)),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            body.insert(name.into(), v.into());
        }
    }
    let options = wsguard::revoke::Options {
        admin: args.admin,
        token: std::env::var(&args.token_env)
            .ok()
            .filter(|t| !t.is_empty()),
        body,
        lift: args.lift,
    };
    let line = runtime()?.block_on(wsguard::revoke::run(options))?;
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
