//! Canonical service-independent identifiers (SPEC §1).
//!
//! Publisher and resolver hash the canonical form, so both must compute it
//! identically; this module is the one place that does.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::label::{Label, SiiHash};
use crate::name::DomainName;

/// A canonical SII: `mailto:local@domain` or `tel:+E164`.
///
/// Only [`Sii::parse`] makes one, so every `Sii` is canonical and safe to
/// hash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sii {
    /// An email address.
    Email {
        /// The full canonical text, `mailto:local@domain`.
        canonical: String,
        /// The canonical (A-label, lowercase) domain: the SII's home zone.
        domain: DomainName,
    },
    /// A telephone number in E.164.
    Tel {
        /// The full canonical text, `tel:+digits`.
        canonical: String,
        /// The country calling code libphonenumber assigns.
        country_code: u16,
    },
}

/// A two-letter region (ISO 3166-1 alpha-2) used to read national
/// telephone numbers, like `IT` for `06 1234 5678`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region(phonenumber::country::Id);

impl std::str::FromStr for Region {
    type Err = SiiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
            .map(Region)
            .map_err(|_| SiiError::UnknownRegion(s.to_owned()))
    }
}

/// Why an input is not an SII. Each variant says which rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiiError {
    /// No `@`, and not recognisable as a telephone number either.
    #[error("not an email address or telephone number: {0:?} has no '@' (a national telephone number needs a default region)")]
    NotAnEmailAddress(String),
    /// `mailto:` with bad percent-encoding.
    #[error("bad mailto: URI: percent-encoding does not decode to UTF-8")]
    BadPercentEncoding,
    /// The local part breaks SPEC §1.
    #[error("bad local part: {0}")]
    BadLocalPart(&'static str),
    /// The domain breaks SPEC §1.
    #[error("bad domain {domain:?}: {why}")]
    BadDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong.
        why: String,
    },
    /// A telephone number breaks SPEC §1.
    #[error("bad telephone number {input:?}: {why}")]
    BadTelephoneNumber {
        /// The number as given.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// The region code is not a known region.
    #[error("unknown region {0:?} (want an ISO 3166 two-letter code such as IT)")]
    UnknownRegion(String),
    /// Text that should be a canonical SII (`mailto:…`, `tel:+…`, as
    /// `mimi-publisher sign` prints it) is not one.
    #[error("{0:?} is not a canonical SII (mailto:local@domain in lowercase or tel:+digits, as mimi-publisher sign prints it)")]
    NotCanonical(String),
}

const LOCAL_FORBIDDEN: &[char] = &['"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']', '@'];
const TEL_SEPARATORS: &[char] = &[' ', '-', '.', '(', ')'];

impl Sii {
    /// Canonicalizes an email address or telephone number (SPEC §1).
    ///
    /// `region` is the default region for national telephone numbers; with
    /// it, an input made only of digits and separators is a telephone number.
    pub fn parse(input: &str, region: Option<Region>) -> Result<Sii, SiiError> {
        let lower_prefix = |p: &str| {
            input.len() >= p.len()
                && input.is_char_boundary(p.len())
                && input[..p.len()].eq_ignore_ascii_case(p)
        };
        if lower_prefix("tel:") {
            return parse_tel(input, &input[4..], region);
        }
        if input.starts_with('+') {
            return parse_tel(input, input, region);
        }
        if region.is_some()
            && !input.is_empty()
            && input.chars().any(|c| c.is_ascii_digit())
            && input
                .chars()
                .all(|c| c.is_ascii_digit() || TEL_SEPARATORS.contains(&c))
        {
            return parse_tel(input, input, region);
        }
        if lower_prefix("mailto:") {
            let decoded = percent_encoding::percent_decode_str(&input[7..])
                .decode_utf8()
                .map_err(|_| SiiError::BadPercentEncoding)?;
            return parse_email(input, &decoded);
        }
        parse_email(input, input)
    }

