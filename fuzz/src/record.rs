//! The record grammar, assertions, certificates and SSIs (SPEC §4–§6).
//!
//! Input: a record text. Properties:
//!
//! * [`RecordText::parse`] accepts exactly what it can give back: the text
//!   is the fields joined by `;`, the body is the text less `;sig=…`, the
//!   signature re-encodes to the `sig` value, and a re-parse is equal;
//! * an accepted record obeys the grammar: at most 1024 octets, printable
//!   ASCII, `v=mimi1` first, `sig` last, keys `[a-z0-9]+` and distinct;
//! * every accepted assertion or certificate is an accepted record, and its
//!   typed fields are the record's fields re-parsed; its validity window
//!   is non-empty and within the year 9999;
//! * each SSI accepted (the whole input, or an assertion's `s=`) is at most
//!   512 octets, re-parses to itself, and its provider host, if any, is a
//!   canonical domain name.
//!
//! Every accepted assertion is also re-signed with a fixed key and the
//! result must verify under that key and no other.

use mimi_proto::assertion::AssertionVerifyError;
use mimi_proto::text::{encode_signature, split_txt};
use mimi_proto::{
    Assertion, AuthorityName, Certificate, DomainName, KeyId, Label, PublicKey, RecordText,
    SiiHash, Ssi, UnixTime, MAX_RECORD_LEN,
};

use crate::fixtures::KeyName;

/// The target body.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    check_ssi(text);
    if let Ok(record) = RecordText::parse(text) {
        check_record(text, &record);
    }
    if let Ok(a) = Assertion::parse(text) {
        check_assertion(text, &a);
    }
    if let Ok(c) = Certificate::parse(text) {
        check_certificate(text, &c);
    }
}

fn check_record(text: &str, r: &RecordText) {
    assert_eq!(r.as_str(), text);
    assert!(text.len() <= MAX_RECORD_LEN);
    assert!(
        text.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "printable ASCII"
    );
    let fields = r.fields();
    assert_eq!(fields[0], ("v".to_owned(), "mimi1".to_owned()));
    assert_eq!(fields.last().map(|(k, _)| k.as_str()), Some("sig"));
    for (i, (k, v)) in fields.iter().enumerate() {
        assert!(
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert!(!v.is_empty() && !v.contains(';'));
        assert!(
            fields[..i].iter().all(|(k2, _)| k2 != k),
            "duplicate key {k}"
        );
        assert_eq!(r.get(k), Some(v.as_str()));
    }
    let joined: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(joined.join(";"), text, "fields re-join to the text");
    let sig = encode_signature(r.signature());
    assert_eq!(
        format!("{};sig={sig}", r.body()),
        text,
        "body + sig is the text"
    );
    assert_eq!(RecordText::parse(text).as_ref(), Ok(r));
    assert_eq!(split_txt(text).concat(), text);
    assert!(split_txt(text).iter().all(|s| s.len() <= 255));
    if let Ok((t, x)) = r.window() {
        assert!(t < x && x <= UnixTime::MAX_RECORD);
        assert_eq!(r.get("t"), Some(t.0.to_string().as_str()));
        assert_eq!(r.get("x"), Some(x.0.to_string().as_str()));
    }
}

fn check_assertion(text: &str, a: &Assertion) {
    let r = RecordText::parse(text).expect("an assertion is a record");
    assert_eq!(a.text(), text);
    assert_eq!(a.record(), &r);
    assert_eq!(
        a.authority(),
        &AuthorityName::parse_canonical(r.get("a").expect("a=")).expect("a= re-parses")
    );
    assert_eq!(
        a.kid(),
        &KeyId::parse(r.get("k").expect("k=")).expect("k= re-parses")
    );
    assert_eq!(a.ssi().as_str(), r.get("s").expect("s="));
    assert_eq!(r.window(), Ok((a.not_before(), a.expires())));
    assert_eq!(a.label().map(Label::as_str), r.get("h"));
    check_ssi(a.ssi().as_str());
    // The signature covers the SII hash and every body byte: under a
    // random hash (almost surely not the one signed) it never verifies
    // unless an attacker found a collision.
    let hash = SiiHash::of_canonical(text);
    if a.label().is_none_or(|l| *l == hash.label()) {
        for k in [
            KeyName::Root,
            KeyName::Signing,
            KeyName::ProviderRoot,
            KeyName::Attacker,
        ] {
            assert_eq!(
                a.verify(&hash, &k.public()),
                Err(AssertionVerifyError::BadSignature),
                "a fuzzed assertion verifies"
            );
        }
    } else {
        assert_eq!(
            a.verify(&hash, &KeyName::Root.public()),
            Err(AssertionVerifyError::LabelMismatch)
        );
    }
}

fn check_certificate(text: &str, c: &Certificate) {
    let r = RecordText::parse(text).expect("a certificate is a record");
    assert_eq!(c.text(), text);
    assert_eq!(c.authority().as_str(), r.get("a").expect("a="));
    assert_eq!(c.kid().as_str(), r.get("k").expect("k="));
    assert_eq!(c.root_kid().as_str(), r.get("r").expect("r="));
    assert_eq!(
        c.key(),
        &PublicKey::from_base64url(r.get("pk").expect("pk=")).expect("pk= re-parses")
    );
    assert_eq!(c.key().to_base64url(), r.get("pk").expect("pk="));
    assert_eq!(r.window(), Ok((c.not_before(), c.expires())));
    // A certificate verifies under a root only if kid matches pk; a fuzzed
    // one verifies under none of the fixed keys unless it is a vector.
    if c.verify(&KeyName::Root.public()).is_ok() {
        assert_eq!(c.kid(), &c.key().kid());
    }
}

/// Checks the SSI rules for `s`, if it is one.
pub fn check_ssi(s: &str) {
    let Ok(ssi) = Ssi::parse(s) else {
        return;
    };
    assert_eq!(ssi.as_str(), s);
    assert!(s.len() <= 512);
    assert_eq!(Ssi::parse(ssi.as_str()).as_ref(), Ok(&ssi));
    assert_eq!(
        Ssi::from_input(s).as_ref(),
        Ok(&ssi),
        "from_input keeps a valid SSI"
    );
    if let Some(host) = ssi.provider_host() {
        assert_eq!(
            DomainName::parse_canonical(host.as_str()).as_ref(),
            Ok(&host)
        );
        assert!(host.label_count() >= 2);
        assert!(
            !host
                .as_str()
                .rsplit('.')
                .next()
                .expect("label")
                .bytes()
                .all(|b| b.is_ascii_digit()),
            "a numeric last label is an address, not a host"
        );
    }
}
