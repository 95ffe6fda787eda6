//! Verification against the normative vectors and the policy rules.

use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey};
use mimi_proto::text::encode_signature;
use mimi_proto::{PublicKey, UnsignedAssertion, UnsignedCertificate};
use serde_json::Value;

use super::*;
use crate::scope::{HostPattern, SiiPattern};

fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MIMI_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

fn vectors() -> Value {
    let path = vectors_dir().join("records.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read test vectors at {}: {e} (set MIMI_VECTORS_DIR)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn seed(v: &Value, name: &str) -> SigningKey {
    let hex = v["keys"][name]["seed_hex"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    SigningKey::from_bytes(&bytes.try_into().unwrap())
}

fn pk(k: &SigningKey) -> PublicKey {
    PublicKey::from_verifying_key(k.verifying_key()).unwrap()
}

fn name(s: &str) -> AuthorityName {
    AuthorityName::parse(s).unwrap()
}

fn sii(s: &str) -> Sii {
    Sii::parse(s, None).unwrap()
}

const MA: &str = "ma.example.net";
const CHAT: &str = "chat.example.org";
const ALICE: &str = "mailto:alice@example.com";
const BOB_TEL: &str = "tel:+390612345678";
const DAY: u64 = 86400;

struct Fx {
    v: Value,
    now: UnixTime,
    root: SigningKey,
    signing: SigningKey,
    provider: SigningKey,
}

impl Fx {
    fn new() -> Self {
        let v = vectors();
        Fx {
            now: UnixTime(v["now"].as_u64().unwrap()),
            root: seed(&v, "root"),
            signing: seed(&v, "signing"),
            provider: seed(&v, "provider_root"),
            v,
        }
    }

    fn cert_text(&self) -> String {
        self.v["certificate"]["text"].as_str().unwrap().to_owned()
    }

    /// MA trusted with the vector root key, CHAT with provider_root.
    fn trust(&self, policy: Policy) -> TrustStore {
        self.trust_scoped(policy, vec![SiiPattern::Any], vec![HostPattern::Any])
    }

    fn trust_scoped(
        &self,
        policy: Policy,
        ma_sii: Vec<SiiPattern>,
        ma_ssi: Vec<HostPattern>,
    ) -> TrustStore {
        let mut t = TrustStore::new(policy);
        t.add(TrustedAuthority::new(name(MA), vec![pk(&self.root)], ma_sii, ma_ssi).unwrap())
            .unwrap();
        t.add(TrustedAuthority::unscoped(name(CHAT), vec![pk(&self.provider)]).unwrap())
            .unwrap();
        t
    }

    fn certs(&self, texts: &[String]) -> BTreeMap<AuthorityName, Vec<String>> {
        BTreeMap::from([(name(MA), texts.to_vec())])
    }

    fn sign(
        &self,
        key: &SigningKey,
        authority: &str,
        sii: &str,
        ssi: &str,
        t: u64,
        x: u64,
    ) -> String {
        UnsignedAssertion {
            authority: name(authority),
            ssi: Ssi::parse(ssi).unwrap(),
            not_before: UnixTime(t),
            expires: UnixTime(x),
            include_label: false,
            extensions: vec![],
        }
        .sign(&SiiHash::of_canonical(sii), key)
        .unwrap()
        .text()
        .to_owned()
    }

    fn cert(&self, root: &SigningKey, authority: &str, key: &SigningKey, t: u64, x: u64) -> String {
        UnsignedCertificate {
            authority: name(authority),
            key: pk(key),
            not_before: UnixTime(t),
            expires: UnixTime(x),
        }
        .sign(root)
        .unwrap()
        .text()
        .to_owned()
    }

    fn run(
        &self,
        trust: &TrustStore,
        sii_text: &str,
        texts: Vec<String>,
        certs: Vec<String>,
    ) -> Verification {
        let sources = [SourceRecords {
            source: "test.".into(),
            texts,
        }];
        let certs = self.certs(&certs);
        let out = verify(&sii(sii_text), self.now, trust, &sources, &certs);
        // The resolver's path: certificates prepared once and reused (here
        // twice) must give exactly the same result.
        let prepared: BTreeMap<AuthorityName, Arc<PreparedCertificates>> = certs
            .iter()
            .map(|(a, t)| (a.clone(), Arc::new(PreparedCertificates::new(trust, a, t))))
            .collect();
        for _ in 0..2 {
            assert_eq!(
                verify_prepared(&sii(sii_text), self.now, trust, &sources, &prepared),
                out
            );
        }
        out
    }
}

fn only_reason(v: &Verification) -> &str {
    assert!(
        v.verified.is_empty(),
        "unexpectedly verified: {:?}",
        v.verified
    );
    assert_eq!(v.rejected.len(), 1, "{:?}", v.rejected);
    &v.rejected[0].reason
}

#[test]
fn every_invalid_vector_is_rejected_for_its_reason() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let cases = fx.v["invalid"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let why = case["why"].as_str().unwrap();
        let text = case["text"].as_str().unwrap().to_owned();
        let out = fx.run(
            &trust,
            case["sii"].as_str().unwrap(),
            vec![text],
            vec![fx.cert_text()],
        );
        let reason = only_reason(&out);
        let expected: &[&str] = if why.starts_with("signature over another SII")
            || why.starts_with("one flipped character")
        {
            &["signature does not verify"]
        } else if why.starts_with("signature truncated") {
            &["malformed", "sig"]
        } else if why.starts_with("expired at now") {
            &["expired at"]
        } else if why.starts_with("validity window longer than 90 days") {
            &["validity window 91 days exceeds policy maximum 90 days"]
        } else if why.starts_with("x not after t") {
            &["malformed", "not after"]
        } else if why.contains("time out of range") {
            &["malformed", "at most 253402300799"]
        } else if why.contains("not allowed in a URI") {
            &["malformed", "not allowed in a URI"]
        } else {
            panic!("new invalid vector {why:?}: add its expected reason here")
        };
        for e in expected {
            assert!(reason.contains(e), "{why}: reason {reason:?} lacks {e:?}");
        }
        assert_eq!(out.rejected[0].authority, Some(name(MA)), "{why}");
    }
}

#[test]
fn every_assertion_vector_verifies_at_now() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let cases = fx.v["assertions"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let text = case["text"].as_str().unwrap().to_owned();
        let out = fx.run(
            &trust,
            case["sii"].as_str().unwrap(),
            vec![text],
            vec![fx.cert_text()],
        );
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        assert_eq!(out.verified.len(), 1);
        let vs = &out.verified[0];
        assert_eq!(vs.ssi.as_str(), case["ssi"].as_str().unwrap());
        assert_eq!(
            vs.authorities,
            vec![name(case["authority"].as_str().unwrap())]
        );
        assert_eq!(vs.expires, UnixTime(case["x"].as_u64().unwrap()));
    }
}

