//! Privacy buckets (SPEC §10, §11): the names, the `_mimi-b` record and
//! the limits, shared by the publisher that builds buckets and the
//! resolver that reads them.
//!
//! A resolver in private mode never asks for a discovery name: it reads
//! how long the zone's bucket prefix is (`_mimi-b.<zone>` TXT
//! `v=mimi1;n=<N>`), asks for `<first N characters of label>._mimi-b.<zone>`
//! and keeps only the records whose `h=` is its label. The server learns
//! the prefix, shared by every SII in the bucket, not the label.

use std::fmt;

use crate::label::Label;
use crate::name::{DomainName, NameError};

/// The owner label of a zone's bucket records: `_mimi-b.<zone>`.
pub const BUCKET_LABEL: &str = "_mimi-b";

/// Most records a bucket may hold (SPEC §11).
pub const MAX_BUCKET_RECORDS: usize = 1024;

/// Most records of a bucket that may carry the label being looked up
/// (SPEC §11); the same as the per-name limit.
pub const MAX_BUCKET_MATCHING: usize = 64;

/// Most octets the answer records of one bucket may take in a DNS
/// message, so that its answer fits one TCP message (65,535 octets, RFC
/// 1035 §4.2.2), which SPEC §11 does not bound: 65,535 minus the header
/// (12), the longest question (255 + 4), an OPT record (11) and room for
/// RFC 7830 padding to a 468-octet block (4 + 467). See
/// [`txt_answer_octets`] for what one record takes.
pub const MAX_BUCKET_ANSWER_OCTETS: usize = 65_535 - 12 - (255 + 4) - 11 - (4 + 467);

/// The octets one TXT answer record of `text_len` octets of text takes in
/// a DNS message when its owner is compressed to a pointer to the
/// question: pointer (2), type, class, TTL, RDLENGTH (10), and the text in
/// character-strings of at most 255 octets, each with a length octet.
pub fn txt_answer_octets(text_len: usize) -> usize {
    2 + 10 + text_len + text_len.div_ceil(255).max(1)
}

/// A bucket prefix length `N`, 1 ≤ N ≤ 8 (SPEC §10): the number of
/// leading label characters that name a bucket; a zone has about
/// `32^N` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketLen(u8);

/// A bucket length outside 1..=8, or a `_mimi-b` record that is not
/// `v=mimi1;n=<N>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    /// N out of range.
    #[error("bucket prefix length {0} is out of range 1..=8")]
    OutOfRange(u64),
    /// The record text is not `v=mimi1;n=<N>`.
    #[error("{0:?} is not a bucket record (v=mimi1;n=<1..8>)")]
    Malformed(String),
}

impl BucketLen {
    /// The shortest prefix.
    pub const MIN: BucketLen = BucketLen(1);
    /// The longest prefix.
    pub const MAX: BucketLen = BucketLen(8);

    /// `n` if it is in 1..=8.
    pub fn new(n: u64) -> Result<Self, BucketError> {
        if (1..=8).contains(&n) {
            Ok(BucketLen(n as u8))
        } else {
            Err(BucketError::OutOfRange(n))
        }
    }

    /// N.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }

    /// The number of possible buckets, `32^N`.
    pub fn buckets(self) -> u64 {
        1u64 << (5 * u32::from(self.0))
    }

    /// The next longer prefix, if any.
    pub fn longer(self) -> Option<BucketLen> {
        BucketLen::new(u64::from(self.0) + 1).ok()
    }

    /// The text of the `_mimi-b` record announcing this length.
    pub fn record_text(self) -> String {
        format!("{};n={}", crate::VERSION_FIELD, self.0)
    }

    /// Parses the text of a `_mimi-b` record: exactly `v=mimi1;n=<N>`,
    /// N without leading zeros.
    pub fn parse_record(text: &str) -> Result<Self, BucketError> {
        let bad = || BucketError::Malformed(text.chars().take(64).collect());
        let n = text
            .strip_prefix(crate::VERSION_FIELD)
            .and_then(|r| r.strip_prefix(";n="))
            .ok_or_else(bad)?;
        if n.len() != 1 || !n.as_bytes()[0].is_ascii_digit() {
            return Err(bad());
        }
        BucketLen::new(u64::from(n.as_bytes()[0] - b'0')).map_err(|_| bad())
    }

    /// The first N characters of `label`: the bucket it falls in.
    pub fn prefix(self, label: &Label) -> &str {
        &label.as_str()[..self.get()]
    }
}

impl fmt::Display for BucketLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `_mimi-b.<zone>`: where a zone announces its bucket length.
pub fn bucket_apex(zone: &DomainName) -> Result<DomainName, NameError> {
    zone.prepend(BUCKET_LABEL)
}

/// `<prefix>._mimi-b.<zone>`: the bucket `label` falls in.
pub fn bucket_name(
    label: &Label,
    n: BucketLen,
    zone: &DomainName,
) -> Result<DomainName, NameError> {
    zone.prepend(&format!("{}.{BUCKET_LABEL}", n.prefix(label)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_rejects() {
        for n in 1..=8 {
            let b = BucketLen::new(n).unwrap();
            assert_eq!(BucketLen::parse_record(&b.record_text()), Ok(b));
        }
        for bad in [
            "v=mimi1;n=0",
            "v=mimi1;n=9",
            "v=mimi1;n=03",
            "v=mimi1;n=",
            "v=mimi1;n=3;x=1",
            "v=mimi1",
            "n=3",
            "v=mimi2;n=3",
        ] {
            assert!(BucketLen::parse_record(bad).is_err(), "{bad}");
        }
        assert!(BucketLen::new(0).is_err());
        assert_eq!(BucketLen::new(3).unwrap().buckets(), 32768);
        assert_eq!(BucketLen::MAX.longer(), None);
    }

    #[test]
    fn names() {
        let label = Label::parse("3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg").unwrap();
        let zone = DomainName::parse("example.com").unwrap();
        let n = BucketLen::new(3).unwrap();
        assert_eq!(
            bucket_name(&label, n, &zone).unwrap().as_str(),
            "3b3._mimi-b.example.com"
        );
        assert_eq!(bucket_apex(&zone).unwrap().as_str(), "_mimi-b.example.com");
    }

    #[test]
    fn answer_octets() {
        assert_eq!(txt_answer_octets(300), 12 + 300 + 2);
        assert_eq!(txt_answer_octets(255), 12 + 255 + 1);
        assert_eq!(MAX_BUCKET_ANSWER_OCTETS, 64_782);
    }
}
