//! Knot DNS and NSD as secondaries of `mimi-publisher serve`, and unbound as
//! the recursive resolver in front of them: the DNS that operators already
//! run, started for real on loopback with configurations generated into a
//! temporary directory.
//!
//! The configuration snippets here are the ones the README's "Operating
//! with your DNS" section shows.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::{free_port, require, Daemon};

/// A TSIG key in the three servers' syntaxes.
#[derive(Clone)]
pub struct Key {
    /// Key name (no trailing dot).
    pub name: String,
    /// Base64 HMAC-SHA256 secret.
    pub secret: String,
}

impl Key {
    /// The key as `tsig-keygen` writes it (what mimi-publisher reads).
    pub fn bind_format(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            self.name, self.secret
        )
    }

    /// A fresh random key.
    pub fn random(name: &str) -> Key {
        let mut b = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        Key {
            name: name.to_owned(),
            secret: data_encoding::BASE64.encode(&b),
        }
    }
}

/// A running secondary or resolver.
pub struct Server {
    /// The process.
    pub daemon: Daemon,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

/// Knot DNS as a secondary for `zones`, transferring from `primary` with
/// `key` and accepting NOTIFY from it.
pub fn knot(dir: &Path, primary: SocketAddr, zones: &[&str], key: &Key) -> Server {
    knot_with_catalog(dir, free_port(), primary, zones, None, key)
}

/// Knot as a secondary of `primary` for `zones` and, with `catalog`, for
/// every member of that catalog zone (RFC 9432, `catalog-role: interpret`:
/// members are added and removed without touching this configuration).
/// Knot keeps a journal of changes, so it asks IXFR once it holds a zone.
/// It listens on 127.0.0.1 at `port` (tests that must name the secondary
/// before it starts, in a NOTIFY list, choose it) and lets 127.0.0.1
/// transfer every zone from it, for tests to compare its content.
pub fn knot_with_catalog(
    dir: &Path,
    port: u16,
    primary: SocketAddr,
    zones: &[&str],
    catalog: Option<&str>,
    key: &Key,
) -> Server {
    let knotd = require("knotd", "knot");
    let d = dir.join("knot");
    std::fs::create_dir_all(&d).unwrap();
    let mut conf = format!(
        r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}

database:
    storage: "{d}"

log:
  - target: stderr
    any: info

key:
  - id: {key}
    algorithm: hmac-sha256
    secret: {secret}

remote:
  - id: primary
    address: {pip}@{pport}
    key: {key}

acl:
  - id: notify_from_primary
    address: {pip}
    key: {key}
    action: notify
  - id: dump
    address: 127.0.0.1
    action: transfer

template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
  - id: member
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
    master: primary
    acl: [notify_from_primary, dump]

zone:
"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
    );
    for z in zones {
        conf.push_str(&format!(
            "  - domain: {z}\n    master: primary\n    acl: [notify_from_primary, dump]\n"
        ));
    }
    if let Some(c) = catalog {
        conf.push_str(&format!(
            "  - domain: {c}\n    master: primary\n    acl: [notify_from_primary, dump]\n    catalog-role: interpret\n    catalog-template: member\n"
        ));
    }
    let path = d.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(knotd);
    cmd.arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("knotd", cmd, d.join("knot.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// NSD as a secondary for `zones`, transferring from `primary` with `key`
/// (IXFR once it holds a zone, AXFR otherwise) and accepting NOTIFY from
/// it; 127.0.0.1 may transfer the zones from it.
pub fn nsd(dir: &Path, primary: SocketAddr, zones: &[&str], key: &Key) -> Server {
    let nsd = require("nsd", "nsd");
    let port = free_port();
    let d = dir.join("nsd");
    std::fs::create_dir_all(&d).unwrap();
    let mut conf = format!(
        r#"server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    xfrdir: "{d}"
    verbosity: 2
    rrl-ratelimit: 0

remote-control:
    control-enable: no

key:
    name: "{key}"
    algorithm: hmac-sha256
    secret: "{secret}"

"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
    );
    for z in zones {
        conf.push_str(&format!(
            "zone:\n    name: \"{z}\"\n    zonefile: \"{z}.zone\"\n    request-xfr: {pip}@{pport} {key}\n    allow-notify: {pip} {key}\n    allow-axfr-fallback: yes\n    provide-xfr: 127.0.0.1 NOKEY\n\n",
            pip = primary.ip(),
            pport = primary.port(),
            key = key.name,
        ));
    }
    let path = d.join("nsd.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(nsd);
    cmd.arg("-d").arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("nsd", cmd, d.join("nsd.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// unbound as a recursive resolver that reaches `zones` through the given
/// authoritative servers (stub zones), caching for at most `max_ttl` seconds.
pub fn unbound(dir: &Path, zones: &[&str], authorities: &[SocketAddr], max_ttl: u32) -> Server {
    let unbound = require("unbound", "unbound");
    let port = free_port();
    let d = dir.join("unbound");
    std::fs::create_dir_all(&d).unwrap();
    let mut conf = format!(
        r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-localhost: no
    module-config: "iterator"
    cache-max-ttl: {max_ttl}
    cache-max-negative-ttl: {max_ttl}
    access-control: 127.0.0.0/8 allow

remote-control:
    control-enable: no

"#,
        d = d.display(),
    );
    for z in zones {
        conf.push_str(&format!("stub-zone:\n    name: \"{z}\"\n"));
        for a in authorities {
            conf.push_str(&format!("    stub-addr: {}@{}\n", a.ip(), a.port()));
        }
        conf.push('\n');
    }
    let path = d.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(unbound);
    cmd.arg("-d").arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("unbound", cmd, d.join("unbound.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Knot DNS as a *signing* secondary (the standard hidden-primary setup for
/// DNSSEC): it transfers `zones` from `primary` (TSIG `key`, NOTIFY
/// accepted), signs them itself with automatically generated keys
/// (`dnssec-signing: on`, ECDSA P-256 KSK + ZSK, NSEC3 without extra
/// iterations or salt, RFC 9276) and serves the signed zones. Every change
/// the primary sends is re-signed on arrival. 127.0.0.1 may transfer the
/// signed zones from it.
pub fn knot_signer(dir: &Path, primary: SocketAddr, zones: &[&str], key: &Key) -> Server {
    let knotd = require("knotd", "knot");
    let port = free_port();
    let d = dir.join("knot-signer");
    std::fs::create_dir_all(&d).unwrap();
    let mut conf = format!(
        r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}

database:
    storage: "{d}"

log:
  - target: stderr
    any: info

key:
  - id: {key}
    algorithm: hmac-sha256
    secret: {secret}

remote:
  - id: primary
    address: {pip}@{pport}
    key: {key}

acl:
  - id: notify_from_primary
    address: {pip}
    key: {key}
    action: notify
  - id: dump
    address: 127.0.0.1
    action: transfer

policy:
  - id: mimi
    algorithm: ecdsap256sha256
    nsec3: on
    nsec3-iterations: 0
    nsec3-salt-length: 0

template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all

zone:
"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
    );
    for z in zones {
        conf.push_str(&format!(
            "  - domain: {z}\n    master: primary\n    acl: [notify_from_primary, dump]\n    dnssec-signing: on\n    dnssec-policy: mimi\n"
        ));
    }
    let path = d.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(knotd);
    cmd.arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("knotd (signer)", cmd, d.join("knot.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Knot as the signing *primary* of a parent zone read from `parent_file`
/// (signed with automatic keys as in [`knot_signer`]) that delegates
/// `child`, an unsigned zone Knot transfers from `primary` and serves as
/// a plain secondary: the "unsigned `_mimi` child under a signed parent"
/// setup. The parent's NSEC3 records prove the delegation insecure (no DS).
pub fn knot_signed_parent(
    dir: &Path,
    parent: &str,
    parent_file: &Path,
    primary: SocketAddr,
    child: &str,
    key: &Key,
) -> Server {
    let knotd = require("knotd", "knot");
    let port = free_port();
    let d = dir.join("knot-parent");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}

database:
    storage: "{d}"

log:
  - target: stderr
    any: info

key:
  - id: {key}
    algorithm: hmac-sha256
    secret: {secret}

remote:
  - id: primary
    address: {pip}@{pport}
    key: {key}

acl:
  - id: notify_from_primary
    address: {pip}
    key: {key}
    action: notify

policy:
  - id: mimi
    algorithm: ecdsap256sha256
    nsec3: on
    nsec3-iterations: 0
    nsec3-salt-length: 0

template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    journal-content: all

zone:
  - domain: {parent}
    file: "{file}"
    zonefile-load: whole
    dnssec-signing: on
    dnssec-policy: mimi
  - domain: {child}
    master: primary
    zonefile-load: none
    acl: [notify_from_primary]
"#,
        d = d.display(),
        key = key.name,
        secret = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
        file = parent_file.display(),
    );
    let path = d.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(knotd);
    cmd.arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("knotd (signed parent)", cmd, d.join("knot.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// unbound as a recursive resolver that forwards `zone` to `upstream`
/// over DNS over TLS only (`forward-tls-upstream`), checking the
/// upstream's certificate against `ca` for the name `tls_name`.
pub fn unbound_forward_tls(
    dir: &Path,
    zone: &str,
    upstream: SocketAddr,
    tls_name: &str,
    ca: &Path,
) -> Server {
    let unbound = require("unbound", "unbound");
    let port = free_port();
    let d = dir.join("unbound-tls");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-localhost: no
    module-config: "iterator"
    cache-max-ttl: 1
    cache-max-negative-ttl: 1
    access-control: 127.0.0.0/8 allow
    tls-cert-bundle: "{ca}"

remote-control:
    control-enable: no

forward-zone:
    name: "{zone}"
    forward-addr: {ip}@{uport}#{tls_name}
    forward-tls-upstream: yes
"#,
        d = d.display(),
        ca = ca.display(),
        ip = upstream.ip(),
        uport = upstream.port(),
    );
    let path = d.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(unbound);
    cmd.arg("-d").arg("-c").arg(&path);
    Server {
        daemon: Daemon::spawn("unbound", cmd, d.join("unbound.log")),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// unbound as a recursive resolver with its own plain, DNS-over-TLS and
/// DNS-over-HTTPS (`/dns-query`) listeners (certificate and key: PEM files),
/// reaching `zone` through `authority` (a stub zone, no validation: the
/// resolver under test validates).
pub struct UnboundTls {
    /// The daemon; its address is the plain listener.
    pub server: Server,
    /// Plain DNS (UDP and TCP).
    pub plain: SocketAddr,
    /// DNS over TLS.
    pub tls: SocketAddr,
    /// DNS over HTTPS.
    pub https: SocketAddr,
}

/// Starts an [`UnboundTls`] in `dir/unbound`.
pub fn unbound_tls(
    dir: &Path,
    zone: &str,
    authority: SocketAddr,
    cert: &Path,
    key: &Path,
) -> UnboundTls {
    let unbound = require("unbound", "unbound");
    let (plain, tls, https) = (free_port(), free_port(), free_port());
    let d = dir.join("unbound");
    std::fs::create_dir_all(&d).unwrap();
    let conf = format!(
        r#"server:
    interface: 127.0.0.1@{plain}
    interface: 127.0.0.1@{tls}
    interface: 127.0.0.1@{https}
    tls-port: {tls}
    https-port: {https}
    http-endpoint: "/dns-query"
    tls-service-key: "{key}"
    tls-service-pem: "{cert}"
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-localhost: no
    module-config: "iterator"
    cache-max-ttl: 1
    cache-max-negative-ttl: 1
    access-control: 127.0.0.0/8 allow

remote-control:
    control-enable: no

stub-zone:
    name: "{zone}"
    stub-addr: {aip}@{aport}
"#,
        aip = authority.ip(),
        aport = authority.port(),
        key = key.display(),
        cert = cert.display(),
        d = d.display(),
    );
    let path = d.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(unbound);
    cmd.arg("-d").arg("-c").arg(&path);
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    UnboundTls {
        server: Server {
            daemon: Daemon::spawn("unbound (TLS, HTTPS)", cmd, d.join("unbound.log")),
            addr: at(plain),
        },
        plain: at(plain),
        tls: at(tls),
        https: at(https),
    }
}
