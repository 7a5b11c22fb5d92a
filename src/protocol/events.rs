//! From the relay's frames to [`ServerEvent`]s: the receive side of a client, without the
//! transport. [`EventDecoder`] is what [`Client`](crate::Client) and the test kit run on every
//! frame body; a client over another transport (a Unix socket, an in-memory stream) runs it
//! too, so that it reads the relay exactly the way they do.
//!
//! It owns the one piece of state the mapping needs: a member list split over several
//! `Members` frames, gathered until its last frame. Keepalive and the relay's goodbye come
//! out as their own [`Decoded`] values, because answering a ping and closing the socket are
//! the caller's.

use super::codec::{decode_frame, FrameError};
use super::members::member_ids;
use super::message::{DisconnectCode, ServerFrame};
use crate::error::SyncError;
use crate::event::ServerEvent;
use bytes::Bytes;
use std::fmt;
use uuid::Uuid;

/// Turns the frame bodies the relay sends after its `Welcome` into events.
///
/// Feed it every body in order (from [`FrameReader::next_frame`](super::FrameReader::next_frame));
/// one decoder per connection.
///
/// ```
/// use ghost_sync::protocol::{encode, Decoded, EventDecoder, ServerFrame};
/// use ghost_sync::{ServerEvent, Uuid};
///
/// let mut events = EventDecoder::new();
/// let frame = encode(&ServerFrame::PlayerJoined { client_id: Uuid::from_u128(7) });
/// // `encode` gives a whole frame; the decoder takes the body after the length prefix.
/// let body = frame.slice(4..);
/// assert_eq!(
///     events.decode(&body).unwrap(),
///     Some(Decoded::Event(ServerEvent::PlayerJoined { client_id: Uuid::from_u128(7) }))
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct EventDecoder {
    /// A member list split over several `Members` frames: its room and the ids so far.
    members: Option<(String, Vec<Uuid>)>,
}

/// What one frame body meant, from [`EventDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decoded {
    /// An event for the application (a member list split over several frames comes as one
    /// [`ServerEvent::Members`], on its last frame).
    Event(ServerEvent),
    /// The relay's keepalive: answer it with `ClientFrame::Pong` right away (written whole,
    /// never inside another frame), or the relay disconnects with `PingTimeout`.
    Ping,
    /// The answer to a `ClientFrame::Ping` this client sent.
    Pong,
    /// The relay's last frame: it is closing the connection, and why. Close the socket.
    Disconnect(Goodbye),
}

/// The relay's goodbye: the `code` and `message` of a `Disconnect` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goodbye {
    /// A [`DisconnectCode`] value (see [`Goodbye::kind`]).
    pub code: u8,
    /// The reason's text, for logs; branch on the code.
    pub message: String,
}

impl Goodbye {
    /// The code, if this version knows it.
    pub fn kind(&self) -> Option<DisconnectCode> {
        DisconnectCode::from_u8(self.code)
    }
}

impl From<Goodbye> for SyncError {
    /// The error the client's `recv` returns for this goodbye.
    fn from(goodbye: Goodbye) -> Self {
        match goodbye.kind() {
            Some(DisconnectCode::IdleTimeout) => SyncError::IdleTimeout,
            Some(DisconnectCode::PingTimeout) => SyncError::PingTimeout,
            Some(DisconnectCode::PayloadTooLarge) => SyncError::PayloadTooLarge,
            Some(DisconnectCode::Protocol) => SyncError::Protocol(goodbye.message),
            Some(DisconnectCode::Kicked) => SyncError::Kicked(goodbye.message),
            Some(DisconnectCode::ServerShutdown) => SyncError::ConnectionClosed,
            Some(DisconnectCode::SlowConsumer) => SyncError::SlowConsumer,
            // Replaced: the seat lives on another connection; this one is over for good, and
            // the message ("resumed on another connection") says so.
            Some(DisconnectCode::Internal | DisconnectCode::Policy | DisconnectCode::Replaced)
            | None => SyncError::Disconnected(goodbye.message),
        }
    }
}

/// A frame the relay must not send where it did. The connection can go on: the decoder is
/// ready for the next frame (a broken member list is given up, the next list starts afresh).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// The body is not a relay message.
    Malformed(FrameError),
    /// A `Welcome` or `Rejected`, which only ever come as the relay's first frame.
    Handshake(HandshakeFrame),
    /// Another frame came in the middle of a member list (whose frames come back to back);
    /// that frame is not decoded.
    MemberListCut {
        /// The room of the list.
        room_id: String,
    },
    /// A member list went on with a `Members` frame of another room.
    MemberListRoom {
        /// The room of the list.
        room_id: String,
        /// The room of the frame that went on with it.
        next_room_id: String,
    },
    /// A member list longer than [`EventDecoder::MAX_MEMBER_LIST`] ids.
    MemberListTooLong {
        /// [`EventDecoder::MAX_MEMBER_LIST`].
        max: usize,
    },
}

/// A handshake frame received after the handshake, with its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFrame {
    /// A `Welcome`.
    Welcome {
        /// The id it gives.
        client_id: Uuid,
        /// Its protocol version.
        version: u16,
        /// Its `max_payload`.
        max_payload: u32,
        /// Its ping interval, in milliseconds.
        ping_interval_ms: u32,
        /// Its resume token.
        resume_token: Vec<u8>,
    },
    /// A `Rejected`.
    Rejected {
        /// A [`RejectCode`](super::RejectCode) value.
        code: u8,
        /// Its reason.
        message: String,
    },
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(err) => err.fmt(f),
            Self::Handshake(frame) => write!(f, "unexpected handshake frame {frame:?}"),
            Self::MemberListCut { room_id } => write!(
                f,
                "the member list of {room_id} was cut short by another frame"
            ),
            Self::MemberListRoom {
                room_id,
                next_room_id,
            } => write!(
                f,
                "the member list of {room_id} went on with the room {next_room_id}"
            ),
            Self::MemberListTooLong { max } => write!(f, "a member list longer than {max} ids"),
        }
    }
}

