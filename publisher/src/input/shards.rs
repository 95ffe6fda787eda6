//! `[shards]`: which of the 1024 shards of a zone (SPEC §3) a
//! configuration publishes as zones of their own.
//!
//! A discovery name is `<label>.<shard>._mimi.<zone>`, the shard being the
//! first two base32hex characters of the label. An operator whose zone is
//! too large for one server group delegates `<shard>._mimi.<zone>` nodes to
//! other groups; each group's publisher lists the shards it serves:
//!
//! ```toml
//! [shards]
//! zones = ["00-7v", "g0"]      # ranges and single shards, inclusive
//! ```
//!
//! SIIs in shards not listed are left out of this configuration's zones
//! (another publisher serves them); that is not an error.

/// The base32hex alphabet of labels, in order (SPEC §2).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Number of shards: two base32hex characters.
pub const SHARD_COUNT: usize = 1024;

/// A set of shards (`"00"`..=`"vv"`).
#[derive(Clone, PartialEq, Eq)]
pub struct ShardSet {
    bits: Box<[u64; SHARD_COUNT / 64]>,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShardSet({} shards)", self.len())
    }
}

/// The index (0..1024) of shard `s`, or `None` if `s` is not two
/// base32hex characters (lower case, as labels are written).
pub fn shard_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let hi = ALPHABET.iter().position(|&c| c == b[0])?;
    let lo = ALPHABET.iter().position(|&c| c == b[1])?;
    Some(hi * 32 + lo)
}

/// The shard with index `i` (0..1024).
pub fn shard_at(i: usize) -> String {
    let (hi, lo) = (i / 32, i % 32);
    String::from_utf8(vec![ALPHABET[hi], ALPHABET[lo]]).expect("ASCII")
}

impl ShardSet {
    /// Parses `zones = [...]`: each item is one shard (`"g0"`) or an
    /// inclusive range (`"00-7v"`). Errors name the item.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        if items.is_empty() {
            return Err("lists no shard; give shards like \"00-7v\" or \"g0\"".into());
        }
        let mut set = ShardSet {
            bits: Box::new([0; SHARD_COUNT / 64]),
        };
        for (n, item) in items.iter().enumerate() {
            let bad = |why: &str| {
                format!(
                    "[{n}] = {item:?}: {why}; a shard is two characters of 0-9a-v (\"g0\"), a range is \"00-7v\""
                )
            };
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (item.trim(), item.trim()),
            };
            let lo = shard_index(a).ok_or_else(|| bad(&format!("{a:?} is not a shard")))?;
            let hi = shard_index(b).ok_or_else(|| bad(&format!("{b:?} is not a shard")))?;
            if lo > hi {
                return Err(bad("the range runs backwards"));
            }
            for i in lo..=hi {
                set.bits[i / 64] |= 1 << (i % 64);
            }
        }
        Ok(set)
    }

    /// Whether shard `s` is in the set.
    pub fn contains(&self, s: &str) -> bool {
        shard_index(s).is_some_and(|i| self.bits[i / 64] & (1 << (i % 64)) != 0)
    }

    /// The shards of the set, in order.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        (0..SHARD_COUNT)
            .filter(|i| self.bits[i / 64] & (1 << (i % 64)) != 0)
            .map(shard_at)
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Result<ShardSet, String> {
        ShardSet::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn ranges_and_single_shards() {
        let s = set(&["00-7v", "g0"]).unwrap();
        assert_eq!(s.len(), 257);
        assert!(s.contains("00") && s.contains("7v") && s.contains("g0"));
        assert!(!s.contains("80") && !s.contains("g1") && !s.contains("zz"));
        assert_eq!(set(&["00-vv"]).unwrap().len(), SHARD_COUNT);
        assert_eq!(shard_at(shard_index("7v").unwrap()), "7v");
    }

    #[test]
    fn nonsense_is_refused_with_the_item() {
        for (items, what) in [
            (&["7v-00"][..], "backwards"),
            (&["0w"][..], "\"0w\" is not a shard"),
            (&["00", "AB"][..], "[1] = \"AB\""),
            (&["000-1"][..], "\"000\""),
            (&[][..], "no shard"),
        ] {
            let e = set(items).unwrap_err();
            assert!(e.contains(what), "{items:?}: {e}");
        }
    }
}
