//! Property tests of the wire format: every message of both directions survives
//! `encode` / `decode_frame` unchanged, whatever its strings, bytes, ids and codes; a stream of
//! frames splits the same way however it is chunked; and decoding arbitrary bytes never panics
//! (and, when it succeeds, re-encodes to the very same bytes: the encoding is canonical).

use bytes::BytesMut;
use ghost_sync::protocol::{
    clip_reason, decode_frame, encode, ClientFrame, DisconnectCode, FrameError, FrameReader,
    RejectCode, ServerFrame, HEADER_LEN, MAX_REASON_LEN,
};
use ghost_sync::Uuid;
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Owned messages: the frames borrow their strings and bytes, so the strategies build these and
// the tests borrow frames from them.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum OwnedClient {
    Hello(u16, Vec<u8>, Vec<u8>),
    Join(String, Vec<u8>),
    Leave,
    Broadcast(Vec<u8>),
    Ping,
    Pong,
    Direct(Vec<u8>, Vec<u8>),
    Keyed(u32, Vec<u8>),
    SetState(String, Vec<u8>),
    Bye,
}

impl OwnedClient {
    fn frame(&self) -> ClientFrame<'_> {
        match self {
            Self::Hello(version, credentials, resume) => ClientFrame::Hello {
                version: *version,
                credentials,
                resume,
            },
            Self::Join(room_id, data) => ClientFrame::Join { room_id, data },
            Self::Leave => ClientFrame::Leave,
            Self::Broadcast(data) => ClientFrame::Broadcast { data },
            Self::Ping => ClientFrame::Ping,
            Self::Pong => ClientFrame::Pong,
            Self::Direct(targets, data) => ClientFrame::Direct { targets, data },
            Self::Keyed(key, data) => ClientFrame::Keyed { key: *key, data },
            Self::SetState(key, value) => ClientFrame::SetState { key, value },
            Self::Bye => ClientFrame::Bye,
        }
    }
}

#[derive(Debug, Clone)]
enum OwnedServer {
    Welcome(Uuid, u16, u32, u32, Vec<u8>),
    Rejected(u8, String),
    Joined(Uuid, String),
    Left(String),
    PlayerJoined(Uuid),
    PlayerLeft(Uuid),
    Broadcast(Uuid, Vec<u8>),
    Error(String),
    Ping,
    Pong,
    Disconnect(u8, String),
    /// The room and the other members' ids, concatenated as on the wire.
    Members(String, Vec<u8>, bool),
    Direct(Uuid, Vec<u8>),
    Keyed(Uuid, u32, Vec<u8>),
    State(Uuid, String, Vec<u8>),
    Dropped(u32),
}

impl OwnedServer {
    fn frame(&self) -> ServerFrame<'_> {
        match self {
            Self::Welcome(client_id, version, max_payload, ping_interval_ms, resume_token) => {
                ServerFrame::Welcome {
                    client_id: *client_id,
                    version: *version,
                    max_payload: *max_payload,
                    ping_interval_ms: *ping_interval_ms,
                    resume_token,
                }
            }
            Self::Rejected(code, message) => ServerFrame::Rejected {
                code: *code,
                message,
            },
            Self::Joined(client_id, room_id) => ServerFrame::Joined {
                client_id: *client_id,
                room_id,
            },
            Self::Left(room_id) => ServerFrame::Left { room_id },
            Self::PlayerJoined(client_id) => ServerFrame::PlayerJoined {
                client_id: *client_id,
            },
            Self::PlayerLeft(client_id) => ServerFrame::PlayerLeft {
                client_id: *client_id,
            },
            Self::Broadcast(sender_id, data) => ServerFrame::Broadcast {
                sender_id: *sender_id,
                data,
            },
            Self::Error(message) => ServerFrame::Error { message },
            Self::Ping => ServerFrame::Ping,
            Self::Pong => ServerFrame::Pong,
            Self::Disconnect(code, message) => ServerFrame::Disconnect {
                code: *code,
                message,
            },
            Self::Members(room_id, client_ids, more) => ServerFrame::Members {
                room_id,
                client_ids,
                more: *more,
            },
            Self::Direct(sender_id, data) => ServerFrame::Direct {
                sender_id: *sender_id,
                data,
            },
            Self::Keyed(sender_id, key, data) => ServerFrame::Keyed {
                sender_id: *sender_id,
                key: *key,
                data,
            },
            Self::State(owner, key, value) => ServerFrame::State {
                owner: *owner,
                key,
                value,
            },
            Self::Dropped(count) => ServerFrame::Dropped { count: *count },
        }
    }
}

