//! The mappings file: one `SII,SSI` pair per line.
//!
//! Operators generate it from user databases with millions of rows, so it is
//! line-oriented and parsed in parallel. Blank lines and lines starting with
//! `#` are ignored; white space around each field is trimmed. The SII is any
//! input SPEC §1 accepts (it is canonicalized); the SSI is a URI (characters
//! a record cannot hold are percent-encoded).

use std::path::Path;

use mimi_proto::{Region, Sii, Ssi};
use rayon::prelude::*;

use crate::input::problem::Problem;

/// One mapping and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Canonical SII.
    pub sii: Sii,
    /// SSI.
    pub ssi: Ssi,
    /// 1-based line number.
    pub line: usize,
}

/// The result of reading a mappings file: the mappings, plus the problems
/// (errors make the file unusable; warnings do not).
#[derive(Debug, Default)]
pub struct MappingsFile {
    /// Unique mappings, in file order.
    pub mappings: Vec<Mapping>,
    /// Fatal problems.
    pub errors: Vec<Problem>,
    /// Non-fatal problems (duplicate lines).
    pub warnings: Vec<Problem>,
}

/// Reads and parses a mappings file. I/O failure is one error.
pub fn read(path: &Path, region: Option<Region>) -> MappingsFile {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path, region),
        Err(e) => MappingsFile {
            errors: vec![Problem::in_file(path, format!("cannot read mappings: {e}"))],
            ..Default::default()
        },
    }
}

/// Parses mappings text; `path` is used in problems.
pub fn parse(text: &str, path: &Path, region: Option<Region>) -> MappingsFile {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let parsed: Vec<Result<Mapping, Problem>> = lines
        .par_iter()
        .with_min_len(4096)
        .map(|&(line, l)| parse_line(l, line, path, region))
        .collect();
    let mut out = MappingsFile::default();
    let mut seen = std::collections::HashMap::with_capacity(parsed.len());
    for r in parsed {
        match r {
            Ok(m) => {
                let key = (m.sii.as_str().to_owned(), m.ssi.as_str().to_owned());
                if let Some(first) = seen.get(&key) {
                    out.warnings.push(Problem::at(
                        path,
                        m.line,
                        format!("duplicate of line {first} ({} → {}); ignored", m.sii, m.ssi),
                    ));
                } else {
                    seen.insert(key, m.line);
                    out.mappings.push(m);
                }
            }
            Err(p) => out.errors.push(p),
        }
    }
    out
}

pub(crate) fn parse_line(
    l: &str,
    line: usize,
    path: &Path,
    region: Option<Region>,
) -> Result<Mapping, Problem> {
    let (sii, ssi) = l
        .split_once(',')
        .ok_or_else(|| Problem::at(path, line, "expected SII,SSI (no comma found)"))?;
    let (sii, ssi) = (sii.trim(), ssi.trim());
    if ssi.is_empty() {
        return Err(Problem::at(path, line, "empty SSI"));
    }
    let sii = Sii::parse(sii, region).map_err(|e| Problem::at(path, line, format!("SII: {e}")))?;
    let ssi = Ssi::from_input(ssi).map_err(|e| Problem::at(path, line, format!("SSI: {e}")))?;
    Ok(Mapping { sii, ssi, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vectors/ssi.json` through the mappings reader: valid SSIs are kept
    /// as they are (and keep the vector's provider host); the `invalid` ones
    /// are either percent-encoded into a valid SSI (characters that are not
    /// URI characters) or refused with the line number, never published as
    /// given.
    #[test]
    fn ssi_vectors_are_kept_encoded_or_refused() {
        let dir = std::env::var("MIMI_VECTORS_DIR").map_or_else(
            |_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
            std::path::PathBuf::from,
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("ssi.json")).unwrap()).unwrap();
        let path = Path::new("m.csv");
        for case in v["provider_hosts"].as_array().unwrap() {
            let ssi = case["ssi"].as_str().unwrap();
            let m = parse_line(&format!("alice@example.com,{ssi}"), 1, path, None)
                .unwrap_or_else(|e| panic!("{ssi}: {e}"));
            assert_eq!(m.ssi.as_str(), ssi);
            let host = m.ssi.provider_host().map(|h| h.as_str().to_owned());
            assert_eq!(host.as_deref(), case["provider_host"].as_str(), "{ssi}");
        }
        let mut encoded = 0;
        for case in v["invalid"].as_array().unwrap() {
            let ssi = case["ssi"].as_str().unwrap();
            assert!(mimi_proto::Ssi::parse(ssi).is_err(), "{ssi}");
            match parse_line(&format!("alice@example.com,{ssi}"), 7, path, None) {
                Ok(m) => {
                    encoded += 1;
                    assert_ne!(m.ssi.as_str(), ssi);
                    assert!(m.ssi.as_str().contains('%'), "{ssi} -> {}", m.ssi);
                    mimi_proto::Ssi::parse(m.ssi.as_str()).unwrap();
                }
                Err(e) => assert!(e.to_string().starts_with("m.csv:7: SSI: "), "{e}"),
            }
        }
        // Backslash, |, braces and the double quote are encoded.
        assert_eq!(encoded, 4);
        let m = parse_line(
            "alice@example.com,https://evil.example\\@chat.example.org/",
            1,
            path,
            None,
        )
        .unwrap();
        assert_eq!(m.ssi.as_str(), "https://evil.example%5C@chat.example.org/");
        assert_eq!(
            m.ssi.provider_host().unwrap().as_str(),
            "chat.example.org",
            "the encoded form is what ssi.json says"
        );
    }

    #[test]
    fn parses_comments_blank_duplicates_and_errors() {
        let text = "# users\n\nAlice@Example.com , mimi://chat.example.com/u/alice\n+1 415 555 0123,im:bob@talk.example.net\nalice@example.com,mimi://chat.example.com/u/alice\nbroken line\nx@localhost,mimi://a/b\nc@example.com,\nd@example.com,not a uri\n";
        let f = parse(text, Path::new("m.csv"), None);
        assert_eq!(f.mappings.len(), 2);
        assert_eq!(f.mappings[0].sii.as_str(), "mailto:alice@example.com");
        assert_eq!(f.mappings[0].line, 3);
        assert_eq!(f.mappings[1].sii.as_str(), "tel:+14155550123");
        assert_eq!(f.warnings.len(), 1);
        assert_eq!(f.warnings[0].line, Some(5));
        let lines: Vec<_> = f.errors.iter().map(|p| p.line.unwrap()).collect();
        assert_eq!(lines, vec![6, 7, 8, 9]);
        assert!(f.errors[0]
            .to_string()
            .starts_with("m.csv:6: expected SII,SSI"));
        assert!(
            f.errors[1].message.starts_with("SII: bad domain"),
            "{}",
            f.errors[1]
        );
    }
}
