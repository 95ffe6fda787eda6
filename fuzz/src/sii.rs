//! SII canonicalization (SPEC §1–§3).
//!
//! Input: one byte choosing the default region (none, IT, US, DE, GB, JP),
//! then the SII text. Properties of every accepted SII:
//!
//! * the canonical form is `mailto:` or `tel:+`, and re-parses (without a
//!   region) to itself: canonicalization is idempotent;
//! * its label is 52 characters, parses back as a label, and is the label
//!   of the hash of the canonical text;
//! * its home discovery name, when it has one, is
//!   `<label>.<shard>._mimi.<zone>` with the shard the label's first two
//!   characters;
//! * a `tel:` SII has at most 15 digits, an email's local part at most 64
//!   octets.

use mimi_proto::name::{discovery_name, home_zone};
use mimi_proto::{DomainName, Label, Region, Sii, SiiHash};

const REGIONS: [Option<&str>; 6] = [
    None,
    Some("IT"),
    Some("US"),
    Some("DE"),
    Some("GB"),
    Some("JP"),
];

/// The target body.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some(input) = crate::text(rest) else {
        return;
    };
    let region: Option<Region> =
        REGIONS[sel as usize % REGIONS.len()].map(|r| r.parse().expect("known region"));
    let Ok(sii) = Sii::parse(input, region) else {
        return;
    };
    check(&sii);
}

/// Checks the properties of one accepted SII.
pub fn check(sii: &Sii) {
    let canonical = sii.as_str();
    // Finding sii-1 (fuzz/findings/README.md): SPEC §1 percent-decodes
    // after `mailto:`, so a canonical form whose local part holds `%XX`
    // reads back as another SII; only the bare address denotes it again.
    let reread = if percent_ambiguous(sii) {
        canonical.strip_prefix("mailto:").expect("email")
    } else {
        canonical
    };
    let again = Sii::parse(reread, None)
        .unwrap_or_else(|e| panic!("canonical {canonical:?} does not re-parse: {e}"));
    assert_eq!(&again, sii, "canonicalization is not idempotent");
    assert_eq!(again.as_str(), canonical);
    // Canonical text read literally (as pre-signed files are) is always the
    // same SII: the fix of finding sii-1.
    let literal = Sii::parse_canonical(canonical)
        .unwrap_or_else(|e| panic!("canonical {canonical:?} does not read back literally: {e}"));
    assert_eq!(&literal, sii, "parse_canonical is not a fixed point");
    match sii {
        Sii::Email { domain, .. } => {
            let rest = canonical
                .strip_prefix("mailto:")
                .expect("email SII starts with mailto:");
            let (local, d) = rest.rsplit_once('@').expect("canonical email has '@'");
            assert_eq!(d, domain.as_str(), "domain part");
            assert!(!local.is_empty() && local.len() <= 64, "local part length");
            assert_eq!(local.to_lowercase(), local, "local part is lowercase");
            assert_eq!(
                DomainName::parse(d)
                    .expect("canonical domain re-parses")
                    .as_str(),
                d
            );
        }
        Sii::Tel { country_code, .. } => {
            let digits = canonical
                .strip_prefix("tel:+")
                .expect("tel SII starts with tel:+");
            assert!(
                !digits.is_empty()
                    && digits.len() <= 15
                    && digits.bytes().all(|b| b.is_ascii_digit()),
                "E.164 digits: {digits:?}"
            );
            assert!(
                digits.starts_with(&country_code.to_string()),
                "{digits} starts with its country code {country_code}"
            );
        }
    }
    let label = sii.label();
    assert_eq!(label.as_str().len(), Label::LEN);
    assert_eq!(Label::parse(label.as_str()).as_ref(), Ok(&label));
    assert_eq!(SiiHash::of_canonical(canonical).label(), label);
    assert_eq!(label.shard(), &label.as_str()[..2]);
    let tel_root = DomainName::parse("e164.mimi.example").expect("name");
    if let Some(zone) = home_zone(sii, Some(&tel_root)) {
        // A name too long for DNS is an error, never a panic.
        if let Ok(name) = discovery_name(&label, &zone) {
            assert_eq!(
                name.as_str(),
                format!(
                    "{}.{}._mimi.{}",
                    label.as_str(),
                    label.shard(),
                    zone.as_str()
                )
            );
        }
    }
}

/// Whether the canonical form of `sii` reads back as another SII: an email
/// address whose local part holds `%` and two hexadecimal digits, which
/// SPEC §1 percent-decodes when the input starts with `mailto:`.
pub fn percent_ambiguous(sii: &Sii) -> bool {
    let Sii::Email { canonical, .. } = sii else {
        return false;
    };
    let local = canonical
        .strip_prefix("mailto:")
        .and_then(|r| r.rsplit_once('@'))
        .map_or("", |(l, _)| l);
    let b = local.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'%'
            && b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}
