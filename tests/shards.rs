//! One domain split by shard (SPEC §3) over two publishers: the 1024
//! shards of `example.com` form four groups (`00-7v`, `80-fv`, `g0-nv`,
//! `o0-vv`), each delegated by the parent zone (`[[delegate]]`) to its own
//! name server name; publisher 1 serves the parent and the shard zones of
//! groups a and b, publisher 2 those of groups c and d. A recursive
//! resolver that knows only the parent's server resolves SIIs of every
//! group, following the parent's referrals to publisher 2, and
//! `mimi-resolver` verifies them through it.
//!
//! The recursive resolver is BIND, not unbound: the servers of a referral
//! are reached at the DNS port, and unbound always uses 53 for them
//! (`UNBOUND_DNS_PORT` in its delegation points), which a test may not
//! bind. BIND's `port` option sets the port of every query it sends, so
//! the publishers listen on distinct loopback addresses at one ephemeral
//! port and BIND follows referrals to them there.
//!
//! Each group is one configuration with `[shards] zones = ["00-7v"]`
//! (and the group's name server as its NS), reading the same mappings file
//! as every other: it publishes a zone `<shard>._mimi.example.com` for
//! each of its 256 shards, with SIIs or not, so every delegation the parent
//! makes has its zone (1024 zones over the two publishers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use mimi_e2e::{
    bin, eventually, free_port, require, soa_serial, trust_toml, Authority, Daemon, Trust,
    Workspace,
};
use mimi_proto::{Sii, UnixTime};
use mimi_publisher::serve::{self, RunningServer, ServeOptions};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

/// The shard groups: range, the name server name the parent delegates
/// them to, and which publisher (0 or 1) serves them.
const GROUPS: [(&str, &str, usize); 4] = [
    ("00-7v", "ns-a.example.com", 0),
    ("80-fv", "ns-b.example.com", 0),
    ("g0-nv", "ns-c.example.com", 1),
    ("o0-vv", "ns-d.example.com", 1),
];

/// Which group a shard falls in (ranges by first character).
fn group_of(shard: &str) -> usize {
    match shard.as_bytes()[0] {
        b'0'..=b'7' => 0,
        b'8'..=b'9' | b'a'..=b'f' => 1,
        b'g'..=b'n' => 2,
        _ => 3,
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const SOA: &str = "[soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\nminimum = 1\nttl = 1\n";

/// The parent zone: certificate, every shard delegated.
fn parent_config(ws: &Workspace, mappings: &str) -> std::path::PathBuf {
    let mut s = format!(
        "origin = \"example.com\"\nttl = 1\nns = [\"ns1.example.com\"]\nmappings = \"mappings.csv\"\n[glue]\n\"ns1.example.com\" = [\"{}\"]\n{SOA}[authority]\nname = \"example.com\"\nkey = \"../signing.pem\"\ncertificates = [\"../signing.cert\"]\n",
        ip(2)
    );
    for (shards, ns, publisher) in GROUPS {
        s.push_str(&format!(
            "[[delegate]]\nshards = [\"{shards}\"]\nns = [\"{ns}\"]\nglue = {{ \"{ns}\" = [\"{}\"] }}\n",
            ip(2 + publisher as u8)
        ));
    }
    ws.write("parent/mappings.csv", mappings);
    ws.write("parent/zone.toml", &s)
}

/// The configuration of shard group `g`: every shard of its range as a
/// zone of its own, from the same mappings as every group, served by the
/// group's name server name.
fn group_config(ws: &Workspace, g: usize, mappings: &str) -> std::path::PathBuf {
    let (shards, ns, _) = GROUPS[g];
    let dir = format!("group-{g}");
    ws.write(&format!("{dir}/mappings.csv"), mappings);
    ws.write(
        &format!("{dir}/zone.toml"),
        &format!(
            "origin = \"example.com\"\nrole = \"home\"\nttl = 1\nns = [\"{ns}\"]\nmappings = \"mappings.csv\"\n{}[authority]\nname = \"example.com\"\nkey = \"../signing.pem\"\n[shards]\nzones = [\"{shards}\"]\n",
            SOA.replace("ns1.example.com", ns)
        ),
    )
}

/// BIND as a recursive resolver on `addr` that sends every query to port
/// `addr.port()` and knows only `parent` for example.com.
fn recursive_bind(ws: &Workspace, addr: SocketAddr, parent: IpAddr) -> Daemon {
    let named = require("named", "bind9");
    let d = ws.path("resolver");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    port {port};
    listen-on port {port} {{ {ip}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ 127.0.0.0/8; }};
    allow-recursion {{ 127.0.0.0/8; }};
    dnssec-validation no;
    max-cache-ttl 1;
    max-ncache-ttl 1;
    notify no;
}};
controls {{ }};
logging {{ category lame-servers {{ null; }}; }};
zone "example.com" {{
    type static-stub;
    server-addresses {{ {parent}; }};
}};
"#,
        d = d.display(),
        port = addr.port(),
        ip = addr.ip(),
    );
    let path = d.join("named.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(named);
    cmd.arg("-g").arg("-c").arg(&path);
    Daemon::spawn("named (recursive)", cmd, d.join("named.log"))
}

