//! Deterministic validity windows (SPEC §9).
//!
//! Every record's window is a function of its SII hash and the current time,
//! so that building the same input twice gives byte-identical records and
//! re-signing is spread evenly instead of hitting every record at once.

use crate::label::SiiHash;
use crate::time::UnixTime;

/// Validity `V` and re-sign margin `M` of published assertions, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    validity: u64,
    margin: u64,
}

/// Why a window policy is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("re-sign margin ({margin}s) must be shorter than the validity ({validity}s), and validity must be positive")]
pub struct WindowPolicyError {
    /// V
    pub validity: u64,
    /// M
    pub margin: u64,
}

impl WindowPolicy {
    /// SPEC §9 defaults: 14 days validity, 4 days margin.
    pub const DEFAULT: WindowPolicy = WindowPolicy {
        validity: 14 * 86400,
        margin: 4 * 86400,
    };

    /// A policy with `0 <= margin < validity`.
    pub fn new(validity: u64, margin: u64) -> Result<Self, WindowPolicyError> {
        if validity == 0 || margin >= validity {
            return Err(WindowPolicyError { validity, margin });
        }
        Ok(WindowPolicy { validity, margin })
    }

    /// V
    pub fn validity(&self) -> u64 {
        self.validity
    }

    /// M
    pub fn margin(&self) -> u64 {
        self.margin
    }

    /// P = V − M: how often each record is re-signed.
    pub fn period(&self) -> u64 {
        self.validity - self.margin
    }

    /// The window `(t, x)` of the record for `hash` at `now`:
    /// `o = prefix(h) mod P`, `t = floor((now − o)/P)·P + o`, `x = t + V`.
    pub fn window(&self, hash: &SiiHash, now: UnixTime) -> (UnixTime, UnixTime) {
        let p = self.period();
        let o = hash.prefix_u64() % p;
        // For now < o (only near the epoch) floor((now - o)/P) is -1.
        let t = if now.0 >= o {
            (now.0 - o) / p * p + o
        } else {
            o.saturating_sub(p)
        };
        (UnixTime(t), UnixTime(t + self.validity))
    }

    /// When the record for `hash` next changes after `now`: the start of its
    /// next period.
    pub fn next_change(&self, hash: &SiiHash, now: UnixTime) -> UnixTime {
        let (t, _) = self.window(hash, now);
        UnixTime(t.0 + self.period())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_invariants() {
        let pol = WindowPolicy::DEFAULT;
        for i in 0..200u64 {
            let h = SiiHash::of_canonical(&format!("mailto:u{i}@example.com"));
            let now = UnixTime(1_765_000_000 + i * 7919);
            let (t, x) = pol.window(&h, now);
            assert!(t <= now && now.0 < t.0 + pol.period());
            assert_eq!(x.0 - t.0, pol.validity());
            assert!(x.0 - now.0 > pol.margin());
            // Stable within a period.
            assert_eq!(pol.window(&h, UnixTime(t.0)), (t, x));
            assert_eq!(pol.window(&h, UnixTime(t.0 + pol.period() - 1)), (t, x));
            assert_ne!(pol.window(&h, UnixTime(t.0 + pol.period())), (t, x));
            assert_eq!(pol.next_change(&h, now), UnixTime(t.0 + pol.period()));
        }
        assert!(WindowPolicy::new(10, 10).is_err());
        assert!(WindowPolicy::new(0, 0).is_err());
    }
}
