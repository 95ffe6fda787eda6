//! Shards (SPEC §3) and sets of them.
//!
//! A discovery name is `<label>.<shard>._mimi.<zone>`, the shard being the
//! label's first two characters (base32hex, `0-9a-v`): 1024 shards, each
//! an ordinary DNS name that can be a zone of its own. Configurations name
//! sets of them as inclusive ranges, `["00-7v", "g0"]`: `[shards] zones`
//! (the shards a configuration publishes as zones, see
//! [`crate::build::zones`]) and `[[delegate]] shards` (the shards a parent
//! zone delegates, see [`crate::input::delegate`]).

use std::fmt;

/// The 32 shard characters in order (base32hex, lowercase).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Number of shards (SPEC §3).
pub const SHARDS: usize = 1024;

/// One of the 1024 shards: its index, `32 × first + second` with the
/// characters numbered in base32hex order (`0-9a-v`), so that a range of
/// names is a range of indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard(u16);

impl Shard {
    /// The shard spelled `s` (two characters of `0-9a-v`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let digit = |c: u8| ALPHABET.iter().position(|&a| a == c);
        match s.as_bytes() {
            [a, b] => match (digit(*a), digit(*b)) {
                (Some(a), Some(b)) => Ok(Shard((a * 32 + b) as u16)),
                _ => Err(format!(
                    "{s:?} is not a shard: shards are two characters of 0-9 and a-v (lowercase base32hex)"
                )),
            },
            _ => Err(format!(
                "{s:?} is not a shard: a shard is the first two characters of a label, like \"00\" or \"7v\""
            )),
        }
    }

    /// The shard of a discovery label (its first two characters).
    pub fn of_label(label: &str) -> Option<Shard> {
        Shard::parse(label.get(..2)?).ok()
    }

    /// Its index, 0 to 1023.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The shard at `index` (below [`SHARDS`]).
    pub fn at(index: usize) -> Shard {
        debug_assert!(index < SHARDS);
        Shard(index as u16)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.index();
        write!(
            f,
            "{}{}",
            ALPHABET[i / 32] as char,
            ALPHABET[i % 32] as char
        )
    }
}

/// A set of shards.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ShardSet([u64; SHARDS / 64]);

impl ShardSet {
    /// Whether `shard` is in the set.
    pub fn contains(&self, shard: Shard) -> bool {
        self.0[shard.index() / 64] & (1 << (shard.index() % 64)) != 0
    }

    fn insert(&mut self, shard: Shard) {
        self.0[shard.index() / 64] |= 1 << (shard.index() % 64);
    }

    /// Whether the shard spelled `s` is in the set (`false` for anything
    /// that is not a shard).
    pub fn contains_str(&self, s: &str) -> bool {
        Shard::parse(s).is_ok_and(|s| self.contains(s))
    }

    /// The shards in order.
    pub fn iter(&self) -> impl Iterator<Item = Shard> + '_ {
        (0..SHARDS).map(Shard::at).filter(|s| self.contains(*s))
    }

    /// The shards in `self` or in `other`.
    pub fn union(&self, other: &ShardSet) -> ShardSet {
        let mut out = self.clone();
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
        out
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses a list of shard ranges: `"a3"` is one shard, `"00-7v"` every
    /// shard from `00` to `7v` inclusive. Ranges must be in order
    /// (`from` ≤ `to`) and must not overlap.
    pub fn parse(items: &[String]) -> Result<ShardSet, String> {
        let mut set = ShardSet::default();
        for (i, item) in items.iter().enumerate() {
            let shard =
                |s: &str| Shard::parse(s.trim()).map_err(|e| format!("[{i}] {item:?}: {e}"));
            let (from, to) = match item.split_once('-') {
                Some((a, b)) => (shard(a)?, shard(b)?),
                None => {
                    let s = shard(item)?;
                    (s, s)
                }
            };
            if from > to {
                return Err(format!(
                    "[{i}] {item:?}: the range runs backwards ({from} comes after {to})"
                ));
            }
            for s in from.index()..=to.index() {
                let s = Shard::at(s);
                if set.contains(s) {
                    return Err(format!("[{i}] {item:?}: shard {s} is listed twice"));
                }
                set.insert(s);
            }
        }
        if set.is_empty() {
            return Err("lists no shard".into());
        }
        Ok(set)
    }
}

impl fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardSet({} shards)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Result<ShardSet, String> {
        ShardSet::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn shards_and_ranges() {
        assert_eq!(Shard::parse("00").unwrap().index(), 0);
        assert_eq!(Shard::parse("vv").unwrap().index(), 1023);
        assert_eq!(Shard::parse("7v").unwrap().index(), 255);
        assert_eq!(Shard::parse("a3").unwrap().to_string(), "a3");
        assert_eq!(set(&["00-7v"]).unwrap().len(), 256);
        assert_eq!(set(&["00-vv"]).unwrap().len(), 1024);
        let s = set(&["a3", "b0-b1"]).unwrap();
        assert_eq!(
            s.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ["a3", "b0", "b1"]
        );
        for (bad, why) in [
            (&["A3"][..], "lowercase"),
            (&["w0"], "0-9 and a-v"),
            (&["0"], "two characters"),
            (&["000"], "two characters"),
            (&["10-0v"], "backwards"),
            (&["00-10", "0v"], "listed twice"),
            (&[], "no shard"),
            (&["00-"], "not a shard"),
        ] {
            let e = set(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_item() {
        for (items, what) in [
            (&["7v-00"][..], "backwards"),
            (&["0w"][..], "\"0w\" is not a shard"),
            (&["00", "AB"][..], "[1] \"AB\""),
            (&["000-1"][..], "\"000\""),
            (&["00-7v", "70"][..], "listed twice"),
            (&[][..], "no shard"),
        ] {
            let e = set(items).unwrap_err();
            assert!(e.contains(what), "{items:?}: {e}");
        }
        assert!(set(&["00-7v", "g0"]).unwrap().contains_str("g0"));
        assert!(!set(&["00-7v"]).unwrap().contains_str("zz"));
    }
}
