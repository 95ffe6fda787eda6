//! The concurrent-transfer limit with the secondaries operators run: while
//! `mimi-publisher serve --max-transfers 2` is busy with two transfers,
//! Knot and NSD asking for the zone are answered REFUSED, treat it as a
//! passing failure, and get the zone on the next NOTIFY once places are
//! free, without being restarted.
//!
//! (With one place, the two secondaries NOTIFYed together race for it and
//! the loser waits for its own retry timer: about 10 to 30 s for Knot and
//! 35 s for NSD when they have no copy of the zone yet.)

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use mimi_e2e::secondaries::{self, Key};
use mimi_e2e::{bin, eventually, free_port, soa_serial, Authority, Daemon, Workspace, ZoneSpec};
use mimi_publisher::input::tsig::TsigKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Enough records (about 1 MB) that a transfer nobody reads cannot end by
/// filling the socket buffers.
fn mappings(n: usize) -> String {
    (0..n)
        .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}\n"))
        .collect()
}

/// Starts a TSIG-signed AXFR and reads its first message only, so that the
/// transfer holds its place until the connection is dropped.
async fn hold_a_transfer(primary: SocketAddr, key: &TsigKey) -> TcpStream {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.com.").unwrap(),
        RecordType::AXFR,
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    m.finalize(&key.signer(), now).unwrap();
    let bytes = m.to_vec().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut s = socket.connect(primary).await.unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut len))
        .await
        .expect("the first message in time")
        .unwrap();
    let mut first = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut first).await.unwrap();
    let first = Message::from_vec(&first).unwrap();
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert!(!first.answers.is_empty());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_and_nsd_refused_over_the_limit_get_the_zone_later() {
    let ws = Workspace::new();
    let dir = ws.path("servers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = Authority::new("example.com");
    let tsig = Key::random("transfer-key");
    ws.write_secret("tsig.key", &tsig.bind_format());
    let key = TsigKey::parse(&tsig.bind_format()).unwrap();
    ws.write_key("example.com/signing.pem", &provider.root);
    ws.write("example.com/mappings.csv", &mappings(4000));
    let spec = |transfer: &str| {
        ws.zone(
            "example.com/zone.toml",
            &ZoneSpec {
                origin: "example.com",
                role: "home",
                authority: Some("example.com"),
                key: Some("signing.pem"),
                mappings: Some("mappings.csv"),
                transfer: Some(transfer),
                ..Default::default()
            },
        )
    };
    let config = spec("allow = [\"127.0.0.1\"]\ntsig_key = \"../tsig.key\"");
    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = Command::new(bin("mimi-publisher"));
    cmd.arg("serve")
        .arg(&config)
        .args(["--listen", &primary.to_string(), "--max-transfers", "2"]);
    let mut publisher = Daemon::spawn("mimi-publisher serve", cmd, ws.path("publisher.log"));
    let serial = eventually(Duration::from_secs(30), "the primary to answer", || async {
        soa_serial(primary, "example.com").await
    })
    .await;

    // Both places are taken; the secondaries start and ask at once.
    let held = [
        hold_a_transfer(primary, &key).await,
        hold_a_transfer(primary, &key).await,
    ];
    let mut knot = secondaries::knot(&dir, primary, &["example.com"], &tsig);
    let mut nsd = secondaries::nsd(&dir, primary, &["example.com"], &tsig);
    // Each says so in its own log (Knot 3.2, NSD 4.6 wording).
    eventually(
        Duration::from_secs(20),
        "Knot and NSD to be refused",
        || async {
            (knot.daemon.log().contains("responded with error 'REFUSED'")
                && nsd.daemon.log().contains("received error code REFUSED"))
            .then_some(())
        },
    )
    .await;
    assert!(
        publisher
            .log()
            .contains("zone transfer refused: 2 transfers running (max 2)"),
        "the publisher does not say why:\n{}",
        publisher.log()
    );
    for (name, addr) in [("knot", knot.addr), ("nsd", nsd.addr)] {
        assert_eq!(
            soa_serial(addr, "example.com").await,
            None,
            "{name} has the zone although it was refused"
        );
    }

    // The places come back; the next change NOTIFYs both at once.
    drop(held);
    // The server gives a place back as it logs the failed transfer.
    eventually(
        Duration::from_secs(20),
        "the abandoned transfers to end",
        || async { (publisher.log().matches("zone transfer failed").count() >= 2).then_some(()) },
    )
    .await;
    let notify = format!(
        "allow = [\"127.0.0.1\"]\nnotify = [\"{}\", \"{}\"]\ntsig_key = \"../tsig.key\"",
        knot.addr, nsd.addr
    );
    spec(&notify);
    ws.write(
        "example.com/mappings.csv",
        &format!(
            "{}carol@example.com,mimi://chat.example.com/u/carol\n",
            mappings(4000)
        ),
    );
    let changed = eventually(Duration::from_secs(20), "a new serial", || async {
        soa_serial(primary, "example.com")
            .await
            .filter(|s| *s != serial)
    })
    .await;
    for (name, addr) in [("knot", knot.addr), ("nsd", nsd.addr)] {
        eventually(
            Duration::from_secs(8),
            &format!(
                "{name} to serve serial {changed} or later (on the NOTIFY, not its retry timer)"
            ),
            || async {
                let s = soa_serial(addr, "example.com").await?;
                (s.wrapping_sub(changed) < (1 << 31)).then_some(())
            },
        )
        .await;
    }
    knot.daemon.assert_running();
    nsd.daemon.assert_running();
    publisher.assert_running();
}
