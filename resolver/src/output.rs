//! Rendering results for people and programs.
//!
//! The `mimi-resolve` binary is a thin shell over these functions, so the
//! exact JSON shape (a contract with scripts and tests) is tested here
//! without spawning processes.

use std::time::{Duration, UNIX_EPOCH};

use mimi_proto::{DomainName, Label, Sii, UnixTime};
use serde_json::{json, Value};

use crate::resolution::{Outcome, Resolution};

/// A Unix time as RFC 3339 UTC with seconds, e.g. `2026-12-10T00:00:00Z`.
///
/// Total: times beyond the year 9999 (which no parsed record carries, SPEC
/// §4, but a caller may construct) are shown as plain seconds instead of
/// panicking inside the formatter.
pub fn rfc3339(t: UnixTime) -> String {
    if t > UnixTime::MAX_RECORD {
        return format!("{} (Unix seconds, after 9999-12-31)", t.0);
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.0)).to_string()
}

/// The process exit code of an outcome: 0 verified, 1 not found,
/// 4 records found but none verified, 3 DNS failure. (2 is reserved for bad
/// input or configuration, which is not an outcome of a lookup.)
pub fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Verified => 0,
        Outcome::NotFound => 1,
        Outcome::DnsError => 3,
        Outcome::Rejected => 4,
    }
}

/// JSON of `mimi-resolve name`: `canonical`, `label`, `names` (FQDNs with
/// trailing dot, home name(s) first).
pub fn names_json(sii: &Sii, label: &Label, names: &[DomainName]) -> Value {
    json!({
        "canonical": sii.as_str(),
        "label": label.as_str(),
        "names": names.iter().map(|n| n.fqdn()).collect::<Vec<_>>(),
    })
}

/// JSON of `mimi-resolve lookup` for a completed lookup.
///
/// With `with_endpoints`, the SRV endpoints are added as a separate
/// top-level `unauthenticated_endpoints` list (one object per provider host:
/// `host`, `endpoints`, `unavailable`), never inside `verified`: they are not
/// signed, and a script reading `verified` must only see signed data.
pub fn resolution_json(res: &Resolution, with_endpoints: bool) -> Value {
    let verified: Vec<Value> = res
        .verified
        .iter()
        .map(|v| {
            json!({
                "ssi": v.ssi.as_str(),
                "authorities": v.authorities.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "expires": v.expires.0,
            })
        })
        .collect();
    let rejected: Vec<Value> = res
        .rejected
        .iter()
        .map(|r| {
            let mut o = json!({ "reason": r.reason, "record": r.record });
            if let Some(a) = &r.authority {
                o["authority"] = Value::String(a.to_string());
            }
            o
        })
        .collect();
    let mut out = json!({
        "canonical": res.canonical.as_str(),
        "outcome": res.outcome().as_str(),
        "verified": verified,
        "rejected": rejected,
        "errors": res.errors,
    });
    if with_endpoints {
        let hosts: Vec<Value> = res
            .unauthenticated_endpoints
            .iter()
            .map(|h| {
                let eps: Vec<Value> = h
                    .endpoints
                    .iter()
                    .map(|e| {
                        json!({
                            "target": e.target,
                            "port": e.port,
                            "priority": e.priority,
                            "weight": e.weight,
                        })
                    })
                    .collect();
                json!({ "host": h.host.as_str(), "endpoints": eps, "unavailable": h.unavailable })
            })
            .collect();
        out["unauthenticated_endpoints"] = Value::Array(hosts);
    }
    out
}

/// JSON of `mimi-resolve lookup` when every DNS source failed.
pub fn dns_error_json(sii: &Sii, errors: &[String]) -> Value {
    json!({
        "canonical": sii.as_str(),
        "outcome": Outcome::DnsError.as_str(),
        "verified": [],
        "rejected": [],
        "errors": errors,
    })
}

/// JSON of a private lookup in which no zone publishes privacy buckets
/// (`outcome` `no_buckets`, exit code [`EXIT_NO_BUCKETS`]): nothing was
/// asked that names the SII; `zones` lists the zones without buckets.
pub fn no_buckets_json(sii: &Sii, zones: &[DomainName], errors: &[String]) -> Value {
    json!({
        "canonical": sii.as_str(),
        "outcome": "no_buckets",
        "zones": zones.iter().map(|z| z.as_str()).collect::<Vec<_>>(),
        "verified": [],
        "rejected": [],
        "errors": errors,
    })
}

/// Text of a private lookup in which no zone publishes privacy buckets.
pub fn no_buckets_text(sii: &Sii, zones: &[DomainName], errors: &[String]) -> String {
    let zones: Vec<&str> = zones.iter().map(|z| z.as_str()).collect();
    let mut s = format!(
        "{sii} → no privacy buckets in {} (private mode asks no exact name)\n",
        zones.join(", ")
    );
    for e in errors {
        s.push_str(&format!("  error: {e}\n"));
    }
    s
}

