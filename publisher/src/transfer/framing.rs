//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): a two-octet
//! length, then the message. Here, below both the TCP server and the zone
//! transfers, because both write messages this way.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `message` with its length prefix in one write (RFC 7766 §8),
/// within `timeout`.
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    out: &mut W,
    message: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "DNS message over 65,535 octets",
        )
    })?;
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    tokio::time::timeout(timeout, out.write_all(&frame))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client does not read"))?
}
