//! DS records as trust anchors.
//!
//! The validator (hickory 0.26) trusts public keys only, but operators
//! publish — and registries hold — a zone's *DS* (a digest of its KSK):
//! it survives a ZSK rollover and is what `keymgr ZONE ds` or
//! `dnssec-dsfromkey` prints. A DS anchor is turned into keys once, before
//! the first validated lookup ([`establish`]): the zone's DNSKEY RRset is
//! fetched with its RRSIGs (DO bit set) over the configured servers, a key
//! whose RFC 4034 §5.1.4 digest equals a DS in the file must be in it, and
//! the RRset must carry a valid signature (inside its validity window) by
//! such a key. Then every key of that verified RRset becomes an anchor, as
//! if all of them had been listed as DNSKEY lines. Anything less is a
//! failure with the reason, never a silent downgrade.

use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKeyBuf, Verifier};
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// One trusted DS: a digest of one of a zone's keys. Only made by parsing
/// an anchor file, so its digest type is SHA-256 or SHA-384, its digest has
/// that type's length, and its algorithm is one the validator supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorDs {
    zone: String,
    key_tag: u16,
    algorithm: u8,
    digest_type: u8,
    digest: Vec<u8>,
}

impl AnchorDs {
    /// The zone (absolute, lowercase, e.g. `example.com.`).
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The key tag of the key it is the digest of (RFC 4034 App. B).
    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// DNSSEC algorithm number of that key.
    pub fn algorithm(&self) -> u8 {
        self.algorithm
    }

    /// Digest type: 2 (SHA-256) or 4 (SHA-384).
    pub fn digest_type(&self) -> u8 {
        self.digest_type
    }

    /// The digest.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Whether `key`, a DNSKEY at `owner`, is the key this DS is the digest
    /// of: same algorithm and key tag, a zone key not revoked, and the
    /// digest over `owner` in canonical wire form followed by the DNSKEY
    /// RDATA (RFC 4034 §5.1.4) equal to this one.
    pub fn matches(&self, owner: &Name, key: &DNSKEY) -> bool {
        if !key.zone_key() || key.revoke() || u8::from(key.algorithm()) != self.algorithm {
            return false;
        }
        if key.calculate_key_tag().ok() != Some(self.key_tag) {
            return false;
        }
        key.to_digest(owner, DigestType::from(self.digest_type))
            .is_ok_and(|d| d.as_ref() == self.digest.as_slice())
    }
}

/// Parses what follows `DS` on an anchor line (`keytag algorithm
/// digesttype digest-hex`, the digest possibly split by blanks).
pub(crate) fn parse_ds<'a>(
    zone: String,
    mut tokens: impl Iterator<Item = &'a str>,
) -> Result<AnchorDs, String> {
    let mut number = |what: &str| -> Result<u64, String> {
        let t = tokens.next().ok_or_else(|| format!("DS without {what}"))?;
        t.parse::<u64>()
            .map_err(|_| format!("DS {what} {t:?} is not a number"))
    };
    let key_tag = number("key tag")?;
    let key_tag =
        u16::try_from(key_tag).map_err(|_| format!("DS key tag {key_tag} out of range"))?;
    let algorithm = number("algorithm")?;
    let algorithm =
        u8::try_from(algorithm).map_err(|_| format!("DS algorithm {algorithm} out of range"))?;
    let digest_type = number("digest type")?;
    let digest_type = u8::try_from(digest_type)
        .map_err(|_| format!("DS digest type {digest_type} out of range"))?;
    let alg = Algorithm::from_u8(algorithm);
    if !alg.is_supported() {
        return Err(format!(
            "DS algorithm {algorithm} ({alg:?}) is not supported by the validator"
        ));
    }
    let length = match digest_type {
        1 => {
            return Err(
                "DS digest type 1 (SHA-1) is refused: SHA-1 is broken for collisions \
                        and RFC 8624 deprecates it for DS; use the SHA-256 (2) or SHA-384 (4) DS \
                        of the same key"
                    .into(),
            )
        }
        2 => 32,
        4 => 48,
        other => {
            return Err(format!(
                "DS digest type {other} is not supported: only SHA-256 (2) and SHA-384 (4)"
            ))
        }
    };
    let hex: String = tokens.collect();
    if hex.is_empty() {
        return Err("DS without a digest".into());
    }
    if hex.contains('(') || hex.contains(')') {
        return Err(
            "multi-line (parenthesised) records are not supported: one record per line".into(),
        );
    }
    let digest = data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|e| format!("DS digest is not hexadecimal: {e}"))?;
    if digest.len() != length {
        return Err(format!(
            "DS digest has {} octets; digest type {digest_type} digests have {length}",
            digest.len()
        ));
    }
    Ok(AnchorDs {
        zone,
        key_tag,
        algorithm,
        digest_type,
        digest,
    })
}

