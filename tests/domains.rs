//! Many zones from one publisher, seen by the resolver: the SIIs of two
//! customer domains resolve and verify through a `serve` holding their
//! `_mimi.<domain>` zones (all from one `[domains]` configuration), and
//! one domain split into shard zones by two `[shards]` configurations
//! resolves whichever half an SII falls in. The resolver asks
//! `<label>.<shard>._mimi.<domain>` directly at the server, over real DNS
//! on loopback.

use std::time::Duration;

use mimi_e2e::{trust_toml, Authority, Trust, Workspace};
use mimi_proto::{DomainName, Sii};
use mimi_publisher::serve::{self, ServeOptions};
use mimi_resolver::{NameServers, Outcome, Resolver, ResolverOptions, TrustStore};

const HEAD: &str = r#"
role = "home"
ns = ["ns1.provider.example"]
mappings = "mappings.csv"
[soa]
mname = "ns1.provider.example"
rname = "hostmaster.provider.example"
[authority]
name = "provider.example"
key = "root.pem"
"#;

fn resolver(server: std::net::SocketAddr, provider: &Authority, domains: &[&str]) -> Resolver {
    let scope: Vec<String> = domains.iter().map(|d| format!("mailto:*@{d}")).collect();
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    let trust = trust_toml(
        1,
        &[Trust {
            authority: provider,
            sii_scope: &scope,
            ssi_scope: &["chat.provider.example"],
        }],
    );
    let mut o = ResolverOptions::new(TrustStore::from_toml_str(&trust, "test trust").unwrap());
    o.name_servers = NameServers::Explicit(vec![server]);
    o.timeout = Duration::from_secs(2);
    Resolver::new(o).unwrap()
}

fn sii(s: &str) -> Sii {
    Sii::parse(s, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_customer_domains_resolve_through_their_own_zones() {
    let ws = Workspace::new();
    let provider = Authority::new("provider.example");
    ws.write_key("p/root.pem", &provider.root);
    ws.write(
        "p/mappings.csv",
        "alice@a.example,mimi://chat.provider.example/u/alice\nbob@b.example,mimi://chat.provider.example/u/bob\n",
    );
    ws.write("p/domains.txt", "a.example\nb.example\n");
    let config = ws.write(
        "p/zone.toml",
        &format!("{HEAD}[domains]\norigin = \"_mimi.{{domain}}\"\nlist = \"domains.txt\"\n"),
    );
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(vec![config])
    })
    .await
    .expect("server starts");
    let origins: Vec<String> = server.origins().iter().map(|o| o.to_string()).collect();
    assert_eq!(origins, ["_mimi.a.example", "_mimi.b.example"]);
    let r = resolver(server.local_addr(), &provider, &["a.example", "b.example"]);
    for (who, domain, ssi) in [
        (
            "alice@a.example",
            "a.example",
            "mimi://chat.provider.example/u/alice",
        ),
        (
            "Bob@B.example",
            "b.example",
            "mimi://chat.provider.example/u/bob",
        ),
    ] {
        let got = r.lookup(&sii(who)).await.unwrap();
        assert_eq!(
            got.outcome(),
            Outcome::Verified,
            "{who}: {:?}",
            got.rejected
        );
        let ssis: Vec<&str> = got.verified.iter().map(|v| v.ssi.as_str()).collect();
        assert_eq!(ssis, [ssi], "{who}");
        assert!(
            got.names
                .iter()
                .any(|n| n.as_str().ends_with(&format!("._mimi.{domain}"))),
            "{who}: {:?}",
            got.names
        );
    }
    // A domain this provider does not serve has no zone here: refused.
    let e = r.lookup(&sii("carol@c.example")).await.unwrap_err();
    assert!(e.to_string().contains("Refused"), "{e}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_split_into_shard_zones_resolves_in_either_half() {
    let ws = Workspace::new();
    let provider = Authority::new("provider.example");
    let users: Vec<String> = (0..40).map(|i| format!("user{i}@big.example")).collect();
    let mappings: String = users
        .iter()
        .map(|u| {
            format!(
                "{u},mimi://chat.provider.example/u/{}\n",
                u.split('@').next().unwrap()
            )
        })
        .collect();
    let mut configs = Vec::new();
    for (half, shards) in [("low", "00-fv"), ("high", "g0-vv")] {
        ws.write_key(&format!("{half}/root.pem"), &provider.root);
        ws.write(&format!("{half}/mappings.csv"), &mappings);
        configs.push(ws.write(
            &format!("{half}/zone.toml"),
            &format!("origin = \"big.example\"\n{HEAD}[shards]\nzones = [\"{shards}\"]\n"),
        ));
    }
    let server = serve::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServeOptions::new(configs)
    })
    .await
    .expect("server starts");
    let origins = server.origins();
    assert!(origins
        .iter()
        .all(|o| o.as_str().ends_with("._mimi.big.example") && o.label_count() == 4));
    let r = resolver(server.local_addr(), &provider, &["big.example"]);
    let mut halves = [false, false];
    for u in &users {
        let s = sii(u);
        let shard = s.label().shard().to_owned();
        halves[usize::from(shard.as_str() >= "g0")] = true;
        assert!(
            origins.contains(&DomainName::parse(&format!("{shard}._mimi.big.example")).unwrap())
        );
        let got = r.lookup(&s).await.unwrap();
        assert_eq!(got.outcome(), Outcome::Verified, "{u}: {:?}", got.rejected);
    }
    assert_eq!(halves, [true, true], "40 users fall in both halves");
    server.shutdown().await.unwrap();
}
