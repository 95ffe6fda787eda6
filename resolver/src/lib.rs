//! Resolve and verify mimi-dns discovery records (SPEC §8).
//!
//! Given an SII (an email address or telephone number), a [`Resolver`]
//! queries TXT records at the SII's discovery names in DNS, fetches the
//! certificates of the authorities that signed them, and returns only the
//! SSIs that enough authorities from the client's [`TrustStore`] vouch for.
//! DNS servers are not trusted: every decision is made by [`verify()`], a pure
//! function of the records found, the trust store and the time.
//!
//! * [`trust`] — the trust store and policy (SPEC §7);
//! * [`scope`] — the scope patterns of trusted authorities;
//! * [`mod@verify`] — DNS-free verification (SPEC §8 steps 3–5, §11);
//! * [`dnssec`] — the DNSSEC policy (off, prefer, require) and trust anchors;
//! * [`lookup`] — the DNS side, built on hickory-resolver;
//! * [`transport`] — server specs (plain, DoT, DoH, DoQ), TLS trust and
//!   query padding;
//! * [`private`] — private lookups through privacy buckets (SPEC §10);
//! * [`resolution`] — the result types;
//! * [`output`] — JSON and text rendering used by the `mimi-resolve` CLI;
//! * [`args`] — the resolver's command-line flags, shared by every binary;
//! * [`config`] — [`ClientConfig`], the one configuration every front end
//!   (CLI, C ABI, bindings, HTTP gateway) builds a resolver from;
//! * [`report`] — [`Report`], every way a lookup of one input can end, and
//!   its JSON (the shape `mimi-resolve lookup --json` prints);
//! * [`embedded`] — [`EmbeddedResolver`], a resolver with its own runtime
//!   for callers that are not Rust async code.
//!
//! The library never prints; diagnostics go to `tracing` at debug level.

pub mod args;
pub mod config;
pub mod dnssec;
pub mod embedded;
pub mod lookup;
pub mod output;
pub mod private;
pub mod report;
pub mod resolution;
pub mod scope;
pub mod transport;
pub mod trust;
pub mod verify;

pub use config::{ClientConfig, ClientConfigError, ParsedConfig};
pub use dnssec::{AnchorDs, AnchorKey, DnssecMode, DnssecPolicy, TrustAnchor};
pub use embedded::{EmbeddedError, EmbeddedResolver};
pub use lookup::{
    discovery_names, ConfigError, LookupError, NameServers, Resolver, ResolverOptions,
};
pub use report::Report;
pub use resolution::{
    Endpoint, Outcome, Rejected, Resolution, UnauthenticatedEndpoints, VerifiedSsi,
};
pub use scope::{HostPattern, SiiPattern};
pub use transport::{ServerSpec, TlsName, TlsOptions, Transport, TrustRoots};
pub use trust::{DnsDefaults, Policy, TrustError, TrustStore, TrustedAuthority};
pub use verify::{verify, verify_prepared, PreparedCertificates, SourceRecords, Verification};
