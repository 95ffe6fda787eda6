//! The authoritative server end to end, on loopback: answers over UDP and
//! TCP, long records, REFUSED outside the zones, hot reload of changed,
//! replaced, deleted and broken inputs, and clean shutdown.

mod common;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::tcp::TcpClientStream;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};
use mimi_proto::name::discovery_name;
use mimi_proto::{Assertion, DomainName, Sii};
use mimi_publisher::serve::{
    self, ReloadEvent, ReloadReason, RunningServer, ServeError, ServeOptions,
};
use tokio::sync::broadcast;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A generous bound for a change to be served (the target is 2 s).
const RELOAD_BOUND: Duration = Duration::from_secs(5);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    mappings: PathBuf,
    key: SigningKey,
    origin: DomainName,
}

use common::CONFIG;

fn fixture(mappings: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mappings_path = dir.path().join("mappings.csv");
    std::fs::write(&mappings_path, mappings).unwrap();
    let key = mimi_publisher::input::keys::generate();
    mimi_publisher::input::keys::write_signing_key(&dir.path().join("signing.pem"), &key).unwrap();
    Fixture {
        _dir: dir,
        config,
        mappings: mappings_path,
        key,
        origin: DomainName::parse("example.com").unwrap(),
    }
}

fn options(f: &Fixture) -> ServeOptions {
    ServeOptions {
        configs: vec![f.config.clone()],
        listen: "127.0.0.1:0".parse().unwrap(),
        debounce: Duration::from_millis(200),
        ..ServeOptions::default()
    }
}

fn sii(s: &str) -> Sii {
    Sii::parse(s, None).unwrap()
}

/// The discovery name of `s` in zone `origin`, as a DNS name.
fn name_of(s: &str, origin: &DomainName) -> Name {
    Name::from_str(&discovery_name(&sii(s).label(), origin).unwrap().fqdn()).unwrap()
}

fn long_ssi() -> String {
    format!("mimi://chat.example.org/u/{}", "x".repeat(380))
}

async fn udp_client(addr: std::net::SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(bg);
    client
}

async fn tcp_client(addr: std::net::SocketAddr) -> Client<TokioRuntimeProvider> {
    let (stream, sender) = TcpClientStream::new(
        addr,
        None,
        Some(Duration::from_secs(2)),
        TokioRuntimeProvider::default(),
    );
    let (client, bg) = Client::<TokioRuntimeProvider>::with_timeout(
        stream.await.unwrap(),
        sender,
        Duration::from_secs(2),
    );
    tokio::spawn(bg);
    client
}

/// The response code and, per TXT RR in the answer, its character-strings.
async fn query_txt(
    client: &mut Client<TokioRuntimeProvider>,
    name: &Name,
) -> (ResponseCode, Vec<Vec<Vec<u8>>>) {
    let response = client
        .query(name.clone(), DNSClass::IN, RecordType::TXT)
        .await
        .unwrap();
    let rrs = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect();
    (response.metadata.response_code, rrs)
}

/// The texts (concatenated strings) of the TXT RRs at `name`.
async fn texts(client: &mut Client<TokioRuntimeProvider>, name: &Name) -> Vec<String> {
    let (_, rrs) = query_txt(client, name).await;
    rrs.into_iter()
        .map(|strings| String::from_utf8(strings.concat()).unwrap())
        .collect()
}

/// Checks that `text` is an assertion for `ssi` about `sii_input`, signed by
/// the fixture's key.
fn check_assertion(f: &Fixture, text: &str, sii_input: &str, ssi: &str) {
    let a = Assertion::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(a.ssi().as_str(), ssi);
    assert_eq!(a.authority().as_str(), "example.com");
    let pk = mimi_publisher::input::keys::public_key(&f.key).unwrap();
    a.verify(&sii(sii_input).hash(), &pk).unwrap();
}

/// Polls until `check` holds, or panics after [`RELOAD_BOUND`]; returns the
/// time it took.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < RELOAD_BOUND,
            "{what}: not seen within {RELOAD_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for the next reload event that satisfies `pred`.
