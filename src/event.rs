//! [`ServerEvent`]: what a [`Client`](crate::Client) receives from the relay.

use bytes::Bytes;
use uuid::Uuid;

/// An event delivered by [`Client::recv`](crate::Client::recv).
///
/// Keepalive traffic (pings and pongs) never shows up here: the client answers it itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// This client joined `room_id`.
    Joined {
        /// This client's id.
        client_id: Uuid,
        /// The room joined.
        room_id: String,
    },
    /// This client left `room_id` after calling [`Client::leave`](crate::Client::leave).
    Left {
        /// The room left.
        room_id: String,
    },
    /// Who else was in the room when this client joined it (or joined it again); comes
    /// right after [`Joined`](ServerEvent::Joined). The relay may split a long list over
    /// several frames; the client gathers them into this one event. Later arrivals and
    /// departures come as [`PlayerJoined`](ServerEvent::PlayerJoined) and
    /// [`PlayerLeft`](ServerEvent::PlayerLeft).
    Members {
        /// The room joined.
        room_id: String,
        /// The other members, in no particular order.
        client_ids: Vec<Uuid>,
    },
    /// Another client joined this client's room.
    PlayerJoined {
        /// Who joined.
        client_id: Uuid,
    },
    /// Another client left this client's room, or disconnected.
    PlayerLeft {
        /// Who left.
        client_id: Uuid,
    },
    /// Another member of the room broadcast `data`, or the server sent it
    /// ([`ServerHandle::send_to`](crate::ServerHandle::send_to),
    /// [`ServerHandle::broadcast_to_room`](crate::ServerHandle::broadcast_to_room)).
    Broadcast {
        /// Who sent it; [`SERVER_ID`](crate::SERVER_ID) for the server.
        sender_id: Uuid,
        /// The bytes, as sent; derefs to `[u8]`.
        data: Bytes,
    },
    /// Another member sent `data` to this client alone, or to a list of members that
    /// includes it ([`Client::send_to`](crate::Client::send_to)); or the server did.
    Direct {
        /// Who sent it; [`SERVER_ID`](crate::SERVER_ID) for the server.
        sender_id: Uuid,
        /// The bytes, as sent.
        data: Bytes,
    },
    /// The latest state of `key`, as another member broadcast it
    /// ([`Client::broadcast_keyed`](crate::Client::broadcast_keyed)). When this client fell
    /// behind, the relay kept only the newest of the sender's frames for a key, so older
    /// states may never arrive; the last one always does.
    Keyed {
        /// Who sent it.
        sender_id: Uuid,
        /// What the state is of (an entity id, say).
        key: u32,
        /// The bytes, as sent.
        data: Bytes,
    },
    /// An entry of the room's state: after [`Members`](ServerEvent::Members), one per entry
    /// the room held when this client joined, then one for each change while it is in the
    /// room. An empty `value`: the entry was deleted.
    State {
        /// Who set it; [`SERVER_ID`](crate::SERVER_ID) for the server.
        owner: Uuid,
        /// The entry's key.
        key: String,
        /// The entry's value; empty when it was deleted.
        value: Bytes,
    },
    /// `count` frames for this client were dropped since the last such notice, because it
    /// did not read fast enough: what follows is live again, and a game may resync (join its
    /// room again for a fresh member list and room state).
    Dropped {
        /// How many frames were lost (saturating at `u32::MAX`).
        count: u32,
    },
    /// The relay resumed this client's seat on a new connection (same client id, same room):
    /// every event queued for it during the drop came before this one, and what follows is
    /// live. `missed` events were lost meanwhile (its queue was full); when it is not 0 a
    /// game may resync (join its room again for a fresh member list and room state).
    Resumed {
        /// How many frames the drop lost (saturating at `u32::MAX`).
        missed: u32,
    },
    /// The relay refused a request ("room not found: lobby", "join rejected: lobby"); the
    /// connection stays open.
    Error(String),
}

/// The sender id of messages the server itself sends (`ServerHandle::send_to`,
/// `ServerHandle::broadcast_to_room`): the nil UUID, which no client ever gets.
pub const SERVER_ID: uuid::Uuid = uuid::Uuid::nil();
