//! Automatic signing-key rollover from a key ceremony's bundle, end to
//! end, with time compressed to seconds: `mimi-publisher serve
//! --state-dir` as the hidden primary, Knot DNS and NSD as its
//! secondaries (NOTIFY, then IXFR/AXFR with TSIG), unbound caching in
//! front of them (at most 1 s), and `mimi-resolver` verifying through
//! unbound all the time. Every step of the schedule (publish ahead,
//! switch, re-sign, retire) has to be right for no lookup to fail: the
//! trust store allows no clock skew, so a key that signed before its
//! certificate's window, or before resolvers could see its certificate,
//! or a certificate removed while an assertion of its key was still
//! served, shows up as a failed lookup.
//!
//! Nothing waits a fixed time for something to happen: each wait is for
//! a condition (a log line, a served record, a lookup result) with a
//! deadline taken from the bundle's schedule.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{eventually, free_port, plain, publisher_serve, soa_serial, Daemon, Workspace};
use mimi_proto::{Assertion, Sii, UnixTime};
use mimi_publisher::input::bundle::{ceremony, CeremonyPlan};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

/// The users looked up all the time, and the SSI each must verify to.
const USERS: &[(&str, &str)] = &[
    ("alice@example.com", "mimi://chat.example.com/u/alice"),
    ("bob@example.com", "mimi://chat.example.com/u/bob"),
    ("carol@example.com", "mimi://chat.example.com/u/carol"),
];

/// Wall-clock time as fractional Unix seconds (the schedule's clock).
fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until the wall clock reaches Unix time `t` (the schedule's
/// times are wall-clock times, not durations from an arbitrary start).
async fn until(t: f64) {
    let d = t - now_f();
    if d > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(d)).await;
    }
}

/// A bundle's schedule, from the ceremony's plan.
struct Bundle {
    dir: PathBuf,
    /// Key ids in window order.
    kids: Vec<String>,
    /// `(not_before, expires)` of each key's certificate.
    windows: Vec<(u64, u64)>,
}

/// Runs a key ceremony into `ws/<rel>` with a fresh root key.
fn bundle(ws: &Workspace, rel: &str, keys: u32, validity: u64, overlap: u64) -> (Bundle, String) {
    let root = mimi_publisher::input::keys::generate();
    let start = UnixTime::now();
    let dir = ws.path(rel);
    let done = ceremony(
        &dir,
        &root,
        &CeremonyPlan {
            authority: mimi_proto::AuthorityName::parse("example.com").unwrap(),
            keys,
            start,
            key_validity: validity,
            overlap,
        },
    )
    .unwrap();
    let kids = done.added.iter().map(|c| c.kid().to_string()).collect();
    let windows = done
        .added
        .iter()
        .map(|c| (c.not_before().0, c.expires().0))
        .collect();
    let root_b64 = mimi_proto::PublicKey::from_verifying_key(root.verifying_key())
        .unwrap()
        .to_base64url();
    (Bundle { dir, kids, windows }, root_b64)
}

/// The trust store: the bundle's root key pinned, no clock skew allowed
/// (with the default 5 minutes a certificate would be accepted before its
/// window and a key that signs too early would go unnoticed).
fn trust(root_b64: &str) -> String {
    format!(
        "[policy]\nmin_authorities = 1\nmax_assertion_validity = \"1d\"\nmax_key_validity = \"1d\"\nclock_skew = \"0s\"\n\n[[authority]]\nname = \"example.com\"\nroot_keys = [\"{root_b64}\"]\nsii_scope = [\"mailto:*@example.com\"]\nssi_scope = [\"chat.example.com\"]\n"
    )
}

/// The rollover settings of a zone, as `[authority]` lines.
struct Timing {
    validity: u64,
    margin: u64,
    propagation: u64,
    warning: u64,
}

