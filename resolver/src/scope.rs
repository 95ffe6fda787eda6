//! Scope patterns of a trust store (SPEC §7).
//!
//! An authority is trusted only for some SIIs (`sii_scope`) and only to map
//! them to SSIs at some provider hosts (`ssi_scope`). The patterns are parsed
//! once, when the trust store is loaded, into [`SiiPattern`] and
//! [`HostPattern`], so a bad pattern is a configuration error naming the
//! pattern rather than a rule that silently never matches.

use std::fmt;

use mimi_proto::{DomainName, Sii};

/// Why a scope pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope pattern {pattern:?}: {why}")]
pub struct ScopeError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub why: String,
}

impl ScopeError {
    fn new(pattern: &str, why: impl Into<String>) -> Self {
        ScopeError {
            pattern: pattern.to_owned(),
            why: why.into(),
        }
    }
}

/// A pattern of `sii_scope`: which SIIs an authority may vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiiPattern {
    /// `*`: every SII.
    Any,
    /// `mailto:*@D`: email addresses whose domain is exactly `D`.
    MailDomain(DomainName),
    /// `mailto:*@*.D`: email addresses in strict subdomains of `D`.
    MailSubdomains(DomainName),
    /// `tel:+DIGITS*`: telephone numbers whose E.164 digits start with
    /// `DIGITS` (1–15 digits).
    TelPrefix(String),
}

impl SiiPattern {
    /// Parses a pattern as written in a trust store.
    ///
    /// Domains are folded to their canonical form (lowercase A-labels), the
    /// same form canonical SIIs use, so `mailto:*@Example.COM` matches
    /// `mailto:alice@example.com`.
    pub fn parse(pattern: &str) -> Result<Self, ScopeError> {
        if pattern == "*" {
            return Ok(SiiPattern::Any);
        }
        if let Some(rest) = strip_prefix_ci(pattern, "mailto:*@") {
            let (sub, domain) = match rest.strip_prefix("*.") {
                Some(d) => (true, d),
                None => (false, rest),
            };
            if domain.contains('*') {
                return Err(ScopeError::new(
                    pattern,
                    "'*' is only allowed as \"mailto:*@D\" or \"mailto:*@*.D\"",
                ));
            }
            let d = DomainName::parse(domain)
                .map_err(|e| ScopeError::new(pattern, format!("bad domain: {e}")))?;
            return Ok(if sub {
                SiiPattern::MailSubdomains(d)
            } else {
                SiiPattern::MailDomain(d)
            });
        }
        if let Some(rest) = strip_prefix_ci(pattern, "tel:+") {
            let digits = rest.strip_suffix('*').ok_or_else(|| {
                ScopeError::new(
                    pattern,
                    "a telephone pattern must end in '*' (tel:+DIGITS*)",
                )
            })?;
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ScopeError::new(
                    pattern,
                    "a telephone pattern is tel:+ followed by 1 to 15 digits and '*'",
                ));
            }
            return Ok(SiiPattern::TelPrefix(digits.to_owned()));
        }
        Err(ScopeError::new(
            pattern,
            "want \"*\", \"mailto:*@DOMAIN\", \"mailto:*@*.DOMAIN\" or \"tel:+DIGITS*\"",
        ))
    }

    /// Whether a canonical SII falls under this pattern.
    pub fn matches(&self, sii: &Sii) -> bool {
        match (self, sii) {
            (SiiPattern::Any, _) => true,
            (SiiPattern::MailDomain(d), Sii::Email { domain, .. }) => domain == d,
            (SiiPattern::MailSubdomains(d), Sii::Email { domain, .. }) => {
                domain.is_strict_subdomain_of(d)
            }
            (SiiPattern::TelPrefix(p), Sii::Tel { canonical, .. }) => canonical
                .strip_prefix("tel:+")
                .is_some_and(|digits| digits.starts_with(p.as_str())),
            _ => false,
        }
    }
}

impl fmt::Display for SiiPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiiPattern::Any => f.write_str("*"),
            SiiPattern::MailDomain(d) => write!(f, "mailto:*@{d}"),
            SiiPattern::MailSubdomains(d) => write!(f, "mailto:*@*.{d}"),
            SiiPattern::TelPrefix(p) => write!(f, "tel:+{p}*"),
        }
    }
}

/// A pattern of `ssi_scope`: which provider hosts an authority's SSIs may
/// point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every SSI, including SSIs without a provider host.
    Any,
    /// A host name: exactly that host.
    Host(DomainName),
    /// `*.D`: strict subdomains of `D`.
    Subdomains(DomainName),
}

impl HostPattern {
    /// Parses a pattern as written in a trust store.
    pub fn parse(pattern: &str) -> Result<Self, ScopeError> {
        if pattern == "*" {
            return Ok(HostPattern::Any);
        }
        let (sub, host) = match pattern.strip_prefix("*.") {
            Some(d) => (true, d),
            None => (false, pattern),
        };
        if host.contains('*') {
            return Err(ScopeError::new(
                pattern,
                "'*' is only allowed alone or as a leading \"*.\"",
            ));
        }
        let d = DomainName::parse(host)
            .map_err(|e| ScopeError::new(pattern, format!("bad host name: {e}")))?;
        Ok(if sub {
            HostPattern::Subdomains(d)
        } else {
            HostPattern::Host(d)
        })
    }

