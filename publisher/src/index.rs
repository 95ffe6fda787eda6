//! Finding a served zone's records by owner name.
//!
//! A query names one owner; the server needs that owner's TXT records, or
//! to know whether the name exists at all (an empty non-terminal such as
//! `_mimi.example.com` exists without records: NODATA, never NXDOMAIN —
//! RFC 8020, since NXDOMAIN there would deny the whole subtree).
//!
//! The zone's records are sorted by owner. Instead of a binary search that
//! touches a different heap string at every step, the index keeps
//! `(hash of owner, first record, record count)` for every owner, sorted by
//! hash: a lookup is a binary search over this compact array (its upper
//! levels stay in cache) and one comparison of the owner.

use std::collections::HashSet;

use crate::zone::{Zone, ZoneRecord};

/// Where each owner's records are in a [`Zone`], and which names are empty
/// non-terminals. Built for one zone and valid only with it.
#[derive(Debug)]
pub(crate) struct OwnerIndex {
    /// Names inside the zone, other than the apex, that exist only because
    /// names below them do.
    empty_non_terminals: HashSet<String>,
    /// `(hash of owner, first record, record count)`, sorted.
    owners: Vec<(u64, u32, u32)>,
}

impl OwnerIndex {
    /// Indexes `zone`'s records and glue.
    pub(crate) fn new(zone: &Zone) -> Self {
        let origin = zone.origin.as_str();
        let mut empty_non_terminals = HashSet::new();
        let owners = zone
            .records
            .iter()
            .map(|r| r.owner.as_str())
            .chain(zone.glue.iter().map(|(h, _)| h.as_str()));
        let mut last_parent = "";
        for owner in owners {
            let mut name = owner;
            while let Some((_, parent)) = name.split_once('.') {
                if parent.len() <= origin.len() || parent == last_parent {
                    break;
                }
                if !empty_non_terminals.contains(parent) {
                    empty_non_terminals.insert(parent.to_owned());
                }
                name = parent;
            }
            if let Some((_, parent)) = owner.split_once('.') {
                last_parent = parent;
            }
        }
        // Names that hold records are not empty.
        empty_non_terminals.retain(|n: &String| {
            records_by_search(zone, n).is_empty() && !zone.glue.iter().any(|(h, _)| h.as_str() == n)
        });
        let mut index = Vec::new();
        let mut start = 0usize;
        for group in zone.records.chunk_by(|a, b| a.owner == b.owner) {
            index.push((
                owner_hash(group[0].owner.as_str()),
                start as u32,
                group.len() as u32,
            ));
            start += group.len();
        }
        index.sort_unstable();
        OwnerIndex {
            empty_non_terminals,
            owners: index,
        }
    }

    /// The TXT records at `owner` (lowercase, no trailing dot) in `zone`,
    /// the zone this index was built for.
    pub(crate) fn records_at<'z>(&self, zone: &'z Zone, owner: &str) -> &'z [ZoneRecord] {
        let h = owner_hash(owner);
        let first = self.owners.partition_point(|e| e.0 < h);
        for &(eh, start, len) in &self.owners[first..] {
            if eh != h {
                break;
            }
            let group = &zone.records[start as usize..(start + len) as usize];
            if group[0].owner.as_str() == owner {
                return group;
            }
        }
        &[]
    }

    /// Whether `name` exists only because names below it do.
    pub(crate) fn is_empty_non_terminal(&self, name: &str) -> bool {
        self.empty_non_terminals.contains(name)
    }
}

/// The hash the owner index is keyed by.
fn owner_hash(owner: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut h);
    h.finish()
}

/// The TXT records at `owner` by binary search in the sorted records (used
/// while building the index).
fn records_by_search<'z>(zone: &'z Zone, owner: &str) -> &'z [ZoneRecord] {
    let start = zone.records.partition_point(|r| r.owner.as_str() < owner);
    let len = zone.records[start..].partition_point(|r| r.owner.as_str() == owner);
    &zone.records[start..start + len]
}
