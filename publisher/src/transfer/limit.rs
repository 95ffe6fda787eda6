//! How many zone transfers run at once, and when a stalled one is cut.
//!
//! A transfer of a large zone lasts as long as the secondary takes to read
//! it: minutes for a million-record zone over a slow link. The server does
//! not bound that time (a secondary that keeps reading keeps its transfer);
//! it bounds instead
//!
//! * how many transfers run at once, in total and per peer address
//!   ([`TransferOptions::max_total`], [`TransferOptions::max_per_source`]).
//!   Each transfer holds a permit (`TransferPermit`) from the moment its
//!   request has passed the access checks until its last message is
//!   written or the connection fails, is dropped or the server stops; the
//!   permit is given back on drop, so no path can leak one. A request over
//!   either limit is answered REFUSED at once and logged
//!   (`docs/PROTOCOL.md`, "Concurrent transfers", says why refusing rather
//!   than queueing);
//! * how long the secondary may read nothing
//!   ([`TransferOptions::idle_timeout`]): the transfer is cut when the
//!   connection accepts no byte of its next message for that long, however
//!   long the transfer as a whole has taken.
//!
//! Per-source counts use the exact peer address: secondaries are named by
//! address in `transfer.allow`, unlike the anonymous clients the TCP
//! connection limits group by prefix.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Limits on outgoing zone transfers (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// Transfers running at once, to all secondaries (0 refuses every
    /// transfer; the CLI asks for at least 1).
    pub max_total: usize,
    /// Transfers running at once to one peer address.
    pub max_per_source: usize,
    /// How long a transfer may wait for the secondary to accept any byte
    /// of the next message before it is cut. Distinct from the TCP query
    /// idle timeout: a secondary may pause to store what it received.
    pub idle_timeout: Duration,
}

impl TransferOptions {
    /// The defaults: 10 transfers at once, as BIND's `transfers-out`, with
    /// no tighter limit per secondary (one secondary bootstrapping many
    /// zones may use them all); 30 s without progress.
    pub const DEFAULT: TransferOptions = TransferOptions {
        max_total: 10,
        max_per_source: 10,
        idle_timeout: Duration::from_secs(30),
    };
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a transfer request was refused: a limit and how many run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// [`TransferOptions::max_total`] transfers are running.
    Total {
        /// Transfers running.
        running: usize,
        /// The limit.
        max: usize,
    },
    /// [`TransferOptions::max_per_source`] transfers run to this peer.
    Source {
        /// Transfers running to the peer.
        running: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match *self {
            Busy::Total { running, max } => write!(
                f,
                "{running} transfer{} running (max {max})",
                plural(running)
            ),
            Busy::Source { running, max } => write!(
                f,
                "{running} transfer{} running to this peer (max {max} per peer)",
                plural(running)
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only peers with a transfer running: bounded by `max_total`.
    per_source: HashMap<IpAddr, usize>,
}

/// The transfers running on one server; shared by its connections.
#[derive(Debug)]
pub(crate) struct Transfers {
    options: TransferOptions,
    counts: Mutex<Counts>,
}

impl Transfers {
    pub(crate) fn new(options: TransferOptions) -> Arc<Self> {
        Arc::new(Transfers {
            options,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The limits this server applies.
    pub(crate) fn options(&self) -> &TransferOptions {
        &self.options
    }

    /// A permit for one more transfer to `peer`, or which limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<TransferPermit, Busy> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.options.max_total {
            return Err(Busy::Total {
                running: counts.total,
                max: self.options.max_total,
            });
        }
        let n = counts.per_source.get(&peer).copied().unwrap_or(0);
        if n >= self.options.max_per_source {
            return Err(Busy::Source {
                running: n,
                max: self.options.max_per_source,
            });
        }
        counts.per_source.insert(peer, n + 1);
        counts.total += 1;
        Ok(TransferPermit {
            transfers: self.clone(),
            peer,
        })
    }

    /// Transfers running now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One running transfer's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct TransferPermit {
    transfers: Arc<Transfers>,
    peer: IpAddr,
}

impl Drop for TransferPermit {
    fn drop(&mut self) {
        let mut counts = self
            .transfers
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(n) = counts.per_source.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.per_source.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn total_and_per_peer_limits_and_release_on_drop() {
        let t = Transfers::new(TransferOptions {
            max_total: 3,
            max_per_source: 2,
            ..TransferOptions::DEFAULT
        });
        let a1 = t.admit(ip("192.0.2.1")).unwrap();
        let a2 = t.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            t.admit(ip("192.0.2.1")).unwrap_err(),
            Busy::Source { running: 2, max: 2 }
        );
        let b1 = t.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(
            t.admit(ip("192.0.2.3")).unwrap_err(),
            Busy::Total { running: 3, max: 3 }
        );
        assert_eq!(
            Busy::Total { running: 3, max: 3 }.to_string(),
            "3 transfers running (max 3)"
        );
        assert_eq!(
            Busy::Source { running: 1, max: 1 }.to_string(),
            "1 transfer running to this peer (max 1 per peer)"
        );
        drop(a1);
        let c1 = t.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(t.running(), 3);
        drop((a2, b1, c1));
        assert_eq!(t.running(), 0);
        assert!(t.counts.lock().unwrap().per_source.is_empty());
    }
}
