//! The resolver's verification of an arbitrary set of TXT answers against
//! a trust store (SPEC §7, §8 steps 3–5, §11).
//!
//! Input: text lines.
//!
//! * line 1: the SII being resolved (any SPEC §1 input; no region);
//! * line 2: `MIN [NOW]`: the policy's `min_authorities` (0–3; default 1)
//!   and the time (default the vectors' `now`);
//! * then records, grouped: `@NAME` starts the TXT answers found at
//!   discovery name NAME, `!AUTHORITY` the certificate texts found for
//!   AUTHORITY. A record line is a raw TXT text, or `A<k> BODY` / `C<k>
//!   BODY`: BODY signed as an assertion for this SII / as a certificate
//!   with fixed key `<k>` (`r` ma.example.net's root, `s` its certified
//!   signing key, `p` chat.example.org's root, anything else a key no
//!   one trusts). The signing lines let the fuzzer build validly signed
//!   records with arbitrary contents, so scope, window and key-binding
//!   checks are exercised, not just signature checks.
//!
//! The trust store is [`crate::fixtures::trust_store`]. Property: every
//! SSI that [`mimi_resolver::verify()`] returns is re-derived here, by an
//! independent check written from the SPEC, from records of at least
//! `min_authorities` distinct trusted authorities, each one signed by a
//! pinned root key or by a key certified by one, inside the authority's
//! `sii_scope` and `ssi_scope`, and inside every validity window. A
//! verified SSI that this check cannot justify is a forgery.

use std::collections::BTreeMap;

use ed25519_dalek::Signer;
use mimi_proto::text::encode_signature;
use mimi_proto::{assertion, certificate};
use mimi_proto::{Assertion, AuthorityName, Certificate, Sii, UnixTime};
use mimi_resolver::verify::SourceRecords;
use mimi_resolver::Verification;
use mimi_resolver::{verify, Policy, TrustStore};

use crate::fixtures::{self, KeyName, NOW};

/// The parsed input.
pub struct Input {
    sii: Sii,
    now: UnixTime,
    min_authorities: usize,
    sources: Vec<SourceRecords>,
    certificates: BTreeMap<AuthorityName, Vec<String>>,
}

fn parse_input(text: &str) -> Option<Input> {
    let mut lines = text.split('\n');
    let sii = Sii::parse(lines.next()?, None).ok()?;
    let hash = sii.hash();
    let mut policy = lines.next().unwrap_or("").split(' ');
    let min_authorities = policy.next().and_then(|m| m.parse().ok()).unwrap_or(1usize) % 4;
    let now = policy
        .next()
        .and_then(|n| n.parse().ok())
        .map_or(NOW, UnixTime);
    let mut sources: Vec<SourceRecords> = Vec::new();
    let mut certificates: BTreeMap<AuthorityName, Vec<String>> = BTreeMap::new();
    enum Into {
        Source,
        Certificates(Option<AuthorityName>),
    }
    let mut into = Into::Source;
    for line in lines {
        if let Some(name) = line.strip_prefix('@') {
            sources.push(SourceRecords {
                source: name.to_owned(),
                texts: Vec::new(),
            });
            into = Into::Source;
            continue;
        }
        if let Some(a) = line.strip_prefix('!') {
            into = Into::Certificates(AuthorityName::parse(a).ok());
            continue;
        }
        let record = signed(line, &hash).unwrap_or_else(|| line.to_owned());
        match &into {
            Into::Source => {
                if sources.is_empty() {
                    sources.push(SourceRecords {
                        source: "fuzz.".to_owned(),
                        texts: Vec::new(),
                    });
                }
                sources.last_mut().expect("a source").texts.push(record);
            }
            Into::Certificates(Some(a)) => certificates.entry(a.clone()).or_default().push(record),
            Into::Certificates(None) => {}
        }
    }
    Some(Input {
        sii,
        now,
        min_authorities,
        sources,
        certificates,
    })
}

/// `A<k> BODY` or `C<k> BODY`, signed.
fn signed(line: &str, hash: &mimi_proto::SiiHash) -> Option<String> {
    let mut chars = line.chars();
    let kind = chars.next()?;
    let key = KeyName::from_char(chars.next()?);
    let body = chars.as_str().strip_prefix(' ')?;
    let message = match kind {
        'A' => assertion::signed_bytes(hash, body),
        'C' => certificate::signed_bytes(body),
        _ => return None,
    };
    let sig = key.signing_key().sign(&message);
    Some(format!("{body};sig={}", encode_signature(&sig)))
}

/// The target body.
pub fn run(data: &[u8]) {
    if let Some((input, result)) = verify_input(data) {
        check(&input, &result);
    }
}

