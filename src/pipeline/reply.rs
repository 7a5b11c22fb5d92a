//! [`Reply`]: what the frame pipeline answers to one frame, and [`ReplyKind`], its public
//! reading (so that a unit test sees what a layer answered).

use crate::disconnect::DisconnectReason;
use crate::protocol::{clip_reason, encode, ServerFrame};
use bytes::Bytes;
use std::sync::Arc;

/// What the pipeline answers to one frame. Read it with [`kind`](Reply::kind).
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
}

/// What a [`Reply`] tells the relay to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyKind {
    /// Nothing to send back (a join that succeeded sends its own `Joined` events).
    Nothing,
    /// Refuse the request: the client receives `ServerEvent::Error(message)` and stays
    /// connected.
    Error(String),
    /// The frame was relayed to the room `room_id`; nothing to send back (the relay fires
    /// `on_broadcast` with this room).
    Relayed {
        /// The room the frame went to.
        room_id: Arc<str>,
    },
    /// Encoded frames for this client, length prefixes included (decode them with
    /// [`protocol::FrameReader`](crate::protocol::FrameReader)): the router's answer to a
    /// leave (`Left`) or to a join into the room the client is already in (`Joined`, then
    /// the member list).
    Frames(Bytes),
    /// Close the connection: the client receives `Disconnected` with this reason (its code
    /// and text, as PROTOCOL.md lists them), then the relay closes the socket.
    Disconnect(DisconnectReason),
}

impl Reply {
    /// Nothing to send back.
    pub fn none() -> Self {
        Self {
            kind: ReplyKind::Nothing,
        }
    }

    /// Refuse the request: the client receives `ServerEvent::Error(message)` and stays
    /// connected. A message longer than `protocol::MAX_REASON_LEN` bytes is cut.
    pub fn error(message: impl AsRef<str>) -> Self {
        Self {
            kind: ReplyKind::Error(clip_reason(message.as_ref()).to_owned()),
        }
    }

    /// End the connection for `reason`: the client receives `Disconnected` with the reason's
    /// code and text, its room hears `PlayerLeft`, and `on_disconnect` fires with `reason`.
    /// A user layer's natural choice is [`DisconnectReason::Policy`] (the client reads
    /// `SyncError::Policy(text)`); `ClientClosed` and `Transport` send no farewell, since
    /// they mean the client is already gone.
    pub fn disconnect(reason: DisconnectReason) -> Self {
        Self {
            kind: ReplyKind::Disconnect(reason),
        }
    }

    /// The router's answer to a broadcast relayed to `room_id`. An inner service that
    /// stands in for the router in a test returns it, so that the layers above see a relay.
    pub fn relayed(room_id: impl Into<Arc<str>>) -> Self {
        Self {
            kind: ReplyKind::Relayed {
                room_id: room_id.into(),
            },
        }
    }

    pub(crate) fn frames(frames: Bytes) -> Self {
        Self {
            kind: ReplyKind::Frames(frames),
        }
    }

    /// What this reply tells the relay to do.
    pub fn kind(&self) -> &ReplyKind {
        &self.kind
    }

    /// The reply's kind, by value.
    pub fn into_kind(self) -> ReplyKind {
        self.kind
    }

    /// The error text the client receives, if this reply refuses the request.
    pub fn error_message(&self) -> Option<&str> {
        match &self.kind {
            ReplyKind::Error(message) => Some(message),
            _ => None,
        }
    }

    /// Why the connection ends, if this reply ends it.
    pub fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        match &self.kind {
            ReplyKind::Disconnect(reason) => Some(reason),
            _ => None,
        }
    }

    /// The frames to write to the client for this reply, if any: the error's frame, or the
    /// router's frames.
    pub(crate) fn into_frames(self) -> Option<Bytes> {
        match self.kind {
            ReplyKind::Error(message) => Some(encode(&ServerFrame::Error { message: &message })),
            ReplyKind::Frames(frames) => Some(frames),
            ReplyKind::Nothing | ReplyKind::Relayed { .. } | ReplyKind::Disconnect(_) => None,
        }
    }
}
