//! Seals on the zone files the publisher writes and later reuses.
//!
//! A restarted server (from `--state-dir`) and a repeated `build --out`
//! read back the zone they wrote last time and copy its signatures instead
//! of signing again. Without a check, whoever can write that file could
//! make the publisher serve records it never signed (a changed `sig=`
//! passes every comparison the reuse makes, and resolvers then reject the
//! user's records for up to two weeks). Verifying every reused signature
//! costs more than signing it afresh (an Ed25519 verification is about
//! twice a signing), so instead the writer appends a keyed digest: the
//! last line of the file is
//!
//! ```text
//! ; mimi-publisher seal hmac-sha256:<64 hex digits>
//! ```
//!
//! an HMAC-SHA-256 over every byte before that line, keyed with a key
//! derived from the zone's signing key ([`SealKey`]). A file whose seal
//! verifies under the current key was written by this publisher with this
//! key, so its records carry signatures the publisher made; any other file
//! (no seal, another key, a changed byte, a truncated file) is not reused.
//! Checking costs one pass of SHA-256 over the file (tens of milliseconds
//! for 100 000 records). DNS servers read the seal as a comment.

use std::io::Write;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// What starts the seal line.
const PREFIX: &str = "; mimi-publisher seal hmac-sha256:";

/// The HMAC key for seals, derived from a signing key (one-way, so a seal
/// reveals nothing about the signing key, and domain-separated from the
/// signatures).
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The seal key of zones signed from a key bundle: derived from the
    /// bundle's seal secret, so that it stays the same when the signing key
    /// rolls over (a key switch must not make the server's own zone file
    /// untrusted, or every record would be signed afresh at once).
    pub fn from_bundle_secret(secret: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"mimi-publisher zone file seal v1 bundle\0");
        h.update(secret);
        SealKey(h.finalize().into())
    }

    /// The seal key of zones signed with `key`.
    pub fn from_signing_key(key: &SigningKey) -> Self {
        let mut h = Sha256::new();
        h.update(b"mimi-publisher zone file seal v1\0");
        h.update(key.to_bytes());
        SealKey(h.finalize().into())
    }
}

/// The seal key of the zones built from `config`: that of its signing key,
/// if it has one and the key loads (`None` otherwise: nothing signed, so
/// nothing to reuse).
pub fn key_for(config: &crate::input::config::ZoneConfig) -> Option<SealKey> {
    let auth = config.authority.as_ref()?;
    if let Some(b) = &auth.bundle {
        return crate::input::bundle::read_seal(&b.dir).map(|s| SealKey::from_bundle_secret(&s));
    }
    let path = auth.key.as_ref()?;
    crate::input::keys::load_signing_key(path)
        .ok()
        .map(|k| SealKey::from_signing_key(&k))
}

/// HMAC-SHA-256 (RFC 2104), incrementally.
struct Hmac {
    inner: Sha256,
    outer_pad: [u8; 64],
}

