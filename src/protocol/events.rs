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
            Some(DisconnectCode::Internal | DisconnectCode::Policy) | None => {
                SyncError::Disconnected(goodbye.message)
            }
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
            } => {
                return Err(EventError::Handshake(HandshakeFrame::Welcome {
                    client_id,
                    version,
                    max_payload,
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
mod tests {
    use super::*;
    use crate::protocol::{encode, encode_members, FrameReader, HEADER_LEN};
    use bytes::BytesMut;

    /// The body of `frame`, as a `FrameReader` hands it out.
    fn body(frame: &ServerFrame<'_>) -> Bytes {
        encode(frame).slice(HEADER_LEN..)
    }

    /// Whether an error is the expected one.
    type Expect = fn(&SyncError) -> bool;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    fn members(room_id: &str, ids: &[Uuid], more: bool) -> Bytes {
        let raw: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
        body(&ServerFrame::Members {
            room_id,
            client_ids: &raw,
            more,
        })
    }

    #[test]
    fn a_split_member_list_comes_as_one_event_on_its_last_frame() {
        let all = ids(5000);
        let mut out = BytesMut::new();
        // A 1-byte max_payload splits the list over many frames.
        encode_members("lobby", &all, 1, &mut out);
        let reader = FrameReader::for_payload(crate::protocol::MAX_REASON_LEN);
        let mut events = EventDecoder::new();
        let mut decoded = Vec::new();
        let mut frames = 0;
        while let Some(body) = reader.next_frame(&mut out).unwrap() {
            frames += 1;
            decoded.push(events.decode(&body).unwrap());
        }
        assert!(frames > 2, "the list was split");
        let (last, rest) = decoded.split_last().unwrap();
        assert!(rest.iter().all(Option::is_none), "{rest:?}");
        assert_eq!(
            last,
            &Some(Decoded::Event(ServerEvent::Members {
                room_id: "lobby".to_owned(),
                client_ids: all,
            }))
        );
    }

    #[test]
    fn an_empty_room_is_an_empty_list() {
        let mut events = EventDecoder::new();
        assert_eq!(
            events.decode(&members("r", &[], false)).unwrap(),
            Some(Decoded::Event(ServerEvent::Members {
                room_id: "r".to_owned(),
                client_ids: vec![],
            }))
        );
    }

    #[test]
    fn a_list_going_on_with_another_room_is_refused_and_the_next_list_reads() {
        let mut events = EventDecoder::new();
        assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
        let err = events.decode(&members("q", &ids(1), false)).unwrap_err();
        assert_eq!(
            err,
            EventError::MemberListRoom {
                room_id: "r".to_owned(),
                next_room_id: "q".to_owned()
            }
        );
        assert!(matches!(
            SyncError::from(err),
            SyncError::Protocol(why) if why == "the member list of r went on with the room q"
        ));
        assert_eq!(
            events.decode(&members("q", &ids(1), false)).unwrap(),
            Some(Decoded::Event(ServerEvent::Members {
                room_id: "q".to_owned(),
                client_ids: ids(1),
            }))
        );
    }

    #[test]
    fn a_list_cut_by_another_frame_is_refused_and_that_frame_dropped() {
        // Any frame but a Disconnect, keepalive included.
        for cut in [
            body(&ServerFrame::Error { message: "x" }),
            body(&ServerFrame::Ping),
            body(&ServerFrame::Joined {
                client_id: Uuid::from_u128(9),
                room_id: "r",
            }),
        ] {
            let mut events = EventDecoder::new();
            assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
            let err = events.decode(&cut).unwrap_err();
            assert_eq!(
                err,
                EventError::MemberListCut {
                    room_id: "r".to_owned()
                }
            );
            assert!(matches!(
                SyncError::from(err),
                SyncError::Protocol(why) if why == "the member list of r was cut short by another frame"
            ));
            // Given up: a last frame alone is a list of its own.
            assert_eq!(
                events.decode(&members("r", &ids(1), false)).unwrap(),
                Some(Decoded::Event(ServerEvent::Members {
                    room_id: "r".to_owned(),
                    client_ids: ids(1),
                }))
            );
        }
    }

    #[test]
    fn a_disconnect_in_the_middle_of_a_list_drops_the_list() {
        let mut events = EventDecoder::new();
        assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
        let bye = body(&ServerFrame::Disconnect {
            code: DisconnectCode::SlowConsumer as u8,
            message: "slow",
        });
        assert_eq!(
            events.decode(&bye).unwrap(),
            Some(Decoded::Disconnect(Goodbye {
                code: DisconnectCode::SlowConsumer as u8,
                message: "slow".to_owned(),
            }))
        );
        assert_eq!(
            events.decode(&members("q", &[], false)).unwrap(),
            Some(Decoded::Event(ServerEvent::Members {
                room_id: "q".to_owned(),
                client_ids: vec![],
            }))
        );
    }

    #[test]
    fn a_malformed_frame_leaves_a_list_under_way_alone() {
        let mut events = EventDecoder::new();
        assert_eq!(events.decode(&members("r", &ids(1), true)).unwrap(), None);
        let err = events
            .decode(&Bytes::from_static(&[0xEE, 0xEE]))
            .unwrap_err();
        assert!(matches!(
            err,
            EventError::Malformed(FrameError::Malformed(_))
        ));
        assert!(matches!(
            SyncError::from(err),
            SyncError::Protocol(why) if why == "malformed frame: unknown relay message tag 0xee"
        ));
        assert_eq!(
            events
                .decode(&members("r", &[Uuid::from_u128(2)], false))
                .unwrap(),
            Some(Decoded::Event(ServerEvent::Members {
                room_id: "r".to_owned(),
                client_ids: ids(2),
            }))
        );
    }

    #[test]
    fn a_list_past_the_limit_is_refused() {
        let mut events = EventDecoder::new();
        let chunk = vec![0u8; 16 * (EventDecoder::MAX_MEMBER_LIST / 2)];
        let part = body(&ServerFrame::Members {
            room_id: "r",
            client_ids: &chunk,
            more: true,
        });
        assert_eq!(events.decode(&part).unwrap(), None);
        assert_eq!(events.decode(&part).unwrap(), None);
        let one = members("r", &ids(1), false);
        let err = events.decode(&one).unwrap_err();
        assert_eq!(
            err,
            EventError::MemberListTooLong {
                max: EventDecoder::MAX_MEMBER_LIST
            }
        );
        assert_eq!(err.to_string(), "a member list longer than 1048576 ids");
        // Given up and reported once.
        assert!(events.decode(&one).unwrap().is_some());
    }

    #[test]
    fn keepalive_and_goodbye_are_for_the_caller() {
        let mut events = EventDecoder::new();
        assert_eq!(
            events.decode(&body(&ServerFrame::Ping)).unwrap(),
            Some(Decoded::Ping)
        );
        assert_eq!(
            events.decode(&body(&ServerFrame::Pong)).unwrap(),
            Some(Decoded::Pong)
        );
        let cases: [(DisconnectCode, Expect); 4] = [
            (DisconnectCode::IdleTimeout, |e| {
                matches!(e, SyncError::IdleTimeout)
            }),
            (
                DisconnectCode::Kicked,
                |e| matches!(e, SyncError::Kicked(why) if why == "bye"),
            ),
            (DisconnectCode::ServerShutdown, |e| {
                matches!(e, SyncError::ConnectionClosed)
            }),
            (
                DisconnectCode::Policy,
                |e| matches!(e, SyncError::Disconnected(why) if why == "bye"),
            ),
        ];
        for (code, expected) in cases {
            let Some(Decoded::Disconnect(goodbye)) = events
                .decode(&body(&ServerFrame::Disconnect {
                    code: code as u8,
                    message: "bye",
                }))
                .unwrap()
            else {
                panic!("not a goodbye");
            };
            assert_eq!(goodbye.kind(), Some(code));
            let err = SyncError::from(goodbye);
            assert!(expected(&err), "{code:?} became {err:?}");
        }
        let unknown = Goodbye {
            code: 200,
            message: "new".to_owned(),
        };
        assert_eq!(unknown.kind(), None);
        assert!(matches!(SyncError::from(unknown), SyncError::Disconnected(why) if why == "new"));
    }

    #[test]
    fn handshake_frames_after_the_handshake_are_refused() {
        let mut events = EventDecoder::new();
        let err = events
            .decode(&body(&ServerFrame::Welcome {
                client_id: Uuid::nil(),
                version: 1,
                max_payload: 1024,
            }))
            .unwrap_err();
        assert!(matches!(
            &err,
            EventError::Handshake(HandshakeFrame::Welcome {
                version: 1,
                max_payload: 1024,
                ..
            })
        ));
        // The text the client gave before: the frame as `ServerFrame` prints it.
        let welcome = ServerFrame::Welcome {
            client_id: Uuid::nil(),
            version: 1,
            max_payload: 1024,
        };
        assert_eq!(
            err.to_string(),
            format!("unexpected handshake frame {welcome:?}")
        );
        let rejected = ServerFrame::Rejected {
            code: 2,
            message: "no",
        };
        let err = events.decode(&body(&rejected)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unexpected handshake frame {rejected:?}")
        );
    }

    #[test]
    fn broadcast_data_is_a_slice_of_the_body() {
        let payload = [7u8; 300];
        let frame = body(&ServerFrame::Broadcast {
            sender_id: Uuid::from_u128(3),
            data: &payload,
        });
        let mut events = EventDecoder::new();
        let Some(Decoded::Event(ServerEvent::Broadcast { sender_id, data })) =
            events.decode(&frame).unwrap()
        else {
            panic!("not a broadcast");
        };
        assert_eq!(sender_id, Uuid::from_u128(3));
        assert_eq!(&data[..], &payload[..]);
        // The same memory: the payload ends the body.
        let body_range = frame.as_ptr_range();
        let data_range = data.as_ptr_range();
        assert_eq!(data_range.end, body_range.end);
        assert_eq!(
            data_range.start as usize,
            body_range.end as usize - payload.len()
        );
    }
}