async fn verified(trust: &str, server: SocketAddr, who: &str) -> Result<(), String> {
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(trust, "test trust").unwrap());
    o.name_servers = NameServers::Explicit(vec![server]);
    o.timeout = Duration::from_secs(2);
    let r = Resolver::new(o)
        .unwrap()
        .lookup(&Sii::parse(who, None).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    if r.outcome() == Outcome::Verified {
        Ok(())
    } else {
        Err(format!(
            "{who}: {:?}: {:?} {:?}",
            r.outcome(),
            r.rejected,
            r.errors
        ))
    }
}

fn dig(server: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> String {
    let out = Command::new(require("dig", "bind9-dnsutils"))
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            name,
            qtype,
            "+tries=1",
            "+time=3",
        ])
        .args(extra)
        .output()
        .unwrap();
    // Fields separated by single spaces, whatever dig aligned them with.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_split_in_four_shard_groups_over_two_publishers() {
    let ws = Workspace::new();
    let provider = Authority::new("example.com");
    let key = mimi_publisher::input::keys::generate();
    let cert = provider.certify(&key, UnixTime::now().minus(86400), 90);
    ws.write_key("signing.pem", &key);
    ws.write("signing.cert", &format!("{cert}\n"));
    let trust = trust_toml(
        1,
        &[Trust {
            authority: &provider,
            sii_scope: &["mailto:*@example.com"],
            ssi_scope: &["chat.example.com"],
        }],
    );
    let trust_file = ws.write("trust.toml", &trust);

    // Two SIIs per group, in distinct shards.
    let mut siis: Vec<(String, String)> = Vec::new();
    let mut per_group = [0usize; 4];
    for i in 0.. {
        let who = format!("user{i}@example.com");
        let shard = Sii::parse(&who, None).unwrap().label().shard().to_owned();
        let g = group_of(&shard);
        if per_group[g] < 2 && !siis.iter().any(|(_, s)| *s == shard) {
            per_group[g] += 1;
            siis.push((who, shard));
        }
        if per_group.iter().all(|&n| n == 2) {
            break;
        }
    }
    let line = |who: &str| {
        format!(
            "{who},mimi://chat.example.com/u/{}\n",
            &who[..who.find('@').unwrap()]
        )
    };
    let all: String = siis.iter().map(|(w, _)| line(w)).collect();
    let parent = parent_config(&ws, &all);
    let mut configs: [Vec<std::path::PathBuf>; 2] = [vec![parent], vec![]];
    for (g, (_, _, publisher)) in GROUPS.iter().enumerate() {
        configs[*publisher].push(group_config(&ws, g, &all));
    }

    // One ephemeral port, three loopback addresses: publishers on .2 and
    // .3, the resolver on .1 (named listens only on addresses configured on
    // an interface, and lo has 127.0.0.1 alone). If another process holds
    // the port on one of them, start again with another.
    let mut attempt = 0;
    let (publishers, resolver_addr, mut resolver) = loop {
        attempt += 1;
        let port = free_port();
        let mut started: Vec<RunningServer> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            match serve::start(ServeOptions {
                listen: SocketAddr::new(ip(2 + i as u8), port),
                ..ServeOptions::new(c.clone())
            })
            .await
            {
                Ok(s) => started.push(s),
                Err(serve::ServeError::Bind { .. }) if attempt < 5 => break,
                Err(e) => panic!("publisher {i}: {e}"),
            }
        }
        if started.len() < 2 {
            for s in started {
                s.shutdown().await.unwrap();
            }
            continue;
        }
        let addr = SocketAddr::new(ip(1), port);
        let mut d = recursive_bind(&ws, addr, ip(2));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let up = loop {
            if d.log().contains("address in use") {
                break false;
            }
            d.assert_running();
            if soa_serial(SocketAddr::new(ip(2), port), "example.com")
                .await
                .is_some()
                && dig(addr, "example.com", "SOA", &["+short"]).contains("hostmaster")
            {
                break true;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the resolver does not answer:\n{}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if up {
            break (started, addr, d);
        }
        assert!(attempt < 5, "the port was always taken:\n{}", d.log());
        d.stop();
        for s in started {
            s.shutdown().await.unwrap();
        }
    };
    let p1 = publishers[0].local_addr();
    let p2 = publishers[1].local_addr();

    // The parent delegates every shard and keeps no mapping of its own.
    let parent = publishers[0]
        .zone(&mimi_proto::DomainName::parse("example.com").unwrap())
        .unwrap();
    assert_eq!(parent.delegations.len(), 1024);
    assert!(
        parent
            .records
            .iter()
            .all(|r| r.owner.as_str().starts_with("_mimi-ma.")),
        "only the certificate stays in the parent"
    );
    // Each publisher holds the 512 shard zones of its two groups (and
    // publisher 1 the parent), whether a shard has SIIs or not.
    assert_eq!(publishers[0].origins().len(), 513);
    assert_eq!(publishers[1].origins().len(), 512);
    // A name in a shard without SIIs, in a group of publisher 2: the
    // resolver follows the referral and gets an authoritative NXDOMAIN
    // from the (empty) shard zone, not a failure of a lame delegation.
    let empty = (0..1024)
        .map(|i| mimi_publisher::input::shards::Shard::at(i).to_string())
        .find(|sh| group_of(sh) == 3 && !siis.iter().any(|(_, s)| s == sh))
        .unwrap();
    let nobody = format!("{empty}{}.{empty}._mimi.example.com.", "0".repeat(50));
    let at_p2 = dig(p2, &nobody, "TXT", &["+norec"]);
    assert!(
        at_p2.contains("status: NXDOMAIN") && at_p2.contains(" aa"),
        "an empty shard zone answers NXDOMAIN with authority:\n{at_p2}"
    );
    let via = dig(resolver_addr, &nobody, "TXT", &[]);
    assert!(
        via.contains("status: NXDOMAIN"),
        "through the resolver:\n{via}\n{}",
        resolver.log()
    );

    for (who, shard) in &siis {
        let g = group_of(shard);
        let (_, ns, publisher) = GROUPS[g];
        let label = Sii::parse(who, None).unwrap().label();
        let name = format!("{label}.{shard}._mimi.example.com.");
        // Publisher 1 refers the names of groups c and d to their name
        // server (no AA, NS in authority, glue in additional) and answers
        // those of a and b from the shard zones it holds.
        let at_p1 = dig(p1, &name, "TXT", &["+norec"]);
        if publisher == 1 {
            assert!(!at_p1.contains(" aa"), "{who}: referral with AA:\n{at_p1}");
            assert!(
                at_p1.contains(&format!("{shard}._mimi.example.com. 1 IN NS {ns}."))
                    && at_p1.contains(&format!("{ns}. 1 IN A 127.0.0.3")),
                "{who}: not a referral to {ns}:\n{at_p1}"
            );
        } else {
            assert!(
                at_p1.contains(" aa") && at_p1.contains("v=mimi1"),
                "{who}:\n{at_p1}"
            );
        }
        let home = [p1, p2][publisher];
        let direct = dig(home, &name, "TXT", &["+norec", "+short"]);
        assert!(
            direct.contains("v=mimi1"),
            "{who} at its publisher: {direct}"
        );
        // Through the recursive resolver, and verified.
        let via = dig(resolver_addr, &name, "TXT", &["+short"]);
        assert!(
            via.contains("v=mimi1"),
            "{who} through the resolver: {via:?}\n{}",
            resolver.log()
        );
        eventually(
            Duration::from_secs(10),
            &format!("{who} (group {g}) to verify"),
            || async { verified(&trust, resolver_addr, who).await.ok() },
        )
        .await;
        // And with the command-line client.
        let out = Command::new(bin("mimi-resolve"))
            .args(["lookup", who, "--json", "--trust"])
            .arg(&trust_file)
            .args(["--server", &resolver_addr.to_string(), "--timeout", "2s"])
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        assert_eq!(out.status.code(), Some(0), "mimi-resolve {who}: {json}");
        assert_eq!(json["outcome"], "verified", "{who}");
    }
    resolver.assert_running();
    resolver.stop();
    for s in publishers {
        s.shutdown().await.unwrap();
    }
}
