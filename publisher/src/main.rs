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
use mimi_publisher::rrl::RrlConfig;
use mimi_publisher::{build, config::parse_duration, keys, presigned, serve, zonefile};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
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
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Build a zone and write it as an RFC 1035 zone file (atomically).
    Build {
        /// Zone configuration file.
        config: PathBuf,
        /// Output zone file.
        #[arg(long)]
        out: PathBuf,
        /// Build as of this time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
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
        /// Build as of this time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Serve zones over UDP and TCP; reload on change, re-sign on time; stop on SIGINT/SIGTERM.
    Serve {
        /// Zone configuration files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Address to listen on (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5300")]
        listen: SocketAddr,
        /// Keep each served zone in DIR/<origin>.zone and start from it:
        /// a restart reuses its signatures and continues its serial.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        #[command(flatten)]
        rrl: RrlArgs,
    },
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
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // hickory-server logs every query at info, and (with the dnssec feature
    // we need for TSIG) warns on each DNSSEC-OK query to a zone without
    // NSEC records: keep it to errors unless RUST_LOG asks otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},hickory_server=error,hickory_proto=warn"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
        Command::Check { configs, now, json } => {
            let now = now_or(now);
            let mut ok = true;
            let mut reports = Vec::new();
            for c in &configs {
                match build::build_from_path(c, now, None, None) {
                    Ok(out) => {
                        if !json {
                            for w in &out.warnings {
                                println!("warning: {w}");
                            }
                            println!(
                                "ok: {}: zone {}, {} records",
                                c.display(),
                                out.zone.origin,
                                out.zone.record_count()
                            );
                        }
                        reports.push(json!({"config": c, "ok": true, "zone": out.zone.origin.as_str(), "records": out.zone.record_count(),
                            "problems": [], "warnings": out.warnings.iter().map(problem_json).collect::<Vec<_>>()}));
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
        Command::Build {
            config,
            out,
            now,
            json,
        } => build_cmd(&config, &out, now_or(now), json),
        Command::Push {
            config,
            server,
            tsig_key,
            dry_run,
            now,
            json,
        } => push_cmd(
            &config,
            server,
            tsig_key.as_deref(),
            dry_run,
            now_or(now),
            json,
        ),
        Command::Serve {
            configs,
            listen,
            state_dir,
            rrl,
        } => {
            let rrl = rrl.config()?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve::run(
                serve::ServeOptions {
                    configs,
                    listen,
                    state_dir,
                    rrl,
                    ..Default::default()
                },
                serve::shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn push_cmd(
    config: &Path,
    server: SocketAddr,
    tsig_key: Option<&Path>,
    dry_run: bool,
    now: UnixTime,
    json: bool,
) -> Result<ExitCode> {
    use mimi_publisher::push;
    let key = tsig_key
        .map(mimi_publisher::tsig::TsigKey::load)
        .transpose()?;
    let built = match build::build_from_path(config, now, None, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            eprintln!("nothing was sent to {server}");
            return Ok(ExitCode::from(1));
        }
    };
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
    let current = match rt.block_on(push::read_current(server, &zone.origin, key.as_ref())) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let diff = push::diff(&current, &zone);
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
                json!({"zone": zone.origin.as_str(), "server": server.to_string(), "dry_run": true, "add": list(&diff.add), "delete": list(&diff.delete), "unchanged": diff.unchanged, "updates": batches, "conflicts": conflicts()})
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
        }
        return Ok(ExitCode::SUCCESS);
    }
    match rt.block_on(push::apply(server, &zone.origin, &diff, key.as_ref())) {
        Ok(applied) => {
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

fn problem_json(p: &mimi_publisher::Problem) -> serde_json::Value {
    json!({"file": p.file, "line": p.line, "message": p.message})
}

fn build_cmd(config: &Path, out: &Path, now: UnixTime, json: bool) -> Result<ExitCode> {
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
    // text would be identical (only new or rolled-over mappings are signed).
    let kept = std::fs::read_to_string(out)
        .ok()
        .and_then(|t| zonefile::parse(&t).ok());
    let result = build::build_from_path(config, now, kept.as_ref(), Some(&progress));
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
    let mut zone = output.zone;
    let floor = zone.soa.serial;
    // Keep the serial when the content is unchanged; increase it otherwise.
    let previous = std::fs::read_to_string(out).ok();
    let mut changed = true;
    if let Some(prev_serial) = previous.as_deref().and_then(zonefile::read_serial) {
        zone.soa.serial = prev_serial;
        if previous.as_deref() == Some(zonefile::render(&zone).as_str()) {
            changed = false;
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
        zonefile::write_atomically(out, &zonefile::render(&zone))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"zone": zone.origin.as_str(), "out": out, "records": zone.record_count(), "serial": zone.soa.serial, "changed": changed, "seconds": secs})
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
