//! The server's TLS certificate and key: loaded from PEM files, checked
//! to belong together, and replaced atomically when the files change.
//!
//! One [`CertStore`] is shared by every encrypted listener (TLS, HTTPS,
//! QUIC): rustls asks it for the certificate at each handshake
//! ([`ResolvesServerCert`]), and it answers with whatever pair is current
//! in its [`ArcSwap`]. A reload therefore changes what *new* handshakes
//! present; connections already established keep their session and are
//! never dropped.
//!
//! A reload installs a pair only when both files are complete (each ends
//! with a newline, as every PEM writer leaves it), parse, and the key is
//! the certificate's (`CertifiedKey::keys_match`). Anything else keeps the
//! pair in service and is logged: an ACME client that renames the new
//! certificate and then the new key leaves, between the two renames, a
//! new certificate beside the old key; that mismatch is reported as a
//! wait, and the second rename is another file event that installs the
//! pair.
//!
//! The key file obeys the rule of the signing keys
//! ([`crate::input::secret::read_secret`]): a regular file, no symbolic
//! link, not readable by group or others.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::input::complete::INCOMPLETE;
use crate::input::secret::{read_secret, SecretFileError};
use crate::serve::watch::normalize;

/// The largest certificate chain file read: far above any real chain, so
/// that a wrong path (a log file, a device) cannot make us read gigabytes.
pub const MAX_CERT_FILE: u64 = 1 << 20;

/// Where the certificate chain and its private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM file of the certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM file of the private key (PKCS#8, SEC1 or PKCS#1), mode 0600.
    pub key: PathBuf,
}

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file cannot be read.
    #[error("{}: cannot read the TLS certificate: {source}", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The certificate file is larger than [`MAX_CERT_FILE`].
    #[error("{}: is larger than {MAX_CERT_FILE} octets; not a certificate chain", path.display())]
    TooLarge {
        /// File.
        path: PathBuf,
    },
    /// The file does not end with a newline: it may still be being
    /// written.
    #[error("{}: {INCOMPLETE}", path.display())]
    Incomplete {
        /// File.
        path: PathBuf,
    },
    /// The file is not valid PEM.
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem {
        /// File.
        path: PathBuf,
        /// What the PEM parser found.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{}: holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)", path.display())]
    NoCertificate {
        /// File.
        path: PathBuf,
    },
    /// The key file cannot be read or has the wrong permissions.
    #[error(transparent)]
    KeyFile(#[from] SecretFileError),
    /// The key file holds no private key.
    #[error("{}: holds no private key (expected PEM \"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\")", path.display())]
    NoKey {
        /// File.
        path: PathBuf,
    },
    /// The key is of a type rustls cannot sign with.
    #[error("{}: unsupported private key: {reason}", path.display())]
    UnsupportedKey {
        /// File.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{} is not the key of the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The server's certificate cannot be parsed.
    #[error("{}: the first certificate cannot be used: {reason}", path.display())]
    BadCertificate {
        /// File.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> CertError {
    CertError::Pem {
        path: path.to_owned(),
        reason: format!("{e:?}"),
    }
}

/// Reads the certificate chain at `path`: complete, bounded, at least one
/// certificate.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let read = |source| CertError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_CERT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_CERT_FILE {
        return Err(CertError::TooLarge {
            path: path.to_owned(),
        });
    }
    if !bytes.ends_with(b"\n") {
        return Err(CertError::Incomplete {
            path: path.to_owned(),
        });
    }
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Reads the private key at `path` (0600 rule, complete).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let text = read_secret(path, "TLS private key")?;
    if !text.ends_with('\n') {
        return Err(CertError::Incomplete {
            path: path.to_owned(),
        });
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            path: path.to_owned(),
        },
        e => pem_error(path, e),
    })
}

/// Loads the pair at `paths` and checks that the key is the certificate's.
pub fn load(paths: &CertPaths) -> Result<CertifiedKey, CertError> {
    let chain = read_chain(&paths.cert)?;
    let der = read_key(&paths.key)?;
    let key = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| {
        CertError::UnsupportedKey {
            path: paths.key.clone(),
            reason: e.to_string(),
        }
    })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // Every key type ring signs with reports its public key; a key
        // that cannot is not compared rather than refused.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::Mismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            })
        }
        Err(e) => Err(CertError::BadCertificate {
            path: paths.cert.clone(),
            reason: e.to_string(),
        }),
    }
}

/// What a reload of the certificate files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertEvent {
    /// A new pair is in service: new handshakes present it.
    Installed,
    /// The files could not be used (the reason); the pair in service
    /// stays.
    Kept(String),
}

/// The certificate in service, shared by every encrypted listener.
pub struct CertStore {
    paths: CertPaths,
    current: ArcSwap<CertifiedKey>,
    events: broadcast::Sender<CertEvent>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the pair at `paths`; an error here stops the server from
    /// starting.
    pub fn open(paths: CertPaths) -> Result<Arc<Self>, CertError> {
        let first = load(&paths)?;
        Ok(Arc::new(CertStore {
            paths,
            current: ArcSwap::from_pointee(first),
            events: broadcast::channel(16).0,
        }))
    }

