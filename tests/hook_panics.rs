//! A panicking hook is a bug in the game backend, not a reason for the relay to fall over:
//! the client involved is disconnected with an internal error (or refused, at connect), and
//! everyone else is served on.

mod common;

use common::*;
use ghost_sync::{Client, DisconnectReason, Server, ServerEvent, ServerHandler, SyncError, Uuid};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Panics on purpose: joining "boom", broadcasting "boom", the second connection, and every
/// leave, backpressure and disconnect. Reports disconnect reasons before panicking.
struct Panicky {
    connects: AtomicUsize,
    reasons: mpsc::UnboundedSender<(Uuid, DisconnectReason)>,
}

impl ServerHandler for Panicky {
    fn on_connect(&self, _addr: SocketAddr) -> bool {
        if self.connects.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("on_connect bug");
        }
        true
    }
    fn on_join(&self, _id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        assert_ne!(room_id, "boom", "on_join bug");
        true
    }
    fn on_broadcast(&self, _id: Uuid, _room_id: &str, data: &[u8]) {
        assert_ne!(data, b"boom", "on_broadcast bug");
    }
    fn on_leave(&self, _id: Uuid, _room_id: &str) {
        panic!("on_leave bug");
    }
    fn on_backpressure(&self, _id: Uuid, _room_id: &str) {
        panic!("on_backpressure bug");
    }
    fn on_disconnect(&self, id: Uuid, reason: &DisconnectReason) {
        let _ = self.reasons.send((id, reason.clone()));
        panic!("on_disconnect bug");
    }
    fn on_room_create(&self, _room_id: &str) {
        panic!("on_room_create bug");
    }
}

async fn panicky_server() -> (
    ghost_sync::ServerHandle,
    SocketAddr,
    mpsc::UnboundedReceiver<(Uuid, DisconnectReason)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = Panicky {
        connects: AtomicUsize::new(0),
        reasons: tx,
    };
    let (handle, addr) = start(Server::builder().handler(handler)).await;
    // on_room_create panics: the room exists all the same.
    handle.create_room("arena").unwrap();
    handle.create_room("boom").unwrap();
    (handle, addr, rx)
}

/// The relay still serves: a fresh pair joins and exchanges a message.
async fn still_serving(addr: SocketAddr) {
    let mut pair = join_all(addr, "arena", 2).await;
    let mut b = pair.pop().unwrap();
    let mut a = pair.pop().unwrap();
    a.broadcast(b"alive").await.unwrap();
    assert!(matches!(
        next_event(&mut b).await,
        ServerEvent::Broadcast { data, .. } if &data[..] == b"alive"
    ));
}

#[tokio::test]
async fn a_panicking_join_hook_disconnects_that_client_only() {
    let (_handle, addr, mut reasons) = panicky_server().await;
    let _first = Client::connect(addr).await.unwrap(); // connect #1
                                                       // Connect #2 panics in on_connect: refused, not crashed.
    assert!(matches!(
        Client::connect(addr).await,
        Err(SyncError::ConnectRejected(_))
    ));
    let mut victim = Client::connect(addr).await.unwrap();
    let victim_id = victim.client_id();
    victim.join("boom").await.unwrap();
    match next_error(&mut victim).await {
        SyncError::Disconnected(reason) => assert!(reason.contains("on_join"), "{reason}"),
        other => panic!("expected an internal disconnect, got {other:?}"),
    }
    let (id, reason) = within("on_disconnect", reasons.recv()).await.unwrap();
    assert_eq!(id, victim_id);
    assert!(matches!(reason, DisconnectReason::Internal(_)));
    still_serving(addr).await;
}

#[tokio::test]
async fn a_panicking_broadcast_hook_disconnects_the_sender_and_the_room_lives_on() {
    let (handle, addr, _reasons) = panicky_server().await;
    let _burn = Client::connect(addr).await; // connects #1 and #2 (the refused one)
    let _burn = Client::connect(addr).await;
    let mut room = join_all(addr, "arena", 2).await;
    let mut listener = room.pop().unwrap();
    let mut sender = room.pop().unwrap();
    sender.broadcast(b"boom").await.unwrap();
    // The frame was relayed before the hook ran; then the sender is disconnected.
    assert!(matches!(
        next_event(&mut listener).await,
        ServerEvent::Broadcast { data, .. } if &data[..] == b"boom"
    ));
    assert!(matches!(
        next_error(&mut sender).await,
        SyncError::Disconnected(_)
    ));
    // on_leave panicked for the sender: it left all the same.
    assert_eq!(
        next_event(&mut listener).await,
        ServerEvent::PlayerLeft {
            client_id: sender.client_id()
        }
    );
    assert_eq!(handle.room_client_count("arena"), Some(1));
    still_serving(addr).await;
}
