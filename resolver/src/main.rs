//! `mimi-resolve`: look up verified SSIs for an email address or telephone
//! number (a thin shell over the `mimi_resolver` library).
//!
//! Exit codes of `lookup`: 0 verified, 1 not found, 2 bad input or
//! configuration, 3 DNS failure, 4 records found but none verified. `batch`
//! exits 0 when every input line was processed (each line's outcome is in
//! its JSON) and 2 for bad configuration or unreadable input.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mimi_proto::{DomainName, Region, Sii, UnixTime};
use mimi_resolver::output::{
    bad_input_json, batch_line_json, dns_error_json, dns_error_text, exit_code, names_json,
    resolution_json, resolution_text,
};
use mimi_resolver::{
    discovery_names, LookupError, NameServers, Outcome, Resolver, ResolverOptions, TrustStore,
};

#[derive(Parser)]
#[command(
    name = "mimi-resolve",
    version,
    about = "Resolve an email address or telephone number to verified messaging identifiers (mimi-dns)"
)]
struct Cli {
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the canonical SII, its label and every discovery name.
    Name(NameArgs),
    /// Query DNS and print the verified SSIs.
    Lookup(LookupArgs),
    /// Resolve many SIIs (one per line, from a file or stdin) concurrently; one JSON line per input line, in order.
    Batch(BatchArgs),
}

#[derive(Args)]
struct BatchArgs {
    /// File with one SII per line (`-` or absent: standard input); blank lines and `#` comments are skipped.
    input: Option<PathBuf>,
    /// Trust store (TOML, SPEC §7).
    #[arg(long, value_name = "FILE")]
    trust: PathBuf,
    /// DNS server to ask, IP:PORT or IP for port 53 (repeatable); default: the system's resolvers.
    #[arg(long = "server", value_name = "IP:PORT", value_parser = parse_server)]
    servers: Vec<SocketAddr>,
    /// Distribution zone (repeatable).
    #[arg(long = "zone", value_name = "ZONE", value_parser = parse_zone)]
    zones: Vec<DomainName>,
    /// Telephone root zone (repeatable).
    #[arg(long = "tel-root", value_name = "ZONE", value_parser = parse_zone)]
    tel_roots: Vec<DomainName>,
    /// Default region for national telephone numbers.
    #[arg(long, value_name = "CC")]
    region: Option<String>,
    /// Do not query the SIIs' home zones.
    #[arg(long)]
    no_home: bool,
    /// Lookups in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Judge validity at this Unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Timeout of one DNS request (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct SiiArgs {
    /// Email address or telephone number (mailto:, tel:, +CC… or national with --region).
    sii: String,
    /// Default region for national telephone numbers (ISO 3166 code, e.g. IT).
    #[arg(long, value_name = "CC")]
    region: Option<String>,
    /// Telephone root zone (repeatable); telephone numbers have no home zone without one.
    #[arg(long = "tel-root", value_name = "ZONE", value_parser = parse_zone)]
    tel_roots: Vec<DomainName>,
    /// Distribution zone (repeatable).
    #[arg(long = "zone", value_name = "ZONE", value_parser = parse_zone)]
    zones: Vec<DomainName>,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct NameArgs {
    #[command(flatten)]
    sii: SiiArgs,
}

#[derive(Args)]
struct LookupArgs {
    #[command(flatten)]
    sii: SiiArgs,
    /// Trust store (TOML, SPEC §7).
    #[arg(long, value_name = "FILE")]
    trust: PathBuf,
    /// DNS server to ask, IP:PORT or IP for port 53 (repeatable); default: the system's resolvers.
    #[arg(long = "server", value_name = "IP:PORT", value_parser = parse_server)]
    servers: Vec<SocketAddr>,
    /// Do not query the SII's home zone.
    #[arg(long)]
    no_home: bool,
    /// Also look up SRV endpoints of verified SSIs.
    #[arg(long)]
    endpoints: bool,
    /// Judge validity at this Unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Timeout of one DNS request (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn parse_zone(s: &str) -> Result<DomainName, String> {
    DomainName::parse(s).map_err(|e| e.to_string())
}

fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP:PORT, [IPv6]:PORT or an IP address"))
}

/// Bad input or configuration: message already formatted.
struct Usage(String);

