//! A client that stopped reading, told from one that reads slowly: a write that makes no
//! progress for a whole window.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;

/// Runs `write` until it ends, or until a whole `window` passes in which `written` did not
/// move: `Err(())` then. A client that reads slowly but steadily is never cut off; one that
/// stopped reading is, between one and two windows after the last byte it took. (The
/// window's timer is armed only if the write does not finish at once.)
pub(super) async fn until_stalled<F: Future>(
    write: F,
    written: &AtomicU64,
    window: Duration,
) -> Result<F::Output, ()> {
    tokio::pin!(write);
    let mut seen = 0;
    loop {
        match tokio::time::timeout(window, &mut write).await {
            Ok(done) => return Ok(done),
            Err(_) => {
                let now = written.load(Ordering::Relaxed);
                if now == seen {
                    return Err(());
                }
                seen = now;
            }
        }
    }
}

/// A socket that counts the bytes it takes, for [`until_stalled`] to watch.
pub(super) struct Counted<'a, W> {
    pub(super) io: &'a mut W,
    pub(super) written: &'a AtomicU64,
}

impl<W> Counted<'_, W> {
    fn count(&self, done: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = done {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut *self.io).poll_write(cx, buf);
        self.count(&done);
        done
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut *self.io).poll_write_vectored(cx, bufs);
        self.count(&done);
        done
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}
