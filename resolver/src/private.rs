//! Private lookups through privacy buckets (SPEC §10, §11).
//!
//! In private mode a lookup never asks for a discovery name, which would
//! tell every server and network on the path whose mapping is wanted.
//! For each zone it reads the zone's bucket prefix length from
//! `_mimi-b.<zone>` (cached for the answer's TTL, like certificates),
//! asks for the bucket `<first N characters of label>._mimi-b.<zone>`,
//! and keeps only the records whose `h=` is the label: records of other
//! labels are dropped unread (no signature is checked, nothing about them
//! is reported), records without `h=` likewise. The kept texts are then
//! that zone's source for the ordinary verification ([`mod@crate::verify`]),
//! so a private lookup accepts exactly what a normal lookup would.
//!
//! A zone that publishes no buckets (no `_mimi-b` record, or one that is
//! not `v=mimi1;n=<1..8>`) is a failed source with that reason, never a
//! quiet fallback to the exact name; if no zone has buckets the lookup is
//! [`crate::LookupError::NoBuckets`], so the caller decides whether a
//! normal lookup is acceptable.
//!
//! Limits (SPEC §11): a bucket is read up to [`MAX_BUCKET_RECORDS`] mimi
//! records, and up to [`MAX_BUCKET_MATCHING`] of them may carry the
//! label; the excess is ignored and said so (a note, and each ignored
//! record of our label as rejected).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use mimi_proto::bucket::{
    bucket_apex, bucket_name, BucketLen, MAX_BUCKET_MATCHING, MAX_BUCKET_RECORDS,
};
use mimi_proto::name::discovery_name;
use mimi_proto::{DomainName, Label, Sii};

use crate::lookup::{zones_consulted, LookupError, Resolver};
use crate::resolution::Rejected;
use crate::verify::{authority_hint, SourceRecords};

/// What one bucket holds for one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketFilter {
    /// The texts whose `h=` is the label (at most [`MAX_BUCKET_MATCHING`]),
    /// in answer order: the records to verify.
    pub kept: Vec<String>,
    /// Records of the label beyond the limits, with the reason.
    pub rejected: Vec<Rejected>,
    /// What was over a limit, for the lookup's notes.
    pub notes: Vec<String>,
}

/// The `h=` value of a record text, if it has one (a whole field).
fn label_field(text: &str) -> Option<&str> {
    text.split(';').find_map(|f| f.strip_prefix("h="))
}

/// Keeps the records of bucket `source` (a name with trailing dot, for
/// reporting) whose `h=` is `label`; see the module documentation.
pub fn filter_bucket(source: &str, label: &Label, texts: &[String]) -> BucketFilter {
    let mut out = BucketFilter {
        kept: Vec::new(),
        rejected: Vec::new(),
        notes: Vec::new(),
    };
    let mimi: Vec<&String> = texts
        .iter()
        .filter(|t| mimi_proto::text::is_mimi_text(t.as_bytes()))
        .collect();
    if mimi.len() > MAX_BUCKET_RECORDS {
        out.notes.push(format!(
            "{source}: {} mimi records in the bucket, only the first {MAX_BUCKET_RECORDS} considered (SPEC §11)",
            mimi.len()
        ));
    }
    let mut matching = 0usize;
    for (i, text) in mimi.iter().enumerate() {
        if label_field(text) != Some(label.as_str()) {
            continue;
        }
        let reason = if i >= MAX_BUCKET_RECORDS {
            format!(
                "beyond the first {MAX_BUCKET_RECORDS} records of the bucket; ignored (SPEC §11)"
            )
        } else if matching >= MAX_BUCKET_MATCHING {
            format!("more than {MAX_BUCKET_MATCHING} records of this label in the bucket; excess ignored (SPEC §11)")
        } else {
            matching += 1;
            out.kept.push((*text).clone());
            continue;
        };
        out.rejected.push(Rejected {
            authority: authority_hint(text),
            reason,
            record: (*text).clone(),
            source: source.to_owned(),
        });
    }
    let over = out
        .rejected
        .iter()
        .filter(|r| r.reason.starts_with("more than"))
        .count();
    if over > 0 {
        out.notes.push(format!(
            "{source}: {} records of this label, only the first {MAX_BUCKET_MATCHING} considered (SPEC §11)",
            MAX_BUCKET_MATCHING + over
        ));
    }
    out
}

/// Why a zone cannot be asked privately.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApexError {
    /// The zone publishes no (usable) buckets: the reason.
    NoBuckets(String),
    /// The `_mimi-b` query failed.
    Dns(String),
}

