//! Set-up shared by the publisher's integration tests.

/// The zone configuration the server tests start from: `example.com`, a
/// home zone signed with `signing.pem`, mappings in `mappings.csv`.
pub const CONFIG: &str = r#"
origin = "example.com"
role = "home"
ttl = 300
ns = ["ns1.example.com"]
mappings = "mappings.csv"

[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"

[authority]
name = "example.com"
key = "signing.pem"
"#;
