//! Ed25519 key files: PKCS#8 PEM, as `openssl genpkey -algorithm ed25519`
//! writes them.
//!
//! Keys are written in the PKCS#8 v1 form (RFC 8410 §7: `OneAsymmetricKey`
//! version 0, the private key only), exactly what OpenSSL writes: the v2
//! form with the public key appended is rejected by OpenSSL 3 ("unsupported")
//! and Python's `cryptography` ("extra data"), and a key every other tool can
//! read is one an operator can inspect, back up and convert. Both forms are
//! read; a v2 file whose public key is not the private key's is refused.
//!
//! Private keys are written with mode 0600, and a private key file that
//! group or others can read is refused ([`crate::input::secret::read_secret`]): a
//! signing key that leaked lets anyone assert mappings in the authority's
//! name until it expires.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use mimi_proto::PublicKey;

use crate::input::secret::{read_secret, SecretFileError};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// I/O failure while writing.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file cannot be read as a secret (permissions, symbolic link,
    /// not a regular file, too large).
    #[error(transparent)]
    Secret(#[from] SecretFileError),
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

/// Reads a private key (PKCS#8 v1 or v2 PEM), refusing files readable by
/// group or others, symbolic links and anything but a small regular file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let pem = read_secret(path, "private key")?;
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

/// The PKCS#8 v1 PEM text of a private key (what `openssl genpkey
/// -algorithm ed25519` writes: no public key in the file).
pub fn to_pem(key: &SigningKey) -> Result<String, ed25519_dalek::pkcs8::Error> {
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    Ok(v1.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

/// Writes a private key as PKCS#8 v1 PEM with mode 0600, creating the file
/// exclusively (an existing key is never overwritten).
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let pem = to_pem(key).map_err(|e| KeyFileError::Format {
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
                matches!(
                    e,
                    KeyFileError::Secret(SecretFileError::Permissions { mode: 0o644, .. })
                ),
                "{e}"
            );
        }
    }

    fn write_private(path: &Path, text: &str) {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn writes_v1_and_reads_v1_and_v2() {
        let k = SigningKey::from_bytes(&[5u8; 32]);
        // v1: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING } of
        // 48 octets, as OpenSSL writes (base64 of 30 2e 02 01 00 …).
        let pem = to_pem(&k).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAw"),
            "{pem}"
        );
        assert_eq!(
            SigningKey::from_pkcs8_pem(&pem).unwrap().to_bytes(),
            k.to_bytes()
        );
        let dir = tempfile::tempdir().unwrap();
        // v2 (with the public key), as earlier versions wrote: still read.
        let v2 = k.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(v2.contains("MFECAQEw"), "{}", v2.as_str());
        write_private(&dir.path().join("v2.pem"), &v2);
        let back = load_signing_key(&dir.path().join("v2.pem")).unwrap();
        assert_eq!(back.to_bytes(), k.to_bytes());
        // v2 whose public key is another key's: refused.
        let wrong = KeypairBytes {
            secret_key: k.to_bytes(),
            public_key: Some(ed25519_dalek::pkcs8::PublicKeyBytes(
                SigningKey::from_bytes(&[6u8; 32])
                    .verifying_key()
                    .to_bytes(),
            )),
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        write_private(&dir.path().join("wrong.pem"), &wrong);
        assert!(matches!(
            load_signing_key(&dir.path().join("wrong.pem")),
            Err(KeyFileError::Format { .. })
        ));
    }

    #[test]
    fn openssl_style_pem_is_accepted_and_garbage_is_not() {
        // RFC 8410 §10.3 example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.pem");
        let q = dir.path().join("bad.pem");
        for (path, text) in [(&p, pem), (&q, "not a key")] {
            write_private(path, text);
        }
        assert!(load_signing_key(&p).is_ok());
        assert!(matches!(
            load_signing_key(&q),
            Err(KeyFileError::Format { .. })
        ));
    }
}
