//! The example world of the end-to-end tests: three trusted authorities
//! and a rogue one, four zones (a home zone, an authority's zone, a
//! telephone root, a distribution zone) and a trust store — the shape of
//! `zones/`, with fresh keys. The bindings and gateway tests use it too,
//! so every front end is checked against the same verified, rejected and
//! not-found cases.
//!
//! What a lookup finds (with `min_authorities = 1`, the distribution zone
//! `dir.chat.example.org` and the telephone root `e164.mimi.example`):
//! `alice@example.com` verified by two authorities, `bob@example.com`
//! verified (plus a replayed record rejected), `carol@mail.example`
//! verified through the distribution zone, `+39 06 1234 5678` two SSIs,
//! `dave@example.com` rejected (SSI outside the provider's scope), and
//! `nobody@example.com` not found.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mimi_proto::{DomainName, UnixTime};
use mimi_publisher::serve::{self, RunningServer, ServeOptions};
use mimi_resolver::{NameServers, Resolver, ResolverOptions, TrustStore};

use crate::{bin, free_port, trust_toml, Authority, Daemon, Trust, Workspace, ZoneSpec};

/// Three authorities, four zones, one trust store: the shape of `zones/`,
/// with fresh keys.
pub struct World {
    pub ws: Workspace,
    pub provider: Authority,
    pub provider_signing: SigningKey,
    pub third: Authority,
    pub third_signing: SigningKey,
    pub dir: Authority,
    pub rogue: Authority,
    pub now: UnixTime,
}

pub const EXAMPLE_MAPPINGS: &str = "# provider's users\nalice@example.com,mimi://chat.example.com/u/alice\nbob@example.com,mimi://chat.example.com/u/bob\ndave@example.com,mimi://evil.example.org/u/dave\n";

impl World {
    pub fn new() -> World {
        let w = World {
            ws: Workspace::new(),
            provider: Authority::new("example.com"),
            provider_signing: mimi_publisher::input::keys::generate(),
            third: Authority::new("ma.example.net"),
            third_signing: mimi_publisher::input::keys::generate(),
            dir: Authority::new("chat.example.org"),
            rogue: Authority::new("rogue.example"),
            now: UnixTime::now(),
        };
        let ws = &w.ws;
        let day = 86400;
        // example.com: home zone, provider is its own authority with a
        // certified signing key; third-party and rogue pre-signed records.
        ws.write_key("example.com/signing.pem", &w.provider_signing);
        ws.write(
            "example.com/signing.cert",
            &format!(
                "{}\n",
                w.provider
                    .certify(&w.provider_signing, w.now.minus(day), 90)
            ),
        );
        ws.write("example.com/mappings.csv", EXAMPLE_MAPPINGS);
        let (t, x) = (w.now.minus(day), w.now.plus(13 * day));
        let alice_by_third = w.third.presign(
            &w.third_signing,
            "alice@example.com",
            "mimi://chat.example.com/u/alice",
            t,
            x,
        );
        let alice_record = alice_by_third.split_once(' ').unwrap().1.to_owned();
        let presigned = format!(
            "# from ma.example.net\n{alice_by_third}\n# the same record replayed under bob's name\nmailto:bob@example.com {alice_record}\n# an authority nobody trusts\n{}\n",
            w.rogue.presign(&w.rogue.root, "alice@example.com", "mimi://rogue.example/u/alice", t, x)
        );
        ws.write("example.com/presigned.txt", &presigned);
        ws.zone(
            "example.com/zone.toml",
            &ZoneSpec {
                origin: "example.com",
                role: "home",
                authority: Some("example.com"),
                key: Some("signing.pem"),
                certificates: &["signing.cert"],
                mappings: Some("mappings.csv"),
                presigned: &["presigned.txt"],
                ..Default::default()
            },
        );
        // ma.example.net: the third party's certificate.
        ws.write(
            "ma.example.net/cert",
            &format!(
                "{}\n",
                w.third.certify(&w.third_signing, w.now.minus(day), 90)
            ),
        );
        ws.zone(
            "ma.example.net/zone.toml",
            &ZoneSpec {
                origin: "ma.example.net",
                role: "home",
                authority: Some("ma.example.net"),
                certificates: &["cert"],
                ..Default::default()
            },
        );
        // Telephone root, operated by the third party.
        ws.write_key("e164/signing.pem", &w.third_signing);
        ws.write(
            "e164/mappings.csv",
            "+39 06 1234 5678,im:bob@talk.example.net\n",
        );
        ws.zone(
            "e164/zone.toml",
            &ZoneSpec {
                origin: "e164.mimi.example",
                role: "home",
                tel_root: Some("e164.mimi.example"),
                authority: Some("ma.example.net"),
                key: Some("signing.pem"),
                mappings: Some("mappings.csv"),
                ..Default::default()
            },
        );
        // Distribution zone, root key used directly.
        ws.write_key("dir/root.pem", &w.dir.root);
        ws.write("dir/mappings.csv", "carol@mail.example,mimi://chat.example.org/u/carol\n+39 06 1234 5678,mimi://chat.example.org/u/bob\n");
        ws.zone(
            "dir/zone.toml",
            &ZoneSpec {
                origin: "dir.chat.example.org",
                role: "distribution",
                authority: Some("chat.example.org"),
                key: Some("root.pem"),
                mappings: Some("mappings.csv"),
                ..Default::default()
            },
        );
        w
    }

