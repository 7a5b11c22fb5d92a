//! Message types of both directions, with their wire tags pinned.
//!
//! Tags are pinned with `#[wincode(tag = N)]` so that reordering the Rust enums can never change
//! the wire format; new messages get new tags.

use super::codec::WireMessage;
use uuid::Uuid;
use wincode::{SchemaRead, SchemaWrite};

/// Version of the protocol spoken by this crate; sent in `Hello` and `Welcome`.
///
/// Every version's `Hello` starts with its tag and this version (bytes 0..3 of the body), so
/// that a relay can refuse a client of another version by name, whatever the rest of its
/// `Hello` looks like ([`hello_version`](super::hello_version)).
pub const PROTOCOL_VERSION: u16 = 2;

/// The protocol version a `Hello` body announces (the two bytes after its tag), read before
/// the rest of it is decoded, since another version's `Hello` may have other fields. `None`
/// if `body` is not a `Hello`, or too short to say.
pub fn hello_version(body: &[u8]) -> Option<u16> {
    match body {
        [0, low, high, ..] => Some(u16::from_le_bytes([*low, *high])),
        _ => None,
    }
}

/// Most targets one `Direct` frame may name.
pub const MAX_DIRECT_TARGETS: usize = 256;

/// Longest room-state key, in bytes (a key is 1 to this many bytes of UTF-8).
pub const MAX_STATE_KEY_LEN: usize = 255;

/// A message from a client to the relay.
#[derive(SchemaWrite, SchemaRead, Debug, Clone, Copy, PartialEq, Eq)]
#[wincode(tag_encoding = "u8")]
pub enum ClientFrame<'a> {
    /// First frame of every connection: the protocol version, opaque credentials and, to take
    /// back a seat the relay holds, a resume token.
    #[wincode(tag = 0)]
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u16,
        /// Credentials for the auth step; empty when the relay runs open.
        credentials: &'a [u8],
        /// The resume token of an earlier `Welcome`, to take that seat back; empty for a new
        /// seat.
        resume: &'a [u8],
    },
    /// Ask to join a room (leaving the current one, if any).
    #[wincode(tag = 1)]
    Join {
        /// The room to join.
        room_id: &'a str,
        /// Opaque bytes for the server's join hook (a password, a loadout); often empty.
        data: &'a [u8],
    },
    /// Leave the current room.
    #[wincode(tag = 2)]
    Leave,
    /// Relay `data` to every other member of the sender's room.
    #[wincode(tag = 3)]
    Broadcast {
        /// Opaque application bytes.
        data: &'a [u8],
    },
    /// Keepalive request; the relay answers with `Pong`.
    #[wincode(tag = 4)]
    Ping,
    /// Answer to a relay `Ping`.
    #[wincode(tag = 5)]
    Pong,
    /// Relay `data` to some members of the sender's room only.
    #[wincode(tag = 6)]
    Direct {
        /// The recipients' ids, 16 bytes each, concatenated: 1 to [`MAX_DIRECT_TARGETS`] of
        /// them ([`member_ids`](super::member_ids) splits them).
        targets: &'a [u8],
        /// Opaque application bytes.
        data: &'a [u8],
    },
    /// Relay `data` to every other member of the room as the latest state of `key`: under
    /// backpressure, it replaces the sender's older frame of the same key still queued.
    #[wincode(tag = 7)]
    Keyed {
        /// What the state is of (an entity id, say).
        key: u32,
        /// Opaque application bytes.
        data: &'a [u8],
    },
    /// Set (or, with an empty value, delete) an entry of the room's state, which every
    /// member gets now and every later joiner gets when it joins.
    #[wincode(tag = 8)]
    SetState {
        /// The entry's key: 1 to [`MAX_STATE_KEY_LEN`] bytes.
        key: &'a str,
        /// The entry's value; empty to delete the entry.
        value: &'a [u8],
    },
    /// The client is leaving for good: the relay ends its seat at once, then closes.
    #[wincode(tag = 9)]
    Bye,
}

