//! The figures an operator watches about one zone: how many records of
//! each kind it publishes and when the first of them stops verifying.
//!
//! Both `mimi-publisher status` and the server's metrics report them, so
//! they are computed in one place, from the zone alone (no clock but the
//! one given, no configuration): what is published is what counts.

use mimi_proto::UnixTime;

use crate::zone::Zone;

/// Counts and expiries of one zone's mimi records.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ZoneFigures {
    /// The SOA serial.
    pub serial: u32,
    /// Every mimi record (assertions, bucket copies, certificates, other
    /// TXT records the build published).
    pub records: usize,
    /// Assertions (records with an `s=` field), bucket copies included.
    pub assertions: usize,
    /// Key certificates (records with a `pk=` field).
    pub certificates: usize,
    /// The earliest `x=` of any assertion: when the first one stops
    /// verifying if nothing re-signs it.
    pub earliest_assertion_expiry: Option<UnixTime>,
    /// The earliest `x=` of any published certificate.
    pub earliest_certificate_expiry: Option<UnixTime>,
}

impl ZoneFigures {
    /// The figures of `zone`.
    pub fn of(zone: &Zone) -> ZoneFigures {
        let mut f = ZoneFigures {
            serial: zone.soa.serial,
            records: zone.records.len(),
            ..ZoneFigures::default()
        };
        for r in &zone.records {
            let mut expiry = None;
            let (mut ssi, mut pk) = (false, false);
            for field in r.text.split(';') {
                match field.split_once('=') {
                    Some(("s", _)) => ssi = true,
                    Some(("pk", _)) => pk = true,
                    Some(("x", v)) => expiry = v.parse().ok().map(UnixTime),
                    _ => {}
                }
            }
            let earliest = if ssi {
                f.assertions += 1;
                &mut f.earliest_assertion_expiry
            } else if pk {
                f.certificates += 1;
                &mut f.earliest_certificate_expiry
            } else {
                continue;
            };
            if let Some(x) = expiry {
                *earliest = Some(earliest.map_or(x, |e: UnixTime| e.min(x)));
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{Soa, ZoneRecord};

    #[test]
    fn counts_and_earliest_expiries() {
        let name = |s: &str| mimi_proto::DomainName::parse(s).unwrap();
        let rec = |o: &str, t: &str| ZoneRecord::new(name(o), 60, t.to_owned());
        let zone = Zone {
            origin: name("example.com"),
            ttl: 60,
            soa: Soa {
                mname: name("ns1.example.com"),
                rname: name("h.example.com"),
                serial: 7,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 1,
            },
            ns: vec![],
            glue: vec![],
            records: vec![
                rec(
                    "_mimi-ma.example.com",
                    "v=mimi1;a=example.com;k=k;pk=p;r=r;t=1;x=500;sig=s",
                ),
                rec(
                    "a._mimi.example.com",
                    "v=mimi1;a=example.com;k=k;s=im:a@b.c;t=1;x=300;sig=s",
                ),
                rec(
                    "b._mimi.example.com",
                    "v=mimi1;a=example.com;k=k;s=im:b@b.c;t=1;x=200;sig=s",
                ),
                rec("_mimi-b.example.com", "v=mimi1;n=2"),
            ],
            delegations: vec![],
            ptrs: vec![],
            next_resign: None,
            transfer: None,
            cache: Default::default(),
            ledger: Default::default(),
        };
        let f = ZoneFigures::of(&zone);
        assert_eq!(f.serial, 7);
        assert_eq!((f.records, f.assertions, f.certificates), (4, 2, 1));
        assert_eq!(f.earliest_assertion_expiry, Some(UnixTime(200)));
        assert_eq!(f.earliest_certificate_expiry, Some(UnixTime(500)));
    }
}
