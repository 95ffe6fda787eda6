//! The mimi-dns v1 wire format, shared by the publisher and the resolver.
//!
//! Everything that both sides must compute identically lives here, once:
//!
//! * [`sii`] — canonical service-independent identifiers (SPEC §1);
//! * [`label`] — the SII hash and its 52-character DNS label (SPEC §2);
//! * [`name`] — domain names, authority names and discovery names (SPEC §3);
//! * [`text`] — the strict `key=value;…;sig=` record grammar (SPEC §4);
//! * [`ssi`] — service-specific identifiers and their provider host (SPEC §5);
//! * [`key`] — Ed25519 public keys and key ids (SPEC §4, §6);
//! * [`assertion`] and [`certificate`] — the two signed record kinds and
//!   the exact bytes they sign (SPEC §5, §6);
//! * [`window`] — deterministic validity windows for publishers (SPEC §9).
//!
//! The types follow "parse, don't validate": a [`sii::Sii`], [`label::Label`],
//! [`key::KeyId`] or [`assertion::Assertion`] can only be obtained through a
//! constructor that checks every rule, so code holding one never re-checks.
//! The crate does no I/O and never prints; every failure is a typed error
//! whose `Display` text names the rule that was broken.

pub mod assertion;
pub mod bucket;
pub mod certificate;
pub mod key;
pub mod label;
pub mod name;
pub mod sii;
pub mod ssi;
pub mod text;
pub mod time;
pub mod window;

pub use assertion::{Assertion, UnsignedAssertion};
pub use certificate::{Certificate, UnsignedCertificate};
pub use key::{KeyId, PublicKey};
pub use label::{Label, SiiHash};
pub use name::{AuthorityName, DomainName};
pub use sii::{Region, Sii, SiiError};
pub use ssi::Ssi;
pub use text::{RecordError, RecordText};
pub use time::UnixTime;

/// The version tag every mimi record starts with (`v=mimi1`).
pub const VERSION_FIELD: &str = "v=mimi1";

/// The largest record text a publisher may produce and a resolver accepts
/// (SPEC §4, §11).
pub const MAX_RECORD_LEN: usize = 1024;