/// A message from the relay to a client.
#[derive(SchemaWrite, SchemaRead, Debug, Clone, Copy, PartialEq, Eq)]
#[wincode(tag_encoding = "u8")]
pub enum ServerFrame<'a> {
    /// The handshake succeeded.
    #[wincode(tag = 0)]
    Welcome {
        /// The id the relay gave this connection.
        client_id: Uuid,
        /// The relay's [`PROTOCOL_VERSION`].
        version: u16,
        /// Largest payload (broadcast data, room id) the relay accepts, in bytes.
        max_payload: u32,
        /// How often the relay pings, in milliseconds: a link silent for longer than twice
        /// this is likely gone.
        ping_interval_ms: u32,
        /// The token that takes this seat back after a drop; empty when the relay holds no
        /// seats.
        resume_token: &'a [u8],
    },
    /// The handshake failed; the relay closes the connection after this frame.
    #[wincode(tag = 1)]
    Rejected {
        /// Why, as a [`RejectCode`] value.
        code: u8,
        /// Human-readable detail.
        message: &'a str,
    },
    /// The client joined `room_id`.
    #[wincode(tag = 2)]
    Joined {
        /// The joining client (the receiver itself).
        client_id: Uuid,
        /// The room joined.
        room_id: &'a str,
    },
    /// The client left `room_id` at its own request.
    #[wincode(tag = 3)]
    Left {
        /// The room left.
        room_id: &'a str,
    },
    /// Another client joined the receiver's room.
    #[wincode(tag = 4)]
    PlayerJoined {
        /// Who joined.
        client_id: Uuid,
    },
    /// Another client left the receiver's room (or disconnected).
    #[wincode(tag = 5)]
    PlayerLeft {
        /// Who left.
        client_id: Uuid,
    },
    /// Bytes another member broadcast to the room.
    #[wincode(tag = 6)]
    Broadcast {
        /// Who sent them.
        sender_id: Uuid,
        /// The bytes, as sent.
        data: &'a [u8],
    },
    /// A request was refused; the connection stays open.
    #[wincode(tag = 7)]
    Error {
        /// Why, in words ("room not found: lobby").
        message: &'a str,
    },
    /// Keepalive request; the client must answer with `Pong` before the next ping.
    #[wincode(tag = 8)]
    Ping,
    /// Answer to a client `Ping`.
    #[wincode(tag = 9)]
    Pong,
    /// The relay is closing the connection; this is the last frame.
    #[wincode(tag = 10)]
    Disconnect {
        /// Why, as a [`DisconnectCode`] value.
        code: u8,
        /// Human-readable detail.
        message: &'a str,
    },
    /// Who else is in the room the receiver just joined; sent right after its `Joined`. A
    /// long list is split over several frames, back to back, so that each fits the limit
    /// every client accepts (see [`members_per_frame`](super::members_per_frame)).
    #[wincode(tag = 11)]
    Members {
        /// The room joined.
        room_id: &'a str,
        /// Some of the other members' ids, 16 bytes each, concatenated (borrowed, so
        /// decoding allocates nothing; [`member_ids`](super::member_ids) splits them).
        client_ids: &'a [u8],
        /// Another `Members` frame of the same list follows this one at once; `false` on
        /// the list's last frame.
        more: bool,
    },
    /// Bytes another member (or the server) sent to this client alone, or to a list of
    /// members that includes it.
    #[wincode(tag = 12)]
    Direct {
        /// Who sent them; the nil id for the server.
        sender_id: Uuid,
        /// The bytes, as sent.
        data: &'a [u8],
    },
    /// The latest state of `key`, as another member broadcast it: it may have replaced an
    /// older one of the same sender and key that this client had not read yet.
    #[wincode(tag = 13)]
    Keyed {
        /// Who sent it.
        sender_id: Uuid,
        /// What the state is of.
        key: u32,
        /// The bytes, as sent.
        data: &'a [u8],
    },
    /// An entry of the room's state: part of what a joiner gets after its member list, or a
    /// change a member or the server just made. An empty value: the entry was deleted.
    #[wincode(tag = 14)]
    State {
        /// Who set it; the nil id for the server.
        owner: Uuid,
        /// The entry's key.
        key: &'a str,
        /// The entry's value; empty when it was deleted.
        value: &'a [u8],
    },
    /// Frames for this client were dropped (its queue was full) since the last such notice:
    /// it comes right before the next frame the client gets.
    #[wincode(tag = 15)]
    Dropped {
        /// How many (saturating at `u32::MAX`).
        count: u32,
    },
    /// After a resume: every frame queued for the client while its seat was held came
    /// before this one, and what follows is live traffic.
    #[wincode(tag = 16)]
    Resumed {
        /// Frames the hold lost (the queue's budgets were full), saturating at `u32::MAX`.
        missed: u32,
    },
}

