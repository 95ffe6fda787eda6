//! The authority's keys as a build sees them: the certificates it
//! publishes, the root keys it knows, and whether the signing key is one
//! that clients will accept.
//!
//! Why this is an error and not a warning: a zone whose assertions are
//! signed by a key that no published, currently valid certificate covers
//! (and that is not a root key) builds, serves and transfers fine, and every
//! client rejects every assertion in it. The commonest cause is a key
//! rotation done in the wrong order (re-signing before the new certificate
//! is published, or after the old one expired); refusing the build keeps
//! the previous, verifiable zone published.
//!
//! What "covered" means: a certificate of this authority whose `k` is the
//! signing key's kid and is the kid of its `pk`, whose signature verifies
//! where the root key is known, whose window is at most
//! [`MAX_KEY_VALIDITY`] long, and that is valid *now* (`t ≤ now < x`). A
//! certificate that is not valid yet is published (that is how the next
//! key is announced before a rotation) but covers nothing: clients reject
//! assertions under it until its `t`.
//!
//! The signing key is a root key when it is in `root_keys`, or when a
//! published certificate names it as `r=` (it signs certificates). With
//! neither certificates nor `root_keys` configured, the key is taken to be
//! the authority's root key used directly (SPEC §6, small deployments):
//! nothing here can tell otherwise, and the certificates may be published
//! in another zone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mimi_proto::{Certificate, KeyId, PublicKey, UnixTime};

use crate::input::config::{AuthorityConfig, ZoneConfig};
use crate::input::problem::Problem;

/// Longest certificate window a build accepts, seconds: resolvers' default
/// `max_key_validity` (SPEC §7), which rejects longer ones.
pub const MAX_KEY_VALIDITY: u64 = 400 * 86400;

/// A key a build knows the public half of, with the window in which it may
/// sign (`None` for a root key).
#[derive(Debug, Clone)]
struct Known {
    key: PublicKey,
    window: Option<(UnixTime, UnixTime)>,
}

/// The keys of the zone's own authority that a build knows: root keys and
/// the keys of the certificates it publishes.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<KeyId, Known>,
    /// Kids of root keys known only by id (`r=` of a certificate).
    root_kids: BTreeSet<KeyId>,
    /// Windows of certificates that expired (not published), by kid: to
    /// say why a key is not usable.
    expired: BTreeMap<KeyId, (UnixTime, UnixTime)>,
    /// Whether every key clients may use is known here: certificates are
    /// published in this zone, or root keys are configured.
    complete: bool,
}

/// How an assertion's key stands, per [`KeyRing::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus<'a> {
    /// This key verifies it, now.
    Known(&'a PublicKey),
    /// A root key known only by its kid: cannot be checked here.
    Unverifiable,
    /// A certified key whose certificate is not valid now.
    NotValidNow {
        /// The certificate's `t`.
        not_before: UnixTime,
        /// The certificate's `x`.
        expires: UnixTime,
    },
    /// No key of this authority with that kid is known, and all are.
    Unknown,
    /// This build does not know all keys of the authority.
    NotChecked,
}

impl KeyRing {
    /// The key with `kid`, as of `now`.
    pub fn lookup(&self, kid: &KeyId, now: UnixTime) -> KeyStatus<'_> {
        match self.keys.get(kid) {
            Some(Known { key, window: None }) => KeyStatus::Known(key),
            Some(Known {
                key,
                window: Some((t, x)),
            }) => {
                if *t <= now && now < *x {
                    KeyStatus::Known(key)
                } else {
                    KeyStatus::NotValidNow {
                        not_before: *t,
                        expires: *x,
                    }
                }
            }
            None if self.root_kids.contains(kid) => KeyStatus::Unverifiable,
            None if self.expired.contains_key(kid) => {
                let (not_before, expires) = self.expired[kid];
                KeyStatus::NotValidNow {
                    not_before,
                    expires,
                }
            }
            None if self.complete => KeyStatus::Unknown,
            None => KeyStatus::NotChecked,
        }
    }
}

