//! TSIG keys (RFC 8945), in the file format BIND's `tsig-keygen` writes:
//!
//! ```text
//! key "transfer-key" {
//!     algorithm hmac-sha256;
//!     secret "kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=";
//! };
//! ```
//!
//! The same key then goes into BIND (`include` the file), Knot
//! (`key: - id / algorithm / secret`) and NSD (`key: name / algorithm /
//! secret`) unchanged. Only HMAC-SHA256 is accepted: it is what every server
//! we feed supports, and one algorithm is one less thing to get wrong.

use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

use crate::input::secret::{read_secret, SecretFileError};

/// Fudge (allowed clock difference) for messages we sign, seconds (RFC 8945
/// recommends 300).
pub const FUDGE: u16 = 300;

/// A TSIG key: its name and shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    name: Name,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({}, hmac-sha256, <secret>)", self.name)
    }
}

/// Why a TSIG key file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TsigKeyError {
    /// The file cannot be read as a secret: I/O, readable by group or
    /// others, a symbolic link, not a regular file, too large.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// Not in `key "name" { algorithm …; secret "…"; };` form.
    #[error("{path}: {why} (expected the format tsig-keygen writes: key \"NAME\" {{ algorithm hmac-sha256; secret \"BASE64\"; }};)")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl TsigKey {
    /// Reads a key file. It gets the rules of private keys
    /// ([`read_secret`]): whoever holds the secret can rewrite the zone at
    /// a primary (push) or transfer it, so a file group or others can read
    /// is refused, as are symbolic links and anything but a small regular
    /// file.
    pub fn load(path: &Path) -> Result<Self, TsigKeyError> {
        let text = read_secret(path, "TSIG key")?;
        Self::parse(&text).map_err(|why| TsigKeyError::Format {
            path: path.to_owned(),
            why,
        })
    }

    /// Parses key-file text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        let mut it = tokens.iter().map(String::as_str).peekable();
        if it.next() != Some("key") {
            return Err("does not start with `key`".into());
        }
        let name = it.next().ok_or("missing key name")?;
        if it.next() != Some("{") {
            return Err("missing `{` after the key name".into());
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match it.next() {
                Some("}") => break,
                Some("algorithm") => {
                    algorithm = Some(it.next().ok_or("missing algorithm")?.to_ascii_lowercase())
                }
                Some("secret") => secret = Some(it.next().ok_or("missing secret")?.to_owned()),
                Some(other) => return Err(format!("unexpected `{other}`")),
                None => return Err("missing `}`".into()),
            }
            if it.next() != Some(";") {
                return Err("missing `;` after a statement".into());
            }
        }
        match algorithm.as_deref() {
            Some("hmac-sha256") => {}
            Some(a) => return Err(format!("algorithm {a} is not supported; use hmac-sha256")),
            None => return Err("no algorithm".into()),
        }
        let secret = BASE64
            .decode(secret.ok_or("no secret")?.as_bytes())
            .map_err(|e| format!("secret is not base64: {e}"))?;
        if secret.len() < 16 {
            return Err("secret is shorter than 16 octets".into());
        }
        let fqdn = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        let name = Name::from_ascii(&fqdn).map_err(|e| format!("bad key name {name:?}: {e}"))?;
        Ok(TsigKey {
            name: name.to_lowercase(),
            secret,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// A hickory signer for this key.
    pub fn signer(&self) -> TSigner {
        TSigner::new(
            self.secret.clone(),
            TsigAlgorithm::HmacSha256,
            self.name.clone(),
            FUDGE,
        )
        .expect("HMAC-SHA256 is supported")
    }

    /// The key in BIND's format (also what `load` reads).
    pub fn to_bind(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            self.name.to_string().trim_end_matches('.'),
            BASE64.encode(&self.secret)
        )
    }
}

/// Splits into words, quoted strings, and the punctuation `{ } ;`; `#`,
/// `//` comments run to the end of the line.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '#' => break,
                '/' if chars.peek() == Some(&'/') => break,
                c if c.is_whitespace() => {}
                '{' | '}' | ';' => out.push(c.to_string()),
                '"' => {
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some(c) => s.push(c),
                            None => return Err("unterminated quoted string".into()),
                        }
                    }
                    out.push(s);
                }
                c => {
                    let mut s = c.to_string();
                    while let Some(&n) = chars.peek() {
                        if n.is_whitespace() || "{};\"".contains(n) {
                            break;
                        }
                        s.push(n);
                        chars.next();
                    }
                    out.push(s);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "key \"transfer-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=\";\n};\n";

    #[test]
    fn reads_tsig_keygen_output_and_round_trips() {
        let k = TsigKey::parse(KEY).unwrap();
        assert_eq!(k.name().to_string(), "transfer-key.");
        assert_eq!(k.to_bind(), KEY);
        assert_eq!(k.signer().signer_name(), k.name());
        let one_line = "# comment\nkey transfer-key { algorithm HMAC-SHA256; secret \"kXW841Sbu0aZFtjM/0NLeCiBM/jbq9bvxoQXun9bHro=\"; }; // end";
        assert_eq!(TsigKey::parse(one_line).unwrap(), k);
    }

    #[cfg(unix)]
    #[test]
    fn key_files_get_the_private_key_rules() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.key");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(KEY.as_bytes())
            .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = TsigKey::load(&p).unwrap_err();
        assert!(
            matches!(
                e,
                TsigKeyError::Secret(SecretFileError::Permissions { mode: 0o644, .. })
            ),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(TsigKey::load(&p).unwrap(), TsigKey::parse(KEY).unwrap());
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(
            TsigKey::load(&link),
            Err(TsigKeyError::Secret(SecretFileError::Symlink { .. }))
        ));
        assert!(matches!(
            TsigKey::load(Path::new("/dev/zero")),
            Err(TsigKeyError::Secret(SecretFileError::NotRegular { .. }))
        ));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(TsigKey::parse(&KEY.replace("hmac-sha256", "hmac-md5"))
            .unwrap_err()
            .contains("not supported"));
        assert!(TsigKey::parse(&KEY.replace("kXW8", "!!!!"))
            .unwrap_err()
            .contains("base64"));
        assert!(TsigKey::parse("key \"k\" { algorithm hmac-sha256 }").is_err());
        assert!(TsigKey::parse("zone \"k\" {};").is_err());
        assert!(
            TsigKey::parse("key \"k\" { secret \"AAAA\"; algorithm hmac-sha256; };")
                .unwrap_err()
                .contains("16")
        );
    }
}