/// Why a handshake was refused (the `code` of [`ServerFrame::Rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectCode {
    /// `max_clients` connections are already open.
    ServerFull = 0,
    /// `ServerHandler::on_connect` returned `false`.
    ConnectRejected = 1,
    /// The credentials were refused.
    AuthFailed = 2,
    /// The client speaks another protocol version.
    UnsupportedVersion = 3,
    /// The first frame was not a valid `Hello`.
    Protocol = 4,
    /// The server is shutting down.
    ShuttingDown = 5,
    /// The resume token of the `Hello` was refused (unknown, used, expired, or the relay
    /// holds no seats).
    ResumeFailed = 6,
}

impl RejectCode {
    /// The code for a wire value, if it is known.
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::ServerFull,
            1 => Self::ConnectRejected,
            2 => Self::AuthFailed,
            3 => Self::UnsupportedVersion,
            4 => Self::Protocol,
            5 => Self::ShuttingDown,
            6 => Self::ResumeFailed,
            _ => return None,
        })
    }
}

/// Why the relay closed a connection (the `code` of [`ServerFrame::Disconnect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DisconnectCode {
    /// No frame arrived for `idle_timeout`.
    IdleTimeout = 0,
    /// A ping went unanswered until the next ping tick.
    PingTimeout = 1,
    /// A frame or payload exceeded `max_payload`.
    PayloadTooLarge = 2,
    /// A frame could not be decoded or broke the protocol.
    Protocol = 3,
    /// The server owner removed the client.
    Kicked = 4,
    /// The server is shutting down.
    ServerShutdown = 5,
    /// The client's pipeline failed (a layer's service is gone, a hook panicked).
    Internal = 6,
    /// The client did not drain its socket: its write queue stayed full.
    SlowConsumer = 7,
    /// A policy layer ended the connection (too many rate-limit violations, say).
    Policy = 8,
    /// The client resumed its seat on another connection (with this one's resume token):
    /// this one is closed. A client does not reconnect after it.
    Replaced = 9,
}

impl DisconnectCode {
    /// The code for a wire value, if it is known.
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::IdleTimeout,
            1 => Self::PingTimeout,
            2 => Self::PayloadTooLarge,
            3 => Self::Protocol,
            4 => Self::Kicked,
            5 => Self::ServerShutdown,
            6 => Self::Internal,
            7 => Self::SlowConsumer,
            8 => Self::Policy,
            9 => Self::Replaced,
            _ => return None,
        })
    }
}

impl WireMessage for ClientFrame<'_> {
    const SENDER: &'static str = "client";

    fn name(tag: u8) -> Option<&'static str> {
        Some(match tag {
            0 => "Hello",
            1 => "Join",
            2 => "Leave",
            3 => "Broadcast",
            4 => "Ping",
            5 => "Pong",
            6 => "Direct",
            7 => "Keyed",
            8 => "SetState",
            9 => "Bye",
            _ => return None,
        })
    }

    fn text_field(tag: u8) -> Option<&'static str> {
        match tag {
            1 => Some("room id"),
            8 => Some("key"),
            _ => None,
        }
    }
}

impl WireMessage for ServerFrame<'_> {
    const SENDER: &'static str = "relay";

    fn name(tag: u8) -> Option<&'static str> {
        Some(match tag {
            0 => "Welcome",
            1 => "Rejected",
            2 => "Joined",
            3 => "Left",
            4 => "PlayerJoined",
            5 => "PlayerLeft",
            6 => "Broadcast",
            7 => "Error",
            8 => "Ping",
            9 => "Pong",
            10 => "Disconnect",
            11 => "Members",
            12 => "Direct",
            13 => "Keyed",
            14 => "State",
            15 => "Dropped",
            16 => "Resumed",
            _ => return None,
        })
    }

    fn text_field(tag: u8) -> Option<&'static str> {
        match tag {
            1 | 7 | 10 => Some("message"),
            2 | 3 | 11 => Some("room id"),
            14 => Some("key"),
            _ => None,
        }
    }
}
