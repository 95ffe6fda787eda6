//! Key ceremony bundles: a quarter's (or a year's) worth of signing keys,
//! each certified in advance by the offline root key for a staggered
//! window, so that a server can roll its signing key over by itself.
//!
//! This is the DNSSEC root zone's practice (key signing ceremonies that
//! sign the next quarter's keys in one sitting) applied to mimi-dns: the
//! root key is used once, on an offline machine, and never reaches the
//! server; the server gets only short-lived keys and their certificates.
//!
//! A bundle is a directory:
//!
//! ```text
//! bundle/
//!   certificates        one certificate record per line, in window order,
//!                       each after a comment with its window in UTC
//!   keys/<kid>.pem      the signing keys (PKCS#8 PEM, mode 0600, dir 0700)
//!   root.pub            the root public key (base64url), to check the
//!                       certificates against
//!   seal.key            a random secret (mode 0600) for the state-file
//!                       seal (crate::zone::seal): the same for every key
//!                       of the bundle, so that a key switch does not make
//!                       the server's own zone file untrusted
//! ```
//!
//! Key `i` of `n` is certified for `[start + i·step, start + i·step +
//! validity)` with `step = validity − overlap`: consecutive windows
//! overlap by `overlap`, which is the time the rollover has to publish the
//! next certificate, switch, and let the old key's assertions expire (see
//! `crate::build::rollover`). A later ceremony appends to the same
//! directory (`ceremony --out` on an existing bundle continues after its
//! last key), so a server's bundle only ever grows; key files whose
//! certificates have expired may be deleted.
//!
//! Everything here is read as hostile: each certificate must parse, be
//! for this authority, be signed by `root.pub` (and `root.pub` must be one
//! of the configuration's `root_keys` when those are given), be no longer
//! than resolvers accept, and match its key file's public half.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use mimi_proto::certificate::UnsignedCertificate;
use mimi_proto::{AuthorityName, Certificate, KeyId, PublicKey, UnixTime};

use crate::input::certs::MAX_KEY_VALIDITY;
use crate::input::keys;
use crate::input::problem::Problem;

/// The certificates file of a bundle.
pub const CERTIFICATES: &str = "certificates";
/// The directory of the signing keys.
pub const KEYS: &str = "keys";
/// The root public key file.
pub const ROOT: &str = "root.pub";
/// The seal secret file.
pub const SEAL: &str = "seal.key";

/// One key of a bundle.
#[derive(Debug)]
pub struct BundleKey {
    /// Its certificate.
    pub cert: Certificate,
    /// The line of the certificate in the certificates file.
    pub line: usize,
    /// The private key, if its file is present and sound; `Err` says why
    /// not (a key without its file can be published but never sign).
    pub key: Result<SigningKey, String>,
}

impl BundleKey {
    /// The key id.
    pub fn kid(&self) -> &KeyId {
        self.cert.kid()
    }
    /// Start of the certificate's window.
    pub fn not_before(&self) -> UnixTime {
        self.cert.not_before()
    }
    /// End of the certificate's window.
    pub fn expires(&self) -> UnixTime {
        self.cert.expires()
    }
}

/// A bundle as read from its directory.
#[derive(Debug)]
pub struct Bundle {
    /// The directory.
    pub dir: PathBuf,
    /// The root public key the certificates are signed by.
    pub root: PublicKey,
    /// The keys, sorted by window start (then key id).
    pub keys: Vec<BundleKey>,
    /// The seal secret, if the bundle has one.
    pub seal: Option<[u8; 32]>,
}

impl Bundle {
    /// The path of the certificates file.
    pub fn certificates_path(&self) -> PathBuf {
        self.dir.join(CERTIFICATES)
    }

    /// When the last certificate ends: after it nothing can sign.
    pub fn ends(&self) -> Option<UnixTime> {
        self.keys.iter().map(BundleKey::expires).max()
    }
}

