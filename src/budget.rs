//! A read budget on a client socket until it has authenticated. The frame
//! decoder refuses a first message whose header announces more than the
//! first-frame limit at once; the budget bounds everything else an
//! unauthenticated client can make the proxy read (pings, many small
//! frames) to about the first-frame limit in all.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client read more than its budget before authenticating.
#[derive(Debug, thiserror::Error)]
#[error("unauthenticated client exceeded its read budget")]
pub struct OverBudget;

/// A socket whose reads are limited until [`Budgeted::lift`] is called.
#[derive(Debug)]
pub struct Budgeted<S> {
    /// The socket.
    inner: S,
    /// Bytes that may still be read; `None` once lifted.
    remaining: Option<usize>,
}

impl<S> Budgeted<S> {
    /// Wraps a socket with a budget of `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Budgeted<S> {
        Budgeted {
            inner,
            remaining: Some(limit),
        }
    }

    /// Removes the limit (the client has authenticated).
    pub fn lift(&mut self) {
        self.remaining = None;
    }

    /// Whether an error is this budget running out.
    pub fn is_over_budget(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<OverBudget>())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(remaining) = this.remaining else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if remaining == 0 {
            return Poll::Ready(Err(io::Error::other(OverBudget)));
        }
        let want = remaining.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let got = limited.filled().len();
        buf.advance(got);
        this.remaining = Some(remaining - got);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_lifted() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        tx.write_all(&[7u8; 100]).await.unwrap_or_default();
        let mut budgeted = Budgeted::new(rx, 60);
        let mut buf = [0u8; 100];
        assert_eq!(budgeted.read(&mut buf).await.ok(), Some(60));
        let err = budgeted.read(&mut buf).await.err();
        assert!(
            err.as_ref().is_some_and(Budgeted::<()>::is_over_budget),
            "{err:?}"
        );
        budgeted.lift();
        assert_eq!(budgeted.read(&mut buf).await.ok(), Some(40));
    }
}
