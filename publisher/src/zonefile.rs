//! RFC 1035 master files: writing a [`Zone`] as text, atomically.
//!
//! The output is plain enough for every DNS server we feed (BIND, Knot,
//! NSD): absolute owner names, explicit TTL and class on every record,
//! TXT text split into quoted character-strings of at most 255 octets with
//! `"` and `\` escaped. The serial stands alone on a line marked `; serial`
//! so that a later build can find it and keep serials increasing.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use mimi_proto::text::split_txt;

use rayon::prelude::*;

use crate::zone::{Zone, ZoneRecord};

/// Renders a zone as master-file text. Equal zones give identical bytes.
pub fn render(zone: &Zone) -> String {
    let mut out = String::with_capacity(128 + zone.records.len() * 300);
    let origin = zone.origin.fqdn();
    let soa = &zone.soa;
    let _ = writeln!(
        out,
        "; mimi-dns zone {origin} written by mimi-publisher; do not edit, rebuild instead"
    );
    let _ = writeln!(out, "$ORIGIN {origin}");
    let _ = writeln!(
        out,
        "{origin} {} IN SOA {} {} (\n\t{} ; serial\n\t{} {} {} {} )",
        zone.ttl,
        soa.mname.fqdn(),
        soa.rname.fqdn(),
        soa.serial,
        soa.refresh,
        soa.retry,
        soa.expire,
        soa.minimum
    );
    for ns in &zone.ns {
        let _ = writeln!(out, "{origin} {} IN NS {}", zone.ttl, ns.fqdn());
    }
    for (host, ips) in &zone.glue {
        for ip in ips {
            let t = if ip.is_ipv4() { "A" } else { "AAAA" };
            let _ = writeln!(out, "{} {} IN {t} {ip}", host.fqdn(), zone.ttl);
        }
    }
    // Records in parallel chunks (a large zone's text is hundreds of MB),
    // a batch at a time so that the copies in flight stay small.
    for batch in zone.records.chunks(64 * 1024) {
        let parts: Vec<String> = batch
            .par_chunks(2048)
            .map(|chunk| {
                let mut out = String::with_capacity(chunk.len() * 300);
                for r in chunk {
                    render_record(&mut out, r);
                }
                out
            })
            .collect();
        for p in parts {
            out.push_str(&p);
        }
    }
    out
}

/// Appends one TXT record's line.
fn render_record(out: &mut String, r: &ZoneRecord) {
    out.push_str(r.owner.as_str());
    let _ = write!(out, ". {} IN TXT", r.ttl);
    for s in split_txt(&r.text) {
        out.push_str(" \"");
        if s.contains(['"', '\\']) {
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
        } else {
            out.push_str(s);
        }
        out.push('"');
    }
    out.push('\n');
}

/// Finds the serial in text written by [`render`].
pub fn read_serial(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.trim().strip_suffix("; serial"))
        .and_then(|s| s.trim().parse().ok())
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over the target. Readers (and a
/// DNS server reloading the file) see the old or the new zone, never half.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".mimi-zone-")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Soa;
    use mimi_proto::DomainName;

    fn zone(text: &str) -> Zone {
        let d = |s: &str| DomainName::parse(s).unwrap();
        Zone {
            origin: d("example.com"),
            ttl: 3600,
            soa: Soa {
                mname: d("ns1.example.com"),
                rname: d("hostmaster.example.com"),
                serial: 42,
                refresh: 1,
                retry: 2,
                expire: 3,
                minimum: 4,
            },
            ns: vec![d("ns1.example.com")],
            glue: vec![],
            records: vec![ZoneRecord::new(d("x._mimi.example.com"), 300, text)],
            next_resign: None,
            transfer: None,
            cache: Default::default(),
        }
    }

    #[test]
    fn splits_and_escapes() {
        let long = format!("v=mimi1;s=im:a\"b\\c;{}", "p".repeat(300));
        let out = render(&zone(&long));
        assert_eq!(read_serial(&out), Some(42));
        let line = out.lines().last().unwrap();
        assert!(line.starts_with("x._mimi.example.com. 300 IN TXT \"v=mimi1;s=im:a\\\"b\\\\c;"));
        assert_eq!(line.matches("\" \"").count(), 1, "{line}");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.zone");
        write_atomically(&p, "a").unwrap();
        write_atomically(&p, "b").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
