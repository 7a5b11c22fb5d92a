//! Framing: a big-endian `u32` length prefix, then one wincode message.
//!
//! The reader checks the length prefix against the limit before it reserves memory or waits for
//! the body (the way tokio-util's `LengthDelimitedCodec` does), so a hostile prefix costs nothing.
//! Partial frames stay in the caller's `BytesMut`, which is what makes reading cancel-safe.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;
use wincode::config::{Configuration, DefaultConfig};
use wincode::{SchemaRead, SchemaWrite};

/// Bytes of the length prefix in front of every frame.
pub const HEADER_LEN: usize = 4;

/// Largest number of bytes a message adds to its payload (tag, ids, length fields), with room
/// to spare. A frame body may be up to `max_payload + FRAME_OVERHEAD` bytes.
pub const FRAME_OVERHEAD: usize = 64;

/// Longest reason text (in `Error`, `Rejected` and `Disconnect`) the relay sends, in bytes.
/// Longer texts, such as a refusal quoting a huge room id, are cut at a character boundary,
/// so a client can always read a reason whatever the relay's `max_payload`.
pub const MAX_REASON_LEN: usize = 1024;

/// `text` cut to at most [`MAX_REASON_LEN`] bytes, at a character boundary.
pub fn clip_reason(text: &str) -> &str {
    if text.len() <= MAX_REASON_LEN {
        return text;
    }
    let mut end = MAX_REASON_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Largest `max_payload` a server or client accepts (16 MiB).
///
/// It bounds wincode's preallocation limit below, which must be a compile-time constant.
pub const MAX_PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// wincode's preallocation limit: the most a decode may reserve ahead of reading. Every
/// message borrows its strings and payloads from the frame, so decoding reserves nothing, and
/// the limit can be the smallest legal frame body: a future owned field could then never make
/// a small hostile frame reserve more than this, whatever its length prefixes claim.
const PREALLOCATION_LIMIT: usize = FRAME_OVERHEAD;

type WireConfig = Configuration<true, PREALLOCATION_LIMIT>;

const fn wire_config() -> WireConfig {
    DefaultConfig::default().with_preallocation_size_limit::<PREALLOCATION_LIMIT>()
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announced more than the limit.
    TooLarge {
        /// Announced body length.
        len: usize,
        /// Largest body accepted.
        max: usize,
    },
    /// The body is not a valid message.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes one message into a complete frame (length prefix included).
///
/// One allocation of exactly the frame's size; the result is shared, not copied, when it goes
/// to many recipients.
pub fn encode<T: SchemaWrite<WireConfig, Src = T>>(message: &T) -> Bytes {
    let config = wire_config();
    // Sizes are computed from values this crate builds; the payloads inside were already checked
    // against `max_payload`, which is at most `MAX_PAYLOAD_LIMIT`.
    let size = wincode::config::serialized_size(message, config).unwrap_or(0) as usize;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.put_u32(size as u32);
    if wincode::config::serialize_into(&mut out, message, config).is_err() {
        // Unreachable for well-formed messages; never send a frame whose prefix lies.
        out.truncate(HEADER_LEN);
        out[..HEADER_LEN].copy_from_slice(&0u32.to_be_bytes());
    }
    Bytes::from(out)
}

/// Encodes one message as a complete frame (length prefix included) at the end of `out`:
/// for a sender that gathers frames into one write buffer, with no frame-sized allocation
/// and no second copy.
pub fn encode_into<T: SchemaWrite<WireConfig, Src = T>>(message: &T, out: &mut BytesMut) {
    let config = wire_config();
    let size = wincode::config::serialized_size(message, config).unwrap_or(0) as usize;
    let start = out.len();
    out.put_u32(size as u32);
    // wincode writes into a slice, not a `BytesMut`: make room, then fill it.
    out.resize(start + HEADER_LEN + size, 0);
    let written =
        wincode::config::serialize_into(&mut &mut out[start + HEADER_LEN..], message, config);
    // Unreachable for well-formed messages (the size was just computed from the same value).
    debug_assert!(
        written.is_ok(),
        "a message wincode sized but could not write"
    );
    if written.is_err() {
        // Write nothing rather than a frame whose prefix lies.
        out.truncate(start);
    }
}

/// What a decoder needs to know of a message enum to explain why a body did not decode.
pub trait WireMessage {
    /// Who sends these messages ("client" or "relay"), for "unknown client message tag".
    const SENDER: &'static str;
    /// The name of the message a tag stands for, if the tag is known.
    fn name(tag: u8) -> Option<&'static str>;
    /// What the text field of that message holds ("room id", "message"), if it has one.
    fn text_field(tag: u8) -> Option<&'static str>;
}

/// Decodes one frame body into a message that borrows from it; trailing bytes are an error.
///
/// The error says what is wrong in the protocol's own terms ("unknown client message tag
/// 0x2a", "the room id of a Join is not valid UTF-8"), for the person reading the reason on
/// the other side, never in the decoder's.
pub fn decode_frame<'a, T: SchemaRead<'a, WireConfig, Dst = T> + WireMessage>(
    body: &'a [u8],
) -> Result<T, FrameError> {
    let Some(&tag) = body.first() else {
        return Err(FrameError::Malformed(
            "a frame of 0 bytes: every frame holds at least a message tag".to_owned(),
        ));
    };
    wincode::config::deserialize_exact(body, wire_config())
        .map_err(|err| FrameError::Malformed(malformed::<T>(tag, body.len(), err)))
}

/// Words for why the body of `len` bytes starting with `tag` did not decode as a `T`.
fn malformed<T: WireMessage>(tag: u8, len: usize, err: wincode::ReadError) -> String {
    use wincode::ReadError as E;
    let Some(name) = T::name(tag) else {
        return format!("unknown {} message tag 0x{tag:02x}", T::SENDER);
    };
    // "an Error", "a Join": the reason is read by people.
    let a = if name.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    match err {
        E::Io(_) | E::PreallocationSizeLimit { .. } | E::LengthEncodingOverflow(_) => format!(
            "{a} {name} (tag 0x{tag:02x}) cut short: a body of {len} bytes is too short for \
             its fields, or a length prefix in it runs past its end"
        ),
        E::InvalidUtf8Encoding(_) | E::InvalidUtf8Code(_) | E::InvalidCharLead(_) => format!(
            "the {} of {a} {name} is not valid UTF-8",
            T::text_field(tag).unwrap_or("text")
        ),
        E::InvalidBoolEncoding(byte) => format!("a flag of {a} {name} is {byte}, not 0 or 1"),
        E::TrailingBytes => {
            format!(
                "bytes left over after {a} {name}: the body of {len} bytes is longer than its fields"
            )
        }
        other => format!("{a} {name} (tag 0x{tag:02x}) does not decode: {other}"),
    }
}

/// Splits complete frames off the front of a read buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameReader {
    max_body: usize,
}

impl FrameReader {
    /// A reader that accepts bodies of at most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Self { max_body }
    }

    /// A reader for a peer whose payloads may be up to `max_payload` bytes.
    pub fn for_payload(max_payload: usize) -> Self {
        Self::new(max_payload.saturating_add(FRAME_OVERHEAD))
    }

    /// Takes the next complete frame body out of `buf`, or `None` if more bytes are needed.
    ///
    /// Rejects an oversized frame from its prefix alone. While a frame is incomplete it
    /// reserves room for exactly the rest of it, never more than the limit allows.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_body {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_body,
            });
        }
        let total = HEADER_LEN + len;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, ServerFrame};
    use uuid::Uuid;

    fn reason(body: &[u8]) -> String {
        match decode_frame::<ClientFrame<'_>>(body) {
            Err(FrameError::Malformed(why)) => why,
            other => panic!("{body:?} decoded: {other:?}"),
        }
    }

    #[test]
    fn malformed_frames_are_explained_in_the_protocols_terms() {
        assert_eq!(
            reason(b""),
            "a frame of 0 bytes: every frame holds at least a message tag"
        );
        assert_eq!(reason(&[0x2a]), "unknown client message tag 0x2a");
        let mut join = encode(&ClientFrame::Join {
            room_id: "lobby",
            data: b"",
        })[HEADER_LEN..]
            .to_vec();
        join[9] = 0xff;
        assert_eq!(reason(&join), "the room id of a Join is not valid UTF-8");
        assert_eq!(
            reason(&[3, 9, 0, 0, 0, 0, 0, 0, 0, 1]),
            "a Broadcast (tag 0x03) cut short: a body of 10 bytes is too short for its fields, \
             or a length prefix in it runs past its end"
        );
        assert_eq!(
            reason(&[2, 0]),
            "bytes left over after a Leave: the body of 2 bytes is longer than its fields"
        );
        let members = encode(&ServerFrame::Members {
            room_id: "r",
            client_ids: &[],
            more: false,
        });
        let mut members = members[HEADER_LEN..].to_vec();
        *members.last_mut().unwrap() = 2;
        match decode_frame::<ServerFrame<'_>>(&members) {
            Err(FrameError::Malformed(why)) => {
                assert_eq!(why, "a flag of a Members is 2, not 0 or 1")
            }
            other => panic!("decoded: {other:?}"),
        }
    }

    #[test]
    fn encode_into_appends_exactly_what_encode_returns() {
        let frames = [
            ClientFrame::Broadcast { data: b"hello" },
            ClientFrame::Join {
                room_id: "lobby",
                data: b"",
            },
            ClientFrame::Ping,
        ];
        let mut out = BytesMut::from(&b"queued"[..]);
        let mut expected = b"queued".to_vec();
        for frame in &frames {
            encode_into(frame, &mut out);
            expected.extend_from_slice(&encode(frame));
        }
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn a_broadcast_round_trips_without_copying_its_payload() {
        let id = Uuid::from_u128(7);
        let frame = encode(&ServerFrame::Broadcast {
            sender_id: id,
            data: b"hello",
        });
        let mut buf = BytesMut::from(&frame[..]);
        let body = FrameReader::new(1024)
            .next_frame(&mut buf)
            .unwrap()
            .unwrap();
        let decoded: ServerFrame<'_> = decode_frame(&body).unwrap();
        match decoded {
            ServerFrame::Broadcast { sender_id, data } => {
                assert_eq!(sender_id, id);
                assert_eq!(data, b"hello");
                // The payload points into the frame.
                assert_eq!(body.slice_ref(data).as_ptr(), data.as_ptr());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_wire_format_matches_protocol_md() {
        let frame = encode(&ClientFrame::Join {
            room_id: "lobby",
            data: &[],
        });
        assert_eq!(
            &frame[..],
            &[
                0, 0, 0, 22, 1, 5, 0, 0, 0, 0, 0, 0, 0, b'l', b'o', b'b', b'b', b'y', 0, 0, 0, 0,
                0, 0, 0, 0
            ]
        );
        assert_eq!(&encode(&ClientFrame::Ping)[..], &[0, 0, 0, 1, 4]);
    }

    #[test]
    fn reasons_are_clipped_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let clipped = clip_reason(&long);
        assert!(clipped.len() <= MAX_REASON_LEN);
        assert_eq!(clipped.len(), MAX_REASON_LEN);
        assert_eq!(clip_reason("short"), "short");
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_the_body_arrives() {
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        let err = FrameReader::new(100).next_frame(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 100
            }
        );
        assert!(buf.capacity() < 1024, "nothing was reserved for the body");
    }

    #[test]
    fn an_incomplete_frame_stays_in_the_buffer() {
        let frame = encode(&ClientFrame::Broadcast { data: b"abcdef" });
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        let reader = FrameReader::new(100);
        assert_eq!(reader.next_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&frame[frame.len() - 1..]);
        assert!(reader.next_frame(&mut buf).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn unknown_tags_trailing_bytes_and_bad_utf8_are_malformed() {
        assert!(decode_frame::<ClientFrame<'_>>(&[99]).is_err());
        assert!(decode_frame::<ClientFrame<'_>>(&[4, 0]).is_err());
        assert!(decode_frame::<ClientFrame<'_>>(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0xFF]).is_err());
        assert!(decode_frame::<ClientFrame<'_>>(&[]).is_err());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::protocol::ClientFrame;

    #[test]
    fn a_large_borrowed_payload_decodes_under_the_small_preallocation_limit() {
        let data = vec![9u8; 1 << 20];
        let frame = encode(&ClientFrame::Broadcast { data: &data });
        let mut buf = BytesMut::from(&frame[..]);
        let body = FrameReader::for_payload(1 << 20)
            .next_frame(&mut buf)
            .unwrap()
            .unwrap();
        match decode_frame::<ClientFrame<'_>>(&body).unwrap() {
            ClientFrame::Broadcast { data: got } => assert_eq!(got.len(), 1 << 20),
            other => panic!("unexpected {other:?}"),
        }
    }
}
