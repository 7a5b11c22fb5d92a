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
    /// The relay refused a request ("room not found: lobby", "join rejected: lobby"); the
    /// connection stays open.
    Error(String),
}

/// The sender id of messages the server itself sends (`ServerHandle::send_to`,
/// `ServerHandle::broadcast_to_room`): the nil UUID, which no client ever gets.
pub const SERVER_ID: uuid::Uuid = uuid::Uuid::nil();
