//! The bytes relays send each other over the bus: a room's frames, and control messages for
//! one relay. Clients never see them; PROTOCOL.md does not change.
//!
//! - room message: `origin: u64 LE | seq: u64 LE | frame`, where `frame` is the encoded
//!   `Broadcast` frame exactly as clients receive it, so that a receiving relay fans it out
//!   without decoding or re-encoding it (a slice of the received buffer, shared by all of
//!   its members);
//! - control message: `b'K' | client: 16 bytes | reason (UTF-8)` (kick) or
//!   `b'S' | client: 16 bytes | frame` (send to one client).

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
    Kick { client: Uuid, reason: String },
    Send { client: Uuid, frame: Bytes },
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
        }
        out.freeze()
    }

    pub(crate) fn decode(message: &Bytes) -> Option<Self> {
        if message.len() < 17 {
            return None;
        }
        let client = Uuid::from_slice(&message[1..17]).ok()?;
        let rest = message.slice(17..);
        match message[0] {
            b'K' => Some(Self::Kick {
                client,
                reason: String::from_utf8_lossy(&rest).into_owned(),
            }),
            b'S' => Some(Self::Send {
                client,
                frame: rest,
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
        ] {
            assert_eq!(Control::decode(&control.encode()), Some(control));
        }
        assert_eq!(
            Control::decode(&Bytes::from_static(b"X0123456789abcdef")),
            None
        );
    }
}
