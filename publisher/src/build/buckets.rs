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
    bucket_apex, txt_answer_octets, BucketLen, BUCKET_LABEL, MAX_BUCKET_ANSWER_OCTETS,
    MAX_BUCKET_RECORDS,
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

/// `<label>.<shard>._mimi.<domain>` → `domain`, for an owner shaped like a
/// discovery name (a 52-character first label, its first two characters
/// as the second, then `_mimi`): a structural test, cheap enough to run
/// over every owner of a large zone at every build.
fn discovery_domain(owner: &str) -> Option<&str> {
    let b = owner.as_bytes();
    if b.len() > 62 && b[52] == b'.' && b[53..55] == b[..2] && owner[55..].starts_with("._mimi.") {
        Some(&owner[62..])
    } else {
        None
    }
}

/// Whether `owner` is a bucket (`<prefix>._mimi-b.<domain>`).
fn is_bucket(owner: &str) -> bool {
    owner
        .split_once('.')
        .is_some_and(|(_, rest)| rest.starts_with("_mimi-b."))
}

/// Whether `owner` is a bucket or a `_mimi-b.<domain>` record: what this
/// module adds to a zone.
fn is_added(owner: &str) -> bool {
    owner.starts_with("_mimi-b.") || is_bucket(owner)
}

/// A record's sort key, as [`ZoneRecord`]'s order compares it.
fn probe(p: &ZoneRecord) -> (u64, &str, u32, &str) {
    (p.owner_key(), p.owner.as_str(), p.ttl, p.text.as_str())
}

/// Whether a record text carries an `h=` field.
fn has_label_field(text: &str) -> bool {
    text.split(';').any(|f| f.starts_with("h="))
}

/// The bucket of the assertion record `r` (a discovery name in `domain`),
/// or the problem that keeps it out.
fn bucket_of(
    r: &ZoneRecord,
    domain: &str,
    n: BucketLen,
    config_path: &Path,
) -> Result<Option<DomainName>, Problem> {
    let Ok(label) = Label::parse(&r.owner.as_str()[..52]) else {
        return Ok(None);
    };
    if !has_label_field(&r.text) {
        return Err(Problem::in_file(
            config_path,
            format!(
                "record at {} has no h= field, which a privacy bucket needs (SPEC §10)",
                r.owner
            ),
        ));
    }
    let bucket = DomainName::parse(domain)
        .ok()
        .and_then(|d| mimi_proto::bucket::bucket_name(&label, n, &d).ok());
    match bucket {
        Some(b) => Ok(Some(b)),
        None => Err(Problem::in_file(
            config_path,
            format!(
                "the bucket of {} would be a name longer than 253 octets",
                r.owner
            ),
        )),
    }
}

/// The problem of a bucket of `count` records in `octets` octets of
/// answer, if it is over a limit.
fn over_limit(
    owner: &str,
    count: usize,
    octets: usize,
    n: BucketLen,
    setting: BucketSetting,
    config_path: &Path,
) -> Option<Problem> {
    if count <= MAX_BUCKET_RECORDS && octets <= MAX_BUCKET_ANSWER_OCTETS {
        return None;
    }
    let advice = match n.longer() {
        Some(l) => format!("raise buckets to {l} (or more) so that buckets are smaller"),
        None => "the prefix cannot be longer than 8: publish fewer records per SII".into(),
    };
    let advice = if matches!(setting, BucketSetting::Auto { .. }) {
        format!("{advice}; buckets = \"auto\" chose {n}: lower bucket_k or set buckets to a length")
    } else {
        advice
    };
    Some(Problem::in_file(
        config_path,
        format!(
            "bucket {owner} would hold {count} records in {octets} octets of answer, but a bucket may hold at most {MAX_BUCKET_RECORDS} records (SPEC §11) in at most {MAX_BUCKET_ANSWER_OCTETS} octets (what fits one TCP message): {advice}"
        ),
    ))
}

/// Merges two sorted, duplicate-free lists into one.
fn merge_sorted(a: Vec<ZoneRecord>, b: Vec<ZoneRecord>) -> Vec<ZoneRecord> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.into_iter().peekable();
    for r in a {
        while let Some(x) = b.next_if(|x| *x < r) {
            out.push(x);
        }
        if b.peek() == Some(&r) {
            b.next();
        }
        out.push(r);
    }
    out.extend(b);
    out
}

