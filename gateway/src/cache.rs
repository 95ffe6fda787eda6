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
    use mimi_proto::Sii;

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