/// Exit code of a private lookup in which no zone publishes privacy
/// buckets: a caller tells it apart from "not found" and decides whether
/// to look up again without private mode.
pub const EXIT_NO_BUCKETS: u8 = 6;

/// JSON line of `mimi-resolve batch` for an input line that cannot be
/// looked up: not an SII, or (with `canonical`) an SII this configuration
/// has nothing to query for. Same keys as a lookup's JSON, `outcome`
/// `bad_input`, plus `input`.
pub fn bad_input_json(input: &str, canonical: Option<&Sii>, error: &str) -> Value {
    let mut v = json!({
        "input": input,
        "outcome": "bad_input",
        "verified": [],
        "rejected": [],
        "errors": [error],
    });
    if let Some(sii) = canonical {
        v["canonical"] = Value::String(sii.as_str().to_owned());
    }
    v
}

/// A lookup's JSON ([`resolution_json`] or [`dns_error_json`]) as one line
/// of `mimi-resolve batch`: the same object with the input line added as
/// `input`.
pub fn batch_line_json(input: &str, mut lookup: Value) -> Value {
    lookup["input"] = Value::String(input.to_owned());
    lookup
}

/// The short human-readable report of a lookup.
pub fn resolution_text(res: &Resolution) -> String {
    let mut s = format!("{} → {}\n", res.canonical, res.outcome());
    for v in &res.verified {
        let auths: Vec<&str> = v.authorities.iter().map(|a| a.as_str()).collect();
        s.push_str(&format!(
            "  {}  (authorities: {}; expires {})\n",
            v.ssi,
            auths.join(", "),
            rfc3339(v.expires)
        ));
    }
    for h in &res.unauthenticated_endpoints {
        s.push_str(&format!(
            "  endpoints of {} (UNAUTHENTICATED: SRV records are not signed)\n",
            h.host
        ));
        if h.unavailable {
            s.push_str("    service not available (SRV target \".\")\n");
        }
        for e in &h.endpoints {
            s.push_str(&format!(
                "    {}:{} (priority {}, weight {})\n",
                e.target, e.port, e.priority, e.weight
            ));
        }
    }
    for r in &res.rejected {
        match &r.authority {
            Some(a) => s.push_str(&format!("  rejected ({a}): {}\n", r.reason)),
            None => s.push_str(&format!("  rejected: {}\n", r.reason)),
        }
    }
    for e in &res.errors {
        s.push_str(&format!("  error: {e}\n"));
    }
    s
}