#[test]
fn certificate_needed_only_for_non_root_kids() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let texts: Vec<String> = fx.v["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .chain(["v=mimi1;garbage".to_owned()])
        .collect();
    let src = [SourceRecords {
        source: "x.".into(),
        texts,
    }];
    assert_eq!(
        authorities_needing_certificates(&trust, &src),
        vec![name(MA)]
    );
    // Without the certificate the MA record cannot be verified.
    let a0 = fx.v["assertions"][0]["text"].as_str().unwrap().to_owned();
    let out = fx.run(&trust, ALICE, vec![a0], vec![]);
    let r = only_reason(&out);
    assert!(
        r.contains("no certificate for signing key 77rh7k568giju12i at _mimi-ma.ma.example.net."),
        "{r}"
    );
}

#[test]
fn min_authorities_two() {
    let fx = Fx::new();
    let policy = Policy {
        min_authorities: 2,
        ..Policy::default()
    };
    let trust = fx.trust(policy);
    let ma = fx.v["assertions"][0]["text"].as_str().unwrap().to_owned();
    let chat = fx.v["assertions"][2]["text"].as_str().unwrap().to_owned();

    let both = fx.run(
        &trust,
        ALICE,
        vec![ma.clone(), chat.clone()],
        vec![fx.cert_text()],
    );
    assert!(both.rejected.is_empty(), "{:?}", both.rejected);
    assert_eq!(both.verified.len(), 1);
    assert_eq!(both.verified[0].authorities, vec![name(CHAT), name(MA)]);

    let one = fx.run(&trust, ALICE, vec![ma.clone()], vec![fx.cert_text()]);
    let r = only_reason(&one);
    assert!(
        r.starts_with("only 1 of 2 required independent authorities"),
        "{r}"
    );
    assert_eq!(one.rejected[0].authority, Some(name(MA)));

    // The same record from two sources is still one authority.
    let twice = verify(
        &sii(ALICE),
        fx.now,
        &trust,
        &[
            SourceRecords {
                source: "a.".into(),
                texts: vec![ma.clone()],
            },
            SourceRecords {
                source: "b.".into(),
                texts: vec![ma.clone()],
            },
        ],
        &fx.certs(&[fx.cert_text()]),
    );
    assert!(twice.verified.is_empty());
    assert_eq!(twice.rejected.len(), 1);
    assert_eq!(twice.rejected[0].source, "a.");
}