/// The certificates a build publishes and the keys it learnt.
#[derive(Debug, Default)]
pub struct Certificates {
    /// Certificate record texts and their owner, `_mimi-ma.<authority>`
    /// (the builder publishes them with the zone's TTL).
    pub records: Vec<(mimi_proto::DomainName, String)>,
    /// The authority's known keys.
    pub ring: KeyRing,
}

/// Reads the certificate files of `auth`, checks each certificate and the
/// signing key `signing`, and returns what to publish. Problems go to
/// `errors` (the build fails) and `warnings`.
pub fn read(
    config: &ZoneConfig,
    auth: &AuthorityConfig,
    signing: Option<&PublicKey>,
    now: UnixTime,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Certificates {
    // Parse every certificate first: which keys are roots depends on all.
    let mut certs: Vec<(&Path, usize, Certificate)> = Vec::new();
    for path in &auth.certificates {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(Problem::in_file(
                    path,
                    format!("cannot read certificates: {e}"),
                ));
                continue;
            }
        };
        // A file still being written is not read at all (its last line
        // may be cut short).
        if let Err(p) = crate::input::complete::check(path, &text) {
            errors.push(p);
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match Certificate::parse(l) {
                Ok(c) => certs.push((path, i + 1, c)),
                Err(e) => errors.push(Problem::at(
                    path,
                    i + 1,
                    format!("malformed certificate: {e}"),
                )),
            }
        }
    }
    let complete = !auth.certificates.is_empty() || !auth.root_keys.is_empty();
    check(
        config, auth, complete, certs, signing, now, errors, warnings,
    )
}

