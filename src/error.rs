//! [`SyncError`]: every way a ghost-sync call can fail, on the client and on the server handle.
//!
//! The disconnect variants mirror the reasons the relay sends in its last frame, so a client
//! always learns why it was disconnected.

use std::fmt;
use std::io;

/// An error from the relay, the client or the server handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// The relay received no frame from this client for `idle_timeout`.
    IdleTimeout,
    /// The client did not answer a ping before the next ping tick.
    PingTimeout,
    /// The connection was closed cleanly: by the server shutting down, or by the peer.
    ConnectionClosed,
    /// The connection broke without a goodbye (network drop, process killed).
    ConnectionReset,
    /// A frame was larger than `max_payload` allows.
    PayloadTooLarge,
    /// A frame could not be decoded or broke the protocol.
    Protocol(String),
    /// A request that cannot be sent as asked (an empty list of targets, a room-state key of
    /// more than 255 bytes); what is wrong with it. Nothing was sent.
    InvalidRequest(String),
    /// No room with this id exists.
    RoomNotFound(String),
    /// A room with this id already exists.
    RoomAlreadyExists(String),
    /// A room's state is at its bounds (`ServerBuilder::room_state_limits`): the room and
    /// the bound, as `"<room_id>: 256 keys"` or `"<room_id>: 65536 bytes"`. The entry kept
    /// its old value.
    RoomStateFull(String),
    /// The relay refused the connection: `max_clients` connections are open.
    ServerFull,
    /// The relay refused the connection (`on_connect` said no); the reason it gave.
    ConnectRejected(String),
    /// The relay refused the credentials; the reason it gave.
    AuthFailed(String),
    /// The server owner removed this client; the reason given.
    Kicked(String),
    /// The relay disconnected this client because it did not read fast enough: its write
    /// queue stayed full.
    SlowConsumer,
    /// No connected client has this id.
    ClientNotFound(uuid::Uuid),
    /// The client's write queue is full: the message was dropped (and `on_backpressure`
    /// fired).
    Backpressure(uuid::Uuid),
    /// The relay closed the connection for a reason this version does not know.
    Disconnected(String),
    /// The connection dropped and the client is taking its seat back (a
    /// [`ReconnectPolicy`](crate::ReconnectPolicy)): nothing was sent, and nothing is kept
    /// to send later.
    Reconnecting,
    /// The relay refused to give a dropped seat back: the seat is gone (its resume window
    /// ran out, it was kicked, ...), with the relay's reason.
    ResumeFailed(String),
    /// The broker that relays share rooms through (see `ServerBuilder::redis`) could not be
    /// reached, or did not answer; what went wrong.
    Broker(String),
    /// The listening socket could not be bound.
    Bind(io::Error),
    /// Another I/O error.
    Io(io::Error),
}

impl SyncError {
    /// True when the connection is over and was closed cleanly or dropped: [`ConnectionClosed`]
    /// or [`ConnectionReset`]. A receive loop can stop on it without logging an error.
    ///
    /// [`ConnectionClosed`]: SyncError::ConnectionClosed
    /// [`ConnectionReset`]: SyncError::ConnectionReset
    pub fn is_connection_closed(&self) -> bool {
        matches!(self, Self::ConnectionClosed | Self::ConnectionReset)
    }

    /// Maps an I/O error on an established connection: resets and broken pipes become
    /// [`SyncError::ConnectionReset`], a clean end of stream [`SyncError::ConnectionClosed`].
    #[cfg(feature = "client")]
    pub(crate) fn from_connection_io(err: io::Error) -> Self {
        use io::ErrorKind::*;
        match err.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected => {
                Self::ConnectionReset
            }
            UnexpectedEof => Self::ConnectionClosed,
            _ => Self::Io(err),
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdleTimeout => f.write_str("idle timeout: no frame received in time"),
            Self::PingTimeout => f.write_str("ping timeout: no pong before the next ping"),
            Self::ConnectionClosed => f.write_str("connection closed"),
            Self::ConnectionReset => f.write_str("connection reset"),
            Self::PayloadTooLarge => f.write_str("payload too large"),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Self::RoomNotFound(id) => write!(f, "room not found: {id}"),
            Self::RoomAlreadyExists(id) => write!(f, "room already exists: {id}"),
            Self::RoomStateFull(why) => write!(f, "room state full: {why}"),
            Self::ServerFull => f.write_str("server full"),
            Self::ConnectRejected(why) => write!(f, "connection rejected: {why}"),
            Self::AuthFailed(why) => write!(f, "authentication failed: {why}"),
            Self::Kicked(why) => write!(f, "kicked: {why}"),
            Self::SlowConsumer => f.write_str("disconnected as a slow consumer"),
            Self::ClientNotFound(id) => write!(f, "client not found: {id}"),
            Self::Backpressure(id) => write!(f, "write queue of client {id} is full"),
            Self::Disconnected(why) => write!(f, "disconnected: {why}"),
            Self::Reconnecting => f.write_str("reconnecting: nothing was sent"),
            Self::ResumeFailed(why) => write!(f, "resume refused: {why}"),
            Self::Broker(e) => write!(f, "broker: {e}"),
            Self::Bind(e) => write!(f, "cannot bind: {e}"),
            Self::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind(e) | Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SyncError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}
