//! The client's side of a held seat, over loopback: a `Client` with a `ReconnectPolicy` takes
//! its seat back by itself after a drop, with the frames queued meanwhile and then
//! `ServerEvent::Resumed`; it gives up with the relay's reason when the seat is gone, returns
//! the drop's error when the relay cannot be reached, and never reconnects after a kick.

mod common;

use common::{start, within};
use ghost_sync::{
    Client, DisconnectReason, ReconnectPolicy, Server, ServerEvent, ServerHandler, SyncError, Uuid,
};
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