/// The DS anchors of one zone, for messages: `example.com. DS 12345` or
/// `example.com. DS 12345, 54321`.
fn label(zone: &str, ds: &[&AnchorDs]) -> String {
    let tags: Vec<String> = ds.iter().map(|d| d.key_tag.to_string()).collect();
    format!("trust anchor {zone} DS {}", tags.join(", "))
}

/// Whether `now` (seconds since the epoch, mod 2^32) is inside the window
/// from `inception` to `expiration`, in RFC 1982 serial arithmetic as RFC
/// 4034 §3.1.5 requires.
fn in_window(inception: u32, expiration: u32, now: u32) -> bool {
    (now.wrapping_sub(inception) as i32) >= 0 && (expiration.wrapping_sub(now) as i32) >= 0
}

/// Checks the DNSKEY answer for `zone` against its DS anchors: the keys of
/// the RRset when it holds a key matching a DS and is signed by such a key
/// at `now`; else the reason.
pub(crate) fn verify_dnskeys(
    zone: &Name,
    ds: &[&AnchorDs],
    answers: &[Record],
    now: u32,
) -> Result<Vec<PublicKeyBuf>, String> {
    let what = label(&zone.to_ascii(), ds);
    let rrset: Vec<&Record> = answers
        .iter()
        .filter(|r| {
            r.record_type() == RecordType::DNSKEY && r.dns_class == DNSClass::IN && r.name == *zone
        })
        .collect();
    let keys: Vec<&DNSKEY> = rrset
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(format!("{what}: no DNSKEY records in the answer"));
    }
    let matching: Vec<&DNSKEY> = keys
        .iter()
        .copied()
        .filter(|k| ds.iter().any(|d| d.matches(zone, k)))
        .collect();
    if matching.is_empty() {
        return Err(format!(
            "{what}: no DNSKEY matches (the zone's {} key(s) have other digests)",
            keys.len()
        ));
    }
    let mut seen_signature = false;
    let mut outside_window = false;
    for r in answers {
        let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data else {
            continue;
        };
        let input = sig.input();
        if r.name != *zone || input.type_covered != RecordType::DNSKEY {
            continue;
        }
        if input.signer_name != *zone {
            continue;
        }
        for key in matching.iter().filter(|k| {
            k.algorithm() == input.algorithm && k.calculate_key_tag().ok() == Some(input.key_tag)
        }) {
            seen_signature = true;
            if !in_window(input.sig_inception.get(), input.sig_expiration.get(), now) {
                outside_window = true;
                continue;
            }
            if key
                .verify_rrsig(zone, DNSClass::IN, sig, rrset.iter().copied())
                .is_ok()
            {
                return Ok(keys.iter().map(|k| k.public_key().clone()).collect());
            }
        }
    }
    Err(if outside_window {
        format!(
            "{what}: the DNSKEY set's signature by the matching key is expired or not yet valid"
        )
    } else if seen_signature {
        format!("{what}: the DNSKEY set's RRSIG by the matching key does not verify")
    } else {
        format!("{what}: the DNSKEY set is not signed by the matching key (no RRSIG by it in the answer)")
    })
}

