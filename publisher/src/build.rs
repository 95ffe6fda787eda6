//! Building a zone: read every input, sign, and assemble a [`Zone`].
//!
//! A build reads all inputs of one zone configuration, reports *every*
//! problem it finds (with file and line), and produces a zone only when there
//! are none, so a broken input never replaces a good zone. Signing runs on
//! all cores; records whose signed content did not change since the
//! `previous` zone are copied from it instead of being signed again, which
//! makes rebuilding a large zone after a small change cheap.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ed25519_dalek::SigningKey;
use mimi_proto::name::{discovery_name, home_zone};
use mimi_proto::{Certificate, DomainName, Sii, UnixTime, UnsignedAssertion};
use rayon::prelude::*;

use crate::config::{ZoneConfig, ZoneRole};
use crate::problem::Problem;
use crate::zone::{next_serial, Soa, Zone, ZoneRecord};
use crate::{keys, mappings, presigned};

/// A successful build: the zone and non-fatal problems.
#[derive(Debug)]
pub struct BuildOutput {
    /// The zone.
    pub zone: Zone,
    /// Warnings (duplicate mappings, expired pre-signed records skipped…).
    pub warnings: Vec<Problem>,
}

/// A failed build: every problem found, each with its file and line.
#[derive(Debug, thiserror::Error)]
pub struct BuildError {
    /// The problems.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 50;
        let n = self.problems.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in self.problems.iter().take(SHOWN) {
            write!(f, "\n  {p}")?;
        }
        if n > SHOWN {
            write!(f, "\n  … and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

impl From<Problem> for BuildError {
    fn from(p: Problem) -> Self {
        BuildError { problems: vec![p] }
    }
}

/// Progress callback: called with the number of mappings signed so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Loads the configuration at `config_path` and builds its zone.
pub fn build_from_path(
    config_path: &Path,
    now: UnixTime,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
) -> Result<BuildOutput, BuildError> {
    let config = ZoneConfig::load(config_path)
        .map_err(|e| Problem::in_file(config_path, strip_path(&e.to_string(), config_path)))?;
    build_zone(&config, now, previous, progress)
}

fn strip_path(msg: &str, path: &Path) -> String {
    msg.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(msg)
        .to_owned()
}

/// Where an SII's records go in this zone, or why they cannot.
fn owner_for(config: &ZoneConfig, sii: &Sii) -> Result<DomainName, String> {
    let label = sii.label();
    match config.role {
        ZoneRole::Distribution => Ok(discovery_name(&label, &config.origin)),
        ZoneRole::Home => {
            let home = home_zone(sii, config.tel_root.as_ref()).ok_or_else(|| {
                format!("{sii}: a telephone number in a home zone needs tel_root in the zone configuration")
            })?;
            let name = discovery_name(&label, &home);
            if name.is_within(&config.origin) {
                Ok(name)
            } else {
                Err(format!(
                    "{sii}: its home zone {home} is not inside zone {} (use role = \"distribution\" to publish any SII here)",
                    config.origin
                ))
            }
        }
    }
}

/// Builds the zone described by `config` at time `now`.
///
/// `previous`, the zone currently published, serves twice: records whose
/// text would be identical are reused rather than re-signed, and the serial
/// is kept when nothing changed or increased when something did.
pub fn build_zone(
    config: &ZoneConfig,
    now: UnixTime,
    previous: Option<&Zone>,
    progress: Option<Progress<'_>>,
) -> Result<BuildOutput, BuildError> {
    let mut errors: Vec<Problem> = Vec::new();
    let mut warnings: Vec<Problem> = Vec::new();
    let mut records: Vec<ZoneRecord> = Vec::new();
    let ttl = config.ttl;

    // Key.
    let key: Option<SigningKey> = config
        .authority
        .as_ref()
        .and_then(|a| a.key.as_ref())
        .and_then(|p| match keys::load_signing_key(p) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(Problem::in_file(p, strip_path(&e.to_string(), p)));
                None
            }
        });

    // Certificates.
    let mut certified_kids = BTreeSet::new();
    if let Some(auth) = &config.authority {
        for path in &auth.certificates {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(Problem::in_file(
                        path,
                        format!("cannot read certificates: {e}"),
                    ));
                    continue;
                }
            };
            for (i, line) in text.lines().enumerate() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let cert = match Certificate::parse(l) {
                    Ok(c) => c,
                    Err(e) => {
                        errors.push(Problem::at(
                            path,
                            i + 1,
                            format!("malformed certificate: {e}"),
                        ));
                        continue;
                    }
                };
                if cert.authority() != &auth.name {
                    errors.push(Problem::at(
                        path,
                        i + 1,
                        format!(
                            "certificate is for authority {}, but this zone's authority is {}",
                            cert.authority(),
                            auth.name
                        ),
                    ));
                    continue;
                }
                let owner = auth.name.certificate_name();
                if !owner.is_within(&config.origin) {
                    errors.push(Problem::at(
                        path,
                        i + 1,
                        format!("certificates are published at {owner}, which is not inside zone {}; publish them in the authority's own zone", config.origin),
                    ));
                    continue;
                }
                if cert.expires() <= now {
                    warnings.push(Problem::at(
                        path,
                        i + 1,
                        format!(
                            "certificate for key {} expired at {}; not published",
                            cert.kid(),
                            cert.expires()
                        ),
                    ));
                    continue;
                }
                certified_kids.insert(cert.kid().clone());
                records.push(ZoneRecord {
                    owner,
                    ttl,
                    text: l.to_owned(),
                });
            }
        }
    }
    if let (Some(k), Some(auth)) = (&key, &config.authority) {
        let kid = keys::public_key(k).expect("loaded keys are not weak").kid();
        if !auth.certificates.is_empty() && !certified_kids.contains(&kid) {
            warnings.push(Problem::in_file(
                &config.path,
                format!("signing key {kid} is not certified by any published certificate; resolvers accept its assertions only if it is a pinned root key of {}", auth.name),
            ));
        }
    }

    // Mappings.
    let mut mapped = Vec::new();
    if let Some(path) = &config.mappings {
        let f = mappings::read(path, None);
        errors.extend(f.errors);
        warnings.extend(f.warnings);
        for m in f.mappings {
            match owner_for(config, &m.sii) {
                Ok(owner) => mapped.push((m, owner)),
                Err(msg) => errors.push(Problem::at(path, m.line, msg)),
            }
        }
    }

    // Pre-signed assertions.
    for path in &config.presigned {
        let (items, problems) = presigned::read(path);
        errors.extend(problems);
        for p in items {
            if p.assertion.expires() <= now {
                warnings.push(Problem::at(
                    path,
                    p.line,
                    format!(
                        "assertion by {} expired at {}; not published",
                        p.assertion.authority(),
                        p.assertion.expires()
                    ),
                ));
                continue;
            }
            match owner_for(config, &p.sii) {
                Ok(owner) => records.push(ZoneRecord {
                    owner,
                    ttl,
                    text: p.assertion.text().to_owned(),
                }),
                Err(msg) => errors.push(Problem::at(path, p.line, msg)),
            }
        }
    }

    // Transfer policy (its TSIG key is an input like any other).
    let transfer = config.transfer.as_ref().and_then(|t| {
        let key = match &t.tsig_key {
            None => None,
            Some(p) => match crate::tsig::TsigKey::load(p) {
                Ok(k) => Some(k),
                Err(e) => {
                    errors.push(Problem::in_file(p, strip_path(&e.to_string(), p)));
                    return None;
                }
            },
        };
        Some(std::sync::Arc::new(crate::transfer::TransferPolicy {
            allow: t.allow.clone(),
            notify: t.notify.clone(),
            key,
        }))
    });

    for ns in &config.ns {
        if ns.is_within(&config.origin) && !config.glue.iter().any(|(h, _)| h == ns) {
            warnings.push(Problem::in_file(
                &config.path,
                format!("name server {ns} is inside the zone but has no address: add it under [glue] (secondaries and zone checkers warn about missing glue)"),
            ));
        }
    }

    if !errors.is_empty() {
        return Err(BuildError { problems: errors });
    }

    // Sign (all cores), reusing unchanged records of the previous zone.
    let mut next_resign: Option<UnixTime> =
        records.iter().filter_map(|r| record_expiry(&r.text)).min();
    if let (Some(key), Some(auth)) = (&key, &config.authority) {
        let reuse = previous.map(signature_index).unwrap_or_default();
        let kid = keys::public_key(key).expect("not weak").kid();
        let done = std::sync::atomic::AtomicU64::new(0);
        let signed: Result<Vec<ZoneRecord>, Problem> = mapped
            .par_iter()
            .with_min_len(256)
            .map(|(m, owner)| {
                let hash = m.sii.hash();
                let (t, x) = auth.window.window(&hash, now);
                let unsigned = UnsignedAssertion {
                    authority: auth.name.clone(),
                    ssi: m.ssi.clone(),
                    not_before: t,
                    expires: x,
                    include_label: false,
                    extensions: vec![],
                };
                let body = unsigned.body(&hash, &kid);
                let text = match reuse.get(&(owner.as_str(), body.as_str())) {
                    Some(text) => (*text).to_owned(),
                    None => unsigned
                        .sign(&hash, key)
                        .map_err(|e| {
                            Problem::at(
                                config.mappings.clone().unwrap_or_default(),
                                m.line,
                                e.to_string(),
                            )
                        })?
                        .text()
                        .to_owned(),
                };
                if let Some(cb) = progress {
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n % 1024 == 0 {
                        cb(n);
                    }
                }
                Ok(ZoneRecord {
                    owner: owner.clone(),
                    ttl,
                    text,
                })
            })
            .collect();
        records.extend(signed.map_err(BuildError::from)?);
        if let Some(cb) = progress {
            cb(mapped.len() as u64);
        }
        let earliest = mapped
            .iter()
            .map(|(m, _)| auth.window.next_change(&m.sii.hash(), now))
            .min();
        next_resign = next_resign.into_iter().chain(earliest).min();
    }

    records.sort_unstable();
    records.dedup();

    let floor = records
        .iter()
        .filter_map(|r| record_not_before(&r.text))
        .max()
        .map(|t| u32::try_from(t.0).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let mut zone = Zone {
        origin: config.origin.clone(),
        ttl: config.soa.ttl,
        soa: Soa {
            mname: config.soa.mname.clone(),
            rname: config.soa.rname.clone(),
            serial: floor,
            refresh: config.soa.refresh,
            retry: config.soa.retry,
            expire: config.soa.expire,
            minimum: config.soa.minimum,
        },
        ns: config.ns.clone(),
        glue: config.glue.clone(),
        records,
        next_resign,
        transfer,
    };
    if let Some(prev) = previous {
        zone.soa.serial = if zone.same_content(prev) {
            prev.soa.serial
        } else {
            next_serial(prev.soa.serial, floor)
        };
    }
    Ok(BuildOutput { zone, warnings })
}