/// Any Unicode text, multi-byte characters included; now and then a long one.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => vec(any::<char>(), 0..64).prop_map(String::from_iter),
        1 => vec(any::<char>(), 0..2048).prop_map(String::from_iter),
    ]
}

/// Any bytes; now and then a lot of them.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 0..8192),
    ]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn client_message() -> impl Strategy<Value = OwnedClient> {
    prop_oneof![
        (any::<u16>(), bytes(), bytes()).prop_map(|(v, c, r)| OwnedClient::Hello(v, c, r)),
        (text(), bytes()).prop_map(|(r, d)| OwnedClient::Join(r, d)),
        Just(OwnedClient::Leave),
        bytes().prop_map(OwnedClient::Broadcast),
        Just(OwnedClient::Ping),
        Just(OwnedClient::Pong),
        (bytes(), bytes()).prop_map(|(t, d)| OwnedClient::Direct(t, d)),
        (any::<u32>(), bytes()).prop_map(|(k, d)| OwnedClient::Keyed(k, d)),
        (text(), bytes()).prop_map(|(k, v)| OwnedClient::SetState(k, v)),
        Just(OwnedClient::Bye),
    ]
}

fn server_message() -> impl Strategy<Value = OwnedServer> {
    prop_oneof![
        (uuid(), any::<u16>(), any::<u32>(), any::<u32>(), bytes())
            .prop_map(|(i, v, m, p, t)| OwnedServer::Welcome(i, v, m, p, t)),
        (any::<u8>(), text()).prop_map(|(c, m)| OwnedServer::Rejected(c, m)),
        (uuid(), text()).prop_map(|(i, r)| OwnedServer::Joined(i, r)),
        text().prop_map(OwnedServer::Left),
        uuid().prop_map(OwnedServer::PlayerJoined),
        uuid().prop_map(OwnedServer::PlayerLeft),
        (uuid(), bytes()).prop_map(|(i, d)| OwnedServer::Broadcast(i, d)),
        text().prop_map(OwnedServer::Error),
        Just(OwnedServer::Ping),
        (text(), vec(uuid(), 0..80), any::<bool>()).prop_map(|(r, ids, more)| {
            OwnedServer::Members(r, ids.iter().flat_map(|id| *id.as_bytes()).collect(), more)
        }),
        Just(OwnedServer::Pong),
        (any::<u8>(), text()).prop_map(|(c, m)| OwnedServer::Disconnect(c, m)),
        (uuid(), bytes()).prop_map(|(i, d)| OwnedServer::Direct(i, d)),
        (uuid(), any::<u32>(), bytes()).prop_map(|(i, k, d)| OwnedServer::Keyed(i, k, d)),
        (uuid(), text(), bytes()).prop_map(|(i, k, v)| OwnedServer::State(i, k, v)),
        any::<u32>().prop_map(OwnedServer::Dropped),
    ]
}

