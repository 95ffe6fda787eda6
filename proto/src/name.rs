//! Domain names, authority names and discovery names (SPEC §3, §4).

use std::fmt;

use crate::label::Label;
use crate::sii::Sii;

/// A syntactically valid, lowercase, absolute DNS name in ASCII, kept
/// without its trailing dot (`example.com`).
///
/// Zone origins, telephone roots, distribution zones and provider hosts are
/// all `DomainName`s. Labels are 1–63 octets of letters, digits, `-` and `_`
/// (underscores appear in the `_mimi` labels that we add ourselves), and the
/// whole name is at most 253 octets, so `fqdn()` always fits in DNS.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty (or just `.`).
    #[error("empty domain name")]
    Empty,
    /// More than 253 octets.
    #[error("domain name longer than 253 octets")]
    TooLong,
    /// An empty label (`a..b`) or one longer than 63 octets.
    #[error("label {0:?} is empty or longer than 63 octets")]
    BadLabelLength(String),
    /// A character outside `a-z 0-9 - _`.
    #[error("label {0:?} has a character outside a-z, 0-9, '-', '_'")]
    BadCharacter(String),
    /// A label that starts or ends with a hyphen.
    #[error("label {0:?} starts or ends with '-'")]
    Hyphen(String),
    /// Upper case where only lower case is allowed (record fields).
    #[error("domain name {0:?} is not lowercase")]
    NotLowercase(String),
    /// Fewer labels than required.
    #[error("domain name {0:?} needs at least {1} labels")]
    TooFewLabels(String, usize),
    /// IDNA conversion failed.
    #[error("domain name {0:?} is not a valid internationalized domain name")]
    Idna(String),
}

impl DomainName {
    /// Parses a name typed by a person or found in a configuration file:
    /// ASCII case is folded, one trailing dot is removed, and
    /// internationalized names are converted to A-labels (UTS #46).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(trimmed).map_err(|_| NameError::Idna(input.to_owned()))?
        };
        Self::check(ascii)
    }

    /// Parses a name that must already be in canonical form, as in record
    /// fields (`a=`): lowercase ASCII, no trailing dot.
    pub fn parse_canonical(input: &str) -> Result<Self, NameError> {
        if input.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(NameError::NotLowercase(input.to_owned()));
        }
        if input.ends_with('.') {
            return Err(NameError::BadLabelLength(String::new()));
        }
        if input.is_empty() {
            return Err(NameError::Empty);
        }
        Self::check(input.to_owned())
    }

    fn check(name: String) -> Result<Self, NameError> {
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(NameError::BadLabelLength(label.to_owned()));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(NameError::BadCharacter(label.to_owned()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(NameError::Hyphen(label.to_owned()));
            }
        }
        Ok(DomainName(name))
    }

    /// The name without trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute name with its trailing dot, as DNS tools write it.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }

    /// `prefix.self`, checked.
    pub fn prepend(&self, prefix: &str) -> Result<Self, NameError> {
        Self::check(format!("{prefix}.{}", self.0))
    }

    /// Whether `self` equals `other` or lies below it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self == other || self.is_strict_subdomain_of(other)
    }

    /// Whether `self` lies strictly below `other` (`a.b.c` below `b.c`).
    pub fn is_strict_subdomain_of(&self, other: &DomainName) -> bool {
        self.0.len() > other.0.len()
            && self.0.ends_with(other.0.as_str())
            && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.'
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({})", self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The name of a mapping authority (`a=` field): a lowercase A-label domain
/// name with at least two labels and no underscores, as SPEC §4 requires.
///
/// Its certificates live at [`AuthorityName::certificate_name`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthorityName(DomainName);

impl AuthorityName {
    /// Parses a name from configuration (case is folded, IDNs converted).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        Self::from_domain(DomainName::parse(input)?)
    }

    /// Parses the `a=` field of a record: must already be canonical.
    pub fn parse_canonical(input: &str) -> Result<Self, NameError> {
        Self::from_domain(DomainName::parse_canonical(input)?)
    }

    fn from_domain(d: DomainName) -> Result<Self, NameError> {
        if d.label_count() < 2 {
            return Err(NameError::TooFewLabels(d.0, 2));
        }
        if let Some(l) = d.0.split('.').find(|l| l.contains('_')) {
            return Err(NameError::BadCharacter(l.to_owned()));
        }
        Ok(AuthorityName(d))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as a domain name.
    pub fn as_domain(&self) -> &DomainName {
        &self.0
    }

    /// `_mimi-ma.<authority>.`, where the authority's key certificates are
    /// published (SPEC §6).
    pub fn certificate_name(&self) -> DomainName {
        DomainName(format!("_mimi-ma.{}", self.0 .0))
    }
}

impl fmt::Display for AuthorityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AuthorityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityName({})", self.as_str())
    }
}

