//! The mappings file reader (`publisher/src/input/mappings.rs`).
//!
//! Input: one byte choosing the default region (none or IT), then the file
//! text. Properties: every line that is not blank or a comment yields
//! exactly one mapping, error or duplicate warning, each naming that
//! line (`file:line`); mappings are in line order and unique; each
//! mapping's SII is canonical (see [`crate::sii::check`]) and its SSI
//! valid, and writing a mapping back as `SII,SSI` reads back equal.

use std::path::Path;

use mimi_proto::Region;
use mimi_publisher::input::mappings;

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = crate::text(rest) else {
        return;
    };
    let region: Option<Region> = (sel & 1 == 1).then(|| "IT".parse().expect("region"));
    let path = Path::new("fuzz.csv");
    let f = mappings::parse(text, path, region);
    let candidates: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect();
    let mut lines: Vec<usize> = f
        .mappings
        .iter()
        .map(|m| m.line)
        .chain(
            f.errors
                .iter()
                .map(|p| p.line.expect("an error names its line")),
        )
        .chain(
            f.warnings
                .iter()
                .map(|p| p.line.expect("a warning names its line")),
        )
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, candidates, "one outcome per line");
    for p in f.errors.iter().chain(&f.warnings) {
        let shown = p.to_string();
        assert!(
            shown.starts_with(&format!("fuzz.csv:{}: ", p.line.expect("line"))),
            "problem {shown:?} does not start with file:line"
        );
    }
    assert!(
        f.mappings.windows(2).all(|w| w[0].line < w[1].line),
        "line order"
    );
    for (i, m) in f.mappings.iter().enumerate() {
        crate::sii::check(&m.sii);
        crate::record::check_ssi(m.ssi.as_str());
        assert!(
            f.mappings[..i]
                .iter()
                .all(|o| (&o.sii, &o.ssi) != (&m.sii, &m.ssi)),
            "duplicate mapping kept"
        );
        if crate::sii::percent_ambiguous(&m.sii) {
            // Finding sii-1: the canonical form reads back as another SII.
            continue;
        }
        let line = format!("{},{}", m.sii, m.ssi);
        let back = mappings::parse(&line, path, None);
        assert!(
            back.errors.is_empty(),
            "{line:?} does not read back: {:?}",
            back.errors
        );
        assert_eq!(back.mappings.len(), 1);
        assert_eq!(
            (&back.mappings[0].sii, &back.mappings[0].ssi),
            (&m.sii, &m.ssi)
        );
    }
}