#[test]
fn identical_records_count_once_and_earliest_expiry_wins() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let ma = fx.sign(
        &fx.root,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + 3 * DAY,
    );
    let chat = fx.sign(
        &fx.provider,
        CHAT,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + 5 * DAY,
    );
    // An older MA record with an earlier expiry does not shorten MA's vouching.
    let ma_old = fx.sign(
        &fx.root,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - 2 * DAY,
        now + DAY,
    );
    let out = verify(
        &sii(ALICE),
        fx.now,
        &trust,
        &[
            SourceRecords {
                source: "a.".into(),
                texts: vec![ma.clone(), chat.clone(), "not mimi".into()],
            },
            SourceRecords {
                source: "b.".into(),
                texts: vec![ma.clone(), ma_old],
            },
        ],
        &BTreeMap::new(),
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.verified.len(), 1);
    assert_eq!(out.verified[0].authorities, vec![name(CHAT), name(MA)]);
    assert_eq!(out.verified[0].expires, UnixTime(now + 3 * DAY));
}

#[test]
fn expiry_is_capped_by_the_certificate() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let cert = fx.cert(&fx.root, MA, &fx.signing, now - DAY, now + 2 * DAY);
    let rec = fx.sign(
        &fx.signing,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + 10 * DAY,
    );
    let out = fx.run(&trust, ALICE, vec![rec], vec![cert]);
    assert_eq!(out.verified.len(), 1, "{:?}", out.rejected);
    assert_eq!(out.verified[0].expires, UnixTime(now + 2 * DAY));
}

#[test]
fn validity_maxima() {
    let fx = Fx::new();
    let now = fx.now.0;
    let long = fx.sign(
        &fx.root,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + 99 * DAY,
    );
    let strict = fx.trust(Policy::default());
    let r = only_reason(&fx.run(&strict, ALICE, vec![long.clone()], vec![])).to_owned();
    assert!(
        r.contains("validity window 100 days exceeds policy maximum 90 days"),
        "{r}"
    );
    let lax = fx.trust(Policy {
        max_assertion_validity: Duration::from_secs(100 * DAY),
        ..Policy::default()
    });
    assert_eq!(fx.run(&lax, ALICE, vec![long], vec![]).verified.len(), 1);

    // The vector certificate is valid for 180 days.
    let a0 = fx.v["assertions"][0]["text"].as_str().unwrap().to_owned();
    let short_keys = fx.trust(Policy {
        max_key_validity: Duration::from_secs(100 * DAY),
        ..Policy::default()
    });
    let r =
        only_reason(&fx.run(&short_keys, ALICE, vec![a0.clone()], vec![fx.cert_text()])).to_owned();
    assert!(
        r.contains("certificate for signing key 77rh7k568giju12i: validity window 180 days exceeds policy maximum 100 days"),
        "{r}"
    );
    let odd = fx.trust(Policy {
        max_assertion_validity: Duration::from_secs(DAY + 1),
        ..Policy::default()
    });
    let r = only_reason(&fx.run(&odd, ALICE, vec![a0], vec![fx.cert_text()])).to_owned();
    assert!(r.contains("exceeds policy maximum 1day 1s"), "{r}");
}

