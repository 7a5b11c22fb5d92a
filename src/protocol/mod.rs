//! The wire protocol: the messages a client and the relay exchange, and how they are framed.
//!
//! Every frame is a big-endian `u32` length followed by that many bytes of one wincode-encoded
//! message. Client and server each have their own message enum with its own one-byte tags;
//! `PROTOCOL.md` at the repository root documents both byte by byte.
//!
//! The message types borrow from the frame they were decoded from (`&str`, `&[u8]`), so decoding
//! never copies a payload: the relay turns a borrowed payload back into a zero-copy [`Bytes`]
//! slice of the frame with [`Bytes::slice_ref`].
//!
//! [`EventDecoder`] turns the relay's frames into the [`ServerEvent`](crate::ServerEvent)s a
//! client receives, for a client over any transport.
//!
//! [`Bytes`]: bytes::Bytes
//! [`Bytes::slice_ref`]: bytes::Bytes::slice_ref

mod codec;
mod events;
mod members;
mod message;

pub use codec::{
    clip_reason, decode_frame, encode, encode_into, FrameError, FrameReader, WireMessage,
    FRAME_OVERHEAD, HEADER_LEN, MAX_PAYLOAD_LIMIT, MAX_REASON_LEN,
};
pub use events::{Decoded, EventDecoder, EventError, Goodbye, HandshakeFrame};
pub use members::{encode_members, member_ids, members_per_frame};
pub use message::{
    hello_version, ClientFrame, DisconnectCode, RejectCode, ServerFrame, MAX_DIRECT_TARGETS,
    MAX_STATE_KEY_LEN, PROTOCOL_VERSION,
};