    /// Reads back a canonical SII exactly as [`Sii::as_str`] wrote it, as
    /// pre-signed files carry it: the text must already be canonical, and
    /// nothing in it is percent-decoded.
    ///
    /// Why not [`Sii::parse`]: SPEC §1 percent-decodes after `mailto:`, but
    /// a canonical local part may hold a literal `%` (from a bare address
    /// such as `a%2Bb@example.com`, canonical `mailto:a%2bb@example.com`).
    /// Parsing that text as input would decode it into another SII
    /// (`a+b@…`) with another label, and a pre-signed record would be
    /// published at the wrong name. Reading canonical text literally makes
    /// every canonical form a fixed point.
    pub fn parse_canonical(text: &str) -> Result<Sii, SiiError> {
        let sii = if let Some(addr) = text.strip_prefix("mailto:") {
            parse_email(text, addr)?
        } else if text.starts_with("tel:+") {
            Sii::parse(text, None)?
        } else {
            return Err(SiiError::NotCanonical(text.to_owned()));
        };
        if sii.as_str() != text {
            return Err(SiiError::NotCanonical(text.to_owned()));
        }
        Ok(sii)
    }

    /// The canonical text (`mailto:…` or `tel:+…`).
    pub fn as_str(&self) -> &str {
        match self {
            Sii::Email { canonical, .. } | Sii::Tel { canonical, .. } => canonical,
        }
    }

    /// SHA-256 of the canonical text (SPEC §2).
    pub fn hash(&self) -> SiiHash {
        SiiHash::of(self)
    }

    /// The DNS label of this SII (SPEC §2).
    pub fn label(&self) -> Label {
        self.hash().label()
    }

    /// Whether this is a telephone number.
    pub fn is_tel(&self) -> bool {
        matches!(self, Sii::Tel { .. })
    }
}

impl fmt::Display for Sii {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sii {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sii({})", self.as_str())
    }
}

fn parse_email(original: &str, addr: &str) -> Result<Sii, SiiError> {
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or_else(|| SiiError::NotAnEmailAddress(original.to_owned()))?;
    if local.is_empty() {
        return Err(SiiError::BadLocalPart("empty"));
    }
    if local.chars().any(char::is_whitespace) {
        return Err(SiiError::BadLocalPart("contains white space"));
    }
    if local.chars().any(char::is_control) {
        return Err(SiiError::BadLocalPart("contains a control character"));
    }
    if local.chars().any(|c| LOCAL_FORBIDDEN.contains(&c)) {
        return Err(SiiError::BadLocalPart(
            "contains one of \" ( ) , : ; < > [ \\ ] @ (quoted local parts are not supported)",
        ));
    }
    let local: String = local.nfc().collect::<String>().to_lowercase();
    if local.len() > 64 {
        return Err(SiiError::BadLocalPart("longer than 64 octets"));
    }
    let domain_name = canonical_domain(domain).map_err(|why| SiiError::BadDomain {
        domain: domain.to_owned(),
        why,
    })?;
    Ok(Sii::Email {
        canonical: format!("mailto:{local}@{}", domain_name.as_str()),
        domain: domain_name,
    })
}

/// The §1 domain rules, shared by email domains and SSI provider hosts
/// (SPEC §5): one trailing dot removed, UTS #46 to A-labels with STD3 ASCII
/// rules (so `_` is refused), lowercase, at least two labels of 1–63 octets,
/// at most 253 octets. The error says which rule failed.
pub(crate) fn canonical_domain(domain: &str) -> Result<DomainName, String> {
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    if trimmed.is_empty() {
        return Err("empty".to_owned());
    }
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| "not a valid (internationalized) domain name".to_owned())?;
    let domain_name = DomainName::parse(&ascii).map_err(|e| e.to_string())?;
    if domain_name.label_count() < 2 {
        return Err("needs at least two labels".to_owned());
    }
    Ok(domain_name)
}

