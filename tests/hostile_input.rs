//! Hostile input over loopback: malformed, oversized, truncated, noisy, slow, flooding and
//! abusive clients, one test per case, speaking raw bytes.
//!
//! Every case checks three things: the offender gets the documented treatment (a `Disconnect`
//! or a `Rejected` with its code where the protocol has one), nothing in the relay panics,
//! and the relay still serves others afterwards (a fresh pair of clients joins a room and
//! exchanges a broadcast, see [`still_serving`]). Memory is checked on the way: the process
//! (the relay runs in it) must stay under [`RSS_BOUND`].
//!
//! Each test runs its relay on the test's own current-thread runtime, that is on the libtest
//! thread named after the test, so a panic in a relay task (which tokio swallows) is
//! attributed to the test that caused it by the panic hook in [`relay`].

mod common;

use common::*;
use ghost_sync::protocol::{
    encode, ClientFrame, DisconnectCode, RejectCode, FRAME_OVERHEAD, MAX_REASON_LEN,
    PROTOCOL_VERSION,
};
use ghost_sync::server::DEFAULT_MAX_PAYLOAD;
use ghost_sync::{Client, Server, ServerEvent, ServerHandle, ServerHandler, SyncError, Uuid};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Longest frame body the relay accepts with the default `max_payload`.
const MAX_BODY: usize = DEFAULT_MAX_PAYLOAD + FRAME_OVERHEAD;

/// Resident memory the whole test process (relay and clients) must stay under. Generous:
/// the point is to catch a relay that buffers a hostile stream without limit.
const RSS_BOUND: usize = 256 * 1024 * 1024;

/// Panics seen so far, per thread name.
static PANICS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Counts every panic under its thread's name, then reports it as usual.
fn watch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
            *panics
                .get_or_insert_with(HashMap::new)
                .entry(name)
                .or_default() += 1;
            drop(panics);
            report(info);
        }));
    });
}

/// Panics seen on this thread: this test's, relay tasks included.
fn panics_here() -> usize {
    let name = std::thread::current().name().unwrap_or("").to_owned();
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    panics
        .as_ref()
        .and_then(|p| p.get(&name).copied())
        .unwrap_or(0)
}

/// Starts a relay on a free loopback port, with the panic watch on.
async fn relay(builder: ghost_sync::ServerBuilder) -> (ServerHandle, SocketAddr) {
    watch_panics();
    start(builder).await
}

