//! Faults and lifecycle: clients that die mid-frame, vanish without a word or reset their
//! connection leave exactly once, and no slot leaks however connections end.

mod common;

use common::*;
use ghost_sync::protocol::{encode, ClientFrame};
use ghost_sync::{Client, DisconnectReason, Server, ServerEvent, Uuid};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;

/// Waits for `who`'s `on_disconnect`, and checks that its room got exactly one `PlayerLeft`
/// and `on_leave` fired exactly once.
async fn left_once(
    hooks: &mut UnboundedReceiver<Hook>,
    witness: &mut UnboundedReceiver<ServerEvent>,
    who: Uuid,
) -> DisconnectReason {
    let mut leaves = 0;
    let reason = within("the disconnect", async {
        loop {
            match hooks.recv().await.expect("handler alive") {
                Hook::Leave(id, _) if id == who => leaves += 1,
                Hook::Disconnect(id, reason) if id == who => return reason,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(leaves, 1, "on_leave once");
    assert_eq!(
        within("PlayerLeft", witness.recv()).await,
        Some(ServerEvent::PlayerLeft { client_id: who })
    );
    assert!(witness.try_recv().is_err(), "a second PlayerLeft");
    while let Ok(hook) = hooks.try_recv() {
        assert!(
            !matches!(hook, Hook::Leave(id, _) if id == who),
            "a second on_leave"
        );
    }
    reason
}

/// A relay with short pings, and a witness in room "arena" whose events arrive on a channel
/// (read continuously, so that it answers its own pings).
async fn server() -> (
    ghost_sync::ServerHandle,
    std::net::SocketAddr,
    UnboundedReceiver<Hook>,
    UnboundedReceiver<ServerEvent>,
    Uuid,
) {
    let (make, hooks) = Recorder::reentrant();
    let (handle, addr) = start(
        Server::builder()
            .handler_with(make)
            .ping_interval(Duration::from_millis(100)),
    )
    .await;
    handle.create_room("arena").unwrap();
    let mut witness = joined(addr, "arena").await;
    let witness_id = witness.client_id();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(event)) = witness.recv().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    (handle, addr, hooks, events, witness_id)
}

/// Sends a RST instead of a FIN when the stream is dropped.
fn reset_on_drop(stream: &tokio::net::TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

fn raw_id(handle: &ghost_sync::ServerHandle, not: Uuid) -> Uuid {
    handle
        .clients()
        .into_iter()
        .map(|c| c.id)
        .find(|&id| id != not)
        .expect("the raw client is listed")
}

#[tokio::test]
async fn a_client_killed_in_the_middle_of_a_frame_leaves_once() {
    let (handle, addr, mut hooks, mut witness, witness_id) = server().await;
    let mut raw = RawClient::joined(addr, "arena").await;
    let id = raw_id(&handle, witness_id);
    assert_eq!(
        within("PlayerJoined", witness.recv()).await,
        Some(ServerEvent::PlayerJoined { client_id: id })
    );
    let frame = encode(&ClientFrame::Broadcast { data: &[7; 1000] });
    raw.send_bytes(&frame[..500]).await;
    drop(raw);
    let reason = left_once(&mut hooks, &mut witness, id).await;
    assert!(
        matches!(reason, DisconnectReason::Transport(_)),
        "{reason:?}"
    );
    assert_eq!(handle.room_client_count("arena"), Some(1));
}

#[tokio::test]
async fn a_client_that_vanishes_without_a_word_is_caught_by_the_ping_timeout() {
    // A peer whose machine died sends no FIN: the connection stays open and silent. A raw
    // client that never answers (nor reads) looks exactly the same to the relay.
    let (handle, addr, mut hooks, mut witness, witness_id) = server().await;
    let raw = RawClient::joined(addr, "arena").await;
    let id = raw_id(&handle, witness_id);
    assert_eq!(
        within("PlayerJoined", witness.recv()).await,
        Some(ServerEvent::PlayerJoined { client_id: id })
    );
    let reason = left_once(&mut hooks, &mut witness, id).await;
    assert_eq!(reason, DisconnectReason::PingTimeout);
    drop(raw);
}

#[tokio::test]
async fn a_reset_connection_leaves_once() {
    let (handle, addr, mut hooks, mut witness, witness_id) = server().await;
    let raw = RawClient::joined(addr, "arena").await;
    let id = raw_id(&handle, witness_id);
    assert_eq!(
        within("PlayerJoined", witness.recv()).await,
        Some(ServerEvent::PlayerJoined { client_id: id })
    );
    reset_on_drop(&raw.stream);
    drop(raw);
    let reason = left_once(&mut hooks, &mut witness, id).await;
    assert!(
        matches!(
            reason,
            DisconnectReason::Transport(_) | DisconnectReason::ClientClosed
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn no_slot_leaks_after_ten_times_max_clients_connections_end_every_way() {
    const MAX: usize = 20;
    let (handle, addr) = start(Server::builder().max_clients(MAX)).await;
    handle.create_room("arena").unwrap();
    for round in 0..10 * MAX {
        match round % 5 {
            // Clean: joins, then closes.
            0 => drop(joined(addr, "arena").await),
            // Reset.
            1 => {
                let raw = RawClient::joined(addr, "arena").await;
                reset_on_drop(&raw.stream);
                drop(raw);
            }
            // Mid-frame.
            2 => {
                let mut raw = RawClient::greeted(addr).await;
                raw.send_bytes(&[0, 0, 1, 0, 3]).await;
                drop(raw);
            }
            // Before the handshake.
            3 => {
                let mut raw = RawClient::connect(addr).await;
                raw.stream.write_all(&[0, 0]).await.unwrap();
                drop(raw);
            }
            // Kicked.
            _ => {
                let mut client = joined(addr, "arena").await;
                handle.kick(client.client_id(), "next").unwrap();
                let _ = next_error(&mut client).await;
            }
        }
    }
    // Every slot comes back once the server has seen every close.
    let fresh = within("max_clients fresh clients", async {
        loop {
            let mut fresh = Vec::new();
            for _ in 0..MAX {
                match Client::connect(addr).await {
                    Ok(client) => fresh.push(client),
                    Err(_) => break,
                }
            }
            if fresh.len() == MAX {
                return fresh;
            }
            drop(fresh);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(fresh.len(), MAX);
    assert_eq!(handle.client_count(), MAX);
    assert_eq!(handle.room_client_count("arena"), Some(0));
}