/// The bucket prefix length of `_mimi-b.<zone>`'s texts.
fn apex_len(apex: &DomainName, texts: &[String]) -> Result<BucketLen, String> {
    let mimi: Vec<&String> = texts
        .iter()
        .filter(|t| mimi_proto::text::is_mimi_text(t.as_bytes()))
        .collect();
    let no = "publishes no privacy buckets: private mode does not ask for the exact discovery name";
    match mimi.as_slice() {
        [] => Err(format!("{}: no v=mimi1 record: the zone {no}", apex.fqdn())),
        [one] => {
            BucketLen::parse_record(one).map_err(|e| format!("{}: {e}: the zone {no}", apex.fqdn()))
        }
        more => Err(format!(
            "{}: {} bucket records where one is allowed: the zone {no}",
            apex.fqdn(),
            more.len()
        )),
    }
}

/// Bucket prefix lengths by zone, each until its TTL runs out.
#[derive(Debug, Default)]
pub(crate) struct BucketCache {
    zones: Mutex<HashMap<DomainName, (BucketLen, Instant)>>,
}

impl BucketCache {
    fn get(&self, zone: &DomainName) -> Option<BucketLen> {
        let cache = self
            .zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(zone)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(n, _)| *n)
    }

    fn put(&self, zone: &DomainName, n: BucketLen, ttl: u32) {
        let mut cache = self
            .zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        cache.retain(|_, (_, until)| *until > now);
        cache.insert(zone.clone(), (n, now + Duration::from_secs(u64::from(ttl))));
    }
}

/// What the private queries of one lookup found.
pub(crate) struct PrivateSources {
    /// One source per zone with buckets that answered.
    pub(crate) sources: Vec<SourceRecords>,
    /// The bucket names asked for.
    pub(crate) names: Vec<DomainName>,
    /// Records of the label beyond the bucket limits.
    pub(crate) rejected: Vec<Rejected>,
}

impl Resolver {
    /// The bucket prefix length of `zone`, from the cache or DNS.
    async fn bucket_len(&self, zone: &DomainName) -> Result<BucketLen, ApexError> {
        if let Some(n) = self.buckets.get(zone) {
            tracing::debug!(%zone, %n, "bucket length from cache");
            return Ok(n);
        }
        let apex = bucket_apex(zone).map_err(|_| {
            ApexError::NoBuckets(format!(
                "{zone}: _mimi-b.{zone} would be longer than 253 octets: the zone can publish no privacy buckets"
            ))
        })?;
        let (texts, ttl) = self.query_txt(&apex).await.map_err(ApexError::Dns)?;
        let n = apex_len(&apex, &texts).map_err(ApexError::NoBuckets)?;
        if let Some(ttl) = ttl {
            self.buckets.put(zone, n, ttl);
        }
        Ok(n)
    }

    /// The records of `label` in `zone`'s bucket.
    async fn private_source(
        &self,
        label: &Label,
        zone: &DomainName,
    ) -> Result<(DomainName, BucketFilter), ApexError> {
        let n = self.bucket_len(zone).await?;
        let name = bucket_name(label, n, zone).map_err(|_| {
            ApexError::NoBuckets(format!(
                "{zone}: the bucket name would be longer than 253 octets"
            ))
        })?;
        let (texts, _) = self.query_txt(&name).await.map_err(ApexError::Dns)?;
        tracing::debug!(bucket = %name, records = texts.len(), "bucket answer");
        let filtered = filter_bucket(&name.fqdn(), label, &texts);
        Ok((name, filtered))
    }