#[test]
fn clock_skew() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let ssi = "mimi://chat.example.org/u/alice";
    let early4 = fx.sign(&fx.root, MA, ALICE, ssi, now + 240, now + 10 * DAY);
    let early6 = fx.sign(&fx.root, MA, ALICE, ssi, now + 360, now + 10 * DAY);
    assert_eq!(
        fx.run(&trust, ALICE, vec![early4], vec![]).verified.len(),
        1
    );
    let r = only_reason(&fx.run(&trust, ALICE, vec![early6], vec![])).to_owned();
    assert!(r.starts_with("not valid before "), "{r}");
    assert!(r.contains(&format!("t={}", now + 360)), "{r}");

    let late4 = fx.sign(&fx.root, MA, ALICE, ssi, now - 10 * DAY, now - 240);
    let late6 = fx.sign(&fx.root, MA, ALICE, ssi, now - 10 * DAY, now - 360);
    assert_eq!(fx.run(&trust, ALICE, vec![late4], vec![]).verified.len(), 1);
    let r = only_reason(&fx.run(&trust, ALICE, vec![late6], vec![])).to_owned();
    assert!(r.starts_with("expired at "), "{r}");

    let no_skew = fx.trust(Policy {
        clock_skew: Duration::ZERO,
        ..Policy::default()
    });
    let early1 = fx.sign(&fx.root, MA, ALICE, ssi, now + 1, now + 10 * DAY);
    assert!(fx
        .run(&no_skew, ALICE, vec![early1], vec![])
        .verified
        .is_empty());
    let exact = fx.sign(&fx.root, MA, ALICE, ssi, now, now + 1);
    assert_eq!(
        fx.run(&no_skew, ALICE, vec![exact], vec![]).verified.len(),
        1
    );
    let gone = fx.sign(&fx.root, MA, ALICE, ssi, now - 1, now);
    assert!(fx
        .run(&no_skew, ALICE, vec![gone], vec![])
        .verified
        .is_empty());
}

#[test]
fn expired_time_is_shown_readably() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let expired = fx.v["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["why"] == "expired at now")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = fx.run(&trust, ALICE, vec![expired], vec![fx.cert_text()]);
    assert_eq!(
        only_reason(&out),
        "expired at 2025-11-15T00:00:00Z (x=1763164800)"
    );
}

#[test]
fn scopes() {
    let fx = Fx::new();
    let now = fx.now.0;
    let trust = fx.trust_scoped(
        Policy::default(),
        vec![
            SiiPattern::parse("mailto:*@example.com").unwrap(),
            SiiPattern::parse("tel:+39*").unwrap(),
        ],
        vec![HostPattern::parse("chat.example.org").unwrap()],
    );
    // In scope.
    let ok = fx.sign(
        &fx.root,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + DAY,
    );
    assert_eq!(fx.run(&trust, ALICE, vec![ok], vec![]).verified.len(), 1);
    // SSI host out of scope.
    let host = fx.sign(
        &fx.root,
        MA,
        BOB_TEL,
        "im:bob@talk.example.net",
        now - DAY,
        now + DAY,
    );
    let r = only_reason(&fx.run(&trust, BOB_TEL, vec![host], vec![])).to_owned();
    assert!(
        r.starts_with(
            "SSI provider host talk.example.net outside authority's ssi_scope (chat.example.org)"
        ),
        "{r}"
    );
    // SSI without provider host.
    let hostless = fx.sign(&fx.root, MA, ALICE, "urn:uuid:1234", now - DAY, now + DAY);
    let r = only_reason(&fx.run(&trust, ALICE, vec![hostless], vec![])).to_owned();
    assert!(r.starts_with("SSI has no provider host"), "{r}");
    // SII out of scope.
    let other = "mailto:carol@example.org";
    let sii_out = fx.sign(
        &fx.root,
        MA,
        other,
        "mimi://chat.example.org/u/carol",
        now - DAY,
        now + DAY,
    );
    let r = only_reason(&fx.run(&trust, other, vec![sii_out], vec![])).to_owned();
    assert!(
        r.starts_with("SII outside authority's sii_scope (mailto:*@example.com, tel:+39*)"),
        "{r}"
    );
}