/// Checks `certs` (with the file and line each came from) as the
/// certificates of `auth` to publish in `config`'s zone, and the signing
/// key `signing` against them, as [`read`] does for certificate files;
/// `complete` says whether they and `auth.root_keys` are every key
/// clients may use (see [`KeyRing`]).
#[allow(clippy::too_many_arguments)]
pub fn check(
    config: &ZoneConfig,
    auth: &AuthorityConfig,
    complete: bool,
    certs: Vec<(&Path, usize, Certificate)>,
    signing: Option<&PublicKey>,
    now: UnixTime,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Certificates {
    let mut out = Certificates::default();
    let ring = &mut out.ring;
    ring.complete = complete;
    for k in &auth.root_keys {
        ring.keys.insert(
            k.kid(),
            Known {
                key: *k,
                window: None,
            },
        );
    }
    // The signing key signs certificates: it is a root key.
    if let Some(pk) = signing {
        if certs.iter().any(|(_, _, c)| *c.root_kid() == pk.kid()) {
            ring.keys.insert(
                pk.kid(),
                Known {
                    key: *pk,
                    window: None,
                },
            );
        }
    }
    let owner = auth.name.certificate_name();
    for (path, line, cert) in &certs {
        let (path, line) = (*path, *line);
        let mut bad = |msg: String| errors.push(Problem::at(path, line, msg));
        if let Some(why) = shape_problem(cert, &auth.name) {
            bad(why);
            continue;
        }
        if !owner.is_within(&config.origin) {
            bad(format!("certificates are published at {owner}, which is not inside zone {}; publish them in the authority's own zone", config.origin));
            continue;
        }
        match ring.keys.get(cert.root_kid()) {
            Some(Known { key, window: None }) if cert.verify(key).is_err() => {
                bad(format!(
                    "certificate for key {} does not verify under root key {}; it was not signed by that root key, or was altered",
                    cert.kid(),
                    cert.root_kid()
                ));
                continue;
            }
            Some(Known { window: None, .. }) => {}
            _ if !auth.root_keys.is_empty() => {
                bad(format!(
                    "certificate for key {} is signed by root key {}, which is not one of authority.root_keys; clients pinning those reject it",
                    cert.kid(),
                    cert.root_kid()
                ));
                continue;
            }
            _ => {}
        }
        if cert.expires() <= now {
            let w = ring
                .expired
                .entry(cert.kid().clone())
                .or_insert((cert.not_before(), cert.expires()));
            if cert.expires() > w.1 {
                *w = (cert.not_before(), cert.expires());
            }
            warnings.push(Problem::at(
                path,
                line,
                format!(
                    "certificate for key {} expired at {}; not published",
                    cert.kid(),
                    cert.expires()
                ),
            ));
            continue;
        }
        ring.root_kids.insert(cert.root_kid().clone());
        let window = (cert.not_before(), cert.expires());
        let covers = |(t, x): (UnixTime, UnixTime)| t <= now && now < x;
        match ring.keys.get_mut(cert.kid()) {
            None => {
                ring.keys.insert(
                    cert.kid().clone(),
                    Known {
                        key: *cert.key(),
                        window: Some(window),
                    },
                );
            }
            // Several certificates of one key (a renewal): the one valid
            // now, and of those the one that lasts longest.
            Some(Known {
                window: Some(old), ..
            }) => {
                if covers(window) && (!covers(*old) || window.1 > old.1) {
                    *old = window;
                }
            }
            Some(Known { window: None, .. }) => {}
        }
        out.records.push((owner.clone(), cert.text().to_owned()));
    }
    if let Some(pk) = signing {
        check_signing_key(config, auth, pk, now, &out.ring, errors);
        if !out.ring.complete {
            // Taken to be the root key used directly (see above).
            out.ring.keys.insert(
                pk.kid(),
                Known {
                    key: *pk,
                    window: None,
                },
            );
        }
    }
    out
}

/// What is wrong with `cert` as a certificate of `authority` on its own
/// (before its signature is checked): another authority, a `k=` that is
/// not the kid of its `pk=`, or a window longer than resolvers accept.
/// Certificate files and key bundles are held to the same rules.
pub fn shape_problem(cert: &Certificate, authority: &mimi_proto::AuthorityName) -> Option<String> {
    if cert.authority() != authority {
        return Some(format!(
            "certificate is for authority {}, but this zone's authority is {authority}",
            cert.authority()
        ));
    }
    if cert.key().kid() != *cert.kid() {
        return Some(format!(
            "certificate k={} is not the key id of its pk= (which is {}); clients reject it",
            cert.kid(),
            cert.key().kid()
        ));
    }
    let length = cert.expires().0 - cert.not_before().0;
    if length > MAX_KEY_VALIDITY {
        return Some(format!(
            "certificate for key {} is valid for {} days, longer than the {} days resolvers accept by default (max_key_validity); certify the key for a shorter time",
            cert.kid(),
            length / 86400,
            MAX_KEY_VALIDITY / 86400
        ));
    }
    None
}

/// The coverage rule for the signing key (see the module documentation).
fn check_signing_key(
    config: &ZoneConfig,
    auth: &AuthorityConfig,
    pk: &PublicKey,
    now: UnixTime,
    ring: &KeyRing,
    errors: &mut Vec<Problem>,
) {
    if !ring.complete {
        return;
    }
    let kid = pk.kid();
    let why = match ring.lookup(&kid, now) {
        KeyStatus::Known(_) => return,
        KeyStatus::NotValidNow { not_before, .. } if not_before > now => format!(
            "its certificate is valid only from {not_before} (now is {now}); publish the certificate, wait until it is valid, then switch keys"
        ),
        KeyStatus::NotValidNow { expires, .. } => format!(
            "its certificate expired at {expires}; certify the key again (mimi-publisher certify)"
        ),
        _ => "no published certificate covers it; publish its certificate (mimi-publisher certify) before signing with it".to_owned(),
    };
    let place = auth.key.as_deref().unwrap_or(&config.path);
    errors.push(Problem::in_file(
        place,
        format!(
            "signing key {kid} of authority {} is not usable: {why}. It is not a root key of the authority either (not in root_keys, and no published certificate names it as r=); every client would reject the assertions signed with it",
            auth.name
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use mimi_proto::UnsignedCertificate;

    const NOW: u64 = 1_765_000_000;

    fn pk(k: &SigningKey) -> PublicKey {
        PublicKey::from_verifying_key(k.verifying_key()).unwrap()
    }

    fn cert(root: &SigningKey, key: &SigningKey, t: u64, x: u64) -> String {
        UnsignedCertificate {
            authority: "example.com".parse().unwrap(),
            key: pk(key),
            not_before: UnixTime(t),
            expires: UnixTime(x),
        }
        .sign(root)
        .unwrap()
        .text()
        .to_owned()
    }

    fn read_with(certs: &[String], signing: &SigningKey) -> (Certificates, Vec<Problem>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("certs"), certs.join("\n") + "\n").unwrap();
        let config = ZoneConfig::from_toml(
            "origin = \"example.com\"\nns = [\"ns1.example.com\"]\n[soa]\nmname = \"ns1.example.com\"\nrname = \"h.example.com\"\n[authority]\nname = \"example.com\"\ncertificates = [\"certs\"]\n",
            &dir.path().join("zone.toml"),
        )
        .unwrap();
        let auth = config.authority.as_ref().unwrap();
        let (mut errors, mut warnings) = (vec![], vec![]);
        let out = read(
            &config,
            auth,
            Some(&pk(signing)),
            UnixTime(NOW),
            &mut errors,
            &mut warnings,
        );
        (out, errors)
    }

    #[test]
    fn a_renewed_key_is_covered_by_the_certificate_valid_now_whatever_the_order() {
        let root = SigningKey::from_bytes(&[1u8; 32]);
        let key = SigningKey::from_bytes(&[2u8; 32]);
        let current = cert(&root, &key, NOW - 10, NOW + 10);
        let next = cert(&root, &key, NOW + 5, NOW + 1000);
        for certs in [
            vec![current.clone(), next.clone()],
            vec![next.clone(), current.clone()],
        ] {
            let (out, errors) = read_with(&certs, &key);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(out.records.len(), 2);
            assert_eq!(
                out.ring.lookup(&pk(&key).kid(), UnixTime(NOW)),
                KeyStatus::Known(&pk(&key))
            );
        }
        // Only the next one: published, but the key is not usable yet.
        let (out, errors) = read_with(&[next], &key);
        assert_eq!(out.records.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("valid only from"), "{errors:?}");
    }

    #[test]
    fn lookup_tells_root_kids_unknown_keys_and_expired_certificates_apart() {
        let root = SigningKey::from_bytes(&[1u8; 32]);
        let key = SigningKey::from_bytes(&[2u8; 32]);
        let old = SigningKey::from_bytes(&[3u8; 32]);
        let stray = SigningKey::from_bytes(&[4u8; 32]);
        let (out, errors) = read_with(
            &[
                cert(&root, &key, NOW - 10, NOW + 10),
                cert(&root, &old, NOW - 100, NOW - 1),
            ],
            &key,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out.records.len(), 1, "the expired one is not published");
        let now = UnixTime(NOW);
        assert_eq!(
            out.ring.lookup(&pk(&root).kid(), now),
            KeyStatus::Unverifiable
        );
        assert_eq!(out.ring.lookup(&pk(&stray).kid(), now), KeyStatus::Unknown);
        assert_eq!(
            out.ring.lookup(&pk(&old).kid(), now),
            KeyStatus::NotValidNow {
                not_before: UnixTime(NOW - 100),
                expires: UnixTime(NOW - 1)
            }
        );
        // The root key signing itself: a root key, and it verifies the
        // certificates.
        let (out, errors) = read_with(&[cert(&root, &key, NOW - 10, NOW + 10)], &root);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            out.ring.lookup(&pk(&root).kid(), now),
            KeyStatus::Known(&pk(&root))
        );
        let forged = cert(&stray, &key, NOW - 10, NOW + 10).replace(
            &format!("r={}", pk(&stray).kid()),
            &format!("r={}", pk(&root).kid()),
        );
        let (_, errors) = read_with(&[forged], &root);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("does not verify under root key"),
            "{errors:?}"
        );
    }
}