    /// Whether an SSI's provider host falls under this pattern. An SSI
    /// without a provider host (`None`) only matches `*`: nothing else says
    /// where it leads.
    pub fn matches(&self, host: Option<&DomainName>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (_, None) => false,
            (HostPattern::Host(d), Some(h)) => h == d,
            (HostPattern::Subdomains(d), Some(h)) => h.is_strict_subdomain_of(d),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Host(d) => write!(f, "{d}"),
            HostPattern::Subdomains(d) => write!(f, "*.{d}"),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sii(s: &str) -> Sii {
        Sii::parse(s, None).unwrap()
    }

    fn host(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn sii_any() {
        let p = SiiPattern::parse("*").unwrap();
        assert_eq!(p, SiiPattern::Any);
        assert!(p.matches(&sii("a@example.com")));
        assert!(p.matches(&sii("+390612345678")));
    }

    #[test]
    fn sii_mail_domain_exact() {
        let p = SiiPattern::parse("mailto:*@Example.COM").unwrap();
        assert_eq!(p, SiiPattern::MailDomain(host("example.com")));
        assert!(p.matches(&sii("alice@example.com")));
        assert!(!p.matches(&sii("alice@sub.example.com")));
        assert!(!p.matches(&sii("alice@notexample.com")));
        assert!(!p.matches(&sii("alice@example.org")));
        assert!(!p.matches(&sii("+390612345678")));
        assert_eq!(p.to_string(), "mailto:*@example.com");
    }

    #[test]
    fn sii_mail_subdomains_strict() {
        let p = SiiPattern::parse("mailto:*@*.example.com").unwrap();
        assert_eq!(p, SiiPattern::MailSubdomains(host("example.com")));
        assert!(p.matches(&sii("alice@sub.example.com")));
        assert!(p.matches(&sii("alice@a.b.example.com")));
        assert!(!p.matches(&sii("alice@example.com")));
        assert!(!p.matches(&sii("alice@subexample.com")));
        assert!(!p.matches(&sii("+390612345678")));
    }

    #[test]
    fn sii_mail_idn_domain() {
        let p = SiiPattern::parse("mailto:*@bücher.example").unwrap();
        assert!(p.matches(&sii("Åsa@Bücher.example")));
    }

    #[test]
    fn sii_tel_prefix() {
        let p = SiiPattern::parse("tel:+39*").unwrap();
        assert_eq!(p, SiiPattern::TelPrefix("39".into()));
        assert!(p.matches(&sii("+390612345678")));
        assert!(!p.matches(&sii("+14155550123")));
        assert!(!p.matches(&sii("alice@example.com")));
        assert!(SiiPattern::parse("TEL:+1*")
            .unwrap()
            .matches(&sii("+14155550123")));
        assert_eq!(p.to_string(), "tel:+39*");
    }

    #[test]
    fn sii_bad_patterns() {
        for bad in [
            "",
            "**",
            "mailto:alice@example.com",
            "mailto:*@",
            "mailto:*@*.",
            "mailto:*@a*.example.com",
            "mailto:*@*.*.example.com",
            "mailto:*@exa mple.com",
            "tel:+39",
            "tel:+*",
            "tel:+3a*",
            "tel:+1234567890123456*",
            "tel:39*",
            "example.com",
        ] {
            let e = SiiPattern::parse(bad).expect_err(bad);
            assert_eq!(e.pattern, bad);
        }
    }

    #[test]
    fn host_any_matches_hostless() {
        let p = HostPattern::parse("*").unwrap();
        assert!(p.matches(None));
        assert!(p.matches(Some(&host("chat.example.org"))));
    }

    #[test]
    fn host_exact() {
        let p = HostPattern::parse("Chat.Example.org").unwrap();
        assert_eq!(p, HostPattern::Host(host("chat.example.org")));
        assert!(p.matches(Some(&host("chat.example.org"))));
        assert!(!p.matches(Some(&host("a.chat.example.org"))));
        assert!(!p.matches(Some(&host("example.org"))));
        assert!(!p.matches(None));
        assert_eq!(p.to_string(), "chat.example.org");
    }

    #[test]
    fn host_subdomains_strict() {
        let p = HostPattern::parse("*.chat.example.org").unwrap();
        assert!(p.matches(Some(&host("eu.chat.example.org"))));
        assert!(p.matches(Some(&host("a.eu.chat.example.org"))));
        assert!(!p.matches(Some(&host("chat.example.org"))));
        assert!(!p.matches(Some(&host("xchat.example.org"))));
        assert!(!p.matches(None));
        assert_eq!(p.to_string(), "*.chat.example.org");
    }

    #[test]
    fn host_bad_patterns() {
        for bad in [
            "",
            "*.",
            "**",
            "a.*.example",
            "*.*.example",
            "ex ample.org",
            "x*.org",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
