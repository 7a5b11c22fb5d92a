//! The checks behind the fuzz targets.
//!
//! The decoding targets (`decode_client_frame`, `decode_server_frame`) share the functions
//! below; the state-machine target (`connection_state_machine`) lives in [`session`].
//!
//! Each input of a decoding target is used twice:
//!
//! 1. As one frame body for `decode_frame`: it must not panic, and whatever decodes must
//!    re-encode to exactly the same bytes (the encoding is canonical, so a decoded frame is
//!    never "more" than what was sent).
//! 2. As a byte stream for `FrameReader`, after a two-byte header choosing the body limit and
//!    the chunking: the stream is fed in those chunks, and every body the reader yields (then
//!    decoded as in 1.) must be within the limit, the outcome must be the same as reading the
//!    whole stream at once, an oversized prefix must be refused as soon as its four bytes are
//!    in, and the buffer must never grow past what the limit allows (a hostile prefix costs
//!    nothing).

pub mod session;

use bytes::BytesMut;
use ghost_sync::protocol::{
    decode_frame, encode, ClientFrame, FrameError, FrameReader, ServerFrame, FRAME_OVERHEAD,
    HEADER_LEN,
};

/// Client → relay bytes.
pub fn client(data: &[u8]) {
    check_body_client(data);
    check_stream(data, check_body_client);
}

/// Relay → client bytes.
pub fn server(data: &[u8]) {
    check_body_server(data);
    check_stream(data, check_body_server);
}

fn check_body_client(body: &[u8]) {
    if let Ok(frame) = decode_frame::<ClientFrame<'_>>(body) {
        assert_eq!(
            &encode(&frame)[HEADER_LEN..],
            body,
            "{frame:?} is not canonical"
        );
    }
}

fn check_body_server(body: &[u8]) {
    if let Ok(frame) = decode_frame::<ServerFrame<'_>>(body) {
        assert_eq!(
            &encode(&frame)[HEADER_LEN..],
            body,
            "{frame:?} is not canonical"
        );
    }
}

/// What reading a stream produced: the bodies, then how it stopped.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    bodies: Vec<Vec<u8>>,
    error: Option<FrameError>,
    leftover: usize,
}

fn check_stream(data: &[u8], check_body: fn(&[u8])) {
    let [limit, chunking, stream @ ..] = data else {
        return;
    };
    // Small limits (hit often by the fuzzer's short inputs), the relay's smallest sensible
    // ones, and its default.
    let max_body = match limit & 0b11 {
        0 => usize::from(limit >> 2),
        1 => FRAME_OVERHEAD + usize::from(limit >> 2),
        2 => 1024 + FRAME_OVERHEAD,
        _ => 64 * 1024 + FRAME_OVERHEAD,
    };
    let reader = FrameReader::new(max_body);
    let whole = read(
        &reader,
        max_body,
        stream,
        &mut std::iter::repeat(stream.len()),
    );
    // Chunk sizes from a small generator seeded by the second byte: 1 to 16 bytes.
    let mut state = u32::from(*chunking) | 1;
    let mut sizes = std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Some((state % 16 + 1) as usize)
    });
    let chunked = read(&reader, max_body, stream, &mut sizes);
    assert_eq!(whole, chunked, "the outcome depends on the chunking");
    for body in &chunked.bodies {
        assert!(body.len() <= max_body);
        check_body(body);
    }
}

fn read(
    reader: &FrameReader,
    max_body: usize,
    stream: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = sizes.next().unwrap().clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let had_prefix = buf.len() >= HEADER_LEN;
            match reader.next_frame(&mut buf) {
                Ok(Some(body)) => bodies.push(body.to_vec()),
                Ok(None) => {
                    // Waiting for a body reserves at most what the limit allows (doubling
                    // included), plus what was actually received.
                    let bound = 2 * (HEADER_LEN + max_body) + 2 * stream.len() + 64;
                    assert!(
                        buf.capacity() <= bound,
                        "{} bytes reserved for a limit of {max_body}",
                        buf.capacity()
                    );
                    break;
                }
                Err(error) => {
                    assert!(had_prefix, "an error before the prefix was complete");
                    match &error {
                        FrameError::TooLarge { len, max } => {
                            assert_eq!(*max, max_body);
                            assert!(*len > max_body);
                            // Refused from the prefix alone: the body was not awaited.
                            let announced =
                                u32::from_be_bytes(buf[..HEADER_LEN].try_into().unwrap());
                            assert_eq!(announced as usize, *len);
                        }
                        FrameError::Malformed(_) => panic!("the reader does not decode"),
                    }
                    return Outcome {
                        bodies,
                        error: Some(error),
                        leftover: 0,
                    };
                }
            }
        }
    }
    Outcome {
        bodies,
        error: None,
        leftover: buf.len(),
    }
}
