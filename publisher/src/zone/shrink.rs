//! The shrink guard: a new zone that would drop a large share of the
//! assertions of the zone it replaces is held back until an operator
//! confirms it.
//!
//! Why: the commonest way to lose published data is not a malformed input
//! (the build refuses those) but a well-formed one that is wrong: a mappings
//! file truncated by a script, an export that ran against an empty database,
//! a file replaced while still being written. Each builds cleanly into a
//! zone with few or no assertions, which is then served, NOTIFYed to every
//! secondary and cached by resolvers. Refusing large drops by default, and
//! saying so, turns that into a log line and a kept zone.
//!
//! An assertion is identified by what it asserts, `(owner, a=, s=)`, not by
//! its text: re-signing changes `t`, `x` and `sig` but removes nothing.

use std::collections::HashSet;

use crate::zone::ZoneRecord;

pub use crate::input::shrink_limit::{ShrinkLimit, ShrinkLimitError};

/// How a new zone's assertions compare with the old zone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrink {
    /// Assertions in the old zone.
    pub before: usize,
    /// Assertions in the new zone.
    pub after: usize,
    /// Assertions of the old zone that the new one no longer has.
    pub removed: usize,
}

/// A new zone that the guard holds back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the new zone would remove {removed} of the {before} published assertions ({pct:.1}%, {after} left), more than max_shrink = {limit} allows; the previous zone stays published. If this is intended, confirm it (--allow-shrink, or max_shrink in the zone configuration); if a file was being rewritten in place, replace it atomically instead (write a new file, then rename it)",
    removed = .shrink.removed,
    before = .shrink.before,
    after = .shrink.after,
    pct = .shrink.removed_share() * 100.0,
)]
pub struct ShrinkRefused {
    /// The comparison.
    pub shrink: Shrink,
    /// The limit it broke.
    pub limit: ShrinkLimit,
}

/// The identity of an assertion: owner, authority, SSI.
fn identity(r: &ZoneRecord) -> Option<(&str, &str, &str)> {
    if !is_assertion(r) {
        return None;
    }
    let mut a = None;
    let mut s = None;
    for field in r.text.split(';') {
        if let Some(v) = field.strip_prefix("a=") {
            a = Some(v);
        } else if let Some(v) = field.strip_prefix("s=") {
            s = Some(v);
        }
    }
    Some((r.owner.as_str(), a?, s?))
}

/// Whether a record is an assertion (a mimi record at a discovery name or
/// in a privacy bucket), as opposed to a certificate at `_mimi-ma.…` or
/// the bucket length at `_mimi-b.…`.
fn is_assertion(r: &ZoneRecord) -> bool {
    let owner = r.owner.as_str();
    r.text.starts_with("v=mimi1;")
        && !owner.starts_with("_mimi-ma.")
        && !owner.starts_with("_mimi-b.")
}

/// Owner order, reading the owners (a pointer away: a cache miss per
/// record at a million records) only when their ordering keys are equal.
fn owner_cmp(a: &ZoneRecord, b: &ZoneRecord) -> std::cmp::Ordering {
    a.owner_key()
        .cmp(&b.owner_key())
        .then_with(|| a.owner.as_str().cmp(b.owner.as_str()))
}

/// Whether `records` are in owner order, as every built zone's are.
fn owner_sorted(records: &[ZoneRecord]) -> bool {
    records.windows(2).all(|w| owner_cmp(&w[0], &w[1]).is_le())
}

impl Shrink {
    /// Compares the assertions of `old` with those of `new`.
    ///
    /// Built zones keep their records in owner order, so this is one merge
    /// walk over both lists, comparing only the records of the same owner,
    /// and a record shared with the previous zone (the common case: every
    /// unchanged mapping) is known kept without reading its text. At a
    /// million records that is tens of milliseconds, where hashing every
    /// assertion's identity took seconds on every reload and re-sign batch.
    /// Lists in another order (hand-made ones) are compared by hashing.
    pub fn between(old: &[ZoneRecord], new: &[ZoneRecord]) -> Shrink {
        if owner_sorted(old) && owner_sorted(new) {
            Self::between_sorted(old, new)
        } else {
            Self::between_hashed(old, new)
        }
    }

