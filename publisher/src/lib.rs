//! mimi-publisher: turn a provider's mappings and an authority's keys into
//! signed mimi-dns records in DNS zones, and serve them.
//!
//! The pipeline, one folder per stage; imports only point down the list
//! (`serve`, `transfer` → `build` → `zone` → `input` → `mimi_proto`):
//!
//! ```text
//!  input/     zone.toml, mappings, presigned, keys, certificates, TSIG keys
//!    │          → typed values, or Problems with file:line
//!    ▼
//!  build/     plan, sign what changed, merge with what is reused
//!    │          → a complete Zone (or every problem, nothing half-built);
//!    │          build/zones: one configuration → its zones ([domains],
//!    │          [shards]), each built from its own share of the inputs
//!    ▼
//!  zone/      the Zone model (TXT records, delegations, catalog PTRs);
//!    │          its served form and index; zone files; the kept copy and
//!    │          the IXFR journal in --state-dir; the catalog builder; the
//!    │          shrink guard
//!    ├──────────────────────────────┐
//!    ▼                              ▼
//!  serve/     UDP + TCP answers,   transfer/  AXFR/IXFR out (streamed,
//!             zone table, hot                 limited), NOTIFY, signed
//!             reload, RRL, catalog            answers, RFC 2136 push
//! ```
//!
//! [`status`] (the `status` command: what monitoring asks about each
//! published zone) stands on all of them; `zone::status` is the reload
//! record a server keeps for it in its state directory.
//!
//! Every input is parsed into typed values first; a build either produces a
//! complete [`zone::Zone`] or an error listing every problem with its file
//! and line, so a bad input can never replace good published data.

pub mod build;
pub mod input;
pub mod serve;
pub mod status;
pub mod transfer;
pub mod zone;

pub use build::{build_from_path, build_zone, BuildError, BuildOutput};
pub use input::config::{ConfigError, ZoneConfig, ZoneRole};
pub use input::problem::Problem;
pub use zone::{Soa, Zone, ZoneRecord};

/// Entry points for the fuzz targets in `fuzz/` (the `udp` target compares
/// the UDP fast path with the full decoder, which are internal). Not an
/// API: thin wrappers that follow whatever the server calls.
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::Arc;

    use crate::zone::served::ServedZone;

    /// The UDP fast path exactly as the server's receive loop calls it:
    /// writes the answer to `packet` into `out`; false means no answer.
    pub fn answer_udp(zones: &[Arc<ServedZone>], packet: &[u8], out: &mut Vec<u8>) -> bool {
        let mut scratch = crate::serve::wire::Scratch::default();
        let zones = crate::zone::served::ZoneTable::new(zones.iter().cloned());
        crate::serve::wire::answer_udp(&zones, packet, out, &mut scratch)
    }

    /// The full reader that the one-pass reader falls back to for other
    /// query shapes, applied to any packet, answering over UDP.
    pub fn answer_full(zones: &[Arc<ServedZone>], packet: &[u8], out: &mut Vec<u8>) -> bool {
        let zones = crate::zone::served::ZoneTable::new(zones.iter().cloned());
        crate::serve::wire::answer_with_full_reader(
            &zones,
            packet,
            crate::serve::wire::Transport::Udp,
            out,
        ) == crate::serve::wire::Answer::Reply
    }
}