/// The body of an encoded frame, after checking that its prefix tells its length.
fn body(frame: &[u8]) -> &[u8] {
    let announced = u32::from_be_bytes(frame[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(
        announced,
        frame.len() - HEADER_LEN,
        "the prefix is the body length"
    );
    &frame[HEADER_LEN..]
}

/// Feeds `stream` to a reader in pieces of the given sizes (cycled), and returns the bodies.
fn split(
    reader: &FrameReader,
    stream: &[u8],
    pieces: &[usize],
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    let mut rest = stream;
    let mut sizes = pieces.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(body) = reader.next_frame(&mut buf)? {
            bodies.push(body.to_vec());
        }
    }
    assert!(buf.is_empty(), "no partial frame left over");
    Ok(bodies)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_client_frame_round_trips(message in client_message()) {
        let frame = message.frame();
        let encoded = encode(&frame);
        let decoded: ClientFrame<'_> = decode_frame(body(&encoded)).unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(encode(&decoded), encoded);
    }

    #[test]
    fn every_server_frame_round_trips(message in server_message()) {
        let frame = message.frame();
        let encoded = encode(&frame);
        let decoded: ServerFrame<'_> = decode_frame(body(&encoded)).unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(encode(&decoded), encoded);
    }

    #[test]
    fn a_stream_of_frames_splits_the_same_however_it_is_chunked(
        messages in vec(client_message(), 0..16),
        pieces in vec(1usize..64, 1..8),
    ) {
        let frames: Vec<_> = messages.iter().map(|m| encode(&m.frame())).collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let largest = frames.iter().map(|f| f.len() - HEADER_LEN).max().unwrap_or(0);
        // A limit of exactly the largest body accepts them all.
        let bodies = split(&FrameReader::new(largest), &stream, &pieces).unwrap();
        prop_assert_eq!(bodies.len(), messages.len());
        for (body, message) in bodies.iter().zip(&messages) {
            let decoded: ClientFrame<'_> = decode_frame(body).unwrap();
            prop_assert_eq!(decoded, message.frame());
        }
    }

    #[test]
    fn a_body_one_byte_over_the_limit_is_refused_from_its_prefix(
        message in server_message(),
        pieces in vec(1usize..64, 1..8),
    ) {
        let frame = encode(&message.frame());
        let len = frame.len() - HEADER_LEN;
        prop_assume!(len > 0);
        // Only the prefix is offered: the refusal must not wait for the body.
        let err = split(&FrameReader::new(len - 1), &frame[..HEADER_LEN], &pieces).unwrap_err();
        prop_assert_eq!(err, FrameError::TooLarge { len, max: len - 1 });
    }

    #[test]
    fn trailing_bytes_and_every_truncation_are_malformed(
        client in client_message(),
        server in server_message(),
        extra in any::<u8>(),
    ) {
        let client = encode(&client.frame());
        let server = encode(&server.frame());
        let (client, server) = (body(&client), body(&server));
        let mut longer = client.to_vec();
        longer.push(extra);
        prop_assert!(decode_frame::<ClientFrame<'_>>(&longer).is_err());
        let mut longer = server.to_vec();
        longer.push(extra);
        prop_assert!(decode_frame::<ServerFrame<'_>>(&longer).is_err());
        for cut in 0..client.len() {
            prop_assert!(decode_frame::<ClientFrame<'_>>(&client[..cut]).is_err(), "cut at {}", cut);
        }
        for cut in 0..server.len() {
            prop_assert!(decode_frame::<ServerFrame<'_>>(&server[..cut]).is_err(), "cut at {}", cut);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes
// ---------------------------------------------------------------------------------------------

/// Whatever decodes re-encodes to the same bytes; nothing panics.
fn decode_both(data: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = decode_frame::<ClientFrame<'_>>(data) {
        prop_assert_eq!(&encode(&frame)[HEADER_LEN..], data);
    }
    if let Ok(frame) = decode_frame::<ServerFrame<'_>>(data) {
        prop_assert_eq!(&encode(&frame)[HEADER_LEN..], data);
    }
    Ok(())
}

/// Bytes shaped like a message: a plausible tag, then fields (fixed-size values and
/// length-prefixed runs whose lengths are often right, sometimes off, sometimes huge).
fn message_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        vec(any::<u8>(), 0..20),
        (0u64..40, any::<i8>(), vec(any::<u8>(), 0..40)).prop_map(|(len, off, tail)| {
            let mut out = len
                .saturating_add_signed(i64::from(off % 2))
                .to_le_bytes()
                .to_vec();
            out.extend(tail.into_iter().take(len as usize));
            out
        }),
        any::<u64>().prop_map(|n| n.to_le_bytes().to_vec()),
    ];
    (0u8..14, vec(field, 0..4)).prop_map(|(tag, fields)| {
        let mut out = vec![tag];
        out.extend(fields.into_iter().flatten());
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..config() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in vec(any::<u8>(), 0..256)) {
        decode_both(&data)?;
    }

    #[test]
    fn decoding_message_like_bytes_never_panics(data in message_like()) {
        decode_both(&data)?;
    }

    #[test]
    fn the_frame_reader_on_arbitrary_bytes_respects_its_limit(
        stream in vec(any::<u8>(), 0..512),
        max_body in 0usize..80,
        pieces in vec(1usize..32, 1..8),
    ) {
        let reader = FrameReader::new(max_body);
        let mut buf = BytesMut::new();
        let mut rest = &stream[..];
        let mut sizes = pieces.iter().copied().cycle();
        'feed: while !rest.is_empty() {
            let n = sizes.next().unwrap().min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match reader.next_frame(&mut buf) {
                    Ok(Some(body)) => {
                        prop_assert!(body.len() <= max_body);
                        decode_both(&body)?;
                    }
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len, max }) => {
                        prop_assert!(len > max_body);
                        prop_assert_eq!(max, max_body);
                        break 'feed;
                    }
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }

    #[test]
    fn reasons_are_clipped_to_the_longest_prefix_that_fits(text in text()) {
        let clipped = clip_reason(&text);
        prop_assert!(clipped.len() <= MAX_REASON_LEN);
        prop_assert!(text.starts_with(clipped));
        if clipped.len() < text.len() {
            let next = text[clipped.len()..].chars().next().unwrap();
            prop_assert!(clipped.len() + next.len_utf8() > MAX_REASON_LEN);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------------------------

#[test]
fn every_reject_and_disconnect_code_round_trips_through_its_wire_value() {
    for value in 0..=u8::MAX {
        match RejectCode::from_u8(value) {
            Some(code) => assert_eq!(code as u8, value),
            None => assert!(value > RejectCode::ShuttingDown as u8, "{value}"),
        }
        match DisconnectCode::from_u8(value) {
            Some(code) => assert_eq!(code as u8, value),
            None => assert!(value > DisconnectCode::Internal as u8, "{value}"),
        }
    }
}

/// The hex of a worked example in PROTOCOL.md §10, read from the file itself: the bytes of
/// each line before its comment.
fn protocol_md_example(title: &str) -> Vec<u8> {
    let doc = include_str!("../PROTOCOL.md");
    let start = doc
        .find(&format!("### {title}"))
        .unwrap_or_else(|| panic!("no example {title:?} in PROTOCOL.md"));
    let block = &doc[start..];
    let body = &block[block.find("```text\n").unwrap() + 8..];
    let body = &body[..body.find("```").unwrap()];
    body.lines()
        .flat_map(|line| {
            line.split("  ")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(|byte| u8::from_str_radix(byte, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_member_list_example_of_protocol_md_is_what_the_relay_encodes() {
    let id = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
    let encoded = encode(&ServerFrame::Members {
        room_id: "lobby",
        client_ids: id.as_bytes(),
        more: false,
    });
    assert_eq!(
        protocol_md_example("Members (relay → client)"),
        &encoded[..]
    );
}

#[test]
fn every_worked_example_of_protocol_md_is_what_encode_produces() {
    let id = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
    let client = [
        (
            "Hello (client → relay)",
            encode(&ClientFrame::Hello {
                version: 2,
                credentials: b"",
                resume: &[],
            }),
        ),
        (
            "Join \"lobby\" (client → relay)",
            encode(&ClientFrame::Join {
                room_id: "lobby",
                data: b"",
            }),
        ),
        (
            "Broadcast \"hi\" (client → relay)",
            encode(&ClientFrame::Broadcast { data: b"hi" }),
        ),
    ];
    let relay = [
        (
            "Welcome (relay → client)",
            encode(&ServerFrame::Welcome {
                client_id: id,
                version: 2,
                max_payload: 65536,
                ping_interval_ms: 13_000,
                resume_token: &[],
            }),
        ),
        (
            "Rejected (relay → client), server full",
            encode(&ServerFrame::Rejected {
                code: 0,
                message: "connection limit of 128 reached",
            }),
        ),
        (
            "Joined (relay → client)",
            encode(&ServerFrame::Joined {
                client_id: id,
                room_id: "lobby",
            }),
        ),
        (
            "Broadcast \"hi\" (relay → the other members)",
            encode(&ServerFrame::Broadcast {
                sender_id: id,
                data: b"hi",
            }),
        ),
        (
            "Error \"room not found: lobby\" (relay → client)",
            encode(&ServerFrame::Error {
                message: "room not found: lobby",
            }),
        ),
        (
            "Disconnect, idle timeout (relay → client)",
            encode(&ServerFrame::Disconnect {
                code: 0,
                message: "idle timeout",
            }),
        ),
    ];
    for (title, encoded) in client.iter().chain(relay.iter()) {
        assert_eq!(protocol_md_example(title), &encoded[..], "{title}");
    }
}