/// A `/proc/self/status` field, in bytes.
fn proc_status(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

fn assert_memory_bounded() {
    let rss = proc_status("VmRSS:");
    assert!(
        rss < RSS_BOUND,
        "resident memory {} MiB over the {} MiB bound",
        rss >> 20,
        RSS_BOUND >> 20
    );
}

/// Connects, waiting for a free slot if the relay is full.
async fn connect_when_free(addr: SocketAddr) -> Client {
    within("a free slot", async {
        loop {
            match Client::connect(addr).await {
                Ok(client) => return client,
                Err(SyncError::ServerFull) => tokio::task::yield_now().await,
                Err(other) => panic!("connect failed: {other:?}"),
            }
        }
    })
    .await
}

/// A fresh pair of clients joins a new room and exchanges a broadcast each way; memory is
/// still bounded.
async fn serves_a_fresh_pair(handle: &ServerHandle, addr: SocketAddr, room: &str) {
    if !handle.room_exists(room) {
        handle.create_room(room).unwrap();
    }
    let mut a = connect_when_free(addr).await;
    a.join(room).await.unwrap();
    expect_joined(&mut a, room).await;
    let mut b = connect_when_free(addr).await;
    b.join(room).await.unwrap();
    expect_joined(&mut b, room).await;
    assert_eq!(
        next_event(&mut a).await,
        ServerEvent::PlayerJoined {
            client_id: b.client_id()
        }
    );
    b.broadcast(b"still serving").await.unwrap();
    assert_eq!(
        next_event(&mut a).await,
        ServerEvent::Broadcast {
            sender_id: b.client_id(),
            data: b"still serving"[..].into()
        }
    );
    a.broadcast(b"and back").await.unwrap();
    assert_eq!(
        next_event(&mut b).await,
        ServerEvent::Broadcast {
            sender_id: a.client_id(),
            data: b"and back"[..].into()
        }
    );
    assert_memory_bounded();
}

/// The check every case ends with: others are still served, and nothing panicked.
async fn still_serving(handle: &ServerHandle, addr: SocketAddr) {
    static ROOMS: AtomicUsize = AtomicUsize::new(0);
    let room = format!("fresh-{}", ROOMS.fetch_add(1, Ordering::Relaxed));
    serves_a_fresh_pair(handle, addr, &room).await;
    assert_eq!(panics_here(), 0, "something panicked in the relay");
}

/// The offender's next frame (past keepalive) is a `Disconnect` with `code`, and the last.
async fn disconnected(raw: &mut RawClient, code: DisconnectCode) -> String {
    match raw.recv_skipping_pings().await {
        Some(Frame::Disconnect { code: got, message }) => {
            assert_eq!(got, code as u8, "disconnect code (reason: {message:?})");
            assert!(!message.is_empty());
            assert_eq!(raw.recv().await, None, "the Disconnect is the last frame");
            message
        }
        other => panic!("expected Disconnect {code:?}, got {other:?}"),
    }
}

/// The offender's first frame is a `Rejected` with `code`, and the last.
async fn rejected(raw: &mut RawClient, code: RejectCode) -> String {
    match raw.recv().await {
        Some(Frame::Rejected { code: got, message }) => {
            assert_eq!(got, code as u8, "reject code (reason: {message:?})");
            assert!(!message.is_empty());
            assert_eq!(raw.recv().await, None, "the Rejected is the last frame");
            message
        }
        other => panic!("expected Rejected {code:?}, got {other:?}"),
    }
}

/// Writes bytes the relay may refuse to read to the end: a write error is not the test's
/// business (the relay may rightly close first), what the relay answers is.
async fn send_regardless(raw: &mut RawClient, bytes: &[u8]) {
    let _ = within("a write", raw.stream.write_all(bytes)).await;
}

/// `n` bytes from a fixed seed (splitmix64): the same noise on every run.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

fn prefix(len: u32) -> [u8; 4] {
    len.to_be_bytes()
}

fn hello() -> bytes::Bytes {
    encode(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        credentials: &[],
        resume: &[],
    })
}

