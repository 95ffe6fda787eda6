//! The C ABI of the mimi-dns resolver.
//!
//! Desktop clients in C or C++, and every language whose only way into a
//! native library is a C FFI (Go's cgo, Java's FFM, Elixir NIFs, Ruby's
//! fiddle), get the one verifier of [`mimi_resolver`] through this crate
//! instead of re-implementing it. Every call is a thin layer over
//! [`mimi_resolver::EmbeddedResolver`]: it builds the resolver from the same
//! [`mimi_resolver::ClientConfig`] JSON the other front ends use, and it
//! answers with the JSON object [`mimi_resolver::Report::to_json`] renders,
//! the one `mimi-resolve lookup --json` prints. There is no call that
//! returns an unverified SSI.
//!
//! The header `include/mimi_resolver.h` is generated from this crate's
//! doc comments by cbindgen and committed; the test `header_is_up_to_date`
//! fails when it drifts. The contract (ownership, threads, status codes) is
//! written down there and in `docs/PROTOCOL.md`, "C ABI contract".
//!
//! # Why no panic can cross the boundary
//! Unwinding out of an `extern "C"` function aborts the process (or, in
//! older Rust, was undefined behaviour). Every entry point therefore runs
//! its whole body through [`status::guard`], which is
//! [`std::panic::catch_unwind`] turning a panic into
//! [`MimiStatus::InternalError`] and a message; the asynchronous callback's
//! delivery is guarded the same way ([`callback`]). The library's own
//! lookups already catch panics per lookup (they end as `internal_error`
//! reports), so a panic here would be a bug in this crate.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod batch;
pub mod callback;
pub mod resolver;
pub mod status;
pub mod strings;

pub use callback::MimiLookupCallback;
pub use resolver::{
    mimi_resolver_free, mimi_resolver_lookup, mimi_resolver_lookup_async,
    mimi_resolver_lookup_batch, mimi_resolver_new, MimiResolver,
};
pub use status::MimiStatus;
pub use strings::{mimi_string_free, mimi_version};
