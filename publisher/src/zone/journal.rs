//! The history of a served zone's changes, for incremental zone transfer
//! (IXFR, RFC 1995).
//!
//! SPEC §9 spreads re-signing, so a large zone gets a new serial every few
//! minutes with a few hundred changed records. Without a history every
//! secondary then transfers the whole zone each time. The [`Journal`] keeps
//! the differences ([`Delta`]: records removed and added) between
//! successive serials, so that a secondary holding a recent serial gets
//! only what changed since, condensed into one difference
//! ([`Journal::condense`], RFC 1995 §5).
//!
//! Only the TXT records are journaled. A change of anything else (the SOA
//! other than its serial, NS, glue, the zone TTL) resets the journal: the
//! next IXFR from an older serial is answered with the whole zone. Such
//! changes are rare operator edits, and keeping them out makes every delta
//! a plain set difference of records.
//!
//! The journal is bounded ([`JournalLimits`]): by the records it holds
//! (removed plus added, over all its deltas) and by age; the oldest deltas
//! are dropped first. A journal is immutable once made: the next one shares
//! its deltas ([`Arc`]) and adds one, so the served zone and a transfer in
//! progress keep the snapshot they started with.
//!
//! # The journal file
//!
//! With a state directory the journal is also kept on disk, next to the
//! kept zone, as `<origin>.journal`, so that a restarted server goes on
//! answering IXFR. The file is [`MAGIC`] followed by one entry per delta:
//!
//! ```text
//! length   u32 BE: octets of body
//! body     from u32, to u32, at u64 (Unix seconds), removed u32, added u32,
//!          then each record: owner length u16, owner (canonical text),
//!          ttl u32, text length u32, text (UTF-8)
//! mac      32 octets: HMAC-SHA-256 over length and body, keyed with the
//!          zone's seal key (crate::zone::seal)
//! ```
//!
//! Entries are appended (and synced) before the zone they lead to is
//! installed; the file is rewritten whole when old deltas are dropped. A
//! reader stops at the first entry that is cut short, whose MAC does not
//! verify, or that does not continue the serial chain: that tail (a torn
//! write, or an altered file) is dropped, never served. Only a zone with a
//! seal key (a signing key) keeps its journal, as only its kept zone is
//! trusted enough to lend records.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mimi_proto::{DomainName, UnixTime};

pub use crate::input::config::JournalLimits;
use crate::zone::seal::SealKey;
use crate::zone::{Zone, ZoneRecord};

/// The difference between two successive serials of a zone.
#[derive(Debug, PartialEq, Eq)]
pub struct Delta {
    /// The serial this applies to.
    pub from: u32,
    /// The serial it leads to.
    pub to: u32,
    /// When the serial `to` was installed (ages the delta out).
    pub at: UnixTime,
    /// Records of `from` that `to` no longer has, sorted.
    pub removed: Vec<ZoneRecord>,
    /// Records of `to` that `from` did not have, sorted.
    pub added: Vec<ZoneRecord>,
}

impl Delta {
    /// Records held: removed plus added.
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }

    /// Whether nothing changed but the serial.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A zone's bounded history of deltas, oldest first, each one's `to` the
/// next one's `from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    deltas: Vec<Arc<Delta>>,
    records: usize,
}

/// The net difference from a journaled serial to the current one.
#[derive(Debug, PartialEq, Eq)]
pub struct Condensed {
    /// Records to delete, sorted.
    pub removed: Vec<ZoneRecord>,
    /// Records to add, sorted.
    pub added: Vec<ZoneRecord>,
}

/// What [`Journal::advance`] did, which tells how the journal file follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The delta was added to the end: append it to the file.
    Appended(Arc<Delta>),
    /// Older deltas were dropped (or there were none): rewrite the file.
    Rewritten {
        /// Deltas dropped by the bounds, the chain or the reset.
        dropped: usize,
    },
    /// The journal was emptied: the change is not one it can express.
    Reset(&'static str),
}

/// RFC 1982: whether serial `a` is newer than `b`.
pub fn serial_newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < (1 << 31)
}

/// The records of `old` not in `new`, and of `new` not in `old`, both
/// sorted: one merge pass over the two sorted record lists, which for a
/// rebuilt zone mostly compares shared pointers.
pub fn diff(old: &[ZoneRecord], new: &[ZoneRecord]) -> (Vec<ZoneRecord>, Vec<ZoneRecord>) {
    use std::cmp::Ordering;
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                removed.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                added.push(new[j].clone());
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&old[i..]);
    added.extend_from_slice(&new[j..]);
    (removed, added)
}

