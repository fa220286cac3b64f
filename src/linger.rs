//! Lingering close: an HTTP/1.1 connection is closed so that the client can read its answer.
//!
//! When a server closes a TCP connection while request bytes it never read are still in its
//! receive buffer (or still arriving), the kernel answers with a reset, and a reset makes the
//! client's kernel discard whatever it had received but the client had not yet read: the
//! answer. That is how a refusal sent before its request body was read got lost (a client
//! that only reads once it has sent everything saw a connection reset instead of a 403).
//! So, like Apache's and nginx's lingering close, [`Linger`] turns a shutdown into: send
//! everything, close the sending side (TLS `close_notify`, then FIN), then keep reading and
//! discarding until the client closes too, for at most `limits.linger_timeout` and
//! [`LINGER_BYTES`]. Only then does the socket go. HTTP/2 needs none of this: GOAWAY and
//! `RST_STREAM` say what was processed, so its connections close as they are.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// At most this much is read and discarded while lingering: a client still sending more
/// than this has not looked at the answer and will not in the time left.
pub const LINGER_BYTES: u64 = 4 << 20;

/// An IO object whose shutdown lingers (see the module doc); `off` passes shutdown through.
pub struct Linger<T> {
    io: T,
    timeout: Duration,
    state: State,
}

enum State {
    Open,
    /// The sending side is closed; reading until EOF, the deadline or the byte cap.
    Lingering {
        deadline: Pin<Box<Sleep>>,
        read: u64,
    },
    Closed,
}

impl<T> Linger<T> {
    /// Lingers up to `timeout` on shutdown; `None` shuts down at once.
    pub fn new(io: T, timeout: Option<Duration>) -> Linger<T> {
        Linger {
            io,
            timeout: timeout.unwrap_or_default(),
            state: if timeout.is_some() {
                State::Open
            } else {
                State::Closed
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Linger<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Closed => return Pin::new(&mut this.io).poll_shutdown(cx),
                State::Open => {
                    std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.state = State::Lingering {
                        deadline: Box::pin(tokio::time::sleep(this.timeout)),
                        read: 0,
                    };
                }
                State::Lingering { deadline, read } => {
                    let mut scratch = [0u8; 8192];
                    loop {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                            Poll::Ready(Ok(())) => {
                                *read += buf.filled().len() as u64;
                                if *read > LINGER_BYTES {
                                    break;
                                }
                            }
                            // the client closed or reset: nothing left to wait for
                            Poll::Ready(Err(_)) => break,
                            Poll::Pending => {
                                if deadline.as_mut().poll(cx).is_ready() {
                                    break;
                                }
                                return Poll::Pending;
                            }
                        }
                    }
                    tracing::trace!(read = *read, "lingering close done");
                    this.state = State::Closed;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_reads_until_the_peer_closes() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Linger::new(a, Some(Duration::from_secs(60)));
        a.write_all(b"answer").await.expect("write");
        let peer = tokio::spawn(async move {
            // the peer still sends, then reads the answer, then closes
            b.write_all(&[7u8; 1000]).await.expect("peer write");
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.expect("peer read");
            drop(b);
            got
        });
        a.shutdown().await.expect("shutdown");
        assert_eq!(peer.await.expect("peer"), b"answer");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_at_the_deadline() {
        let (a, _b) = tokio::io::duplex(64);
        let mut a = Linger::new(a, Some(Duration::from_secs(2)));
        // the peer never closes; paused time jumps to the deadline
        a.shutdown().await.expect("shutdown");
    }
}
