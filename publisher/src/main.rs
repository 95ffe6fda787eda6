//! `mimi-publisher`: the command-line face of the publisher library.
//!
//! Exit codes: 0 success; 1 the inputs have problems (each reported with
//! file and line) or the operation failed; 2 bad command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mimi_proto::window::WindowPolicy;
use mimi_proto::{AuthorityName, Sii, Ssi, UnixTime, UnsignedAssertion, UnsignedCertificate};
use mimi_publisher::serve::rrl::RrlConfig;
use mimi_publisher::zone::ledger::{Ledger, LedgerFileError};
use mimi_publisher::zone::shrink::{Shrink, ShrinkLimit};
use mimi_publisher::{
    build, input::config::parse_duration, input::keys, input::presigned, serve, zone::seal,
    zone::zonefile,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "mimi-publisher",
    version,
    about = "Publish signed mimi-dns discovery records in DNS zones"
)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log lines on stderr as text, or as one JSON object per line (for
    /// log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

#[derive(Subcommand)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Generate an Ed25519 private key (PKCS#8 PEM, mode 0600) and print its public key and kid.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Certify a signing key with an authority's root key; prints the `_mimi-ma` certificate record.
    Certify {
        /// The authority's root private key.
        #[arg(long)]
        root: PathBuf,
        /// The signing key to certify (private key file; only its public half is used).
        #[arg(long)]
        key: PathBuf,
        /// The authority's name, e.g. ma.example.net.
        #[arg(long)]
        authority: String,
        /// How long the certificate is valid, e.g. 180d.
        #[arg(long, default_value = "180d")]
        validity: String,
        /// Start of validity as Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Key ceremony (offline, with the root key): generate N signing keys,
    /// certify each for a staggered window, and write them as a bundle that
    /// `[authority] bundle = "DIR"` rolls over by itself. Continues an
    /// existing bundle in DIR after its last key.
    Ceremony {
        /// The authority's root private key (it is only read, never copied).
        #[arg(long)]
        root: PathBuf,
        /// The authority's name, e.g. ma.example.net.
        #[arg(long)]
        authority: String,
        /// The bundle directory to create (or continue).
        #[arg(long)]
        out: PathBuf,
        /// How many signing keys to certify.
        #[arg(long, default_value_t = 4)]
        keys: u32,
        /// How long each key's certificate is valid, e.g. 120d.
        #[arg(long, default_value = "120d", value_parser = parse_positive_duration)]
        key_validity: std::time::Duration,
        /// How long consecutive certificates overlap, e.g. 30d: the time a
        /// rollover has to publish, switch and let old assertions expire;
        /// at least the assertion validity for re-signing to be gradual.
        #[arg(long, default_value = "30d", value_parser = parse_positive_duration)]
        overlap: std::time::Duration,
        /// Start of the first key's window, Unix seconds (default: now;
        /// ignored when continuing a bundle).
        #[arg(long)]
        start: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Sign one SII → SSI mapping; prints a pre-signed line (`SII RECORD`) for a provider's `presigned` file.
    Sign {
        /// The signing key.
        #[arg(long)]
        key: PathBuf,
        /// The authority's name.
        #[arg(long)]
        authority: String,
        /// The SII (email address or telephone number).
        #[arg(long)]
        sii: String,
        /// The SSI (URI at the messaging provider).
        #[arg(long)]
        ssi: String,
        /// Validity of the assertion.
        #[arg(long, default_value = "14d")]
        validity: String,
        /// Re-sign margin used to place the window deterministically (SPEC §9); default: validity / 3.5 rounded down (4d for 14d).
        #[arg(long)]
        margin: Option<String>,
        /// Default region for national telephone numbers (e.g. IT).
        #[arg(long)]
        region: Option<String>,
        /// Include h=<label> (needed for privacy buckets).
        #[arg(long)]
        with_label: bool,
        /// The time to sign at, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Validate zone configurations and all their inputs; report every problem with file and line.
    Check {
        /// Zone configuration files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Check as of this time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Also check the zone against the zone file it would replace (as
        /// `build --out FILE` does): report a shrink beyond max_shrink. One
        /// configuration only.
        #[arg(long, value_name = "FILE", conflicts_with = "state_dir")]
        out: Option<PathBuf>,
        /// Also check each zone against the zone a server with this
        /// `--state-dir` serves (DIR/<origin>.zone): report a shrink beyond
        /// max_shrink.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Do not report a shrink (what --allow-shrink would install).
        #[arg(long)]
        allow_shrink: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Report each zone's serial, record counts, earliest expiries, last
    /// reload and what is wrong, as a Nagios/Icinga plugin: exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    ///
    /// The zones are read from a server's --state-dir (its kept zones and
    /// status.json) or from what `build --out` wrote (--zone-file); with
    /// neither, each zone is built in memory as `check` does, which signs
    /// every mapping: fine for small zones, slow for large ones.
    Status {
        /// Zone configuration files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// The state directory of the server (`serve --state-dir`).
        #[arg(long, value_name = "DIR", conflicts_with = "zone_file")]
        state_dir: Option<PathBuf>,
        /// The zone file `build --out FILE` wrote (its directory for a
        /// configuration of many zones). One configuration only.
        #[arg(long, value_name = "FILE")]
        zone_file: Option<PathBuf>,
        /// Report as of this time, Unix seconds (default: now).
        #[arg(long, value_parser = clap::value_parser!(u64).range(..=mimi_proto::UnixTime::MAX_RECORD.secs()))]
        now: Option<u64>,
        /// Warn when a certificate expires (or the key bundle runs out)
        /// within this.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        warn_within: std::time::Duration,
        /// Critical when a certificate expires (or the key bundle runs
        /// out) within this.
        #[arg(long, default_value = "2d", value_parser = parse_duration)]
        critical_within: std::time::Duration,
        /// Warn when an assertion expires within this (healthy zones keep
        /// every assertion at least the re-sign margin, default 4d, from
        /// its end: keep this below the margin).
        #[arg(long, default_value = "2d", value_parser = parse_duration)]
        assertion_warn_within: std::time::Duration,
        /// Critical when an assertion expires within this.
        #[arg(long, default_value = "1d", value_parser = parse_duration)]
        assertion_critical_within: std::time::Duration,
        /// A reload failing for this long is critical (before: a warning).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        stale_after: std::time::Duration,
        /// Machine-readable output (see mimi_publisher::status::Report).
        #[arg(long)]
        json: bool,
    },
    /// Build a zone and write it as an RFC 1035 zone file (atomically); a
    /// configuration of many zones ([domains], [shards]) writes one file per
    /// zone, DIR/<origin>.zone.
    Build {
        /// Zone configuration file.
        config: PathBuf,
        /// Output zone file (a directory for a configuration of many zones).
        #[arg(long)]
        out: PathBuf,
        /// Build as of this time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Replace an existing --out file even if the new zone removes more
        /// of its assertions than max_shrink allows (the confirmation).
        #[arg(long)]
        allow_shrink: bool,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Make the zone's mimi records at an existing primary equal to what `build` produces (RFC 2136 UPDATE, only the difference).
    Push {
        /// Zone configuration file.
        config: PathBuf,
        /// The primary to update (IP:PORT).
        #[arg(long)]
        server: SocketAddr,
        /// TSIG key file (tsig-keygen format, HMAC-SHA256) for the transfer and the updates.
        #[arg(long)]
        tsig_key: Option<PathBuf>,
        /// Print the difference; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send the difference even if it removes more than 10% of the
        /// managed assertions on the server (or all of them).
        #[arg(long)]
        allow_shrink: bool,
        /// Build as of this time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// The key rollover's ledger (since when each certificate has been
        /// published): read before building, written after the primary
        /// accepted the push. Required with an `[authority] bundle`; a
        /// missing file starts the rollover anew.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Serve zones over UDP and TCP (and DNS over TLS, HTTPS, QUIC if asked); reload on change, re-sign on time; stop on SIGINT/SIGTERM.
    Serve {
        /// Zone configuration files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Address to listen on (UDP and TCP); repeatable, e.g. once for
        /// IPv4 and once for IPv6 ([::]:53 is IPv6-only). Default
        /// 127.0.0.1:5300.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// Become this user once every socket is bound, before reading any
        /// input (start as root to bind port 53; keys and the state
        /// directory must be readable by the user).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Serve Prometheus metrics at http://ADDR/metrics (for example
        /// 127.0.0.1:9153); none by default.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Keep each served zone in DIR/<origin>.zone and start from it:
        /// a restart reuses its signatures and continues its serial.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Install every rebuilt zone however many assertions it removes
        /// (the confirmation the shrink guard, max_shrink, asks for).
        #[arg(long)]
        allow_shrink: bool,
        /// TCP connections served at once (more are closed on arrival).
        #[arg(long, default_value_t = serve::TcpOptions::DEFAULT.max_clients as u32, value_parser = clap::value_parser!(u32).range(1..))]
        tcp_max_clients: u32,
        /// TCP connections served at once from one IPv4 address or IPv6 /64.
        #[arg(long, default_value_t = serve::TcpOptions::DEFAULT.max_per_source as u32, value_parser = clap::value_parser!(u32).range(1..))]
        tcp_max_per_source: u32,
        /// Close a TCP connection that sends no complete message, or does
        /// not read its answer, for this long (e.g. 10s, 500ms).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        tcp_idle_timeout: std::time::Duration,
        /// Close a TCP connection after answering this many messages.
        #[arg(long, default_value_t = serve::TcpOptions::DEFAULT.max_queries, value_parser = clap::value_parser!(u32).range(1..))]
        tcp_max_queries: u32,
        /// Close a TCP connection after it has been open this long (checked
        /// between messages; a transfer under way is finished).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        tcp_max_lifetime: std::time::Duration,
        /// Also serve a catalog zone (RFC 9432) of every served zone, as
        /// FILE describes (origin, [soa] timers, [transfer]), so that
        /// catalog-consuming secondaries (Knot, BIND) add and drop zones
        /// by themselves.
        #[arg(long, value_name = "FILE")]
        catalog: Option<PathBuf>,
        /// Zone transfers (AXFR, IXFR) running at once; more are answered
        /// REFUSED, and the secondary retries later.
        #[arg(long, default_value_t = serve::TcpOptions::DEFAULT.transfers.max_total as u32, value_parser = clap::value_parser!(u32).range(1..))]
        max_transfers: u32,
        /// Zone transfers running at once to one peer address.
        #[arg(long, default_value_t = serve::TcpOptions::DEFAULT.transfers.max_per_source as u32, value_parser = clap::value_parser!(u32).range(1..))]
        max_transfers_per_source: u32,
        /// Cut a zone transfer when the secondary accepts no byte for this
        /// long (a transfer that progresses is never cut, however long).
        #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
        transfer_idle_timeout: std::time::Duration,
        #[command(flatten)]
        rrl: RrlArgs,
        #[command(flatten)]
        encrypted: EncryptedArgs,
    },
}

/// DNS over TLS, HTTPS and QUIC listeners and their certificate.
#[derive(clap::Args)]
struct EncryptedArgs {
    /// Also serve DNS over TLS (RFC 7858) on ADDR (repeatable; 853 by
    /// convention).
    #[arg(long, value_name = "ADDR")]
    listen_tls: Vec<SocketAddr>,
    /// Also serve DNS over HTTPS (RFC 8484, HTTP/2, /dns-query) on ADDR
    /// (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen_https: Vec<SocketAddr>,
    /// Also serve DNS over QUIC (RFC 9250) on UDP ADDR (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen_quic: Vec<SocketAddr>,
    /// PEM certificate chain for the encrypted listeners, the server's
    /// certificate first; reloaded when it changes.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, SEC1 or PKCS#1; mode 0600);
    /// reloaded when it changes.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Close a connection whose TLS or QUIC handshake takes longer.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    tls_handshake_timeout: std::time::Duration,
    /// Queries in flight at once on one HTTPS or QUIC connection.
    #[arg(long, default_value_t = serve::EncryptedOptions::DEFAULT.max_streams, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_streams: u32,
}

impl EncryptedArgs {
    fn options(self) -> serve::EncryptedOptions {
        serve::EncryptedOptions {
            tls: self.listen_tls,
            https: self.listen_https,
            quic: self.listen_quic,
            certificate: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(serve::encrypted::certs::CertPaths { cert, key }),
                _ => None,
            },
            handshake_timeout: self.tls_handshake_timeout,
            max_streams: self.max_streams,
        }
    }
}

/// Response rate limiting of UDP answers (NSD's defaults). TCP is never
/// limited.
#[derive(clap::Args)]
struct RrlArgs {
    /// UDP answers per second per source network and kind of answer
    /// (burst: one second's worth); 0 turns rate limiting off.
    #[arg(long, value_name = "N", default_value_t = RrlConfig::DEFAULT_RATE,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(RrlConfig::MAX_RATE)))]
    rrl_rate: u32,
    /// Every Nth answer over the rate is sent truncated (TC, so that real
    /// clients retry over TCP) instead of dropped; 0 drops them all.
    #[arg(long, value_name = "N", default_value_t = RrlConfig::DEFAULT_SLIP,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(RrlConfig::MAX_SLIP)))]
    rrl_slip: u32,
    /// IPv4 sources sharing this many leading bits share a rate.
    #[arg(long, value_name = "BITS", default_value_t = RrlConfig::DEFAULT_IPV4_PREFIX,
          value_parser = clap::value_parser!(u8).range(0..=32))]
    rrl_ipv4_prefix: u8,
    /// IPv6 sources sharing this many leading bits share a rate.
    #[arg(long, value_name = "BITS", default_value_t = RrlConfig::DEFAULT_IPV6_PREFIX,
          value_parser = clap::value_parser!(u8).range(0..=128))]
    rrl_ipv6_prefix: u8,
    /// Rate-limit buckets (8 octets each, rounded up to a power of two);
    /// sources hashing to the same bucket share it.
    #[arg(long, value_name = "N", default_value_t = RrlConfig::DEFAULT_TABLE_SIZE as u64,
          value_parser = clap::value_parser!(u64).range(1..=RrlConfig::MAX_TABLE_SIZE as u64))]
    rrl_table_size: u64,
}