impl std::error::Error for EventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(err) => Some(err),
            _ => None,
        }
    }
}

impl From<EventError> for SyncError {
    /// [`SyncError::Protocol`] with the error's text, as the client's `recv` returns it.
    fn from(err: EventError) -> Self {
        SyncError::Protocol(err.to_string())
    }
}

impl EventDecoder {
    /// The longest member list gathered (16 MiB of ids): past it, the relay is misbehaving
    /// rather than serving a real room.
    pub const MAX_MEMBER_LIST: usize = 1 << 20;

    /// A decoder for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the frame `body` (without its length prefix) means; `Ok(None)` for a frame that
    /// is one part of a member list still to be completed.
    ///
    /// Broadcast data is a zero-copy slice of `body`. An error leaves the decoder ready for
    /// the next frame.
    pub fn decode(&mut self, body: &Bytes) -> Result<Option<Decoded>, EventError> {
        let frame = decode_frame::<ServerFrame<'_>>(body).map_err(EventError::Malformed)?;
        match (&self.members, &frame) {
            (None, _) | (Some(_), ServerFrame::Members { .. }) => {}
            // A relay giving up on a client that stopped reading finishes the frame it was
            // writing, then says why: the rest of a list may be missing.
            (Some(_), ServerFrame::Disconnect { .. }) => self.members = None,
            // Otherwise the relay queues a whole member list at once: nothing comes between.
            (Some(_), _) => {
                let (room_id, _) = self.members.take().unwrap_or_default();
                return Err(EventError::MemberListCut { room_id });
            }
        }
        let event = match frame {
            ServerFrame::Ping => return Ok(Some(Decoded::Ping)),
            ServerFrame::Pong => return Ok(Some(Decoded::Pong)),
            ServerFrame::Disconnect { code, message } => {
                return Ok(Some(Decoded::Disconnect(Goodbye {
                    code,
                    message: message.to_owned(),
                })))
            }
            ServerFrame::Welcome {
                client_id,
                version,
                max_payload,
                ping_interval_ms,
                resume_token,
            } => {
                return Err(EventError::Handshake(HandshakeFrame::Welcome {
                    client_id,
                    version,
                    max_payload,
                    ping_interval_ms,
                    resume_token: resume_token.to_vec(),
                }))
            }
            ServerFrame::Rejected { code, message } => {
                return Err(EventError::Handshake(HandshakeFrame::Rejected {
                    code,
                    message: message.to_owned(),
                }))
            }
            ServerFrame::Members {
                room_id,
                client_ids,
                more,
            } => match self.gather(room_id, client_ids, more)? {
                Some(event) => event,
                None => return Ok(None),
            },
            ServerFrame::Joined { client_id, room_id } => ServerEvent::Joined {
                client_id,
                room_id: room_id.to_owned(),
            },
            ServerFrame::Left { room_id } => ServerEvent::Left {
                room_id: room_id.to_owned(),
            },
            ServerFrame::PlayerJoined { client_id } => ServerEvent::PlayerJoined { client_id },
            ServerFrame::PlayerLeft { client_id } => ServerEvent::PlayerLeft { client_id },
            ServerFrame::Broadcast { sender_id, data } => ServerEvent::Broadcast {
                sender_id,
                data: body.slice_ref(data),
            },
            ServerFrame::Direct { sender_id, data } => ServerEvent::Direct {
                sender_id,
                data: body.slice_ref(data),
            },
            ServerFrame::Keyed {
                sender_id,
                key,
                data,
            } => ServerEvent::Keyed {
                sender_id,
                key,
                data: body.slice_ref(data),
            },
            ServerFrame::State { owner, key, value } => ServerEvent::State {
                owner,
                key: key.to_owned(),
                value: body.slice_ref(value),
            },
            ServerFrame::Dropped { count } => ServerEvent::Dropped { count },
            ServerFrame::Resumed { missed } => ServerEvent::Resumed { missed },
            ServerFrame::Error { message } => ServerEvent::Error(message.to_owned()),
        };
        Ok(Some(Decoded::Event(event)))
    }

    /// Adds one `Members` frame to the list; the whole list once its last frame came.
    fn gather(
        &mut self,
        room_id: &str,
        client_ids: &[u8],
        more: bool,
    ) -> Result<Option<ServerEvent>, EventError> {
        let (list_room, list) = self
            .members
            .get_or_insert_with(|| (room_id.to_owned(), Vec::new()));
        let broken = if list_room != room_id {
            Some(EventError::MemberListRoom {
                room_id: list_room.clone(),
                next_room_id: room_id.to_owned(),
            })
        } else if list.len() + client_ids.len() / 16 > Self::MAX_MEMBER_LIST {
            Some(EventError::MemberListTooLong {
                max: Self::MAX_MEMBER_LIST,
            })
        } else {
            None
        };
        if let Some(err) = broken {
            // Reported once; the next list starts afresh.
            self.members = None;
            return Err(err);
        }
        list.extend(member_ids(client_ids));
        if more {
            return Ok(None);
        }
        let (room_id, client_ids) = self.members.take().unwrap_or_default();
        Ok(Some(ServerEvent::Members {
            room_id,
            client_ids,
        }))
    }
}

#[cfg(test)]
mod tests;
