//! Finding a served zone's records by owner name.
//!
//! A query names one owner; the server needs that owner's TXT records, or
//! to know whether the name exists at all (an empty non-terminal such as
//! `_mimi.example.com` exists without records: NODATA, never NXDOMAIN —
//! RFC 8020, since NXDOMAIN there would deny the whole subtree).
//!
//! The zone's records are sorted by owner, and every record carries an
//! integer key that orders like its owner (its first eight octets, see
//! [`crate::zone::owner_key`]). The index keeps `(key, first record, record
//! count)` for every owner, in record order, so it is sorted without
//! sorting and built in one pass that reads only the records' keys (owners
//! are compared only where keys are equal): a lookup is a binary search
//! over this compact array and one comparison of the owner.

use std::collections::HashSet;

use crate::zone::{owner_key, Zone, ZoneRecord};

/// Where each owner's records are in a [`Zone`], and which names are empty
/// non-terminals. Built for one zone and valid only with it.
#[derive(Debug)]
pub(crate) struct OwnerIndex {
    /// Names inside the zone, other than the apex, that exist only because
    /// names below them do.
    empty_non_terminals: HashSet<String>,
    /// `(owner key, first record, record count)`, in record order (so
    /// sorted by key).
    owners: Vec<(u64, u32, u32)>,
}

impl OwnerIndex {
    /// Indexes `zone`'s records, and finds the empty non-terminals above
    /// its records, glue, delegation points and PTR records.
    pub(crate) fn new(zone: &Zone) -> Self {
        let records = &zone.records;
        let mut owners: Vec<(u64, u32, u32)> = Vec::with_capacity(records.len());
        let mut i = 0usize;
        while i < records.len() {
            let first = &records[i];
            let mut j = i + 1;
            while j < records.len()
                && records[j].owner_key() == first.owner_key()
                && (records[j].same(first) || records[j].owner == first.owner)
            {
                j += 1;
            }
            owners.push((first.owner_key(), i as u32, (j - i) as u32));
            i = j;
        }
        let origin = zone.origin.as_str();
        let mut empty_non_terminals: HashSet<String> = HashSet::new();
        // Recently seen parents: owners of different home zones interleave
        // in sorted order, so remembering one parent is not enough.
        let mut recent: [&str; 4] = [""; 4];
        let mut next = 0usize;
        // A build leaves the parents of all owners in its cache (then a
        // made-up child of each parent stands for all its children);
        // otherwise read every owner.
        let children: Vec<String> = match zone.cache.0.as_deref() {
            Some(c) => c.owner_parents().iter().map(|p| format!("*.{p}")).collect(),
            None => Vec::new(),
        };
        let group_owners: Box<dyn Iterator<Item = &str>> = if zone.cache.0.is_some() {
            Box::new(children.iter().map(String::as_str))
        } else {
            Box::new(
                owners
                    .iter()
                    .map(|&(_, start, _)| records[start as usize].owner.as_str()),
            )
        };
        let others = zone
            .glue
            .iter()
            .map(|(h, _)| h.as_str())
            .chain(zone.delegations.iter().map(|d| d.owner.as_str()))
            .chain(zone.ptrs.iter().map(|p| p.owner.as_str()));
        for owner in group_owners.chain(others) {
            let Some((_, parent)) = owner.split_once('.') else {
                continue;
            };
            if recent.contains(&parent) {
                continue;
            }
            recent[next] = parent;
            next = (next + 1) % recent.len();
            let mut name = owner;
            while let Some((_, parent)) = name.split_once('.') {
                if parent.len() <= origin.len() {
                    break;
                }
                if !empty_non_terminals.contains(parent) {
                    empty_non_terminals.insert(parent.to_owned());
                }
                name = parent;
            }
        }
        let mut index = OwnerIndex {
            empty_non_terminals: HashSet::new(),
            owners,
        };
        // Names that hold records are not empty.
        empty_non_terminals.retain(|n: &String| {
            index.records_at(zone, n).is_empty()
                && !zone.glue.iter().any(|(h, _)| h.as_str() == n)
                && zone
                    .ptrs
                    .binary_search_by(|p| p.owner.as_str().cmp(n))
                    .is_err()
                && zone
                    .delegations
                    .binary_search_by(|d| d.owner.as_str().cmp(n))
                    .is_err()
        });
        index.empty_non_terminals = empty_non_terminals;
        index
    }

    /// The TXT records at `owner` (lowercase, no trailing dot) in `zone`,
    /// the zone this index was built for.
    pub(crate) fn records_at<'z>(&self, zone: &'z Zone, owner: &str) -> &'z [ZoneRecord] {
        let k = owner_key(owner);
        let owner_at = |start: u32| zone.records[start as usize].owner.as_str();
        // Owners that share their first eight octets (`_mimi-ma.…`
        // certificate names, say) are told apart by a binary search on the
        // name too, so no run of equal keys is scanned.
        let at = self
            .owners
            .partition_point(|&(ek, start, _)| ek < k || (ek == k && owner_at(start) < owner));
        match self.owners.get(at) {
            Some(&(ek, start, len)) if ek == k && owner_at(start) == owner => {
                &zone.records[start as usize..(start + len) as usize]
            }
            _ => &[],
        }
    }

    /// The empty non-terminals (for tests).
    #[cfg(test)]
    pub(crate) fn empty_non_terminals(&self) -> &HashSet<String> {
        &self.empty_non_terminals
    }

    /// Whether `name` exists only because names below it do.
    pub(crate) fn is_empty_non_terminal(&self, name: &str) -> bool {
        self.empty_non_terminals.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Soa;
    use mimi_proto::DomainName;

    /// Owners sharing their first eight octets are all found, and names
    /// between them are not.
    #[test]
    fn owners_with_equal_keys() {
        let d = |s: &str| DomainName::parse(s).unwrap();
        let hosts = ["a", "b", "c", "d", "e", "f", "g"];
        let mut records: Vec<ZoneRecord> = hosts
            .iter()
            .flat_map(|h| {
                [1, 2].map(|i| {
                    ZoneRecord::new(
                        d(&format!("_mimi-ma.{h}.example.com")),
                        300,
                        format!("v=mimi1;{i}"),
                    )
                })
            })
            .chain([ZoneRecord::new(d("_mimi-m.example.com"), 300, "v=mimi1;x")])
            .collect();
        records.sort();
        let zone = Zone {
            origin: d("example.com"),
            ttl: 300,
            soa: Soa {
                mname: d("ns1.example.com"),
                rname: d("h.example.com"),
                serial: 1,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 1,
            },
            ns: vec![d("ns1.example.com")],
            glue: vec![],
            records,
            delegations: Vec::new(),
            ptrs: Vec::new(),
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
        };
        let index = OwnerIndex::new(&zone);
        for h in hosts {
            let owner = format!("_mimi-ma.{h}.example.com");
            let found = index.records_at(&zone, &owner);
            assert_eq!(found.len(), 2, "{owner}");
            assert!(found.iter().all(|r| r.owner.as_str() == owner));
            assert!(index.is_empty_non_terminal(&format!("{h}.example.com")));
        }
        assert_eq!(index.records_at(&zone, "_mimi-m.example.com").len(), 1);
        for missing in [
            "_mimi-ma.bb.example.com",
            "_mimi-ma.example.com",
            "_mimi-ma.z.example.com",
            "_mimi-ma",
            "",
        ] {
            assert!(index.records_at(&zone, missing).is_empty(), "{missing}");
        }
    }
}
