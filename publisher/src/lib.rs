//! mimi-publisher: turn a provider's mappings and an authority's keys into
//! signed mimi-dns records in DNS zones, and serve them.
//!
//! The pipeline, one module per step:
//!
//! ```text
//!  zone.toml ──► config ──┐
//!  mappings  ──► mappings ├─► build ──► Zone ──► zonefile (RFC 1035 text)
//!  presigned ──► presigned│                 └──► serve (UDP: udp + wire; TCP: tcp + wire; hot reload)
//!  keys      ──► keys ────┘                        ▲
//!                                        watch ────┘ (notify + re-sign timer)
//! ```
//!
//! Every input is parsed into typed values first; a build either produces a
//! complete [`zone::Zone`] or an error listing every problem with its file
//! and line, so a bad input can never replace good published data.

pub mod answer;
pub mod build;
pub mod certs;
pub mod complete;
pub mod config;
mod index;
pub mod keys;
pub mod mappings;
mod memory;
pub mod presigned;
pub mod problem;
pub mod push;
pub mod rrl;
pub mod seal;
pub mod secret;
pub mod serve;
pub mod shrink;
mod state;
pub mod tcp;
pub mod transfer;
pub mod tsig;
mod udp;
pub mod watch;
mod wire;
pub mod zone;
pub mod zonefile;

pub use build::{build_from_path, build_zone, BuildError, BuildOutput};
pub use config::{ConfigError, ZoneConfig, ZoneRole};
pub use problem::Problem;
pub use zone::{Soa, Zone, ZoneRecord};

/// Entry points for the fuzz targets in `fuzz/` (the `udp` target compares
/// the UDP fast path with the full decoder, which are internal). Not an
/// API: thin wrappers that follow whatever the server calls.
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::Arc;

    use crate::answer::ServedZone;

    /// The UDP fast path exactly as the server's receive loop calls it:
    /// writes the answer to `packet` into `out`; false means no answer.
    pub fn answer_udp(zones: &[Arc<ServedZone>], packet: &[u8], out: &mut Vec<u8>) -> bool {
        let mut scratch = crate::wire::Scratch::default();
        crate::wire::answer_udp(zones, packet, out, &mut scratch)
    }

    /// The full reader that the one-pass reader falls back to for other
    /// query shapes, applied to any packet, answering over UDP.
    pub fn answer_full(zones: &[Arc<ServedZone>], packet: &[u8], out: &mut Vec<u8>) -> bool {
        crate::wire::answer_with_full_reader(zones, packet, crate::wire::Transport::Udp, out)
            == crate::wire::Answer::Reply
    }
}
