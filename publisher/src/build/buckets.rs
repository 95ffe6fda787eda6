//! Privacy buckets (SPEC §10): copies of a zone's assertions grouped by
//! the first N characters of their label, so a resolver can ask for a
//! prefix instead of the discovery name.
//!
//! Buckets are derived from the zone's assertion records after they are
//! built, never from the inputs: a bucket record is the assertion record
//! itself (same text, same TTL) at `<prefix>._mimi-b.<domain>`, so the
//! exact-name and bucket copies are byte-identical and no input can make
//! them differ. Every assertion of such a zone carries `h=` (the build
//! signs mappings with it and refuses pre-signed records without it).
//!
//! Rebuilding is incremental in what matters: a bucket record equal to
//! one of the previous zone is that record (shared, not copied), so an
//! unchanged zone rebuilds to equal records and the journal carries only
//! the changed ones; the pass itself is linear in the zone plus a sort.
//!
//! Limits (SPEC §11 and docs/PROTOCOL.md): a bucket holds at most
//! [`MAX_BUCKET_RECORDS`] records, and its answer must fit one TCP
//! message ([`MAX_BUCKET_ANSWER_OCTETS`]); a bucket over either is an
//! error naming the bucket and telling to lengthen the prefix, never a
//! bucket that clients cannot receive.

use std::path::Path;

use mimi_proto::bucket::{
    txt_answer_octets, BUCKET_LABEL, MAX_BUCKET_ANSWER_OCTETS, MAX_BUCKET_RECORDS,
};
use mimi_proto::{DomainName, Label};
use rayon::prelude::*;

use crate::input::buckets::BucketSetting;
use crate::input::problem::Problem;
use crate::zone::{Zone, ZoneRecord};

/// A zone's records with its buckets added.
pub(crate) struct WithBuckets {
    /// All records, sorted, without duplicates.
    pub(crate) records: Vec<ZoneRecord>,
    /// For each record of the input, its index in `records`.
    pub(crate) moved: Vec<u32>,
    /// The parent names of the added owners (`_mimi-b.<domain>` and
    /// `<domain>`), for the zone's empty non-terminals.
    pub(crate) parents: Vec<String>,
}

/// `<label>.<shard>._mimi.<domain>` → (`label`, `domain`), for an owner
/// that is a discovery name.
fn split_discovery(owner: &str) -> Option<(Label, &str)> {
    let mut parts = owner.splitn(4, '.');
    let label = Label::parse(parts.next()?).ok()?;
    let shard = parts.next()?;
    if shard != label.shard() || parts.next()? != "_mimi" {
        return None;
    }
    Some((label, parts.next()?))
}

/// A record's sort key, as [`ZoneRecord`]'s order compares it.
fn probe(p: &ZoneRecord) -> (u64, &str, u32, &str) {
    (p.owner_key(), p.owner.as_str(), p.ttl, p.text.as_str())
}

/// Whether a record text carries an `h=` field.
fn has_label_field(text: &str) -> bool {
    text.split(';').any(|f| f.starts_with("h="))
}

