//! How the resolver reaches its DNS servers: plain UDP/TCP, DNS over TLS
//! (RFC 7858), DNS over HTTPS (RFC 8484, HTTP/2) and DNS over QUIC
//! (RFC 9250).
//!
//! A lookup on plain DNS tells everyone on the path whom it is for (the
//! discovery label *is* the person for a telephone number) and lets them
//! answer in the server's place. The encrypted transports close both holes
//! as far as the path is concerned, so this module makes them first-class:
//!
//! * [`ServerSpec`] is one server as the user writes it (`IP:PORT`,
//!   `tls://IP:PORT`, `https://IP:PORT/dns-query`, `quic://IP:PORT`),
//!   parsed once into a typed value;
//! * [`TlsOptions`] says which name the server's certificate must carry
//!   and which roots it must chain to (a private CA bundle or the system's);
//! * [`Transports`] is the hickory [`ConnectionProvider`] the resolver runs
//!   on: it pads queries on encrypted transports to a multiple of 128 octets
//!   (RFC 7830, RFC 8467), bounds the TLS/QUIC handshake by the DNS timeout,
//!   and remembers *why* an encrypted connection failed, so that a bad
//!   certificate is reported as such instead of hickory's generic
//!   "no connections available".
//!
//! There is no fallback: a `tls://` server is only ever asked over TLS.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ProtocolConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::{DnsRequest, DnsResponse, Edns};
use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_resolver::{ConnectionProvider, PoolContext};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Default port of DNS over TLS and DNS over QUIC (RFC 7858, RFC 9250).
pub const DOT_PORT: u16 = 853;
/// Default port of DNS over HTTPS.
pub const DOH_PORT: u16 = 443;
/// Default port of plain DNS.
pub const DNS_PORT: u16 = 53;
/// The DoH path used when a `https://` server names none (RFC 8484's
/// customary endpoint).
pub const DEFAULT_DOH_PATH: &str = "/dns-query";
/// Queries on encrypted transports are padded to a multiple of this many
/// octets (RFC 8467 §4.1, the recommended block-length policy for clients).
pub const QUERY_PADDING_BLOCK: usize = 128;
/// Largest CA bundle read (a system bundle is about 200 KiB); more is
/// refused rather than read without bound.
pub const MAX_CA_FILE: u64 = 16 * 1024 * 1024;

/// How a server is spoken to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP, with TCP for truncated answers. Neither private nor
    /// authenticated.
    Plain,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484) over HTTP/2, POST to this path.
    Https(DohPath),
    /// DNS over QUIC (RFC 9250).
    Quic,
}

impl Transport {
    /// Whether the transport is encrypted and authenticated (everything
    /// but [`Transport::Plain`]).
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Transport::Plain)
    }
}

/// The path of a DoH endpoint: starts with `/`, printable ASCII only, no
/// fragment, at most 1024 octets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DohPath(String);