impl RrlArgs {
    fn config(&self) -> Result<RrlConfig> {
        RrlConfig::new(
            self.rrl_rate,
            self.rrl_slip,
            self.rrl_ipv4_prefix,
            self.rrl_ipv6_prefix,
            usize::try_from(self.rrl_table_size).context("--rrl-table-size")?,
        )
        .context("rate limiting options")
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A monitoring plugin's bad arguments are UNKNOWN (3), not 2,
            // which would read as CRITICAL.
            if e.use_stderr()
                && std::env::args()
                    .skip(1)
                    .find(|a| !a.starts_with('-'))
                    .as_deref()
                    == Some("status")
            {
                let _ = e.print();
                return ExitCode::from(3);
            }
            e.exit()
        }
    };
    let default = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // hickory-proto (our TSIG and transfer encoding, and the push client)
    // is chatty at info: keep it to warnings unless RUST_LOG asks otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},hickory_proto=warn"))
    });
    // Colours only for a terminal: journald and log files get plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn now_or(now: Option<u64>) -> UnixTime {
    now.map(UnixTime).unwrap_or_else(UnixTime::now)
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Keygen { out, json } => {
            let key = keys::generate();
            keys::write_signing_key(&out, &key)?;
            let pk = keys::public_key(&key)?;
            if json {
                println!(
                    "{}",
                    json!({"file": out, "public_key": pk.to_base64url(), "kid": pk.kid().as_str()})
                );
            } else {
                println!("wrote {} (mode 0600)", out.display());
                println!("public key: {}", pk.to_base64url());
                println!("kid:        {}", pk.kid());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Certify {
            root,
            key,
            authority,
            validity,
            now,
            json,
        } => {
            let root = keys::load_signing_key(&root)?;
            let signing = keys::load_signing_key(&key)?;
            let authority = AuthorityName::parse(&authority).context("--authority")?;
            let validity = parse_duration(&validity)
                .map_err(anyhow::Error::msg)
                .context("--validity")?;
            let t = now_or(now);
            let cert = UnsignedCertificate {
                authority,
                key: keys::public_key(&signing)?,
                not_before: t,
                expires: t.plus(validity.as_secs()),
            }
            .sign(&root)?;
            if json {
                println!(
                    "{}",
                    json!({"owner": cert.authority().certificate_name().fqdn(), "record": cert.text(), "kid": cert.kid().as_str(), "root_kid": cert.root_kid().as_str(), "expires": cert.expires().0})
                );
            } else {
                println!("{}", cert.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ceremony {
            root,
            authority,
            out,
            keys: n,
            key_validity,
            overlap,
            start,
            json,
        } => {
            let root = keys::load_signing_key(&root)?;
            let plan = mimi_publisher::input::bundle::CeremonyPlan {
                authority: AuthorityName::parse(&authority).context("--authority")?,
                keys: n,
                start: now_or(start),
                key_validity: key_validity.as_secs(),
                overlap: overlap.as_secs(),
            };
            let done = mimi_publisher::input::bundle::ceremony(&out, &root, &plan)?;
            let date = |t: UnixTime| {
                humantime::format_rfc3339(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.0),
                )
                .to_string()
            };
            if json {
                let keys: Vec<_> = done
                    .added
                    .iter()
                    .map(|c| json!({"kid": c.kid().as_str(), "not_before": c.not_before().0, "expires": c.expires().0}))
                    .collect();
                println!(
                    "{}",
                    json!({"bundle": out, "continued": done.continued, "root_kid": keys::public_key(&root)?.kid().as_str(), "keys": keys})
                );
            } else {
                println!(
                    "{} {} with {} keys:",
                    if done.continued { "continued" } else { "wrote" },
                    out.display(),
                    done.added.len()
                );
                for c in &done.added {
                    println!(
                        "  {}  {} .. {}",
                        c.kid(),
                        date(c.not_before()),
                        date(c.expires())
                    );
                }
                println!(
                    "copy {} to the server (it holds no root key) and set [authority] bundle = \"{}\"",
                    out.display(),
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign {
            key,
            authority,
            sii,
            ssi,
            validity,
            margin,
            region,
            with_label,
            now,
            json,
        } => {
            let key = keys::load_signing_key(&key)?;
            let authority = AuthorityName::parse(&authority).context("--authority")?;
            let region = region.map(|r| r.parse()).transpose().context("--region")?;
            let sii = Sii::parse(&sii, region).context("--sii")?;
            let ssi = Ssi::from_input(&ssi).context("--ssi")?;
            let v = parse_duration(&validity)
                .map_err(anyhow::Error::msg)
                .context("--validity")?
                .as_secs();
            let m = match margin {
                Some(m) => parse_duration(&m)
                    .map_err(anyhow::Error::msg)
                    .context("--margin")?
                    .as_secs(),
                None => v * 2 / 7,
            };
            let window = WindowPolicy::new(v, m).context("--margin")?;
            let hash = sii.hash();
            let (t, x) = window.window(&hash, now_or(now));
            let a = UnsignedAssertion {
                authority,
                ssi,
                not_before: t,
                expires: x,
                include_label: with_label,
                extensions: vec![],
            }
            .sign(&hash, &key)?;
            if json {
                println!(
                    "{}",
                    json!({"sii": sii.as_str(), "label": sii.label().as_str(), "record": a.text(), "t": t.0, "x": x.0})
                );
            } else {
                println!("{}", presigned::format_line(&sii, &a));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            configs,
            now,
            out,
            state_dir,
            allow_shrink,
            json,
        } => {
            if out.is_some() && configs.len() > 1 {
                bail!("--out compares one zone; give one configuration (or use --state-dir)");
            }
            let now = now_or(now);
            let mut ok = true;
            let mut reports = Vec::new();
            for c in &configs {
                if let Ok(many) = mimi_publisher::ZoneConfig::load(c) {
                    if many.is_many() {
                        if out.is_some() {
                            bail!("{}: --out compares one zone; for a configuration of many zones use --state-dir", c.display());
                        }
                        let report =
                            check_many(c, &many, now, state_dir.as_deref(), allow_shrink, json)?;
                        ok &= report["ok"].as_bool().unwrap_or(false);
                        reports.push(report);
                        continue;
                    }
                }
                match build::build_from_path(c, now, None, None) {
                    Ok(built) => {
                        // What the zone would replace, if asked.
                        let against = out.clone().or_else(|| {
                            state_dir
                                .as_ref()
                                .map(|d| d.join(format!("{}.zone", built.zone.origin.as_str())))
                        });
                        let shrink = match &against {
                            Some(path) => match read_zone_file(path)? {
                                Some(old) => {
                                    Some((path, Shrink::between(&old.records, &built.zone.records)))
                                }
                                None => None,
                            },
                            None => None,
                        };
                        let refused = shrink
                            .filter(|_| !allow_shrink)
                            .and_then(|(_, s)| s.check(built.max_shrink).err());
                        let zone_ok = refused.is_none();
                        ok &= zone_ok;
                        if !json {
                            for w in &built.warnings {
                                println!("warning: {w}");
                            }
                            if let Some((path, s)) = &shrink {
                                println!(
                                    "compared with {}: {} assertions there, {} in the new zone, {} of them removed",
                                    path.display(),
                                    s.before,
                                    s.after,
                                    s.removed
                                );
                            } else if let Some(path) = &against {
                                println!("compared with {}: it does not exist yet", path.display());
                            }
                            if let Some(r) = &refused {
                                println!("error: {}: {r}", c.display());
                                println!(
                                    "FAILED: {}: the new zone would be held back",
                                    c.display()
                                );
                            } else {
                                println!(
                                    "ok: {}: zone {}, {} records",
                                    c.display(),
                                    built.zone.origin,
                                    built.zone.record_count()
                                );
                            }
                        }
                        let shrink_json = shrink.map(|(path, s)| json!({"against": path, "before": s.before, "after": s.after, "removed": s.removed, "refused": refused.is_some()}));
                        let problems: Vec<_> = refused
                            .iter()
                            .map(|r| json!({"file": c, "line": null, "message": r.to_string()}))
                            .collect();
                        reports.push(json!({"config": c, "ok": zone_ok, "zone": built.zone.origin.as_str(), "records": built.zone.record_count(),
                            "problems": problems, "warnings": built.warnings.iter().map(problem_json).collect::<Vec<_>>(), "shrink": shrink_json}));
                    }
                    Err(e) => {
                        ok = false;
                        if !json {
                            for p in &e.problems {
                                println!("error: {p}");
                            }
                            println!("FAILED: {}: {} problem(s)", c.display(), e.problems.len());
                        }
                        reports.push(json!({"config": c, "ok": false, "problems": e.problems.iter().map(problem_json).collect::<Vec<_>>(), "warnings": []}));
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Status {
            configs,
            state_dir,
            zone_file,
            now,
            warn_within,
            critical_within,
            assertion_warn_within,
            assertion_critical_within,
            stale_after,
            json,
        } => Ok(status_cmd(
            &configs,
            state_dir,
            zone_file,
            now_or(now),
            mimi_publisher::status::Thresholds {
                warn_within,
                critical_within,
                assertion_warn_within,
                assertion_critical_within,
                stale_after,
            },
            json,
        )),
        Command::Build {
            config,
            out,
            now,
            allow_shrink,
            json,
        } => match mimi_publisher::ZoneConfig::load(&config) {
            Ok(c) if c.is_many() => {
                build_many_cmd(&config, &c, &out, now_or(now), allow_shrink, json)
            }
            _ => build_cmd(&config, &out, now_or(now), allow_shrink, json),
        },
        Command::Push {
            config,
            server,
            tsig_key,
            dry_run,
            allow_shrink,
            now,
            state,
            json,
        } => push_cmd(
            &config,
            server,
            tsig_key.as_deref(),
            PushMode {
                dry_run,
                shrink: if allow_shrink {
                    ShrinkLimit::OFF
                } else {
                    ShrinkLimit::default()
                },
                state,
            },
            now_or(now),
            json,
        ),
        Command::Serve {
            configs,
            listen,
            user,
            metrics,
            state_dir,
            allow_shrink,
            tcp_max_clients,
            tcp_max_per_source,
            tcp_idle_timeout,
            tcp_max_queries,
            tcp_max_lifetime,
            catalog,
            max_transfers,
            max_transfers_per_source,
            transfer_idle_timeout,
            rrl,
            encrypted,
        } => {
            let rrl = rrl.config()?;
            let encrypted = encrypted.options();
            if encrypted.any() && encrypted.certificate.is_none() {
                anyhow::bail!(
                    "--listen-tls, --listen-https and --listen-quic need --tls-cert and --tls-key"
                );
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve::run(
                serve::ServeOptions {
                    configs,
                    listen: listen
                        .first()
                        .copied()
                        .unwrap_or(serve::ServeOptions::DEFAULT_LISTEN),
                    extra_listen: listen.iter().skip(1).copied().collect(),
                    user,
                    systemd: true,
                    state_dir,
                    allow_shrink,
                    tcp: serve::TcpOptions {
                        max_clients: tcp_max_clients as usize,
                        max_per_source: tcp_max_per_source as usize,
                        idle_timeout: tcp_idle_timeout,
                        max_queries: tcp_max_queries,
                        max_lifetime: tcp_max_lifetime,
                        transfers: mimi_publisher::transfer::TransferOptions {
                            max_total: max_transfers as usize,
                            max_per_source: max_transfers_per_source as usize,
                            idle_timeout: transfer_idle_timeout,
                        },
                    },
                    rrl,
                    catalog,
                    encrypted,
                    metrics,
                    ..Default::default()
                },
                serve::shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How `push` runs: whether it sends, and how much it may remove.
struct PushMode {
    dry_run: bool,
    shrink: ShrinkLimit,
    /// `--state FILE`: the rollover ledger between pushes.
    state: Option<PathBuf>,
}

fn push_cmd(
    config: &Path,
    server: SocketAddr,
    tsig_key: Option<&Path>,
    mode: PushMode,
    now: UnixTime,
    json: bool,
) -> Result<ExitCode> {
    use mimi_publisher::transfer::push;
    let PushMode {
        dry_run,
        shrink,
        state,
    } = mode;
    let key = tsig_key
        .map(mimi_publisher::input::tsig::TsigKey::load)
        .transpose()?;
    let built = mimi_publisher::ZoneConfig::load(config)
        .map_err(|e| {
            let msg = e.to_string();
            let msg = msg
                .strip_prefix(&format!("{}: ", config.display()))
                .unwrap_or(&msg);
            build::BuildError::from(mimi_publisher::Problem::in_file(config, msg))
        })
        .and_then(|cfg| {
            if cfg.is_many() {
                return Err(build::BuildError::from(mimi_publisher::Problem::in_file(
                    config,
                    "push publishes one zone; a configuration of many zones ([domains] or [shards]) cannot be pushed yet: serve it, or build it with --out DIR",
                )));
            }
            let bundle = cfg.authority.as_ref().is_some_and(|a| a.bundle.is_some());
            let ledger = match (&state, bundle) {
                (None, false) => Default::default(),
                (None, true) => {
                    return Err(build::BuildError::from(mimi_publisher::Problem::in_file(
                        config,
                        "the authority's keys come from a bundle: push needs --state FILE to keep the key rollover's ledger between pushes (since when each certificate has been published); without it every push would start the rollover anew",
                    )))
                }
                (Some(path), false) => {
                    return Err(build::BuildError::from(mimi_publisher::Problem::in_file(
                        config,
                        format!(
                            "--state {}: the configuration has no [authority] bundle, so there is no key rollover to keep; remove --state",
                            path.display()
                        ),
                    )))
                }
                (Some(path), true) => match Ledger::read_file(path) {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        tracing::info!(
                            "{}: no rollover ledger yet: starting the key rollover",
                            path.display()
                        );
                        Default::default()
                    }
                    Err(e) => {
                        let p = match &e {
                            LedgerFileError::Line { path, line, why } => {
                                mimi_publisher::Problem::at(path, *line, why.clone())
                            }
                            _ => mimi_publisher::Problem::in_file(
                                path,
                                e.to_string()
                                    .strip_prefix(&format!("{}: ", path.display()))
                                    .unwrap_or(&e.to_string())
                                    .to_string(),
                            ),
                        };
                        return Err(build::BuildError::from(p));
                    }
                },
            };
            let out = build::build_zone_continuing(&cfg, now, ledger)?;
            Ok((cfg, out))
        });
    let (cfg, built) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            eprintln!("nothing was sent to {server}");
            return Ok(ExitCode::from(1));
        }
    };
    // The build read the same files without problems; a file that became
    // unreadable since then is an error here too.
    let (managed, problems) = push::Managed::of_config(&cfg);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("nothing was sent to {server}");
        return Ok(ExitCode::from(1));
    }
    tracing::debug!(
        "managing the records of {}",
        managed
            .authorities()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in &built.warnings {
        tracing::warn!("{w}");
    }
    let zone = built.zone;
    let rt = tokio::runtime::Runtime::new()?;
    let fail = |e: push::PushError| {
        if json {
            println!(
                "{}",
                json!({"zone": zone.origin.as_str(), "server": server.to_string(), "error": e.to_string()})
            );
        }
        eprintln!("error: {e}");
        Ok(ExitCode::from(1))
    };
    let current = match rt.block_on(push::read_current(
        server,
        &zone.origin,
        key.as_ref(),
        &managed,
    )) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let diff = push::diff(&current, &zone);
    let shrunk = push::check_shrink(&current, &zone, shrink).err();
    let batches = diff.batches();
    let list = |v: &[push::ManagedRecord]| {
        v.iter()
            .map(|r| json!({"owner": r.owner, "ttl": r.ttl, "text": r.text}))
            .collect::<Vec<_>>()
    };
    let conflicts = || {
        diff.conflicts
            .iter()
            .map(|c| json!({"owner": c.owner, "ttl": c.ours, "foreign_ttl": c.theirs}))
            .collect::<Vec<_>>()
    };
    if dry_run {
        if json {
            println!(
                "{}",
                json!({"zone": zone.origin.as_str(), "server": server.to_string(), "dry_run": true, "add": list(&diff.add), "delete": list(&diff.delete), "unchanged": diff.unchanged, "updates": batches, "conflicts": conflicts(), "shrink_refused": shrunk.as_ref().map(|e| e.to_string())})
            );
        } else {
            for r in &diff.delete {
                println!("- {r}");
            }
            for r in &diff.add {
                println!("+ {r}");
            }
            for c in &diff.conflicts {
                println!("! {c}");
            }
            eprintln!(
                "dry run: {}: +{} −{} ={} ({} update message{}{}); nothing sent",
                zone.origin,
                diff.add.len(),
                diff.delete.len(),
                diff.unchanged,
                batches,
                if batches == 1 { "" } else { "s" },
                if batches > 1 {
                    ", each applied atomically on its own"
                } else {
                    ""
                }
            );
            if !diff.conflicts.is_empty() {
                eprintln!(
                    "push would refuse: {} addition(s) would change the TTL of TXT records it does not manage (lines marked !)",
                    diff.conflicts.len()
                );
            }
            if let Some(e) = &shrunk {
                eprintln!("push would refuse: {e}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(e) = shrunk {
        let msg = format!(
            "{server}: nothing was sent: the push would remove {} of the {} managed assertions on the server ({} left), more than {} allows; if this is intended, run push again with --allow-shrink",
            e.shrink.removed, e.shrink.before, e.shrink.after, e.limit
        );
        if json {
            println!(
                "{}",
                json!({"zone": zone.origin.as_str(), "server": server.to_string(), "error": msg, "shrink": {"before": e.shrink.before, "after": e.shrink.after, "removed": e.shrink.removed}})
            );
        }
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(1));
    }
    match rt.block_on(push::apply(server, &zone.origin, &diff, key.as_ref())) {
        Ok(applied) => {
            // Only now is the zone at the primary what the ledger says: a
            // push that failed leaves the old ledger, whose certificates are
            // then published later, never earlier, than it claims.
            if let Some(path) = &state {
                if let Err(e) = zone.ledger.write_file(path) {
                    eprintln!(
                        "error: {}: the primary accepted the push, but writing the rollover ledger failed: {e}; the next push will wait longer before switching keys",
                        path.display()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            if json {
                println!(
                    "{}",
                    json!({"zone": zone.origin.as_str(), "server": server.to_string(), "added": applied.added, "deleted": applied.deleted, "unchanged": diff.unchanged, "updates": applied.batches})
                );
            } else {
                eprintln!(
                    "{}: +{} −{} ={} ({} update message{}{})",
                    zone.origin,
                    applied.added,
                    applied.deleted,
                    diff.unchanged,
                    applied.batches,
                    if applied.batches == 1 { "" } else { "s" },
                    if applied.batches > 1 {
                        ", each applied atomically on its own"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e),
    }
}

/// `status`: the report on stdout, its severity as the exit code; status's
/// own failures are UNKNOWN (3), in the same output format.
fn status_cmd(
    configs: &[PathBuf],
    state_dir: Option<PathBuf>,
    zone_file: Option<PathBuf>,
    now: UnixTime,
    thresholds: mimi_publisher::status::Thresholds,
    json: bool,
) -> ExitCode {
    use mimi_publisher::status::{self, Source};
    let source = match (state_dir, zone_file) {
        (Some(d), _) => Source::StateDir(d),
        (None, Some(f)) => Source::ZoneFile(f),
        (None, None) => Source::Build,
    };
    match status::report(configs, &source, now, &thresholds) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        println!(
                            "{}",
                            json!({"status": "unknown", "exit": 3, "error": e.to_string()})
                        );
                        return ExitCode::from(3);
                    }
                }
            } else {
                print!("{}", report.text());
            }
            ExitCode::from(report.exit)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    json!({"status": "unknown", "exit": 3, "error": e.to_string(), "zones": []})
                );
            } else {
                println!("MIMI UNKNOWN - {e}");
            }
            ExitCode::from(3)
        }
    }
}

fn problem_json(p: &mimi_publisher::Problem) -> serde_json::Value {
    json!({"file": p.file, "line": p.line, "message": p.message})
}

/// The zone in a zone file written by `build` or a state directory
/// (`None` if there is no file), or why it cannot be read.
fn read_zone_file(path: &Path) -> Result<Option<mimi_publisher::Zone>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    zonefile::parse(seal::body(&text))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.message))
}

fn build_cmd(
    config: &Path,
    out: &Path,
    now: UnixTime,
    allow_shrink: bool,
    json: bool,
) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let bar = (std::io::stderr().is_terminal() && !json).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} signed {pos} mappings ({per_sec}) {elapsed}",
            )
            .expect("static template"),
        );
        b
    });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    // The zone file written last time: its records are reused where their
    // text would be identical (only new or rolled-over mappings are signed),
    // but only if its seal shows that this key wrote it (see the seal
    // module): otherwise anyone who can write the file could have us
    // publish records we never signed.
    let previous = match std::fs::read_to_string(out) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let kept = match &previous {
        Some(t) => match zonefile::parse(seal::body(t)) {
            Ok(z) => Some(z),
            Err(e) => {
                tracing::warn!(
                    "{}:{}: {}; its records are not reused",
                    out.display(),
                    e.line,
                    e.message
                );
                None
            }
        },
        None => None,
    };
    let seal_key = mimi_publisher::ZoneConfig::load(config)
        .ok()
        .and_then(|c| seal::key_for(&c));
    let trusted = match (&previous, &seal_key) {
        (Some(text), Some(key)) => match seal::open(text, key) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; its records are not reused (all are signed afresh)",
                    out.display()
                );
                false
            }
        },
        _ => false,
    };
    let reuse = kept.as_ref().filter(|_| trusted);
    let result = build::build_from_path(config, now, reuse, Some(&progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            eprintln!("nothing was written; {} is unchanged", out.display());
            return Ok(ExitCode::from(1));
        }
    };
    for w in &output.warnings {
        tracing::warn!("{w}");
    }
    let rollover = output.rollover.clone();
    if let Some(r) = &rollover {
        for step in &r.steps {
            tracing::info!(step = step.name(), "key rollover: {step}");
        }
    }
    if let (Some(old), false) = (&kept, allow_shrink) {
        if let Err(refused) =
            Shrink::between(&old.records, &output.zone.records).check(output.max_shrink)
        {
            eprintln!("error: {}: {refused}", out.display());
            eprintln!("nothing was written; {} is unchanged", out.display());
            return Ok(ExitCode::from(1));
        }
    }
    let seal_key = output.seal;
    let mut zone = output.zone;
    let floor = zone.soa.serial;
    // Keep the serial when the content is unchanged; increase it otherwise.
    let mut changed = true;
    if let Some(prev_serial) = previous.as_deref().and_then(zonefile::read_serial) {
        zone.soa.serial = prev_serial;
        let body = previous.as_deref().map(seal::body);
        // The same DNS content is the same zone, whatever its rollover
        // ledger says (the ledger of the file still holds for it).
        let same = body == Some(zonefile::render(&zone).as_str())
            || (trusted && kept.as_ref().is_some_and(|k| k.same_content(&zone)));
        if same {
            // Same zone; rewrite it only to (re)seal it, or to keep a
            // rollover ledger that moved on (a key switch at a moment when
            // no record changes), so that the next build continues from it.
            changed = (seal_key.is_some() && !trusted)
                || kept
                    .as_ref()
                    .is_some_and(|k| !k.ledger.same_steps(&zone.ledger));
        } else {
            zone.soa.serial = mimi_publisher::zone::next_serial(prev_serial, floor);
        }
    } else if previous.is_some() {
        bail!(
            "{} exists but has no serial written by mimi-publisher; refusing to overwrite it",
            out.display()
        );
    }
    if changed {
        let text = zonefile::render(&zone);
        let text = match &seal_key {
            Some(k) => seal::seal(&text, k),
            None => text,
        };
        zonefile::write_atomically(out, &text)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"zone": zone.origin.as_str(), "out": out, "records": zone.record_count(), "serial": zone.soa.serial, "changed": changed, "seconds": secs, "rollover": rollover})
        );
    } else {
        eprintln!(
            "{} {}: {} records, serial {} ({:.2}s)",
            if changed { "wrote" } else { "unchanged" },
            out.display(),
            zone.record_count(),
            zone.soa.serial,
            secs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration above zero: a zero timeout would cut every transfer at once.
fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// The zones kept as `<origin>.zone` in `dir` that `config` could describe,
/// read back: trusted ones (sealed with this key) whole, others for their
/// serial only.
fn kept_zones(
    dir: &Path,
    config: &mimi_publisher::ZoneConfig,
) -> Result<(build::zones::ZoneSet, build::zones::ZoneSet)> {
    use mimi_publisher::zone::{seal, zonefile};
    let key = seal::key_for(config);
    let (mut whole, mut for_build) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Default::default(), Default::default()))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let ours = build::zones::publishable(config);
    for entry in entries {
        let path = entry?.path();
        let Some(origin) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".zone"))
            .and_then(|n| mimi_proto::DomainName::parse_canonical(n).ok())
        else {
            continue;
        };
        if !ours(&origin) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let zone = match zonefile::parse(seal::body(&text)) {
            Ok(z) if z.origin == origin => z,
            _ => {
                tracing::warn!("{}: not a zone file for {origin}; ignored", path.display());
                continue;
            }
        };
        let trusted = key.as_ref().is_some_and(|k| seal::open(&text, k).is_ok());
        let mut stripped = zone.clone();
        if !trusted {
            stripped.records.clear();
            stripped.next_resign = None;
        }
        whole.push(zone);
        for_build.push(stripped);
    }
    Ok((
        build::zones::ZoneSet::of(whole),
        build::zones::ZoneSet::of(for_build),
    ))
}