async fn next_event(
    rx: &mut broadcast::Receiver<ReloadEvent>,
    pred: impl Fn(&ReloadEvent) -> bool,
) -> ReloadEvent {
    tokio::time::timeout(RELOAD_BOUND, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("reload event not seen in time")
}

async fn shutdown_quickly(server: RunningServer) {
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown within 5 s")
        .unwrap();
    eprintln!("shutdown took {:?}", started.elapsed());
}

/// Writes `path` the way editors do: a temporary file renamed over it.
fn replace_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_records_over_udp_and_tcp() {
    init_tracing();
    let long = long_ssi();
    let f = fixture(&format!(
        "# users\nalice@example.com,mimi://chat.example.org/u/alice\nbob@example.com,{long}\n"
    ));
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(options(&f)).await.unwrap();
        let addr = server.local_addr();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        let serial = server.serial(&f.origin).expect("zone served");
        assert_eq!(
            server.serial(&DomainName::parse("other.example").unwrap()),
            None
        );

        let alice = name_of("alice@example.com", &f.origin);
        for (proto, mut client) in [
            ("udp", udp_client(addr).await),
            ("tcp", tcp_client(addr).await),
        ] {
            let (code, rrs) = query_txt(&mut client, &alice).await;
            assert_eq!(code, ResponseCode::NoError, "{proto}");
            assert_eq!(rrs.len(), 1, "{proto}: one assertion");
            let text = String::from_utf8(rrs[0].concat()).unwrap();
            check_assertion(
                &f,
                &text,
                "alice@example.com",
                "mimi://chat.example.org/u/alice",
            );

            // A record over 255 octets comes as several strings.
            let (code, rrs) = query_txt(&mut client, &name_of("bob@example.com", &f.origin)).await;
            assert_eq!(code, ResponseCode::NoError, "{proto}");
            assert_eq!(rrs.len(), 1);
            assert!(rrs[0].len() >= 2, "{proto}: {} strings", rrs[0].len());
            assert!(rrs[0].iter().all(|s| s.len() <= 255));
            let text = String::from_utf8(rrs[0].concat()).unwrap();
            assert!(text.len() > 400);
            check_assertion(&f, &text, "bob@example.com", &long);

            // SOA, with the serial the server reports.
            let response = client
                .query(
                    Name::from_str("example.com.").unwrap(),
                    DNSClass::IN,
                    RecordType::SOA,
                )
                .await
                .unwrap();
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
            assert!(
                response.metadata.authoritative,
                "{proto}: authoritative answer"
            );
            let soa = response
                .answers
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.clone()),
                    _ => None,
                })
                .expect("SOA in answer");
            assert_eq!(soa.serial, serial);
            assert_eq!(soa.mname, Name::from_str("ns1.example.com.").unwrap());

            // A name in the zone without records: NXDOMAIN.
            let (code, rrs) =
                query_txt(&mut client, &name_of("nobody@example.com", &f.origin)).await;
            assert_eq!(code, ResponseCode::NXDomain, "{proto}");
            assert!(rrs.is_empty());

            // A name outside every zone: REFUSED.
            let (code, _) =
                query_txt(&mut client, &Name::from_str("www.example.net.").unwrap()).await;
            assert_eq!(code, ResponseCode::Refused, "{proto}");
        }

        // UDP (answered at the byte level) and TCP (answered through
        // hickory) give the same answers, section by section.
        let mut udp = udp_client(addr).await;
        let mut tcp = tcp_client(addr).await;
        let names = [
            alice.clone(),
            name_of("bob@example.com", &f.origin),
            name_of("nobody@example.com", &f.origin),
            Name::from_str("_mimi.example.com.").unwrap(),
            Name::from_str("example.com.").unwrap(),
            Name::from_str("ns1.example.com.").unwrap(),
            Name::from_str("www.example.net.").unwrap(),
        ];
        let mut compared = 0;
        for name in &names {
            for rtype in [
                RecordType::TXT,
                RecordType::SOA,
                RecordType::NS,
                RecordType::A,
            ] {
                let a = udp.query(name.clone(), DNSClass::IN, rtype).await.unwrap();
                let b = tcp.query(name.clone(), DNSClass::IN, rtype).await.unwrap();
                let what = format!("{name} {rtype}");
                assert_eq!(a.metadata.response_code, b.metadata.response_code, "{what}");
                assert_eq!(a.metadata.authoritative, b.metadata.authoritative, "{what}");
                assert_eq!(a.answers, b.answers, "{what}");
                assert_eq!(a.authorities, b.authorities, "{what}");
                assert_eq!(a.additionals, b.additionals, "{what}");
                compared += 1;
            }
        }
        assert_eq!(compared, names.len() * 4);
        shutdown_quickly(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_changes_and_keeps_serving_on_errors() {
    init_tracing();
    let alice_line = "alice@example.com,mimi://chat.example.org/u/alice\n";
    let f = fixture(alice_line);
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Removing one of two mappings, and deleting the file, are far
        // beyond the shrink guard's default: confirm them (the guard has
        // its own tests in reload.rs).
        let opts = ServeOptions {
            allow_shrink: true,
            ..options(&f)
        };
        let server = serve::start(opts).await.unwrap();
        let mut events = server.subscribe();
        let mut client = udp_client(server.local_addr()).await;
        let alice = name_of("alice@example.com", &f.origin);
        let carol = name_of("carol@example.com", &f.origin);
        let serial0 = server.serial(&f.origin).unwrap();
        assert_eq!(texts(&mut client, &alice).await.len(), 1);
        assert!(texts(&mut client, &carol).await.is_empty());

        // Append a mapping: served soon, with a higher serial.
        let carol_line = "carol@example.com,im:carol@chat.example.org\n";
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&f.mappings)
            .unwrap();
        std::io::Write::write_all(&mut file, carol_line.as_bytes()).unwrap();
        drop(file);
        let took = eventually("added mapping", || {
            let (mut client, carol) = (client.clone(), carol.clone());
            async move { !texts(&mut client, &carol).await.is_empty() }
        })
        .await;
        eprintln!("append served after {took:?}");
        let text = texts(&mut client, &carol).await.remove(0);
        check_assertion(&f, &text, "carol@example.com", "im:carol@chat.example.org");
        let serial1 = server.serial(&f.origin).unwrap();
        assert!(serial1 > serial0, "{serial1} > {serial0}");
        assert_eq!(
            texts(&mut client, &alice).await.len(),
            1,
            "unchanged record still served"
        );

        // Remove one, editor style (write elsewhere, rename over).
        replace_by_rename(&f.mappings, carol_line);
        let took = eventually("removed mapping", || {
            let (mut client, alice) = (client.clone(), alice.clone());
            async move { texts(&mut client, &alice).await.is_empty() }
        })
        .await;
        eprintln!("removal (rename) served after {took:?}");
        let serial2 = server.serial(&f.origin).unwrap();
        assert!(serial2 > serial1, "{serial2} > {serial1}");

        // A broken input: the previous zone stays, and the event says why.
        std::fs::write(&f.mappings, format!("{carol_line}not-an-sii,mimi://x/y\n")).unwrap();
        let failed = next_event(&mut events, |e| !e.ok).await;
        eprintln!("failure event: {failed:?}");
        assert_eq!(failed.origin, f.origin);
        assert_eq!(failed.serial, serial2);
        assert!(!failed.changed);
        assert!(
            failed.message.contains("mappings.csv:2:"),
            "{}",
            failed.message
        );
        assert_eq!(server.serial(&f.origin), Some(serial2));
        assert_eq!(
            texts(&mut client, &carol).await.len(),
            1,
            "old zone still served"
        );

        // Fixing it reloads again.
        std::fs::write(&f.mappings, format!("{carol_line}{alice_line}")).unwrap();
        let fixed = next_event(&mut events, |e| e.ok && e.changed).await;
        assert!(fixed.serial > serial2);
        assert_eq!(server.serial(&f.origin), Some(fixed.serial));
        assert_eq!(texts(&mut client, &alice).await.len(), 1);
        let serial3 = fixed.serial;

        // Deleted: a failed rebuild, still serving; recreated: picked up.
        std::fs::remove_file(&f.mappings).unwrap();
        let failed = next_event(&mut events, |e| !e.ok).await;
        assert!(
            failed.message.contains("mappings.csv"),
            "{}",
            failed.message
        );
        assert_eq!(
            texts(&mut client, &alice).await.len(),
            1,
            "old zone still served"
        );
        std::fs::write(&f.mappings, alice_line).unwrap();
        let started = Instant::now();
        let recreated = next_event(&mut events, |e| e.ok && e.changed).await;
        eprintln!("recreated file served after {:?}", started.elapsed());
        assert!(recreated.serial > serial3);
        assert!(texts(&mut client, &carol).await.is_empty());

        shutdown_quickly(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_config_that_switches_files() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\n");
    let dir = f.config.parent().unwrap().to_owned();
    let other_dir = dir.join("sub");
    std::fs::create_dir(&other_dir).unwrap();
    let other = other_dir.join("other.csv");
    // (alice stays: the switch is not a removal the shrink guard holds back)
    std::fs::write(
        &other,
        "alice@example.com,mimi://chat.example.org/u/alice\ndave@example.com,mimi://chat.example.org/u/dave\n",
    )
    .unwrap();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(options(&f)).await.unwrap();
        let mut events = server.subscribe();
        let mut client = udp_client(server.local_addr()).await;
        let dave = name_of("dave@example.com", &f.origin);

        replace_by_rename(&f.config, &CONFIG.replace("mappings.csv", "sub/other.csv"));
        next_event(&mut events, |e| e.ok && e.changed).await;
        assert_eq!(texts(&mut client, &dave).await.len(), 1);

        // The new file, in a directory not watched before, is now watched.
        std::fs::write(
            &other,
            "alice@example.com,mimi://chat.example.org/u/alice\ndave@example.com,mimi://chat.example.org/u/dave\nerin@example.com,mimi://chat.example.org/u/erin\n",
        )
        .unwrap();
        next_event(&mut events, |e| e.ok && e.changed).await;
        assert_eq!(texts(&mut client, &name_of("erin@example.com", &f.origin)).await.len(), 1);
        shutdown_quickly(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_fails_with_every_problem_located() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\nnot-an-sii,mimi://x/y\n");
    let err = serve::start(options(&f)).await.unwrap_err();
    assert!(matches!(err, ServeError::Build { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("zone.toml"), "{msg}");
    assert!(msg.contains("mappings.csv:2:"), "{msg}");

    let err = serve::start(ServeOptions::new(vec![])).await.unwrap_err();
    assert!(matches!(err, ServeError::NoZones), "{err:?}");

    let mut opts = options(&f);
    opts.configs = vec![f.config.clone(), f.config.clone()];
    std::fs::write(
        &f.mappings,
        "alice@example.com,mimi://chat.example.org/u/alice\n",
    )
    .unwrap();
    let err = serve::start(opts).await.unwrap_err();
    assert!(matches!(err, ServeError::DuplicateOrigin { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_when_shutdown_completes() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\n");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve::run(options(&f), async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "serving until told to stop");
    let started = Instant::now();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns within 5 s")
        .unwrap()
        .unwrap();
    eprintln!("run returned {:?} after shutdown", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resigns_on_timer_without_file_changes() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\n");
    // Validity 3 s, margin 1 s: every record's window rolls over within 2 s.
    let short = CONFIG.replace(
        "key = \"signing.pem\"",
        "key = \"signing.pem\"\nvalidity = \"3s\"\nresign_margin = \"1s\"",
    );
    std::fs::write(&f.config, short).unwrap();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(options(&f)).await.unwrap();
        let mut events = server.subscribe();
        let mut client = udp_client(server.local_addr()).await;
        let alice = name_of("alice@example.com", &f.origin);
        let before = texts(&mut client, &alice).await;
        let serial0 = server.serial(&f.origin).unwrap();

        let event = next_event(&mut events, |e| {
            e.reason == ReloadReason::Resign && e.ok && e.changed
        })
        .await;
        assert!(event.serial > serial0);
        let after = texts(&mut client, &alice).await;
        assert_eq!(after.len(), 1);
        assert_ne!(after, before, "re-signed with a new window");
        check_assertion(
            &f,
            &after[0],
            "alice@example.com",
            "mimi://chat.example.org/u/alice",
        );
        shutdown_quickly(server).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_port_is_a_bind_error() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\n");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut opts = options(&f);
    opts.listen = taken.local_addr().unwrap();
    let err = serve::start(opts).await.unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}

/// With a state directory, the served zone is kept on disk and a restart
/// continues from it: same content, same serial (even one above what a
/// fresh build would choose), and the records keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_continues_from_the_kept_zone() {
    init_tracing();
    let f = fixture("alice@example.com,mimi://chat.example.org/u/alice\nbob@example.com,mimi://chat.example.org/u/bob\n");
    let state = f._dir.path().join("state");
    let kept = state.join("example.com.zone");
    let opts = ServeOptions {
        state_dir: Some(state.clone()),
        ..options(&f)
    };
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = serve::start(opts.clone()).await.unwrap();
        let serial = server.serial(&f.origin).unwrap();
        let kept_serial = || {
            std::fs::read_to_string(&kept)
                .ok()
                .and_then(|t| mimi_publisher::zone::zonefile::read_serial(&t))
        };
        eventually("the served zone is kept", || async {
            kept_serial() == Some(serial)
        })
        .await;
        shutdown_quickly(server).await;

        // Say the last serial served before the restart was well above
        // the one a fresh build picks (several changes within a second).
        // (Sealed again with the key, as the server would have: a kept file
        // changed by anyone else lends only its serial, see reload.rs.)
        let text = std::fs::read_to_string(&kept).unwrap();
        let ahead = serial + 1000;
        let seal = mimi_publisher::zone::seal::SealKey::from_signing_key(&f.key);
        std::fs::write(
            &kept,
            mimi_publisher::zone::seal::seal(
                &mimi_publisher::zone::seal::body(&text)
                    .replace(&format!("{serial} ; serial"), &format!("{ahead} ; serial")),
                &seal,
            ),
        )
        .unwrap();
        let server = serve::start(opts.clone()).await.unwrap();
        assert_eq!(server.serial(&f.origin), Some(ahead), "serial continues");
        let mut client = udp_client(server.local_addr()).await;
        let texts = texts(&mut client, &name_of("bob@example.com", &f.origin)).await;
        assert_eq!(texts.len(), 1);
        check_assertion(
            &f,
            &texts[0],
            "bob@example.com",
            "mimi://chat.example.org/u/bob",
        );

        // A change goes on from there, and is kept too.
        replace_by_rename(
            &f.mappings,
            "alice@example.com,mimi://chat.example.org/u/alice\nbob@example.com,mimi://chat.example.org/u/bob\ncarol@example.com,mimi://chat.example.org/u/carol\n",
        );
        let zone_serial = |server: &RunningServer| server.serial(&f.origin);
        eventually("the change is served", || async {
            zone_serial(&server).is_some_and(|s| s > ahead)
        })
        .await;
        // Kept before it was served.
        assert_eq!(kept_serial(), zone_serial(&server));
        shutdown_quickly(server).await;

        // A kept file that does not read back is ignored: the zone is
        // built from scratch.
        std::fs::write(&kept, "garbage").unwrap();
        let server = serve::start(opts).await.unwrap();
        let fresh = mimi_publisher::build_from_path(
            &f.config,
            mimi_proto::UnixTime::now(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(server.serial(&f.origin), Some(fresh.zone.soa.serial));
        shutdown_quickly(server).await;
    })
    .await
    .expect("test timed out");
}