#[test]
fn unknown_authority() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let rec = fx.sign(
        &fx.root,
        "evil.example",
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + DAY,
    );
    let out = fx.run(&trust, ALICE, vec![rec], vec![]);
    assert_eq!(only_reason(&out), "authority not in trust store");
    assert_eq!(out.rejected[0].authority, Some(name("evil.example")));
    assert_eq!(
        authorities_needing_certificates(
            &trust,
            &[SourceRecords {
                source: "x.".into(),
                texts: out.rejected.iter().map(|r| r.record.clone()).collect()
            }]
        ),
        vec![]
    );
}

#[test]
fn certificate_failures() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let rec = fx.sign(
        &fx.signing,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + DAY,
    );

    let expired = fx.cert(&fx.root, MA, &fx.signing, now - 20 * DAY, now - DAY);
    let r =
        only_reason(&fx.run(&trust, ALICE, vec![rec.clone()], vec![expired.clone()])).to_owned();
    assert!(
        r.starts_with("certificate for signing key 77rh7k568giju12i: expired at "),
        "{r}"
    );

    let unpinned = fx.cert(&fx.provider, MA, &fx.signing, now - DAY, now + 20 * DAY);
    let r = only_reason(&fx.run(&trust, ALICE, vec![rec.clone()], vec![unpinned])).to_owned();
    assert!(
        r.contains("signed by root key rb077o0i7ffab7ep, which is not pinned for ma.example.net"),
        "{r}"
    );

    let wrong_authority = fx.cert(&fx.root, CHAT, &fx.signing, now - DAY, now + 20 * DAY);
    let r =
        only_reason(&fx.run(&trust, ALICE, vec![rec.clone()], vec![wrong_authority])).to_owned();
    assert!(
        r.contains("certificate names authority chat.example.org, not ma.example.net"),
        "{r}"
    );

    // A tampered certificate (window stretched after signing).
    let good = fx.cert_text();
    let tampered = good.replace("x=1780099200", "x=1780099201");
    let r = only_reason(&fx.run(&trust, ALICE, vec![rec.clone()], vec![tampered])).to_owned();
    assert!(r.contains("certificate signature does not verify"), "{r}");

    // An expired certificate next to a valid one: the valid one is used.
    let out = fx.run(&trust, ALICE, vec![rec.clone()], vec![expired, good]);
    assert_eq!(out.verified.len(), 1, "{:?}", out.rejected);
}

#[test]
fn kid_mismatches() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    // An assertion signed by a key nobody certified.
    let stranger = SigningKey::from_bytes(&[7u8; 32]);
    let rec = fx.sign(
        &stranger,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + DAY,
    );
    let r = only_reason(&fx.run(&trust, ALICE, vec![rec], vec![fx.cert_text()])).to_owned();
    assert!(
        r.starts_with(&format!(
            "no certificate for signing key {}",
            pk(&stranger).kid()
        )),
        "{r}"
    );

    // A certificate whose k= is not the kid of its pk=, and an assertion
    // that names that k=.
    let fake = pk(&stranger).kid();
    let body = format!(
        "v=mimi1;a={MA};k={fake};pk={};r={};t={};x={}",
        pk(&fx.signing).to_base64url(),
        pk(&fx.root).kid(),
        now - DAY,
        now + 20 * DAY
    );
    let sig = fx.root.sign(&mimi_proto::certificate::signed_bytes(&body));
    let cert = format!("{body};sig={}", encode_signature(&sig));
    let abody = format!(
        "v=mimi1;a={MA};k={fake};s=mimi://chat.example.org/u/alice;t={};x={}",
        now - DAY,
        now + DAY
    );
    let asig = fx.signing.sign(&mimi_proto::assertion::signed_bytes(
        &SiiHash::of_canonical(ALICE),
        &abody,
    ));
    let rec = format!("{abody};sig={}", encode_signature(&asig));
    let r = only_reason(&fx.run(&trust, ALICE, vec![rec], vec![cert])).to_owned();
    assert!(r.contains("k= is not the key id of pk="), "{r}");

    // A pinned root key of another authority does not help.
    let rec = fx.sign(
        &fx.provider,
        MA,
        ALICE,
        "mimi://chat.example.org/u/alice",
        now - DAY,
        now + DAY,
    );
    let r = only_reason(&fx.run(&trust, ALICE, vec![rec], vec![])).to_owned();
    assert!(
        r.starts_with("no certificate for signing key rb077o0i7ffab7ep"),
        "{r}"
    );
}

