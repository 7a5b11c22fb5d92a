//! Why a connection ended, and the last frame that tells the client.

use crate::protocol::{clip_reason, encode, DisconnectCode, ServerFrame};
use bytes::Bytes;

/// Why the relay ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DisconnectReason {
    /// The client closed its end.
    ClientClosed,
    /// The transport failed (reset, broken pipe).
    Transport(String),
    IdleTimeout,
    PingTimeout,
    PayloadTooLarge(String),
    Protocol(String),
    ServerShutdown,
    /// The frame pipeline failed (a layer's service is gone).
    Internal(String),
}

impl DisconnectReason {
    /// The `Disconnect` frame for this reason; `None` when the client is already gone.
    pub(crate) fn farewell(&self) -> Option<Bytes> {
        let (code, message) = match self {
            Self::ClientClosed | Self::Transport(_) => return None,
            Self::IdleTimeout => (DisconnectCode::IdleTimeout, "idle timeout"),
            Self::PingTimeout => (DisconnectCode::PingTimeout, "ping timeout"),
            Self::PayloadTooLarge(why) => (DisconnectCode::PayloadTooLarge, why.as_str()),
            Self::Protocol(why) => (DisconnectCode::Protocol, why.as_str()),
            Self::ServerShutdown => (DisconnectCode::ServerShutdown, "server shutting down"),
            Self::Internal(why) => (DisconnectCode::Internal, why.as_str()),
        };
        Some(encode(&ServerFrame::Disconnect {
            code: code as u8,
            message: clip_reason(message),
        }))
    }
}
