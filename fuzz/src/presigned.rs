//! The pre-signed assertions file reader (`publisher/src/input/presigned.rs`).
//!
//! Input: the file text. Properties: every line that is not blank or a
//! comment yields exactly one assertion or one problem naming that line;
//! an accepted line's SII is canonical, its `h=` label (if any) is the
//! SII's, and [`presigned::format_line`] writes it back to a line that
//! reads back equal.

use std::path::Path;

use mimi_publisher::input::presigned;

/// The target body.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let path = Path::new("fuzz.presigned");
    let (out, problems) = presigned::parse(text, path);
    let candidates: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect();
    let mut lines: Vec<usize> = out
        .iter()
        .map(|p| p.line)
        .chain(
            problems
                .iter()
                .map(|p| p.line.expect("a problem names its line")),
        )
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, candidates, "one outcome per line");
    for p in &problems {
        let shown = p.to_string();
        assert!(
            shown.starts_with(&format!("fuzz.presigned:{}: ", p.line.expect("line"))),
            "problem {shown:?} does not start with file:line"
        );
    }
    for p in &out {
        crate::sii::check(&p.sii);
        if let Some(h) = p.assertion.label() {
            assert_eq!(h, &p.sii.label(), "h= label accepted for another SII");
        }
        if crate::sii::percent_ambiguous(&p.sii) {
            // Finding sii-1: such an SII's canonical form reads back as
            // another SII, so its line cannot round-trip.
            continue;
        }
        let line = presigned::format_line(&p.sii, &p.assertion);
        let (back, problems) = presigned::parse(&line, path);
        assert!(
            problems.is_empty(),
            "{line:?} does not read back: {problems:?}"
        );
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].sii, p.sii);
        assert_eq!(back[0].assertion, p.assertion);
    }
}