    fn between_sorted(old: &[ZoneRecord], new: &[ZoneRecord]) -> Shrink {
        use std::cmp::Ordering::{Equal, Less};
        let (mut before, mut removed) = (0, 0);
        let (mut i, mut j) = (0, 0);
        while i < old.len() {
            // The old records of one owner, and the new ones of that owner.
            let first = &old[i];
            let group_end = i + old[i..]
                .iter()
                .take_while(|r| owner_cmp(r, first) == Equal)
                .count();
            while j < new.len() && owner_cmp(&new[j], first) == Less {
                j += 1;
            }
            let same_owner = &new[j..j + new[j..]
                .iter()
                .take_while(|r| owner_cmp(r, first) == Equal)
                .count()];
            for r in &old[i..group_end] {
                if same_owner.iter().any(|n| n.same(r)) {
                    // Shared, so kept: counted without parsing its fields
                    // (what costs). Every assertion a zone holds has its
                    // a= and s=, so `is_assertion` is `identity` here.
                    before += usize::from(is_assertion(r));
                    continue;
                }
                let Some(id) = identity(r) else {
                    continue;
                };
                before += 1;
                if !same_owner.iter().any(|n| identity(n) == Some(id)) {
                    removed += 1;
                }
            }
            i = group_end;
        }
        Shrink {
            before,
            after: new.iter().filter(|r| is_assertion(r)).count(),
            removed,
        }
    }

    fn between_hashed(old: &[ZoneRecord], new: &[ZoneRecord]) -> Shrink {
        let kept: HashSet<_> = new.iter().filter_map(identity).collect();
        let mut before = 0;
        let mut removed = 0;
        for id in old.iter().filter_map(identity) {
            before += 1;
            if !kept.contains(&id) {
                removed += 1;
            }
        }
        Shrink {
            before,
            after: new.iter().filter(|r| is_assertion(r)).count(),
            removed,
        }
    }

    /// The comparison of a zone with itself: its assertions, none removed
    /// (without building the sets [`Shrink::between`] needs).
    pub fn unchanged(records: &[ZoneRecord]) -> Shrink {
        let n = records.iter().filter(|r| is_assertion(r)).count();
        Shrink {
            before: n,
            after: n,
            removed: 0,
        }
    }

    /// `removed / before` (0 for an old zone without assertions).
    pub fn removed_share(&self) -> f64 {
        if self.before == 0 {
            0.0
        } else {
            self.removed as f64 / self.before as f64
        }
    }