    pub fn configs(&self) -> Vec<PathBuf> {
        ["example.com", "ma.example.net", "e164", "dir"]
            .iter()
            .map(|z| self.ws.path(&format!("{z}/zone.toml")))
            .collect()
    }

    pub fn trust(&self, min_authorities: usize) -> String {
        trust_toml(
            min_authorities,
            &[
                Trust {
                    authority: &self.provider,
                    sii_scope: &["mailto:*@example.com"],
                    ssi_scope: &["chat.example.com"],
                },
                Trust {
                    authority: &self.third,
                    sii_scope: &["mailto:*@example.com", "tel:+39*"],
                    ssi_scope: &["chat.example.com", "talk.example.net"],
                },
                Trust {
                    authority: &self.dir,
                    sii_scope: &["*"],
                    ssi_scope: &["chat.example.org", "*.chat.example.org"],
                },
            ],
        )
    }

    pub async fn serve(&self) -> RunningServer {
        self.serve_with(false).await
    }

    /// A server; `allow_shrink` confirms in advance every removal the
    /// shrink guard would hold back (these zones are so small that
    /// removing one mapping is beyond the default 10%).
    pub async fn serve_with(&self, allow_shrink: bool) -> RunningServer {
        let opts = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            allow_shrink,
            ..ServeOptions::new(self.configs())
        };
        serve::start(opts).await.expect("server starts")
    }

    pub fn resolver(&self, server: SocketAddr, min_authorities: usize) -> Resolver {
        let trust =
            TrustStore::from_toml_str(&self.trust(min_authorities), "test trust store").unwrap();
        let mut o = ResolverOptions::new(trust);
        o.name_servers = NameServers::Explicit(vec![server]);
        o.distribution_zones = vec![DomainName::parse("dir.chat.example.org").unwrap()];
        o.tel_roots = vec![DomainName::parse("e164.mimi.example").unwrap()];
        o.timeout = Duration::from_secs(2);
        Resolver::new(o).unwrap()
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// Writes the trust store (`trust.toml` in the workspace) and returns
    /// its path.
    pub fn write_trust(&self, min_authorities: usize) -> PathBuf {
        self.ws.write("trust.toml", &self.trust(min_authorities))
    }

    /// The real `mimi-publisher serve` binary serving every zone on a free
    /// loopback port, once it answers; its log is `serve.log` in the
    /// workspace. The process is stopped (by pid) when the [`Daemon`] is
    /// dropped.
    ///
    /// Response rate limiting is off (`--rrl-rate 0`): the bindings and
    /// gateway suites send hundreds of lookups from one address at once,
    /// far beyond the default 200 NXDOMAIN answers per second per
    /// network, and a dropped answer would turn a lookup into a
    /// `dns_error` at random.
    pub fn serve_daemon(&self) -> (Daemon, SocketAddr) {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = std::process::Command::new(bin("mimi-publisher"));
        cmd.arg("serve")
            .args(self.configs())
            .args(["--listen", &addr.to_string(), "--rrl-rate", "0"])
            .env("NO_COLOR", "1");
        let daemon = Daemon::spawn("mimi-publisher serve", cmd, self.ws.path("serve.log"));
        listening(daemon, addr)
    }
}

/// `daemon` once it accepts TCP connections on `addr`: the publisher and
/// the gateway bind their listeners only when they are ready to answer, so
/// a connection is the readiness signal (no sleeping). Panics with the log
/// if the process exits or is not listening within 60 s.
pub fn listening(mut daemon: Daemon, addr: SocketAddr) -> (Daemon, SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        daemon.assert_running();
        if std::net::TcpStream::connect(addr).is_ok() {
            return (daemon, addr);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not listen on {addr}:\n{}",
            daemon.name,
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