/// Runs the resolver's verification on the input, if it names an SII.
pub fn verify_input(data: &[u8]) -> Option<(Input, Verification)> {
    let input = parse_input(crate::text(data)?)?;
    let trust = fixtures::trust_store(input.min_authorities);
    let result = verify(
        &input.sii,
        input.now,
        &trust,
        &input.sources,
        &input.certificates,
    );
    Some((input, result))
}

/// Checks every verified SSI of `result` against the records of `input`.
pub fn check(input: &Input, result: &Verification) {
    let trust = fixtures::trust_store(input.min_authorities);
    let all_texts: Vec<&String> = input.sources.iter().flat_map(|s| &s.texts).collect();
    assert!(
        result.rejected.len() <= all_texts.len(),
        "more rejections than records"
    );
    let required = input.min_authorities.max(1);
    for (i, v) in result.verified.iter().enumerate() {
        assert!(
            result.verified[..i].iter().all(|w| w.ssi != v.ssi),
            "{} verified twice",
            v.ssi
        );
        assert!(
            v.authorities.len() >= required,
            "too few authorities for {}",
            v.ssi
        );
        assert!(
            v.authorities.windows(2).all(|w| w[0] < w[1]),
            "authorities sorted, distinct"
        );
        assert!(
            v.expires.0
                > input
                    .now
                    .0
                    .saturating_sub(trust.policy().clock_skew.as_secs()),
            "{} verified but expired",
            v.ssi
        );
        for authority in &v.authorities {
            let justified = all_texts
                .iter()
                .any(|t| justifies(input, &trust, t, authority, v.ssi.as_str(), v.expires));
            assert!(
                justified,
                "FORGERY: {} verified for {} by {authority} without a valid record",
                v.ssi, input.sii
            );
        }
    }
}

/// Whether `text` is an assertion by `authority` mapping the SII to `ssi`
/// that a verifier must accept, with an expiry not before `expires`.
fn justifies(
    input: &Input,
    trust: &TrustStore,
    text: &str,
    authority: &AuthorityName,
    ssi: &str,
    expires: UnixTime,
) -> bool {
    let Ok(a) = Assertion::parse(text) else {
        return false;
    };
    if a.authority() != authority || a.ssi().as_str() != ssi {
        return false;
    }
    let policy = trust.policy();
    if !in_window(
        a.not_before(),
        a.expires(),
        input.now,
        policy,
        policy.max_assertion_validity.as_secs(),
    ) {
        return false;
    }
    if !in_scope(&input.sii, authority, a.ssi()) {
        return false;
    }
    let Some(ta) = trust.authority(authority) else {
        return false;
    };
    let hash = input.sii.hash();
    if let Some(root) = ta.root_key(a.kid()) {
        return a.verify(&hash, root).is_ok() && expires <= a.expires();
    }
    // A certified signing key.
    input
        .certificates
        .get(authority)
        .into_iter()
        .flatten()
        .filter_map(|t| Certificate::parse(t).ok())
        .filter(|c| c.kid() == a.kid() && c.authority() == authority)
        .any(|c| {
            let Some(root) = ta.root_key(c.root_kid()) else {
                return false;
            };
            c.key().kid() == *c.kid()
                && c.verify(root).is_ok()
                && in_window(
                    c.not_before(),
                    c.expires(),
                    input.now,
                    policy,
                    policy.max_key_validity.as_secs(),
                )
                && a.verify(&hash, c.key()).is_ok()
                && expires <= a.expires().min(c.expires())
        })
}

fn in_window(t: UnixTime, x: UnixTime, now: UnixTime, policy: &Policy, max: u64) -> bool {
    let skew = policy.clock_skew.as_secs();
    t.0 <= now.0.saturating_add(skew) && x.0 > now.0.saturating_sub(skew) && x.0 - t.0 <= max
}

/// The scopes of [`fixtures::trust_store`], written out again.
fn in_scope(sii: &Sii, authority: &AuthorityName, ssi: &mimi_proto::Ssi) -> bool {
    let host = ssi.provider_host();
    let host = host.as_ref().map(|h| h.as_str());
    let s = sii.as_str();
    if *authority == fixtures::ma() {
        let sii_ok = (s.starts_with("mailto:")
            && s.rsplit_once('@').map(|(_, d)| d) == Some("example.com"))
            || s.starts_with("tel:+39");
        sii_ok && host == Some("chat.example.org")
    } else if *authority == fixtures::chat() {
        host.is_some_and(|h| h == "chat.example.org" || h.ends_with(".chat.example.org"))
    } else {
        false
    }
}
