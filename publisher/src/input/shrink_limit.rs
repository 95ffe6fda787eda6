//! `max_shrink`: how much of a zone's assertions a rebuild may remove
//! without an operator's confirmation (the setting; the guard that applies
//! it is [`crate::zone::shrink`]).

use std::fmt;

/// The largest share of a zone's assertions that a new zone may remove
/// without confirmation. The default is 10%; a new zone without any
/// assertions is refused whenever the old one had some, whatever the limit
/// (unless the guard is off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShrinkLimit {
    /// Share in `[0, 1]`; `None` turns the guard off (`max_shrink = "100%"`
    /// or `--allow-shrink`).
    pub(crate) share: Option<f64>,
}

impl Default for ShrinkLimit {
    fn default() -> Self {
        ShrinkLimit { share: Some(0.10) }
    }
}

/// Why a shrink limit was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("max_shrink {0:?} is not a percentage from 0% to 100% (like \"10%\")")]
pub struct ShrinkLimitError(String);

impl ShrinkLimit {
    /// No limit: every new zone is installed (the operator confirmed).
    pub const OFF: ShrinkLimit = ShrinkLimit { share: None };

    /// Parses `"10%"`, `"0%"`, `"12.5%"` or `"100%"` (which turns the guard
    /// off).
    pub fn parse(s: &str) -> Result<Self, ShrinkLimitError> {
        let bad = || ShrinkLimitError(s.to_owned());
        let pct: f64 = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(bad());
        }
        if pct >= 100.0 {
            return Ok(Self::OFF);
        }
        Ok(ShrinkLimit {
            share: Some(pct / 100.0),
        })
    }

    /// Whether the guard is off.
    pub fn is_off(&self) -> bool {
        self.share.is_none()
    }
}

impl fmt::Display for ShrinkLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.share {
            None => f.write_str("100%"),
            Some(s) => write!(f, "{}%", s * 100.0),
        }
    }
}
