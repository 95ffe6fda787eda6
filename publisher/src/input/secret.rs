//! Reading secret files (Ed25519 private keys, TSIG keys) safely.
//!
//! A secret that group or others can read may already have leaked: a
//! leaked signing key lets anyone assert mappings in the authority's name
//! until it expires, a leaked TSIG key lets anyone rewrite the zone at the
//! primary. Such files are refused, with the `chmod` that fixes them.
//!
//! The checks are made on the opened file descriptor (`fstat` after `open`),
//! never by looking the path up twice (stat, then read): between the two, the
//! path could be made to point elsewhere. The last path component is not
//! followed if it is a symbolic link (`O_NOFOLLOW`), so a link planted in a
//! configuration directory cannot redirect the read; the descriptor is
//! close-on-exec (std opens every file so), and opened non-blocking so that
//! a FIFO planted at the path does not hang the publisher before it is
//! refused as not a regular file. Only regular files are read, and at most
//! [`MAX_SECRET_FILE`] octets of them: a key file is a few hundred octets,
//! and `/dev/zero` or a multi-gigabyte file must not be read whole.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest secret file read, in octets. PEM Ed25519 keys are about 120
/// octets and `tsig-keygen` output about 100; comments leave plenty of room.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The path is a symbolic link.
    #[error("{path}: is a symbolic link; {what} files are not read through symbolic links (name the file itself)")]
    Symlink {
        /// File.
        path: PathBuf,
        /// What the file holds ("private key", "TSIG key").
        what: &'static str,
    },
    /// Not a regular file (directory, device, FIFO, socket).
    #[error("{path}: is not a regular file; a {what} must be one")]
    NotRegular {
        /// File.
        path: PathBuf,
        /// What the file holds.
        what: &'static str,
    },
    /// Readable by group or others.
    #[error("{path}: {what} file is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// File.
        path: PathBuf,
        /// What the file holds.
        what: &'static str,
        /// The file's permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_SECRET_FILE`].
    #[error("{path}: is larger than {MAX_SECRET_FILE} octets; not a {what} file")]
    TooLarge {
        /// File.
        path: PathBuf,
        /// What the file holds.
        what: &'static str,
    },
    /// Not UTF-8 text.
    #[error("{path}: is not text; not a {what} file")]
    NotText {
        /// File.
        path: PathBuf,
        /// What the file holds.
        what: &'static str,
    },
}

impl SecretFileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SecretFileError::Io { path, .. }
            | SecretFileError::Symlink { path, .. }
            | SecretFileError::NotRegular { path, .. }
            | SecretFileError::Permissions { path, .. }
            | SecretFileError::TooLarge { path, .. }
            | SecretFileError::NotText { path, .. } => path,
        }
    }
}

/// Reads the secret file at `path` (holding a `what`, for messages): a
/// regular file, not a symbolic link, not readable by group or others, at
/// most [`MAX_SECRET_FILE`] octets of UTF-8 text.
pub fn read_secret(path: &Path, what: &'static str) -> Result<String, SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = opts.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return SecretFileError::Symlink {
                path: path.to_owned(),
                what,
            };
        }
        io(e)
    })?;
    // fstat: the file opened, not whatever the path names now.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SecretFileError::NotRegular {
            path: path.to_owned(),
            what,
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Permissions {
                path: path.to_owned(),
                what,
                mode,
            });
        }
    }
    // The size may change while reading: bound the read itself, not only
    // the size fstat reported.
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge {
            path: path.to_owned(),
            what,
        });
    }
    String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        path: path.to_owned(),
        what,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, text: &[u8], mode: u32) {
        std::fs::File::create(path)
            .unwrap()
            .write_all(text)
            .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_private_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write(&p, b"secret\n", 0o600);
        assert_eq!(read_secret(&p, "TSIG key").unwrap(), "secret\n");
        write(&p, b"secret\n", 0o400);
        assert!(read_secret(&p, "TSIG key").is_ok());
        for mode in [0o640, 0o604, 0o644, 0o660] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_secret(&p, "TSIG key").unwrap_err();
            assert!(matches!(e, SecretFileError::Permissions { mode: m, .. } if m == mode));
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn refuses_links_devices_directories_fifos_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        write(&target, b"secret", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_secret(&link, "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");

        // /dev/zero is mode 0666 and endless: refused before either matters.
        let e = read_secret(Path::new("/dev/zero"), "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::NotRegular { .. }), "{e}");
        let e = read_secret(dir.path(), "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::NotRegular { .. }), "{e}");

        // A FIFO without a writer would block a plain open: refused at once.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = read_secret(&fifo, "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::NotRegular { .. }), "{e}");

        let big = dir.path().join("big");
        write(&big, &vec![b'a'; MAX_SECRET_FILE as usize + 1], 0o600);
        let e = read_secret(&big, "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::TooLarge { .. }), "{e}");
        write(&big, &vec![b'a'; MAX_SECRET_FILE as usize], 0o600);
        assert!(read_secret(&big, "private key").is_ok());

        write(&big, &[0xff, 0xfe], 0o600);
        let e = read_secret(&big, "private key").unwrap_err();
        assert!(matches!(e, SecretFileError::NotText { .. }), "{e}");
    }
}