/// `(owner, body) → record text` for every record of a zone.
fn signature_index(zone: &Zone) -> HashMap<(&str, &str), &str> {
    zone.records
        .iter()
        .filter_map(|r| {
            let cut = r.text.rfind(";sig=")?;
            Some(((r.owner.as_str(), &r.text[..cut]), r.text.as_str()))
        })
        .collect()
}

fn field_time(text: &str, key: &str) -> Option<UnixTime> {
    text.split(';')
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .map(UnixTime)
}

fn record_expiry(text: &str) -> Option<UnixTime> {
    field_time(text, "x")
}

fn record_not_before(text: &str) -> Option<UnixTime> {
    field_time(text, "t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(role: &str, mappings: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let f = Fixture { dir };
            keys::write_signing_key(&f.path("k.pem"), &SigningKey::from_bytes(&[7u8; 32])).unwrap();
            f.write("m.csv", mappings);
            f.write(
                "zone.toml",
                &format!(
                    "origin = \"example.com\"\nrole = \"{role}\"\ntel_root = \"e164.example.com\"\nns = [\"ns1.example.com\"]\nmappings = \"m.csv\"\n[soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\n[authority]\nname = \"example.com\"\nkey = \"k.pem\"\n"
                ),
            );
            f
        }
        fn path(&self, n: &str) -> std::path::PathBuf {
            self.dir.path().join(n)
        }
        fn write(&self, n: &str, text: &str) {
            std::fs::File::create(self.path(n))
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        fn build(&self, now: u64, prev: Option<&Zone>) -> Result<BuildOutput, BuildError> {
            build_from_path(&self.path("zone.toml"), UnixTime(now), prev, None)
        }
    }

    const NOW: u64 = 1_765_000_000;

    #[test]
    fn home_zone_places_emails_and_phones() {
        let f = Fixture::new("home", "alice@example.com,mimi://chat.example.com/u/alice\n+39 06 1234 5678,im:bob@chat.example.com\n");
        let z = f.build(NOW, None).unwrap().zone;
        let owners: Vec<_> = z
            .records
            .iter()
            .map(|r| r.owner.as_str().to_owned())
            .collect();
        let alice = Sii::parse("alice@example.com", None).unwrap();
        assert!(owners.contains(&format!("{}._mimi.example.com", alice.label())));
        assert!(owners
            .iter()
            .any(|o| o.ends_with("._mimi.9.3.e164.example.com")));
        assert!(z.next_resign.is_some());
    }

    #[test]
    fn home_zone_rejects_foreign_domains_with_line_numbers() {
        let f = Fixture::new(
            "home",
            "# c\nalice@example.com,mimi://a.example/x\nbob@other.org,mimi://a.example/y\n",
        );
        let e = f.build(NOW, None).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].line, Some(3));
        assert!(e.to_string().contains("not inside zone example.com"), "{e}");
    }

    #[test]
    fn distribution_zone_takes_everything() {
        let f = Fixture::new("distribution", "bob@other.org,mimi://a.example/y\n");
        let z = f.build(NOW, None).unwrap().zone;
        let bob = Sii::parse("bob@other.org", None).unwrap();
        assert_eq!(
            z.records[0].owner.as_str(),
            format!("{}._mimi.example.com", bob.label())
        );
    }

    #[test]
    fn deterministic_reusing_and_serials() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        let a = f.build(NOW, None).unwrap().zone;
        let b = f.build(NOW + 10, None).unwrap().zone;
        assert_eq!(crate::zonefile::render(&a), crate::zonefile::render(&b));
        // Same content with a previous zone: serial kept.
        let c = f.build(NOW + 20, Some(&a)).unwrap().zone;
        assert_eq!(c.soa.serial, a.soa.serial);
        // A change: serial increases.
        f.write(
            "m.csv",
            "alice@example.com,mimi://a.example/x\ncarol@example.com,mimi://a.example/c\n",
        );
        let d = f.build(NOW + 30, Some(&c)).unwrap().zone;
        assert!(d.soa.serial > c.soa.serial);
        assert_eq!(d.records.len(), 2);
        // A removal: serial increases again.
        f.write("m.csv", "carol@example.com,mimi://a.example/c\n");
        let e = f.build(NOW + 40, Some(&d)).unwrap().zone;
        assert!(e.soa.serial > d.soa.serial);
        assert_eq!(e.records.len(), 1);
    }

    #[test]
    fn records_are_reused_from_the_previous_zone() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        let mut a = f.build(NOW, None).unwrap().zone;
        // Mark the previous record: an index hit copies it verbatim.
        let cut = a.records[0].text.rfind(";sig=").unwrap();
        let marked = format!("{};sig={}", &a.records[0].text[..cut], "A".repeat(86));
        a.records[0].text = marked.clone();
        let b = f.build(NOW, Some(&a)).unwrap().zone;
        assert_eq!(b.records[0].text, marked);
        // After the window rolls over the record is signed afresh.
        let later = f.build(NOW + 30 * 86400, Some(&a)).unwrap().zone;
        assert_ne!(later.records[0].text, marked);
    }

    #[test]
    fn bad_key_file_is_reported() {
        let f = Fixture::new("home", "alice@example.com,mimi://a.example/x\n");
        std::fs::remove_file(f.path("k.pem")).unwrap();
        let e = f.build(NOW, None).unwrap_err();
        assert!(e.problems[0].file.ends_with("k.pem"), "{e}");
    }
}
