//! Service-specific identifiers: the URIs assertions map SIIs to (SPEC §5).

use std::fmt;

use crate::name::DomainName;

/// An SSI: an absolute URI `scheme ":" rest` of at most 512 octets whose
/// characters are all allowed in a record value (visible ASCII except `;`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssi(String);

/// Why a string is not an SSI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsiError {
    /// No `scheme:` prefix, or a scheme outside `[a-z][a-z0-9+.-]*`.
    #[error("SSI {0:?} is not an absolute URI with a lowercase scheme (like mimi://host/path or im:user@host)")]
    NoScheme(String),
    /// Nothing after the scheme.
    #[error("SSI {0:?} has nothing after its scheme")]
    Empty(String),
    /// Over 512 octets.
    #[error("SSI is {0} octets long; at most 512 are allowed")]
    TooLong(usize),
    /// A character that must be percent-encoded.
    #[error("SSI {0:?} contains a character that must be percent-encoded (white space, ';', or non-ASCII)")]
    BadCharacter(String),
}

/// Longest SSI (SPEC §5).
pub const MAX_SSI_LEN: usize = 512;

impl Ssi {
    /// Parses an SSI exactly as it appears in an `s=` field.
    pub fn parse(s: &str) -> Result<Self, SsiError> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| SsiError::NoScheme(s.to_owned()))?;
        let mut sb = scheme.bytes();
        let scheme_ok = sb.next().is_some_and(|b| b.is_ascii_lowercase())
            && sb.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
        if !scheme_ok {
            return Err(SsiError::NoScheme(s.to_owned()));
        }
        if rest.is_empty() {
            return Err(SsiError::Empty(s.to_owned()));
        }
        if s.len() > MAX_SSI_LEN {
            return Err(SsiError::TooLong(s.len()));
        }
        if !s.bytes().all(crate::text::is_value_byte) {
            return Err(SsiError::BadCharacter(s.to_owned()));
        }
        Ok(Ssi(s.to_owned()))
    }

    /// Parses an SSI given by a person or a mappings file: characters that a
    /// record value cannot hold (`;`, `%`-less non-ASCII) are percent-encoded
    /// first, as SPEC §5 prescribes. White space and control characters are
    /// still errors, since no URI contains them.
    pub fn from_input(s: &str) -> Result<Self, SsiError> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SsiError::BadCharacter(s.to_owned()));
        }
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if c.is_ascii() && c != ';' {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        Self::parse(&out)
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The provider host (SPEC §5): the host of a hierarchical URI
    /// (`scheme://host/…`), or what follows the last `@` of an
    /// `im:`/`xmpp:`-style URI; `None` otherwise, or when that part is not a
    /// domain name. Scope checks use it, so a URI without a provider host
    /// can only be in an authority's scope when its `ssi_scope` is `*`.
    pub fn provider_host(&self) -> Option<DomainName> {
        let rest = &self.0[self.0.find(':')? + 1..];
        let host = if let Some(hier) = rest.strip_prefix("//") {
            let authority = hier.split(['/', '?', '#']).next()?;
            let hostport = authority.rsplit('@').next()?;
            if hostport.starts_with('[') {
                return None; // IP literal: no domain to scope
            }
            hostport.split(':').next()?
        } else {
            let after = rest.rsplit_once('@')?.1;
            after.split(['/', '?', '#']).next()?
        };
        if host.is_empty() {
            return None;
        }
        DomainName::parse(host).ok()
    }
}

impl fmt::Display for Ssi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ssi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssi({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Option<String> {
        Ssi::parse(s)
            .unwrap()
            .provider_host()
            .map(|h| h.as_str().to_owned())
    }

    #[test]
    fn provider_hosts() {
        assert_eq!(
            host("mimi://chat.example.org/u/alice").as_deref(),
            Some("chat.example.org")
        );
        assert_eq!(
            host("mimi://u@Chat.Example.org:443/x").as_deref(),
            Some("chat.example.org")
        );
        assert_eq!(
            host("im:bob@talk.example.net").as_deref(),
            Some("talk.example.net")
        );
        assert_eq!(host("xmpp:a@b@x.example/res").as_deref(), Some("x.example"));
        assert_eq!(host("urn:uuid:1234"), None);
        assert_eq!(host("mimi://[::1]/x"), None);
    }

    #[test]
    fn parse_rules() {
        assert!(Ssi::parse("Mimi://x").is_err());
        assert!(Ssi::parse("mimi:").is_err());
        assert!(Ssi::parse("nocolon").is_err());
        assert!(Ssi::parse("im:a;b@x").is_err());
        assert!(Ssi::parse(&format!("im:{}", "a".repeat(510))).is_err());
        assert!(Ssi::parse(&format!("im:{}", "a".repeat(509))).is_ok());
        assert_eq!(
            Ssi::from_input("im:a;ö@x.example").unwrap().as_str(),
            "im:a%3B%C3%B6@x.example"
        );
        assert!(Ssi::from_input("im:a b@x").is_err());
    }
}
