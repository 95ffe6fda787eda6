//! Service-specific identifiers: the URIs assertions map SIIs to (SPEC §5).

use std::fmt;

use crate::name::DomainName;

/// An SSI: an absolute URI `scheme ":" rest` of at most 512 octets whose
/// `rest` holds only RFC 3986 characters other than `;` (SPEC §5).
///
/// The character rule matters for security, not only for tidiness: a
/// verifier derives the provider host from the text, and characters that
/// URI parsers disagree on (`\`, `|`, `{`, `"`…) are how one SSI is read as
/// two different hosts by two programs. Refusing them makes the text mean
/// one thing.
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
    /// A character that is not a URI character (or is `;`) and must be
    /// percent-encoded.
    #[error("SSI {0:?} contains {1:?}, which is not allowed in a URI: percent-encode it")]
    BadCharacter(String, char),
    /// A `%` not followed by two hexadecimal digits.
    #[error("SSI {0:?} has a '%' that is not followed by two hexadecimal digits")]
    BadPercent(String),
}

/// Longest SSI (SPEC §5).
pub const MAX_SSI_LEN: usize = 512;

/// RFC 3986 unreserved and reserved characters, without `;` (which separates
/// record fields) and without `%` (checked separately, with its two digits).
fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,=".contains(&b)
}

/// The first byte of `rest` that breaks the §5 character rule, if any.
fn check_rest(s: &str, rest: &str) -> Result<(), SsiError> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(SsiError::BadPercent(s.to_owned()));
            }
            i += 3;
            continue;
        }
        if !is_uri_byte(b) {
            let c = rest[i..].chars().next().unwrap_or('\u{fffd}');
            return Err(SsiError::BadCharacter(s.to_owned(), c));
        }
        i += 1;
    }
    Ok(())
}

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
        check_rest(s, rest)?;
        Ok(Ssi(s.to_owned()))
    }

    /// Parses an SSI given by a person or a mappings file: every character
    /// that an SSI cannot hold (`;`, non-ASCII, `"`, `<`, `>`, `\`, `^`,
    /// `` ` ``, `{`, `|`, `}`) is percent-encoded first, as SPEC §5
    /// prescribes. White space and control characters are still errors (no
    /// URI contains them, and they usually mean a broken file), and so is a
    /// `%` without two hexadecimal digits: whether it was meant literally
    /// (`%25`) or is a typo cannot be told, and guessing would publish a
    /// different SSI than the operator meant.
    pub fn from_input(s: &str) -> Result<Self, SsiError> {
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(SsiError::BadCharacter(s.to_owned(), c));
        }
        let Some(colon) = s.find(':') else {
            return Err(SsiError::NoScheme(s.to_owned()));
        };
        let mut out = String::with_capacity(s.len());
        out.push_str(&s[..=colon]);
        for c in s[colon + 1..].chars() {
            if c.is_ascii() && (c == '%' || is_uri_byte(c as u8)) {
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

    /// The provider host, exactly as SPEC §5 defines it (vectors:
    /// `vectors/ssi.json`); `None` when the SSI has none, so that only an
    /// `ssi_scope` of `*` admits it.
    ///
    /// * `scheme://authority…`: the authority ends at the first `/`, `?` or
    ///   `#`; more than one `@` in it means no host; with one, the userinfo
    ///   before it is dropped; a `:port` (digits only) is dropped; an IP
    ///   literal or an IPv4 address is no host.
    /// * any other URI: the text after the scheme's `:` up to the first `/`,
    ///   `?` or `#` must hold exactly one `@`; the host is what follows it.
    ///   So `xmpp:alice@evil.example/x@chat.example.org` is at
    ///   `evil.example`: taking the *last* `@` of the whole text, as a naive
    ///   reading would, lets an authority scoped to one host vouch for SSIs
    ///   at any other.
    ///
    /// The host must then be a domain name under the §1 rules (A-labels,
    /// STD3 characters, at least two labels); it is returned lowercase.
    pub fn provider_host(&self) -> Option<DomainName> {
        let rest = &self.0[self.0.find(':')? + 1..];
        let host = if let Some(hier) = rest.strip_prefix("//") {
            let authority = until_path(hier);
            let hostport = match authority.split('@').count() {
                1 => authority,
                2 => authority.split_once('@')?.1,
                _ => return None,
            };
            if hostport.starts_with('[') {
                return None; // IP literal: no domain to scope
            }
            match hostport.split_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                Some(_) => return None,
                None => hostport,
            }
        } else {
            let opaque = until_path(rest);
            let mut parts = opaque.split('@');
            let (_user, host) = (parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            host
        };
        if host.is_empty() || host.parse::<std::net::Ipv4Addr>().is_ok() {
            return None;
        }
        let domain = crate::sii::canonical_domain(host).ok()?;
        // A final label of digits only is an IPv4 address in one of its
        // many spellings (`192.0.2.1`, `3221225985`, `192.0.513`…), never a
        // host name (RFC 3696 §2).
        let last = domain.as_str().rsplit('.').next()?;
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(domain)
    }
}

/// The text before the first `/`, `?` or `#`.
fn until_path(s: &str) -> &str {
    s.split(['/', '?', '#']).next().unwrap_or(s)
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
        assert_eq!(host("xmpp:a@b@x.example/res"), None);
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
        assert_eq!(
            Ssi::from_input(r#"https://evil.example\@chat.example.org/{a|b}"#)
                .unwrap()
                .as_str(),
            "https://evil.example%5C@chat.example.org/%7Ba%7Cb%7D"
        );
        assert!(Ssi::from_input("im:a%zz@x.example").is_err());
        assert!(Ssi::from_input("im:a%41@x.example").is_ok());
    }
}
