//! `mimi-gateway`: serve verified discovery lookups over HTTP.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use mimi_gateway::access::Policy;
use mimi_gateway::api::{router, Gateway, Readiness, Settings};
use mimi_gateway::cache::{Cache, CachePolicy};
use mimi_gateway::keys::KeyStore;
use mimi_gateway::limit::{Limiter, Rate};
use mimi_gateway::metrics::Metrics;
use mimi_gateway::watch::watch;
use mimi_publisher::serve::encrypted::certs::{CertPaths, CertStore};
use mimi_resolver::args::ResolverArgs;
use mimi_resolver::Resolver;

#[derive(Parser)]
#[command(
    name = "mimi-gateway",
    version,
    about = "HTTP discovery gateway: verified SII → SSI lookups as JSON (mimi-dns)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the JSON API (/v1/lookup), the lookup page (/), /healthz,
    /// /readyz and /metrics.
    Serve(Box<ServeArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8053")]
    listen: SocketAddr,
    /// The most SIIs in one POST /v1/lookup (more: 413).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_batch: u32,
    /// The largest request body in octets (larger: 413).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(64..=(64 << 20)))]
    max_body: u32,
    /// The longest a lookup request may take (then 504), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// The longest an answer is cached, whatever its DNS TTL.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    cache_max_ttl: Duration,
    /// How long a not-found answer (no TTL) is cached.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    negative_ttl: Duration,
    /// The most answers cached (least recently used evicted); 0: no cache.
    #[arg(long, default_value_t = 10_000)]
    cache_entries: usize,
    /// Lookups a second per client (API key, or IP for keyless clients);
    /// a key's own rate= in the keys file takes precedence.
    #[arg(long, default_value = "20")]
    rate: String,
    /// Lookups a client may make at once (a batch of N costs N).
    #[arg(long, default_value = "1000")]
    burst: String,
    /// The most clients whose token buckets are kept (least recently
    /// used evicted).
    #[arg(long, default_value_t = 100_000)]
    max_clients: usize,
    /// Connections served at once (more wait to be accepted).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Lookups in flight at once across all requests.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// API keys file (`name:key [rate=N burst=N]` a line; mode 0600);
    /// reloaded when it changes. Without it only loopback clients are
    /// served, unless --allow-anonymous.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// Serve keyless clients from any address (each IP its own bucket).
    #[arg(long)]
    allow_anonymous: bool,
    /// TLS certificate chain (PEM): serve HTTPS; reloaded when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, mode 0600).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Name the SIIs looked up in the request log. For debugging only:
    /// the log then holds who looked up whom.
    #[arg(long)]
    log_siis: bool,
    #[command(flatten)]
    resolver: ResolverArgs,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    init_logs(args.log_format);
    if let Err(e) = run(*args).await {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let default_rate = Rate::parse(&args.rate, &args.burst).context("--rate/--burst")?;
    let Some(max_clients) = NonZeroUsize::new(args.max_clients) else {
        bail!("--max-clients must be at least 1");
    };
    if args.max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    if args.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    let parsed = args.resolver.parse().map_err(anyhow::Error::msg)?;
    let resolver = Resolver::new(parsed.options)?;
    let keys = match &args.api_keys {
        Some(path) => Some(KeyStore::open(path.clone()).context("--api-keys")?),
        None => None,
    };
    let metrics = Metrics::new();
    if let Some(k) = &keys {
        metrics.api_keys.set(k.current().len() as i64);
    }
    let gateway = Arc::new(Gateway {
        resolver,
        region: parsed.region,
        cache: Cache::new(
            args.cache_entries,
            CachePolicy {
                max_ttl: args.cache_max_ttl,
                negative_ttl: args.negative_ttl,
            },
        ),
        limiter: Limiter::new(max_clients),
        policy: Policy {
            allow_anonymous: args.allow_anonymous,
            default_rate,
        },
        keys: keys.clone(),
        metrics,
        settings: Settings {
            max_batch: args.max_batch as usize,
            max_body: args.max_body as usize,
            request_timeout: args.request_timeout,
            log_siis: args.log_siis,
        },
        in_flight: tokio::sync::Semaphore::new(args.max_in_flight),
        ready: Readiness::default(),
    });
    let _keys_watch = match &keys {
        Some(store) => {
            let s = store.clone();
            let g = gateway.clone();
            let w = watch(&[store.path()], move || match s.reload() {
                Ok(n) => {
                    g.metrics.api_keys.set(n as i64);
                    tracing::info!(file = %s.path().display(), keys = n, "API keys reloaded");
                }
                Err(e) => tracing::error!(
                    "{e}; keeping the {} API keys in service until the file changes again",
                    s.current().len()
                ),
            })
            .with_context(|| format!("cannot watch {}", store.path().display()))?;
            Some(w)
        }
        None => {
            if !args.allow_anonymous {
                tracing::info!(
                    "no --api-keys: answering keyless lookups from loopback addresses only"
                );
            }
            None
        }
    };
    let (tls, _cert_watch) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let store = CertStore::open(CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            })?;
            let s = store.clone();
            let w = watch(&[cert, key], move || s.reload())
                .with_context(|| format!("cannot watch {}", cert.display()))?;
            (Some(mimi_gateway::serve::tls_config(store)), Some(w))
        }
        _ => (None, None),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = tls.is_some(),
        "serving"
    );
    let app = router(gateway);
    tokio::select! {
        () = mimi_gateway::serve::serve(listener, app, tls, args.max_connections) => {}
        _ = shutdown() => tracing::info!("stopping"),
    }
    Ok(())
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