fn parse_tel(original: &str, number: &str, region: Option<Region>) -> Result<Sii, SiiError> {
    let bad = |why: &str| SiiError::BadTelephoneNumber {
        input: original.to_owned(),
        why: why.to_owned(),
    };
    let compact: String = number
        .chars()
        .filter(|c| !TEL_SEPARATORS.contains(c))
        .collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, compact.as_str()),
    };
    if digits.is_empty() {
        return Err(bad("no digits"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "only digits and the separators space - . ( ) are allowed",
        ));
    }
    if !plus && region.is_none() {
        return Err(bad("a number without '+' needs a default region"));
    }
    let parsed = if plus {
        phonenumber::parse(None, &compact)
    } else {
        phonenumber::parse(region.map(|r| r.0), digits)
    }
    .map_err(|e| bad(&format!("cannot be parsed ({e})")))?;
    let code = parsed.code().value();
    let national = parsed.national().to_string();
    check_possible(code, parsed.country().id(), &national).map_err(|w| bad(&w))?;
    let e164 = format!("+{code}{national}");
    if e164.len() - 1 > 15 {
        return Err(bad("longer than 15 digits"));
    }
    // The canonical form must read back as itself, or a resolver given the
    // E.164 form computes another hash than a publisher given the national
    // form. The phonenumber crate does not always agree with itself here
    // (found by fuzzing: `7848077` in region US gives +17847848077, which
    // reads back as +17848077), so such numbers are input errors.
    let again = phonenumber::parse(None, &e164)
        .map(|p| format!("+{}{}", p.code().value(), p.national()))
        .ok();
    if again.as_deref() != Some(e164.as_str()) {
        return Err(bad(&format!(
            "ambiguous: its E.164 form {e164} reads back as {}",
            again.as_deref().unwrap_or("no number")
        )));
    }
    Ok(Sii::Tel {
        canonical: format!("tel:{e164}"),
        country_code: code,
    })
}

