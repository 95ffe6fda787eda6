//! Everything read from an operator's files, parsed into typed values:
//! zone configuration, mappings, pre-signed assertions, keys, TSIG keys and
//! certificates. Nothing here builds or serves a zone; a value from this
//! layer is valid once constructed, and a bad file is a [`problem::Problem`]
//! naming the file and line.

pub mod buckets;
pub mod bundle;
pub mod catalog;
pub mod certs;
pub mod complete;
pub mod config;
pub mod delegate;
pub mod domains;
pub mod keys;
pub mod mappings;
pub mod presigned;
pub mod problem;
pub mod secret;
pub mod shards;
pub mod shrink_limit;
pub mod tsig;
