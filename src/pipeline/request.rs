//! [`FrameRequest`]: one decoded client frame plus its connection's context, as it travels the
//! frame pipeline; and [`FrameRequestBuilder`], which builds one without a connection, so
//! that a layer can be unit-tested alone.

use crate::auth::Identity;
use crate::outbox::outbox_to;
use crate::room::{Room, RoomOptions};
use crate::session::Session;
use bytes::Bytes;
use ghost_sync_layers::{ActivityClock, Authenticated, HasActivityClock, PayloadLength, RoomName};
use std::net::{Ipv4Addr, SocketAddr};
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
    /// Relay bytes to some members of the room only.
    Direct {
        /// The recipients: 1 to [`MAX_DIRECT_TARGETS`](crate::protocol::MAX_DIRECT_TARGETS)
        /// ids, as the client listed them.
        targets: Vec<Uuid>,
        /// The bytes to relay.
        data: Bytes,
    },
    /// Relay bytes to the rest of the room as the latest state of `key`, which may replace
    /// the sender's older frame of that key in a slow member's queue.
    Keyed {
        /// What the state is of (an entity id, say).
        key: u32,
        /// The bytes to relay.
        data: Bytes,
    },
    /// Set an entry of the room's state (delete it, with an empty value).
    SetState {
        /// The entry's key.
        key: String,
        /// The entry's value; empty to delete the entry.
        value: Bytes,
    },
}

impl ClientMessage {
    /// A plain join of `room_id` (no join data).
    pub fn join(room_id: impl Into<String>) -> Self {
        Self::Join {
            room_id: room_id.into(),
            data: Bytes::new(),
        }
    }

    /// A broadcast of `data` to the rest of the room.
    pub fn broadcast(data: impl Into<Bytes>) -> Self {
        Self::Broadcast { data: data.into() }
    }

    /// `data` for the members `targets` only.
    pub fn direct(targets: impl Into<Vec<Uuid>>, data: impl Into<Bytes>) -> Self {
        Self::Direct {
            targets: targets.into(),
            data: data.into(),
        }
    }

    /// A broadcast of `data` as the latest state of `key`.
    pub fn keyed(key: u32, data: impl Into<Bytes>) -> Self {
        Self::Keyed {
            key,
            data: data.into(),
        }
    }

    /// Sets the room-state entry `key` to `value` (deletes it if `value` is empty).
    pub fn set_state(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self::SetState {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One client frame plus the context of the connection it arrived on.
///
/// Layers read what they need through the traits of `ghost-sync-layers`
/// ([`PayloadLength`], [`HasActivityClock`], [`Authenticated`]) or the accessors below. To
/// call a layer in a unit test, build one with [`FrameRequest::builder`].
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

    /// A request carrying `message`, as if from a connected, authenticated client with a
    /// fresh id, at `127.0.0.1:0`, with no identity and in no room: change any of these on
    /// the builder. For tests of a layer, alone (no relay, no socket).
    ///
    /// ```
    /// use ghost_sync::{ClientMessage, FrameRequest};
    ///
    /// let request = FrameRequest::builder(ClientMessage::broadcast("hello"))
    ///     .room("lobby")
    ///     .build();
    /// assert_eq!(request.room_id().as_deref(), Some("lobby"));
    /// ```
    pub fn builder(message: ClientMessage) -> FrameRequestBuilder {
        FrameRequestBuilder {
            message,
            client_id: Uuid::new_v4(),
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            identity: None,
            room: None,
            authenticated: true,
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
    pub fn identity(&self) -> Option<&Identity> {
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
            ClientMessage::Broadcast { data } | ClientMessage::Keyed { data, .. } => data.len(),
            // As the relay checks it: the targets' bytes count, as the room id of a join does.
            ClientMessage::Direct { targets, data } => targets.len() * 16 + data.len(),
            ClientMessage::SetState { key, value } => key.len() + value.len(),
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

/// Builds a [`FrameRequest`] outside a connection, for unit tests of a layer: from
/// [`FrameRequest::builder`].
///
/// The request's connection is a stand-in: no relay serves it, and its room (if
/// [`room`](FrameRequestBuilder::room) named one) is a room of that id in no registry. A
/// layer sees exactly what it would see on a real connection; only the relay's own inner
/// service (the router) needs a real one, so a test puts a `tower::service_fn` under the
/// layer instead.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FrameRequestBuilder {
    message: ClientMessage,
    client_id: Uuid,
    peer: SocketAddr,
    identity: Option<Identity>,
    room: Option<String>,
    authenticated: bool,
}

impl FrameRequestBuilder {
    /// The sending client's id (by default a fresh random one).
    pub fn client_id(mut self, id: Uuid) -> Self {
        self.client_id = id;
        self
    }

    /// The client's address (by default `127.0.0.1:0`).
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// Who the validator said the client is (by default nobody: an open relay).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The room the client is in when the frame arrives (by default none).
    pub fn room(mut self, room_id: impl Into<String>) -> Self {
        self.room = Some(room_id.into());
        self
    }

    /// A client whose handshake has not authenticated it, which the auth layer refuses (by
    /// default the client is authenticated, as every client past the handshake is).
    pub fn unauthenticated(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// The request.
    pub fn build(self) -> FrameRequest {
        // A queue that nothing writes out: frames the request's client would receive stay
        // in it (bounded), and go when the request does.
        let (outbox, _) = outbox_to(16, 64 * 1024, None, Arc::default());
        let session = Session::new(self.client_id, self.peer, self.identity, outbox);
        if self.authenticated {
            session.set_authenticated();
        }
        if let Some(room_id) = self.room {
            session.set_room(Arc::new(Room::new(&room_id, RoomOptions::default())));
        }
        FrameRequest::new(Arc::new(session), self.message)
    }
}