/// `build --out DIR` for a configuration of many zones: one zone file per
/// zone, each continuing the serial of the file it replaces; files of
/// zones no longer described are removed. The shrink guard compares all
/// of them together.
fn build_many_cmd(
    config_path: &Path,
    config: &mimi_publisher::ZoneConfig,
    out: &Path,
    now: UnixTime,
    allow_shrink: bool,
    json: bool,
) -> Result<ExitCode> {
    use mimi_publisher::zone::zonefile;
    let started = std::time::Instant::now();
    if out.is_file() {
        bail!(
            "{}: a configuration of many zones writes one file per zone: --out must be a directory",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (whole, previous) = kept_zones(out, config)?;
    let output = match build::zones::build_zones(config, now, &previous, None) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}: {e}", config_path.display());
            eprintln!("nothing was written; {} is unchanged", out.display());
            return Ok(ExitCode::from(1));
        }
    };
    for w in &output.warnings {
        tracing::warn!("{w}");
    }
    if !allow_shrink {
        if let Err(refused) = build::zones::compare(&whole, &output.set).check(output.max_shrink) {
            eprintln!("error: {}: {refused}", out.display());
            eprintln!("nothing was written; {} is unchanged", out.display());
            return Ok(ExitCode::from(1));
        }
    }
    let to_write: Vec<(PathBuf, &mimi_publisher::Zone)> = output
        .set
        .zones
        .iter()
        .filter(|(origin, zone)| {
            !whole
                .zones
                .get(*origin)
                .is_some_and(|old| old.soa.serial == zone.soa.serial && old.same_content(zone))
        })
        .map(|(origin, zone)| (out.join(format!("{}.zone", origin.as_str())), &**zone))
        .collect();
    zonefile::write_sealed_zones_atomically(&to_write, output.seal.as_ref())
        .with_context(|| format!("writing zone files in {}", out.display()))?;
    let written = to_write.len();
    let mut removed = 0;
    for origin in whole.zones.keys() {
        if !output.set.zones.contains_key(origin) {
            let path = out.join(format!("{}.zone", origin.as_str()));
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let records = output.set.record_count();
    let zones = output.set.zones.len();
    if json {
        println!(
            "{}",
            json!({"zones": zones, "out": out, "records": records, "written": written, "removed": removed, "seconds": secs})
        );
    } else {
        eprintln!(
            "{}: {zones} zones, {records} records; {written} zone files written, {removed} removed ({secs:.2}s)",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `check` of a configuration of many zones: builds every zone; with a
/// state directory, compares them with the zones kept there.
fn check_many(
    path: &Path,
    config: &mimi_publisher::ZoneConfig,
    now: UnixTime,
    state_dir: Option<&Path>,
    allow_shrink: bool,
    json: bool,
) -> Result<serde_json::Value> {
    match build::zones::build_zones(config, now, &Default::default(), None) {
        Ok(built) => {
            let kept = match state_dir {
                Some(d) => Some(kept_zones(d, config)?.0),
                None => None,
            };
            let shrink = kept.as_ref().map(|k| build::zones::compare(k, &built.set));
            let refused = shrink
                .filter(|_| !allow_shrink)
                .and_then(|s| s.check(built.max_shrink).err());
            if !json {
                for w in &built.warnings {
                    println!("warning: {w}");
                }
                if let Some(s) = &shrink {
                    println!(
                        "compared with the zones kept in {}: {} assertions there, {} in the new zones, {} of them removed",
                        state_dir.expect("compared").display(),
                        s.before,
                        s.after,
                        s.removed
                    );
                }
                match &refused {
                    Some(r) => {
                        println!("error: {}: {r}", path.display());
                        println!(
                            "FAILED: {}: the new zones would be held back",
                            path.display()
                        );
                    }
                    None => println!(
                        "ok: {}: {} zones, {} records",
                        path.display(),
                        built.set.zones.len(),
                        built.set.record_count()
                    ),
                }
            }
            let zones: Vec<&str> = built.set.zones.keys().map(|o| o.as_str()).collect();
            Ok(
                json!({"config": path, "ok": refused.is_none(), "zones": zones, "records": built.set.record_count(),
                "problems": refused.iter().map(|r| json!({"file": path, "line": null, "message": r.to_string()})).collect::<Vec<_>>(),
                "warnings": built.warnings.iter().map(problem_json).collect::<Vec<_>>(),
                "shrink": shrink.map(|s| json!({"before": s.before, "after": s.after, "removed": s.removed, "refused": refused.is_some()}))}),
            )
        }
        Err(e) => {
            if !json {
                for p in &e.problems {
                    println!("error: {p}");
                }
                println!(
                    "FAILED: {}: {} problem(s)",
                    path.display(),
                    e.problems.len()
                );
            }
            Ok(
                json!({"config": path, "ok": false, "problems": e.problems.iter().map(problem_json).collect::<Vec<_>>(), "warnings": []}),
            )
        }
    }
}
