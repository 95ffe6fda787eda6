//! The catalog configuration (`serve --catalog catalog.toml`): where the
//! server publishes its catalog zone (RFC 9432) listing every zone it
//! serves, and who may transfer it.
//!
//! ```toml
//! origin = "catalog.example.net"   # a name of its own; never resolved
//! ttl = 0                          # optional
//!
//! [soa]                            # optional; these are the defaults
//! refresh = 3600
//! retry = 600
//! expire = 2419200
//! minimum = 60
//!
//! [transfer]                       # as in zone.toml
//! allow = ["192.0.2.53"]
//! notify = ["192.0.2.53:53"]
//! tsig_key = "transfer.key"
//! ```
//!
//! Relative paths are relative to the file.

use std::path::{Path, PathBuf};

use mimi_proto::DomainName;
use serde::Deserialize;

use crate::input::config::{transfer_config, ConfigError, RawTransfer, TransferConfig};

/// A loaded, checked catalog configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// The file.
    pub path: PathBuf,
    /// The catalog zone's origin.
    pub origin: DomainName,
    /// TTL of its records.
    pub ttl: u32,
    /// SOA refresh, retry, expire and minimum, seconds.
    pub timers: [u32; 4],
    /// Transfer and NOTIFY (absent: nobody may transfer the catalog, which
    /// is then of no use; allowed for trying things out).
    pub transfer: Option<TransferConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    origin: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    soa: RawTimers,
    transfer: Option<RawTransfer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimers {
    #[serde(default = "refresh")]
    refresh: u32,
    #[serde(default = "retry")]
    retry: u32,
    #[serde(default = "expire")]
    expire: u32,
    #[serde(default = "minimum")]
    minimum: u32,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers {
            refresh: refresh(),
            retry: retry(),
            expire: expire(),
            minimum: minimum(),
        }
    }
}

fn refresh() -> u32 {
    3600
}
fn retry() -> u32 {
    600
}
fn expire() -> u32 {
    2_419_200
}
fn minimum() -> u32 {
    60
}

impl CatalogConfig {
    /// Reads and checks a catalog configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&crate::input::config::read_text(path)?, path)
    }

    /// Parses catalog configuration text; `path` locates relative paths
    /// and errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawCatalog = crate::input::config::parse_toml(text, path)?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        let origin =
            DomainName::parse(&raw.origin).map_err(|e| invalid("origin", e.to_string()))?;
        // Member names are `<32 hex>.zones.<origin>` (and `version.<origin>`):
        // refuse an origin they cannot fit under, rather than fail later.
        if DomainName::parse(&format!("{}.zones.{origin}", "0".repeat(32))).is_err() {
            return Err(invalid(
                "origin",
                format!("{origin} is too long: the member names <32 hex digits>.zones.{origin} would not fit in DNS (253 octets)"),
            ));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let transfer = raw
            .transfer
            .as_ref()
            .map(|t| transfer_config(t, &base, &invalid))
            .transpose()?;
        let t = raw.soa;
        if t.refresh == 0 || t.retry == 0 || t.expire < t.refresh {
            return Err(invalid(
                "soa",
                format!(
                    "refresh {} and retry {} must be positive and expire {} at least refresh",
                    t.refresh, t.retry, t.expire
                ),
            ));
        }
        Ok(CatalogConfig {
            path: path.to_owned(),
            origin,
            ttl: raw.ttl,
            timers: [t.refresh, t.retry, t.expire, t.minimum],
            transfer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_errors() {
        let c = CatalogConfig::from_toml(
            "origin = \"Catalog.Example.net.\"\n[transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"127.0.0.1:5301\"]\ntsig_key = \"k.key\"\n",
            Path::new("/d/catalog.toml"),
        )
        .unwrap();
        assert_eq!(c.origin.as_str(), "catalog.example.net");
        assert_eq!(c.timers, [3600, 600, 2_419_200, 60]);
        let t = c.transfer.unwrap();
        assert_eq!(t.tsig_key, Some(PathBuf::from("/d/k.key")));
        assert_eq!(t.notify[0].port(), 5301);
        for (bad, why) in [
            ("origin = \"a..b\"", "origin"),
            ("origin = \"c.example\"\nbogus = 1", "bogus"),
            ("origin = \"c.example\"\n[soa]\nrefresh = 0", "soa"),
            (
                "origin = \"c.example\"\n[transfer]\nallow = [\"x\"]",
                "transfer.allow[0]",
            ),
            ("ttl = 1", "origin"),
        ] {
            let e = CatalogConfig::from_toml(bad, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("c.toml: ") && e.contains(why), "{bad}: {e}");
        }
        // Too long for the member names below it: refused, not a panic
        // when the catalog is built.
        let long = format!("origin = \"{}.example\"", vec!["a".repeat(55); 4].join("."));
        let e = CatalogConfig::from_toml(&long, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("origin") && e.contains("too long"), "{e}");
    }
}