/// The human-readable report of a lookup where every DNS source failed.
pub fn dns_error_text(sii: &Sii, errors: &[String]) -> String {
    let mut s = format!("{sii} → {}\n", Outcome::DnsError);
    for e in errors {
        s.push_str(&format!("  error: {e}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolution::{Endpoint, Rejected, UnauthenticatedEndpoints, VerifiedSsi};
    use mimi_proto::{AuthorityName, Ssi};

    fn sample() -> Resolution {
        let sii = Sii::parse("Alice@Example.COM", None).unwrap();
        Resolution {
            label: sii.label(),
            names: vec![],
            canonical: sii,
            verified: vec![VerifiedSsi {
                ssi: Ssi::parse("mimi://chat.example.com/u/alice").unwrap(),
                authorities: vec![
                    AuthorityName::parse("example.com").unwrap(),
                    AuthorityName::parse("ma.example.net").unwrap(),
                ],
                expires: UnixTime(1796860800),
            }],
            unauthenticated_endpoints: vec![UnauthenticatedEndpoints {
                host: DomainName::parse("chat.example.com").unwrap(),
                endpoints: vec![Endpoint {
                    priority: 10,
                    weight: 5,
                    target: "srv.chat.example.com.".into(),
                    port: 8443,
                }],
                unavailable: false,
            }],
            rejected: vec![
                Rejected {
                    authority: Some(AuthorityName::parse("ma.example.net").unwrap()),
                    reason: "expired at 2025-11-15T00:00:00Z (x=1763164800)".into(),
                    record: "v=mimi1;...".into(),
                    source: "x.".into(),
                },
                Rejected {
                    authority: None,
                    reason: "malformed: the last field is not sig".into(),
                    record: "v=mimi1;a=b".into(),
                    source: "x.".into(),
                },
            ],
            errors: vec!["a.example.: timed out".into()],
            ttl: Some(300),
        }
    }

    #[test]
    fn lookup_json_shape() {
        let res = sample();
        let v = resolution_json(&res, false);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
        for k in ["canonical", "outcome", "verified", "rejected", "errors"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["canonical"], "mailto:alice@example.com");
        assert_eq!(v["outcome"], "verified");
        assert_eq!(v["verified"][0]["ssi"], "mimi://chat.example.com/u/alice");
        assert_eq!(
            v["verified"][0]["authorities"],
            json!(["example.com", "ma.example.net"])
        );
        assert_eq!(v["verified"][0]["expires"], 1796860800u64);
        assert!(v["verified"][0].get("endpoints").is_none());
        assert_eq!(v["rejected"][0]["authority"], "ma.example.net");
        assert!(v["rejected"][1].get("authority").is_none());
        assert_eq!(v["rejected"][1]["record"], "v=mimi1;a=b");
        assert_eq!(v["errors"], json!(["a.example.: timed out"]));

        assert!(v.get("unauthenticated_endpoints").is_none());
        let v = resolution_json(&res, true);
        // Endpoints are never inside `verified`: they are not signed.
        assert!(v["verified"][0].get("endpoints").is_none());
        assert_eq!(
            v["unauthenticated_endpoints"],
            json!([{
                "host": "chat.example.com",
                "unavailable": false,
                "endpoints": [{"target": "srv.chat.example.com.", "port": 8443, "priority": 10, "weight": 5}],
            }])
        );
        let text = resolution_text(&res);
        assert!(
            text.contains("endpoints of chat.example.com (UNAUTHENTICATED"),
            "{text}"
        );
    }

    #[test]
    fn times_beyond_year_9999_do_not_panic() {
        assert_eq!(rfc3339(UnixTime::MAX_RECORD), "9999-12-31T23:59:59Z");
        assert!(rfc3339(UnixTime(300_000_000_000)).contains("300000000000"));
        assert!(rfc3339(UnixTime(u64::MAX)).contains(&u64::MAX.to_string()));
    }

    #[test]
    fn outcomes_and_exit_codes() {
        let mut res = sample();
        assert_eq!(res.outcome(), Outcome::Verified);
        res.verified.clear();
        assert_eq!(res.outcome(), Outcome::Rejected);
        assert_eq!(resolution_json(&res, false)["outcome"], "rejected");
        res.rejected.clear();
        assert_eq!(res.outcome(), Outcome::NotFound);
        assert_eq!(resolution_json(&res, false)["outcome"], "not_found");
        assert_eq!(exit_code(Outcome::Verified), 0);
        assert_eq!(exit_code(Outcome::NotFound), 1);
        assert_eq!(exit_code(Outcome::DnsError), 3);
        assert_eq!(exit_code(Outcome::Rejected), 4);
        let sii = Sii::parse("a@example.com", None).unwrap();
        let v = dns_error_json(&sii, &["x".into()]);
        assert_eq!(v["outcome"], "dns_error");
        assert_eq!(v["errors"], json!(["x"]));
    }

    #[test]
    fn batch_lines() {
        let v = batch_line_json("Alice@Example.COM", resolution_json(&sample(), false));
        assert_eq!(v.as_object().unwrap().len(), 6);
        assert_eq!(v["input"], "Alice@Example.COM");
        assert_eq!(v["canonical"], "mailto:alice@example.com");
        assert_eq!(v["outcome"], "verified");

        let v = bad_input_json("nobody", None, "not an email address");
        assert_eq!(
            v,
            json!({"input": "nobody", "outcome": "bad_input", "verified": [], "rejected": [], "errors": ["not an email address"]})
        );
        let sii = Sii::parse("+390612345678", None).unwrap();
        let v = bad_input_json("+390612345678", Some(&sii), "no discovery names");
        assert_eq!(v["canonical"], "tel:+390612345678");
        assert_eq!(v["outcome"], "bad_input");
    }

    #[test]
    fn human_text() {
        let t = resolution_text(&sample());
        assert_eq!(
            t,
            "mailto:alice@example.com → verified\n  mimi://chat.example.com/u/alice  (authorities: example.com, ma.example.net; expires 2026-12-10T00:00:00Z)\n  endpoints of chat.example.com (UNAUTHENTICATED: SRV records are not signed)\n    srv.chat.example.com.:8443 (priority 10, weight 5)\n  rejected (ma.example.net): expired at 2025-11-15T00:00:00Z (x=1763164800)\n  rejected: malformed: the last field is not sig\n  error: a.example.: timed out\n"
        );
    }

    #[test]
    fn names_shape() {
        let sii = Sii::parse("Alice@Example.COM", None).unwrap();
        let names = vec![DomainName::parse("x.example").unwrap()];
        let v = names_json(&sii, &sii.label(), &names);
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert_eq!(v["names"], json!(["x.example."]));
        assert_eq!(
            v["label"],
            "3b3qhrr4hku6f09cih8hemu3qt7u60q58uvh63lqcsjfgama37jg"
        );
    }
}
