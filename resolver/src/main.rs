//! `mimi-resolve`: look up verified SSIs for an email address or telephone
//! number (a thin shell over the `mimi_resolver` library).
//!
//! Exit codes of `lookup`: 0 verified, 1 not found, 2 bad input or
//! configuration, 3 DNS failure, 4 records found but none verified, 5 an
//! internal error (a bug: the lookup panicked; it is caught, reported and
//! never takes other lookups down), 6 no privacy buckets (`--private`, and
//! no zone publishes buckets: nothing naming the SII was asked). `batch` exits 0 when every input line
//! was processed (each line's outcome is in its JSON, `internal_error` for a
//! caught panic) and 2 for bad configuration or unreadable input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit code of a lookup that failed with an internal error (a caught panic).
const EXIT_INTERNAL: u8 = 5;
use mimi_proto::{DomainName, Region, Sii, UnixTime};
use mimi_resolver::args::ResolverArgs;
use mimi_resolver::output::{
    batch_line_json, dns_error_json, dns_error_text, exit_code, names_json, no_buckets_json,
    no_buckets_text, resolution_json, resolution_text, EXIT_NO_BUCKETS,
};
use mimi_resolver::{
    discovery_names, LookupError, Outcome, ParsedConfig, Resolver, ResolverOptions,
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
    #[command(flatten)]
    resolver: ResolverArgs,
    /// Lookups in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Judge validity at this Unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
}

#[derive(Args)]
struct NameArgs {
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
struct LookupArgs {
    /// Email address or telephone number (mailto:, tel:, +CC… or national with --region).
    sii: String,
    #[command(flatten)]
    resolver: ResolverArgs,
    /// Also look up SRV endpoints of verified SSIs.
    #[arg(long)]
    endpoints: bool,
    /// Judge validity at this Unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
}

fn parse_zone(s: &str) -> Result<DomainName, String> {
    DomainName::parse(s).map_err(|e| e.to_string())
}

/// Bad input or configuration: message already formatted.
struct Usage(String);

fn canonical(input: &str, region: Option<Region>) -> Result<Sii, Usage> {
    Sii::parse(input, region).map_err(|e| Usage(format!("{input:?}: {e}")))
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

fn name(a: NameArgs) -> Result<u8, Usage> {
    let region = a
        .region
        .as_deref()
        .map(|r| r.parse::<Region>())
        .transpose()
        .map_err(|e| Usage(format!("--region: {e}")))?;
    let sii = canonical(&a.sii, region)?;
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

fn batch(args: BatchArgs) -> Result<u8, Usage> {
    use std::io::BufRead;
    let ParsedConfig {
        options: opts,
        region,
    } = args.resolver.parse().map_err(Usage)?;
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
    let concurrency = args.concurrency.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(concurrency);
    run_batch(&lines, opts, region, now, concurrency, threads)?;
    Ok(0)
}

/// Resolves `lines` on `threads` worker threads and writes one JSON line per
/// input line to standard output, in input order.
///
/// Each worker runs its own single-threaded Tokio runtime and its own
/// [`Resolver`] (hickory's UDP sockets and wake-ups stay on one thread, with
/// no cross-thread scheduling), takes the next input line from a shared
/// counter whenever one of its `concurrency / threads` lookups completes, and
/// does the verification and JSON rendering itself, so both DNS handling and
/// Ed25519 verification use every core. The main thread only restores the
/// input order and writes through one buffered, locked stdout.
fn run_batch(
    lines: &[String],
    opts: ResolverOptions,
    region: Option<Region>,
    now: UnixTime,
    concurrency: usize,
    threads: usize,
) -> Result<(), Usage> {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let per_thread = concurrency.div_ceil(threads).max(1);
    let next = AtomicUsize::new(0);
    let next = &next;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(usize, String)>>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                let opts = opts.clone();
                scope.spawn(move || -> Result<(), Usage> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Usage(format!("cannot start the async runtime: {e}")))?;
                    runtime.block_on(async move {
                        let resolver = Resolver::new(opts).map_err(|e| Usage(e.to_string()))?;
                        let resolver = &resolver;
                        let indices = std::iter::from_fn(|| {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            (i < lines.len()).then_some(i)
                        });
                        // Results go to the writer in bunches of whatever is
                        // ready at once: one channel send (and at most one
                        // wake-up of the writer) per bunch, not per line.
                        let mut results = futures::stream::iter(indices)
                            .map(|i| async move {
                                (i, batch_line(resolver, &lines[i], region, now).await)
                            })
                            .buffer_unordered(per_thread)
                            .ready_chunks(per_thread);
                        while let Some(bunch) = results.next().await {
                            if tx.send(bunch).is_err() {
                                break; // the writer gave up
                            }
                        }
                        Ok(())
                    })
                })
            })
            .collect();
        drop(tx);

        let written = write_in_order(
            rx.into_iter().flatten(),
            std::io::BufWriter::new(std::io::stdout().lock()),
        )
        .map_err(|e| Usage(format!("writing output: {e}")));
        // rx is gone now, so workers stop early if writing failed.
        for worker in workers {
            worker.join().expect("batch worker panicked")?;
        }
        written
    })
}

/// Writes `(index, line)` pairs arriving in any order as lines in index
/// order (indices 0, 1, 2, … each exactly once), holding back those that
/// arrive early.
fn write_in_order(
    results: impl IntoIterator<Item = (usize, String)>,
    mut out: impl std::io::Write,
) -> std::io::Result<()> {
    let mut pending = std::collections::BTreeMap::new();
    let mut want = 0;
    for (i, line) in results {
        pending.insert(i, line);
        while let Some(line) = pending.remove(&want) {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            want += 1;
        }
    }
    out.flush()
}

/// The JSON line of one batch input line.
async fn batch_line(
    resolver: &Resolver,
    input: &str,
    region: Option<Region>,
    now: UnixTime,
) -> String {
    let report = resolver.lookup_input(input, region, now).await;
    batch_line_json(input, report.to_json(false)).to_string()
}

fn lookup(args: LookupArgs) -> Result<u8, Usage> {
    let ParsedConfig {
        mut options,
        region,
    } = args.resolver.parse().map_err(Usage)?;
    let sii = canonical(&args.sii, region)?;
    options.endpoints = args.endpoints;
    let now = args.now.map(UnixTime).unwrap_or_else(UnixTime::now);
    let json = args.json;
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
        Err((sii, LookupError::NoBuckets { zones, errors })) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&no_buckets_json(&sii, &zones, &errors))
                        .expect("JSON")
                );
            } else {
                print!("{}", no_buckets_text(&sii, &zones, &errors));
            }
            Ok(EXIT_NO_BUCKETS)
        }
        Err((_, e @ LookupError::Internal(_))) => {
            tracing::error!("{e}");
            Ok(EXIT_INTERNAL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_written_in_input_order() {
        let mut out = Vec::new();
        let results = [3, 1, 0, 2, 5, 4].map(|i| (i, format!("line {i}")));
        write_in_order(results, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\n"
        );
    }
}
