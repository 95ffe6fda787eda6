//! The resolver's command-line flags, shared by every binary that resolves.
//!
//! `mimi-resolve lookup`, `mimi-resolve batch` and `mimi-gateway serve`
//! take the same flags for the same settings (trust store, servers, zones,
//! timeouts, DNSSEC, private mode). They are defined once here, turned into
//! a [`ClientConfig`] and checked by [`ClientConfig::parse`], so an error
//! reads the same in every tool and names the flag.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ClientConfig, ParsedConfig};
use crate::dnssec::DnssecMode;

/// The flags that configure a resolver (flatten into a clap command).
#[derive(Debug, Clone, clap::Args)]
pub struct ResolverArgs {
    /// Trust store (TOML, SPEC §7).
    #[arg(long, value_name = "FILE")]
    pub trust: PathBuf,
    /// DNS servers (see the flag's help; parsed by `ServerSpec::parse`).
    #[arg(
        long = "server",
        value_name = "SPEC",
        help = "DNS server (repeatable, mixed): IP[:PORT] plain DNS (53), tls://IP[:PORT] DNS over TLS (853), https://IP[:PORT][/PATH] DNS over HTTPS (443, /dns-query), quic://IP[:PORT] DNS over QUIC (853); IPv6 as [::1]:853. Default: the trust store's [dns] servers, else the system's resolvers."
    )]
    pub servers: Vec<String>,
    /// The name the certificates of encrypted servers must carry (default: the trust store's dns.tls_name, else each server's IP address, which must then be an IP SAN).
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// PEM file of a private CA that encrypted servers' certificates must chain to (default: the trust store's dns.ca, else the system's roots).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Distribution zone (repeatable).
    #[arg(long = "zone", value_name = "ZONE")]
    pub zones: Vec<String>,
    /// Telephone root zone (repeatable); telephone numbers have no home zone without one.
    #[arg(long = "tel-root", value_name = "ZONE")]
    pub tel_roots: Vec<String>,
    /// Default region for national telephone numbers (ISO 3166 code, e.g. IT).
    #[arg(long, value_name = "CC")]
    pub region: Option<String>,
    /// Do not query the SIIs' home zones.
    #[arg(long)]
    pub no_home: bool,
    /// Timeout of one DNS request (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// DNSSEC policy: off, prefer (bogus answers fail) or require (every answer proven secure); default: the trust store's.
    #[arg(long, value_name = "MODE")]
    pub dnssec: Option<DnssecMode>,
    /// File of DNSKEY and/or DS records to validate from (instead of the trust store's anchor or the IANA root).
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Private mode: ask privacy buckets only, never an exact discovery name (default: the trust store's `[policy] private`).
    #[arg(long)]
    pub private: bool,
}

impl ResolverArgs {
    /// The same settings as a [`ClientConfig`].
    pub fn to_config(&self) -> ClientConfig {
        ClientConfig {
            trust_file: Some(self.trust.clone()),
            trust_toml: None,
            zones: self.zones.clone(),
            tel_roots: self.tel_roots.clone(),
            region: self.region.clone(),
            home: Some(!self.no_home),
            servers: self.servers.clone(),
            tls_name: self.tls_name.clone(),
            ca_file: self.ca.clone(),
            private: Some(self.private),
            timeout_ms: Some(self.timeout.as_millis().try_into().unwrap_or(u64::MAX)),
            attempts: None,
            dnssec: self.dnssec.map(|m| m.to_string()),
            trust_anchor_file: self.trust_anchor.clone(),
            endpoints: false,
        }
    }

    /// Parses the settings; the error names the flag (`--server: …`).
    /// Trust store errors name the file and line themselves.
    pub fn parse(&self) -> Result<ParsedConfig, String> {
        self.to_config().parse().map_err(|e| {
            let flag = match e.field.split('[').next().unwrap_or_default() {
                "trust_file" => return e.message,
                "servers" => "--server",
                "tls_name" => "--tls-name",
                "ca_file" => "--ca",
                "timeout_ms" => "--timeout",
                "dnssec" => "--dnssec",
                "trust_anchor_file" => "--trust-anchor",
                "zones" => "--zone",
                "tel_roots" => "--tel-root",
                "region" => "--region",
                _ => return e.to_string(),
            };
            format!("{flag}: {}", e.message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        resolver: ResolverArgs,
    }

    #[test]
    fn errors_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust.toml");
        std::fs::write(
            &trust,
            "[[authority]]\nname = \"example.com\"\nroot_keys = [\"IOnU6osCMikqU1s_Wr_guY9IVD2ijsLfaNTewQiYWMA\"]\n",
        )
        .unwrap();
        let t = trust.to_str().unwrap();
        for (args, want) in [
            (&["--server", "udp://1.2.3.4"][..], "--server: "),
            (&["--zone", "a..b"][..], "--zone: "),
            (&["--region", "XX"][..], "--region: "),
            (&["--timeout", "0s"][..], "--timeout: "),
            (&["--tls-name", "x.example"][..], "--tls-name: "),
        ] {
            let mut all = vec!["x", "--trust", t];
            all.extend_from_slice(args);
            let cli = Cli::try_parse_from(&all).unwrap();
            let e = cli.resolver.parse().unwrap_err();
            assert!(e.starts_with(want), "{args:?}: {e}");
        }
        let cli = Cli::try_parse_from(["x", "--trust", t, "--server", "127.0.0.1:53"]).unwrap();
        assert!(cli.resolver.parse().is_ok());
    }
}