impl DohPath {
    /// Parses a path such as `/dns-query`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("the path {s:?} does not start with /"));
        }
        if s.len() > 1024 {
            return Err("the path is longer than 1024 octets".into());
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic() || *c == '#') {
            return Err(format!("the path contains {c:?}"));
        }
        Ok(DohPath(s.to_owned()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DohPath {
    fn default() -> Self {
        DohPath(DEFAULT_DOH_PATH.to_owned())
    }
}

/// One DNS server to ask: an IP address, a port and a transport.
///
/// Only IP addresses are accepted: finding the server by name would need
/// DNS before DNS, over an unauthenticated channel. The certificate's name
/// is given separately ([`TlsOptions::name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    addr: SocketAddr,
    transport: Transport,
}

/// A `--server` (or trust-store `servers`) entry that is not a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {why}")]
pub struct ServerSpecError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

impl ServerSpec {
    /// A server with this address and transport.
    pub fn new(addr: SocketAddr, transport: Transport) -> Self {
        ServerSpec { addr, transport }
    }

    /// A plain UDP/TCP server.
    pub fn plain(addr: SocketAddr) -> Self {
        Self::new(addr, Transport::Plain)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How it is spoken to.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Parses `IP`, `IP:PORT`, `[IPv6]:PORT`, `tls://IP[:PORT]`,
    /// `https://IP[:PORT][/path]` and `quic://IP[:PORT]`.
    pub fn parse(s: &str) -> Result<Self, ServerSpecError> {
        let err = |why: String| ServerSpecError {
            input: s.to_owned(),
            why,
        };
        let Some((scheme, rest)) = s.split_once("://") else {
            let addr = parse_addr(s, DNS_PORT).map_err(err)?;
            return Ok(Self::plain(addr));
        };
        let (transport, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "tls" => (Transport::Tls, DOT_PORT),
            "quic" => (Transport::Quic, DOT_PORT),
            "https" => (Transport::Https(DohPath::default()), DOH_PORT),
            other => {
                return Err(err(format!(
                    "unknown scheme {other:?}: use IP:PORT (plain DNS), tls://, https:// or quic://"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let transport = match (transport, path) {
            (Transport::Https(_), Some(p)) => Transport::Https(DohPath::parse(p).map_err(err)?),
            (t @ Transport::Https(_), None) => t,
            (_, Some(p)) if p != "/" => {
                return Err(err(format!(
                    "{scheme}:// takes no path (found {p:?}); only https:// has one"
                )))
            }
            (t, _) => t,
        };
        let addr = parse_addr(authority, default_port).map_err(err)?;
        Ok(Self::new(addr, transport))
    }

    /// hickory's configuration for this server. `tls_name` is the name the
    /// certificate must carry; `None` means the server's IP address (which
    /// must then be an IP SAN of its certificate).
    pub fn name_server_config(&self, tls_name: Option<&TlsName>) -> NameServerConfig {
        let name: Arc<str> = match tls_name {
            Some(n) => Arc::from(n.to_string()),
            None => Arc::from(self.addr.ip().to_string()),
        };
        let connections = match &self.transport {
            Transport::Plain => vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
            Transport::Tls => vec![ConnectionConfig::tls(name)],
            Transport::Https(path) => {
                vec![ConnectionConfig::https(
                    name,
                    Some(Arc::from(path.as_str())),
                )]
            }
            Transport::Quic => vec![ConnectionConfig::quic(name)],
        };
        let mut ns = NameServerConfig::new(self.addr.ip(), true, connections);
        for c in &mut ns.connections {
            c.port = self.addr.port();
        }
        ns
    }
}

impl FromStr for ServerSpec {
    type Err = ServerSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<SocketAddr> for ServerSpec {
    fn from(addr: SocketAddr) -> Self {
        Self::plain(addr)
    }
}

impl fmt::Display for ServerSpec {
    /// The form [`ServerSpec::parse`] reads, with the port always written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            Transport::Plain => write!(f, "{}", self.addr),
            Transport::Tls => write!(f, "tls://{}", self.addr),
            Transport::Https(p) => write!(f, "https://{}{}", self.addr, p.as_str()),
            Transport::Quic => write!(f, "quic://{}", self.addr),
        }
    }
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT` (an IPv6 address with a port needs the
/// brackets).
fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err("port 0 is not a server port".into());
        }
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<std::net::Ipv6Addr>() {
            return Ok(SocketAddr::new(IpAddr::V6(ip), default_port));
        }
    }
    if s.is_empty() {
        return Err("no address".into());
    }
    Err(format!(
        "{s:?} is not IP, IP:PORT or [IPv6]:PORT (servers are given by address; the certificate name goes in --tls-name)"
    ))
}

/// The name a server's certificate must carry: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsName(ServerName<'static>);

impl TlsName {
    /// Parses a host name (`dns.example.net`) or an IP address.
    pub fn parse(s: &str) -> Result<Self, String> {
        ServerName::try_from(s.to_owned())
            .map(TlsName)
            .map_err(|e| format!("{s:?} is not a host name or IP address: {e}"))
    }

    /// The rustls form.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.0
    }
}

impl FromStr for TlsName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TlsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_str())
    }
}

/// Certificates of a private CA, read from a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    certs: Vec<CertificateDer<'static>>,
}

impl CaBundle {
    /// Reads every `CERTIFICATE` of a PEM file. An unreadable file, a file
    /// over [`MAX_CA_FILE`], a malformed PEM or one without a certificate
    /// is an error naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TlsSetupError> {
        let path = path.as_ref().to_path_buf();
        let fail = |why: String| TlsSetupError::Ca {
            path: path.clone(),
            why,
        };
        let file = std::fs::File::open(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_CA_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_CA_FILE {
            return Err(fail(format!("larger than {MAX_CA_FILE} octets")));
        }
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("not a PEM file: {e}")))?;
        if certs.is_empty() {
            return Err(fail("no CERTIFICATE in the PEM file".into()));
        }
        Ok(CaBundle { path, certs })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The certificates, in file order.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }
}

/// Which certificates a server's chain must end in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustRoots {
    /// The operating system's roots (`rustls-native-certs`).
    #[default]
    System,
    /// Only these (a private CA); the system's roots are not consulted.
    Private(CaBundle),
}

/// How encrypted servers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// The name every encrypted server's certificate must carry; `None`:
    /// each server's own IP address (an IP SAN).
    pub name: Option<TlsName>,
    /// The roots its chain must end in.
    pub roots: TrustRoots,
}

/// Why TLS could not be set up (a configuration error, before any query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    /// The `--ca` / `ca` file is unusable.
    #[error("CA file {}: {why}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A certificate of the CA file is not a usable trust anchor.
    #[error("CA file {}: certificate {index}: {why}", path.display())]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// Its position in the file (1-based).
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// No system roots could be loaded.
    #[error("no system TLS roots could be loaded ({0}); give a CA file with --ca")]
    NoSystemRoots(String),
    /// A DoH server at an IPv6 address without a certificate name: hickory
    /// 0.26 uses the name as the HTTP/2 `:authority` without brackets, which
    /// a bare IPv6 address cannot be.
    #[error("{0}: DNS over HTTPS to an IPv6 address needs a certificate name (--tls-name or dns.tls_name)")]
    DohIpv6NeedsName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// The rustls client configuration for `tls`: ring as the crypto provider,
/// TLS 1.2 and 1.3 (QUIC uses 1.3 only), no client certificate. ALPN is
/// left empty: hickory sets `h2` for DoH and `doq` for DoQ itself when it is
/// empty, and DoT needs none.
pub fn client_config(tls: &TlsOptions) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.roots {
        TrustRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = if found.errors.is_empty() {
                    "none found".to_owned()
                } else {
                    found
                        .errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(TlsSetupError::NoSystemRoots(why));
            }
        }
        TrustRoots::Private(bundle) => {
            for (i, cert) in bundle.certs.iter().enumerate() {
                roots
                    .add(cert.clone())
                    .map_err(|e| TlsSetupError::CaCertificate {
                        path: bundle.path.clone(),
                        index: i + 1,
                        why: e.to_string(),
                    })?;
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// Checks that every server can be spoken to with `tls` (see
/// [`TlsSetupError::DohIpv6NeedsName`]).
pub fn check_servers(servers: &[ServerSpec], tls: &TlsOptions) -> Result<(), TlsSetupError> {
    if tls.name.is_none() {
        if let Some(s) = servers
            .iter()
            .find(|s| matches!(s.transport, Transport::Https(_)) && s.addr.is_ipv6())
        {
            return Err(TlsSetupError::DohIpv6NeedsName(s.to_string()));
        }
    }
    Ok(())
}

/// Adds an EDNS Padding option (RFC 7830, code 12) to `request` so that its
/// encoding is a multiple of [`QUERY_PADDING_BLOCK`] octets (RFC 8467's
/// block-length policy). An OPT record is added if the request has none; a
/// padding option already present is replaced. A request that cannot be
/// encoded is left alone (sending it fails the same way).
pub fn pad_request(request: &mut DnsRequest) {
    let edns = request.edns.get_or_insert_with(Edns::new);
    edns.options_mut().remove(EdnsCode::Padding);
    // Measure with an empty option: its 4 header octets are part of the
    // size to round up.
    edns.options_mut().insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Padding),
        Vec::new(),
    ));
    let Ok(len) = request.to_vec().map(|v| v.len()) else {
        return;
    };
    let pad = (QUERY_PADDING_BLOCK - len % QUERY_PADDING_BLOCK) % QUERY_PADDING_BLOCK;
    if len + pad > usize::from(u16::MAX) {
        return;
    }
    if let Some(edns) = request.edns.as_mut() {
        edns.options_mut().remove(EdnsCode::Padding);
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Padding),
            vec![0; pad],
        ));
    }
}

/// Why connections to encrypted servers failed lately, by server.
type FailureLog = Arc<Mutex<HashMap<String, (Instant, String)>>>;

/// The connection provider of [`crate::Resolver`]: hickory's Tokio
/// connections, plus, on TLS, HTTPS and QUIC connections only, query
/// padding, a handshake bounded by the DNS timeout, and a record of why a
/// connection or exchange failed (see [`Transports::explain`]).
///
/// hickory's name server pool reduces every connection failure to
/// "no connections available" or "request timed out" (it has to keep I/O
/// errors failing over to the next server), which would hide a bad
/// certificate behind a generic message. The reasons are kept here instead,
/// one per server (the latest), so their number is bounded by the servers
/// configured.
#[derive(Clone)]
pub struct Transports {
    inner: TokioRuntimeProvider,
    handshake_timeout: Duration,
    failures: FailureLog,
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transports")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Transports {
    /// A provider whose TLS/QUIC handshakes must complete within
    /// `handshake_timeout` (the resolver's DNS timeout).
    pub fn new(handshake_timeout: Duration) -> Self {
        Transports {
            inner: TokioRuntimeProvider::default(),
            handshake_timeout,
            failures: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn record(&self, server: &str, reason: String) {
        tracing::debug!(server, reason = %reason, "encrypted DNS connection failed");
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(server.to_owned(), (Instant::now(), reason));
    }

    /// The message for a query that started at `since` and got no answer
    /// within `deadline`, with the reasons encrypted servers failed since.
    pub fn explain_deadline(&self, deadline: Duration, since: Instant) -> String {
        let reasons = self.reasons_since(since);
        if reasons.is_empty() {
            format!("no answer within {deadline:?}")
        } else {
            format!("no answer within {deadline:?}; {}", reasons.join("; "))
        }
    }

    fn reasons_since(&self, since: Instant) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, (at, _))| *at >= since)
            .map(|(server, (_, why))| format!("{server}: {why}"))
            .collect();
        reasons.sort();
        reasons
    }

    /// The message for a failed query that started at `since`: when
    /// encrypted servers failed since then, their reasons (e.g.
    /// `tls://127.0.0.1:853: certificate not trusted: UnknownIssuer`) in
    /// place of hickory's generic connection errors, or next to an error
    /// that carries a server's answer; otherwise hickory's message.
    pub fn explain(&self, error: &NetError, since: Instant) -> String {
        let reasons = self.reasons_since(since);
        if reasons.is_empty() {
            return error.to_string();
        }
        match error {
            NetError::NoConnections | NetError::Io(_) | NetError::Timeout => reasons.join("; "),
            other => format!("{other}; {}", reasons.join("; ")),
        }
    }
}

/// How `config` is written as a server spec, for messages.
fn describe(ip: IpAddr, config: &ConnectionConfig) -> String {
    let addr = SocketAddr::new(ip, config.port);
    match &config.protocol {
        ProtocolConfig::Tls { .. } => format!("tls://{addr}"),
        ProtocolConfig::Https { path, .. } => format!("https://{addr}{path}"),
        ProtocolConfig::Quic { .. } => format!("quic://{addr}"),
        _ => addr.to_string(),
    }
}

/// A connection failure in words a user can act on.
pub fn failure_reason(error: &NetError, server_name: &str) -> String {
    if let Some(tls) = find_rustls_error(error) {
        return tls_reason(tls, server_name);
    }
    match error {
        NetError::Io(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                format!("the connection closed during the TLS handshake (not a TLS server?): {io}")
            }
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    }
}

fn tls_reason(error: &rustls::Error, server_name: &str) -> String {
    use rustls::{CertificateError, Error};
    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate not trusted: UnknownIssuer (not issued by a trusted CA)".to_owned()
        }
        Error::InvalidCertificate(
            e @ (CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }),
        ) => format!("certificate not valid for the name {server_name}: {e:?}"),
        Error::InvalidCertificate(e) => format!("certificate rejected: {e:?}"),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            format!("not a TLS server (the TLS handshake failed: {error})")
        }
        Error::AlertReceived(alert) => {
            format!("the server refused the TLS handshake (alert {alert:?})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// The rustls error behind `error`, if any: hickory wraps it in an I/O
/// error (tokio-rustls) or carries it directly.
fn find_rustls_error(error: &NetError) -> Option<&rustls::Error> {
    if let NetError::RustlsError(e) = error {
        return Some(e);
    }
    let NetError::Io(io) = error else {
        return None;
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = io
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cur = e.source();
    }
    None
}

/// A reason from the text of a QUIC error (quinn reports the TLS alert or
/// rustls error as text), or the generic one.
fn quic_reason(error: &NetError, server_name: &str) -> String {
    let text = error.to_string();
    if find_rustls_error(error).is_none() && text.contains("UnknownIssuer") {
        return format!("certificate not trusted: UnknownIssuer (QUIC: {text})");
    }
    if find_rustls_error(error).is_none() && text.contains("NotValidForName") {
        return format!("certificate not valid for the name {server_name} (QUIC: {text})");
    }
    failure_reason(error, server_name)
}

type ConnFuture = Pin<Box<dyn Future<Output = Result<Padded, NetError>> + Send + 'static>>;

impl ConnectionProvider for Transports {
    type Conn = Padded;
    type FutureConn = ConnFuture;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        cx: &PoolContext,
    ) -> Result<Self::FutureConn, NetError> {
        let (encrypted, quic, server_name) = match &config.protocol {
            ProtocolConfig::Udp | ProtocolConfig::Tcp => (false, false, String::new()),
            ProtocolConfig::Tls { server_name } | ProtocolConfig::Https { server_name, .. } => {
                (true, false, server_name.to_string())
            }
            ProtocolConfig::Quic { server_name } => (true, true, server_name.to_string()),
            #[allow(unreachable_patterns)]
            _ => (true, true, String::new()),
        };
        let connecting = ConnectionProvider::new_connection(&self.inner, ip, config, cx)
            .inspect_err(|e| {
                if encrypted {
                    self.record(&describe(ip, config), failure_reason(e, &server_name));
                }
            })?;
        if !encrypted {
            return Ok(Box::pin(async move {
                connecting.await.map(|inner| Padded {
                    inner,
                    failures: None,
                })
            }));
        }
        let server = describe(ip, config);
        let me = self.clone();
        let limit = self.handshake_timeout;
        Ok(Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(Ok(inner)) => Ok(Padded {
                    inner,
                    failures: Some((server, me)),
                }),
                Ok(Err(e)) => {
                    let why = if quic {
                        quic_reason(&e, &server_name)
                    } else {
                        failure_reason(&e, &server_name)
                    };
                    me.record(&server, why);
                    Err(e)
                }
                Err(_) => {
                    me.record(
                        &server,
                        format!(
                            "no TLS handshake within {limit:?} (not a TLS server, or unreachable?)"
                        ),
                    );
                    Err(NetError::Timeout)
                }
            }
        }))
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.inner
    }
}

/// A connection of [`Transports`]: pads every query when it is encrypted,
/// and records failed exchanges of encrypted connections.
#[derive(Clone)]
pub struct Padded {
    inner: DnsExchange<TokioRuntimeProvider>,
    /// The server (as a spec) and where to record failures; `None` on
    /// plain connections, which are neither padded nor recorded.
    failures: Option<(String, Transports)>,
}

impl DnsHandle for Padded {
    type Response = BoxStream<'static, Result<DnsResponse, NetError>>;
    type Runtime = TokioRuntimeProvider;

    fn is_verifying_dnssec(&self) -> bool {
        self.inner.is_verifying_dnssec()
    }

    fn is_using_edns(&self) -> bool {
        self.inner.is_using_edns()
    }

    fn send(&self, mut request: DnsRequest) -> Self::Response {
        let Some((server, transports)) = self.failures.clone() else {
            return self.inner.send(request).boxed();
        };
        pad_request(&mut request);
        self.inner
            .send(request)
            .map(move |r| {
                if let Err(e) = &r {
                    transports.record(&server, failure_reason(e, ""));
                }
                r
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{DnsRequestOptions, Message, Query};
    use hickory_resolver::proto::rr::{Name, RecordType};

    fn spec(s: &str) -> ServerSpec {
        ServerSpec::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn server_specs() {
        assert_eq!(
            spec("192.0.2.1"),
            ServerSpec::plain("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(spec("192.0.2.1:5353").to_string(), "192.0.2.1:5353");
        assert_eq!(spec("[::1]:5353").to_string(), "[::1]:5353");
        assert_eq!(spec("::1").to_string(), "[::1]:53");
        assert_eq!(spec("tls://127.0.0.1").to_string(), "tls://127.0.0.1:853");
        assert_eq!(
            spec("tls://127.0.0.1:8853").to_string(),
            "tls://127.0.0.1:8853"
        );
        assert_eq!(spec("TLS://[::1]:853").to_string(), "tls://[::1]:853");
        assert_eq!(spec("tls://[::1]").to_string(), "tls://[::1]:853");
        assert_eq!(spec("quic://127.0.0.1").to_string(), "quic://127.0.0.1:853");
        assert_eq!(
            spec("https://127.0.0.1").to_string(),
            "https://127.0.0.1:443/dns-query"
        );
        assert_eq!(
            spec("https://127.0.0.1:8443/resolve").to_string(),
            "https://127.0.0.1:8443/resolve"
        );
        assert_eq!(
            spec("https://[2001:db8::1]:8443/dns-query"),
            ServerSpec::new(
                "[2001:db8::1]:8443".parse().unwrap(),
                Transport::Https(DohPath::parse("/dns-query").unwrap())
            )
        );
        assert!(spec("quic://127.0.0.1").transport().is_encrypted());
        assert!(!spec("127.0.0.1").transport().is_encrypted());
        // What is written back parses to the same.
        for s in ["tls://[::1]:853", "https://127.0.0.1:443/x", "10.0.0.1:53"] {
            assert_eq!(spec(&spec(s).to_string()), spec(s));
        }
    }

    #[test]
    fn bad_server_specs_name_the_argument() {
        for (input, why) in [
            ("dns.example.net", "is not IP"),
            ("tls://dns.example.net:853", "is not IP"),
            ("udp://127.0.0.1", "unknown scheme \"udp\""),
            ("tls://127.0.0.1:99999", "is not IP"),
            ("tls://127.0.0.1:0", "port 0"),
            ("tls://", "no address"),
            ("tls://127.0.0.1/dns-query", "takes no path"),
            ("https://127.0.0.1/a b", "contains ' '"),
            ("https://127.0.0.1/a#frag", "contains '#'"),
            ("[::1]853", "is not IP"),
        ] {
            let e = ServerSpec::parse(input).expect_err(input).to_string();
            assert!(e.starts_with(&format!("{input:?}: ")), "{e}");
            assert!(e.contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn name_server_configs() {
        let ns = spec("tls://127.0.0.1:8853").name_server_config(None);
        assert_eq!(ns.connections.len(), 1);
        assert_eq!(ns.connections[0].port, 8853);
        assert_eq!(
            ns.connections[0].protocol,
            ProtocolConfig::Tls {
                server_name: Arc::from("127.0.0.1")
            }
        );
        let name = TlsName::parse("dns.example.net").unwrap();
        let ns = spec("https://[::1]:8443/q").name_server_config(Some(&name));
        assert_eq!(
            ns.connections[0].protocol,
            ProtocolConfig::Https {
                server_name: Arc::from("dns.example.net"),
                path: Arc::from("/q")
            }
        );
        let ns = spec("127.0.0.1:5300").name_server_config(Some(&name));
        assert_eq!(ns.connections.len(), 2);
        assert!(ns.connections.iter().all(|c| c.port == 5300));
    }

    #[test]
    fn doh_to_ipv6_needs_a_name() {
        let servers = [spec("tls://[::1]"), spec("https://[::1]:8443/dns-query")];
        let e = check_servers(&servers, &TlsOptions::default()).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "https://[::1]:8443/dns-query: DNS over HTTPS to an IPv6 address needs"
            ),
            "{e}"
        );
        let named = TlsOptions {
            name: Some(TlsName::parse("dns.example.net").unwrap()),
            ..TlsOptions::default()
        };
        assert!(check_servers(&servers, &named).is_ok());
        assert!(check_servers(&[spec("https://127.0.0.1")], &TlsOptions::default()).is_ok());
    }

    #[test]
    fn tls_names() {
        assert_eq!(
            TlsName::parse("dns.example.net").unwrap().to_string(),
            "dns.example.net"
        );
        assert_eq!(
            TlsName::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1"
        );
        assert!(TlsName::parse("not a name").is_err());
        assert!(TlsName::parse("").is_err());
    }

    fn request(name: &str, options: DnsRequestOptions) -> DnsRequest {
        DnsRequest::from_query(
            Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT),
            options,
        )
    }

    fn padding_of(bytes: &[u8]) -> Option<usize> {
        let m = Message::from_vec(bytes).unwrap();
        match m.edns?.option(EdnsCode::Padding)? {
            EdnsOption::Unknown(12, data) => {
                assert!(data.iter().all(|b| *b == 0));
                Some(data.len())
            }
            other => panic!("{other:?}"),
        }
    }

    /// Every query length from a short name to a long one is padded to a
    /// multiple of 128, with the smallest padding that does it.
    #[test]
    fn padding_rounds_up_to_128() {
        for n in 1..=200usize {
            let label = "a".repeat(n.min(63));
            let extra = if n > 63 {
                format!(".{}", "b".repeat((n - 63).min(63)))
            } else {
                String::new()
            };
            let name = format!("{label}{extra}.3b._mimi.example.com.");
            let mut r = request(&name, DnsRequestOptions::default());
            let unpadded_with_option = {
                let mut m = r.clone();
                m.edns
                    .as_mut()
                    .unwrap()
                    .options_mut()
                    .insert(EdnsOption::Unknown(12, vec![]));
                m.to_vec().unwrap().len()
            };
            pad_request(&mut r);
            let bytes = r.to_vec().unwrap();
            assert_eq!(bytes.len() % QUERY_PADDING_BLOCK, 0, "{name}");
            let pad = padding_of(&bytes).expect("a padding option");
            assert!(pad < QUERY_PADDING_BLOCK, "{pad}");
            assert_eq!(unpadded_with_option + pad, bytes.len());
            // Padding again (a retry) does not grow it.
            pad_request(&mut r);
            assert_eq!(r.to_vec().unwrap(), bytes);
        }
    }

    /// A query without EDNS gets an OPT record to carry the padding.
    #[test]
    fn padding_adds_edns_when_missing() {
        let mut options = DnsRequestOptions::default();
        options.use_edns = false;
        let mut r = request("x.example.", options);
        assert!(r.edns.is_none());
        pad_request(&mut r);
        let bytes = r.to_vec().unwrap();
        assert_eq!(bytes.len(), 128);
        assert!(padding_of(&bytes).is_some());
    }

    #[test]
    fn ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = CaBundle::load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = CaBundle::load(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let key_only = dir.path().join("key.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_only, key.serialize_pem()).unwrap();
        let e = CaBundle::load(&key_only).unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("no CERTIFICATE"), "{e}");
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let e = CaBundle::load(&broken).unwrap_err().to_string();
        assert!(
            e.contains("broken.pem") && e.contains("not a PEM file"),
            "{e}"
        );

        let ca = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).unwrap();
        let bundle = CaBundle::load(&good).unwrap();
        assert_eq!(bundle.certificates().len(), 1);
        let config = client_config(&TlsOptions {
            name: None,
            roots: TrustRoots::Private(bundle),
        })
        .unwrap();
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn reasons_for_tls_failures() {
        let io = |e: rustls::Error| {
            NetError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let r = failure_reason(
            &io(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            "127.0.0.1",
        );
        assert!(
            r.starts_with("certificate not trusted: UnknownIssuer"),
            "{r}"
        );
        let r = failure_reason(
            &io(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            )),
            "dns.example.net",
        );
        assert!(
            r.starts_with("certificate not valid for the name dns.example.net"),
            "{r}"
        );
        let r = failure_reason(
            &NetError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            "x",
        );
        assert!(r.contains("not a TLS server?"), "{r}");

        let t = Transports::new(Duration::from_secs(1));
        let before = Instant::now();
        assert_eq!(
            t.explain(&NetError::NoConnections, before),
            "no connections available"
        );
        t.record(
            "tls://127.0.0.1:853",
            "certificate not trusted: UnknownIssuer".into(),
        );
        assert_eq!(
            t.explain(&NetError::NoConnections, before),
            "tls://127.0.0.1:853: certificate not trusted: UnknownIssuer"
        );
        assert_eq!(
            t.explain_deadline(Duration::from_secs(5), before),
            "no answer within 5s; tls://127.0.0.1:853: certificate not trusted: UnknownIssuer"
        );
        // Failures before the query began are not its reasons.
        assert_eq!(
            t.explain(&NetError::Timeout, Instant::now() + Duration::from_secs(1)),
            "request timed out"
        );
    }
}
