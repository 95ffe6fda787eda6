//! Files of pre-signed assertions from third-party mapping authorities.
//!
//! A third-party authority signs mappings with `mimi-publisher sign`, which
//! prints one line per assertion: the canonical SII, white space, and the
//! record text. A provider collects such lines in a file that its zone
//! configuration lists under `presigned`; the publisher places each record
//! at the SII's discovery name. Blank lines and `#` comments are ignored.

use std::path::Path;

use mimi_proto::{Assertion, Sii};

use crate::problem::Problem;

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
        let sii = match Sii::parse(sii, None) {
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
