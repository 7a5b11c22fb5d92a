//! The driver's rules, run over in-memory streams: liveness with paused time (so that hours of
//! pings run in milliseconds and every deadline is exact), and fairness between connections.

use super::driver::{PING_FRAME, PONG_FRAME};
use super::serve;
use crate::handler::SharedHandler;
use crate::protocol::{
    decode_frame, encode, ClientFrame, DisconnectCode, FrameReader, ServerFrame, PROTOCOL_VERSION,
};
use crate::server::config::Config;
use crate::server::Shared;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tower::layer::util::Identity;

#[test]
fn the_static_keepalive_frames_are_the_encoded_ones() {
    assert_eq!(&encode(&ServerFrame::Ping)[..], PING_FRAME);
    assert_eq!(&encode(&ServerFrame::Pong)[..], PONG_FRAME);
}

struct Peer {
    reader: ReadHalf<DuplexStream>,
    writer: WriteHalf<DuplexStream>,
    buf: BytesMut,
    frames: FrameReader,
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ping,
    Pong,
    Disconnect(u8),
    Other,
    Closed,
}

impl Peer {
    async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.writer.write_all(&encode(frame)).await.unwrap();
    }

    async fn next(&mut self) -> Seen {
        loop {
            if let Some(body) = self.frames.next_frame(&mut self.buf).unwrap() {
                return match decode_frame::<ServerFrame<'_>>(&body).unwrap() {
                    ServerFrame::Ping => Seen::Ping,
                    ServerFrame::Pong => Seen::Pong,
                    ServerFrame::Disconnect { code, .. } => Seen::Disconnect(code),
                    _ => Seen::Other,
                };
            }
            self.buf.reserve(1024);
            if self.reader.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return Seen::Closed;
            }
        }
    }
}

async fn connect(ping_interval: Duration, idle_timeout: Duration) -> Peer {
    let config = Config {
        ping_interval,
        idle_timeout,
        ..Config::default()
    };
    connect_to(&Arc::new(Shared::new(config, None)), 64 * 1024).await
}

/// A client of `shared` whose socket holds at most `socket_bytes` unread bytes.
async fn connect_to(shared: &Arc<Shared>, socket_bytes: usize) -> Peer {
    connect_with(shared, Arc::new(crate::handler::NoopHandler), socket_bytes).await
}

/// A client of `shared`, served with `handler`'s hooks.
async fn connect_with(shared: &Arc<Shared>, handler: SharedHandler, socket_bytes: usize) -> Peer {
    let (ours, theirs) = tokio::io::duplex(socket_bytes);
    let (reader, writer) = tokio::io::split(theirs);
    let peer_addr = SocketAddr::from(([127, 0, 0, 1], 9));
    tokio::spawn(serve(
        Arc::clone(shared),
        handler,
        Arc::new(Identity::new()),
        reader,
        (writer, None),
        peer_addr,
    ));
    let (reader, writer) = tokio::io::split(ours);
    let mut peer = Peer {
        reader,
        writer,
        buf: BytesMut::new(),
        frames: FrameReader::for_payload(1024),
    };
    peer.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        credentials: &[],
        resume: &[],
    })
    .await;
    assert_eq!(peer.next().await, Seen::Other, "welcome");
    peer
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_answers_pings_stays_connected_indefinitely_with_the_defaults() {
    let mut peer = connect(secs(13), secs(31)).await;
    let start = Instant::now();
    for _ in 0..300 {
        assert_eq!(peer.next().await, Seen::Ping);
        peer.send(&ClientFrame::Pong).await;
    }
    assert!(
        start.elapsed() >= secs(300 * 13),
        "an hour of virtual time went by"
    );
    peer.send(&ClientFrame::Ping).await;
    assert_eq!(peer.next().await, Seen::Pong, "still connected");
}

#[tokio::test(start_paused = true)]
async fn a_pong_counts_as_activity_for_the_idle_timeout() {
    // Without the pongs resetting it, a 15 s idle timeout would fire before the 2nd ping.
    let mut peer = connect(secs(10), secs(15)).await;
    for _ in 0..50 {
        assert_eq!(peer.next().await, Seen::Ping);
        peer.send(&ClientFrame::Pong).await;
    }
    peer.send(&ClientFrame::Ping).await;
    assert_eq!(peer.next().await, Seen::Pong);
}