/// Why `new` cannot be journaled as a difference of `old`'s records, if it
/// cannot: something other than the TXT records and the serial changed.
pub fn incompatibility(old: &Zone, new: &Zone) -> Option<&'static str> {
    let mut soa = old.soa.clone();
    soa.serial = new.soa.serial;
    if old.origin != new.origin {
        Some("the origin changed")
    } else if soa != new.soa {
        Some("the SOA changed (other than its serial)")
    } else if old.ttl != new.ttl {
        Some("the zone TTL changed")
    } else if old.ns != new.ns {
        Some("the NS records changed")
    } else if old.glue != new.glue {
        Some("the glue changed")
    } else if old.delegations != new.delegations {
        Some("the delegations changed")
    } else if old.ptrs != new.ptrs {
        Some("the PTR records changed (a catalog's members)")
    } else if !serial_newer(new.soa.serial, old.soa.serial) {
        Some("the serial did not increase")
    } else {
        None
    }
}

impl Journal {
    /// A journal of `deltas` (oldest first, chained); `None` if they do not
    /// form a chain.
    pub fn from_deltas(deltas: Vec<Arc<Delta>>) -> Option<Self> {
        if deltas.windows(2).any(|w| w[0].to != w[1].from) {
            return None;
        }
        let records = deltas.iter().map(|d| d.len()).sum();
        Some(Journal { deltas, records })
    }

    /// The deltas, oldest first.
    pub fn deltas(&self) -> &[Arc<Delta>] {
        &self.deltas
    }

    /// Records held (removed plus added, over all deltas).
    pub fn records(&self) -> usize {
        self.records
    }

    /// The serial the last delta leads to (the zone's current serial for a
    /// served zone's journal), if any delta is kept.
    pub fn last_serial(&self) -> Option<u32> {
        self.deltas.last().map(|d| d.to)
    }

    /// The oldest serial an IXFR can start from, if any.
    pub fn first_serial(&self) -> Option<u32> {
        self.deltas.first().map(|d| d.from)
    }

    /// The journal after `new` replaced `old` (the zone this journal ends
    /// with) at time `now`, bounded by `limits`, and what changed.
    pub fn advance(
        &self,
        old: &Zone,
        new: &Zone,
        limits: JournalLimits,
        now: UnixTime,
    ) -> (Journal, Outcome) {
        if let Some(why) = incompatibility(old, new) {
            return (Journal::default(), Outcome::Reset(why));
        }
        let (removed, added) = diff(&old.records, &new.records);
        let delta = Arc::new(Delta {
            from: old.soa.serial,
            to: new.soa.serial,
            at: now,
            removed,
            added,
        });
        let mut next = match self.last_serial() {
            Some(s) if s == old.soa.serial => self.clone(),
            _ => Journal::default(),
        };
        let mut dropped = self.deltas.len() - next.deltas.len();
        let fresh = next.deltas.is_empty();
        next.records += delta.len();
        next.deltas.push(delta.clone());
        dropped += next.trim(limits.max_records_for(new.records.len()), limits, now);
        let outcome = if dropped == 0 && !fresh {
            Outcome::Appended(delta)
        } else {
            Outcome::Rewritten { dropped }
        };
        (next, outcome)
    }

    /// The journal of a served zone after `new` replaced `old` (`None`:
    /// no zone before), bounded by `new`'s `[transfer]` limits. A zone
    /// without transfers keeps no history.
    pub fn follow(&self, old: Option<&Zone>, new: &Zone, now: UnixTime) -> (Journal, Outcome) {
        match (old, new.transfer.as_deref()) {
            (_, None) => (
                Journal::default(),
                Outcome::Reset("the zone has no [transfer] section"),
            ),
            (None, _) => (Journal::default(), Outcome::Reset("no previous zone")),
            (Some(old), Some(policy)) => self.advance(old, new, policy.journal, now),
        }
    }

