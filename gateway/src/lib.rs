//! The HTTP discovery gateway: verified lookups over a JSON API.
//!
//! A provider that resolves SIIs on its users' behalf (for apps that cannot
//! speak DNS, browsers above all) runs this gateway. It is a thin HTTP
//! layer over [`mimi_resolver::Resolver`]: every answer is a
//! [`mimi_resolver::Report`] rendered by [`mimi_resolver::Report::to_json`],
//! the same object `mimi-resolve lookup --json` prints, so the gateway can
//! never return an SSI the library did not verify.
//!
//! * [`api`] — the routes (`/v1/lookup`, the lookup page).

pub mod api;