/// Reads the bundle in `dir` for `authority`; `root_keys` are the
/// configuration's pinned root keys (empty: not checked). Every problem
/// found is returned, each with its file and line.
pub fn read(
    dir: &Path,
    authority: &AuthorityName,
    root_keys: &[PublicKey],
) -> Result<Bundle, Vec<Problem>> {
    let mut problems = Vec::new();
    let root_path = dir.join(ROOT);
    let root = match std::fs::read_to_string(&root_path) {
        Err(e) => {
            problems.push(Problem::in_file(
                &root_path,
                format!("cannot read the bundle's root public key: {e}"),
            ));
            None
        }
        Ok(text) => match PublicKey::from_base64url(text.trim()) {
            Err(e) => {
                problems.push(Problem::at(
                    &root_path,
                    1,
                    format!("not a base64url Ed25519 public key: {e}"),
                ));
                None
            }
            Ok(k) if !root_keys.is_empty() && !root_keys.contains(&k) => {
                problems.push(Problem::at(
                    &root_path,
                    1,
                    format!(
                        "root key {} is not one of authority.root_keys; clients pinning those would reject every certificate of this bundle",
                        k.kid()
                    ),
                ));
                None
            }
            Ok(k) => Some(k),
        },
    };
    let seal_path = dir.join(SEAL);
    let seal = match crate::input::secret::read_secret(&seal_path, "seal secret") {
        Ok(text) => match data_encoding::BASE64URL_NOPAD.decode(text.trim().as_bytes()) {
            Ok(b) if b.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&b);
                Some(s)
            }
            _ => {
                problems.push(Problem::at(
                    &seal_path,
                    1,
                    "not 32 octets in base64url".to_owned(),
                ));
                None
            }
        },
        Err(crate::input::secret::SecretFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => {
            problems.push(Problem::in_file(&seal_path, e.to_string()));
            None
        }
    };
    let certs_path = dir.join(CERTIFICATES);
    let mut keys_out: Vec<BundleKey> = Vec::new();
    match std::fs::read_to_string(&certs_path) {
        Err(e) => problems.push(Problem::in_file(
            &certs_path,
            format!("cannot read the bundle's certificates: {e}"),
        )),
        Ok(text) => {
            if let Err(p) = crate::input::complete::check(&certs_path, &text) {
                problems.push(p);
            } else {
                for (i, line) in text.lines().enumerate() {
                    let l = line.trim();
                    if l.is_empty() || l.starts_with('#') {
                        continue;
                    }
                    let mut bad = |m: String| problems.push(Problem::at(&certs_path, i + 1, m));
                    let cert = match Certificate::parse(l) {
                        Ok(c) => c,
                        Err(e) => {
                            bad(format!("malformed certificate: {e}"));
                            continue;
                        }
                    };
                    if let Some(why) = crate::input::certs::shape_problem(&cert, authority) {
                        bad(why);
                        continue;
                    }
                    if let Some(root) = &root {
                        if *cert.root_kid() != root.kid() || cert.verify(root).is_err() {
                            bad(format!(
                                "certificate for key {} does not verify under the bundle's root key {} ({ROOT}); it was signed by another root key or altered",
                                cert.kid(),
                                root.kid()
                            ));
                            continue;
                        }
                    }
                    if keys_out.iter().any(|k| k.kid() == cert.kid()) {
                        bad(format!(
                            "a second certificate for key {}; a bundle certifies each key once",
                            cert.kid()
                        ));
                        continue;
                    }
                    let key_path = dir.join(KEYS).join(format!("{}.pem", cert.kid()));
                    let key = match keys::load_signing_key(&key_path) {
                        Ok(k) if keys::public_key(&k).ok().as_ref() == Some(cert.key()) => Ok(k),
                        Ok(_) => {
                            problems.push(Problem::in_file(
                                &key_path,
                                format!(
                                    "this key is not the one certified for key {} (line {} of {CERTIFICATES})",
                                    cert.kid(),
                                    i + 1
                                ),
                            ));
                            continue;
                        }
                        Err(keys::KeyFileError::Secret(
                            crate::input::secret::SecretFileError::Io { source, .. },
                        )) if source.kind() == std::io::ErrorKind::NotFound => {
                            Err(format!("{} is missing", key_path.display()))
                        }
                        Err(e) => {
                            problems.push(Problem::in_file(&key_path, e.to_string()));
                            continue;
                        }
                    };
                    keys_out.push(BundleKey {
                        cert,
                        line: i + 1,
                        key,
                    });
                }
            }
        }
    }
    if problems.is_empty() && keys_out.is_empty() {
        problems.push(Problem::in_file(
            &certs_path,
            "the bundle holds no certificate".to_owned(),
        ));
    }
    match (problems.is_empty(), root) {
        (true, Some(root)) => {
            keys_out.sort_by(|a, b| (a.not_before(), a.kid()).cmp(&(b.not_before(), b.kid())));
            Ok(Bundle {
                dir: dir.to_owned(),
                root,
                keys: keys_out,
                seal,
            })
        }
        _ => Err(problems),
    }
}

/// The seal secret of the bundle in `dir`, if it has a sound one.
pub fn read_seal(dir: &Path) -> Option<[u8; 32]> {
    let text = crate::input::secret::read_secret(&dir.join(SEAL), "seal secret").ok()?;
    let b = data_encoding::BASE64URL_NOPAD
        .decode(text.trim().as_bytes())
        .ok()?;
    <[u8; 32]>::try_from(b.as_slice()).ok()
}

