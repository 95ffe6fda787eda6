//! API keys: who may use the gateway, and at what rate.
//!
//! A gateway is an enumeration oracle (anyone who can ask it may test
//! millions of SIIs), so the operator names its clients. The keys file
//! (`--api-keys FILE`) holds one client a line:
//!
//! ```text
//! # name:key [rate=LOOKUPS_PER_SECOND] [burst=LOOKUPS]
//! webmail:3f9a0c2e8b7d4e61a5c0f2d9
//! support:Zk2pQ8sV1xR4tY7u rate=2 burst=50
//! ```
//!
//! Names are 1–64 characters of `A–Z a–z 0–9 . _ -` (they appear in logs
//! instead of the key); keys are 16–256 characters of `A–Z a–z 0–9 . _ ~
//! + / = -` (what fits in `Authorization: Bearer KEY`). Names and keys are
//! unique. The file is a secret: it must be a regular file, not a symbolic
//! link, and not readable by group or others (mode 0600 or stricter), the
//! rule of the publisher's signing keys; anything else is refused naming
//! the file. Every error names `file:line`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use mimi_publisher::input::secret::{read_secret, SecretFileError};

use crate::limit::{Rate, RateError};

/// The shortest key accepted: shorter ones can be guessed.
pub const MIN_KEY_LEN: usize = 16;
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 256;
/// The longest client name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A client's name, as the keys file gives it: safe to log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientName(String);

impl ClientName {
    /// Parses a name: 1–[`MAX_NAME_LEN`] characters of `A–Z a–z 0–9 . _ -`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(format!(
                "a client name has 1 to {MAX_NAME_LEN} characters, not {}",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "client name {s:?} has {c:?}; names use A-Z a-z 0-9 . _ -"
            ));
        }
        Ok(ClientName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret API key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

impl ApiKey {
    /// Parses a key: [`MIN_KEY_LEN`]–[`MAX_KEY_LEN`] characters of
    /// `A–Z a–z 0–9 . _ ~ + / = -`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() < MIN_KEY_LEN || s.len() > MAX_KEY_LEN {
            return Err(format!(
                "a key has {MIN_KEY_LEN} to {MAX_KEY_LEN} characters, not {}",
                s.len()
            ));
        }
        if s.chars().any(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '=' | '-'))
        }) {
            return Err("a key uses only A-Z a-z 0-9 . _ ~ + / = -".into());
        }
        Ok(ApiKey(s.to_owned()))
    }

    /// Compares in time independent of where the keys differ, so that the
    /// answer time does not reveal a key prefix.
    fn matches(&self, presented: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let mut diff = (mine.len() != presented.len()) as u8;
        for (i, b) in mine.iter().enumerate() {
            diff |= b ^ presented.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

/// One client of the keys file.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Its name (logged).
    pub name: ClientName,
    /// Its key.
    pub key: ApiKey,
    /// Its own rate, or `None` for the gateway's `--rate`/`--burst`.
    pub rate: Option<Rate>,
}

/// The clients of a keys file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySet {
    clients: Vec<Client>,
}

impl KeySet {
    /// The client whose key `presented` is, checking every key.
    pub fn find(&self, presented: &str) -> Option<&Client> {
        let mut found = None;
        for c in &self.clients {
            if c.key.matches(presented.as_bytes()) && found.is_none() {
                found = Some(c);
            }
        }
        found
    }

