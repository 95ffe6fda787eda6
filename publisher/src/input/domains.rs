//! `[domains]`: one configuration publishing the home records of many
//! email domains, one zone per domain.
//!
//! An email provider hosting customer domains publishes each customer's
//! `_mimi` records in that customer's own tree, usually by having the
//! customer delegate `_mimi.<domain>` to the provider's name servers (as
//! DKIM's `_domainkey` is delegated). One configuration describes them all:
//!
//! ```toml
//! role = "home"
//! ns = ["ns1.provider.example"]
//! mappings = "mappings.csv"       # SIIs of every customer domain
//! [domains]
//! origin = "_mimi.{domain}"       # or "{domain}" when hosting the whole zone
//! list = "domains.txt"            # optional: the domains allowed, one a line
//! ```
//!
//! Each email SII of domain `D` goes to the zone `origin` with `{domain}`
//! replaced by `D`. A zone exists while its domain has at least one mapping
//! or pre-signed assertion. With a list, an SII of a domain not in it is an
//! error naming its line (a typo in a customer's address must not create a
//! zone nobody delegated); without one, every domain of the mappings gets a
//! zone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mimi_proto::DomainName;

use crate::input::problem::Problem;

/// Where a domain's zone is: `{domain}` or `<prefix>.{domain}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// The labels before `{domain}` (`"_mimi"`), without the dot; `None`
    /// for `"{domain}"`.
    prefix: Option<String>,
}

/// The placeholder in [`OriginPattern`]s.
pub const DOMAIN: &str = "{domain}";

impl OriginPattern {
    /// Parses `"{domain}"` or `"<labels>.{domain}"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().strip_suffix('.').unwrap_or(s.trim());
        if s == DOMAIN {
            return Ok(OriginPattern { prefix: None });
        }
        let Some(prefix) = s.strip_suffix(&format!(".{DOMAIN}")) else {
            return Err(format!(
                "{s:?} must end with {DOMAIN}, as in \"_mimi.{DOMAIN}\" or \"{DOMAIN}\""
            ));
        };
        if prefix.contains('{') || prefix.contains('}') {
            return Err(format!("{s:?}: only one {DOMAIN}, at the end, is allowed"));
        }
        let checked =
            DomainName::parse(&format!("{prefix}.invalid")).map_err(|e| format!("{s:?}: {e}"))?;
        let prefix = checked
            .as_str()
            .strip_suffix(".invalid")
            .expect("suffix kept")
            .to_owned();
        Ok(OriginPattern {
            prefix: Some(prefix),
        })
    }

    /// The zone of `domain`, or why there is none (a name too long).
    pub fn origin_of(&self, domain: &DomainName) -> Result<DomainName, String> {
        match &self.prefix {
            None => Ok(domain.clone()),
            Some(p) => domain
                .prepend(p)
                .map_err(|e| format!("the zone of domain {domain} would be {p}.{domain}: {e}")),
        }
    }

    /// The domain whose zone `origin` is, if it is one of this pattern.
    pub fn domain_of(&self, origin: &DomainName) -> Option<DomainName> {
        match &self.prefix {
            None => Some(origin.clone()),
            Some(p) => {
                let rest = origin
                    .as_str()
                    .strip_prefix(p.as_str())?
                    .strip_prefix('.')?;
                DomainName::parse_canonical(rest).ok()
            }
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.prefix {
            None => f.write_str(DOMAIN),
            Some(p) => write!(f, "{p}.{DOMAIN}"),
        }
    }
}

/// The `[domains]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainsConfig {
    /// Where each domain's zone is.
    pub origin: OriginPattern,
    /// The file listing the domains allowed (absolute path), if any.
    pub list: Option<PathBuf>,
}

/// A domain list file: one domain a line; blank lines and `#` comments
/// ignored. Domains are compared in their canonical (A-label, lower-case)
/// form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainList {
    /// Domain → its line.
    lines: HashMap<DomainName, usize>,
}

impl DomainList {
    /// Parses a list; every bad or repeated line is a problem with its
    /// line number.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Vec<Problem>> {
        let mut lines = HashMap::new();
        let mut problems = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let line = i + 1;
            let l = l.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            match DomainName::parse(l) {
                Ok(d) => {
                    if let Some(first) = lines.insert(d.clone(), line) {
                        problems.push(Problem::at(
                            path,
                            line,
                            format!("{d} is already listed on line {first}"),
                        ));
                        lines.insert(d, first);
                    }
                }
                Err(e) => problems.push(Problem::at(path, line, format!("not a domain: {e}"))),
            }
        }
        if problems.is_empty() {
            Ok(DomainList { lines })
        } else {
            Err(problems)
        }
    }

    /// Reads a list file, which must be complete (end with a newline).
    pub fn read(path: &Path) -> Result<Self, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem::in_file(
                path,
                format!("cannot read the domain list: {e}"),
            )]
        })?;
        crate::input::complete::check(path, &text).map_err(|p| vec![p])?;
        Self::parse(&text, path)
    }

    /// Whether `domain` is listed.
    pub fn contains(&self, domain: &DomainName) -> bool {
        self.lines.contains_key(domain)
    }

    /// Number of domains listed.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn patterns() {
        let p = OriginPattern::parse("_mimi.{domain}").unwrap();
        assert_eq!(p.origin_of(&d("a.example")).unwrap(), d("_mimi.a.example"));
        assert_eq!(p.domain_of(&d("_mimi.a.example")), Some(d("a.example")));
        assert_eq!(p.domain_of(&d("x.a.example")), None);
        assert_eq!(p.to_string(), "_mimi.{domain}");
        let whole = OriginPattern::parse("{domain}").unwrap();
        assert_eq!(whole.origin_of(&d("a.example")).unwrap(), d("a.example"));
        for bad in [
            "_mimi",
            "{domain}.com",
            "x.{domain}.{domain}",
            "a..{domain}",
            "a b.{domain}",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_with_comments_and_errors_by_line() {
        let l = DomainList::parse(
            "# customers\nA.example\n\nb.example # since 2026\n",
            Path::new("d.txt"),
        )
        .unwrap();
        assert!(l.contains(&d("a.example")) && l.contains(&d("b.example")));
        assert_eq!(l.len(), 2);
        let e = DomainList::parse("a.example\nnot a domain\na.example\n", Path::new("d.txt"))
            .unwrap_err();
        let e: Vec<String> = e.iter().map(|p| p.to_string()).collect();
        assert!(e[0].starts_with("d.txt:2: not a domain"), "{e:?}");
        assert_eq!(e[1], "d.txt:3: a.example is already listed on line 1");
    }
}
