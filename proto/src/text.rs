//! The record grammar shared by assertions and certificates (SPEC §4).
//!
//! ```text
//! record = field *( ";" field )      field = key "=" value
//! key    = 1*( a-z / 0-9 )           value = 1*( visible ASCII but ";" )
//! ```
//!
//! The first field is `v=mimi1`, the last is `sig`, keys are unique, the
//! whole text is ASCII without white space and at most 1024 octets.
//! [`RecordText::parse`] enforces all of that and nothing more: what the
//! fields *mean* is for [`crate::assertion`] and [`crate::certificate`].

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::Signature;

use crate::time::UnixTime;
use crate::{MAX_RECORD_LEN, VERSION_FIELD};

/// Whether a byte may appear in a field value: `%x21-3A / %x3C-7E`.
pub fn is_value_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b';'
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Why a record was rejected as malformed. The text of each variant is what
/// users see in `rejected` lists and `check` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Over 1024 octets.
    #[error("record is {0} octets long; at most 1024 are allowed")]
    TooLong(usize),
    /// A non-ASCII octet.
    #[error("record contains a non-ASCII octet")]
    NotAscii,
    /// White space or a control character.
    #[error("record contains white space or a control character")]
    WhiteSpace,
    /// Does not start with `v=mimi1;`.
    #[error("record does not start with \"v=mimi1;\"")]
    NotVersion1,
    /// A field without `=`.
    #[error("field {0:?} has no '='")]
    NoEquals(String),
    /// An empty field (`;;`), key or value.
    #[error("empty field, key or value near {0:?}")]
    Empty(String),
    /// A key outside `[a-z0-9]+`.
    #[error("key {0:?} has a character outside a-z, 0-9")]
    BadKey(String),
    /// A key that appears twice.
    #[error("key {0:?} appears more than once")]
    DuplicateKey(String),
    /// The last field is not `sig`.
    #[error("the last field is not sig")]
    SigNotLast,
    /// `sig` is not 86 characters of base64url.
    #[error("sig is not an Ed25519 signature in base64url without padding (86 characters)")]
    BadSignatureEncoding,
    /// A required field is missing.
    #[error("required field {0:?} is missing")]
    Missing(&'static str),
    /// `t` or `x` is not a decimal without leading zeros, or is above
    /// 253402300799 (9999-12-31T23:59:59Z).
    #[error("field {0} is not Unix seconds in decimal without leading zeros, at most 253402300799 (year 9999)")]
    BadTime(&'static str),
    /// `x <= t`.
    #[error("expiry x={x} is not after t={t}")]
    ExpiryNotAfterStart {
        /// not before
        t: u64,
        /// expires
        x: u64,
    },
    /// Any other field whose value breaks its rule.
    #[error("field {key}: {why}")]
    BadField {
        /// The key.
        key: &'static str,
        /// What is wrong, in words.
        why: String,
    },
}

/// A record text that passed the generic grammar: an ordered list of fields
/// whose last one is a well-formed signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordText {
    text: String,
    fields: Vec<(String, String)>,
    signature: Signature,
}