impl std::str::FromStr for AuthorityName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `<label>.<shard>._mimi.<zone>`: where the assertions for one SII are
/// published in one zone (SPEC §3).
///
/// Fails with [`NameError::TooLong`] when the name would exceed 253 octets,
/// which happens for zones longer than 191 octets (an SII on a very long
/// domain): such a name cannot be put in a DNS message, a zone file or a
/// transfer, so callers must treat it as an input error, never build it.
pub fn discovery_name(label: &Label, zone: &DomainName) -> Result<DomainName, NameError> {
    let name = format!(
        "{}.{}._mimi.{}",
        label.as_str(),
        label.shard(),
        zone.as_str()
    );
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    Ok(DomainName(name))
}

/// `<shard>._mimi.<zone>`: the node a zone operator delegates to move one
/// of the 1024 shards of a zone to another server (SPEC §3).
pub fn shard_name(shard: &str, zone: &DomainName) -> Result<DomainName, NameError> {
    zone.prepend(&format!("{shard}._mimi"))
}

/// The longest name (without its trailing dot) that fits in DNS.
pub const MAX_NAME_LEN: usize = 253;

/// The `_mimi` subtree of a zone, `_mimi.<zone>`.
pub fn mimi_subtree(zone: &DomainName) -> DomainName {
    DomainName(format!("_mimi.{}", zone.as_str()))
}

/// The home zone of an SII (SPEC §3): the email domain, or for a telephone
/// number the reversed digits of its country code under `tel_root`.
/// Telephone numbers have no home zone without a telephone root.
pub fn home_zone(sii: &Sii, tel_root: Option<&DomainName>) -> Option<DomainName> {
    match sii {
        Sii::Email { domain, .. } => Some(domain.clone()),
        Sii::Tel { country_code, .. } => {
            let root = tel_root?;
            let digits: Vec<String> = country_code
                .to_string()
                .chars()
                .rev()
                .map(|c| c.to_string())
                .collect();
            Some(DomainName(format!(
                "{}.{}",
                digits.join("."),
                root.as_str()
            )))
        }
    }
}

/// The home zone of a telephone SII under each configured root, or the email
/// domain: every zone a lookup of `sii` consults as its home.
pub fn home_zones(sii: &Sii, tel_roots: &[DomainName]) -> Vec<DomainName> {
    match sii {
        Sii::Email { .. } => home_zone(sii, None).into_iter().collect(),
        Sii::Tel { .. } => tel_roots
            .iter()
            .filter_map(|r| home_zone(sii, Some(r)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_parse_rules() {
        assert_eq!(
            DomainName::parse("Example.COM.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            DomainName::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        assert!(DomainName::parse("").is_err());
        assert!(DomainName::parse(".").is_err());
        assert!(DomainName::parse("a..b").is_err());
        assert!(DomainName::parse("-a.b").is_err());
        assert!(DomainName::parse("a b.c").is_err());
        assert!(DomainName::parse(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(DomainName::parse(&["abcdefghi"; 26].join(".")).is_err());
        assert!(DomainName::parse_canonical("Example.com").is_err());
        assert!(DomainName::parse_canonical("example.com.").is_err());
    }

    #[test]
    fn authority_names() {
        assert!(AuthorityName::parse_canonical("ma.example.net").is_ok());
        assert!(AuthorityName::parse_canonical("localhost").is_err());
        assert!(AuthorityName::parse_canonical("_x.example.net").is_err());
        assert_eq!(
            AuthorityName::parse("MA.Example.NET")
                .unwrap()
                .certificate_name()
                .fqdn(),
            "_mimi-ma.ma.example.net."
        );
    }

    #[test]
    fn discovery_names_carry_the_shard_and_fit_in_dns() {
        let label = crate::SiiHash::of_canonical("mailto:alice@example.com").label();
        let zone = DomainName::parse("example.com").unwrap();
        assert_eq!(
            discovery_name(&label, &zone).unwrap().fqdn(),
            "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg.3b._mimi.example.com."
        );
        assert_eq!(
            shard_name(label.shard(), &zone).unwrap().as_str(),
            "3b._mimi.example.com"
        );
        // 52 + 1 + 2 + 1 + 5 + 1 = 62 octets before the zone: 191 octets of
        // zone is the most that fits.
        let fits = DomainName::parse(&format!(
            "{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        ))
        .unwrap();
        assert_eq!(fits.as_str().len(), 191);
        assert_eq!(discovery_name(&label, &fits).unwrap().as_str().len(), 253);
        let too_long = fits.prepend("d").unwrap();
        assert_eq!(discovery_name(&label, &too_long), Err(NameError::TooLong));
    }

    #[test]
    fn subdomains() {
        let d = DomainName::parse("example.com").unwrap();
        assert!(DomainName::parse("a.example.com")
            .unwrap()
            .is_strict_subdomain_of(&d));
        assert!(!DomainName::parse("aexample.com")
            .unwrap()
            .is_strict_subdomain_of(&d));
        assert!(!d.is_strict_subdomain_of(&d));
        assert!(d.is_within(&d));
    }
}
