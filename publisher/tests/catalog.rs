//! The catalog zone (`ServeOptions::catalog`) follows the served zone set
//! while the server runs: a configuration whose origin changes on reload
//! moves the catalog's member entry, the catalog gets a larger serial, and
//! its secondaries a NOTIFY. Synchronised on reload events and on the
//! NOTIFY itself, never on sleeps.

use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use mimi_proto::DomainName;
use mimi_publisher::serve::{self, ServeOptions};

const BOUND: Duration = Duration::from_secs(10);

fn zone_toml(origin: &str) -> String {
    format!(
        "origin = \"{origin}\"\nns = [\"ns.example.net\"]\n[soa]\nmname = \"ns.example.net\"\nrname = \"hostmaster.example.net\"\n"
    )
}

/// Receives the next NOTIFY for `zone` at `sock` and acknowledges it (so
/// that the server does not send it again).
async fn notified(sock: &tokio::net::UdpSocket, zone: &str) {
    let mut buf = [0u8; 512];
    tokio::time::timeout(BOUND, async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(m.metadata.op_code, OpCode::Notify);
            let mut ack = Message::new(m.metadata.id, MessageType::Response, OpCode::Notify);
            ack.metadata.authoritative = true;
            ack.queries = m.queries.clone();
            sock.send_to(&ack.to_vec().unwrap(), from).await.unwrap();
            if m.queries[0].name().to_string() == format!("{zone}.") {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no NOTIFY for {zone} within {BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_follows_the_zone_set_and_is_notified() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zone.toml");
    std::fs::write(&config, zone_toml("example.com")).unwrap();
    let secondary = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let catalog_toml = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog_toml,
        format!(
            "origin = \"catalog.example.net\"\n[transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"{}\"]\n",
            secondary.local_addr().unwrap()
        ),
    )
    .unwrap();
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        debounce: Duration::from_millis(100),
        catalog: Some(catalog_toml),
        ..ServeOptions::new(vec![config.clone()])
    })
    .await
    .unwrap();
    let catalog = DomainName::parse("catalog.example.net").unwrap();
    let targets = |z: &mimi_publisher::Zone| {
        z.ptrs
            .iter()
            .map(|p| p.target.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    notified(&secondary, "catalog.example.net").await;
    let first = server.zone(&catalog).unwrap();
    assert_eq!(targets(&first), ["example.com"]);

    let mut events = server.subscribe();
    std::fs::write(&config, zone_toml("example.org")).unwrap();
    tokio::time::timeout(BOUND, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.ok && e.changed && e.origin.as_str() == "example.org" {
                return;
            }
        }
    })
    .await
    .expect("the zone reloads with its new origin");
    notified(&secondary, "catalog.example.net").await;
    let second = server.zone(&catalog).unwrap();
    assert_eq!(targets(&second), ["example.org"]);
    assert!(
        second
            .soa
            .serial
            .wrapping_sub(first.soa.serial)
            .wrapping_sub(1)
            < (1 << 31),
        "{} does not follow {}",
        second.soa.serial,
        first.soa.serial
    );
    // The member id is the new origin's, and the catalog answers queries.
    let id = mimi_publisher::zone::catalog::member_id(&DomainName::parse("example.org").unwrap());
    assert_eq!(
        second.ptrs[0].owner.as_str(),
        format!("{id}.zones.catalog.example.net")
    );
    server.shutdown().await.unwrap();
}

/// With a state directory the catalog is kept: a restart with the same
/// zones serves the same serial, a restart with other zones a larger one,
/// even within the same second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_catalog_continues_its_serial() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, zone_toml("a.example")).unwrap();
    std::fs::write(&b, zone_toml("b.example")).unwrap();
    let catalog_toml = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog_toml,
        "origin = \"catalog.example.net\"\n[transfer]\nallow = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let catalog = DomainName::parse("catalog.example.net").unwrap();
    let serial = async |configs: Vec<std::path::PathBuf>| {
        let server = serve::start(ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: Some(dir.path().join("state")),
            catalog: Some(catalog_toml.clone()),
            ..ServeOptions::new(configs)
        })
        .await
        .unwrap();
        let zone = server.zone(&catalog).unwrap();
        server.shutdown().await.unwrap();
        (zone.soa.serial, zone.ptrs.len())
    };
    let (first, n) = serial(vec![a.clone()]).await;
    assert_eq!(n, 1);
    assert_eq!(serial(vec![a.clone()]).await, (first, 1));
    let (second, n) = serial(vec![a.clone(), b.clone()]).await;
    assert_eq!(n, 2);
    assert!(second.wrapping_sub(first).wrapping_sub(1) < (1 << 31));
    let (third, _) = serial(vec![a]).await;
    assert!(third.wrapping_sub(second).wrapping_sub(1) < (1 << 31));
}