#[tokio::test(start_paused = true)]
async fn any_frame_resets_the_idle_timeout_and_silence_ends_it() {
    let mut peer = connect(secs(3600), secs(15)).await;
    let start = Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(secs(10)).await;
        peer.send(&ClientFrame::Ping).await;
        assert_eq!(peer.next().await, Seen::Pong);
    }
    let silent_from = Instant::now();
    assert_eq!(
        peer.next().await,
        Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
    );
    assert!(silent_from.elapsed() >= secs(15));
    assert!(start.elapsed() >= secs(215));
    assert_eq!(peer.next().await, Seen::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_ping_ends_the_connection_at_the_next_tick() {
    let mut peer = connect(secs(13), secs(31)).await;
    let start = Instant::now();
    assert_eq!(peer.next().await, Seen::Ping);
    assert_eq!(
        peer.next().await,
        Seen::Disconnect(DisconnectCode::PingTimeout as u8)
    );
    assert_eq!(start.elapsed(), secs(26));
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_fires_on_its_own_when_it_comes_before_the_ping_deadline() {
    // ping_interval < idle_timeout, yet idle (31 s) comes before the ping deadline (40 s).
    let mut peer = connect(secs(20), secs(31)).await;
    let start = Instant::now();
    assert_eq!(peer.next().await, Seen::Ping);
    assert_eq!(
        peer.next().await,
        Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
    );
    assert_eq!(start.elapsed(), secs(31));
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_fires_when_pings_are_rarer_than_it() {
    let mut peer = connect(secs(60), secs(31)).await;
    assert_eq!(
        peer.next().await,
        Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
    );
}

#[tokio::test(start_paused = true)]
async fn broadcasts_without_pongs_still_end_in_a_ping_timeout() {
    let mut peer = connect(secs(10), secs(3600)).await;
    let outcome = loop {
        tokio::time::sleep(secs(1)).await;
        peer.send(&ClientFrame::Leave).await;
        match peer.next().await {
            Seen::Other | Seen::Ping => continue,
            other => break other,
        }
    };
    assert_eq!(outcome, Seen::Disconnect(DisconnectCode::PingTimeout as u8));
}

#[tokio::test(start_paused = true)]
async fn one_tick_with_a_full_queue_is_a_burst_not_a_timeout() {
    let config = Config {
        ping_interval: secs(10),
        idle_timeout: secs(3600),
        channel_capacity: 2,
        // Only the ping rule is under test here, not the write deadline.
        write_timeout: secs(3600),
        ..Config::default()
    };
    let shared = Arc::new(Shared::new(config, None));
    shared
        .registry
        .create("r", crate::room::RoomOptions::default());
    // `slow` has a tiny socket, joins, and stops reading for a while.
    let mut slow = connect_to(&shared, 64).await;
    slow.send(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    })
    .await;
    assert_eq!(slow.next().await, Seen::Other, "joined");
    let mut loud = connect_to(&shared, 64 * 1024).await;
    loud.send(&ClientFrame::Join {
        room_id: "r",
        data: &[],
    })
    .await;
    assert_eq!(loud.next().await, Seen::Other, "joined");
    // A burst: more than slow's socket and its 2-frame queue hold. The pauses let slow's
    // writer take what is queued and block on the full socket, so the queue fills behind.
    for _ in 0..10 {
        loud.send(&ClientFrame::Broadcast { data: &[1; 100] }).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The first tick (10 s) finds slow's queue full and skips its ping; then slow drains.
    tokio::time::sleep(secs(15)).await;
    // At the second tick (20 s) the queue has room: a ping, which slow answers.
    loop {
        match slow.next().await {
            Seen::Other => continue,
            Seen::Ping => break,
            other => panic!("slow was disconnected: {other:?}"),
        }
    }
    slow.send(&ClientFrame::Pong).await;
    slow.send(&ClientFrame::Ping).await;
    // (loud, which never answers pings, may leave meanwhile: skip its PlayerLeft.)
    loop {
        match slow.next().await {
            Seen::Other => continue,
            seen => {
                assert_eq!(seen, Seen::Pong, "still connected");
                break;
            }
        }
    }
}

/// Counts the broadcasts the pipeline served.
#[derive(Default)]
struct CountBroadcasts(AtomicUsize);

impl crate::handler::ServerHandler for CountBroadcasts {
    fn on_broadcast(&self, _client_id: uuid::Uuid, _room_id: &str, _data: &[u8]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// One runtime thread, a flooder's whole backlog already in its socket, and one frame from
/// another client behind it: that frame is served after a slice of the backlog, not after
/// all of it. Without the yield, the flooder's task reads and dispatches all 20,000 frames
/// in one poll (its reads alone would take 8 MB before tokio's budget stopped them).
#[tokio::test(flavor = "current_thread")]
async fn a_backlog_yields_the_thread_to_the_other_connections_between_slices() {
    const FLOOD: usize = 20_000;
    let shared = Arc::new(Shared::new(Config::default(), None));
    shared
        .registry
        .create("flood", crate::room::RoomOptions::default());
    let served = Arc::new(CountBroadcasts::default());
    let mut flooder = connect_with(&shared, served.clone(), 4 << 20).await;
    flooder
        .send(&ClientFrame::Join {
            room_id: "flood",
            data: &[],
        })
        .await;
    assert_eq!(flooder.next().await, Seen::Other, "joined");
    assert_eq!(flooder.next().await, Seen::Other, "members");
    let mut bystander = connect_to(&shared, 64 * 1024).await;

    // Both writes land before the relay's tasks run again: the flooder's backlog first.
    let backlog = encode(&ClientFrame::Broadcast { data: &[7] }).repeat(FLOOD);
    flooder.writer.write_all(&backlog).await.unwrap();
    bystander.send(&ClientFrame::Ping).await;
    assert_eq!(bystander.next().await, Seen::Pong);
    let before_pong = served.0.load(Ordering::Relaxed);
    assert!(
        before_pong < FLOOD,
        "the bystander waited for the flooder's whole backlog ({before_pong} frames)"
    );

    // Nothing was lost on the way: frames are served in order, so the flooder's own ping,
    // sent after its backlog, is answered once every broadcast of it went through.
    flooder.send(&ClientFrame::Ping).await;
    assert_eq!(flooder.next().await, Seen::Pong);
    assert_eq!(served.0.load(Ordering::Relaxed), FLOOD);
}

/// What an idle connection costs is mostly its two futures: only their waiting states are
/// inline, everything else is boxed while it runs (the handshake, a batch of frames, a ping,
/// a write, the goodbye). These bounds catch a change that inlines one of them again.
#[test]
fn an_idle_connection_s_futures_stay_small() {
    let shared = Arc::new(Shared::new(Config::default(), None));
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let (_ours, theirs) = tokio::io::duplex(64);
    let (reader, writer) = tokio::io::split(theirs);
    let connection = serve(
        Arc::clone(&shared),
        Arc::new(crate::handler::NoopHandler),
        Arc::new(Identity::new()),
        reader,
        (writer, None),
        peer,
    );
    assert!(std::mem::size_of_val(&connection) <= 1200);

    let (_ours, theirs) = tokio::io::duplex(64);
    let (_, writer) = tokio::io::split(theirs);
    let (outbox, inbox) = crate::outbox::outbox(8, 1024);
    let session = Arc::new(crate::session::Session::new(
        uuid::Uuid::nil(),
        peer,
        None,
        outbox,
    ));
    let (_farewell, farewell_rx) = tokio::sync::oneshot::channel();
    let writer = crate::server::writer::write_loop(writer, inbox, farewell_rx, shared, session);
    assert!(std::mem::size_of_val(&writer) <= 420);
}

/// Every connection's handshake is boxed while it runs, and freed after: small as it is,
/// its size still shows in an idle connection's memory (a larger block freed between
/// long-lived ones leaves a larger hole behind each connection). The claim of a held seat,
/// a path of its own, is boxed inside it, so that it adds nothing to this bound (it had
/// taken the handshake from 968 to 1,232 bytes, and 25 bytes of RSS per idle connection).
#[test]
fn the_handshake_s_future_stays_small() {
    let shared = Shared::new(Config::default(), None);
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let (_ours, theirs) = tokio::io::duplex(64);
    let (mut reader, mut writer) = tokio::io::split(theirs);
    let mut buf = BytesMut::new();
    let frames = crate::protocol::FrameReader::for_payload(1024);
    let handshake = super::handshake::handshake(
        &shared,
        &mut reader,
        &mut writer,
        &mut buf,
        &frames,
        uuid::Uuid::nil(),
        peer,
    );
    assert!(std::mem::size_of_val(&handshake) <= 900);
}