    /// Drops the oldest deltas once more than `max_records` are held or
    /// the oldest is older than `limits.max_age`; returns how many were
    /// dropped.
    ///
    /// Dropping goes on down to three quarters of both bounds, so that a
    /// journal at its bound is trimmed (and its file rewritten) once per
    /// quarter of the bound's worth of changes, not on every change: the
    /// cost of rewriting stays proportional to the changes journaled.
    fn trim(&mut self, max_records: usize, limits: JournalLimits, now: UnixTime) -> usize {
        let max_age = limits.max_age.as_secs();
        let too_old = |d: &Delta, age: u64| d.at.0 < now.0.saturating_sub(age);
        let over =
            self.records > max_records || self.deltas.first().is_some_and(|d| too_old(d, max_age));
        if !over {
            return 0;
        }
        let (low_records, low_age) = (max_records - max_records / 4, max_age - max_age / 4);
        let mut n = 0;
        let mut records = self.records;
        for d in &self.deltas {
            if records > low_records || too_old(d, low_age) {
                records -= d.len();
                n += 1;
            } else {
                break;
            }
        }
        self.deltas.drain(..n);
        self.records = records;
        n
    }

    /// The journal bounded by `limits` for a zone of `zone_records`
    /// records at `now` (for a journal read back from disk).
    pub fn trimmed(mut self, zone_records: usize, limits: JournalLimits, now: UnixTime) -> Self {
        self.trim(limits.max_records_for(zone_records), limits, now);
        self
    }

    /// This journal with its records replaced by the equal ones of
    /// `records` (a zone's sorted records) where there are any, so that a
    /// journal read back from disk shares its strings with the zone
    /// instead of holding a second copy.
    pub fn sharing(self, records: &[ZoneRecord]) -> Journal {
        let share = |list: &[ZoneRecord]| -> Vec<ZoneRecord> {
            list.iter()
                .map(|r| match records.binary_search(r) {
                    Ok(i) => records[i].clone(),
                    Err(_) => r.clone(),
                })
                .collect()
        };
        let deltas = self
            .deltas
            .iter()
            .map(|d| {
                Arc::new(Delta {
                    from: d.from,
                    to: d.to,
                    at: d.at,
                    removed: share(&d.removed),
                    added: share(&d.added),
                })
            })
            .collect();
        Journal {
            deltas,
            records: self.records,
        }
    }

    /// The net difference from serial `from` to the last serial (RFC 1995
    /// §5 condensation: a record added and removed again in between
    /// appears in neither list), or `None` if `from` is not journaled.
    pub fn condense(&self, from: u32) -> Option<Condensed> {
        let start = self.deltas.iter().position(|d| d.from == from)?;
        let deltas = &self.deltas[start..];
        if let [only] = deltas {
            return Some(Condensed {
                removed: only.removed.clone(),
                added: only.added.clone(),
            });
        }
        let mut removed = BTreeSet::new();
        let mut added = BTreeSet::new();
        for d in deltas {
            for r in &d.removed {
                if !added.remove(r) {
                    removed.insert(r.clone());
                }
            }
            for r in &d.added {
                if !removed.remove(r) {
                    added.insert(r.clone());
                }
            }
        }
        Some(Condensed {
            removed: removed.into_iter().collect(),
            added: added.into_iter().collect(),
        })
    }
}

/// The first octets of a journal file.
pub const MAGIC: &[u8] = b"mimi-publisher journal v1\n";

/// The largest entry read back (1 GiB): a length beyond it is damage.
const MAX_ENTRY: u64 = 1 << 30;

/// Length of an entry's MAC.
const MAC_LEN: usize = 32;

/// A journal file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalFileError {
    /// Reading or writing failed.
    #[error("journal {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It does not start like a journal.
    #[error("journal {}: not a mimi-publisher journal (bad header)", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
}

/// A journal read back from a file.
#[derive(Debug)]
pub struct Loaded {
    /// The deltas of every entry that verified, in order.
    pub journal: Journal,
    /// Why reading stopped before the end of the file, if it did, with the
    /// offset of the first entry dropped.
    pub dropped_tail: Option<(u64, String)>,
}

