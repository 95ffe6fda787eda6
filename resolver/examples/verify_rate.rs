//! CPU cost of verifying one lookup's records, without DNS: an assertion
//! signed by a certified signing key, verified from texts each time
//! ([`verify`], what a one-off lookup does) and with the authority's
//! certificates prepared once and reused ([`verify_prepared`], what the
//! resolver does with its certificate cache).
//!
//! `cargo run --release -p mimi-resolver --example verify_rate [ITERATIONS]`
//! prints one JSON object with microseconds per verification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use mimi_proto::{
    AuthorityName, PublicKey, Sii, SiiHash, Ssi, UnixTime, UnsignedAssertion, UnsignedCertificate,
};
use mimi_resolver::{
    verify, verify_prepared, Policy, PreparedCertificates, SourceRecords, TrustStore,
    TrustedAuthority,
};

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map_or(20_000, |s| s.parse().expect("ITERATIONS is a number"));
    let now = UnixTime(1_800_000_000);
    let authority = AuthorityName::parse("example.com").unwrap();
    let root = SigningKey::from_bytes(&[1; 32]);
    let signing = SigningKey::from_bytes(&[2; 32]);
    let pk = |k: &SigningKey| PublicKey::from_verifying_key(k.verifying_key()).unwrap();

    let mut trust = TrustStore::new(Policy::default());
    trust
        .add(TrustedAuthority::unscoped(authority.clone(), vec![pk(&root)]).unwrap())
        .unwrap();
    let certificate = UnsignedCertificate {
        authority: authority.clone(),
        key: pk(&signing),
        not_before: UnixTime(now.0 - 86_400),
        expires: UnixTime(now.0 + 100 * 86_400),
    }
    .sign(&root)
    .unwrap()
    .text()
    .to_owned();
    let sii = Sii::parse("alice@example.com", None).unwrap();
    let record = UnsignedAssertion {
        authority: authority.clone(),
        ssi: Ssi::parse("mimi://chat.example.com/u/alice").unwrap(),
        not_before: UnixTime(now.0 - 86_400),
        expires: UnixTime(now.0 + 13 * 86_400),
        include_label: false,
        extensions: vec![],
    }
    .sign(&SiiHash::of_canonical(&sii.to_string()), &signing)
    .unwrap()
    .text()
    .to_owned();
    let sources = [SourceRecords {
        source: "test.".into(),
        texts: vec![record],
    }];
    let texts = BTreeMap::from([(authority.clone(), vec![certificate])]);
    let prepared = BTreeMap::from([(
        authority.clone(),
        Arc::new(PreparedCertificates::new(
            &trust,
            &authority,
            &texts[&authority],
        )),
    )]);

    let time = |f: &dyn Fn() -> usize| {
        let start = Instant::now();
        for _ in 0..iterations {
            assert_eq!(f(), 1, "the assertion must verify");
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
    };
    let from_texts = time(&|| verify(&sii, now, &trust, &sources, &texts).verified.len());
    let with_prepared = time(&|| {
        verify_prepared(&sii, now, &trust, &sources, &prepared)
            .verified
            .len()
    });
    println!(
        "{{\"iterations\":{iterations},\"us_per_verify_from_texts\":{from_texts:.2},\"us_per_verify_prepared_certificates\":{with_prepared:.2}}}"
    );
}
