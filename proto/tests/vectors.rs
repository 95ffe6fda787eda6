//! The normative test vectors of `shared/vectors/`, byte for byte.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use mimi_proto::name::{discovery_name, home_zone};
use mimi_proto::{
    text::split_txt, Assertion, AuthorityName, Certificate, DomainName, PublicKey, Region, Sii,
    SiiHash, Ssi, UnixTime, UnsignedAssertion, UnsignedCertificate,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MIMI_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors")
}

fn load(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read test vectors at {}: {e} (set MIMI_VECTORS_DIR)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn key(v: &Value, name: &str) -> SigningKey {
    let hex = v["keys"][name]["seed_hex"].as_str().unwrap();
    let bytes = data_encoding_hex(hex);
    SigningKey::from_bytes(&bytes.try_into().unwrap())
}

fn data_encoding_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn canonical_vectors() {
    let v = load("canonical.json");
    let root = DomainName::parse(v["tel_root"].as_str().unwrap()).unwrap();
    let valid = v["valid"].as_array().unwrap();
    assert!(valid.len() >= 6);
    for case in valid {
        let input = case["input"].as_str().unwrap();
        let region: Option<Region> = case["region"].as_str().map(|r| r.parse().unwrap());
        let sii = Sii::parse(input, region).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(
            sii.as_str(),
            case["canonical"].as_str().unwrap(),
            "{input:?}"
        );
        assert_eq!(
            sii.hash().to_hex(),
            case["sha256_hex"].as_str().unwrap(),
            "{input:?}"
        );
        assert_eq!(
            sii.label().as_str(),
            case["label"].as_str().unwrap(),
            "{input:?}"
        );
        let home = home_zone(&sii, Some(&root)).unwrap();
        assert_eq!(
            discovery_name(&sii.label(), &home).unwrap().fqdn(),
            case["home_name"].as_str().unwrap()
        );
        if let Some(z) = case["distribution_zone"].as_str() {
            let zone = DomainName::parse(z).unwrap();
            assert_eq!(
                discovery_name(&sii.label(), &zone).unwrap().fqdn(),
                case["distribution_name"].as_str().unwrap()
            );
        }
    }
    let invalid = v["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for case in invalid {
        let input = case["input"].as_str().unwrap();
        let region: Option<Region> = case["region"].as_str().map(|r| r.parse().unwrap());
        let err = Sii::parse(input, region).expect_err(input);
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn key_vectors() {
    let v = load("records.json");
    for name in ["root", "signing", "provider_root"] {
        let pk = PublicKey::from_verifying_key(key(&v, name).verifying_key()).unwrap();
        assert_eq!(
            pk.to_base64url(),
            v["keys"][name]["public_b64url"].as_str().unwrap()
        );
        assert_eq!(pk.kid().as_str(), v["keys"][name]["kid"].as_str().unwrap());
    }
}

#[test]
fn certificate_vector_is_reproduced_byte_for_byte() {
    let v = load("records.json");
    let c = &v["certificate"];
    let text = c["text"].as_str().unwrap();
    let parsed = Certificate::parse(text).unwrap();
    let unsigned = UnsignedCertificate {
        authority: AuthorityName::parse(c["authority"].as_str().unwrap()).unwrap(),
        key: PublicKey::from_verifying_key(key(&v, "signing").verifying_key()).unwrap(),
        not_before: parsed.not_before(),
        expires: parsed.expires(),
    };
    let made = unsigned.sign(&key(&v, "root")).unwrap();
    assert_eq!(made.text(), text);
    let strings: Vec<&str> = c["txt_strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(split_txt(made.text()), strings);
    assert_eq!(
        made.authority().certificate_name().fqdn(),
        c["owner"].as_str().unwrap()
    );
    let root = PublicKey::from_verifying_key(key(&v, "root").verifying_key()).unwrap();
    made.verify(&root).unwrap();
    let signing = PublicKey::from_verifying_key(key(&v, "signing").verifying_key()).unwrap();
    assert!(made.verify(&signing).is_err());
}

#[test]
fn assertion_vectors_are_reproduced_byte_for_byte() {
    let v = load("records.json");
    for a in v["assertions"].as_array().unwrap() {
        let text = a["text"].as_str().unwrap();
        let parsed = Assertion::parse(text).unwrap();
        let signer = if a["signed_by"]
            .as_str()
            .unwrap()
            .starts_with("provider_root")
        {
            "provider_root"
        } else {
            "signing"
        };
        let sii = Sii::parse(a["sii"].as_str().unwrap(), None).unwrap();
        assert_eq!(sii.as_str(), a["sii"].as_str().unwrap());
        let extensions: Vec<(String, String)> = parsed
            .record()
            .fields()
            .iter()
            .filter(|(k, _)| !["v", "a", "k", "s", "t", "x", "h", "sig"].contains(&k.as_str()))
            .cloned()
            .collect();
        let unsigned = UnsignedAssertion {
            authority: AuthorityName::parse(a["authority"].as_str().unwrap()).unwrap(),
            ssi: Ssi::parse(a["ssi"].as_str().unwrap()).unwrap(),
            not_before: UnixTime(a["t"].as_u64().unwrap()),
            expires: UnixTime(a["x"].as_u64().unwrap()),
            include_label: parsed.label().is_some(),
            extensions,
        };
        let made = unsigned.sign(&sii.hash(), &key(&v, signer)).unwrap();
        assert_eq!(made.text(), text);
        let pk = PublicKey::from_verifying_key(key(&v, signer).verifying_key()).unwrap();
        made.verify(&sii.hash(), &pk).unwrap();
        // Replayed under another SII's name: fails.
        let other = SiiHash::of_canonical("mailto:mallory@example.com");
        assert!(made.verify(&other, &pk).is_err());
        let owner = a["owner"].as_str().unwrap();
        let label = sii.label();
        assert!(owner.starts_with(&format!("{label}.{}._mimi.", label.shard())));
    }
}

#[test]
fn invalid_record_vectors_fail_signature_or_grammar_where_that_is_the_reason() {
    // Policy reasons (expiry, window length) are the resolver's; see
    // mimi-resolver's verify tests, which run every invalid vector.
    let v = load("records.json");
    let signing = PublicKey::from_verifying_key(key(&v, "signing").verifying_key()).unwrap();
    for case in v["invalid"].as_array().unwrap() {
        let why = case["why"].as_str().unwrap();
        let sii = Sii::parse(case["sii"].as_str().unwrap(), None).unwrap();
        let res = Assertion::parse(case["text"].as_str().unwrap())
            .map_err(|e| e.to_string())
            .and_then(|a| a.verify(&sii.hash(), &signing).map_err(|e| e.to_string()));
        if why.contains("signature") || why.contains("flipped") {
            assert!(res.is_err(), "{why}");
        }
        if why.contains("time out of range") || why.contains("not allowed in a URI") {
            let e = Assertion::parse(case["text"].as_str().unwrap()).expect_err(why);
            assert!(!e.to_string().is_empty());
        }
        if why.starts_with("x not after t") {
            assert!(res.unwrap_err().contains("not after"), "{why}");
        }
    }
}

#[test]
fn ssi_vectors_give_the_provider_host_or_none() {
    let v = load("ssi.json");
    let cases = v["provider_hosts"].as_array().unwrap();
    assert!(cases.len() >= 18);
    for case in cases {
        let text = case["ssi"].as_str().unwrap();
        let ssi = Ssi::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let host = ssi.provider_host().map(|h| h.as_str().to_owned());
        assert_eq!(host.as_deref(), case["provider_host"].as_str(), "{text:?}");
    }
    let invalid = v["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for case in invalid {
        let text = case["ssi"].as_str().unwrap();
        let why = case["why"].as_str().unwrap();
        assert!(Ssi::parse(text).is_err(), "{text:?} ({why}) was accepted");
    }
}