    /// Asks every zone a lookup of `sii` consults (those whose discovery
    /// name for it would fit in DNS, each once) privately for `sii`;
    /// failures go to `errors`. [`LookupError::NoBuckets`] when no zone
    /// has buckets, [`LookupError::Dns`] when none answered.
    pub(crate) async fn private_sources(
        &self,
        sii: &Sii,
        errors: &mut Vec<String>,
    ) -> Result<PrivateSources, LookupError> {
        let label = sii.label();
        let o = self.options();
        let mut zones: Vec<DomainName> = Vec::new();
        for z in zones_consulted(sii, o.home_lookup, &o.tel_roots, &o.distribution_zones) {
            if discovery_name(&label, &z).is_ok() && !zones.contains(&z) {
                zones.push(z);
            }
        }
        let zones = &zones[..];
        tracing::debug!(sii = %sii, zones = ?zones, "private lookup through buckets");
        let answers = join_all(zones.iter().map(|z| self.private_source(&label, z))).await;
        let mut out = PrivateSources {
            sources: Vec::new(),
            names: Vec::new(),
            rejected: Vec::new(),
        };
        let mut without = Vec::new();
        let mut dns_failed = false;
        for (zone, answer) in zones.iter().zip(answers) {
            match answer {
                Ok((name, f)) => {
                    out.sources.push(SourceRecords {
                        source: name.fqdn(),
                        texts: f.kept,
                    });
                    out.names.push(name);
                    out.rejected.extend(f.rejected);
                    errors.extend(f.notes);
                }
                Err(ApexError::NoBuckets(why)) => {
                    without.push(zone.clone());
                    errors.push(why);
                }
                Err(ApexError::Dns(e)) => {
                    dns_failed = true;
                    errors.push(e);
                }
            }
        }
        if out.sources.is_empty() {
            return Err(if dns_failed || without.is_empty() {
                LookupError::Dns(std::mem::take(errors))
            } else {
                LookupError::NoBuckets {
                    zones: without,
                    errors: std::mem::take(errors),
                }
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(c: char) -> Label {
        Label::parse(&format!("{}{}0", c.to_string().repeat(3), "0".repeat(48))).unwrap()
    }

    fn rec(l: &Label, i: usize) -> String {
        format!("v=mimi1;a=ma.example.net;h={};i={i};sig=x", l.as_str())
    }

    #[test]
    fn keeps_only_own_label_and_ignores_records_without_h() {
        let me = label('a');
        let other = label('b');
        let texts = vec![
            rec(&other, 1),
            rec(&me, 2),
            "v=mimi1;a=ma.example.net;i=3;sig=x".to_owned(),
            "not mimi".to_owned(),
            // h= as part of another value is not a label field.
            format!("v=mimi1;s=x:h={};sig=x", me.as_str()),
            rec(&me, 4),
        ];
        let f = filter_bucket("b.", &me, &texts);
        assert_eq!(f.kept, vec![rec(&me, 2), rec(&me, 4)]);
        assert!(f.rejected.is_empty() && f.notes.is_empty());
    }

    #[test]
    fn over_64_of_the_label_are_rejected_and_said() {
        let me = label('a');
        let texts: Vec<String> = (0..70).map(|i| rec(&me, i)).collect();
        let f = filter_bucket("b.", &me, &texts);
        assert_eq!(f.kept.len(), MAX_BUCKET_MATCHING);
        assert_eq!(f.kept[0], rec(&me, 0));
        assert_eq!(f.rejected.len(), 6);
        assert!(
            f.rejected[0].reason.contains("more than 64"),
            "{:?}",
            f.rejected[0]
        );
        assert_eq!(f.rejected[0].record, rec(&me, 64));
        assert_eq!(f.rejected[0].source, "b.");
        assert_eq!(f.notes.len(), 1);
        assert!(
            f.notes[0].contains("70 records of this label"),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn over_1024_in_the_bucket_are_ignored_and_said() {
        let me = label('a');
        let other = label('b');
        let mut texts: Vec<String> = (0..MAX_BUCKET_RECORDS).map(|i| rec(&other, i)).collect();
        texts.push(rec(&me, 0));
        // Non-mimi texts do not count.
        texts.insert(0, "hello".into());
        let f = filter_bucket("b.", &me, &texts);
        assert!(f.kept.is_empty());
        assert_eq!(f.rejected.len(), 1);
        assert!(
            f.rejected[0].reason.contains("first 1024"),
            "{:?}",
            f.rejected
        );
        assert!(f.notes[0].contains("1025 mimi records"), "{:?}", f.notes);
        // Within the limit, the record is kept.
        texts.remove(1);
        let f = filter_bucket("b.", &me, &texts);
        assert_eq!(f.kept, vec![rec(&me, 0)]);
        assert!(f.notes.is_empty());
    }

    /// `[policy] private = true` in the trust store makes private mode
    /// the library default.
    #[test]
    fn trust_store_sets_the_default() {
        let toml = |p: &str| {
            format!("[policy]\n{p}\n[[authority]]\nname = \"ma.example.net\"\nroot_keys = [\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]\n")
        };
        let on = crate::TrustStore::from_toml_str(&toml("private = true"), "t.toml").unwrap();
        assert!(crate::ResolverOptions::new(on).private);
        let off = crate::TrustStore::from_toml_str(&toml(""), "t.toml").unwrap();
        assert!(!crate::ResolverOptions::new(off).private);
        assert!(crate::TrustStore::from_toml_str(&toml("private = 1"), "t.toml").is_err());
    }

    #[test]
    fn apex_record_must_be_one_valid_n() {
        let apex = DomainName::parse("_mimi-b.example.com").unwrap();
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            apex_len(&apex, &t(&["v=mimi1;n=3", "other"])),
            Ok(BucketLen::new(3).unwrap())
        );
        for bad in [
            &[][..],
            &["v=mimi1;n=9"],
            &["v=mimi1;n=2", "v=mimi1;n=3"],
            &["n=3"],
        ] {
            let e = apex_len(&apex, &t(bad)).unwrap_err();
            assert!(
                e.contains("publishes no privacy buckets") && e.contains("_mimi-b.example.com."),
                "{e}"
            );
        }
    }
}
