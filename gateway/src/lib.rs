//! The HTTP discovery gateway: verified lookups over a JSON API.
//!
//! A provider that resolves SIIs on its users' behalf (for apps that cannot
//! speak DNS, browsers above all) runs this gateway. It is a thin HTTP
//! layer over [`mimi_resolver::Resolver`]: every answer is a
//! [`mimi_resolver::Report`] rendered by [`mimi_resolver::Report::to_json`],
//! the same object `mimi-resolve lookup --json` prints, so the gateway can
//! never return an SSI the library did not verify.
//!
//! Because a gateway is an enumeration oracle, every lookup request is
//! authorized ([`access`]) and charged to its client's token bucket
//! ([`limit`]) before anything is looked up.
//!
//! * [`api`] — the routes, the request log and the error responses.
//! * [`access`] — who may look up (API keys, local-only default).
//! * [`keys`] — the API keys file.
//! * [`limit`] — per-client token buckets.
//! * [`cache`] — whole answers cached for their DNS TTL.
//! * [`metrics`] — the Prometheus metrics.
//! * [`serve`] — plain HTTP or HTTPS (h2 and HTTP/1.1).
//! * [`watch`] — reloading the keys file and the TLS certificate.

pub mod access;
pub mod api;
pub mod cache;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod serve;
pub mod watch;

#[cfg(test)]
mod openapi_tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// Every route the router serves is in the document, and every status
    /// the handlers answer is listed for the routes that answer it.
    #[test]
    fn the_openapi_document_parses_and_lists_every_route_and_status() {
        let doc: Value = serde_json::from_str(crate::api::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let routes: BTreeSet<&str> = crate::api::ROUTES
            .iter()
            .copied()
            .filter(|r| *r != "other")
            .collect();
        assert_eq!(paths, routes);
        let statuses = |path: &str, method: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"))
                .keys()
                .cloned()
                .collect()
        };
        let want = |s: &[&str]| -> BTreeSet<String> { s.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            statuses("/v1/lookup", "get"),
            want(&["200", "400", "401", "403", "405", "429", "504"])
        );
        assert_eq!(
            statuses("/v1/lookup", "post"),
            want(&["200", "400", "401", "403", "405", "413", "429", "504"])
        );
        assert_eq!(statuses("/readyz", "get"), want(&["200", "405", "503"]));
        for p in ["/", "/app.js", "/v1/openapi.json", "/healthz", "/metrics"] {
            assert_eq!(statuses(p, "get"), want(&["200", "405"]), "{p}");
        }
        assert!(doc["x-other-routes"]["responses"]["404"].is_object());
        // Every $ref resolves.
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