    /// The number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Parses the text of a keys file (`path` for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, KeyFileError> {
        let mut clients: Vec<Client> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let at = |message: String| KeyFileError::Line {
                path: path.to_owned(),
                line: i + 1,
                message,
            };
            let line = raw.split_once('#').map_or(raw, |(l, _)| l).trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_ascii_whitespace();
            let first = words.next().unwrap_or_default();
            let (name, key) = first
                .split_once(':')
                .ok_or_else(|| at("expected name:key".into()))?;
            let name = ClientName::parse(name).map_err(at)?;
            let key = ApiKey::parse(key).map_err(|e| at(format!("the key of {name}: {e}")))?;
            let (mut per_sec, mut burst) = (None, None);
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| at(format!("expected rate=N or burst=N, not {w:?}")))?;
                let slot = match k {
                    "rate" => &mut per_sec,
                    "burst" => &mut burst,
                    _ => return Err(at(format!("unknown setting {k:?} (rate=, burst=)"))),
                };
                if slot.is_some() {
                    return Err(at(format!("{k}= given twice")));
                }
                *slot = Some(v);
            }
            let rate = match (per_sec, burst) {
                (None, None) => None,
                (Some(r), Some(b)) => {
                    Some(Rate::parse(r, b).map_err(|e: RateError| at(e.to_string()))?)
                }
                _ => return Err(at("give both rate= and burst=, or neither".into())),
            };
            if clients.iter().any(|c| c.name == name) {
                return Err(at(format!("client {name} is named twice")));
            }
            if clients.iter().any(|c| c.key == key) {
                return Err(at(format!("the key of {name} is already another client's")));
            }
            clients.push(Client { name, key, rate });
        }
        Ok(KeySet { clients })
    }

    /// Reads and parses the keys file at `path`, refusing it unless it
    /// is a regular file readable by its owner only.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = read_secret(path, "API keys")?;
        Self::parse(path, &text)
    }
}

/// Why a keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read, is readable by others, or is no text.
    #[error(transparent)]
    File(#[from] SecretFileError),
    /// A line is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// File.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The keys in service, replaced whole when the file changes.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    current: ArcSwap<KeySet>,
}

impl KeyStore {
    /// Loads the file; an error here stops the gateway from starting.
    pub fn open(path: PathBuf) -> Result<Arc<Self>, KeyFileError> {
        let first = KeySet::load(&path)?;
        Ok(Arc::new(KeyStore {
            path,
            current: ArcSwap::from_pointee(first),
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys in service.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Reads the file again; a file that cannot be used keeps the keys in
    /// service (and the error is returned for the log).
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let new = KeySet::load(&self.path)?;
        let n = new.len();
        self.current.store(Arc::new(new));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn parse(text: &str) -> Result<KeySet, KeyFileError> {
        KeySet::parse(Path::new("keys.txt"), text)
    }

    #[test]
    fn names_keys_rates_and_comments_parse() {
        let set = parse(
            "# clients\n\nwebmail:0123456789abcdef  # the web app\nsupport:ZZZZZZZZZZZZZZZZ rate=2 burst=50\n",
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.find("0123456789abcdef").unwrap().name.as_str(),
            "webmail"
        );
        let s = set.find("ZZZZZZZZZZZZZZZZ").unwrap();
        assert_eq!(s.rate, Some(Rate::parse("2", "50").unwrap()));
        assert!(set.find("0123456789abcdeX").is_none());
        assert!(set.find("0123456789abcdef0").is_none());
        assert!(set.find("").is_none());
    }

    #[test]
    fn every_wrong_line_is_named_by_file_and_line() {
        for (text, want) in [
            (
                "a:0123456789abcdef\nnocolon\n",
                "keys.txt:2: expected name:key",
            ),
            ("a:short\n", "keys.txt:1: the key of a: a key has 16"),
            ("a:0123456789abcdef b\n", "keys.txt:1: expected rate=N"),
            ("a!:0123456789abcdef\n", "keys.txt:1: client name \"a!\""),
            ("a:0123456789abcdef rate=2\n", "keys.txt:1: give both"),
            ("a:0123456789abcdef rate=0 burst=1\n", "keys.txt:1: "),
            (
                "a:0123456789abcdef\na:0123456789abcdeg\n",
                "keys.txt:2: client a is named twice",
            ),
            (
                "a:0123456789abcdef\nb:0123456789abcdef\n",
                "keys.txt:2: the key of b is already",
            ),
            (
                "a:0123456789abcdef speed=3\n",
                "keys.txt:1: unknown setting",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_keys_file_readable_by_others_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "a:0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = KeyStore::open(path.clone()).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let store = KeyStore::open(path.clone()).unwrap();
        // A broken file keeps the keys in service.
        std::fs::write(&path, "broken\n").unwrap();
        assert!(store
            .reload()
            .unwrap_err()
            .to_string()
            .ends_with(":1: expected name:key"));
        assert_eq!(store.current().len(), 1);
    }
}
