//! Unix time in seconds, the unit of every `t` and `x` field.

use std::fmt;

/// Seconds since the Unix epoch, as carried in `t=` and `x=` fields.
///
/// A newtype rather than a bare `u64` so that times and durations cannot be
/// mixed up, and so that "now" is always something a caller passes in: both
/// crates take the current time as a parameter, which keeps them testable
/// against the fixed `now` of the test vectors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The latest time a record may carry (SPEC §4): 9999-12-31T23:59:59Z.
    /// Every `UnixTime` parsed from a record is at most this, so formatting
    /// it as a calendar date and converting it to `i64` cannot fail.
    pub const MAX_RECORD: UnixTime = UnixTime(253_402_300_799);

    /// The current system time (saturating at the epoch for clocks set before 1970).
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(secs)
    }

    /// The raw number of seconds.
    pub fn secs(self) -> u64 {
        self.0
    }

    /// `self + secs`, saturating.
    pub fn plus(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_add(secs))
    }

    /// `self - secs`, saturating at the epoch.
    pub fn minus(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_sub(secs))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
