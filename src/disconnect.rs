//! [`DisconnectReason`]: why a connection ended, as the `on_disconnect` hook and the stats see
//! it, and the last frame that tells the client.

use crate::protocol::{clip_reason, encode, DisconnectCode, ServerFrame};
use bytes::Bytes;
use std::fmt;

/// Why a connection ended. Passed to
/// [`ServerHandler::on_disconnect`](crate::ServerHandler::on_disconnect), exactly once per
/// connection that completed its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed its end (it left).
    ClientClosed,
    /// The transport failed: a reset, a broken pipe, a close in the middle of a frame.
    Transport(String),
    /// No frame arrived for `idle_timeout`.
    IdleTimeout,
    /// A ping went unanswered until the next ping tick.
    PingTimeout,
    /// [`ServerHandle::kick`](crate::ServerHandle::kick), with the reason given.
    Kicked(String),
    /// The client did not drain its socket: its write queue stayed full.
    SlowConsumer,
    /// A frame exceeded `max_payload`.
    PayloadTooLarge(String),
    /// A frame could not be decoded or broke the protocol.
    Protocol(String),
    /// A policy layer ended the connection (too many rate-limit violations, say).
    Policy(String),
    /// The server shut down.
    ServerShutdown,
    /// The relay failed on this connection: a hook panicked, a layer's service is gone.
    Internal(String),
    /// The client resumed its seat on another connection while this one was still open
    /// (`resume_window`): this connection closes and the seat lives on. Seen by
    /// [`ServerHandler::on_drop`](crate::ServerHandler::on_drop), never by `on_disconnect`.
    Replaced,
}

impl DisconnectReason {
    /// The reason without its detail, for counting.
    pub fn kind(&self) -> DisconnectKind {
        match self {
            Self::ClientClosed => DisconnectKind::ClientClosed,
            Self::Transport(_) => DisconnectKind::Transport,
            Self::IdleTimeout => DisconnectKind::IdleTimeout,
            Self::PingTimeout => DisconnectKind::PingTimeout,
            Self::Kicked(_) => DisconnectKind::Kicked,
            Self::SlowConsumer => DisconnectKind::SlowConsumer,
            Self::PayloadTooLarge(_) => DisconnectKind::PayloadTooLarge,
            Self::Protocol(_) => DisconnectKind::Protocol,
            Self::Policy(_) => DisconnectKind::Policy,
            Self::ServerShutdown => DisconnectKind::ServerShutdown,
            Self::Internal(_) => DisconnectKind::Internal,
            Self::Replaced => DisconnectKind::Replaced,
        }
    }

    /// Whether, on a relay that holds seats (`resume_window`), this end of a connection
    /// holds the client's seat for a resume rather than ending it: the link failed or went
    /// quiet (a close without `Bye` included), or the seat moved to another connection. A
    /// `Bye`, a kick, a policy or protocol end, an internal error or a shutdown end it.
    pub(crate) fn holds_seat(&self) -> bool {
        matches!(
            self,
            Self::ClientClosed
                | Self::Transport(_)
                | Self::IdleTimeout
                | Self::PingTimeout
                | Self::SlowConsumer
                | Self::Replaced
        )
    }

    /// The `Disconnect` frame for this reason; `None` when the client is already gone.
    pub(crate) fn farewell(&self) -> Option<Bytes> {
        let (code, message) = match self {
            Self::ClientClosed | Self::Transport(_) => return None,
            Self::IdleTimeout => (DisconnectCode::IdleTimeout, "idle timeout"),
            Self::PingTimeout => (DisconnectCode::PingTimeout, "ping timeout"),
            Self::Kicked(why) => (DisconnectCode::Kicked, why.as_str()),
            Self::SlowConsumer => (DisconnectCode::SlowConsumer, "slow consumer"),
            Self::PayloadTooLarge(why) => (DisconnectCode::PayloadTooLarge, why.as_str()),
            Self::Protocol(why) => (DisconnectCode::Protocol, why.as_str()),
            Self::Policy(why) => (DisconnectCode::Policy, why.as_str()),
            Self::ServerShutdown => (DisconnectCode::ServerShutdown, "server shutting down"),
            Self::Internal(why) => (DisconnectCode::Internal, why.as_str()),
            Self::Replaced => (DisconnectCode::Replaced, "resumed on another connection"),
        };
        Some(encode(&ServerFrame::Disconnect {
            code: code as u8,
            message: clip_reason(message),
        }))
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => f.write_str("client closed the connection"),
            Self::Transport(why) => write!(f, "transport error: {why}"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::PingTimeout => f.write_str("ping timeout"),
            Self::Kicked(why) => write!(f, "kicked: {why}"),
            Self::SlowConsumer => f.write_str("slow consumer"),
            Self::PayloadTooLarge(why) => write!(f, "payload too large: {why}"),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::Policy(why) => write!(f, "policy: {why}"),
            Self::ServerShutdown => f.write_str("server shutdown"),
            Self::Internal(why) => write!(f, "internal error: {why}"),
            Self::Replaced => f.write_str("resumed on another connection"),
        }
    }
}

/// A [`DisconnectReason`] without its detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectKind {
    /// See [`DisconnectReason::ClientClosed`].
    ClientClosed,
    /// See [`DisconnectReason::Transport`].
    Transport,
    /// See [`DisconnectReason::IdleTimeout`].
    IdleTimeout,
    /// See [`DisconnectReason::PingTimeout`].
    PingTimeout,
    /// See [`DisconnectReason::Kicked`].
    Kicked,
    /// See [`DisconnectReason::SlowConsumer`].
    SlowConsumer,
    /// See [`DisconnectReason::PayloadTooLarge`].
    PayloadTooLarge,
    /// See [`DisconnectReason::Protocol`].
    Protocol,
    /// See [`DisconnectReason::Policy`].
    Policy,
    /// See [`DisconnectReason::ServerShutdown`].
    ServerShutdown,
    /// See [`DisconnectReason::Internal`].
    Internal,
    /// See [`DisconnectReason::Replaced`].
    Replaced,
}

impl DisconnectKind {
    /// Every kind, in a fixed order (the order of [`Stats::disconnects`](crate::Stats)).
    pub const ALL: [DisconnectKind; 12] = [
        Self::ClientClosed,
        Self::Transport,
        Self::IdleTimeout,
        Self::PingTimeout,
        Self::Kicked,
        Self::SlowConsumer,
        Self::PayloadTooLarge,
        Self::Protocol,
        Self::Policy,
        Self::ServerShutdown,
        Self::Internal,
        Self::Replaced,
    ];

    /// A short stable name (`"idle_timeout"`), for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::Transport => "transport",
            Self::IdleTimeout => "idle_timeout",
            Self::PingTimeout => "ping_timeout",
            Self::Kicked => "kicked",
            Self::SlowConsumer => "slow_consumer",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Protocol => "protocol",
            Self::Policy => "policy",
            Self::ServerShutdown => "server_shutdown",
            Self::Internal => "internal",
            Self::Replaced => "replaced",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