#[test]
fn label_mismatch_and_copied_records() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    // The provider's record carries h= alice's label; offered for bob.
    let rec = fx.v["assertions"][2]["text"].as_str().unwrap().to_owned();
    let r = only_reason(&fx.run(&trust, BOB_TEL, vec![rec], vec![])).to_owned();
    assert!(r.contains("h= names another SII's label"), "{r}");
}

#[test]
fn malformed_records_name_their_authority_when_possible() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let out = fx.run(
        &trust,
        ALICE,
        vec![
            "v=mimi1;a=ma.example.net;sig=x".into(),
            "v=mimi1;oops".into(),
        ],
        vec![],
    );
    assert!(out.verified.is_empty());
    assert_eq!(out.rejected.len(), 2);
    assert!(out
        .rejected
        .iter()
        .all(|r| r.reason.starts_with("malformed: ")));
    // The authority a malformed record claims is reported when readable.
    assert_eq!(out.rejected[0].authority, Some(name(MA)));
    assert_eq!(out.rejected[1].authority, None);
    let a0 = fx.v["assertions"][0]["text"].as_str().unwrap();
    let missing_k = a0.replace("k=77rh7k568giju12i;", "");
    let out = fx.run(&trust, ALICE, vec![missing_k], vec![]);
    assert!(only_reason(&out).starts_with("malformed: "));
    assert_eq!(out.rejected[0].authority, Some(name(MA)));
}

#[test]
fn record_limit_per_name() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    let texts: Vec<String> = (0..MAX_RECORDS_PER_NAME + 1)
        .map(|i| {
            fx.sign(
                &fx.root,
                MA,
                ALICE,
                &format!("mimi://chat.example.org/u/a{i}"),
                now - DAY,
                now + DAY,
            )
        })
        .collect();
    let out = fx.run(&trust, ALICE, texts.clone(), vec![]);
    assert_eq!(out.verified.len(), MAX_RECORDS_PER_NAME);
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].reason.contains("more than 64 mimi records"),
        "{}",
        out.rejected[0].reason
    );
    assert_eq!(out.rejected[0].record, texts[MAX_RECORDS_PER_NAME]);
    assert_eq!(out.notes.len(), 1);
    // Non-mimi TXT records do not count toward the limit.
    let mut with_noise = texts[..MAX_RECORDS_PER_NAME].to_vec();
    with_noise.extend((0..10).map(|i| format!("spf{i}")));
    let out = fx.run(&trust, ALICE, with_noise, vec![]);
    assert_eq!(out.verified.len(), MAX_RECORDS_PER_NAME);
    assert!(out.rejected.is_empty() && out.notes.is_empty());
}

#[test]
fn certificate_limit_per_authority() {
    let fx = Fx::new();
    let trust = fx.trust(Policy::default());
    let now = fx.now.0;
    // 16 certificates for other keys, then the one we need: ignored.
    let mut certs: Vec<String> = (0..MAX_CERTIFICATES_PER_AUTHORITY as u8)
        .map(|i| {
            fx.cert(
                &fx.root,
                MA,
                &SigningKey::from_bytes(&[i + 1; 32]),
                now - DAY,
                now + DAY,
            )
        })
        .collect();
    certs.push(fx.cert_text());
    let rec = fx.v["assertions"][0]["text"].as_str().unwrap().to_owned();
    let out = fx.run(&trust, ALICE, vec![rec.clone()], certs.clone());
    assert!(out.verified.is_empty());
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(
        out.notes[0].starts_with("_mimi-ma.ma.example.net.: 17 certificates, only the first 16"),
        "{}",
        out.notes[0]
    );
    // Within the limit it is found.
    certs.remove(0);
    let out = fx.run(&trust, ALICE, vec![rec], certs.clone());
    assert_eq!(out.verified.len(), 1);
    assert!(out.notes.is_empty());
}

