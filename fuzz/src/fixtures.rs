//! Fixed keys and the trust store the targets use: the Ed25519 seeds of
//! `shared/vectors/records.json` (so the vector records verify), plus an
//! attacker key that no trust store pins.

use ed25519_dalek::SigningKey;
use mimi_proto::{AuthorityName, PublicKey, UnixTime};
use mimi_resolver::{HostPattern, Policy, SiiPattern, TrustStore, TrustedAuthority};

/// `now` of `records.json`: the vector records verify at this time.
pub const NOW: UnixTime = UnixTime(1_765_000_000);

/// The key seeds: `records.json` keys `root`, `signing`, `provider_root`,
/// and an attacker's key.
const SEEDS: [&str; 4] = [
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    "0000000000000000000000000000000000000000000000000000000000000001",
];

/// Which fixed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// ma.example.net's pinned root key.
    Root,
    /// ma.example.net's signing key, certified by `Root` in the vectors.
    Signing,
    /// chat.example.org's pinned root key.
    ProviderRoot,
    /// A key that no trust store pins.
    Attacker,
}

impl KeyName {
    /// The key named by one character: `r`, `s`, `p`, anything else the
    /// attacker.
    pub fn from_char(c: char) -> Self {
        match c {
            'r' => KeyName::Root,
            's' => KeyName::Signing,
            'p' => KeyName::ProviderRoot,
            _ => KeyName::Attacker,
        }
    }

    /// The signing key.
    pub fn signing_key(self) -> SigningKey {
        let hex = SEEDS[self as usize];
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex seed"))
            .collect();
        SigningKey::from_bytes(&bytes.try_into().expect("32 octets"))
    }

    /// The public key.
    pub fn public(self) -> PublicKey {
        PublicKey::from_verifying_key(self.signing_key().verifying_key()).expect("not weak")
    }
}

/// ma.example.net.
pub fn ma() -> AuthorityName {
    AuthorityName::parse("ma.example.net").expect("name")
}

/// chat.example.org.
pub fn chat() -> AuthorityName {
    AuthorityName::parse("chat.example.org").expect("name")
}

/// The trust store: ma.example.net (root key `Root`) for
/// `mailto:*@example.com` and `tel:+39*`, SSIs at `chat.example.org`;
/// chat.example.org (root key `ProviderRoot`) for every SII, SSIs at
/// `chat.example.org` and `*.chat.example.org`. `min_authorities` as given.
pub fn trust_store(min_authorities: usize) -> TrustStore {
    let mut store = TrustStore::new(Policy {
        min_authorities,
        ..Policy::default()
    });
    let sii = |p: &str| SiiPattern::parse(p).expect("pattern");
    let host = |p: &str| HostPattern::parse(p).expect("pattern");
    store
        .add(
            TrustedAuthority::new(
                ma(),
                vec![KeyName::Root.public()],
                vec![sii("mailto:*@example.com"), sii("tel:+39*")],
                vec![host("chat.example.org")],
            )
            .expect("authority"),
        )
        .expect("added");
    store
        .add(
            TrustedAuthority::new(
                chat(),
                vec![KeyName::ProviderRoot.public()],
                vec![sii("*")],
                vec![host("chat.example.org"), host("*.chat.example.org")],
            )
            .expect("authority"),
        )
        .expect("added");
    store
}
