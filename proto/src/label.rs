//! The SII hash and its DNS label (SPEC §2).

use std::fmt;

use data_encoding::BASE32_DNSSEC;
use sha2::{Digest, Sha256};

use crate::sii::Sii;

/// SHA-256 of the UTF-8 canonical SII: the value every assertion signature
/// covers, so that a record cannot be replayed under another SII's name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiiHash([u8; 32]);

impl SiiHash {
    /// Hashes a canonical SII.
    pub fn of(sii: &Sii) -> Self {
        Self::of_canonical(sii.as_str())
    }

    /// Hashes already-canonical text. Only for callers that hold canonical
    /// text from a trusted place (such as test vectors); prefer [`SiiHash::of`].
    pub fn of_canonical(canonical: &str) -> Self {
        SiiHash(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The 32 hash octets.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first eight octets read big-endian: the spreading offset of SPEC §9.
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }

    /// The DNS label of this hash.
    pub fn label(&self) -> Label {
        Label(BASE32_DNSSEC.encode(&self.0))
    }

    /// Lowercase hex, for diagnostics.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Debug for SiiHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiiHash({})", self.to_hex())
    }
}

/// `lowercase(base32hex-nopad(h))`: 52 characters from `0-9a-v`.
///
/// The label is the only thing a DNS server ever sees of an SII.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Label(String);

/// Why a string is not a label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an SII label (want 52 characters of lowercase base32hex, 0-9a-v)")]
pub struct LabelError;

impl Label {
    /// Length of every label.
    pub const LEN: usize = 52;

    /// Parses a label as it appears in `h=` fields and owner names.
    /// Strict: lowercase only, exactly 52 characters, and it must decode to
    /// 32 octets with zero padding bits (one hash has exactly one label).
    pub fn parse(s: &str) -> Result<Self, LabelError> {
        if s.len() != Self::LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
        {
            return Err(LabelError);
        }
        match BASE32_DNSSEC.decode(s.as_bytes()) {
            Ok(v) if v.len() == 32 && BASE32_DNSSEC.encode(&v) == s => Ok(Label(s.to_owned())),
            _ => Err(LabelError),
        }
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shard of this label (SPEC §3): its first two characters, one of
    /// 1024 values. Discovery names carry it as their own DNS label so that
    /// an operator can delegate each shard to another zone.
    pub fn shard(&self) -> &str {
        &self.0[..2]
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trip_and_strictness() {
        let h = SiiHash::of_canonical("mailto:alice@example.com");
        let l = h.label();
        assert_eq!(l.as_str().len(), 52);
        assert_eq!(Label::parse(l.as_str()).unwrap(), l);
        assert!(Label::parse(&l.as_str().to_uppercase()).is_err());
        assert!(Label::parse(&l.as_str()[..51]).is_err());
        // Last character carries padding bits: only one value is canonical.
        let mut other = l.as_str().to_owned();
        let last = other.pop().unwrap();
        other.push(if last == 'g' { 'h' } else { 'g' });
        assert!(Label::parse(&other).is_err());
    }
}
