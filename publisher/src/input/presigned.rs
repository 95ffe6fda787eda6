//! Files of pre-signed assertions from third-party mapping authorities.
//!
//! A third-party authority signs mappings with `mimi-publisher sign`, which
//! prints one line per assertion: the canonical SII, white space, and the
//! record text. A provider collects such lines in a file that its zone
//! configuration lists under `presigned`; the publisher places each record
//! at the SII's discovery name. Blank lines and `#` comments are ignored.
//!
//! Each line is checked before it is published ([`parse`], then [`check`]):
//! its grammar (SPEC §4, §5), that an `h=` label is the SII's, the length of
//! its window, and, when the assertion is by this zone's own authority, its
//! signature under the key it names. A pre-signed record that every client
//! rejects is an input error, not something to publish and debug later.
//! Expired lines are skipped with a warning (a third party that has not yet
//! sent fresh records is not the zone's fault); lines not yet valid are
//! published (a third party may hand over its next records early).

use std::path::Path;

use mimi_proto::{Assertion, AuthorityName, Sii, UnixTime};

use crate::input::certs::{KeyRing, KeyStatus};
use crate::input::problem::Problem;

/// Longest assertion window accepted, seconds: resolvers' default
/// `max_assertion_validity` (SPEC §7), which rejects longer ones.
pub const MAX_ASSERTION_VALIDITY: u64 = 90 * 86400;

/// One pre-signed assertion and where it came from.
#[derive(Debug, Clone)]
pub struct Presigned {
    /// The SII it is for.
    pub sii: Sii,
    /// The record.
    pub assertion: Assertion,
    /// 1-based line.
    pub line: usize,
}

/// Formats one pre-signed line, as `sign` prints it.
pub fn format_line(sii: &Sii, assertion: &Assertion) -> String {
    format!("{} {}", sii.as_str(), assertion.text())
}

/// Reads a pre-signed file; returns the records and every problem.
pub fn read(path: &Path) -> (Vec<Presigned>, Vec<Problem>) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => (
            vec![],
            vec![Problem::in_file(
                path,
                format!("cannot read pre-signed assertions: {e}"),
            )],
        ),
    }
}

/// Parses pre-signed text.
pub fn parse(text: &str, path: &Path) -> (Vec<Presigned>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((sii, rec)) = l.split_once(char::is_whitespace) else {
            problems.push(Problem::at(
                path,
                line,
                "expected `SII RECORD` (SII, white space, record text)",
            ));
            continue;
        };
        // Canonical text (what `sign` prints) is read literally, so that a
        // literal '%' in a local part is not decoded into another SII; any
        // other form is read as input (SPEC §1).
        let sii = match Sii::parse_canonical(sii).or_else(|_| Sii::parse(sii, None)) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::at(path, line, format!("SII: {e}")));
                continue;
            }
        };
        let assertion = match Assertion::parse(rec.trim()) {
            Ok(a) => a,
            Err(e) => {
                problems.push(Problem::at(path, line, format!("malformed assertion: {e}")));
                continue;
            }
        };
        if let Some(h) = assertion.label() {
            if *h != sii.label() {
                problems.push(Problem::at(
                    path,
                    line,
                    format!("h= label is not the label of {sii}"),
                ));
                continue;
            }
        }
        out.push(Presigned {
            sii,
            assertion,
            line,
        });
    }
    (out, problems)
}

/// Checks a parsed pre-signed line as of `now`: its window is at most
/// [`MAX_ASSERTION_VALIDITY`] long, and, when it is by `own` (the zone's
/// authority and the keys a build knows of it), its key is one clients
/// accept now and its signature verifies. Returns what is wrong.
pub fn check(
    p: &Presigned,
    now: UnixTime,
    own: Option<(&AuthorityName, &KeyRing)>,
) -> Result<(), String> {
    let a = &p.assertion;
    let length = a.expires().0 - a.not_before().0;
    if length > MAX_ASSERTION_VALIDITY {
        return Err(format!(
            "assertion by {} is valid for {} days, longer than the {} days resolvers accept by default (max_assertion_validity)",
            a.authority(),
            length / 86400,
            MAX_ASSERTION_VALIDITY / 86400
        ));
    }
    let Some((name, ring)) = own.filter(|(name, _)| *name == a.authority()) else {
        return Ok(());
    };
    match ring.lookup(a.kid(), now) {
        KeyStatus::Known(key) => a.verify(&p.sii.hash(), key).map_err(|e| {
            format!(
                "assertion by {name} for {} does not verify under key {}: {e} (signed for another SII, or altered)",
                p.sii,
                a.kid()
            )
        }),
        KeyStatus::NotValidNow {
            not_before,
            expires,
        } => Err(format!(
            "assertion by {name} is signed by key {}, whose certificate is valid from {not_before} to {expires}, not now; clients reject it",
            a.kid()
        )),
        KeyStatus::Unknown => Err(format!(
            "assertion by {name} is signed by key {}, which is neither a root key of {name} nor covered by a published certificate; clients reject it",
            a.kid()
        )),
        KeyStatus::Unverifiable | KeyStatus::NotChecked => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_proto::{AuthorityName, Ssi, UnixTime, UnsignedAssertion};

    /// Fuzz finding sii-1: the canonical SII of a bare address with a
    /// literal '%' (`mailto:mb%2behat@example.org`) must read back as that
    /// SII, not be percent-decoded into `mb+ehat@…`, or the record would be
    /// published at another SII's name.
    #[test]
    fn canonical_siis_are_read_literally() {
        let sii = Sii::parse("mb%2Behat@example.org", None).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let assertion = UnsignedAssertion {
            authority: AuthorityName::parse("ma.example.net").unwrap(),
            ssi: Ssi::parse("im:mb@chat.example.org").unwrap(),
            not_before: UnixTime(1_000),
            expires: UnixTime(2_000),
            include_label: true,
            extensions: vec![],
        }
        .sign(&sii.hash(), &key)
        .unwrap();
        let line = format_line(&sii, &assertion);
        let (items, problems) = parse(&format!("{line}\n"), Path::new("p"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(items[0].sii, sii);
        assert_eq!(items[0].sii.label(), sii.label());
        // Other forms are still read as input.
        let (items, problems) = parse(
            &format!("mailto:MB%252Behat@Example.ORG {}\n", assertion.text()),
            Path::new("p"),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(items[0].sii, sii);
    }
}