    /// The pair in service now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Receives a [`CertEvent`] for every reload from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }

    /// Reads the files again and installs the pair if it is usable and
    /// differs from the one in service; otherwise keeps serving the one in
    /// service and says why.
    pub fn reload(&self) {
        match load(&self.paths) {
            Ok(new) => {
                if new.cert == self.current.load().cert {
                    debug!("TLS certificate files unchanged");
                    return;
                }
                self.current.store(Arc::new(new));
                info!(cert = %self.paths.cert.display(), "TLS certificate reloaded");
                let _ = self.events.send(CertEvent::Installed);
            }
            Err(e) => {
                warn!("{e}; keeping the TLS certificate in service until the files change again");
                let _ = self.events.send(CertEvent::Kept(e.to_string()));
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Watches the certificate and key files and reloads the store when one
/// changes. As [`crate::serve::watch`] does for zone inputs, it watches
/// the *directories* holding them, since renewals replace files by
/// renaming new ones over them.
pub(crate) struct CertWatcher {
    debouncer: Mutex<Option<Debouncer<RecommendedWatcher, RecommendedCache>>>,
}

impl CertWatcher {
    /// Starts watching for `store`, reloading once the files have been
    /// quiet for `debounce`.
    pub(crate) fn spawn(store: Arc<CertStore>, debounce: Duration) -> Result<Self, notify::Error> {
        let files = [normalize(&store.paths.cert), normalize(&store.paths.key)];
        let dirs: std::collections::BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let handler = move |result: DebounceEventResult| {
            let hit = match result {
                Ok(events) => events.iter().any(|event| {
                    if let EventKind::Access(kind) = event.kind {
                        if kind != AccessKind::Close(AccessMode::Write) {
                            return false;
                        }
                    }
                    event.need_rescan() || event.paths.iter().any(|p| files.contains(&normalize(p)))
                }),
                Err(errors) => {
                    for e in errors {
                        warn!("certificate watch error: {e}");
                    }
                    true
                }
            };
            if hit {
                store.reload();
            }
        };
        let mut debouncer = new_debouncer(debounce, None, handler)?;
        for dir in &dirs {
            debouncer.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(CertWatcher {
            debouncer: Mutex::new(Some(debouncer)),
        })
    }

    /// Stops watching (blocks until the watcher's thread ends).
    pub(crate) fn stop(&self) {
        let debouncer = self
            .debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(d) = debouncer {
            d.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pair(dir: &Path, name: &str) -> CertPaths {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let paths = CertPaths {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&paths.cert, cert.pem()).unwrap();
        std::fs::write(&paths.key, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&paths.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        paths
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair(dir.path(), "a");
        assert_eq!(load(&p).unwrap().cert.len(), 1);
    }

    #[test]
    fn a_mismatched_pair_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let mixed = CertPaths {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = load(&mixed).unwrap_err();
        assert!(matches!(e, CertError::Mismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("b.key") && msg.contains("a.crt"), "{msg}");
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair(dir.path(), "a");
        std::fs::set_permissions(&p.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&p).unwrap_err();
        assert!(
            matches!(e, CertError::KeyFile(SecretFileError::Permissions { .. })),
            "{e}"
        );
    }

    #[test]
    fn half_written_and_empty_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair(dir.path(), "a");
        let text = std::fs::read_to_string(&p.cert).unwrap();
        std::fs::write(&p.cert, &text[..text.len() / 2]).unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, CertError::Incomplete { .. }), "{e}");
        assert!(e.to_string().contains("a.crt"));
        std::fs::write(&p.cert, "no pem here\n").unwrap();
        assert!(matches!(
            load(&p).unwrap_err(),
            CertError::NoCertificate { .. }
        ));
        std::fs::write(&p.cert, &text).unwrap();
        std::fs::write(&p.key, "nothing\n").unwrap();
        assert!(matches!(load(&p).unwrap_err(), CertError::NoKey { .. }));
    }

    #[test]
    fn pkcs8_sec1_and_pkcs1_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        // rcgen writes PKCS#8; SEC1 and PKCS#1 come from openssl, which
        // converts the same key.
        let p = pair(dir.path(), "a");
        assert!(load(&p).is_ok());
        let Ok(out) = std::process::Command::new("openssl")
            .args(["ec", "-in"])
            .arg(&p.key)
            .output()
        else {
            panic!("openssl is needed to convert the key to SEC1");
        };
        let sec1 = String::from_utf8(out.stdout).unwrap();
        assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
        std::fs::write(&p.key, &sec1).unwrap();
        assert!(load(&p).is_ok());
        let rsa_key = dir.path().join("rsa.key");
        let ok = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&rsa_key)
            .arg("2048")
            .output()
            .unwrap();
        assert!(ok.status.success());
        let rsa = std::fs::read_to_string(&rsa_key).unwrap();
        assert!(rsa.contains("BEGIN RSA PRIVATE KEY"), "{rsa}");
        let der = PrivateKeyDer::from_pem_slice(rsa.as_bytes()).unwrap();
        assert!(matches!(der, PrivateKeyDer::Pkcs1(_)));
        assert!(rustls::crypto::ring::sign::any_supported_type(&der).is_ok());
    }
}