/// One entry of the file for `delta`, with its MAC under `key`.
pub fn encode_entry(delta: &Delta, key: &SealKey) -> Vec<u8> {
    let mut body = Vec::with_capacity(24 + delta.len() * 64);
    body.extend_from_slice(&delta.from.to_be_bytes());
    body.extend_from_slice(&delta.to.to_be_bytes());
    body.extend_from_slice(&delta.at.0.to_be_bytes());
    body.extend_from_slice(&(delta.removed.len() as u32).to_be_bytes());
    body.extend_from_slice(&(delta.added.len() as u32).to_be_bytes());
    for r in delta.removed.iter().chain(&delta.added) {
        let owner = r.owner.as_str().as_bytes();
        body.extend_from_slice(&(owner.len() as u16).to_be_bytes());
        body.extend_from_slice(owner);
        body.extend_from_slice(&r.ttl.to_be_bytes());
        body.extend_from_slice(&(r.text.len() as u32).to_be_bytes());
        body.extend_from_slice(r.text.as_bytes());
    }
    let len = (body.len() as u32).to_be_bytes();
    let mac = crate::zone::seal::mac(key, &[&len, &body]);
    let mut entry = Vec::with_capacity(4 + body.len() + MAC_LEN);
    entry.extend_from_slice(&len);
    entry.extend_from_slice(&body);
    entry.extend_from_slice(&mac);
    entry
}

/// Reads a body of a verified entry; `None` if it is malformed.
fn decode_body(body: &[u8]) -> Option<Delta> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
        }
    }
    let mut c = Cursor(body);
    let from = c.u32()?;
    let to = c.u32()?;
    let at = UnixTime(c.u64()?);
    let n_removed = c.u32()? as usize;
    let n_added = c.u32()? as usize;
    // Counts only bound loops over bytes that are there: every record
    // takes at least 10 octets, so none is allocated for beyond the body.
    let mut record = || -> Option<ZoneRecord> {
        let owner_len = c.u16()? as usize;
        let owner = std::str::from_utf8(c.take(owner_len)?).ok()?;
        let owner = DomainName::parse_canonical(owner).ok()?;
        let ttl = c.u32()?;
        let text_len = c.u32()? as usize;
        let text = std::str::from_utf8(c.take(text_len)?).ok()?;
        Some(ZoneRecord::new(owner, ttl, text))
    };
    let mut removed = Vec::new();
    for _ in 0..n_removed {
        removed.push(record()?);
    }
    let mut added = Vec::new();
    for _ in 0..n_added {
        added.push(record()?);
    }
    if !c.0.is_empty() || !serial_newer(to, from) {
        return None;
    }
    Some(Delta {
        from,
        to,
        at,
        removed,
        added,
    })
}

/// Reads the journal file at `path`, verifying each entry under `key`:
/// every entry up to the first that is cut short, does not verify or
/// breaks the serial chain (reported in [`Loaded::dropped_tail`]).
/// Allocation is bounded by the file's size.
pub fn read_file(path: &Path, key: &SealKey) -> Result<Loaded, JournalFileError> {
    let io = |source| JournalFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut r = std::io::BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    if size < MAGIC.len() as u64 || r.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(JournalFileError::NotAJournal {
            path: path.to_owned(),
        });
    }
    let mut at = MAGIC.len() as u64;
    let mut deltas: Vec<Arc<Delta>> = Vec::new();
    let mut dropped_tail = None;
    while at < size {
        let stop = |why: &str| Some((at, why.to_owned()));
        let mut len = [0u8; 4];
        if size - at < 4 || r.read_exact(&mut len).is_err() {
            dropped_tail = stop("entry cut short (torn write)");
            break;
        }
        let body_len = u64::from(u32::from_be_bytes(len));
        if body_len > MAX_ENTRY || size - at - 4 < body_len + MAC_LEN as u64 {
            dropped_tail = stop("entry cut short (torn write) or its length is damaged");
            break;
        }
        let mut body = vec![0u8; body_len as usize];
        let mut mac = [0u8; MAC_LEN];
        if r.read_exact(&mut body).is_err() || r.read_exact(&mut mac).is_err() {
            dropped_tail = stop("entry cut short while reading");
            break;
        }
        if crate::zone::seal::mac(key, &[&len, &body]) != mac {
            dropped_tail = stop("entry does not verify (altered, or written with another key)");
            break;
        }
        let Some(delta) = decode_body(&body) else {
            dropped_tail = stop("entry verifies but does not decode");
            break;
        };
        if deltas.last().is_some_and(|p| p.to != delta.from) {
            dropped_tail = stop(&format!(
                "entry {} → {} does not continue the serial chain",
                delta.from, delta.to
            ));
            break;
        }
        deltas.push(Arc::new(delta));
        at += 4 + body_len + MAC_LEN as u64;
    }
    let journal = Journal::from_deltas(deltas).expect("chain checked while reading");
    Ok(Loaded {
        journal,
        dropped_tail,
    })
}