impl RecordText {
    /// Parses a record text strictly (SPEC §4).
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        if text.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLong(text.len()));
        }
        if !text.is_ascii() {
            return Err(RecordError::NotAscii);
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b' ')
        {
            return Err(RecordError::WhiteSpace);
        }
        if !(text.starts_with(VERSION_FIELD)
            && text.as_bytes().get(VERSION_FIELD.len()) == Some(&b';'))
        {
            return Err(RecordError::NotVersion1);
        }
        let mut fields: Vec<(String, String)> = Vec::new();
        for field in text.split(';') {
            if field.is_empty() {
                return Err(RecordError::Empty(field.to_owned()));
            }
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| RecordError::NoEquals(field.to_owned()))?;
            if k.is_empty() || v.is_empty() {
                return Err(RecordError::Empty(field.to_owned()));
            }
            if !k.bytes().all(is_key_byte) {
                return Err(RecordError::BadKey(k.to_owned()));
            }
            // The ASCII, white-space and ';' checks above already confine
            // values to is_value_byte.
            if fields.iter().any(|(fk, _)| fk == k) {
                return Err(RecordError::DuplicateKey(k.to_owned()));
            }
            fields.push((k.to_owned(), v.to_owned()));
        }
        let (last_key, sig) = fields.last().expect("split yields at least one field");
        if last_key != "sig" {
            return Err(RecordError::SigNotLast);
        }
        let signature = decode_signature(sig)?;
        Ok(RecordText {
            text: text.to_owned(),
            fields,
            signature,
        })
    }

    /// The whole record text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The signed part: everything before `;sig=`.
    pub fn body(&self) -> &str {
        let sig_len = self.fields.last().map(|(_, v)| v.len()).unwrap_or(0);
        &self.text[..self.text.len() - sig_len - ";sig=".len()]
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The value of a key, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required key.
    pub fn require(&self, key: &'static str) -> Result<&str, RecordError> {
        self.get(key).ok_or(RecordError::Missing(key))
    }

    /// All fields, in order (including `v` and `sig`).
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Reads the validity window `t`, `x` (SPEC §4).
    pub fn window(&self) -> Result<(UnixTime, UnixTime), RecordError> {
        let t = parse_time(self.require("t")?, "t")?;
        let x = parse_time(self.require("x")?, "x")?;
        if x <= t {
            return Err(RecordError::ExpiryNotAfterStart { t: t.0, x: x.0 });
        }
        Ok((t, x))
    }
}

fn parse_time(v: &str, key: &'static str) -> Result<UnixTime, RecordError> {
    let ok = v.bytes().all(|b| b.is_ascii_digit()) && !(v.len() > 1 && v.starts_with('0'));
    if !ok {
        return Err(RecordError::BadTime(key));
    }
    // A value longer than the maximum's 12 digits is out of range whatever
    // it says; checking the length first keeps the parse from overflowing.
    match v.parse::<u64>() {
        Ok(secs) if v.len() <= 12 && secs <= UnixTime::MAX_RECORD.0 => Ok(UnixTime(secs)),
        _ => Err(RecordError::BadTime(key)),
    }
}

fn decode_signature(s: &str) -> Result<Signature, RecordError> {
    if s.len() != 86 {
        return Err(RecordError::BadSignatureEncoding);
    }
    let bytes = BASE64URL_NOPAD
        .decode(s.as_bytes())
        .map_err(|_| RecordError::BadSignatureEncoding)?;
    let arr: [u8; 64] = bytes
        .try_into()
        .map_err(|_| RecordError::BadSignatureEncoding)?;
    Ok(Signature::from_bytes(&arr))
}

/// Encodes a signature as a `sig` value.
pub fn encode_signature(sig: &Signature) -> String {
    BASE64URL_NOPAD.encode(&sig.to_bytes())
}

/// Splits a record text into DNS character-strings of at most 255 octets
/// (SPEC §4): the record is their concatenation.
pub fn split_txt(text: &str) -> Vec<&str> {
    // Record text is ASCII, so every byte index is a char boundary.
    text.as_bytes()
        .chunks(255)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect()
}

