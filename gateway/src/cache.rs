//! Whole answers, cached per canonical SII for as long as DNS allows.
//!
//! A lookup's answer may be kept for the smallest TTL of the TXT records
//! it came from ([`mimi_resolver::Resolution::ttl`]), capped by
//! `--cache-max-ttl`, and never past the expiry of a verified SSI's
//! assertion or certificate. An answer without TTL (not found: no TXT
//! record) is kept for `--negative-ttl`. DNS failures, internal errors,
//! bad input and private-mode `no_buckets` answers are never kept: the
//! next request asks again. At most `--cache-entries` answers are kept,
//! the least recently used evicted first.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use mimi_proto::UnixTime;
use mimi_resolver::Report;
use serde_json::Value;

/// How long answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// The longest an answer with a TTL is kept.
    pub max_ttl: Duration,
    /// How long an answer without TTL (not found) is kept.
    pub negative_ttl: Duration,
}

impl CachePolicy {
    /// How long `report`, found at `now`, may be served from the cache;
    /// `None`: not at all.
    pub fn lifetime(&self, report: &Report, now: UnixTime) -> Option<Duration> {
        let Report::Resolved(res) = report else {
            return None;
        };
        let mut life = match res.ttl {
            Some(ttl) => Duration::from_secs(u64::from(ttl)).min(self.max_ttl),
            None => self.negative_ttl,
        };
        if let Some(first) = res.verified.iter().map(|v| v.expires).min() {
            life = life.min(Duration::from_secs(first.secs().saturating_sub(now.secs())));
        }
        (!life.is_zero()).then_some(life)
    }
}

struct Entry {
    json: Arc<Value>,
    outcome: &'static str,
    until: Instant,
}

/// The cache: canonical SII → the answer's JSON.
pub struct Cache {
    policy: CachePolicy,
    entries: Option<Mutex<LruCache<String, Entry>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("policy", &self.policy)
            .field("len", &self.len())
            .finish()
    }
}

impl Cache {
    /// A cache of at most `capacity` answers (0: no caching).
    pub fn new(capacity: usize, policy: CachePolicy) -> Self {
        Cache {
            policy,
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The answer kept for `canonical` and its outcome, unless expired.
    pub fn get(&self, canonical: &str, now: Instant) -> Option<(Arc<Value>, &'static str)> {
        let mut entries = self
            .entries
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match entries.get(canonical) {
            Some(e) if e.until > now => Some((e.json.clone(), e.outcome)),
            Some(_) => {
                entries.pop(canonical);
                None
            }
            None => None,
        }
    }

    /// Keeps `json`, the rendering of `report` found at `now` (`at` on
    /// the monotonic clock), if the policy allows.
    pub fn put(&self, report: &Report, json: Arc<Value>, now: UnixTime, at: Instant) {
        let (Some(entries), Some(canonical)) = (self.entries.as_ref(), report.canonical()) else {
            return;
        };
        let Some(life) = self.policy.lifetime(report, now) else {
            return;
        };
        let entry = Entry {
            json,
            outcome: report.outcome(),
            until: at + life,
        };
        entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(canonical.to_string(), entry);
    }

    /// The number of answers kept (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| {
            e.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_proto::{AuthorityName, Sii, Ssi};
    use mimi_resolver::{Resolution, VerifiedSsi};

    fn resolved(sii: &str, ttl: Option<u32>, expires_in: Option<u64>, now: UnixTime) -> Report {
        let sii = Sii::parse(sii, None).unwrap();
        Report::Resolved(Resolution {
            label: sii.label(),
            names: vec![],
            canonical: sii,
            verified: expires_in
                .map(|s| VerifiedSsi {
                    ssi: Ssi::parse("mimi://chat.example.com/u/alice").unwrap(),
                    authorities: vec![AuthorityName::parse("example.com").unwrap()],
                    expires: now.plus(s),
                })
                .into_iter()
                .collect(),
            rejected: vec![],
            unauthenticated_endpoints: vec![],
            errors: vec![],
            ttl,
        })
    }

    #[test]
    fn answers_live_for_their_ttl_capped_and_never_past_an_expiry() {
        let now = UnixTime::now();
        let p = policy();
        let life = |ttl, exp| p.lifetime(&resolved("alice@example.com", ttl, exp, now), now);
        assert_eq!(life(Some(60), Some(86400)), Some(Duration::from_secs(60)));
        assert_eq!(
            life(Some(86400), Some(86400)),
            Some(Duration::from_secs(300))
        );
        assert_eq!(life(Some(600), Some(10)), Some(Duration::from_secs(10)));
        assert_eq!(life(None, None), Some(Duration::from_secs(30)));
        assert_eq!(life(Some(0), None), None);
    }

    #[test]
    fn the_cache_keeps_at_most_its_capacity_least_recently_used_out() {
        let now = UnixTime::now();
        let t = Instant::now();
        let c = Cache::new(2, policy());
        for sii in ["a@example.com", "b@example.com", "c@example.com"] {
            let r = resolved(sii, Some(60), None, now);
            c.put(&r, Arc::new(Value::from(sii)), now, t);
        }
        assert_eq!(c.len(), 2);
        assert!(c.get("mailto:a@example.com", t).is_none());
        assert_eq!(
            *c.get("mailto:c@example.com", t).unwrap().0,
            Value::from("c@example.com")
        );
        // Expired entries are not served.
        assert!(c
            .get("mailto:c@example.com", t + Duration::from_secs(61))
            .is_none());
        assert_eq!(c.len(), 1);
        // Capacity 0: no cache.
        let off = Cache::new(0, policy());
        off.put(
            &resolved("a@example.com", Some(60), None, now),
            Arc::new(Value::Null),
            now,
            t,
        );
        assert!(off.get("mailto:a@example.com", t).is_none());
    }

    fn policy() -> CachePolicy {
        CachePolicy {
            max_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn failures_are_never_kept() {
        let sii = Sii::parse("alice@example.com", None).unwrap();
        let now = UnixTime::now();
        for r in [
            Report::DnsError {
                canonical: sii.clone(),
                errors: vec!["x".into()],
            },
            Report::Internal {
                canonical: sii.clone(),
                error: "x".into(),
            },
            Report::BadInput {
                input: "x".into(),
                canonical: Some(sii.clone()),
                error: "x".into(),
            },
        ] {
            assert_eq!(policy().lifetime(&r, now), None, "{r:?}");
            let c = Cache::new(10, policy());
            c.put(&r, Arc::new(Value::Null), now, Instant::now());
            assert!(c.is_empty());
        }
    }
}
