//! Input files that may still be being written.
//!
//! A mappings, pre-signed or certificates file rewritten in place (`cat new.csv >
//! mappings.csv`, an editor saving without a rename, a script that
//! truncates and writes) is, while the write lasts, a shorter file that
//! parses: building from it would publish, sign and NOTIFY a zone missing
//! the rest, and a line cut in the middle can even parse as a different
//! mapping whose signature then stays valid for weeks. Every writer of
//! these line-oriented files ends them with a newline, so a file whose last
//! line does not end with one is taken as incomplete: the server waits for
//! the rest (the write that completes it is another file event), and the
//! one-shot commands refuse it with [`INCOMPLETE`]. An empty file has no
//! lines and is complete.

use std::path::Path;

use crate::input::problem::Problem;

/// The message of the problem reported for an incomplete file.
pub const INCOMPLETE: &str =
    "does not end with a newline: the file may still be being written; add a final newline";

/// `Ok` when `text` is empty or ends with a newline; otherwise the problem,
/// at the unterminated last line of `path`.
pub fn check(path: &Path, text: &str) -> Result<(), Problem> {
    if text.is_empty() || text.ends_with('\n') {
        return Ok(());
    }
    let line = text.bytes().filter(|&b| b == b'\n').count() + 1;
    Err(Problem::at(path, line, INCOMPLETE))
}

/// Whether `problem` is the one [`check`] reports.
pub fn is_incomplete(problem: &Problem) -> bool {
    problem.message == INCOMPLETE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unterminated_last_line_is_incomplete() {
        let p = Path::new("m.csv");
        assert!(check(p, "").is_ok());
        assert!(check(p, "a,b\n").is_ok());
        assert!(check(p, "a,b\r\n").is_ok());
        let e = check(p, "a,b\nc,d").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(is_incomplete(&e));
        assert_eq!(
            e.to_string(),
            "m.csv:2: does not end with a newline: the file may still be being written; add a final newline"
        );
    }
}
