//! Key certificates: an authority's root key vouching for a short-lived
//! signing key (SPEC §6).

use ed25519_dalek::{Signer, SigningKey};

use crate::key::{KeyId, PublicKey};
use crate::name::AuthorityName;
use crate::text::{encode_signature, RecordError, RecordText};
use crate::time::UnixTime;

/// Domain separation prefix of certificate signatures.
pub const CERTIFICATE_CONTEXT: &[u8] = b"mimi-dns-v1:key\0";

/// The bytes a certificate signature covers: `"mimi-dns-v1:key" 0x00 || body`.
pub fn signed_bytes(body: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CERTIFICATE_CONTEXT.len() + body.len());
    m.extend_from_slice(CERTIFICATE_CONTEXT);
    m.extend_from_slice(body.as_bytes());
    m
}

/// A well-formed certificate record whose signature is not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    record: RecordText,
    authority: AuthorityName,
    kid: KeyId,
    key: PublicKey,
    root: KeyId,
    not_before: UnixTime,
    expires: UnixTime,
}

/// Why a certificate fails its signature check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateVerifyError {
    /// `k` is not the kid of `pk`.
    #[error("k= is not the key id of pk=")]
    KidMismatch,
    /// The root signature does not verify.
    #[error("certificate signature does not verify under the pinned root key")]
    BadSignature,
}

fn field_err(key: &'static str, e: impl ToString) -> RecordError {
    RecordError::BadField {
        key,
        why: e.to_string(),
    }
}

impl Certificate {
    /// Parses a certificate record text strictly (SPEC §4, §6).
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let record = RecordText::parse(text)?;
        let authority =
            AuthorityName::parse_canonical(record.require("a")?).map_err(|e| field_err("a", e))?;
        let kid = KeyId::parse(record.require("k")?).map_err(|e| field_err("k", e))?;
        let key =
            PublicKey::from_base64url(record.require("pk")?).map_err(|e| field_err("pk", e))?;
        let root = KeyId::parse(record.require("r")?).map_err(|e| field_err("r", e))?;
        let (not_before, expires) = record.window()?;
        Ok(Certificate {
            record,
            authority,
            kid,
            key,
            root,
            not_before,
            expires,
        })
    }

    /// Checks that `k` names `pk` and that `root` signed this certificate.
    pub fn verify(&self, root: &PublicKey) -> Result<(), CertificateVerifyError> {
        if self.key.kid() != self.kid {
            return Err(CertificateVerifyError::KidMismatch);
        }
        if root.verify_strict(&signed_bytes(self.record.body()), self.record.signature()) {
            Ok(())
        } else {
            Err(CertificateVerifyError::BadSignature)
        }
    }

    /// The full record text.
    pub fn text(&self) -> &str {
        self.record.as_str()
    }
    /// `a=`
    pub fn authority(&self) -> &AuthorityName {
        &self.authority
    }
    /// `k=`
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }
    /// `pk=`
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// `r=`
    pub fn root_kid(&self) -> &KeyId {
        &self.root
    }
    /// `t=`
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }
    /// `x=`
    pub fn expires(&self) -> UnixTime {
        self.expires
    }
}

/// A certificate before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedCertificate {
    /// `a=`
    pub authority: AuthorityName,
    /// The certified signing key (`pk=`, and `k=` is derived from it).
    pub key: PublicKey,
    /// `t=`
    pub not_before: UnixTime,
    /// `x=`
    pub expires: UnixTime,
}

impl UnsignedCertificate {
    /// Signs with the authority's root key.
    pub fn sign(&self, root: &SigningKey) -> Result<Certificate, crate::assertion::SignError> {
        if self.expires <= self.not_before {
            return Err(crate::assertion::SignError::EmptyWindow);
        }
        let root_pk = PublicKey::from_verifying_key(root.verifying_key())
            .expect("a key we generated or loaded is not weak");
        let body = format!(
            "v=mimi1;a={};k={};pk={};r={};t={};x={}",
            self.authority,
            self.key.kid(),
            self.key.to_base64url(),
            root_pk.kid(),
            self.not_before,
            self.expires
        );
        let sig = root.sign(&signed_bytes(&body));
        Ok(Certificate::parse(&format!(
            "{body};sig={}",
            encode_signature(&sig)
        ))?)
    }
}