/// Writes `example.com/zone.toml` (TTL 1 s, SOA timers of seconds) that
/// rolls over the keys of `bundle`.
fn zone(ws: &Workspace, bundle: &Bundle, t: &Timing, transfer: Option<&str>) -> PathBuf {
    let mappings: String = USERS.iter().map(|(u, s)| format!("{u},{s}\n")).collect();
    ws.write("example.com/mappings.csv", &mappings);
    let mut s = format!(
        "origin = \"example.com\"\nrole = \"home\"\nttl = 1\nns = [\"ns1.example.com\"]\nmappings = \"mappings.csv\"\n\
         [glue]\n\"ns1.example.com\" = [\"192.0.2.53\"]\n\
         [soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\nrefresh = 2\nretry = 1\nexpire = 86400\nminimum = 1\nttl = 1\n\
         [authority]\nname = \"example.com\"\nbundle = {:?}\nvalidity = \"{}s\"\nresign_margin = \"{}s\"\npropagation_delay = \"{}s\"\nbundle_warning = \"{}s\"\n",
        bundle.dir.display().to_string(),
        t.validity,
        t.margin,
        t.propagation,
        t.warning
    );
    if let Some(tr) = transfer {
        s.push_str(&format!("[transfer]\n{tr}\n"));
    }
    ws.write("example.com/zone.toml", &s)
}

/// `mimi-publisher serve` on `listen` (with `--state-dir` if given),
/// logging to `log`.
fn serve(config: &Path, listen: SocketAddr, state: Option<&Path>, log: PathBuf) -> Daemon {
    publisher_serve(
        config,
        listen,
        state,
        log,
        "mimi_publisher=debug,hickory_proto=warn",
    )
}

