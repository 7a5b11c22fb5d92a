//! The bytes relays send each other over the bus: a room's frames, and control messages for
//! one relay. Clients never see them; PROTOCOL.md does not change.
//!
//! - room message: `origin: u64 LE | seq: u64 LE | frame`, where `frame` is the encoded
//!   `Broadcast` frame exactly as clients receive it, so that a receiving relay fans it out
//!   without decoding or re-encoding it (a slice of the received buffer, shared by all of
//!   its members);
//! - control message: `b'K' | client: 16 bytes | reason (UTF-8)` (kick),
//!   `b'S' | client: 16 bytes | frame` (send to one client), or one of the three steps of a
//!   seat moving to another relay (see `cluster/moving.rs`):
//!   `b'R' | client | token: 16 bytes | claimer's relay: u16 LE length + UTF-8 | user id:
//!   u8 flag (1: there is one) + UTF-8` (a claim, to the relay holding the seat),
//!   `b'F' | client | missed: u32 LE | room: u16 LE length + UTF-8 | frames` (the seat, handed
//!   over with the frames queued for it, whole encoded frames one after the other), or
//!   `b'N' | client | reason (UTF-8)` (the claim refused).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

const HEADER: usize = 16;

/// Writes a room message: `frame`, from relay `origin`, its `seq`-th in this room. A
/// backplane writes it straight into its outgoing command, with no buffer of its own.
pub(crate) fn write_room_message(
    out: &mut impl std::io::Write,
    origin: u64,
    seq: u64,
    frame: &[u8],
) -> std::io::Result<()> {
    out.write_all(&origin.to_le_bytes())?;
    out.write_all(&seq.to_le_bytes())?;
    out.write_all(frame)
}

/// `(origin, seq, frame)` of a room message; `None` if it is too short to be one.
pub(crate) fn parse_room_message(message: &Bytes) -> Option<(u64, u64, Bytes)> {
    if message.len() < HEADER {
        return None;
    }
    let origin = u64::from_le_bytes(message[..8].try_into().ok()?);
    let seq = u64::from_le_bytes(message[8..16].try_into().ok()?);
    Some((origin, seq, message.slice(HEADER..)))
}

/// A control message for the relay that holds `client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    Kick {
        client: Uuid,
        reason: String,
    },
    Send {
        client: Uuid,
        frame: Bytes,
    },
    /// Relay `to` has a client presenting `token` for `client`'s seat, here.
    Claim {
        client: Uuid,
        token: [u8; 16],
        to: String,
        user_id: Option<String>,
    },
    /// The seat of `client`, handed over: its room (empty: none), the frames queued for it,
    /// and how many it missed.
    Handed {
        client: Uuid,
        missed: u32,
        room: String,
        frames: Bytes,
    },
    /// A claim refused, with the reason the client reads.
    Refused {
        client: Uuid,
        reason: String,
    },
}

fn put_short(out: &mut BytesMut, text: &str) {
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.put_u16_le(len);
    out.put_slice(&text.as_bytes()[..usize::from(len)]);
}

/// A `u16 LE` length and that much UTF-8, from the front of `rest`.
fn take_short(rest: &mut Bytes) -> Option<String> {
    let len = usize::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?));
    let text = String::from_utf8(rest.get(2..2 + len)?.to_vec()).ok()?;
    *rest = rest.slice(2 + len..);
    Some(text)
}

impl Control {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Self::Kick { client, reason } => {
                out.put_u8(b'K');
                out.put_slice(client.as_bytes());
                out.put_slice(reason.as_bytes());
            }
            Self::Send { client, frame } => {
                out.put_u8(b'S');
                out.put_slice(client.as_bytes());
                out.put_slice(frame);
            }
            Self::Claim {
                client,
                token,
                to,
                user_id,
            } => {
                out.put_u8(b'R');
                out.put_slice(client.as_bytes());
                out.put_slice(token);
                put_short(&mut out, to);
                out.put_u8(u8::from(user_id.is_some()));
                out.put_slice(user_id.as_deref().unwrap_or("").as_bytes());
            }
            Self::Handed {
                client,
                missed,
                room,
                frames,
            } => {
                out.reserve(23 + room.len() + frames.len());
                out.put_u8(b'F');
                out.put_slice(client.as_bytes());
                out.put_u32_le(*missed);
                put_short(&mut out, room);
                out.put_slice(frames);
            }
            Self::Refused { client, reason } => {
                out.put_u8(b'N');
                out.put_slice(client.as_bytes());
                out.put_slice(reason.as_bytes());
            }
        }
        out.freeze()
    }

    pub(crate) fn decode(message: &Bytes) -> Option<Self> {
        if message.len() < 17 {
            return None;
        }
        let client = Uuid::from_slice(&message[1..17]).ok()?;
        let mut rest = message.slice(17..);
        match message[0] {
            b'K' => Some(Self::Kick {
                client,
                reason: String::from_utf8_lossy(&rest).into_owned(),
            }),
            b'S' => Some(Self::Send {
                client,
                frame: rest,
            }),
            b'R' => {
                let token = rest.get(..16)?.try_into().ok()?;
                rest = rest.slice(16..);
                let to = take_short(&mut rest)?;
                let (&flag, user) = rest.split_first()?;
                let user = String::from_utf8(user.to_vec()).ok()?;
                Some(Self::Claim {
                    client,
                    token,
                    to,
                    user_id: (flag == 1).then_some(user),
                })
            }
            b'F' => {
                let missed = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
                rest = rest.slice(4..);
                let room = take_short(&mut rest)?;
                Some(Self::Handed {
                    client,
                    missed,
                    room,
                    frames: rest,
                })
            }
            b'N' => Some(Self::Refused {
                client,
                reason: String::from_utf8_lossy(&rest).into_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_message_gives_back_its_frame_without_a_copy() {
        let mut written = Vec::new();
        write_room_message(&mut written, 7, 9, b"frame").unwrap();
        let message = Bytes::from(written);
        let (origin, seq, frame) = parse_room_message(&message).unwrap();
        assert_eq!((origin, seq, &frame[..]), (7, 9, &b"frame"[..]));
        assert_eq!(frame.as_ptr(), message[HEADER..].as_ptr());
        assert!(parse_room_message(&Bytes::from_static(b"short")).is_none());
    }

    #[test]
    fn control_messages_round_trip() {
        let client = Uuid::from_u128(5);
        for control in [
            Control::Kick {
                client,
                reason: "bye".into(),
            },
            Control::Send {
                client,
                frame: Bytes::from_static(b"\x00\x01"),
            },
            Control::Claim {
                client,
                token: [7; 16],
                to: "relay-b".into(),
                user_id: Some("ana".into()),
            },
            Control::Claim {
                client,
                token: [8; 16],
                to: String::new(),
                user_id: None,
            },
            Control::Handed {
                client,
                missed: 3,
                room: "arena".into(),
                frames: Bytes::from_static(b"\x05\x00\x00\x00\x01"),
            },
            Control::Refused {
                client,
                reason: "resume token already used".into(),
            },
        ] {
            assert_eq!(Control::decode(&control.encode()), Some(control));
        }
        assert_eq!(
            Control::decode(&Bytes::from_static(b"X0123456789abcdef")),
            None
        );
    }
}