/// What a ceremony certifies.
#[derive(Debug, Clone)]
pub struct CeremonyPlan {
    /// The authority.
    pub authority: AuthorityName,
    /// Number of keys.
    pub keys: u32,
    /// Start of the first key's window (ignored when continuing a bundle:
    /// the next key then starts one step after the last one's start).
    pub start: UnixTime,
    /// Length of each key's certificate window, seconds.
    pub key_validity: u64,
    /// How long consecutive windows overlap, seconds.
    pub overlap: u64,
}

/// Why a ceremony cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// The plan is unsound.
    #[error("{0}")]
    Plan(String),
    /// The existing bundle in the output directory cannot be continued.
    #[error("{}: {why}", dir.display())]
    Existing {
        /// The directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// A key could not be written.
    #[error(transparent)]
    Key(#[from] keys::KeyFileError),
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Signing failed.
    #[error("signing a certificate: {0}")]
    Sign(#[from] mimi_proto::assertion::SignError),
}

/// The outcome of a ceremony: the certificates it added.
#[derive(Debug)]
pub struct CeremonyOutcome {
    /// The new certificates, in window order.
    pub added: Vec<Certificate>,
    /// Whether an existing bundle was continued.
    pub continued: bool,
}

/// Runs a ceremony: generates `plan.keys` signing keys, certifies each with
/// `root` for its staggered window, and writes them into the bundle `dir`
/// (created if absent, continued if it holds a bundle of the same root and
/// authority). Key files are created exclusively with mode 0600; the
/// certificates file is replaced atomically, after every key is on disk.
pub fn ceremony(
    dir: &Path,
    root: &SigningKey,
    plan: &CeremonyPlan,
) -> Result<CeremonyOutcome, CeremonyError> {
    if plan.keys == 0 || plan.keys > 1000 {
        return Err(CeremonyError::Plan(format!(
            "--keys {} : certify between 1 and 1000 keys",
            plan.keys
        )));
    }
    if plan.key_validity > MAX_KEY_VALIDITY {
        return Err(CeremonyError::Plan(format!(
            "key validity of {} days is longer than the {} days resolvers accept by default (max_key_validity)",
            plan.key_validity / 86400,
            MAX_KEY_VALIDITY / 86400
        )));
    }
    if plan.overlap == 0 || plan.overlap >= plan.key_validity {
        return Err(CeremonyError::Plan(format!(
            "the overlap ({}s) must be longer than zero and shorter than the key validity ({}s): consecutive keys need time to roll over, and each key must be the only new one for a while",
            plan.overlap, plan.key_validity
        )));
    }
    let step = plan.key_validity - plan.overlap;
    let root_pk = keys::public_key(root).map_err(|e| CeremonyError::Plan(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CeremonyError::Io { path, source }
    };
    let certs_path = dir.join(CERTIFICATES);
    let keys_dir = dir.join(KEYS);
    let existing = certs_path.exists();
    let (mut text, mut start) = if existing {
        let bundle = read(dir, &plan.authority, &[]).map_err(|p| CeremonyError::Existing {
            dir: dir.to_owned(),
            why: p
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        if bundle.root != root_pk {
            return Err(CeremonyError::Existing {
                dir: dir.to_owned(),
                why: format!(
                    "the bundle's certificates are signed by root key {}, not by this root key {}",
                    bundle.root.kid(),
                    root_pk.kid()
                ),
            });
        }
        let last = bundle
            .keys
            .iter()
            .map(BundleKey::not_before)
            .max()
            .expect("a read bundle has a key");
        let text = std::fs::read_to_string(&certs_path).map_err(io(&certs_path))?;
        (text, UnixTime(last.0 + step))
    } else {
        create_private_dir(dir).map_err(io(dir))?;
        create_private_dir(&keys_dir).map_err(io(&keys_dir))?;
        let root_path = dir.join(ROOT);
        std::fs::write(&root_path, format!("{}\n", root_pk.to_base64url()))
            .map_err(io(&root_path))?;
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        write_new_private(
            &dir.join(SEAL),
            &format!("{}\n", data_encoding::BASE64URL_NOPAD.encode(&secret)),
        )
        .map_err(io(&dir.join(SEAL)))?;
        (
            format!(
                "# mimi-dns key bundle of {} (root key {}); written by mimi-publisher ceremony\n",
                plan.authority,
                root_pk.kid()
            ),
            plan.start,
        )
    };
    let mut added = Vec::new();
    for i in 0..plan.keys {
        let key = keys::generate();
        let pk = keys::public_key(&key).map_err(|e| CeremonyError::Plan(e.to_string()))?;
        let end = start
            .0
            .checked_add(plan.key_validity)
            .filter(|e| *e <= UnixTime::MAX_RECORD.0);
        let Some(end) = end else {
            return Err(CeremonyError::Plan(
                "the windows run past 9999-12-31 (SPEC §4)".into(),
            ));
        };
        let cert = UnsignedCertificate {
            authority: plan.authority.clone(),
            key: pk,
            not_before: start,
            expires: UnixTime(end),
        }
        .sign(root)?;
        keys::write_signing_key(&keys_dir.join(format!("{}.pem", pk.kid())), &key)?;
        text.push_str(&format!(
            "# key {} of {}: {} .. {}\n{}\n",
            i + 1,
            plan.keys,
            humantime::format_rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(start.0)
            ),
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(end)),
            cert.text()
        ));
        added.push(cert);
        start = UnixTime(start.0 + step);
    }
    // Every key is on disk before the certificates naming them.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io(&certs_path))?;
    tmp.persist(&certs_path).map_err(|e| CeremonyError::Io {
        path: certs_path.clone(),
        source: e.error,
    })?;
    Ok(CeremonyOutcome {
        added,
        continued: existing,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(keys: u32) -> CeremonyPlan {
        CeremonyPlan {
            authority: AuthorityName::parse("ma.example.net").unwrap(),
            keys,
            start: UnixTime(1_000_000),
            key_validity: 100,
            overlap: 30,
        }
    }

    #[test]
    fn ceremony_writes_a_bundle_that_reads_back_and_continues() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        let root = SigningKey::from_bytes(&[3u8; 32]);
        let first = ceremony(&out, &root, &plan(3)).unwrap();
        assert!(!first.continued);
        let windows: Vec<_> = first
            .added
            .iter()
            .map(|c| (c.not_before().0, c.expires().0))
            .collect();
        assert_eq!(
            windows,
            [
                (1_000_000, 1_000_100),
                (1_000_070, 1_000_170),
                (1_000_140, 1_000_240)
            ]
        );
        let a = AuthorityName::parse("ma.example.net").unwrap();
        let b = read(&out, &a, &[]).unwrap();
        assert_eq!(b.keys.len(), 3);
        assert!(b.keys.iter().all(|k| k.key.is_ok()) && b.seal.is_some());
        let more = ceremony(&out, &root, &plan(1)).unwrap();
        assert!(more.continued);
        assert_eq!(more.added[0].not_before().0, 1_000_210);
        assert_eq!(read(&out, &a, &[]).unwrap().keys.len(), 4);
        // Another root cannot continue it.
        let other = SigningKey::from_bytes(&[4u8; 32]);
        assert!(matches!(
            ceremony(&out, &other, &plan(1)),
            Err(CeremonyError::Existing { .. })
        ));
        // A pinned root that is not the bundle's.
        let pinned = keys::public_key(&other).unwrap();
        let e = read(&out, &a, &[pinned]).unwrap_err();
        assert!(
            e[0].message.contains("not one of authority.root_keys"),
            "{e:?}"
        );
    }

    #[test]
    fn tampered_and_mismatched_bundles_are_refused_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        let root = SigningKey::from_bytes(&[3u8; 32]);
        let done = ceremony(&out, &root, &plan(2)).unwrap();
        let a = AuthorityName::parse("ma.example.net").unwrap();
        // Another authority.
        let e = read(&out, &AuthorityName::parse("other.example").unwrap(), &[]).unwrap_err();
        assert!(
            e.iter().all(|p| p.message.contains("for authority")),
            "{e:?}"
        );
        // A missing key file is not an error (the key just cannot sign).
        let kid = done.added[0].kid().clone();
        std::fs::remove_file(out.join(KEYS).join(format!("{kid}.pem"))).unwrap();
        let b = read(&out, &a, &[]).unwrap();
        assert!(b.keys[0].key.is_err() && b.keys[1].key.is_ok());
        // An altered certificate.
        let path = out.join(CERTIFICATES);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(";t=1000000;", ";t=1000001;", 1)).unwrap();
        let e = read(&out, &a, &[]).unwrap_err();
        assert!(e[0].message.contains("does not verify"), "{e:?}");
        assert!(e[0].line.is_some());
        // Cut short.
        std::fs::write(&path, &text[..text.len() - 5]).unwrap();
        assert!(read(&out, &a, &[]).is_err());
    }

    #[test]
    fn unsound_plans_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = SigningKey::from_bytes(&[3u8; 32]);
        for p in [
            CeremonyPlan {
                overlap: 100,
                ..plan(2)
            },
            CeremonyPlan {
                overlap: 0,
                ..plan(2)
            },
            CeremonyPlan { keys: 0, ..plan(2) },
            CeremonyPlan {
                key_validity: 500 * 86400,
                overlap: 10,
                ..plan(2)
            },
        ] {
            assert!(matches!(
                ceremony(&dir.path().join("x"), &root, &p),
                Err(CeremonyError::Plan(_))
            ));
        }
    }
}
