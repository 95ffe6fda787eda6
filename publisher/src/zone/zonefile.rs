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

use crate::zone::{Soa, Zone, ZoneRecord};

/// Renders a zone as master-file text. Equal zones give identical bytes.
pub fn render(zone: &Zone) -> String {
    let mut out = Vec::with_capacity(128 + zone.records.len() * 300);
    render_to(zone, &mut out).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("zone text is UTF-8")
}

/// Writes the text of [`render`] to `w` a batch of records at a time, so
/// that a zone of millions of records is never held as one string.
pub fn render_to(zone: &Zone, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut out = String::with_capacity(4096);
    let origin = zone.origin.fqdn();
    let soa = &zone.soa;
    let _ = writeln!(
        out,
        "; mimi-dns zone {origin} written by mimi-publisher; do not edit, rebuild instead"
    );
    zone.ledger.render(&mut out);
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
    for d in &zone.delegations {
        for ns in &d.ns {
            let _ = writeln!(out, "{} {} IN NS {}", d.owner.fqdn(), zone.ttl, ns.fqdn());
        }
    }
    w.write_all(out.as_bytes())?;
    // Records in parallel chunks, a batch at a time so that the text in
    // flight stays small.
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
            w.write_all(p.as_bytes())?;
        }
    }
    out.clear();
    for p in &zone.ptrs {
        let _ = writeln!(
            out,
            "{} {} IN PTR {}",
            p.owner.fqdn(),
            p.ttl,
            p.target.fqdn()
        );
        if out.len() > 64 * 1024 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    w.write_all(out.as_bytes())?;
    Ok(())
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

/// Text that [`parse`] cannot read back: the line (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads back a zone written by [`render`]: the SOA, NS, glue, delegation,
/// TXT and PTR records, so that a later build (or a restarted server) can reuse the
/// signatures and continue the serial. Only this writer's layout is
/// accepted; it is not a general master-file parser. The result has no
/// transfer policy and no build cache.
pub fn parse(text: &str) -> Result<Zone, ParseError> {
    use mimi_proto::DomainName;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let err = |line: usize, message: String| ParseError { line, message };
    let name = |line: usize, s: &str| {
        let bare = s
            .strip_suffix('.')
            .ok_or_else(|| err(line, format!("name {s:?} is not absolute")))?;
        DomainName::parse(bare).map_err(|e| err(line, format!("name {s:?}: {e}")))
    };
    let number = |line: usize, s: &str| {
        s.parse::<u32>()
            .map_err(|_| err(line, format!("{s:?} is not a number")))
    };
    let mut origin = None;
    let mut soa = None;
    let mut ns = Vec::new();
    let mut glue: Vec<(DomainName, Vec<std::net::IpAddr>)> = Vec::new();
    let mut records = Vec::new();
    let mut delegations: Vec<crate::zone::Delegation> = Vec::new();
    let mut ptrs = Vec::new();
    let mut ledger = crate::zone::ledger::Ledger::default();
    while let Some((n, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix(crate::zone::ledger::PREFIX) {
            ledger
                .parse_line(rest)
                .map_err(|m| err(n, format!("rollover ledger: {m}")))?;
            continue;
        }
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(o) = line.strip_prefix("$ORIGIN ") {
            origin = Some(name(n, o.trim())?);
            continue;
        }
        let mut fields = line.splitn(5, ' ');
        let (Some(owner), Some(ttl), Some("IN"), Some(rtype), Some(rest)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(err(n, "expected OWNER TTL IN TYPE DATA".into()));
        };
        let owner = name(n, owner)?;
        let ttl = number(n, ttl)?;
        match rtype {
            "TXT" => records.push(ZoneRecord::new(
                owner,
                ttl,
                parse_txt(rest).map_err(|m| err(n, m))?,
            )),
            "SOA" => {
                let head: Vec<&str> = rest.split(' ').collect();
                let [mname, rname, "("] = head[..] else {
                    return Err(err(n, "expected SOA MNAME RNAME (".into()));
                };
                let (sn, serial_line) = lines
                    .next()
                    .ok_or_else(|| err(n, "SOA ends early".into()))?;
                let serial = serial_line
                    .trim()
                    .strip_suffix("; serial")
                    .ok_or_else(|| err(sn, "expected the serial".into()))?;
                let (tn, timers) = lines
                    .next()
                    .ok_or_else(|| err(sn, "SOA ends early".into()))?;
                let timers: Vec<&str> = timers.split_whitespace().collect();
                let [refresh, retry, expire, minimum, ")"] = timers[..] else {
                    return Err(err(tn, "expected REFRESH RETRY EXPIRE MINIMUM )".into()));
                };
                soa = Some((
                    owner,
                    ttl,
                    Soa {
                        mname: name(n, mname)?,
                        rname: name(n, rname)?,
                        serial: number(sn, serial.trim())?,
                        refresh: number(tn, refresh)?,
                        retry: number(tn, retry)?,
                        expire: number(tn, expire)?,
                        minimum: number(tn, minimum)?,
                    },
                ));
            }
            "NS" if Some(&owner)
                == origin
                    .as_ref()
                    .or(soa.as_ref().map(|s: &(DomainName, u32, Soa)| &s.0)) =>
            {
                ns.push(name(n, rest)?)
            }
            "NS" => {
                let target = name(n, rest)?;
                match delegations.last_mut() {
                    Some(d) if d.owner == owner => d.ns.push(target),
                    _ => delegations.push(crate::zone::Delegation {
                        owner,
                        ns: vec![target],
                    }),
                }
            }
            "PTR" => ptrs.push(crate::zone::PtrRecord {
                owner,
                ttl,
                target: name(n, rest)?,
            }),
            "A" | "AAAA" => {
                let ip: std::net::IpAddr = rest
                    .parse()
                    .map_err(|_| err(n, format!("{rest:?} is not an address")))?;
                match glue.last_mut() {
                    Some((host, ips)) if *host == owner => ips.push(ip),
                    _ => glue.push((owner, vec![ip])),
                }
            }
            other => return Err(err(n, format!("unexpected record type {other}"))),
        }
    }
    let (apex, ttl, soa) = soa.ok_or_else(|| err(0, "no SOA record".into()))?;
    let origin = origin.unwrap_or_else(|| apex.clone());
    if apex != origin {
        return Err(err(0, format!("SOA at {apex}, but the origin is {origin}")));
    }
    records.sort();
    delegations.sort();
    ptrs.sort();
    Ok(Zone {
        origin,
        ttl,
        soa,
        ns,
        glue,
        records,
        delegations,
        ptrs,
        next_resign: None,
        transfer: None,
        cache: Default::default(),
        ledger,
    })
}

/// The text of a TXT record's data as [`render_record`] writes it: quoted
/// strings separated by single spaces, `"` and `\` escaped.
fn parse_txt(data: &str) -> Result<String, String> {
    let mut text = String::with_capacity(data.len());
    let mut chars = data.chars().peekable();
    loop {
        if chars.next() != Some('"') {
            return Err("expected a quoted string".into());
        }
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\')) => text.push(c),
                    _ => return Err("unexpected escape in TXT data".into()),
                },
                Some(c) => text.push(c),
                None => return Err("unterminated string in TXT data".into()),
            }
        }
        match chars.next() {
            None => return Ok(text),
            Some(' ') => {}
            Some(_) => return Err("expected a space between strings".into()),
        }
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over the target. Readers (and a
/// DNS server reloading the file) see the old or the new zone, never half.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomically_with(path, |f| f.write_all(text.as_bytes()))
}

/// Writes `zone` to `path` atomically (as [`write_atomically`]), rendering
/// it straight into the file.
pub fn write_zone_atomically(path: &Path, zone: &Zone) -> std::io::Result<()> {
    write_sealed_zone_atomically(path, zone, None)
}

/// Writes `zone` to `path` atomically, followed by its seal under `seal`
/// (see [`crate::zone::seal`]; `None` writes no seal).
pub fn write_sealed_zone_atomically(
    path: &Path,
    zone: &Zone,
    seal: Option<&crate::zone::seal::SealKey>,
) -> std::io::Result<()> {
    write_atomically_with(path, |f| {
        let w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut w = crate::zone::seal::SealingWriter::new(w, seal);
        render_to(zone, &mut w)?;
        w.finish()?.flush()
    })
}

/// Writes many zones, each to its path (all in one directory), sealed
/// under `seal`, atomically as [`write_sealed_zone_atomically`] does, but
/// with one flush to disk for all of them instead of two per file.
///
/// Why: a configuration of ten thousand customer domains writes ten
/// thousand small files at start, and two `fsync`s each (file, then
/// directory) made that take a minute. Here every temporary file is
/// written first, then the file system is synced once (`syncfs` on Linux;
/// elsewhere each file is synced), then each is renamed into place and the
/// directory synced once: when this returns, every file is durable, as
/// with the one-file function. (Up to a few dozen files, each is synced
/// instead of the file system: that flushes only what is ours.)
pub fn write_sealed_zones_atomically(
    items: &[(std::path::PathBuf, &Zone)],
    seal: Option<&crate::zone::seal::SealKey>,
) -> std::io::Result<()> {
    let Some((first, _)) = items.first() else {
        return Ok(());
    };
    if items.len() == 1 {
        return write_sealed_zone_atomically(&items[0].0, items[0].1, seal);
    }
    let dir = match first.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut temps = Vec::with_capacity(items.len());
    for (path, zone) in items {
        debug_assert_eq!(path.parent(), first.parent(), "one directory");
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)?;
        {
            let w = std::io::BufWriter::with_capacity(64 << 10, tmp.as_file_mut());
            let mut w = crate::zone::seal::SealingWriter::new(w, seal);
            render_to(zone, &mut w)?;
            w.finish()?.flush()?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        temps.push((tmp, path));
    }
    let dir_file = std::fs::File::open(&dir)?;
    // A few files are cheaper to sync one by one than the whole file
    // system, which may hold much else that is being written.
    if temps.len() <= FEW_FILES || !sync_file_system(&dir_file) {
        for (tmp, _) in &temps {
            tmp.as_file().sync_all()?;
        }
    }
    for (tmp, path) in temps {
        tmp.persist(path).map_err(|e| e.error)?;
    }
    #[cfg(unix)]
    dir_file.sync_all()?;
    Ok(())
}

/// Up to this many files, [`write_sealed_zones_atomically`] syncs each
/// file rather than the file system.
const FEW_FILES: usize = 64;

/// Flushes the whole file system holding `file` to disk (Linux `syncfs`);
/// false where that is not available or failed (the caller then syncs
/// each file).
fn sync_file_system(file: &std::fs::File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs only reads the descriptor, which `file` keeps
        // open for the duration of the call.
        unsafe { libc::syncfs(file.as_raw_fd()) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// The prefix of the temporary files [`write_atomically`] writes next to
/// its target; one left behind by a crash can be removed.
pub const TEMP_PREFIX: &str = ".mimi-zone-";

pub(crate) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable only once the directory is: without this, a
    // power loss can bring back the old file (or none) after the new one
    // was served and NOTIFYed.
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
            delegations: Vec::new(),
            ptrs: Vec::new(),
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
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
    fn parse_reads_back_what_render_writes() {
        let d = |s: &str| DomainName::parse(s).unwrap();
        let long = format!("v=mimi1;s=im:a\"b\\c;{}", "p".repeat(600));
        let mut z = zone(&long);
        z.glue = vec![(
            d("ns1.example.com"),
            vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        )];
        z.records
            .push(ZoneRecord::new(d("_mimi-ma.example.com"), 600, "v=mimi1;c"));
        z.records.sort();
        // Delegations (one with glue below its cut) and PTR records.
        z.glue.push((
            d("ns.b0._mimi.example.com"),
            vec!["192.0.2.8".parse().unwrap()],
        ));
        z.delegations = vec![
            crate::zone::Delegation {
                owner: d("a3._mimi.example.com"),
                ns: vec![d("ns1.example.com"), d("ns.example.net")],
            },
            crate::zone::Delegation {
                owner: d("b0._mimi.example.com"),
                ns: vec![d("ns.b0._mimi.example.com")],
            },
        ];
        z.ptrs = vec![crate::zone::PtrRecord {
            owner: d("x.zones.example.com"),
            ttl: 0,
            target: d("member.example.org"),
        }];
        let text = render(&z);
        assert!(
            text.contains("a3._mimi.example.com. 3600 IN NS ns.example.net.\n"),
            "{text}"
        );
        assert!(
            text.contains("x.zones.example.com. 0 IN PTR member.example.org.\n"),
            "{text}"
        );
        let back = parse(&text).unwrap();
        assert_eq!(back, z);
        assert!(back.same_content(&z) && back.soa.serial == 42);
        assert_eq!(render(&back), text);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.zone");
        write_zone_atomically(&p, &z).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);

        // Anything else is refused with its line.
        let bad = text.replace("IN NS", "IN MX");
        assert_eq!(parse(&bad).unwrap_err().line, 6);
        let bad = text.replace("\" \"", "\"\"");
        assert!(
            parse(&bad).unwrap_err().message.contains("space"),
            "{:?}",
            parse(&bad)
        );
        let bad = text.replace(" ; serial", "");
        assert_eq!(parse(&bad).unwrap_err().line, 4);
        assert!(parse("").is_err());
        assert!(parse("x. 300 IN TXT \"unterminated").is_err());
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

    #[test]
    fn many_zones_are_written_at_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let zones: Vec<Zone> = ["a.example", "b.example", "c.example"]
            .iter()
            .map(|o| {
                let mut z = zone("v=mimi1;x");
                z.origin = DomainName::parse(o).unwrap();
                z
            })
            .collect();
        let items: Vec<(std::path::PathBuf, &Zone)> = zones
            .iter()
            .map(|z| (dir.path().join(format!("{}.zone", z.origin.as_str())), z))
            .collect();
        let key = crate::zone::seal::SealKey::from_signing_key(
            &ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        );
        write_sealed_zones_atomically(&items, Some(&key)).unwrap();
        write_sealed_zones_atomically(&items, Some(&key)).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temporaries left"
        );
        for (path, z) in &items {
            let text = std::fs::read_to_string(path).unwrap();
            crate::zone::seal::open(&text, &key).unwrap();
            assert_eq!(
                parse(crate::zone::seal::body(&text)).unwrap().origin,
                z.origin
            );
        }
    }
}
