//! Fuzz target bodies for mimi-dns.
//!
//! Each target is a plain function from arbitrary bytes to `()` that
//! panics when a property of the code under test does not hold. Two
//! drivers call them:
//!
//! * `fuzz/harness/` — one libFuzzer binary per target, built with
//!   coverage instrumentation by `fuzz/run.sh` (see `fuzz/README.md`);
//! * `fuzz/tests/replay.rs` — runs every committed corpus file
//!   (`fuzz/corpus/<target>/*`) through its target under plain
//!   `cargo test`, so CI checks every input the fuzzer ever kept, and every
//!   finding stays fixed, without building a fuzzer.
//!
//! A target never treats "did not panic" as success on its own: each one
//! checks what its input must satisfy (round trips, agreement between two
//! implementations, or an independent re-check of a trust decision).

pub mod fixtures;
pub mod mappings;
pub mod presigned;
pub mod record;
pub mod sii;
pub mod udp;
pub mod verify;
pub mod zonefile;

/// A fuzz target: its name (the corpus directory and harness binary) and
/// its body.
pub struct Target {
    /// The name: `fuzz/corpus/<name>/` and `fuzz/harness/src/bin/<name>.rs`.
    pub name: &'static str,
    /// The body: panics on a property violation.
    pub run: fn(&[u8]),
}

/// Every target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sii",
        run: sii::run,
    },
    Target {
        name: "record",
        run: record::run,
    },
    Target {
        name: "verify",
        run: verify::run,
    },
    Target {
        name: "udp",
        run: udp::run,
    },
    Target {
        name: "zonefile",
        run: zonefile::run,
    },
    Target {
        name: "mappings",
        run: mappings::run,
    },
    Target {
        name: "presigned",
        run: presigned::run,
    },
];

/// The input as text, when it is UTF-8: the text parsers under test take
/// `&str`, as their callers (file readers, DNS TXT decoding) only hand
/// them valid UTF-8.
pub(crate) fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
