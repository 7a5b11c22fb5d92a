//! The client's side of a held seat, over loopback: a `Client` with a `ReconnectPolicy` takes
//! its seat back by itself after a drop, with the frames queued meanwhile and then
//! `ServerEvent::Resumed`; it gives up with the relay's reason when the seat is gone, returns
//! the drop's error when the relay cannot be reached, and never reconnects after a kick.

mod common;

use common::{start, within};
use ghost_sync::{
    Client, DisconnectReason, ReconnectPolicy, Server, ServerEvent, ServerHandler, SyncError, Uuid,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Reports drops and ends of seats.
struct Seats(mpsc::UnboundedSender<(&'static str, Uuid)>);

impl ServerHandler for Seats {
    fn on_drop(&self, client_id: Uuid, _reason: &DisconnectReason) {
        let _ = self.0.send(("drop", client_id));
    }

    fn on_disconnect(&self, client_id: Uuid, _reason: &DisconnectReason) {
        let _ = self.0.send(("disconnect", client_id));
    }
}

async fn wait(seats: &mut mpsc::UnboundedReceiver<(&'static str, Uuid)>, what: &str, id: Uuid) {
    within(what, async {
        while let Some((hook, who)) = seats.recv().await {
            if hook == what && who == id {
                return;
            }
        }
    })
    .await
}

fn policy() -> ReconnectPolicy {
    ReconnectPolicy::new(3).backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// A relay holding seats for `window`, room "arena", and alice (who reconnects) and bob in it.
async fn setup(
    window: Duration,
) -> (
    ghost_sync::ServerHandle,
    Client,
    Client,
    mpsc::UnboundedReceiver<(&'static str, Uuid)>,
) {
    let (tx, seats) = mpsc::unbounded_channel();
    let (handle, addr) = start(Server::builder().resume_window(window).handler(Seats(tx))).await;
    handle.create_room("arena").unwrap();
    let mut alice = Client::builder()
        .reconnect(policy())
        .connect(addr)
        .await
        .unwrap();
    alice.join("arena").await.unwrap();
    common::expect_joined(&mut alice, "arena").await;
    let mut bob = common::joined(addr, "arena").await;
    let _ = &mut bob;
    assert!(matches!(
        within("bob's arrival", alice.recv()).await,
        Ok(Some(ServerEvent::PlayerJoined { .. }))
    ));
    (handle, alice, bob, seats)
}

#[tokio::test]
async fn after_a_drop_recv_goes_on_with_what_was_queued_then_resumed() {
    let (_handle, mut alice, mut bob, mut seats) = setup(Duration::from_secs(30)).await;
    let id = alice.client_id();
    alice.simulate_connection_loss();
    wait(&mut seats, "drop", id).await;
    // While alice is away: a send fails at once, and nothing is kept for later.
    assert!(matches!(
        alice.broadcast(b"lost").await,
        Err(SyncError::Reconnecting)
    ));
    for n in 0..3u8 {
        bob.broadcast(&[n]).await.unwrap();
    }
    for n in 0..3u8 {
        match within("a queued frame", alice.recv()).await {
            Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
                assert_eq!((sender_id, &data[..]), (bob.client_id(), &[n][..]));
            }
            other => panic!("expected the frame queued meanwhile, got {other:?}"),
        }
    }
    assert_eq!(
        within("Resumed", alice.recv()).await.unwrap(),
        Some(ServerEvent::Resumed { missed: 0 })
    );
    assert_eq!(alice.client_id(), id, "the same id");
    // Still in the room, and bob never saw alice leave.
    alice.broadcast(b"back").await.unwrap();
    match within("alice's frame", bob.recv()).await {
        Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
            assert_eq!((sender_id, &data[..]), (id, &b"back"[..]));
        }
        other => panic!("expected alice's frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_seat_gone_meanwhile_ends_recv_with_the_relays_reason() {
    let (_handle, mut alice, _bob, mut seats) = setup(Duration::from_millis(200)).await;
    let id = alice.client_id();
    alice.simulate_connection_loss();
    wait(&mut seats, "drop", id).await;
    // The window runs out: the seat ends (on_disconnect fires), then alice tries.
    wait(&mut seats, "disconnect", id).await;
    match within("the refusal", alice.recv()).await {
        Err(SyncError::ResumeFailed(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("expected ResumeFailed, got {other:?}"),
    }
    assert!(within("the end", alice.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn with_the_relay_gone_the_attempts_run_out_and_recv_ends() {
    let (handle, mut alice, _bob, mut seats) = setup(Duration::from_secs(30)).await;
    let id = alice.client_id();
    alice.simulate_connection_loss();
    wait(&mut seats, "drop", id).await;
    handle.shutdown().await;
    // Three attempts at a closed port, then the drop itself: a clean end.
    let ended = within("the end", alice.recv()).await;
    assert!(
        matches!(ended, Ok(None) | Err(SyncError::ConnectionReset)),
        "{ended:?}"
    );
}

#[tokio::test]
async fn a_kicked_client_does_not_reconnect() {
    let (handle, mut alice, _bob, _seats) = setup(Duration::from_secs(30)).await;
    let before = handle.stats().connections_total;
    handle.kick(alice.client_id(), "cheating").unwrap();
    match within("the kick", alice.recv()).await {
        Err(SyncError::Kicked(why)) => assert_eq!(why, "cheating"),
        other => panic!("expected the kick, got {other:?}"),
    }
    assert!(within("the end", alice.recv()).await.unwrap().is_none());
    assert_eq!(
        handle.stats().connections_total,
        before,
        "no new connection"
    );
}

/// A TCP proxy in front of the relay whose connections so far can be frozen: their sockets
/// stay open, but nothing passes any more (a link gone half-open). Later connections pass.
struct Proxy {
    addr: std::net::SocketAddr,
    made: Arc<AtomicU64>,
    frozen_upto: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(relay: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let made = Arc::new(AtomicU64::new(0));
        let frozen_upto = Arc::new(AtomicU64::new(0));
        let (count, frozen) = (Arc::clone(&made), Arc::clone(&frozen_upto));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = tokio::net::TcpStream::connect(relay).await else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::AcqRel) + 1;
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::spawn(pipe(cr, uw, n, Arc::clone(&frozen)));
                tokio::spawn(pipe(ur, cw, n, Arc::clone(&frozen)));
            }
        });
        Self {
            addr,
            made,
            frozen_upto,
        }
    }

    /// Freezes every connection made so far.
    fn freeze(&self) {
        self.frozen_upto
            .store(self.made.load(Ordering::Acquire), Ordering::Release);
    }
}

/// Copies one direction of proxied connection `n`, until it is frozen (then it holds both
/// sockets open and passes nothing) or either side ends.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    n: u64,
    frozen_upto: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    while let Ok(got @ 1..) = from.read(&mut buf).await {
        if n <= frozen_upto.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..got]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_link_gone_silent_is_resumed_without_waiting_for_the_socket_to_fail() {
    let (tx, mut seats) = mpsc::unbounded_channel();
    let (handle, relay_addr) = start(
        Server::builder()
            .resume_window(Duration::from_secs(30))
            .ping_interval(Duration::from_millis(200))
            .handler(Seats(tx)),
    )
    .await;
    handle.create_room("arena").unwrap();
    let proxy = Proxy::start(relay_addr).await;
    let mut alice = Client::builder()
        .reconnect(policy())
        .connect(proxy.addr)
        .await
        .unwrap();
    alice.join("arena").await.unwrap();
    common::expect_joined(&mut alice, "arena").await;
    let id = alice.client_id();
    // The link freezes: no byte passes either way, yet no socket closes.
    proxy.freeze();
    // No frame for twice the ping interval: alice's recv reconnects by itself, through a
    // connection that passes, and takes the seat back (over the relay's own copy of the
    // half-open connection, or after its ping timeout held the seat).
    loop {
        match within("the resume", alice.recv()).await {
            Ok(Some(ServerEvent::Resumed { .. })) => break,
            Ok(Some(_)) => continue,
            other => panic!("expected the resume, got {other:?}"),
        }
    }
    assert_eq!(alice.client_id(), id);
    wait(&mut seats, "drop", id).await;
    // The resumed link works.
    let mut bob = common::joined(relay_addr, "arena").await;
    alice.broadcast(b"still here").await.unwrap();
    match within("alice's frame", bob.recv()).await {
        Ok(Some(ServerEvent::Broadcast { sender_id, .. })) => assert_eq!(sender_id, id),
        other => panic!("expected alice's frame, got {other:?}"),
    }
}
