//! What a zone remembers about its authority's key rollover: since when
//! each certificate has been published, until when assertions signed by
//! each key may still be in use, and which key signs now.
//!
//! A rollover is safe only if the publisher knows history the zone's
//! records do not show: a certificate must have been *published* for the
//! certificate TTL plus a propagation delay before its key signs anything
//! (resolvers may hold the certificate set without it until then), and a
//! retired key's certificate must stay until the last assertion it signed
//! has expired. The ledger is that history. It travels with the zone (a
//! rebuild takes the previous zone's ledger and returns the next one), and
//! is written into the zone file as comment lines, so that a restart from
//! the state directory (`serve --state-dir`) or a later `build --out` of
//! the same file continues the rollover where it was. The zone file's seal
//! covers them like the records.
//!
//! ```text
//! ; mimi-rollover active 0123456789abcdef
//! ; mimi-rollover key 0123456789abcdef published 1764547200 signed-until 1765756800
//! ```

use std::collections::BTreeMap;

use mimi_proto::{KeyId, UnixTime};

/// What starts a ledger line in a zone file.
pub(crate) const PREFIX: &str = "; mimi-rollover ";

/// One key's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct KeyHistory {
    /// When a zone holding this key's certificate was first published.
    pub published: Option<UnixTime>,
    /// No assertion signed by this key expires later than this.
    pub signed_until: Option<UnixTime>,
}

/// The rollover history of a zone (empty for a zone without a key bundle).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Ledger {
    /// The key that signed the zone's newest assertions.
    pub active: Option<KeyId>,
    /// Per key id.
    pub keys: BTreeMap<KeyId, KeyHistory>,
}

impl Ledger {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.keys.is_empty()
    }

    /// The history of `kid` (empty if unknown).
    pub fn get(&self, kid: &KeyId) -> KeyHistory {
        self.keys.get(kid).copied().unwrap_or_default()
    }

    /// The zone-file lines of the ledger, each ending in a newline.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        if let Some(a) = &self.active {
            let _ = writeln!(out, "{PREFIX}active {a}");
        }
        for (kid, h) in &self.keys {
            let _ = write!(out, "{PREFIX}key {kid}");
            if let Some(p) = h.published {
                let _ = write!(out, " published {}", p.0);
            }
            if let Some(s) = h.signed_until {
                let _ = write!(out, " signed-until {}", s.0);
            }
            out.push('\n');
        }
    }

    /// Reads one line written by [`Ledger::render`] (after [`PREFIX`]).
    pub(crate) fn parse_line(&mut self, rest: &str) -> Result<(), String> {
        let mut words = rest.split(' ');
        let kid = |w: Option<&str>| {
            let w = w.ok_or("a key id is missing")?;
            KeyId::parse(w).map_err(|e| format!("key id {w:?}: {e}"))
        };
        match words.next() {
            Some("active") => {
                if self.active.is_some() {
                    return Err("a second active key".into());
                }
                self.active = Some(kid(words.next())?);
            }
            Some("key") => {
                let k = kid(words.next())?;
                let mut h = KeyHistory::default();
                while let Some(what) = words.next() {
                    let v = words
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|v| *v <= UnixTime::MAX_RECORD.0)
                        .map(UnixTime)
                        .ok_or_else(|| format!("{what} needs a time in Unix seconds"))?;
                    let slot = match what {
                        "published" => &mut h.published,
                        "signed-until" => &mut h.signed_until,
                        other => return Err(format!("unknown ledger field {other:?}")),
                    };
                    if slot.replace(v).is_some() {
                        return Err(format!("{what} given twice"));
                    }
                }
                if self.keys.insert(k, h).is_some() {
                    return Err("the same key twice".into());
                }
            }
            _ => return Err("expected `active KID` or `key KID …`".into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parse_round_trip_and_rejections() {
        let a = KeyId::parse("0123456789abcdef").unwrap();
        let b = KeyId::parse("fedcba9876543210").unwrap();
        let mut l = Ledger {
            active: Some(a.clone()),
            ..Ledger::default()
        };
        l.keys.insert(
            a,
            KeyHistory {
                published: Some(UnixTime(10)),
                signed_until: Some(UnixTime(99)),
            },
        );
        l.keys.insert(b, KeyHistory::default());
        let mut text = String::new();
        l.render(&mut text);
        let mut back = Ledger::default();
        for line in text.lines() {
            back.parse_line(line.strip_prefix(PREFIX).unwrap()).unwrap();
        }
        assert_eq!(back, l);
        for bad in [
            "key nope",
            "key 0123456789abcdef published",
            "key 0123456789abcdef published x",
            "key 0123456789abcdef published 999999999999999",
            "key 0123456789abcdef published 1 published 2",
            "key 0123456789abcdef color 1",
            "what",
        ] {
            assert!(Ledger::default().parse_line(bad).is_err(), "{bad}");
        }
    }
}
