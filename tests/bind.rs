//! BIND (`named`) on loopback, as a primary that accepts RFC 2136 updates
//! and serves zone files, with a configuration generated into a temporary
//! directory. The configuration is the one the README's "Push into your
//! existing primary" section shows.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::secondaries::Key;
use crate::{free_port, require, soa_serial, Daemon};

/// A zone BIND serves as primary.
pub struct BindZone<'a> {
    /// Origin, without trailing dot.
    pub origin: &'a str,
    /// Initial zone file text.
    pub zone_file: &'a str,
    /// Whether `key` may transfer the zone.
    pub transfer: bool,
    /// Whether `key` may update the zone.
    pub update: bool,
}

/// A running `named`.
pub struct Bind {
    /// The process.
    pub daemon: Daemon,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

impl Bind {
    /// Starts `named` for `zones` on a free ephemeral loopback port and
    /// waits (up to 20 s) until it answers for the first one. The
    /// configuration, zone files, journals and log go to `dir/bind`. Panics
    /// naming the Debian package when `named` is not installed, and with
    /// named's log when it does not come up. If another process takes the
    /// port first (named then logs "address in use" and keeps running
    /// without it), it is stopped and started again on another port.
    pub async fn start(dir: &Path, zones: &[BindZone<'_>], key: &Key) -> Bind {
        let named = require("named", "bind9");
        let d = dir.join("bind");
        std::fs::create_dir_all(&d).unwrap();
        for z in zones {
            std::fs::write(d.join(format!("{}.zone", z.origin)), z.zone_file).unwrap();
            let _ = std::fs::remove_file(d.join(format!("{}.zone.jnl", z.origin)));
        }
        for attempt in 1..=3 {
            let port = free_port();
            let path = d.join("named.conf");
            std::fs::write(&path, config(&d, port, zones, key)).unwrap();
            let mut cmd = Command::new(&named);
            cmd.arg("-g").arg("-c").arg(&path);
            let mut daemon = Daemon::spawn("named", cmd, d.join("named.log"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if soa_serial(addr, zones[0].origin).await.is_some() {
                    return Bind { daemon, addr };
                }
                let log = daemon.log();
                if log.contains("address in use") && attempt < 3 {
                    daemon.stop();
                    break;
                }
                daemon.assert_running();
                assert!(
                    std::time::Instant::now() < deadline,
                    "named did not answer within 20 s:\n{log}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        unreachable!("the last attempt returns or panics")
    }
}

/// named.conf for `zones` on `port`, everything under `d`.
fn config(d: &Path, port: u16, zones: &[BindZone<'_>], key: &Key) -> String {
    let mut conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
key "{key}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
    );
    for z in zones {
        let file = d.join(format!("{}.zone", z.origin));
        let mut acl = String::new();
        if z.update {
            acl.push_str(&format!("\n    allow-update {{ key \"{}\"; }};", key.name));
        }
        if z.transfer {
            acl.push_str(&format!(
                "\n    allow-transfer {{ key \"{}\"; }};",
                key.name
            ));
        }
        conf.push_str(&format!(
            "zone \"{}\" {{\n    type primary;\n    file \"{}\";{acl}\n}};\n",
            z.origin,
            file.display()
        ));
    }
    conf
}