/// Adds to `records` (the zone's, sorted and without duplicates) the
/// bucket copies of every assertion and, for every domain with
/// discovery names in the zone and for the zone's origin, the
/// `_mimi-b.<domain>` record with `ttl`. Records equal to one of
/// `previous` are reused; when `previous` was built with the same prefix
/// length, only the buckets of the assertions that changed are touched
/// (see [`changed_buckets`]). Problems name `config_path`.
pub(crate) fn add_buckets(
    setting: BucketSetting,
    config_path: &Path,
    origin: &DomainName,
    ttl: u32,
    records: Vec<ZoneRecord>,
    previous: Option<&Zone>,
) -> Result<WithBuckets, Vec<Problem>> {
    let mut problems = Vec::new();
    // The assertions, and the domains they are in (records of one domain
    // are adjacent except across other domains' names, so keep a few).
    let mut count = 0usize;
    let mut domains: Vec<&str> = vec![origin.as_str()];
    for r in &records {
        if let Some(d) = discovery_domain(r.owner.as_str()) {
            count += 1;
            if !domains.iter().rev().take(8).any(|x| *x == d) {
                domains.push(d);
            }
        }
    }
    domains.sort_unstable();
    domains.dedup();
    let n = setting.choose(count);
    let mut apexes = Vec::new();
    let mut parents = Vec::new();
    let prev: &[ZoneRecord] = previous.map_or(&[], |p| &p.records);
    for d in domains {
        let Ok(d) = DomainName::parse(d) else {
            continue;
        };
        match mimi_proto::bucket::bucket_apex(&d) {
            Ok(a) if a.is_within(origin) => {
                parents.push(a.as_str().to_owned());
                parents.push(d.as_str().to_owned());
                let a = ZoneRecord::new(a, ttl, n.record_text());
                apexes.push(prev.binary_search(&a).map_or(a, |k| prev[k].clone()));
            }
            _ => problems.push(Problem::in_file(
                config_path,
                format!("buckets of {d} would be at {BUCKET_LABEL}.{d}, which is not inside zone {origin}: set buckets in the zone that contains it"),
            )),
        }
    }
    apexes.sort_unstable();
    let same_n = previous.is_some_and(|p| {
        p.cache.0.is_some()
            && p.origin == *origin
            && bucket_apex(origin).is_ok_and(|a| {
                let at = p.records.partition_point(|r| r.owner < a);
                p.records
                    .get(at)
                    .is_some_and(|r| r.owner == a && BucketLen::parse_record(&r.text) == Ok(n))
            })
    });
    let buckets = match previous.filter(|_| same_n) {
        Some(p) => changed_buckets(setting, n, config_path, &records, &p.records, &mut problems),
        None => all_buckets(setting, n, config_path, &records, prev, &mut problems),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let added = merge_sorted(buckets, apexes);

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

/// Every bucket record of `records`, sorted, reusing equal ones of
/// `prev`; problems (limits, missing `h=`) go to `problems`.
fn all_buckets(
    setting: BucketSetting,
    n: BucketLen,
    config_path: &Path,
    records: &[ZoneRecord],
    prev: &[ZoneRecord],
    problems: &mut Vec<Problem>,
) -> Vec<ZoneRecord> {
    let found: Vec<Result<(DomainName, usize), Problem>> = records
        .par_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let d = discovery_domain(r.owner.as_str())?;
            bucket_of(r, d, n, config_path)
                .transpose()
                .map(|b| b.map(|b| (b, i)))
        })
        .collect();
    let mut wanted = Vec::with_capacity(found.len());
    for f in found {
        match f {
            Ok(w) => wanted.push(w),
            Err(p) => problems.push(p),
        }
    }
    wanted.par_sort_unstable_by(|(a, i), (b, j)| {
        a.cmp(b)
            .then_with(|| records[*i].ttl.cmp(&records[*j].ttl))
            .then_with(|| records[*i].text.cmp(&records[*j].text))
    });
    wanted.dedup_by(|(a, i), (b, j)| a == b && records[*i].text == records[*j].text);
    let mut at = 0;
    while at < wanted.len() {
        let owner = &wanted[at].0;
        let end = at + wanted[at..].partition_point(|(o, _)| o == owner);
        let octets: usize = wanted[at..end]
            .iter()
            .map(|&(_, i)| txt_answer_octets(records[i].text.len()))
            .sum();
        problems.extend(over_limit(
            owner.as_str(),
            end - at,
            octets,
            n,
            setting,
            config_path,
        ));
        at = end;
    }
    if !problems.is_empty() {
        return Vec::new();
    }
    // Reuse the previous zone's equal records (both lists sorted alike).
    let mut cursor = 0usize;
    let mut out = Vec::with_capacity(wanted.len());
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
            Some(p) if probe(p) == key => out.push(p.clone()),
            _ => out.push(ZoneRecord::new(owner, r.ttl, r.text.clone())),
        }
    }
    out
}

