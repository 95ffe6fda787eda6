//! Dropping root after the listening sockets are bound (`serve --user`).
//!
//! DNS is served on port 53, which only root (or a process with
//! `CAP_NET_BIND_SERVICE`) may bind. The classic daemon answer, kept by
//! BIND, NSD and Knot, is to start as root, bind every socket, then become
//! an unprivileged user for the rest of the process's life. The order in
//! [`crate::serve::start`] is therefore:
//!
//! 1. resolve the user ([`ServiceUser::lookup`]), refusing early when the
//!    process is not root or the user does not exist;
//! 2. bind every socket (UDP, TCP, DoT, DoH, DoQ);
//! 3. drop ([`ServiceUser::become_user`]): supplementary groups from the
//!    group database (`initgroups`), then the group, then the user, and
//!    then verify that root cannot be regained;
//! 4. only then read the key files, certificates, TLS key and the state
//!    directory.
//!
//! Reading the inputs after the drop is deliberate: the server re-reads
//! them on every reload and re-sign for as long as it runs, always as the
//! service user. Reading them as root at start would let a server start
//! with files it can never read again and fail at its first reload, hours
//! later; reading them after the drop turns that into an error at start,
//! while the operator is watching.

use std::ffi::CString;

use nix::unistd::{Gid, Uid, User};

/// Why the server refuses to start with `--user`.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Changing user needs root; a server started by an ordinary user
    /// already runs unprivileged and cannot become anyone else.
    #[error("--user {user}: the server is not running as root (effective uid {euid}), so it cannot change to another user; start it as root, or drop --user")]
    NotRoot {
        /// The user asked for.
        user: String,
        /// The effective uid of the process.
        euid: u32,
    },
    /// The user is not in the user database.
    #[error("--user {0}: no such user")]
    Unknown(String),
    /// The user database cannot be read, or the name cannot be a user name.
    #[error("--user {user}: cannot look the user up: {reason}")]
    Lookup {
        /// The user asked for.
        user: String,
        /// The cause.
        reason: String,
    },
    /// A step of the drop failed; the process must not go on as root.
    #[error("--user {user}: cannot drop privileges: {step} failed: {source}")]
    Drop {
        /// The user asked for.
        user: String,
        /// `initgroups`, `setgid` or `setuid`.
        step: &'static str,
        /// The cause.
        source: nix::Error,
    },
    /// After the drop, the process could still become root again.
    #[error(
        "--user {user}: after dropping privileges the process could still regain root ({what})"
    )]
    Regained {
        /// The user asked for.
        user: String,
        /// What was still possible.
        what: &'static str,
    },
}

/// A user to run as, resolved from the user database while the process is
/// still root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    name: String,
    uid: Uid,
    gid: Gid,
}

impl ServiceUser {
    /// Looks `name` up, refusing when the process is not root (it could
    /// not change user later, and finding out before binding anything
    /// gives the clearer error) or when the user does not exist.
    pub fn lookup(name: &str) -> Result<Self, PrivilegeError> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(PrivilegeError::NotRoot {
                user: name.to_owned(),
                euid: euid.as_raw(),
            });
        }
        let user = User::from_name(name)
            .map_err(|e| PrivilegeError::Lookup {
                user: name.to_owned(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| PrivilegeError::Unknown(name.to_owned()))?;
        Ok(ServiceUser {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's uid.
    pub fn uid(&self) -> u32 {
        self.uid.as_raw()
    }

    /// The user's primary gid.
    pub fn gid(&self) -> u32 {
        self.gid.as_raw()
    }

    /// Becomes this user for the rest of the process: supplementary groups
    /// (`initgroups`), group, then user, in that order because changing
    /// groups needs root. glibc applies `setuid`/`setgid` to every thread
    /// of the process, so threads started earlier (tokio's workers) drop
    /// too. Then checks that `setuid(0)` fails and that no id (real,
    /// effective, saved) is still root, so that a bug in the drop cannot
    /// leave a root server behind.
    pub fn become_user(&self) -> Result<(), PrivilegeError> {
        let fail = |step| {
            move |source| PrivilegeError::Drop {
                user: self.name.clone(),
                step,
                source,
            }
        };
        let cname = CString::new(self.name.as_bytes()).map_err(|_| PrivilegeError::Lookup {
            user: self.name.clone(),
            reason: "the name contains a NUL byte".into(),
        })?;
        nix::unistd::initgroups(&cname, self.gid).map_err(fail("initgroups"))?;
        nix::unistd::setgid(self.gid).map_err(fail("setgid"))?;
        nix::unistd::setuid(self.uid).map_err(fail("setuid"))?;
        if self.uid.is_root() {
            // `--user root` is a no-op drop; nothing to verify.
            return Ok(());
        }
        let regained = |what| PrivilegeError::Regained {
            user: self.name.clone(),
            what,
        };
        if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(regained("setuid(0) succeeded"));
        }
        let ids = nix::unistd::getresuid().map_err(fail("getresuid"))?;
        if ids.real.is_root() || ids.effective.is_root() || ids.saved.is_root() {
            return Err(regained("a user id is still 0"));
        }
        let gids = nix::unistd::getresgid().map_err(fail("getresgid"))?;
        if [gids.real, gids.effective, gids.saved]
            .iter()
            .any(|g| *g != self.gid)
        {
            return Err(regained("a group id is not the user's group"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_refuses_when_not_root_or_unknown() {
        let root = nix::unistd::geteuid().is_root();
        match ServiceUser::lookup("no-such-user-mimi-dns-test") {
            Err(PrivilegeError::Unknown(u)) => {
                assert!(root);
                assert_eq!(u, "no-such-user-mimi-dns-test");
            }
            Err(PrivilegeError::NotRoot { .. }) => assert!(!root),
            other => panic!("unexpected {other:?}"),
        }
    }
}
