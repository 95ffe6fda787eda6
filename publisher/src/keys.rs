//! Ed25519 key files: PKCS#8 PEM, as `openssl genpkey -algorithm ed25519`
//! writes them.
//!
//! Private keys are written with mode 0600, and a private key file that
//! group or others can read is refused: a signing key that leaked lets
//! anyone assert mappings in the authority's name until it expires.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use mimi_proto::PublicKey;

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Readable by group or others.
    #[error("{path}: private key is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// File.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// Not a PKCS#8 PEM Ed25519 private key.
    #[error("{path}: not a PKCS#8 PEM Ed25519 private key ({why})")]
    Format {
        /// File.
        path: PathBuf,
        /// Decoder message.
        why: String,
    },
    /// The key is weak (cannot happen for a real private key, but checked).
    #[error("{path}: {why}")]
    Weak {
        /// File.
        path: PathBuf,
        /// Reason.
        why: String,
    },
    /// Refusing to overwrite an existing key.
    #[error("{0}: already exists; refusing to overwrite a key (remove it first)")]
    Exists(PathBuf),
}

/// Generates a new signing key from the operating system's RNG.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Reads a private key, refusing files readable by group or others.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let pem = std::fs::read_to_string(path).map_err(io)?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyFileError::Format {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    public_key(&key).map_err(|e| KeyFileError::Weak {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    Ok(key)
}

/// Writes a private key as PKCS#8 PEM with mode 0600, creating the file
/// exclusively (an existing key is never overwritten).
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyFileError::Format {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    f.write_all(pem.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The public half of a signing key, as the format crate's checked type.
pub fn public_key(key: &SigningKey) -> Result<PublicKey, mimi_proto::key::KeyError> {
    PublicKey::from_verifying_key(key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        let k = generate();
        write_signing_key(&p, &k).unwrap();
        assert!(matches!(
            write_signing_key(&p, &k),
            Err(KeyFileError::Exists(_))
        ));
        let back = load_signing_key(&p).unwrap();
        assert_eq!(back.to_bytes(), k.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_signing_key(&p).unwrap_err();
            assert!(
                matches!(e, KeyFileError::Permissions { mode: 0o644, .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn openssl_style_pem_is_accepted_and_garbage_is_not() {
        // RFC 8410 §10.3 example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.pem");
        let q = dir.path().join("bad.pem");
        for (path, text) in [(&p, pem), (&q, "not a key")] {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            opts.open(path).unwrap().write_all(text.as_bytes()).unwrap();
        }
        assert!(load_signing_key(&p).is_ok());
        assert!(matches!(
            load_signing_key(&q),
            Err(KeyFileError::Format { .. })
        ));
    }
}