    /// Whether `limit` lets the new zone replace the old one.
    pub fn check(self, limit: ShrinkLimit) -> Result<(), ShrinkRefused> {
        let Some(share) = limit.share else {
            return Ok(());
        };
        let emptied = self.before > 0 && self.after == 0;
        if emptied || self.removed_share() > share {
            return Err(ShrinkRefused {
                shrink: self,
                limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_proto::DomainName;

    fn rec(owner: &str, a: &str, s: &str, t: u32) -> ZoneRecord {
        ZoneRecord::new(
            DomainName::parse(owner).unwrap(),
            300,
            format!("v=mimi1;a={a};k=x;s={s};t={t};x={};sig=y", t + 1),
        )
    }

    fn zone(n: usize, t: u32) -> Vec<ZoneRecord> {
        (0..n)
            .map(|i| {
                rec(
                    &format!("l{i}.l._mimi.example.com"),
                    "ma.example",
                    "im:a@b.example",
                    t,
                )
            })
            .chain([rec(
                "_mimi-ma.ma.example",
                "ma.example",
                "im:x@y.example",
                t,
            )])
            .collect()
    }

    #[test]
    fn limits_parse() {
        assert_eq!(ShrinkLimit::parse("10%").unwrap(), ShrinkLimit::default());
        assert!(ShrinkLimit::parse("100%").unwrap().is_off());
        assert!(!ShrinkLimit::parse("0%").unwrap().is_off());
        for bad in ["10", "-1%", "101%", "x%", ""] {
            assert!(ShrinkLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn re_signing_removes_nothing() {
        let s = Shrink::between(&zone(100, 1), &zone(100, 2));
        assert_eq!(
            s,
            Shrink {
                before: 100,
                after: 100,
                removed: 0
            }
        );
        assert!(s.check(ShrinkLimit::default()).is_ok());
    }

    #[test]
    fn small_drops_pass_large_ones_and_emptying_do_not() {
        let old = zone(100, 1);
        assert!(Shrink::between(&old, &zone(90, 1))
            .check(ShrinkLimit::default())
            .is_ok());
        let e = Shrink::between(&old, &zone(89, 1))
            .check(ShrinkLimit::default())
            .unwrap_err();
        assert_eq!(e.shrink.removed, 11);
        assert!(e.to_string().contains("remove 11 of the 100"), "{e}");
        // The certificate alone left: emptied, refused even at 99%.
        let only_cert = zone(0, 1);
        assert!(Shrink::between(&old, &only_cert)
            .check(ShrinkLimit::parse("99%").unwrap())
            .is_err());
        assert!(Shrink::between(&old, &only_cert)
            .check(ShrinkLimit::OFF)
            .is_ok());
        // Nothing before: nothing to lose.
        assert!(Shrink::between(&only_cert, &only_cert)
            .check(ShrinkLimit::parse("0%").unwrap())
            .is_ok());
    }

    /// The merge walk over owner-ordered zones and the hashing comparison
    /// agree, on shared, re-signed, removed, added and moved records and
    /// several records per owner.
    #[test]
    fn sorted_walk_agrees_with_hashing() {
        let mut old: Vec<ZoneRecord> = (0..300)
            .flat_map(|i| {
                let owner = format!("l{:03}.l._mimi.example.com", i / 3);
                [rec(&owner, "ma.example", &format!("im:u{i}@b.example"), 1)]
            })
            .collect();
        old.push(rec(
            "_mimi-ma.ma.example",
            "ma.example",
            "im:x@y.example",
            1,
        ));
        old.sort();
        let mut new: Vec<ZoneRecord> = Vec::new();
        for (n, r) in old.iter().enumerate() {
            match n % 7 {
                // Removed.
                0 => {}
                // Re-signed: same identity, new text.
                1 => new.push(rec(
                    r.owner.as_str(),
                    "ma.example",
                    &format!("im:u{}@b.example", id_of(r)),
                    2,
                )),
                // Same identity at another owner: the old one is removed.
                2 => new.push(rec(
                    "zzz.z._mimi.example.com",
                    "ma.example",
                    &format!("im:u{}@b.example", id_of(r)),
                    1,
                )),
                // Shared.
                _ => new.push(r.clone()),
            }
        }
        new.push(rec(
            "a00.a._mimi.example.com",
            "ma.example",
            "im:new@b.example",
            1,
        ));
        new.sort();
        let walked = Shrink::between(&old, &new);
        assert!(owner_sorted(&old) && owner_sorted(&new));
        assert_eq!(walked, Shrink::between_hashed(&old, &new));
        assert_eq!(walked.before, 300);
        assert!(walked.removed > 0);
        // Out of order: hashed, same answer.
        new.reverse();
        assert!(!owner_sorted(&new));
        assert_eq!(Shrink::between(&old, &new), walked);
    }

    fn id_of(r: &ZoneRecord) -> String {
        let s = r
            .text
            .split(';')
            .find_map(|f| f.strip_prefix("s="))
            .unwrap();
        s.trim_start_matches("im:u")
            .trim_end_matches("@b.example")
            .to_owned()
    }

    #[test]
    fn replacing_every_mapping_counts_as_removal() {
        let old = zone(10, 1);
        let new: Vec<_> = (0..10)
            .map(|i| {
                rec(
                    &format!("m{i}.m._mimi.example.com"),
                    "ma.example",
                    "im:a@b.example",
                    1,
                )
            })
            .collect();
        let s = Shrink::between(&old, &new);
        assert_eq!(s.removed, 10);
        assert!(s.check(ShrinkLimit::default()).is_err());
    }
}
