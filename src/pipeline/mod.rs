//! The frame pipeline: the tower `Service` stack every decoded client frame passes through.
//!
//! Built once per connection, never boxed per frame:
//!
//! ```text
//! recover               layer errors → replies to the client (or a disconnect with a reason)
//! PayloadLimit          payload > max_payload → disconnect with PayloadTooLarge
//! IdleTimeout           records activity for the connection's idle deadline
//! Auth                  frames from an unauthenticated session are refused
//! ClientRateLimit       optional (ServerBuilder::rate_limit): frames and bytes per second
//! RoomNamePolicy        join room names: length (64 bytes) and characters (replaceable)
//! your layers           ServerBuilder::layer(..): filters, tower's middleware
//! Hooks                 on_join (allow/deny, one join per room at a time), on_broadcast
//! RoomRouter            join / leave / broadcast against the room registry
//! ```
//!
//! Keepalive frames (ping, pong) never enter the pipeline: the connection driver answers them
//! and records the activity itself, so that a user layer that refuses or holds back frames
//! (a rate limit, say) can never turn keepalive into a ping or idle timeout.
//!
//! Admission runs in a second, connection-scope stack (see `connect_hook.rs` and the
//! connection-limit layer), so a full server refuses a connection before any frame is read.
//!
//! The request is a [`FrameRequest`]: the decoded [`ClientMessage`] plus the connection's
//! session. The response is a [`Reply`]. Refusals that are normal protocol outcomes (room not
//! found, join rejected) are replies; an `Err` from a layer becomes a reply too (see
//! [`recover`](fn@recover)).

pub(crate) mod connect_hook;
pub mod hooks;
mod recover;
pub mod router;

pub use recover::recover;

use crate::room::Room;
use crate::session::Session;
use bytes::Bytes;
use ghost_sync_layers::{ActivityClock, Authenticated, HasActivityClock, PayloadLength, RoomName};
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

/// A decoded client request, as it travels the frame pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// Join a room (leaving the current one).
    Join {
        /// The room to join.
        room_id: String,
        /// Bytes for the join hook (a password, a loadout); empty for a plain join.
        data: Bytes,
    },
    /// Leave the current room.
    Leave,
    /// Relay bytes to the rest of the room. `data` is a zero-copy slice of the frame.
    Broadcast {
        /// The bytes to relay.
        data: Bytes,
    },
}

/// One client frame plus the context of the connection it arrived on.
///
/// Layers read what they need through the traits of `ghost-sync-layers`
/// ([`PayloadLength`], [`HasActivityClock`], [`Authenticated`]) or the accessors below.
#[derive(Debug, Clone)]
pub struct FrameRequest {
    session: Arc<Session>,
    message: ClientMessage,
    /// For a join: the room the hooks admitted it into, so that the router joins that very
    /// room even if it was deleted and re-created under the same id in between.
    target: Option<Arc<Room>>,
}

impl FrameRequest {
    pub(crate) fn new(session: Arc<Session>, message: ClientMessage) -> Self {
        Self {
            session,
            message,
            target: None,
        }
    }

    pub(crate) fn set_target(&mut self, room: Arc<Room>) {
        self.target = Some(room);
    }

    pub(crate) fn target(&self) -> Option<&Arc<Room>> {
        self.target.as_ref()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The id of the client that sent the frame.
    pub fn client_id(&self) -> Uuid {
        self.session.client_id
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.session.peer
    }

    /// The request itself.
    pub fn message(&self) -> &ClientMessage {
        &self.message
    }

    /// Who the validator said the client is; `None` on an open relay.
    pub fn identity(&self) -> Option<&crate::auth::Identity> {
        self.session.identity.as_ref()
    }

    /// The room the client is in when the frame arrives, if any.
    pub fn room_id(&self) -> Option<String> {
        self.session.current_room().map(|r| r.id().to_string())
    }
}

impl PayloadLength for FrameRequest {
    fn payload_len(&self) -> usize {
        match &self.message {
            ClientMessage::Join { room_id, data } => room_id.len() + data.len(),
            ClientMessage::Broadcast { data } => data.len(),
            ClientMessage::Leave => 0,
        }
    }
}

impl RoomName for FrameRequest {
    fn room_name(&self) -> Option<&str> {
        match &self.message {
            ClientMessage::Join { room_id, .. } => Some(room_id),
            _ => None,
        }
    }
}

impl HasActivityClock for FrameRequest {
    fn activity_clock(&self) -> &ActivityClock {
        &self.session.activity
    }
}

impl Authenticated for FrameRequest {
    fn is_authenticated(&self) -> bool {
        self.session.is_authenticated()
    }
}

/// What the pipeline answers to one frame.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyKind {
    /// Nothing to send back.
    Nothing,
    /// The frame was relayed to `room`; nothing to send back. Lets the hooks layer fire
    /// `on_broadcast` with the room the router actually used.
    Relayed { room_id: Arc<str> },
    /// An encoded frame for this client.
    Frame(Bytes),
    /// Close the connection, telling the client why.
    Disconnect(crate::disconnect::DisconnectReason),
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
        Self::frame(crate::protocol::encode(
            &crate::protocol::ServerFrame::Error {
                message: crate::protocol::clip_reason(message.as_ref()),
            },
        ))
    }

    pub(crate) fn frame(frame: Bytes) -> Self {
        Self {
            kind: ReplyKind::Frame(frame),
        }
    }

    pub(crate) fn relayed(room_id: Arc<str>) -> Self {
        Self {
            kind: ReplyKind::Relayed { room_id },
        }
    }

    pub(crate) fn disconnect(reason: crate::disconnect::DisconnectReason) -> Self {
        Self {
            kind: ReplyKind::Disconnect(reason),
        }
    }
}