/// libphonenumber's "possible number" test: the national significant number
/// has a length that numbers of that country can have.
fn check_possible(
    code: u16,
    id: Option<phonenumber::country::Id>,
    national: &str,
) -> Result<(), String> {
    let db = &*phonenumber::metadata::DATABASE;
    // The number's own region when libphonenumber could tell it, otherwise
    // every region sharing the calling code (+1 is the US, Canada, …).
    let metas: Vec<&phonenumber::Metadata> = match id.and_then(|id| db.by_id(id.as_ref())) {
        Some(m) => vec![m],
        None => db.by_code(&code).unwrap_or_default(),
    };
    if metas.is_empty() {
        return Err(format!("unknown country calling code +{code}"));
    }
    // libphonenumber's general descriptor lists the union of the lengths of
    // every number type; this crate's metadata leaves it empty, so take the
    // union here.
    let mut possible: Vec<u16> = Vec::new();
    for m in &metas {
        let d = m.descriptors();
        let types = [
            Some(d.general()),
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        for desc in types.into_iter().flatten() {
            possible.extend_from_slice(desc.possible_length());
            possible.extend_from_slice(desc.possible_local_length());
        }
    }
    possible.sort_unstable();
    possible.dedup();
    let len = national.len() as u16;
    if possible.is_empty() || possible.contains(&len) {
        Ok(())
    } else {
        Err(format!(
            "a number of +{code} cannot have {len} national digits (possible: {possible:?})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Sii::parse(s, None).unwrap().as_str().to_owned()
    }

    #[test]
    fn email_rules() {
        assert_eq!(canon("Alice@Example.COM"), "mailto:alice@example.com");
        assert_eq!(
            canon("MAILTO:Bob%2Bchat@Example.org."),
            "mailto:bob+chat@example.org"
        );
        assert!(matches!(
            Sii::parse("mailto:a%40b@example.com", None),
            Err(SiiError::BadLocalPart(_))
        ));
        assert_eq!(
            canon("ÅSA@Bücher.example"),
            "mailto:åsa@xn--bcher-kva.example"
        );
        assert!(matches!(
            Sii::parse("@example.com", None),
            Err(SiiError::BadLocalPart(_))
        ));
        assert!(matches!(
            Sii::parse("a\tb@example.com", None),
            Err(SiiError::BadLocalPart(_))
        ));
        assert!(matches!(
            Sii::parse(&format!("{}@example.com", "a".repeat(65)), None),
            Err(SiiError::BadLocalPart(_))
        ));
        assert!(Sii::parse(&format!("{}@example.com", "a".repeat(64)), None).is_ok());
        assert!(matches!(
            Sii::parse("a@", None),
            Err(SiiError::BadDomain { .. })
        ));
        assert!(matches!(
            Sii::parse("a@exa mple.com", None),
            Err(SiiError::BadDomain { .. })
        ));
        assert!(matches!(
            Sii::parse("mailto:a%ff@example.com", None),
            Err(SiiError::BadPercentEncoding)
        ));
    }

    #[test]
    fn canonical_text_reads_back_as_itself() {
        // A literal '%' in a bare local part stays literal (SPEC §1 decodes
        // only after mailto:); its canonical text must read back as the
        // same SII, not as the decoded one (fuzz finding sii-1).
        let bare = Sii::parse("mb%2Behat@example.org", None).unwrap();
        assert_eq!(bare.as_str(), "mailto:mb%2behat@example.org");
        assert_eq!(Sii::parse_canonical(bare.as_str()).unwrap(), bare);
        assert_ne!(Sii::parse(bare.as_str(), None).unwrap(), bare);
        for input in [
            "Alice@Example.COM",
            "+39 06 1234 5678",
            "Åsa@Bücher.example",
        ] {
            let sii = Sii::parse(input, None).unwrap();
            assert_eq!(Sii::parse_canonical(sii.as_str()).unwrap(), sii);
        }
        for bad in [
            "alice@example.com",
            "mailto:Alice@example.com",
            "tel:+39 06 1234",
            "MAILTO:a@example.com",
            "",
        ] {
            assert!(Sii::parse_canonical(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nfc_before_lowercase() {
        // "A" + combining ring above composes to "Å", then lowercases to "å".
        assert_eq!(canon("A\u{30a}sa@example.com"), "mailto:åsa@example.com");
    }

    #[test]
    fn tel_rules() {
        assert_eq!(canon("+1 (415) 555-0123"), "tel:+14155550123");
        assert_eq!(canon("TEL:+39.06.1234.5678"), "tel:+390612345678");
        let it: Region = "it".parse().unwrap();
        assert_eq!(
            Sii::parse("06-1234-5678", Some(it)).unwrap().as_str(),
            "tel:+390612345678"
        );
        assert!(matches!(
            Sii::parse("+", None),
            Err(SiiError::BadTelephoneNumber { .. })
        ));
        assert!(matches!(
            Sii::parse("+1 415", None),
            Err(SiiError::BadTelephoneNumber { .. })
        ));
        assert!(matches!(
            Sii::parse("tel:0612345678", None),
            Err(SiiError::BadTelephoneNumber { .. })
        ));
        assert!(matches!(
            Sii::parse("+1234567890123456", None),
            Err(SiiError::BadTelephoneNumber { .. })
        ));
        assert!("zz".parse::<Region>().is_err());
    }

    /// Found by fuzzing (fuzz target `sii`): national numbers whose E.164
    /// form the telephone library reads back as another number. Each is
    /// either an input error or canonical in a form that reads back as
    /// itself.
    #[test]
    fn canonical_telephone_numbers_read_back_as_themselves() {
        for (region, input) in [
            ("DE", "00091850116"),
            ("US", "7848077"),
            ("US", "868703 8"),
            ("DE", "0000661241"),
            ("GB", "(0090000661392447777"),
            ("DE", "000901218"),
            ("JP", "000000176328222"),
        ] {
            let region: Region = region.parse().unwrap();
            if let Ok(sii) = Sii::parse(input, Some(region)) {
                assert_eq!(
                    Sii::parse(sii.as_str(), None).as_ref(),
                    Ok(&sii),
                    "{input} in {region:?}"
                );
            }
        }
        assert!(matches!(
            Sii::parse("7848077", Some("US".parse().unwrap())),
            Err(SiiError::BadTelephoneNumber { .. })
        ));
    }
}