/// `min_authorities` counts distinct root keys, not names: one key holder
/// listed under two names (or two names whose root keys overlap) is one
/// authority, so it cannot meet `min_authorities = 2` alone.
#[test]
fn min_authorities_counts_root_keys_not_names() {
    let fx = Fx::new();
    let policy = Policy {
        min_authorities: 2,
        ..Policy::default()
    };
    // Two names, one root key (the provider's): both sign alice's mapping.
    let alias = "alias.example.org";
    let other = SigningKey::from_bytes(&[7; 32]);
    let mut trust = TrustStore::new(policy);
    trust
        .add(TrustedAuthority::unscoped(name(CHAT), vec![pk(&fx.provider)]).unwrap())
        .unwrap();
    trust
        .add(TrustedAuthority::unscoped(name(alias), vec![pk(&other), pk(&fx.provider)]).unwrap())
        .unwrap();
    let ssi = "mimi://chat.example.org/u/alice";
    let (t, x) = (fx.now.0 - DAY, fx.now.0 + DAY);
    let a = fx.sign(&fx.provider, CHAT, ALICE, ssi, t, x);
    let b = fx.sign(&fx.provider, alias, ALICE, ssi, t, x);
    let out = fx.run(&trust, ALICE, vec![a.clone(), b.clone()], vec![]);
    assert!(out.verified.is_empty(), "{:?}", out.verified);
    assert_eq!(out.rejected.len(), 2);
    for rej in &out.rejected {
        let r = &rej.reason;
        assert!(
            r.starts_with("only 1 of 2 required independent authorities"),
            "{r}"
        );
        assert!(r.contains("share a root key"), "{r}");
    }
    assert_eq!(trust.independent_count([&name(CHAT), &name(alias)]), 1);

    // With disjoint root keys the same two names are two authorities.
    let mut apart = TrustStore::new(Policy {
        min_authorities: 2,
        ..Policy::default()
    });
    apart
        .add(TrustedAuthority::unscoped(name(CHAT), vec![pk(&fx.provider)]).unwrap())
        .unwrap();
    apart
        .add(TrustedAuthority::unscoped(name(alias), vec![pk(&other)]).unwrap())
        .unwrap();
    let b_other = fx.sign(&other, alias, ALICE, ssi, t, x);
    let ok = fx.run(&apart, ALICE, vec![a, b_other], vec![]);
    assert_eq!(ok.verified.len(), 1, "{:?}", ok.rejected);
    assert_eq!(apart.independent_count([&name(CHAT), &name(alias)]), 2);
}

/// SPEC §5 and `vectors/ssi.json`: the scope check sees exactly the vector's
/// provider host. An authority scoped to `chat.example.org` is believed for
/// an SSI only when its provider host is `chat.example.org`, so
/// `xmpp:alice@evil.example/x@chat.example.org` and its kind are rejected;
/// an SSI without a provider host needs an `ssi_scope` of `*`.
#[test]
fn ssi_vectors_drive_the_scope_check() {
    let fx = Fx::new();
    let path = vectors_dir().join("ssi.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let scoped = |hosts: Vec<HostPattern>| {
        let mut t = TrustStore::new(Policy::default());
        t.add(
            TrustedAuthority::new(
                name(CHAT),
                vec![pk(&fx.provider)],
                vec![SiiPattern::Any],
                hosts,
            )
            .unwrap(),
        )
        .unwrap();
        t
    };
    let chat_only = scoped(vec![HostPattern::parse("chat.example.org").unwrap()]);
    let anything = scoped(vec![HostPattern::Any]);
    let (t, x) = (fx.now.0 - DAY, fx.now.0 + DAY);
    let cases = v["provider_hosts"].as_array().unwrap();
    assert!(cases.len() >= 18);
    for case in cases {
        let ssi = case["ssi"].as_str().unwrap();
        let host = case["provider_host"].as_str();
        let rec = fx.sign(&fx.provider, CHAT, ALICE, ssi, t, x);
        let out = fx.run(&chat_only, ALICE, vec![rec.clone()], vec![]);
        let admitted = host == Some("chat.example.org");
        assert_eq!(
            out.verified.len(),
            usize::from(admitted),
            "{ssi}: {:?}",
            out.rejected
        );
        if !admitted {
            let reason = only_reason(&out);
            assert!(reason.contains("ssi_scope"), "{ssi}: {reason}");
        }
        let out = fx.run(&anything, ALICE, vec![rec], vec![]);
        assert_eq!(out.verified.len(), 1, "{ssi} under *: {:?}", out.rejected);
    }
}
