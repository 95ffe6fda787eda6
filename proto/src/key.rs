//! Ed25519 public keys and key ids (SPEC §4, §6).

use std::fmt;

use data_encoding::{BASE32_DNSSEC, BASE64URL_NOPAD};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

/// A key id: `lowercase(base32hex-nopad(SHA-256(pk)[0..10]))`, 16 characters.
///
/// Records name their signing key by kid so a verifier can pick the key
/// without trying them all.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

/// Why a key or key id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 16 characters of lowercase base32hex.
    #[error("key id {0:?} is not 16 characters of lowercase base32hex (0-9a-v)")]
    BadKeyId(String),
    /// Not 43 characters of base64url decoding to 32 octets.
    #[error("public key {0:?} is not 32 octets in base64url without padding (43 characters)")]
    BadEncoding(String),
    /// Not a point on the curve.
    #[error("public key {0:?} is not a valid Ed25519 point")]
    NotAPoint(String),
    /// A small-order key, which would let anyone forge signatures.
    #[error("public key {0:?} is a weak (small-order) Ed25519 key")]
    Weak(String),
}

impl KeyId {
    /// The kid of a public key.
    pub fn of(pk: &PublicKey) -> Self {
        let digest = Sha256::digest(pk.0.as_bytes());
        KeyId(BASE32_DNSSEC.encode(&digest[..10]))
    }

    /// Parses the `k=`/`r=` field of a record.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let ok = s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
            && BASE32_DNSSEC
                .decode(s.as_bytes())
                .is_ok_and(|v| v.len() == 10);
        if ok {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(KeyError::BadKeyId(s.to_owned()))
        }
    }

    /// The kid text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// An Ed25519 public key that is safe to verify with: on the curve and not
/// of small order (SPEC §4 requires strict verification).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Wraps a dalek key, refusing weak keys.
    pub fn from_verifying_key(vk: VerifyingKey) -> Result<Self, KeyError> {
        if vk.is_weak() {
            return Err(KeyError::Weak(BASE64URL_NOPAD.encode(vk.as_bytes())));
        }
        Ok(PublicKey(vk))
    }

    /// Parses base64url without padding (trust stores, `pk=` fields).
    pub fn from_base64url(s: &str) -> Result<Self, KeyError> {
        let bytes = BASE64URL_NOPAD
            .decode(s.as_bytes())
            .ok()
            .filter(|b| b.len() == 32 && s.len() == 43)
            .ok_or_else(|| KeyError::BadEncoding(s.to_owned()))?;
        let arr: [u8; 32] = bytes.try_into().expect("length checked");
        let vk = VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::NotAPoint(s.to_owned()))?;
        Self::from_verifying_key(vk)
    }

    /// base64url without padding.
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(self.0.as_bytes())
    }

    /// This key's kid.
    pub fn kid(&self) -> KeyId {
        KeyId::of(self)
    }

    /// The dalek key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Strict Ed25519 verification (canonical `S`, no small-order `R`).
    pub fn verify_strict(&self, msg: &[u8], sig: &ed25519_dalek::Signature) -> bool {
        self.0.verify_strict(msg, sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let s = BASE64URL_NOPAD.encode(&identity);
        assert!(matches!(
            PublicKey::from_base64url(&s),
            Err(KeyError::Weak(_))
        ));
        assert!(matches!(
            PublicKey::from_base64url("abc"),
            Err(KeyError::BadEncoding(_))
        ));
        assert!(KeyId::parse("47v33nt1aih62ojb").is_ok());
        assert!(KeyId::parse("47V33NT1AIH62OJB").is_err());
        assert!(KeyId::parse("47v33nt1aih62ojw").is_err());
    }
}