// ---------------------------------------------------------------------------------------------
// Length prefix 0
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_zero_length_frame_before_the_handshake_is_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send_bytes(&prefix(0)).await;
    rejected(&mut raw, RejectCode::Protocol).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_zero_length_frame_disconnects_with_a_protocol_error() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    raw.send_bytes(&prefix(0)).await;
    let reason = disconnected(&mut raw, DisconnectCode::Protocol).await;
    assert_eq!(
        reason,
        "malformed frame: a frame of 0 bytes: every frame holds at least a message tag"
    );
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Length prefix 1
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_one_byte_frame_of_a_tag_without_its_fields_disconnects_with_a_protocol_error() {
    let (handle, addr) = relay(Server::builder()).await;
    // Tag 1 (Join) and tag 3 (Broadcast) need a length field after the tag.
    for tag in [1u8, 3] {
        let mut raw = RawClient::greeted(addr).await;
        raw.send_bytes(&[0, 0, 0, 1, tag]).await;
        disconnected(&mut raw, DisconnectCode::Protocol).await;
    }
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_one_byte_frame_of_an_unknown_tag_disconnects_with_a_protocol_error() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    raw.send_bytes(&[0, 0, 0, 1, 0xEE]).await;
    let reason = disconnected(&mut raw, DisconnectCode::Protocol).await;
    assert_eq!(reason, "malformed frame: unknown client message tag 0xee");
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn one_byte_frames_before_the_handshake_are_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    // A truncated Hello, a truncated Join, an unknown tag.
    for tag in [0u8, 1, 0xEE] {
        let mut raw = RawClient::connect(addr).await;
        raw.send_bytes(&[0, 0, 0, 1, tag]).await;
        rejected(&mut raw, RejectCode::Protocol).await;
    }
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Length prefix over the frame limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_prefix_one_over_the_frame_limit_disconnects_with_payload_too_large() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    // The prefix alone is judged: no body follows.
    raw.send_bytes(&prefix(MAX_BODY as u32 + 1)).await;
    let reason = disconnected(&mut raw, DisconnectCode::PayloadTooLarge).await;
    assert_eq!(
        reason,
        format!(
            "frame of {} bytes exceeds the limit of {MAX_BODY} bytes",
            MAX_BODY + 1
        )
    );
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_prefix_of_u32_max_disconnects_with_payload_too_large_without_reserving_it() {
    let (handle, addr) = relay(Server::builder()).await;
    let data_before = proc_status("VmData:");
    let mut raw = RawClient::greeted(addr).await;
    raw.send_bytes(&prefix(u32::MAX)).await;
    raw.send_bytes(&[0xAB; 64]).await;
    let reason = disconnected(&mut raw, DisconnectCode::PayloadTooLarge).await;
    assert!(reason.contains(&u32::MAX.to_string()), "{reason}");
    // A reservation of the announced 4 GiB would show in the mapped data segment even
    // untouched (it would not in the resident set).
    let grown = proc_status("VmData:").saturating_sub(data_before);
    assert!(grown < 1 << 30, "data segment grew by {} MiB", grown >> 20);
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn oversized_prefixes_before_the_handshake_are_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    for len in [MAX_BODY as u32 + 1, u32::MAX] {
        let mut raw = RawClient::connect(addr).await;
        raw.send_bytes(&prefix(len)).await;
        let reason = rejected(&mut raw, RejectCode::Protocol).await;
        assert!(reason.contains(&len.to_string()), "{reason}");
    }
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_prefix_at_the_frame_limit_is_read_and_its_payload_judged() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    // A Broadcast whose body is exactly the limit: tag (1) + length (8) + data.
    let data = vec![7u8; MAX_BODY - 9];
    let frame = encode(&ClientFrame::Broadcast { data: &data });
    assert_eq!(frame.len(), 4 + MAX_BODY);
    send_regardless(&mut raw, &frame).await;
    // Not refused from its prefix: read whole, then refused for its payload.
    let reason = disconnected(&mut raw, DisconnectCode::PayloadTooLarge).await;
    assert!(reason.starts_with("payload of"), "{reason}");
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Truncated frames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_truncated_frame_then_close_is_a_leave_without_a_goodbye() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = relay(Server::builder().handler(recorder)).await;
    handle.create_room("r").unwrap();
    let mut observer = joined(addr, "r").await;
    let mut raw = RawClient::joined(addr, "r").await;
    let offender = match next_event(&mut observer).await {
        ServerEvent::PlayerJoined { client_id } => client_id,
        other => panic!("unexpected {other:?}"),
    };
    // A Broadcast announcing 100 bytes, 3 of them sent, then our side closed.
    raw.send_bytes(&[0, 0, 0, 100, 3, 99, 0]).await;
    raw.stream.shutdown().await.unwrap();
    // PROTOCOL.md §9: treated as a transport error, the client is gone: no goodbye.
    assert_eq!(raw.recv_skipping_pings().await, None);
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::PlayerLeft {
            client_id: offender
        }
    );
    wait_hook(&mut hooks, |h| *h == Hook::Leave(offender, "r".into())).await;
    assert_eq!(handle.room_client_count("r"), Some(1));
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_truncated_hello_then_close_is_dropped_quietly() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send_bytes(&hello()[..7]).await;
    raw.stream.shutdown().await.unwrap();
    assert_eq!(raw.recv().await, None);
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Random noise
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sixty_four_kib_of_noise_before_the_handshake_is_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    send_regardless(&mut raw, &noise(0x5EED_0001, 64 * 1024)).await;
    rejected(&mut raw, RejectCode::Protocol).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn sixty_four_kib_of_noise_after_the_handshake_disconnects() {
    let (handle, addr) = relay(Server::builder()).await;
    let data = noise(0x5EED_0002, 64 * 1024);
    let announced = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
    // What the relay must say depends on the first four bytes, the length prefix; the seed
    // is fixed, so this is known, but derived rather than hard-coded.
    let expected = if announced > MAX_BODY {
        DisconnectCode::PayloadTooLarge
    } else {
        assert!(
            4 + announced <= data.len(),
            "pick a seed whose frame completes"
        );
        DisconnectCode::Protocol
    };
    let mut raw = RawClient::greeted(addr).await;
    send_regardless(&mut raw, &data).await;
    disconnected(&mut raw, expected).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn noise_in_well_formed_frames_after_the_handshake_disconnects_with_a_protocol_error() {
    // Noise that gets past the length check: small valid prefixes, random bodies, 64 KiB in
    // all. The first body that does not decode ends the connection (the odd one that does
    // decode, a Leave say, is answered like any request).
    let (handle, addr) = relay(Server::builder()).await;
    let bodies = noise(0x5EED_0003, 64 * 1024);
    let mut stream = Vec::new();
    for chunk in bodies.chunks(61) {
        stream.extend_from_slice(&prefix(chunk.len() as u32));
        stream.extend_from_slice(chunk);
    }
    let mut raw = RawClient::greeted(addr).await;
    send_regardless(&mut raw, &stream).await;
    match raw
        .recv_skipping(|f| matches!(f, Frame::Ping | Frame::Pong | Frame::Error(_)))
        .await
    {
        Some(Frame::Disconnect { code, .. }) => assert_eq!(code, DisconnectCode::Protocol as u8),
        other => panic!("expected a protocol disconnect, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Unknown tags, invalid UTF-8, huge room names
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_tag_with_a_body_disconnects_with_a_protocol_error() {
    let (handle, addr) = relay(Server::builder()).await;
    // Tag 11 is a server message (Members), never a client one; 99 is nobody's.
    for tag in [11u8, 99] {
        let mut raw = RawClient::greeted(addr).await;
        let mut frame = prefix(1 + 16 + 8 + 2).to_vec();
        frame.push(tag);
        frame.extend_from_slice(&[0x11; 16]);
        frame.extend_from_slice(&2u64.to_le_bytes());
        frame.extend_from_slice(b"hi");
        raw.send_bytes(&frame).await;
        let reason = disconnected(&mut raw, DisconnectCode::Protocol).await;
        assert_eq!(
            reason,
            format!("malformed frame: unknown client message tag 0x{tag:02x}")
        );
    }
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn an_unknown_tag_before_the_handshake_is_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send_bytes(&[0, 0, 0, 3, 99, 1, 0]).await;
    rejected(&mut raw, RejectCode::Protocol).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_room_id_of_invalid_utf8_disconnects_with_a_protocol_error() {
    let (handle, addr) = relay(Server::builder()).await;
    handle.create_room("r").unwrap();
    let mut raw = RawClient::greeted(addr).await;
    // Join, room id of 4 bytes: "r", then a lone continuation byte, an overlong encoding
    // and an invalid lead byte.
    let mut frame = prefix(1 + 8 + 4).to_vec();
    frame.push(1);
    frame.extend_from_slice(&4u64.to_le_bytes());
    frame.extend_from_slice(&[b'r', 0x80, 0xC0, 0xFF]);
    raw.send_bytes(&frame).await;
    disconnected(&mut raw, DisconnectCode::Protocol).await;
    assert_eq!(handle.room_client_count("r"), Some(0));
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_one_mib_room_name_over_max_payload_disconnects_with_payload_too_large() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    let name = "n".repeat(1 << 20);
    send_regardless(
        &mut raw,
        &encode(&ClientFrame::Join {
            room_id: &name,
            data: &[],
        }),
    )
    .await;
    disconnected(&mut raw, DisconnectCode::PayloadTooLarge).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_one_mib_room_name_within_max_payload_is_refused_with_a_clipped_reason() {
    // Without the room-name policy (which would refuse the name by its length, without
    // quoting it), the refusal quotes the name: the reason must be clipped.
    let (handle, addr) = relay(Server::builder().max_payload(2 << 20).room_names(None)).await;
    let mut raw = RawClient::greeted(addr).await;
    let name = "é".repeat(1 << 19); // 1 MiB of two-byte characters
    raw.send(&ClientFrame::Join {
        room_id: &name,
        data: &[],
    })
    .await;
    match raw.recv_skipping_pings().await {
        Some(Frame::Error(message)) => {
            assert!(message.starts_with("room not found: éé"), "{message:.40}");
            assert!(message.len() <= MAX_REASON_LEN, "{} bytes", message.len());
        }
        other => panic!("expected an Error, got {:.200}", format!("{other:?}")),
    }
    // The connection stays.
    raw.send(&ClientFrame::Ping).await;
    assert_eq!(raw.recv().await, Some(Frame::Pong));
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Requests out of order
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_join_before_the_handshake_is_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    handle.create_room("r").unwrap();
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    })
    .await;
    rejected(&mut raw, RejectCode::Protocol).await;
    assert_eq!(handle.room_client_count("r"), Some(0));
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_broadcast_before_the_handshake_is_rejected() {
    let (handle, addr) = relay(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Broadcast { data: b"hi" }).await;
    rejected(&mut raw, RejectCode::Protocol).await;
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_broadcast_before_joining_gets_an_error_and_the_connection_stays() {
    let (handle, addr) = relay(Server::builder()).await;
    handle.create_room("r").unwrap();
    let mut raw = RawClient::greeted(addr).await;
    raw.send(&ClientFrame::Broadcast { data: b"hi" }).await;
    assert_eq!(
        raw.recv_skipping_pings().await,
        Some(Frame::Error("not in a room".into()))
    );
    // Still connected, and able to join.
    raw.send(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    })
    .await;
    assert_eq!(
        raw.recv_skipping_pings().await,
        Some(Frame::Joined {
            room_id: "r".into()
        })
    );
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Join/leave flood
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_thousand_join_leave_flips_in_one_burst_stay_consistent() {
    const FLIPS: usize = 10_000;
    let (recorder, mut hooks) = Recorder::new();
    // Queues big enough for the whole burst, so that nothing is dropped (dropping is allowed
    // and tested elsewhere) and every event can be accounted for.
    let (handle, addr) = relay(
        Server::builder()
            .handler(recorder)
            .channel_capacity(4 * FLIPS),
    )
    .await;
    handle.create_room("r").unwrap();
    let mut observer = joined(addr, "r").await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        credentials: &[],
        resume: &[],
    })
    .await;
    let flipper = match raw.recv().await {
        Some(Frame::Welcome { client_id, .. }) => client_id,
        other => panic!("expected a welcome, got {other:?}"),
    };

    let join = encode(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    });
    let leave = encode(&ClientFrame::Leave);
    let mut burst = Vec::with_capacity(FLIPS * (join.len() + leave.len()));
    for _ in 0..FLIPS {
        burst.extend_from_slice(&join);
        burst.extend_from_slice(&leave);
    }
    raw.send_bytes(&burst).await;

    // The flipper gets its answers, in order.
    for i in 0..FLIPS {
        for expected in [
            Frame::Joined {
                room_id: "r".into(),
            },
            Frame::Members {
                room_id: "r".into(),
                client_ids: vec![observer.client_id()],
                more: false,
            },
            Frame::Left {
                room_id: "r".into(),
            },
        ] {
            let got = raw.recv_skipping_pings().await;
            assert_eq!(got.as_ref(), Some(&expected), "flip {i}");
        }
    }
    // The observer sees every join paired with its leave, in order.
    for i in 0..FLIPS {
        for expected in [
            ServerEvent::PlayerJoined { client_id: flipper },
            ServerEvent::PlayerLeft { client_id: flipper },
        ] {
            assert_eq!(next_event(&mut observer).await, expected, "flip {i}");
        }
    }
    assert_eq!(handle.room_client_count("r"), Some(1));
    assert_eq!(handle.room_members("r"), Some(vec![observer.client_id()]));
    // on_join and on_leave fired once per flip; nothing was dropped.
    let (mut joins, mut leaves) = (0, 0);
    within("every hook call", async {
        while joins < FLIPS || leaves < FLIPS {
            match hooks.recv().await.expect("handler dropped") {
                Hook::Join(id, _) if id == flipper => joins += 1,
                Hook::Leave(id, _) if id == flipper => leaves += 1,
                Hook::Backpressure(..) => panic!("a frame was dropped"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!((joins, leaves), (FLIPS, FLIPS));

    // The flipper still works.
    raw.send(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    })
    .await;
    assert_eq!(
        raw.recv_skipping_pings().await,
        Some(Frame::Joined {
            room_id: "r".into()
        })
    );
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::PlayerJoined { client_id: flipper }
    );
    raw.send(&ClientFrame::Broadcast { data: b"dizzy" }).await;
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::Broadcast {
            sender_id: flipper,
            data: b"dizzy"[..].into()
        }
    );
    assert_eq!(handle.room_client_count("r"), Some(2));
    assert!(
        std::iter::from_fn(|| hooks.try_recv().ok()).all(|h| !matches!(h, Hook::Backpressure(..)))
    );
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Slowloris
// ---------------------------------------------------------------------------------------------

/// Sends `bytes` one at a time, one every `every`, until the relay says something or closes.
async fn drip(raw: &mut RawClient, bytes: &[u8], every: Duration) -> Option<Frame> {
    let mut tick = tokio::time::interval(every);
    let mut bytes = bytes.iter();
    loop {
        tokio::select! {
            frame = raw.recv() => return frame,
            _ = tick.tick() => {
                if let Some(byte) = bytes.next() {
                    // The relay may have closed already: its answer is what counts.
                    let _ = raw.stream.write_all(&[*byte]).await;
                }
            }
        }
    }
}

/// A relay with short timers for the slowloris cases: 1 s of idle time (and so of handshake
/// time, which is min(10 s, idle_timeout)), long enough for the fresh pair's exchange on a
/// loaded machine, short enough to keep the tests quick.
async fn impatient_relay() -> (ServerHandle, SocketAddr) {
    relay(
        Server::builder()
            .idle_timeout(Duration::from_secs(1))
            .ping_interval(Duration::from_secs(3600)),
    )
    .await
}

/// A frame announcing 200 bytes: dripped at 10 bytes a second it cannot complete within the
/// 1 s deadline, and the trickle must not extend the deadline.
fn slow_frame() -> Vec<u8> {
    let mut slow = prefix(200).to_vec();
    slow.extend_from_slice(&[0; 200]);
    slow
}

#[tokio::test]
async fn a_slowloris_handshake_is_rejected_when_the_handshake_time_is_up() {
    let (handle, addr) = impatient_relay().await;
    let mut raw = RawClient::connect(addr).await;
    match drip(&mut raw, &slow_frame(), Duration::from_millis(100)).await {
        Some(Frame::Rejected { code, message }) => {
            assert_eq!(code, RejectCode::Protocol as u8, "{message}");
            assert_eq!(message, "no hello in time");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
    still_serving(&handle, addr).await;
}

#[tokio::test]
async fn a_slowloris_frame_is_disconnected_by_the_idle_timeout() {
    let (handle, addr) = impatient_relay().await;
    let mut raw = RawClient::greeted(addr).await;
    // Only whole frames count as activity: bytes of a frame that never completes do not.
    match drip(&mut raw, &slow_frame(), Duration::from_millis(100)).await {
        Some(Frame::Disconnect { code, .. }) => {
            assert_eq!(code, DisconnectCode::IdleTimeout as u8)
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// A client that never reads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_never_reads_loses_frames_alone() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = relay(Server::builder().handler(recorder).channel_capacity(8)).await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut fast = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();
    let deaf = RawClient::joined(addr, "arena").await;
    for client in [&mut fast, &mut sender] {
        assert!(matches!(
            next_event(client).await,
            ServerEvent::PlayerJoined { .. }
        ));
    }
    // In lockstep with the fast client until the deaf one's socket buffers and queue are
    // full: the fast client gets every frame, in order, and the sender never waits.
    let mut data = vec![42u8; DEFAULT_MAX_PAYLOAD];
    let mut dropped = None;
    for i in 0..4096u32 {
        data[..4].copy_from_slice(&i.to_le_bytes());
        sender.broadcast(&data).await.unwrap();
        match next_event(&mut fast).await {
            ServerEvent::Broadcast { data, .. } => {
                assert_eq!(u32::from_le_bytes(data[..4].try_into().unwrap()), i)
            }
            other => panic!("unexpected {other:?}"),
        }
        dropped = std::iter::from_fn(|| hooks.try_recv().ok())
            .find(|h| matches!(h, Hook::Backpressure(..)));
        if dropped.is_some() {
            break;
        }
        assert_memory_bounded();
    }
    match dropped.expect("the deaf client's queue never filled") {
        Hook::Backpressure(_, room) => assert_eq!(room, "arena"),
        _ => unreachable!(),
    }
    // Once full, it stays full: more traffic is dropped for the deaf client, not queued.
    for _ in 0..64 {
        sender.broadcast(&data).await.unwrap();
        assert!(matches!(
            next_event(&mut fast).await,
            ServerEvent::Broadcast { .. }
        ));
    }
    let (fast_id, sender_id) = (fast.client_id(), sender.client_id());
    assert!(
        !std::iter::from_fn(|| hooks.try_recv().ok())
            .any(|h| matches!(h, Hook::Backpressure(id, _) if id == fast_id || id == sender_id)),
        "only the deaf client loses frames"
    );
    assert_memory_bounded();
    still_serving(&handle, addr).await;
    drop(deaf);
}

// ---------------------------------------------------------------------------------------------
// Connection flood
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_times_max_clients_at_once_refuses_the_excess_with_server_full() {
    const MAX: usize = 20;
    let (handle, addr) = relay(Server::builder().max_clients(MAX)).await;
    handle.create_room("crowd").unwrap();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..10 * MAX {
        attempts.spawn(Client::connect(addr));
    }
    let mut admitted = Vec::new();
    let mut full = 0;
    within("every connection attempt answered", async {
        while let Some(attempt) = attempts.join_next().await {
            match attempt.unwrap() {
                Ok(client) => admitted.push(client),
                Err(SyncError::ServerFull) => full += 1,
                Err(other) => panic!("expected Welcome or ServerFull, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(admitted.len(), MAX);
    assert_eq!(full, 9 * MAX);

    // The admitted ones still exchange messages.
    let mut members: Vec<Client> = Vec::new();
    for mut client in admitted {
        client.join("crowd").await.unwrap();
        expect_joined(&mut client, "crowd").await;
        for member in &mut members {
            assert_eq!(
                next_event(member).await,
                ServerEvent::PlayerJoined {
                    client_id: client.client_id()
                }
            );
        }
        members.push(client);
    }
    let speaker = members[0].client_id();
    members[0].broadcast(b"hear me").await.unwrap();
    for member in &mut members[1..] {
        assert_eq!(
            next_event(member).await,
            ServerEvent::Broadcast {
                sender_id: speaker,
                data: b"hear me"[..].into()
            }
        );
    }
    // Slots free up as they leave; the fresh pair waits for them.
    drop(members);
    still_serving(&handle, addr).await;
}

// ---------------------------------------------------------------------------------------------
// Panicking hooks (the spec: caught, the client disconnected with a reason, the relay lives)
// ---------------------------------------------------------------------------------------------

/// Panics once: in `on_join` into room "boom", or in `on_broadcast` of `b"boom"`.
struct Explosive {
    armed: AtomicBool,
}

impl Explosive {
    fn new() -> Self {
        Self {
            armed: AtomicBool::new(true),
        }
    }
}

impl ServerHandler for Explosive {
    fn on_join(&self, _: Uuid, room_id: &str, _: SocketAddr) -> bool {
        if room_id == "boom" && self.armed.swap(false, Ordering::SeqCst) {
            panic!("on_join blew up (deliberately)");
        }
        true
    }

    fn on_broadcast(&self, _: Uuid, _: &str, data: &[u8]) {
        if data == b"boom" && self.armed.swap(false, Ordering::SeqCst) {
            panic!("on_broadcast blew up (deliberately)");
        }
    }
}

#[tokio::test]
async fn a_panicking_on_join_disconnects_that_client_and_the_relay_lives_on() {
    let (handle, addr) = relay(Server::builder().handler(Explosive::new())).await;
    handle.create_room("boom").unwrap();
    handle.create_room("calm").unwrap();
    let mut bystander = joined(addr, "calm").await;
    let mut raw = RawClient::greeted(addr).await;
    raw.send(&ClientFrame::Join {
        room_id: "boom",
        data: &[],
    })
    .await;
    let outcome = raw.recv_skipping_pings().await;
    let after = if outcome.is_some() {
        raw.recv().await
    } else {
        None
    };

    assert_eq!(panics_here(), 1, "the hook's own panic, and no other");
    assert_eq!(handle.room_client_count("boom"), Some(0));
    // "boom" (its join turnstile included) still works, and the bystander is untouched.
    serves_a_fresh_pair(&handle, addr, "boom").await;
    serves_a_fresh_pair(&handle, addr, "calm").await;
    assert!(matches!(
        next_event(&mut bystander).await,
        ServerEvent::PlayerJoined { .. }
    ));
    assert_eq!(panics_here(), 1, "nothing else panicked");

    // The spec for the offender: told why, with the Internal code, as its last frame.
    assert!(
        matches!(&outcome, Some(Frame::Disconnect { code, .. }) if *code == DisconnectCode::Internal as u8),
        "expected Disconnect {{ code: Internal (6) }}, got {outcome:?}"
    );
    assert_eq!(after, None, "the Disconnect is the last frame");
}

#[tokio::test]
async fn a_panicking_on_broadcast_disconnects_that_client_and_the_relay_lives_on() {
    let (handle, addr) = relay(Server::builder().handler(Explosive::new())).await;
    handle.create_room("arena").unwrap();
    let mut observer = joined(addr, "arena").await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        credentials: &[],
        resume: &[],
    })
    .await;
    let offender = match raw.recv().await {
        Some(Frame::Welcome { client_id, .. }) => client_id,
        other => panic!("expected a welcome, got {other:?}"),
    };
    raw.send(&ClientFrame::Join {
        room_id: "arena",
        data: &[],
    })
    .await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Joined {
            room_id: "arena".into()
        })
    );
    assert!(matches!(raw.recv().await, Some(Frame::Members { .. })));
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::PlayerJoined {
            client_id: offender
        }
    );
    raw.send(&ClientFrame::Broadcast { data: b"boom" }).await;
    let outcome = raw.recv_skipping_pings().await;
    let after = if outcome.is_some() {
        raw.recv().await
    } else {
        None
    };

    assert_eq!(panics_here(), 1, "the hook's own panic, and no other");
    // The broadcast was relayed before the hook ran; then the offender left the room.
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::Broadcast {
            sender_id: offender,
            data: b"boom"[..].into()
        }
    );
    assert_eq!(
        next_event(&mut observer).await,
        ServerEvent::PlayerLeft {
            client_id: offender
        }
    );
    assert_eq!(handle.room_client_count("arena"), Some(1));
    serves_a_fresh_pair(&handle, addr, "arena").await;
    assert_eq!(panics_here(), 1, "nothing else panicked");

    assert!(
        matches!(&outcome, Some(Frame::Disconnect { code, .. }) if *code == DisconnectCode::Internal as u8),
        "expected Disconnect {{ code: Internal (6) }}, got {outcome:?}"
    );
    assert_eq!(after, None, "the Disconnect is the last frame");
}

/// Panics once, in `on_connect`.
struct ExplosiveDoor {
    armed: AtomicBool,
}

impl ServerHandler for ExplosiveDoor {
    fn on_connect(&self, _: SocketAddr) -> bool {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("on_connect blew up (deliberately)");
        }
        true
    }
}

#[tokio::test]
async fn a_panicking_on_connect_refuses_that_client_and_the_relay_keeps_accepting() {
    let door = ExplosiveDoor {
        armed: AtomicBool::new(true),
    };
    let (handle, addr) = relay(Server::builder().handler(door)).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send_bytes(&hello()).await;
    let outcome = raw.recv().await;
    assert_eq!(panics_here(), 1, "the hook's own panic, and no other");

    // on_connect runs on the accept loop: the relay must go on accepting.
    serves_a_fresh_pair(&handle, addr, "after").await;
    assert_eq!(panics_here(), 1, "nothing else panicked");

    // The spec for the offender: refused like a hook that says no.
    assert!(
        matches!(&outcome, Some(Frame::Rejected { code, .. }) if *code == RejectCode::ConnectRejected as u8),
        "expected Rejected {{ code: ConnectRejected (1) }}, got {outcome:?}"
    );
}