/// Adds to `records` (the zone's, sorted and without duplicates) the
/// bucket copies of every assertion and, for every domain with
/// discovery names in the zone and for the zone's origin, the
/// `_mimi-b.<domain>` record with `ttl`. Records equal to one of
/// `previous` are reused. Problems name `config_path`.
pub(crate) fn add_buckets(
    setting: BucketSetting,
    config_path: &Path,
    origin: &DomainName,
    ttl: u32,
    records: Vec<ZoneRecord>,
    previous: Option<&Zone>,
) -> Result<WithBuckets, Vec<Problem>> {
    let mut problems = Vec::new();
    let found: Vec<(usize, Label, &str)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| split_discovery(r.owner.as_str()).map(|(l, d)| (i, l, d)))
        .collect();
    let n = setting.choose(found.len());
    // The domains, in owner order (records of one domain are adjacent
    // except across other domains' names, so keep a few).
    let mut domains: Vec<DomainName> = vec![origin.clone()];
    let mut wanted: Vec<(DomainName, usize)> = Vec::with_capacity(found.len());
    for (i, label, domain) in &found {
        let d = match domains.iter().rev().find(|d| d.as_str() == *domain) {
            Some(d) => d.clone(),
            None => match DomainName::parse(domain) {
                Ok(d) => {
                    domains.push(d.clone());
                    d
                }
                Err(_) => continue,
            },
        };
        if !has_label_field(&records[*i].text) {
            problems.push(Problem::in_file(
                config_path,
                format!(
                    "record at {} has no h= field, which a privacy bucket needs (SPEC §10)",
                    records[*i].owner
                ),
            ));
            continue;
        }
        match mimi_proto::bucket::bucket_name(label, n, &d) {
            Ok(b) => wanted.push((b, *i)),
            Err(_) => problems.push(Problem::in_file(
                config_path,
                format!(
                    "the bucket of {} would be a name longer than 253 octets",
                    records[*i].owner
                ),
            )),
        }
    }
    domains.sort();
    domains.dedup();
    let mut apexes = Vec::new();
    let mut parents = Vec::new();
    for d in &domains {
        match mimi_proto::bucket::bucket_apex(d) {
            Ok(a) if a.is_within(origin) => {
                parents.push(a.as_str().to_owned());
                parents.push(d.as_str().to_owned());
                apexes.push(ZoneRecord::new(a, ttl, n.record_text()));
            }
            _ => problems.push(Problem::in_file(
                config_path,
                format!("buckets of {d} would be at {BUCKET_LABEL}.{d}, which is not inside zone {origin}: set buckets in the zone that contains it"),
            )),
        }
    }
    wanted.par_sort_unstable_by(|(a, i), (b, j)| {
        a.cmp(b)
            .then_with(|| records[*i].ttl.cmp(&records[*j].ttl))
            .then_with(|| records[*i].text.cmp(&records[*j].text))
    });
    wanted.dedup_by(|(a, i), (b, j)| a == b && records[*i].text == records[*j].text);

    // Limits, per bucket.
    let mut at = 0;
    while at < wanted.len() {
        let owner = &wanted[at].0;
        let end = at + wanted[at..].partition_point(|(o, _)| o == owner);
        let count = end - at;
        let octets: usize = wanted[at..end]
            .iter()
            .map(|&(_, i)| txt_answer_octets(records[i].text.len()))
            .sum();
        if count > MAX_BUCKET_RECORDS || octets > MAX_BUCKET_ANSWER_OCTETS {
            let advice = match n.longer() {
                Some(l) => format!("raise buckets to {l} (or more) so that buckets are smaller"),
                None => "the prefix cannot be longer than 8: publish fewer records per SII".into(),
            };
            let advice = if matches!(setting, BucketSetting::Auto { .. }) {
                format!("{advice}; buckets = \"auto\" chose {n}: lower bucket_k or set buckets to a length")
            } else {
                advice
            };
            problems.push(Problem::in_file(
                config_path,
                format!(
                    "bucket {owner} would hold {count} records in {octets} octets of answer, but a bucket may hold at most {MAX_BUCKET_RECORDS} records (SPEC §11) in at most {MAX_BUCKET_ANSWER_OCTETS} octets (what fits one TCP message): {advice}"
                ),
            ));
        }
        at = end;
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // The bucket records, reusing the previous zone's equal ones (both
    // lists sorted the same way).
    let prev: &[ZoneRecord] = previous.map_or(&[], |p| &p.records);
    let mut cursor = 0usize;
    let mut added: Vec<ZoneRecord> = Vec::with_capacity(wanted.len() + apexes.len());
    for (owner, i) in wanted {
        let r = &records[i];
        let key = (
            crate::zone::owner_key(owner.as_str()),
            owner.as_str(),
            r.ttl,
            r.text.as_str(),
        );
        cursor += prev[cursor..].partition_point(|p| probe(p) < key);
        match prev.get(cursor) {
            Some(p) if probe(p) == key => added.push(p.clone()),
            _ => added.push(ZoneRecord::new(owner, r.ttl, r.text.clone())),
        }
    }
    for a in apexes {
        let same = prev
            .binary_search(&a)
            .ok()
            .map(|k| prev[k].clone())
            .unwrap_or(a);
        added.push(same);
    }
    added.par_sort_unstable();
    added.dedup();

    // Merge, remembering where each old record went.
    let mut out = Vec::with_capacity(records.len() + added.len());
    let mut moved = Vec::with_capacity(records.len());
    let mut added = added.into_iter().peekable();
    for r in records {
        while let Some(a) = added.next_if(|a| *a < r) {
            out.push(a);
        }
        if added.peek() == Some(&r) {
            added.next();
        }
        moved.push(out.len() as u32);
        out.push(r);
    }
    out.extend(added);
    parents.sort();
    parents.dedup();
    Ok(WithBuckets {
        records: out,
        moved,
        parents,
    })
}