/// Writes `journal` to `path` whole, atomically and durably.
pub fn write_file(path: &Path, journal: &Journal, key: &SealKey) -> std::io::Result<()> {
    crate::zone::zonefile::write_atomically_with(path, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        w.write_all(MAGIC)?;
        for d in &journal.deltas {
            w.write_all(&encode_entry(d, key))?;
        }
        w.flush()
    })
}

/// Appends `delta` to the journal file at `path` (which must end with the
/// delta before it) and syncs it.
pub fn append_file(path: &Path, delta: &Delta, key: &SealKey) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(&encode_entry(delta, key))?;
    f.sync_data()
}

/// Cuts the file at `path` to its first `len` octets (drops a bad tail, so
/// that later appends follow the last good entry) and syncs it.
pub fn truncate_file(path: &Path, len: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Soa;
    use std::time::Duration;

    fn rec(owner: &str, text: &str) -> ZoneRecord {
        ZoneRecord::new(DomainName::parse(owner).unwrap(), 300, text)
    }

    fn zone(serial: u32, records: &[ZoneRecord]) -> Zone {
        let mut records = records.to_vec();
        records.sort();
        Zone {
            origin: DomainName::parse("example.com").unwrap(),
            ttl: 3600,
            soa: Soa {
                mname: DomainName::parse("ns1.example.com").unwrap(),
                rname: DomainName::parse("hostmaster.example.com").unwrap(),
                serial,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 300,
            },
            ns: vec![DomainName::parse("ns1.example.com").unwrap()],
            glue: vec![],
            delegations: vec![],
            ptrs: vec![],
            records,
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
        }
    }

    const LIMITS: JournalLimits = JournalLimits::DEFAULT;
    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn key() -> SealKey {
        SealKey::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn diff_is_the_set_difference() {
        let (a, b, c, d) = (
            rec("a.example.com", "1"),
            rec("b.example.com", "1"),
            rec("c.example.com", "1"),
            rec("b.example.com", "2"),
        );
        let old = zone(1, &[a.clone(), b.clone(), c.clone()]);
        let new = zone(2, &[a.clone(), d.clone(), c.clone()]);
        assert_eq!(
            diff(&old.records, &new.records),
            (vec![b.clone()], vec![d.clone()])
        );
        assert_eq!(diff(&[], &new.records).1, new.records);
        assert_eq!(diff(&old.records, &[]).0, old.records);
        assert_eq!(diff(&old.records, &old.records), (vec![], vec![]));
    }

    #[test]
    fn condense_over_several_deltas() {
        let (a, b, c, x) = (
            rec("a.example.com", "1"),
            rec("b.example.com", "1"),
            rec("c.example.com", "1"),
            rec("x.example.com", "temp"),
        );
        let z1 = zone(1, &[a.clone(), b.clone()]);
        // x added, then removed again; b removed; c added; a re-added after removal.
        let z2 = zone(2, &[a.clone(), b.clone(), x.clone()]);
        let z3 = zone(3, &[b.clone(), c.clone()]);
        let z4 = zone(4, &[a.clone(), c.clone()]);
        let (j, o) = Journal::default().advance(&z1, &z2, LIMITS, NOW);
        assert_eq!(o, Outcome::Rewritten { dropped: 0 });
        let (j, o) = j.advance(&z2, &z3, LIMITS, NOW);
        assert!(matches!(o, Outcome::Appended(_)), "{o:?}");
        let (j, _) = j.advance(&z3, &z4, LIMITS, NOW);
        assert_eq!(j.deltas().len(), 3);
        assert_eq!((j.first_serial(), j.last_serial()), (Some(1), Some(4)));
        let c1 = j.condense(1).unwrap();
        assert_eq!(
            c1,
            Condensed {
                removed: vec![b.clone()],
                added: vec![c.clone()]
            }
        );
        let c2 = j.condense(2).unwrap();
        assert_eq!(
            c2,
            Condensed {
                removed: vec![b.clone(), x.clone()],
                added: vec![c.clone()]
            }
        );
        let c3 = j.condense(3).unwrap();
        assert_eq!(
            c3,
            Condensed {
                removed: vec![b.clone()],
                added: vec![a.clone()]
            }
        );
        assert_eq!(j.condense(4), None);
        assert_eq!(j.condense(0), None);
        // Applying the condensed difference to serial 1 gives serial 4.
        for from in [&z1, &z2, &z3] {
            let c = j.condense(from.soa.serial).unwrap();
            let mut set: BTreeSet<_> = from.records.iter().cloned().collect();
            c.removed.iter().for_each(|r| assert!(set.remove(r)));
            c.added.iter().for_each(|r| assert!(set.insert(r.clone())));
            assert_eq!(set.into_iter().collect::<Vec<_>>(), z4.records);
        }
    }

    #[test]
    fn other_changes_reset_and_bounds_trim() {
        let a = rec("a.example.com", "1");
        let z1 = zone(1, std::slice::from_ref(&a));
        let z2 = zone(2, &[rec("a.example.com", "2")]);
        let (j, _) = Journal::default().advance(&z1, &z2, LIMITS, NOW);
        let mut z3 = zone(3, std::slice::from_ref(&a));
        z3.soa.refresh += 1;
        let (j3, o) = j.advance(&z2, &z3, LIMITS, NOW);
        assert_eq!(o, Outcome::Reset("the SOA changed (other than its serial)"));
        assert_eq!(j3, Journal::default());
        let mut z3 = zone(3, std::slice::from_ref(&a));
        z3.ns.push(DomainName::parse("ns2.example.com").unwrap());
        assert!(matches!(
            j.advance(&z2, &z3, LIMITS, NOW).1,
            Outcome::Reset(_)
        ));
        let z0 = zone(1, std::slice::from_ref(&a));
        assert_eq!(
            j.advance(&z2, &z0, LIMITS, NOW).1,
            Outcome::Reset("the serial did not increase")
        );
        // A journal that does not end at the old zone starts again.
        let (j5, o) = j.advance(
            &zone(4, &[]),
            &zone(5, std::slice::from_ref(&a)),
            LIMITS,
            NOW,
        );
        assert_eq!(o, Outcome::Rewritten { dropped: 1 });
        assert_eq!(j5.first_serial(), Some(4));
        // Record bound: each delta here holds 2 records; at most 8, and
        // once over, trimmed to 6.
        let tight = JournalLimits {
            max_records: Some(8),
            ..LIMITS
        };
        let mut j = Journal::default();
        let mut prev = z1.clone();
        let mut rewrites = 0;
        for s in 2..=5 {
            let next = zone(s, &[rec("a.example.com", &s.to_string())]);
            let (nj, o) = j.advance(&prev, &next, tight, NOW);
            rewrites += usize::from(matches!(o, Outcome::Rewritten { dropped: 1.. }));
            j = nj;
            prev = next;
        }
        assert_eq!((j.first_serial(), j.records(), rewrites), (Some(1), 8, 0));
        let next = zone(6, &[rec("a.example.com", "6")]);
        let (j, o) = j.advance(&prev, &next, tight, NOW);
        assert_eq!(o, Outcome::Rewritten { dropped: 2 });
        assert_eq!((j.first_serial(), j.records()), (Some(3), 6));
        assert!(j.condense(2).is_none() && j.condense(3).is_some());
        // The next change appends again.
        let (_, o) = j.advance(&next, &zone(7, &[rec("a.example.com", "7")]), tight, NOW);
        assert!(matches!(o, Outcome::Appended(_)), "{o:?}");
        // A delta larger than the bound leaves nothing.
        let none = JournalLimits {
            max_records: Some(1),
            ..LIMITS
        };
        let (j, o) = Journal::default().advance(&z1, &z2, none, NOW);
        assert_eq!(
            (j.deltas().len(), o),
            (0, Outcome::Rewritten { dropped: 1 })
        );
        // Age bound.
        let (j, _) = Journal::default().advance(&z1, &z2, LIMITS, UnixTime(NOW.0 - 8 * 86_400));
        let (j, _) = j.advance(&z2, &zone(3, std::slice::from_ref(&a)), LIMITS, NOW);
        assert_eq!(j.first_serial(), Some(2));
        let short = JournalLimits {
            max_age: Duration::from_secs(60),
            ..LIMITS
        };
        assert_eq!(
            j.clone()
                .trimmed(1, short, UnixTime(NOW.0 + 61))
                .deltas()
                .len(),
            0
        );
        assert_eq!(j.clone().trimmed(1, short, NOW).deltas().len(), 1);
        // The default record bound follows the zone size.
        assert_eq!(LIMITS.max_records_for(10), 1_000);
        assert_eq!(LIMITS.max_records_for(100_000), 200_000);
    }

    fn chain() -> Journal {
        let mut j = Journal::default();
        let mut prev = zone(
            10,
            &[
                rec("a.example.com", "x"),
                rec("b.example.com", &"long ".repeat(100)),
            ],
        );
        for s in 11..=13 {
            let next = zone(
                s,
                &[
                    rec("a.example.com", &s.to_string()),
                    rec("b.example.com", &"long ".repeat(100)),
                    rec("c.example.com", "ü"),
                ],
            );
            let (nj, _) = j.advance(&prev, &next, LIMITS, NOW);
            j = nj;
            prev = next;
        }
        j
    }

    #[test]
    fn file_round_trip_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.com.journal");
        let j = chain();
        let first = Journal::from_deltas(j.deltas()[..1].to_vec()).unwrap();
        write_file(&path, &first, &key()).unwrap();
        for d in &j.deltas()[1..] {
            append_file(&path, d, &key()).unwrap();
        }
        let loaded = read_file(&path, &key()).unwrap();
        assert_eq!(loaded.dropped_tail, None);
        assert_eq!(loaded.journal, j);
        // Read back, the records still in the zone share its strings.
        let current = zone(
            13,
            &[
                rec("a.example.com", "13"),
                rec("b.example.com", &"long ".repeat(100)),
                rec("c.example.com", "ü"),
            ],
        );
        let shared = loaded.journal.sharing(&current.records);
        assert_eq!(shared, j);
        let last = shared.deltas().last().unwrap();
        assert!(!last.added.is_empty());
        for r in &last.added {
            assert!(
                current.records.iter().any(|z| z.same(r)),
                "{r:?} not shared"
            );
        }
        // Another key verifies nothing.
        let other = SealKey::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
        let l = read_file(&path, &other).unwrap();
        assert_eq!(l.journal.deltas().len(), 0);
        assert!(l.dropped_tail.unwrap().1.contains("does not verify"));
        // Not a journal.
        std::fs::write(&path, b"hello").unwrap();
        let e = read_file(&path, &key()).unwrap_err();
        assert!(
            e.to_string().contains("example.com.journal") && e.to_string().contains("bad header"),
            "{e}"
        );
    }

    #[test]
    fn torn_altered_and_unchained_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let j = chain();
        write_file(&path, &j, &key()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let entry_len = |d: &Delta| encode_entry(d, &key()).len();
        let two = MAGIC.len() + entry_len(&j.deltas()[0]) + entry_len(&j.deltas()[1]);
        // Every cut inside the last entry keeps the first two.
        for cut in [two + 1, two + 3, two + 4, two + 10, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let l = read_file(&path, &key()).unwrap();
            assert_eq!(l.journal.deltas().len(), 2, "cut at {cut}");
            assert_eq!(l.dropped_tail.as_ref().unwrap().0, two as u64);
            truncate_file(&path, l.dropped_tail.unwrap().0).unwrap();
            assert_eq!(read_file(&path, &key()).unwrap().dropped_tail, None);
        }
        // A flipped octet in the second entry keeps only the first.
        let mut altered = bytes.clone();
        altered[two - 40] ^= 1;
        std::fs::write(&path, &altered).unwrap();
        let l = read_file(&path, &key()).unwrap();
        assert_eq!(l.journal.deltas().len(), 1);
        // A huge length is not allocated for.
        let mut huge = bytes[..two].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 64]);
        std::fs::write(&path, &huge).unwrap();
        let l = read_file(&path, &key()).unwrap();
        assert_eq!(l.journal.deltas().len(), 2);
        assert!(l.dropped_tail.unwrap().1.contains("length"));
        // An entry that verifies but does not continue the chain.
        let mut unchained = bytes[..two].to_vec();
        unchained.extend_from_slice(&encode_entry(&j.deltas()[0], &key()));
        std::fs::write(&path, &unchained).unwrap();
        let l = read_file(&path, &key()).unwrap();
        assert_eq!(l.journal.deltas().len(), 2);
        assert!(l.dropped_tail.unwrap().1.contains("serial chain"));
    }
}
