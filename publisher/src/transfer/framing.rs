//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): a two-octet
//! length, then the message. Here, below both the TCP server and the zone
//! transfers, because both write messages this way.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `message` with its length prefix, offered to the connection in
/// one write (RFC 7766 §8), failing with [`io::ErrorKind::TimedOut`] when
/// the connection accepts no byte for `idle`.
///
/// `idle` bounds the time without progress, not the time the whole message
/// takes: a peer that keeps reading, however slowly, is never cut, and one
/// that stops is cut `idle` after the socket's send buffer filled. Progress
/// is seen when the kernel takes more bytes, which it does once a part of
/// its send buffer (about a third, on Linux) has drained; a peer reading a
/// few bytes per `idle` is treated as stalled.
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    out: &mut W,
    message: &[u8],
    idle: Duration,
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
    let stalled = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer has read nothing for {}",
                humantime::format_duration(idle)
            ),
        )
    };
    let mut rest = &frame[..];
    while !rest.is_empty() {
        let n = tokio::time::timeout(idle, out.write(rest))
            .await
            .map_err(|_| stalled())??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[n..];
    }
    tokio::time::timeout(idle, out.flush())
        .await
        .map_err(|_| stalled())?
}

/// Unsent octets the kernel holds for a transfer connection before it
/// makes the writer wait: about one message queued behind the ones in
/// flight, enough to keep a fast link busy.
const UNSENT_LOW_WATER: libc::c_int = 64 * 1024;

/// Paces writes on `stream` by its reader (Linux `TCP_NOTSENT_LOWAT`): a
/// write waits while more than [`UNSENT_LOW_WATER`] octets are unsent,
/// and resumes as soon as the peer has taken in enough of them.
///
/// Without it the kernel's send buffer, autotuned up to `tcp_wmem`'s
/// maximum (4 MiB by default), absorbs megabytes of the zone, and a write
/// resumes only once a third of that buffer has drained: a secondary
/// reading at 1 MB/s shows no progress for more than a second at a time,
/// which an idle timeout cannot tell from a stall, and every transfer pins
/// megabytes of kernel memory. With it, progress shows with every message
/// the secondary reads, and each transfer holds about two messages unsent
/// plus what the peer's window lets into flight. Elsewhere a no-op (the
/// idle timeout is then coarser).
pub(crate) fn pace_by_reader(stream: &tokio::net::TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let value = UNSENT_LOW_WATER;
        // SAFETY: setsockopt reads `value`, an int, as TCP_NOTSENT_LOWAT
        // expects, on a descriptor `stream` keeps open.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "cannot set TCP_NOTSENT_LOWAT: {}",
                io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that takes 256 octets every 100 ms needs 1.6 s for a
    /// 4 KiB message, longer than the 1 s idle timeout, and gets it all:
    /// the timeout is about progress, not about the message. Then nobody
    /// reads, and the next message is cut after the timeout.
    #[tokio::test]
    async fn slow_progress_is_not_a_timeout_and_no_progress_is() {
        let (mut w, mut r) = tokio::io::duplex(256);
        let message = vec![7u8; 4096];
        let idle = Duration::from_secs(1);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while got.len() < 4098 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = tokio::io::AsyncReadExt::read(&mut r, &mut buf)
                    .await
                    .unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            (got, r)
        });
        let start = std::time::Instant::now();
        write_message(&mut w, &message, idle).await.unwrap();
        assert!(start.elapsed() > idle);
        let (got, _r) = reader.await.unwrap();
        assert_eq!(&got[..2], &[0x10, 0x00]);
        assert_eq!(&got[2..], &message[..]);
        let start = std::time::Instant::now();
        let e = write_message(&mut w, &message, idle).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= idle);
    }
}