fn canonical(args: &SiiArgs) -> Result<Sii, Usage> {
    let region = args
        .region
        .as_deref()
        .map(|r| r.parse::<Region>())
        .transpose()
        .map_err(|e| Usage(format!("--region: {e}")))?;
    Sii::parse(&args.sii, region).map_err(|e| Usage(format!("{:?}: {e}", args.sii)))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Name(a) => name(a),
        Command::Lookup(a) => lookup(a),
        Command::Batch(a) => batch(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn name(args: NameArgs) -> Result<u8, Usage> {
    let a = args.sii;
    let sii = canonical(&a)?;
    let label = sii.label();
    let names = discovery_names(&sii, true, &a.tel_roots, &a.zones);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&names_json(&sii, &label, &names)).expect("JSON")
        );
    } else {
        println!("canonical: {sii}");
        println!("label:     {label}");
        for n in &names {
            println!("name:      {}", n.fqdn());
        }
        if names.is_empty() {
            println!("(no discovery names: a telephone number needs --tel-root or --zone)");
        }
    }
    Ok(0)
}

/// Resolver options from the flags `lookup` and `batch` share.
fn options(
    trust: &std::path::Path,
    zones: &[DomainName],
    tel_roots: &[DomainName],
    no_home: bool,
    timeout: Duration,
    servers: &[SocketAddr],
) -> Result<ResolverOptions, Usage> {
    let trust = TrustStore::load(trust).map_err(|e| Usage(e.to_string()))?;
    let mut options = ResolverOptions::new(trust);
    options.distribution_zones = zones.to_vec();
    options.tel_roots = tel_roots.to_vec();
    options.home_lookup = !no_home;
    options.timeout = timeout;
    if !servers.is_empty() {
        options.name_servers = NameServers::Explicit(servers.to_vec());
    }
    Ok(options)
}

fn batch(args: BatchArgs) -> Result<u8, Usage> {
    use futures::StreamExt;
    use std::io::{BufRead, Write};
    let region = args
        .region
        .as_deref()
        .map(|r| r.parse::<Region>())
        .transpose()
        .map_err(|e| Usage(format!("--region: {e}")))?;
    let opts = options(
        &args.trust,
        &args.zones,
        &args.tel_roots,
        args.no_home,
        args.timeout,
        &args.servers,
    )?;
    let reader: Box<dyn BufRead> = match args.input.as_deref() {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| Usage(format!("{}: {e}", p.display())))?,
        )),
    };
    let lines: Vec<String> = reader
        .lines()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Usage(format!("reading input: {e}")))?
        .into_iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let now = args.now.map(UnixTime).unwrap_or_else(UnixTime::now);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let resolver = Resolver::new(opts).map_err(|e| Usage(e.to_string()))?;
        let resolver = &resolver;
        let out = std::io::stdout();
        let mut out = std::io::BufWriter::new(out.lock());
        let mut results = futures::stream::iter(lines.iter())
            .map(|input| async move {
                let sii = match Sii::parse(input, region) {
                    Ok(sii) => sii,
                    Err(e) => return bad_input_json(input, None, &e.to_string()),
                };
                match resolver.lookup_at(&sii, now).await {
                    Ok(res) => batch_line_json(input, resolution_json(&res, false)),
                    Err(LookupError::Dns(errors)) => {
                        batch_line_json(input, dns_error_json(&sii, &errors))
                    }
                    Err(LookupError::Config(e)) => {
                        bad_input_json(input, Some(&sii), &e.to_string())
                    }
                }
            })
            .buffered(args.concurrency.max(1));
        while let Some(v) = results.next().await {
            writeln!(out, "{v}").map_err(|e| Usage(format!("writing output: {e}")))?;
        }
        out.flush()
            .map_err(|e| Usage(format!("writing output: {e}")))?;
        Ok::<_, Usage>(())
    })?;
    Ok(0)
}

fn lookup(args: LookupArgs) -> Result<u8, Usage> {
    let sii = canonical(&args.sii)?;
    let mut options = options(
        &args.trust,
        &args.sii.zones,
        &args.sii.tel_roots,
        args.no_home,
        args.timeout,
        &args.servers,
    )?;
    options.endpoints = args.endpoints;
    let now = args.now.map(UnixTime).unwrap_or_else(UnixTime::now);
    let json = args.sii.json;
    let endpoints = args.endpoints;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Usage(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async move {
        let resolver = Resolver::new(options).map_err(|e| Usage(e.to_string()))?;
        Ok::<_, Usage>(resolver.lookup_at(&sii, now).await.map_err(|e| (sii, e)))
    })?;

    match result {
        Ok(res) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&resolution_json(&res, endpoints)).expect("JSON")
                );
            } else {
                print!("{}", resolution_text(&res));
            }
            Ok(exit_code(res.outcome()) as u8)
        }
        Err((sii, LookupError::Dns(errors))) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&dns_error_json(&sii, &errors)).expect("JSON")
                );
            } else {
                print!("{}", dns_error_text(&sii, &errors));
            }
            Ok(exit_code(Outcome::DnsError) as u8)
        }
        Err((_, LookupError::Config(e))) => Err(Usage(e.to_string())),
    }
}