/// Turns the DS anchors into keys: for each zone named by a DS, its DNSKEY
/// RRset, fetched with RRSIGs through `handle` and verified against the DS
/// ([`verify_dnskeys`]). All zones must succeed: an anchor set is
/// configured as a whole, and a partial one would judge the missing zones
/// Bogus with a less helpful reason.
pub(crate) async fn establish<H: DnsHandle>(
    handle: &H,
    ds: &[AnchorDs],
    now: u32,
) -> Result<Vec<(Name, PublicKeyBuf)>, String> {
    let mut zones: Vec<&str> = ds.iter().map(|d| d.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let mut out = Vec::new();
    for zone in zones {
        let of_zone: Vec<&AnchorDs> = ds.iter().filter(|d| d.zone == zone).collect();
        let what = label(zone, &of_zone);
        let name = Name::from_ascii(zone).map_err(|e| format!("{what}: bad name: {e}"))?;
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_set_dnssec_ok = true;
        options.recursion_desired = true;
        options.edns_payload_len = 1232;
        let request =
            DnsRequest::from_query(Query::query(name.clone(), RecordType::DNSKEY), options);
        let response = handle
            .send(request)
            .first_answer()
            .await
            .map_err(|e| format!("{what}: DNSKEY query failed: {e}"))?;
        let rcode = response.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Err(format!("{what}: DNSKEY query answered {rcode}"));
        }
        let keys = verify_dnskeys(&name, &of_zone, &response.answers, now)?;
        tracing::debug!(zone, keys = keys.len(), "DS anchor established");
        out.extend(keys.into_iter().map(|k| (name.clone(), k)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4509 §2.3: the DNSKEY of `dskey.example.com.` and its SHA-256 DS.
    const RFC_KEY: &str = "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==";
    const RFC_DS: &str = "D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A";

    fn rfc_key() -> DNSKEY {
        let bytes = data_encoding::BASE64.decode(RFC_KEY.as_bytes()).unwrap();
        DNSKEY::with_flags(256, PublicKeyBuf::new(bytes, Algorithm::from_u8(5)))
    }

    fn rfc_ds(digest: &str) -> AnchorDs {
        // Algorithm 5 is not one the validator accepts, so the parser would
        // refuse this line; the digest computation is what is tested here.
        AnchorDs {
            zone: "dskey.example.com.".into(),
            key_tag: 60485,
            algorithm: 5,
            digest_type: 2,
            digest: data_encoding::HEXUPPER_PERMISSIVE
                .decode(digest.as_bytes())
                .unwrap(),
        }
    }

    #[test]
    fn rfc_4509_digest_matches() {
        let owner = Name::from_ascii("dskey.example.com.").unwrap();
        let key = rfc_key();
        assert_eq!(key.calculate_key_tag().unwrap(), 60485);
        assert!(rfc_ds(RFC_DS).matches(&owner, &key));
        // The owner name is part of the digest, case-insensitively.
        let upper = Name::from_ascii("DSKEY.Example.COM.").unwrap();
        assert!(rfc_ds(RFC_DS).matches(&upper, &key));
        let other = Name::from_ascii("other.example.com.").unwrap();
        assert!(!rfc_ds(RFC_DS).matches(&other, &key));
        // One hex digit changed.
        let altered = format!("E{}", &RFC_DS[1..]);
        assert!(!rfc_ds(&altered).matches(&owner, &key));
        // The same key with other flags (not a zone key, revoked) is not it.
        let bytes = data_encoding::BASE64.decode(RFC_KEY.as_bytes()).unwrap();
        let not_zone = DNSKEY::with_flags(0, PublicKeyBuf::new(bytes, Algorithm::from_u8(5)));
        assert!(!rfc_ds(RFC_DS).matches(&owner, &not_zone));
    }

    use hickory_resolver::proto::dnssec::crypto::Ed25519SigningKey;
    use hickory_resolver::proto::dnssec::rdata::{SigInput, RRSIG};
    use hickory_resolver::proto::dnssec::{SigningKey, TBS};
    use hickory_resolver::proto::rr::SerialNumber;

    struct Zone {
        name: Name,
        ksk: Ed25519SigningKey,
        zsk: Ed25519SigningKey,
        keys: Vec<Record>,
    }

    fn dnskey(flags: u16, key: &Ed25519SigningKey) -> DNSKEY {
        DNSKEY::with_flags(flags, key.to_public_key().unwrap())
    }

    fn zone() -> Zone {
        let name = Name::from_ascii("example.com.").unwrap();
        let gen = || {
            Ed25519SigningKey::from_pkcs8(&Ed25519SigningKey::generate_pkcs8().unwrap()).unwrap()
        };
        let (ksk, zsk) = (gen(), gen());
        let keys = [dnskey(257, &ksk), dnskey(256, &zsk)]
            .into_iter()
            .map(|k| Record::from_rdata(name.clone(), 3600, RData::DNSSEC(DNSSECRData::DNSKEY(k))))
            .collect();
        Zone {
            name,
            ksk,
            zsk,
            keys,
        }
    }

    fn ds_of(zone: &Zone, key: &DNSKEY, digest_type: u8) -> AnchorDs {
        AnchorDs {
            zone: "example.com.".into(),
            key_tag: key.calculate_key_tag().unwrap(),
            algorithm: 15,
            digest_type,
            digest: key
                .to_digest(&zone.name, DigestType::from(digest_type))
                .unwrap()
                .as_ref()
                .to_vec(),
        }
    }

    /// An RRSIG over the zone's DNSKEY set by `key`, valid from
    /// `inception` to `expiration`.
    fn rrsig(
        zone: &Zone,
        key: &Ed25519SigningKey,
        flags: u16,
        inception: u32,
        expiration: u32,
    ) -> Record {
        let input = SigInput {
            type_covered: RecordType::DNSKEY,
            algorithm: Algorithm::ED25519,
            num_labels: zone.name.num_labels(),
            original_ttl: 3600,
            sig_expiration: SerialNumber::new(expiration),
            sig_inception: SerialNumber::new(inception),
            key_tag: dnskey(flags, key).calculate_key_tag().unwrap(),
            signer_name: zone.name.clone(),
        };
        let tbs = TBS::from_input(&zone.name, DNSClass::IN, &input, zone.keys.iter()).unwrap();
        let sig = key.sign(&tbs).unwrap();
        Record::from_rdata(
            zone.name.clone(),
            3600,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
        )
    }

    /// The DNSKEY set is accepted only with a key matching the DS and a
    /// signature by that key, valid now, over the set as received; then all
    /// of its keys are the anchors.
    #[test]
    fn dnskey_sets_verified_against_the_ds() {
        let z = zone();
        let now = 1_800_000_000;
        let ksk_ds = ds_of(&z, &dnskey(257, &z.ksk), 2);
        let tag = ksk_ds.key_tag;
        let with =
            |extra: Vec<Record>| -> Vec<Record> { z.keys.iter().cloned().chain(extra).collect() };
        let signed = with(vec![rrsig(&z, &z.ksk, 257, now - 100, now + 100)]);
        let keys = verify_dnskeys(&z.name, &[&ksk_ds], &signed, now).unwrap();
        assert_eq!(keys.len(), 2, "every key of the set, the ZSK too");
        assert!(keys.contains(&z.zsk.to_public_key().unwrap()));
        // The set in another order is the same set (canonical order).
        let reversed: Vec<Record> = signed.iter().rev().cloned().collect();
        assert!(verify_dnskeys(&z.name, &[&ksk_ds], &reversed, now).is_ok());
        // SHA-384 works the same.
        let ds384 = ds_of(&z, &dnskey(257, &z.ksk), 4);
        assert_eq!(
            verify_dnskeys(&z.name, &[&ds384], &signed, now)
                .unwrap()
                .len(),
            2
        );

        let what = format!("trust anchor example.com. DS {tag}");
        assert_eq!(
            verify_dnskeys(&z.name, &[&ksk_ds], &[], now).unwrap_err(),
            format!("{what}: no DNSKEY records in the answer")
        );
        let other = zone();
        let foreign = ds_of(&other, &dnskey(257, &other.ksk), 2);
        assert!(verify_dnskeys(&z.name, &[&foreign], &signed, now)
            .unwrap_err()
            .contains(": no DNSKEY matches (the zone's 2 key(s) have other digests)"));
        // Signed by the ZSK only: not by the key the DS vouches for.
        let by_zsk = with(vec![rrsig(&z, &z.zsk, 256, now - 100, now + 100)]);
        assert_eq!(
            verify_dnskeys(&z.name, &[&ksk_ds], &by_zsk, now).unwrap_err(),
            format!("{what}: the DNSKEY set is not signed by the matching key (no RRSIG by it in the answer)")
        );
        for (inception, expiration) in [(now - 200, now - 1), (now + 1, now + 200)] {
            let stale = with(vec![rrsig(&z, &z.ksk, 257, inception, expiration)]);
            assert_eq!(
                verify_dnskeys(&z.name, &[&ksk_ds], &stale, now).unwrap_err(),
                format!("{what}: the DNSKEY set's signature by the matching key is expired or not yet valid")
            );
        }
        // A key added to the set after signing: the signature no longer
        // covers what was received.
        let mut grown = signed.clone();
        grown.push(Record::from_rdata(
            z.name.clone(),
            3600,
            RData::DNSSEC(DNSSECRData::DNSKEY(dnskey(256, &other.zsk))),
        ));
        assert_eq!(
            verify_dnskeys(&z.name, &[&ksk_ds], &grown, now).unwrap_err(),
            format!("{what}: the DNSKEY set's RRSIG by the matching key does not verify")
        );
        // One good signature among bad ones is enough.
        let both = with(vec![
            rrsig(&z, &z.ksk, 257, now - 200, now - 1),
            rrsig(&z, &z.ksk, 257, now - 100, now + 100),
        ]);
        assert!(verify_dnskeys(&z.name, &[&ksk_ds], &both, now).is_ok());
        // Records of another owner are not part of the set.
        let elsewhere: Vec<Record> = signed
            .iter()
            .cloned()
            .map(|mut r| {
                r.name = Name::from_ascii("other.example.").unwrap();
                r
            })
            .collect();
        assert!(verify_dnskeys(&z.name, &[&ksk_ds], &elsewhere, now)
            .unwrap_err()
            .contains("no DNSKEY records in the answer"));
    }

    #[test]
    fn windows_in_serial_arithmetic() {
        assert!(in_window(100, 200, 150));
        assert!(in_window(100, 200, 100));
        assert!(in_window(100, 200, 200));
        assert!(!in_window(100, 200, 99));
        assert!(!in_window(100, 200, 201));
        // Across the 2^32 wrap (the year 2106).
        assert!(in_window(u32::MAX - 10, 10, 5));
        assert!(!in_window(u32::MAX - 10, 10, 11));
    }
}