/// The bucket records of `records` from those of `prev`, a zone built
/// with the same prefix length: the assertions of `prev` that are gone
/// take their bucket copies with them, the new ones add theirs, and only
/// the buckets that gained records are checked against the limits (the
/// others were within them in `prev`). Linear merges over the sorted
/// records; nothing unchanged is parsed, allocated or sorted.
fn changed_buckets(
    setting: BucketSetting,
    n: BucketLen,
    config_path: &Path,
    records: &[ZoneRecord],
    prev: &[ZoneRecord],
    problems: &mut Vec<Problem>,
) -> Vec<ZoneRecord> {
    let is_assertion = |r: &&ZoneRecord| discovery_domain(r.owner.as_str()).is_some();
    let mut old = prev
        .iter()
        .filter(|r| !is_added(r.owner.as_str()))
        .filter(is_assertion)
        .peekable();
    let mut new = records.iter().filter(is_assertion).peekable();
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => gone.push(old.next().expect("peeked")),
            (None, Some(_)) => came.push(new.next().expect("peeked")),
            (Some(o), Some(m)) => match o.cmp(m) {
                std::cmp::Ordering::Less => gone.push(old.next().expect("peeked")),
                std::cmp::Ordering::Greater => came.push(new.next().expect("peeked")),
                std::cmp::Ordering::Equal => {
                    old.next();
                    new.next();
                }
            },
        }
    }
    // The copies to drop: (bucket owner, ttl, text), sorted like records.
    let mut drop: Vec<(u64, String, u32, &str)> = gone
        .iter()
        .filter_map(|r| {
            let d = discovery_domain(r.owner.as_str())?;
            let b = bucket_of(r, d, n, config_path).ok()??;
            Some((
                crate::zone::owner_key(b.as_str()),
                b.as_str().to_owned(),
                r.ttl,
                r.text.as_str(),
            ))
        })
        .collect();
    drop.sort_unstable();
    let mut add: Vec<ZoneRecord> = Vec::with_capacity(came.len());
    for r in came {
        let d = discovery_domain(r.owner.as_str()).expect("an assertion");
        match bucket_of(r, d, n, config_path) {
            Ok(Some(b)) => add.push(ZoneRecord::new(b, r.ttl, r.text.clone())),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    add.sort_unstable();
    add.dedup();
    let mut kept = Vec::with_capacity(prev.len() / 2);
    let mut j = 0usize;
    for r in prev.iter().filter(|r| is_bucket(r.owner.as_str())) {
        let key = probe(r);
        while j < drop.len() && (drop[j].0, drop[j].1.as_str(), drop[j].2, drop[j].3) < key {
            j += 1;
        }
        if j < drop.len() && (drop[j].0, drop[j].1.as_str(), drop[j].2, drop[j].3) == key {
            j += 1;
            continue;
        }
        kept.push(r.clone());
    }
    let touched: Vec<DomainName> = {
        let mut t: Vec<DomainName> = add.iter().map(|r| r.owner.clone()).collect();
        t.dedup();
        t
    };
    let out = merge_sorted(kept, add);
    for owner in touched {
        let k = crate::zone::owner_key(owner.as_str());
        let at = out.partition_point(|r| (r.owner_key(), r.owner.as_str()) < (k, owner.as_str()));
        let group = out[at..].iter().take_while(|r| r.owner == owner);
        let (count, octets) = group.fold((0, 0), |(c, o), r| {
            (c + 1, o + txt_answer_octets(r.text.len()))
        });
        problems.extend(over_limit(
            owner.as_str(),
            count,
            octets,
            n,
            setting,
            config_path,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::build::*;
    use mimi_proto::bucket::{BucketLen, MAX_BUCKET_ANSWER_OCTETS};

    struct Fixture {
        dir: tempfile::TempDir,
    }

    const NOW: u64 = 1_765_000_000;

    impl Fixture {
        /// A distribution zone `dir.example` with `buckets` settings and
        /// `n` users.
        fn new(settings: &str, n: usize) -> Self {
            let f = Fixture {
                dir: tempfile::tempdir().unwrap(),
            };
            keys::write_signing_key(&f.path("k.pem"), &SigningKey::from_bytes(&[7u8; 32])).unwrap();
            f.mappings(0..n);
            std::fs::write(
                f.path("zone.toml"),
                format!("origin = \"dir.example\"\nrole = \"distribution\"\nns = [\"ns1.example.net\"]\nmappings = \"m.csv\"\npresigned = [\"p.txt\"]\n{settings}\n[soa]\nmname = \"ns1.example.net\"\nrname = \"hostmaster.example.net\"\n[authority]\nname = \"dir.example\"\nkey = \"k.pem\"\n"),
            )
            .unwrap();
            std::fs::write(f.path("p.txt"), "").unwrap();
            f
        }
        fn path(&self, n: &str) -> PathBuf {
            self.dir.path().join(n)
        }
        fn mappings(&self, users: impl Iterator<Item = usize>) {
            let text: String = users
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}\n"))
                .collect();
            std::fs::write(self.path("m.csv"), text).unwrap();
        }
        fn build(&self, prev: Option<&Zone>) -> Result<BuildOutput, BuildError> {
            build_from_path(&self.path("zone.toml"), UnixTime(NOW), prev, None)
        }
    }

    fn label_of(text: &str) -> &str {
        text.split(';')
            .find_map(|f| f.strip_prefix("h="))
            .expect("h= on every record")
    }

    /// Every assertion carries h=, is copied byte for byte into the
    /// bucket of its prefix, and `_mimi-b` announces N.
    #[test]
    fn buckets_hold_exact_copies_with_h() {
        let f = Fixture::new("buckets = 2", 60);
        let z = f.build(None).unwrap().zone;
        let exact: Vec<&ZoneRecord> = z
            .records
            .iter()
            .filter(|r| r.owner.as_str().contains("._mimi."))
            .collect();
        let bucket: Vec<&ZoneRecord> = z
            .records
            .iter()
            .filter(|r| r.owner.as_str().ends_with("._mimi-b.dir.example"))
            .collect();
        assert_eq!(exact.len(), 60);
        assert_eq!(bucket.len(), 60);
        let apex: Vec<&str> = z
            .records
            .iter()
            .filter(|r| r.owner.as_str() == "_mimi-b.dir.example")
            .map(|r| r.text.as_str())
            .collect();
        assert_eq!(apex, ["v=mimi1;n=2"]);
        for r in &exact {
            let label = label_of(&r.text);
            assert!(r.owner.as_str().starts_with(label));
            let b = format!("{}._mimi-b.dir.example", &label[..2]);
            assert!(
                bucket
                    .iter()
                    .any(|x| x.owner.as_str() == b && x.text == r.text && x.ttl == r.ttl),
                "{b}"
            );
        }
        for r in &bucket {
            assert!(label_of(&r.text).starts_with(&r.owner.as_str()[..2]));
        }
        // The index answers a bucket name with all its records.
        let index = crate::zone::index::OwnerIndex::new(&z);
        let some = &bucket[0].owner;
        let want = bucket.iter().filter(|r| r.owner == *some).count();
        assert_eq!(index.records_at(&z, some.as_str()).len(), want);
    }

    /// Adding and removing mappings changes only their bucket records;
    /// the other bucket records are the previous zone's (shared), and
    /// the incremental build equals a full one.
    #[test]
    fn buckets_rebuild_incrementally() {
        let f = Fixture::new("buckets = 1", 40);
        let z1 = f.build(None).unwrap().zone;
        f.mappings((0..39).chain([100]));
        let z2 = f.build(Some(&z1)).unwrap().zone;
        let full = f.build(None).unwrap().zone;
        assert!(z2.same_content(&full));
        assert_eq!(
            crate::zone::index::OwnerIndex::new(&z2).empty_non_terminals(),
            crate::zone::index::OwnerIndex::new(&Zone {
                cache: BuildCache::default(),
                ..z2.clone()
            })
            .empty_non_terminals()
        );
        let old: std::collections::HashSet<&ZoneRecord> = z1.records.iter().collect();
        let new: std::collections::HashSet<&ZoneRecord> = z2.records.iter().collect();
        let removed: Vec<_> = old.difference(&new).collect();
        let added: Vec<_> = new.difference(&old).collect();
        // user39 out, user100 in: one exact and one bucket record each.
        assert_eq!(
            (removed.len(), added.len()),
            (2, 2),
            "{removed:?} {added:?}"
        );
        for r in &z2.records {
            if let Some(p) = z1.records.iter().find(|p| *p == r) {
                assert!(p.same(r), "{r:?} not reused");
            }
        }
        // Rebuilding the same input keeps the serial.
        let z3 = f.build(Some(&z2)).unwrap().zone;
        assert_eq!(z3.soa.serial, z2.soa.serial);
        // Turning buckets off removes them and h= (the cache does not
        // carry records signed with h= into a zone without buckets).
        let text = std::fs::read_to_string(f.path("zone.toml")).unwrap();
        std::fs::write(f.path("zone.toml"), text.replace("buckets = 1", "")).unwrap();
        let z4 = f.build(Some(&z3)).unwrap().zone;
        assert!(z4
            .records
            .iter()
            .all(|r| !r.owner.as_str().contains("_mimi-b") && !r.text.contains(";h=")));
    }

    /// A sequence of edits (removals, additions, a changed SSI, a
    /// reordering, nothing) rebuilt from the previous zone each time
    /// gives exactly the zone a full build gives, rendered byte for byte.
    #[test]
    fn incremental_bucket_builds_equal_full_builds() {
        let f = Fixture::new("buckets = 1", 50);
        let mut z = f.build(None).unwrap().zone;
        let edits: Vec<Vec<String>> = vec![
            (0..45)
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}"))
                .collect(),
            (0..45)
                .chain(200..230)
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}"))
                .collect(),
            (0..45)
                .chain(200..230)
                .map(|i| {
                    format!(
                        "user{i}@example.com,mimi://chat.example.com/u/{}",
                        if i == 7 {
                            "moved".into()
                        } else {
                            format!("user{i}")
                        }
                    )
                })
                .collect(),
            (0..45)
                .chain(200..230)
                .rev()
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}"))
                .collect(),
            vec![],
            (0..3)
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/user{i}"))
                .collect(),
        ];
        for (k, lines) in edits.iter().enumerate() {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(f.path("m.csv"), text).unwrap();
            let inc = f.build(Some(&z)).unwrap().zone;
            let full = f.build(None).unwrap().zone;
            assert!(inc.same_content(&full), "edit {k}");
            let mut full = full;
            full.soa.serial = inc.soa.serial;
            assert_eq!(
                crate::zone::zonefile::render(&inc),
                crate::zone::zonefile::render(&full),
                "edit {k}"
            );
            let copies = inc
                .records
                .iter()
                .filter(|r| r.owner.as_str().ends_with("._mimi-b.dir.example"))
                .count();
            assert_eq!(copies, lines.len(), "edit {k}");
            z = inc;
        }
    }

    /// A bucket that an incremental rebuild grows past the octet limit
    /// is refused as a full build refuses it, and the zone before stays.
    #[test]
    fn bucket_grown_over_the_limit_is_refused_incrementally() {
        let f = Fixture::new("buckets = 1", 0);
        // Users whose label starts with 0, with SSIs of ~500 octets:
        // records of ~770 octets, 84 of which fit one bucket.
        let zeros: Vec<usize> = (0..)
            .filter(|i| {
                Sii::parse(&format!("user{i}@example.com"), None)
                    .unwrap()
                    .label()
                    .as_str()
                    .starts_with('0')
            })
            .take(90)
            .collect();
        let long = "x".repeat(470);
        let write = |users: &[usize]| {
            let text: String = users
                .iter()
                .map(|i| format!("user{i}@example.com,mimi://chat.example.com/u/{long}{i}\n"))
                .collect();
            std::fs::write(f.path("m.csv"), text).unwrap();
        };
        write(&zeros[..70]);
        let z = f.build(None).unwrap().zone;
        write(&zeros);
        let e = f.build(Some(&z)).unwrap_err().to_string();
        assert!(
            e.contains("bucket 0._mimi-b.dir.example would hold 90 records")
                && e.contains("raise buckets to 2"),
            "{e}"
        );
        assert_eq!(f.build(None).unwrap_err().to_string(), e);
    }

    /// `"auto"` chooses N from the number of assertions and k.
    #[test]
    fn auto_chooses_n_from_k() {
        let f = Fixture::new("buckets = \"auto\"\nbucket_k = 2", 70);
        let z = f.build(None).unwrap().zone;
        // 70 / 32 ≥ 2, 70 / 1024 < 2.
        assert!(z
            .records
            .iter()
            .any(|r| r.owner.as_str() == "_mimi-b.dir.example" && r.text == "v=mimi1;n=1"));
        let f = Fixture::new("buckets = \"auto\"", 3);
        let z = f.build(None).unwrap().zone;
        assert!(z.records.iter().any(|r| r.text == "v=mimi1;n=1"));
    }

    /// A pre-signed assertion without h= is refused in a zone with
    /// buckets, naming file and line; with h= it goes into its bucket.
    #[test]
    fn presigned_without_h_is_refused_with_its_line() {
        let f = Fixture::new("buckets = 3", 1);
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let sii = Sii::parse("zoe@example.org", None).unwrap();
        let line = |label: bool| {
            let (t, x) = WindowPolicy::DEFAULT.window(&sii.hash(), UnixTime(NOW));
            let a = UnsignedAssertion {
                authority: AuthorityName::parse("ma.example.net").unwrap(),
                ssi: mimi_proto::Ssi::parse("im:zoe@chat.example.org").unwrap(),
                not_before: t,
                expires: x,
                include_label: label,
                extensions: vec![],
            }
            .sign(&sii.hash(), &key)
            .unwrap();
            presigned::format_line(&sii, &a)
        };
        std::fs::write(f.path("p.txt"), format!("# third party\n{}\n", line(false))).unwrap();
        let e = f.build(None).unwrap_err().to_string();
        assert!(e.contains("p.txt:2") && e.contains("no h= field"), "{e}");
        std::fs::write(f.path("p.txt"), format!("{}\n", line(true))).unwrap();
        let z = f.build(None).unwrap().zone;
        let label = sii.label();
        let b = format!("{}._mimi-b.dir.example", &label.as_str()[..3]);
        assert!(z
            .records
            .iter()
            .any(|r| r.owner.as_str() == b && r.text.contains("ma.example.net")));
    }

    /// A bucket too large for one TCP message is refused, naming the
    /// bucket and a longer prefix.
    #[test]
    fn oversized_bucket_is_refused() {
        let d = |s: &str| DomainName::parse(s).unwrap();
        let origin = d("dir.example");
        // 300 records of one prefix, 300 octets of text each.
        let mut records: Vec<ZoneRecord> = (0..300u32)
            .map(|i| {
                // 52 characters whose last carries one bit (SPEC §2).
                let label = format!("00{i:03}{}0", "0".repeat(46));
                let owner = d(&format!("{label}.00._mimi.dir.example"));
                let text = format!("v=mimi1;h={label};pad={}", "p".repeat(300 - 62));
                ZoneRecord::new(owner, 300, text)
            })
            .collect();
        records.sort();
        let octets: usize = records
            .iter()
            .map(|r| mimi_proto::bucket::txt_answer_octets(r.text.len()))
            .sum();
        assert!(octets > MAX_BUCKET_ANSWER_OCTETS);
        let setting = crate::input::buckets::BucketSetting::Fixed(BucketLen::new(2).unwrap());
        let e = super::add_buckets(
            setting,
            Path::new("z.toml"),
            &origin,
            300,
            records.clone(),
            None,
        )
        .err()
        .expect("refused");
        assert_eq!(e.len(), 1);
        let msg = e[0].to_string();
        assert!(
            msg.contains("bucket 00._mimi-b.dir.example would hold 300 records")
                && msg.contains("raise buckets to 3"),
            "{msg}"
        );
        // Split over longer prefixes the same records fit.
        let setting = crate::input::buckets::BucketSetting::Fixed(BucketLen::new(5).unwrap());
        let ok =
            super::add_buckets(setting, Path::new("z.toml"), &origin, 300, records, None).unwrap();
        assert_eq!(ok.records.len(), 601);
    }
}