impl Hmac {
    fn new(key: &SealKey) -> Self {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, b) in key.0.iter().enumerate() {
            ipad[i] ^= b;
            opad[i] ^= b;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        Hmac {
            inner,
            outer_pad: opad,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    fn finish(self) -> [u8; 32] {
        let mut outer = Sha256::new();
        outer.update(self.outer_pad);
        outer.update(self.inner.finalize());
        outer.finalize().into()
    }
}

/// HMAC-SHA-256 under `key` of the concatenation of `parts`: the checksum
/// of each entry of an IXFR journal kept next to a sealed zone
/// (`crate::zone::journal`), so that the same key that lets a kept zone
/// lend its records lets its journal be served.
pub(crate) fn mac(key: &SealKey, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Hmac::new(key);
    for p in parts {
        h.update(p);
    }
    h.finish()
}

fn seal_line(mac: [u8; 32]) -> String {
    let mut line = String::with_capacity(PREFIX.len() + 65);
    line.push_str(PREFIX);
    for b in mac {
        line.push_str(&format!("{b:02x}"));
    }
    line.push('\n');
    line
}

/// A writer that passes bytes on and seals them: [`SealingWriter::finish`]
/// appends the seal line for everything written.
pub struct SealingWriter<W: Write> {
    inner: W,
    mac: Option<Hmac>,
}

impl<W: Write> SealingWriter<W> {
    /// Seals what is written to `inner` with `key`; `None` writes no seal.
    pub fn new(inner: W, key: Option<&SealKey>) -> Self {
        SealingWriter {
            inner,
            mac: key.map(Hmac::new),
        }
    }

    /// Appends the seal line (if sealing) and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(mac) = self.mac.take() {
            self.inner.write_all(seal_line(mac.finish()).as_bytes())?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(mac) = &mut self.mac {
            mac.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `text` followed by its seal line.
pub fn seal(text: &str, key: &SealKey) -> String {
    let mut mac = Hmac::new(key);
    mac.update(text.as_bytes());
    let mut out = String::with_capacity(text.len() + PREFIX.len() + 65);
    out.push_str(text);
    out.push_str(&seal_line(mac.finish()));
    out
}

/// Why a file's seal does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The file has no seal line (written by an older publisher, by hand,
    /// or truncated).
    #[error("it has no seal")]
    Missing,
    /// The seal does not match: the file was changed after it was written,
    /// or it was written with another signing key.
    #[error("its seal does not match the current signing key (written with another key, or changed since)")]
    Mismatch,
}

/// Splits a sealed text into the text before its seal line and whether the
/// seal is present. Never fails: use [`open`] to check the seal.
pub fn body(text: &str) -> &str {
    split(text).map_or(text, |(body, _)| body)
}

fn split(text: &str) -> Option<(&str, &str)> {
    let without_nl = text.strip_suffix('\n')?;
    let start = without_nl.rfind('\n').map_or(0, |i| i + 1);
    let hex = without_nl[start..].strip_prefix(PREFIX)?;
    Some((&text[..start], hex))
}

/// The text before the seal, if the seal verifies under `key`.
pub fn open<'t>(text: &'t str, key: &SealKey) -> Result<&'t str, SealError> {
    let (body, hex) = split(text).ok_or(SealError::Missing)?;
    let mut mac = Hmac::new(key);
    mac.update(body.as_bytes());
    let expected = seal_line(mac.finish());
    let expected = &expected[PREFIX.len()..expected.len() - 1];
    // Constant time, though a timing oracle on a local file is far-fetched.
    let differ = expected.len() != hex.len()
        || expected
            .bytes()
            .zip(hex.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0;
    if differ {
        return Err(SealError::Mismatch);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key; ours are 32 bytes, so
        // check the construction with a 32-byte key against a computed
        // value from an independent implementation (openssl):
        // printf 'what do ya want for nothing?' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0101..01
        let key = SealKey([1u8; 32]);
        let mut mac = Hmac::new(&key);
        mac.update(b"what do ya want for nothing?");
        let got: String = mac.finish().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, include_str!("../../tests/data/hmac-32x01.hex").trim());
    }

    #[test]
    fn seals_open_only_unchanged_under_the_same_key() {
        let k1 = SealKey::from_signing_key(&SigningKey::from_bytes(&[7u8; 32]));
        let k2 = SealKey::from_signing_key(&SigningKey::from_bytes(&[8u8; 32]));
        let text = "; zone\nx. 1 IN TXT \"a\"\n";
        let sealed = seal(text, &k1);
        assert_eq!(open(&sealed, &k1), Ok(text));
        assert_eq!(open(&sealed, &k2), Err(SealError::Mismatch));
        assert_eq!(open(text, &k1), Err(SealError::Missing));
        let tampered = sealed.replace("\"a\"", "\"b\"");
        assert_eq!(open(&tampered, &k1), Err(SealError::Mismatch));
        // Truncated: the seal line is gone or cut.
        assert!(open(&sealed[..sealed.len() - 5], &k1).is_err());
        assert_eq!(body(&sealed), text);
        assert_eq!(body(text), text);
        // The writer seals what the function does.
        let mut w = SealingWriter::new(Vec::new(), Some(&k1));
        w.write_all(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), sealed);
    }
}
