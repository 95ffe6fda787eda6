//! Assertions: signed SII → SSI mappings (SPEC §5).

use ed25519_dalek::{Signer, SigningKey};

use crate::key::{KeyId, PublicKey};
use crate::label::{Label, SiiHash};
use crate::name::AuthorityName;
use crate::ssi::Ssi;
use crate::text::{encode_signature, RecordError, RecordText};
use crate::time::UnixTime;
use crate::MAX_RECORD_LEN;

/// Domain separation prefix of assertion signatures.
pub const ASSERTION_CONTEXT: &[u8] = b"mimi-dns-v1:assertion\0";

/// The bytes an assertion signature covers:
/// `"mimi-dns-v1:assertion" 0x00 || h || body`.
pub fn signed_bytes(hash: &SiiHash, body: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(ASSERTION_CONTEXT.len() + 32 + body.len());
    m.extend_from_slice(ASSERTION_CONTEXT);
    m.extend_from_slice(hash.as_bytes());
    m.extend_from_slice(body.as_bytes());
    m
}

/// A well-formed assertion record. Its signature is *not* yet checked:
/// that needs the SII hash and the authority's key, see [`Assertion::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    record: RecordText,
    authority: AuthorityName,
    kid: KeyId,
    ssi: Ssi,
    not_before: UnixTime,
    expires: UnixTime,
    label: Option<Label>,
}

impl Assertion {
    /// Parses an assertion record text strictly (SPEC §4, §5).
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let record = RecordText::parse(text)?;
        let authority = AuthorityName::parse_canonical(record.require("a")?).map_err(|e| {
            RecordError::BadField {
                key: "a",
                why: e.to_string(),
            }
        })?;
        let kid = KeyId::parse(record.require("k")?).map_err(|e| RecordError::BadField {
            key: "k",
            why: e.to_string(),
        })?;
        let ssi = Ssi::parse(record.require("s")?).map_err(|e| RecordError::BadField {
            key: "s",
            why: e.to_string(),
        })?;
        let (not_before, expires) = record.window()?;
        let label = record
            .get("h")
            .map(|h| {
                Label::parse(h).map_err(|e| RecordError::BadField {
                    key: "h",
                    why: e.to_string(),
                })
            })
            .transpose()?;
        Ok(Assertion {
            record,
            authority,
            kid,
            ssi,
            not_before,
            expires,
            label,
        })
    }

    /// The full record text.
    pub fn text(&self) -> &str {
        self.record.as_str()
    }

    /// The signing authority (`a=`).
    pub fn authority(&self) -> &AuthorityName {
        &self.authority
    }

    /// The signing key's id (`k=`).
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The SSI (`s=`).
    pub fn ssi(&self) -> &Ssi {
        &self.ssi
    }

    /// Not before (`t=`).
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// Expiry (`x=`).
    pub fn expires(&self) -> UnixTime {
        self.expires
    }

    /// The optional `h=` label.
    pub fn label(&self) -> Option<&Label> {
        self.label.as_ref()
    }

    /// The generic record view (for unknown fields).
    pub fn record(&self) -> &RecordText {
        &self.record
    }

    /// Checks the signature over `hash` with `key` (strict Ed25519), and
    /// that an `h=` field, if present, is the label of `hash`. Validity
    /// windows and trust are the caller's policy.
    pub fn verify(&self, hash: &SiiHash, key: &PublicKey) -> Result<(), AssertionVerifyError> {
        if let Some(l) = &self.label {
            if *l != hash.label() {
                return Err(AssertionVerifyError::LabelMismatch);
            }
        }
        if key.verify_strict(
            &signed_bytes(hash, self.record.body()),
            self.record.signature(),
        ) {
            Ok(())
        } else {
            Err(AssertionVerifyError::BadSignature)
        }
    }
}

/// Why an assertion's signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionVerifyError {
    /// The signature does not verify for this SII under this key: the record
    /// was altered, signed by another key, or copied from another SII's name.
    #[error("signature does not verify for this SII under the authority's key (altered, wrong key, or copied from another SII)")]
    BadSignature,
    /// The `h=` field names another SII.
    #[error("h= names another SII's label")]
    LabelMismatch,
}

/// The fields of an assertion before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedAssertion {
    /// `a=`
    pub authority: AuthorityName,
    /// `s=`
    pub ssi: Ssi,
    /// `t=`
    pub not_before: UnixTime,
    /// `x=`
    pub expires: UnixTime,
    /// Whether to include `h=<label>` (required in privacy buckets).
    pub include_label: bool,
    /// Extra `key=value` fields placed after `h`, before `sig` (forward
    /// compatibility; covered by the signature).
    pub extensions: Vec<(String, String)>,
}

/// Why an assertion could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// `x <= t`.
    #[error("expiry must be after not-before")]
    EmptyWindow,
    /// The result would not parse back (too long, bad extension key...).
    #[error("the signed record would be malformed: {0}")]
    Malformed(#[from] RecordError),
}

impl UnsignedAssertion {
    /// The record body (everything before `;sig=`) for `hash` signed by `kid`.
    pub fn body(&self, hash: &SiiHash, kid: &KeyId) -> String {
        let mut body = format!(
            "v=mimi1;a={};k={};s={};t={};x={}",
            self.authority, kid, self.ssi, self.not_before, self.expires
        );
        if self.include_label {
            body.push_str(";h=");
            body.push_str(hash.label().as_str());
        }
        for (k, v) in &self.extensions {
            body.push(';');
            body.push_str(k);
            body.push('=');
            body.push_str(v);
        }
        body
    }

    /// Signs for the SII whose hash is `hash` with `key`. Ed25519 is
    /// deterministic, so the same inputs always give the same record.
    pub fn sign(&self, hash: &SiiHash, key: &SigningKey) -> Result<Assertion, SignError> {
        if self.expires <= self.not_before {
            return Err(SignError::EmptyWindow);
        }
        let pk = PublicKey::from_verifying_key(key.verifying_key())
            .expect("a key we generated or loaded is not weak");
        let body = self.body(hash, &pk.kid());
        if body.len() + ";sig=".len() + 86 > MAX_RECORD_LEN {
            return Err(SignError::Malformed(RecordError::TooLong(body.len() + 91)));
        }
        let sig = key.sign(&signed_bytes(hash, &body));
        let text = format!("{body};sig={}", encode_signature(&sig));
        Ok(Assertion::parse(&text)?)
    }
}
