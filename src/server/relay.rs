//! [`Relay`]: a started server without a listener of its own, that serves the connections
//! its owner accepts, over any transport.

use super::entry::Entry;
use super::ServerHandle;
use crate::pipeline::FrameLayer;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// A started server that serves connections you accept yourself: Unix sockets, TLS
/// terminated in your process (tokio-rustls, say), in-memory streams in tests. From
/// [`Server::start`](super::Server::start).
///
/// Each connection goes through everything a TCP connection from
/// [`Server::run`](super::Server::run) goes through: admission (`max_clients`, the per-IP
/// limit, `on_connect`), the handshake, the whole frame pipeline with your layers, the
/// writer, the farewell. Cloning is cheap and every clone serves the same relay.
///
/// The relay runs until [`ServerHandle::shutdown`] (or `drain`), whether or not a `Relay`
/// is still around: dropping every clone stops nothing, and its state (rooms, handler) lives
/// on until that shutdown.
///
/// ```no_run
/// use ghost_sync::Server;
/// use std::net::{Ipv4Addr, SocketAddr};
/// use tokio::net::UnixListener;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let relay = Server::builder().build().start().await?;
/// relay.handle().create_room("lobby")?;
/// let listener = UnixListener::bind("/tmp/relay.sock")?;
/// // A Unix socket has no IP address: one stands in for every client (mind the per-IP
/// // limit, if you set one).
/// let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
/// loop {
///     let (stream, _) = listener.accept().await?;
///     relay.serve_connection(stream, local);
/// }
/// # }
/// ```
pub struct Relay<L> {
    entry: Arc<Entry<L>>,
}

impl<L> Relay<L> {
    pub(crate) fn new(entry: Arc<Entry<L>>) -> Self {
        Self { entry }
    }

    /// A handle to this relay (rooms, kicks, stats, shutdown).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.entry.shared),
        }
    }
}

impl<L: FrameLayer> Relay<L> {
    /// Serves `io`, a connection from `peer`, on a task of the relay, and returns at once.
    ///
    /// `peer` is what `on_connect`, the per-IP limit and `FrameRequest::peer_addr` see. A
    /// connection that admission refuses reads a `Rejected` handshake with the reason, as on
    /// TCP. After [`ServerHandle::shutdown`] began, `io` is closed unanswered. The returned
    /// handle completes when the connection is over (awaiting it is optional; `shutdown`
    /// waits for every connection either way).
    ///
    /// A `tokio::net::TcpStream` gets the same write path as the relay's own listener's
    /// connections; any other stream is split with `tokio::io::split`.
    pub fn serve_connection<IO>(&self, io: IO, peer: SocketAddr) -> JoinHandle<()>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.entry.serve_io(io, peer)
    }
}

impl<L> Clone for Relay<L> {
    fn clone(&self) -> Self {
        Self {
            entry: Arc::clone(&self.entry),
        }
    }
}

impl<L> fmt::Debug for Relay<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.entry.shared.config)
            .finish_non_exhaustive()
    }
}
