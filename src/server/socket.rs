//! The write side of a client's TCP connection, shared: the writer task writes it as an
//! [`AsyncWrite`], and the tasks that queue frames for the client write it directly
//! ([`DirectWrite`]) while the writer task does not own it (see [`outbox`](crate::outbox)).

use crate::outbox::DirectWrite;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// A TCP connection's write half, shared by its writer task and the direct writers.
#[derive(Debug, Clone)]
pub(crate) struct SharedWriteHalf(Arc<OwnedWriteHalf>);

impl SharedWriteHalf {
    pub(crate) fn new(half: OwnedWriteHalf) -> Self {
        Self(Arc::new(half))
    }

    /// The handle for direct writes: the same write half, no second allocation.
    pub(crate) fn direct(&self) -> Arc<dyn DirectWrite> {
        Arc::clone(&self.0) as Arc<dyn DirectWrite>
    }

    fn tcp(&self) -> &TcpStream {
        (*self.0).as_ref()
    }

    /// Waits until the socket is writable, then runs `write` once; tokio clears the
    /// readiness if it would block, so the next poll waits for the socket again.
    fn poll_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp().poll_write_ready(cx))?;
            match write(self.tcp()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl DirectWrite for OwnedWriteHalf {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        OwnedWriteHalf::try_write_vectored(self, bufs)
    }
}

impl AsyncWrite for SharedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |tcp| tcp.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |tcp| tcp.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends a FIN now (the write half alone would only send it once every handle to it is
    /// gone, and the queue may still hold one).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shut = socket2::SockRef::from(self.tcp()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match shut {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}