/// Whether the concatenated TXT strings of an RR are a mimi record at all
/// (SPEC §4: other TXT records at the same name are ignored).
pub fn is_mimi_text(text: &[u8]) -> bool {
    text.starts_with(b"v=mimi1;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str =
        "KuvLb-7ME9_ON62PC6LgQucrLAZy0WsmtYKfXvXUGuDYMPF-aOey5E_ISWPfMYTOpKiPQUyhGtUtwvKdITU-Aw";

    fn rec(middle: &str) -> String {
        format!("v=mimi1;{middle}sig={SIG}")
    }

    #[test]
    fn accepts_minimal_and_unknown_keys() {
        let r = RecordText::parse(&rec("a=b;zz9=x=y;")).unwrap();
        assert_eq!(r.get("zz9"), Some("x=y"));
        assert_eq!(r.body(), "v=mimi1;a=b;zz9=x=y");
        let r = RecordText::parse(&rec("")).unwrap();
        assert_eq!(r.body(), "v=mimi1");
    }

    #[test]
    fn grammar_edge_cases() {
        use RecordError::*;
        let e = |s: &str| RecordText::parse(s).unwrap_err();
        assert_eq!(e(&format!("v=mimi2;sig={SIG}")), NotVersion1);
        assert_eq!(e(&format!("v=mimi1x;sig={SIG}")), NotVersion1);
        assert_eq!(e(&format!("a=b;v=mimi1;sig={SIG}")), NotVersion1);
        assert_eq!(e(&rec("a=b;;")), Empty(String::new()));
        assert_eq!(e(&rec("a=;")), Empty("a=".into()));
        assert_eq!(e(&rec("=b;")), Empty("=b".into()));
        assert_eq!(e(&rec("ab;")), NoEquals("ab".into()));
        assert_eq!(e(&rec("A=b;")), BadKey("A".into()));
        assert_eq!(e(&rec("a-b=c;")), BadKey("a-b".into()));
        assert_eq!(e(&rec("a=b;a=c;")), DuplicateKey("a".into()));
        assert_eq!(e(&rec("v=mimi1;")), DuplicateKey("v".into()));
        assert_eq!(e(&rec("a=b c;")), WhiteSpace);
        assert_eq!(e(&rec("a=b\t;")), WhiteSpace);
        assert_eq!(e(&rec("a=bé;")), NotAscii);
        assert_eq!(e(&format!("v=mimi1;sig={SIG};a=b")), SigNotLast);
        assert_eq!(e(&format!("v=mimi1;sig={SIG};")), Empty(String::new()));
        assert_eq!(
            e(&format!("v=mimi1;sig={}", &SIG[..85])),
            BadSignatureEncoding
        );
        assert_eq!(e(&format!("v=mimi1;sig={SIG}A")), BadSignatureEncoding);
        assert_eq!(
            e(&format!("v=mimi1;sig={}", SIG.replace('-', "+"))),
            BadSignatureEncoding
        );
        assert_eq!(e(&rec(&format!("p={};", "a".repeat(1000)))), TooLong(1101));
        assert_eq!(e("v=mimi1"), NotVersion1);
        assert_eq!(e("v=mimi1;a=b"), SigNotLast);
    }

    #[test]
    fn times() {
        let w = |t: &str, x: &str| {
            RecordText::parse(&rec(&format!("t={t};x={x};")))
                .unwrap()
                .window()
        };
        assert!(w("0", "1").is_ok());
        assert_eq!(w("01", "2"), Err(RecordError::BadTime("t")));
        assert_eq!(w("1", "+2"), Err(RecordError::BadTime("x")));
        assert_eq!(
            w("5", "5"),
            Err(RecordError::ExpiryNotAfterStart { t: 5, x: 5 })
        );
        assert_eq!(
            w("1", "99999999999999999999999"),
            Err(RecordError::BadTime("x"))
        );
        // SPEC §4: at most 253402300799 (9999-12-31T23:59:59Z).
        assert!(w("1", "253402300799").is_ok());
        assert_eq!(w("1", "253402300800"), Err(RecordError::BadTime("x")));
        assert_eq!(
            w("300000000000", "300000000001"),
            Err(RecordError::BadTime("t"))
        );
        assert_eq!(
            w("1", &u64::MAX.to_string()),
            Err(RecordError::BadTime("x"))
        );
        assert_eq!(
            w("1", &(i64::MAX as u64 + 1).to_string()),
            Err(RecordError::BadTime("x"))
        );
    }

    #[test]
    fn splitting() {
        let long = "a".repeat(600);
        let parts = split_txt(&long);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        assert_eq!(parts.concat(), long);
    }
}