/// The value of the first `name=<number>` field in `text`.
fn field(text: &str, name: &str) -> Option<u32> {
    let pat = format!(" {name}=");
    let at = text.find(&pat)? + pat.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The lines of `log` that contain `what`.
fn lines(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .map(str::to_owned)
        .collect()
}

/// Waits until `daemon`'s log has a line containing `what`; returns the
/// wall-clock time it was first seen (polled every 50 ms).
async fn logged(daemon: &mut Daemon, what: &str, deadline: f64) -> f64 {
    loop {
        daemon.assert_running();
        if daemon.log().contains(what) {
            return now_f();
        }
        if now_f() > deadline {
            panic!(
                "{}: no log line with {what:?} by the deadline:\n{}",
                daemon.name,
                daemon.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The TXT strings `server` answers at `name` (each record's strings
/// joined), or an error.
async fn txt(server: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).map_err(|e| e.to_string())?,
        RecordType::TXT,
    ));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    sock.send_to(&m.to_vec().map_err(|e| e.to_string())?, server)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let resp = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
    Ok(resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u16::from_le_bytes(b)
}

/// What the lookup loop saw.
#[derive(Default)]
struct Seen {
    /// Lookups that verified.
    ok: usize,
    /// Every failed lookup: when (Unix seconds), who, why.
    failures: Vec<String>,
    /// Key ids (`k=`) of the assertions at the names the lookups asked.
    kids: BTreeSet<String>,
}

/// Looks every user up through `server` every 200 ms until `stop`,
/// recording every failure and the key ids of the assertions seen.
fn lookup_loop(
    trust: String,
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut o =
            ResolverOptions::new(TrustStore::from_toml_str(&trust, "test trust store").unwrap());
        o.name_servers = NameServers::Explicit(vec![server]);
        o.timeout = Duration::from_secs(2);
        let resolver = Resolver::new(o).unwrap();
        while !stop.load(Ordering::Relaxed) {
            for (who, ssi) in USERS {
                let sii = Sii::parse(who, None).unwrap();
                let r = resolver.lookup(&sii).await;
                let at = now_f();
                let verdict = match r {
                    Err(e) => Err(format!("{at:.1} {who}: {e}")),
                    Ok(r)
                        if r.outcome() == Outcome::Verified
                            && r.verified.iter().any(|v| v.ssi.as_str() == *ssi) =>
                    {
                        Ok(r.names.clone())
                    }
                    Ok(r) => Err(format!(
                        "{at:.1} {who}: {:?}: verified {:?}, rejected {:?}, errors {:?}",
                        r.outcome(),
                        r.verified
                            .iter()
                            .map(|v| v.ssi.as_str())
                            .collect::<Vec<_>>(),
                        r.rejected
                            .iter()
                            .map(|x| format!("{} ({})", x.reason, x.record))
                            .collect::<Vec<_>>(),
                        r.errors
                    )),
                };
                match verdict {
                    Err(f) => seen.lock().unwrap().failures.push(f),
                    Ok(names) => {
                        seen.lock().unwrap().ok += 1;
                        // The key ids of what the lookup verified: the
                        // same names, through the same server.
                        for n in names {
                            if let Ok(texts) = txt(server, &n.fqdn()).await {
                                let kids: Vec<String> = texts
                                    .iter()
                                    .filter_map(|t| Assertion::parse(t).ok())
                                    .map(|a| a.kid().to_string())
                                    .collect();
                                seen.lock().unwrap().kids.extend(kids);
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The whole topology through a rollover of a 4-key bundle, with a
/// restart of the primary right after the first switch.
///
/// Schedule (S = the ceremony's start; key validity 36 s, overlap 18 s):
/// key 0 signs from S (the first zone may sign at once), key 1's
/// certificate is published ahead from S, key 1 signs from S+18, key 0's
/// certificate is retired once its last assertion (validity 12 s) has
/// expired, about S+30, and key 2 signs from S+36. Assertions are valid
/// 12 s and re-signed 6 s before they expire. The propagation delay
/// (3 s) plus the certificate TTL (1 s) must cover NOTIFY, the transfer
/// to Knot and NSD and unbound's 1 s cache, which it does on loopback by
/// a wide margin. The primary is stopped right after the first switch and
/// started again on the same state directory: it must continue the
/// rollover from the ledger in its zone file (no new bootstrap) and
/// switch to key 2 on schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_through_the_topology_never_fails_a_lookup() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let (b, root) = bundle(&ws, "bundle", 4, 36, 18);
    let step = (b.windows[1].0 - b.windows[0].0) as f64;
    assert_eq!(step, 18.0);
    let s0 = b.windows[0].0 as f64;
    let trust = trust(&root);
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());

    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut knot = secondaries::knot(&dir, primary, &["example.com"], &tsig);
    let mut nsd = secondaries::nsd(&dir, primary, &["example.com"], &tsig);
    let transfer = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{}\", \"{}\"]\ntsig_key = \"../tsig.key\"",
        knot.addr, nsd.addr
    );
    // A margin of 6 s: each re-signed record has to be written to the
    // state directory (fsync), NOTIFYed and transferred to both
    // secondaries, and unbound's cached copy must age out, within it,
    // also on a machine busy with other builds.
    let timing = Timing {
        validity: 12,
        margin: 6,
        propagation: 3,
        warning: 1,
    };
    let config = zone(&ws, &b, &timing, Some(&transfer));
    let state = ws.path("state");
    let mut first = serve(&config, primary, Some(&state), ws.path("serve-1.log"));
    let mut unbound = secondaries::unbound(&dir, &["example.com"], &[knot.addr, nsd.addr], 1);
    logged(
        &mut first,
        &format!("key rollover: signing with key {}", b.kids[0]),
        s0 + 10.0,
    )
    .await;

    // Once the chain answers, every lookup from then on must verify.
    let trust2 = trust.clone();
    let via = unbound.addr;
    eventually(
        Duration::from_secs(15),
        "alice to verify through unbound → Knot/NSD",
        || {
            let trust = trust2.clone();
            async move {
                let mut o = ResolverOptions::new(
                    TrustStore::from_toml_str(&trust, "test trust store").unwrap(),
                );
                o.name_servers = NameServers::Explicit(vec![via]);
                o.timeout = Duration::from_secs(1);
                let r = Resolver::new(o)
                    .unwrap()
                    .lookup(&Sii::parse("alice@example.com", None).unwrap())
                    .await
                    .ok()?;
                (r.outcome() == Outcome::Verified).then_some(())
            }
        },
    )
    .await;
    // The secondaries must both serve the zone before the loop starts
    // (unbound asks either).
    for (name, addr) in [("knot", knot.addr), ("nsd", nsd.addr)] {
        eventually(
            Duration::from_secs(15),
            &format!("{name} to serve example.com"),
            || soa_serial(addr, "example.com"),
        )
        .await;
    }
    let started = now_f();
    assert!(
        started < s0 + step - 4.0,
        "the topology took until S+{:.1} to start: too late for the schedule",
        started - s0
    );
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let looper = lookup_loop(trust.clone(), unbound.addr, stop.clone(), seen.clone());

    // First switch, key 0 → key 1, at S+18 (not before: key 1's window).
    let switched = logged(
        &mut first,
        &format!(
            "key rollover: switched signing from key {} to key {}",
            b.kids[0], b.kids[1]
        ),
        s0 + step + 6.0,
    )
    .await;
    assert!(
        switched >= s0 + step,
        "switched to key 1 at S+{:.1}, before its window at S+{step}",
        switched - s0
    );
    eprintln!("switch 0 → 1 seen at S+{:.1}", switched - s0);

    // Restart: SIGTERM, wait until it has exited and the secondaries have
    // answered a few lookups without it, start it again on the same
    // state directory and port.
    let status = first.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not stop cleanly on SIGTERM:\n{}",
        first.log()
    );
    let ok_at_stop = seen.lock().unwrap().ok;
    eventually(
        Duration::from_secs(5),
        "lookups to go on while the primary is down",
        || async { (seen.lock().unwrap().ok >= ok_at_stop + 3).then_some(()) },
    )
    .await;
    let mut second = serve(&config, primary, Some(&state), ws.path("serve-2.log"));
    eventually(
        Duration::from_secs(10),
        "the restarted primary to answer",
        || soa_serial(primary, "example.com"),
    )
    .await;

    // Key 0's certificate is retired once its last assertion expired
    // (about S+30); the restarted server does it from the ledger.
    logged(
        &mut second,
        &format!("key rollover: removed the certificate of key {}", b.kids[0]),
        s0 + step + timing.validity as f64 + 8.0,
    )
    .await;
    // The next switch, key 1 → key 2, at S+36, on schedule.
    let switched2 = logged(
        &mut second,
        &format!(
            "key rollover: switched signing from key {} to key {}",
            b.kids[1], b.kids[2]
        ),
        s0 + 2.0 * step + 6.0,
    )
    .await;
    assert!(
        switched2 >= s0 + 2.0 * step,
        "switched to key 2 at S+{:.1}, before its window at S+{}",
        switched2 - s0,
        2.0 * step
    );
    eprintln!("switch 1 → 2 seen at S+{:.1}", switched2 - s0);
    // Lookups go on until they have seen key 2's assertions.
    let kid2 = b.kids[2].clone();
    eventually(
        Duration::from_secs(10),
        "lookups to see assertions signed by key 2",
        || async { seen.lock().unwrap().kids.contains(&kid2).then_some(()) },
    )
    .await;
    // And a little longer, across key 1's re-signing (unbound's cache
    // and both secondaries now hold key 2's certificate set).
    until(switched2 + 3.0).await;
    stop.store(true, Ordering::Relaxed);
    looper.await.unwrap();

    for d in [&mut knot.daemon, &mut nsd.daemon, &mut unbound.daemon] {
        d.assert_running();
    }
    let log1 = first.log();
    let log2 = second.log();
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "{} of {} lookups failed (S = {s0}):\n{}\n--- serve (first) ---\n{log1}\n--- serve (restarted) ---\n{log2}",
        seen.failures.len(),
        seen.failures.len() + seen.ok,
        seen.failures.join("\n")
    );
    assert!(seen.ok >= 60, "only {} lookups verified", seen.ok);
    assert!(
        seen.kids.len() >= 3,
        "lookups saw assertions of only {:?}",
        seen.kids
    );
    let all = format!("{log1}{log2}");
    let switches = lines(&all, "key rollover: switched signing from key");
    assert!(switches.len() >= 2, "switches: {switches:#?}");
    assert!(
        !lines(&all, "key rollover: removed the certificate").is_empty(),
        "no certificate was retired"
    );
    // The restarted server continued from the ledger: it did not
    // bootstrap again.
    assert!(
        lines(&log2, "key rollover: signing with key").is_empty(),
        "the restarted serve bootstrapped the rollover again:\n{log2}"
    );
    let ledger = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|t| t.contains("; mimi-rollover "))
        .expect("no zone file with a rollover ledger in the state directory");
    assert!(
        ledger.contains(&format!("; mimi-rollover active {}", b.kids[2])),
        "{ledger}"
    );
    eprintln!(
        "{} lookups through unbound, all verified; key ids seen: {:?}",
        seen.ok, seen.kids
    );
    second.stop();
}

/// A 2-key bundle that runs out: the server warns ahead, then, once the
/// last certificate has expired, the rebuild fails and the previous zone
/// stays; until then every assertion it serves verifies.
///
/// Schedule (key validity 16 s, overlap 8 s): key 0 from S, key 1 from
/// S+8, the bundle runs out at S+24 − margin 4 s = S+20 (key 1 signs on,
/// degraded, with a warning) and ends at S+24; the warning (12 s ahead)
/// starts at S+8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_that_runs_out_warns_then_errors_and_keeps_the_zone() {
    let ws = Workspace::new();
    let (b, root) = bundle(&ws, "bundle", 2, 16, 8);
    let s0 = b.windows[0].0 as f64;
    let end = b.windows[1].1 as f64;
    // A margin of 4 s: a re-signed record must be served within the
    // margin, and a loaded machine was seen to take over a second from
    // the start of a rebuild to serving its result (2 s was too little).
    // No --state-dir here: its fsyncs were seen to take 4 s under the I/O
    // of parallel builds, and this test is about the bundle, not restarts.
    let timing = Timing {
        validity: 8,
        margin: 4,
        propagation: 1,
        warning: 12,
    };
    let config = zone(&ws, &b, &timing, None);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = serve(&config, listen, None, ws.path("serve.log"));
    logged(
        &mut server,
        &format!("key rollover: signing with key {}", b.kids[0]),
        s0 + 5.0,
    )
    .await;

    // Straight at the server, until just before the last certificate ends.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let looper = lookup_loop(trust(&root), listen, stop.clone(), seen.clone());
    let warned = logged(&mut server, "the key bundle runs out", end).await;
    assert!(
        warned < end - 1.0,
        "warned at S+{:.1}, the bundle ends at S+{:.1}",
        warned - s0,
        end - s0
    );
    logged(
        &mut server,
        &format!(
            "key rollover: switched signing from key {} to key {}",
            b.kids[0], b.kids[1]
        ),
        end,
    )
    .await;
    until(end - 1.0).await;
    stop.store(true, Ordering::Relaxed);
    looper.await.unwrap();

    // After the end, the rebuild fails and says why; the zone of the last
    // successful build stays (the failure is retried only a minute later).
    logged(
        &mut server,
        "no key of the bundle can sign",
        end + (timing.validity + 5) as f64,
    )
    .await;
    let log = plain(&server.log());
    let failed_at = log.find("no key of the bundle can sign").unwrap();
    let last_good = log[..failed_at]
        .lines()
        .rev()
        .filter(|l| l.contains("zone reloaded") || l.contains("zone loaded"))
        .find_map(|l| field(l, "serial"))
        .expect("no successful build before the failure");
    assert_eq!(
        field(&log[failed_at..], "serial"),
        Some(last_good),
        "the failure names another serial:\n{log}"
    );
    assert_eq!(
        soa_serial(listen, "example.com").await,
        Some(last_good),
        "the zone of the last good build is not served after the bundle ran out:\n{log}"
    );
    // Nothing was built after the failure.
    assert!(
        !log[failed_at..].contains("zone reloaded"),
        "a zone was built after the bundle ran out:\n{log}"
    );
    let log = server.log();
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "{} lookups failed before the bundle ended (S = {s0}, end = {end}):\n{}\n--- serve ---\n{log}",
        seen.failures.len(),
        seen.failures.join("\n")
    );
    assert!(seen.ok >= 30, "only {} lookups verified", seen.ok);
    assert_eq!(seen.kids.len(), 2, "{:?}", seen.kids);
    server.assert_running();
    server.stop();
}
