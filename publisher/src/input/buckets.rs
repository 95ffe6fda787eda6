//! The `buckets` zone setting: whether a zone publishes privacy buckets
//! (SPEC §10) and how long their prefix is.
//!
//! ```toml
//! buckets = 3          # a fixed prefix length, 1..=8
//! buckets = "auto"     # the longest prefix whose buckets hold, on average,
//! bucket_k = 16        #   at least bucket_k records (default 16)
//! ```
//!
//! A fixed length keeps bucket names stable as the zone grows; `"auto"`
//! keeps the anonymity set (the average bucket) at least `k` records, so
//! it lengthens the prefix as the zone grows (every bucket name changes
//! then, which a transfer carries as one large change).

use mimi_proto::bucket::BucketLen;

/// Default `bucket_k`: the average bucket of an `"auto"` zone holds at
/// least this many records.
pub const DEFAULT_K: u64 = 16;

/// How a zone chooses its bucket prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSetting {
    /// Always this length.
    Fixed(BucketLen),
    /// The largest N with `assertions / 32^N ≥ k` (at least 1).
    Auto {
        /// The smallest average bucket size wanted, ≥ 1.
        k: u64,
    },
}

impl BucketSetting {
    /// Parses the `buckets` value (an integer 1..=8 or `"auto"`) with
    /// the optional `bucket_k`; the error says what is wrong.
    pub fn parse(value: &toml::Value, k: Option<i64>) -> Result<Self, String> {
        let setting = match value {
            toml::Value::Integer(n) => BucketSetting::Fixed(
                u64::try_from(*n)
                    .ok()
                    .and_then(|n| BucketLen::new(n).ok())
                    .ok_or_else(|| {
                        format!("{n} is not a bucket prefix length: use 1..=8 or \"auto\"")
                    })?,
            ),
            toml::Value::String(s) if s == "auto" => BucketSetting::Auto { k: DEFAULT_K },
            other => {
                return Err(format!(
                    "{other} is not a bucket setting: use a prefix length 1..=8 or \"auto\""
                ))
            }
        };
        match (setting, k) {
            (s, None) => Ok(s),
            (BucketSetting::Auto { .. }, Some(k)) if k >= 1 => {
                Ok(BucketSetting::Auto { k: k as u64 })
            }
            (BucketSetting::Auto { .. }, Some(k)) => {
                Err(format!("bucket_k = {k}: must be at least 1"))
            }
            (BucketSetting::Fixed(_), Some(_)) => {
                Err("bucket_k applies only to buckets = \"auto\"; remove it or use \"auto\"".into())
            }
        }
    }

    /// The prefix length for a zone of `assertions` assertion records.
    pub fn choose(self, assertions: usize) -> BucketLen {
        match self {
            BucketSetting::Fixed(n) => n,
            BucketSetting::Auto { k } => {
                let mut n = BucketLen::MIN;
                while let Some(longer) = n.longer() {
                    if (assertions as u64) / longer.buckets() >= k {
                        n = longer;
                    } else {
                        break;
                    }
                }
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> BucketLen {
        BucketLen::new(v).unwrap()
    }

    #[test]
    fn auto_choice() {
        let auto = BucketSetting::Auto { k: 16 };
        assert_eq!(auto.choose(0), n(1));
        assert_eq!(auto.choose(100), n(1));
        // 32^2 * 16 = 16384: exactly k on average.
        assert_eq!(auto.choose(16_383), n(1));
        assert_eq!(auto.choose(16_384), n(2));
        // 1M / 32^3 ≈ 30.5 ≥ 16, 1M / 32^4 < 1.
        assert_eq!(auto.choose(1_000_000), n(3));
        assert_eq!(auto.choose(32_768 * 16 - 1), n(2));
        assert_eq!(BucketSetting::Auto { k: 64 }.choose(1_000_000), n(2));
        assert_eq!(BucketSetting::Auto { k: 1 }.choose(1_048_575), n(3));
        assert_eq!(BucketSetting::Auto { k: 1 }.choose(1_048_576), n(4));
        assert_eq!(BucketSetting::Auto { k: 1 }.choose(usize::MAX), n(8));
        assert_eq!(BucketSetting::Fixed(n(4)).choose(5), n(4));
    }

    #[test]
    fn parse_values() {
        let v = |s: &str| -> toml::Value {
            toml::from_str::<toml::Table>(&format!("b = {s}")).unwrap()["b"].clone()
        };
        assert_eq!(
            BucketSetting::parse(&v("3"), None),
            Ok(BucketSetting::Fixed(n(3)))
        );
        assert_eq!(
            BucketSetting::parse(&v("\"auto\""), Some(40)),
            Ok(BucketSetting::Auto { k: 40 })
        );
        assert_eq!(
            BucketSetting::parse(&v("\"auto\""), None),
            Ok(BucketSetting::Auto { k: 16 })
        );
        for bad in ["0", "9", "-1", "\"three\"", "true"] {
            let e = BucketSetting::parse(&v(bad), None).unwrap_err();
            assert!(e.contains("1..=8"), "{bad}: {e}");
        }
        assert!(BucketSetting::parse(&v("3"), Some(4))
            .unwrap_err()
            .contains("only"));
        assert!(BucketSetting::parse(&v("\"auto\""), Some(0)).is_err());
    }
}
