//! Faults and lifecycle: clients that die mid-frame, vanish without a word or reset their
//! connection leave exactly once, and no slot leaks however connections end.

mod common;

use common::*;
use ghost_sync::protocol::{encode, ClientFrame};
use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{DisconnectReason, Server, Uuid};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Waits for `who`'s `on_disconnect`, and checks that its room got exactly one `PlayerLeft`
/// and `on_leave` fired exactly once.
async fn left_once(
    hooks: &mut UnboundedReceiver<Hook>,
    witness: &mut TestClient,
    who: Uuid,
) -> DisconnectReason {
    witness.expect_member_left(who).await;
    let mut leaves = 0;
    let disconnect = within("the disconnect", async {
        loop {
            match hooks.recv().await.expect("handler alive") {
                Hook::Leave(id, _) if id == who => leaves += 1,
                Hook::Disconnect(id, reason) if id == who => return reason,
                _ => {}
            }
        }
    });
    // The relay may give a client that does not read its farewell two seconds: the witness
    // waits meanwhile, answering its pings, and fails on a second PlayerLeft.
    let reason = witness.expect_no_event_while(disconnect).await;
    assert_eq!(leaves, 1, "on_leave once");
    // A second PlayerLeft would be on its way before the pong.
    witness.expect_round_trip().await;
    while let Ok(hook) = hooks.try_recv() {
        assert!(
            !matches!(hook, Hook::Leave(id, _) if id == who),
            "a second on_leave"
        );
    }
    reason
}

/// A relay with short pings, and a witness in room "arena" (it answers pings only while it
/// waits in an expectation: the tests keep it waiting while the relay works).
async fn server() -> (TestRelay, UnboundedReceiver<Hook>, TestClient) {
    let (make, hooks) = Recorder::reentrant();
    let relay = TestRelay::start(
        Server::builder()
            .handler_with(make)
            .ping_interval(Duration::from_millis(100)),
    )
    .await;
    relay.create_room("arena");
    let witness = relay.joined("arena").await;
    (relay, hooks, witness)
}

#[tokio::test]
async fn a_client_killed_in_the_middle_of_a_frame_leaves_once() {
    let (relay, mut hooks, mut witness) = server().await;
    let mut victim = relay.joined("arena").await;
    let id = victim.client_id();
    witness.expect_member_joined(id).await;
    let frame = encode(&ClientFrame::Broadcast { data: &[7; 1000] });
    victim.send_raw(&frame[..500]).await;
    drop(victim);
    let reason = left_once(&mut hooks, &mut witness, id).await;
    assert!(
        matches!(reason, DisconnectReason::Transport(_)),
        "{reason:?}"
    );
    assert_eq!(relay.handle().room_client_count("arena"), Some(1));
}

#[tokio::test]
async fn a_client_that_vanishes_without_a_word_is_caught_by_the_ping_timeout() {
    // A peer whose machine died sends no FIN: the connection stays open and silent. A client
    // that never answers (nor reads) looks exactly the same to the relay.
    let (relay, mut hooks, mut witness) = server().await;
    let victim = relay.joined("arena").await;
    let id = victim.client_id();
    let frozen = victim.stop_reading();
    witness.expect_member_joined(id).await;
    let reason = left_once(&mut hooks, &mut witness, id).await;
    assert_eq!(reason, DisconnectReason::PingTimeout);
    drop(frozen);
}

#[tokio::test]
async fn a_reset_connection_leaves_once() {
    let (relay, mut hooks, mut witness) = server().await;
    let victim = relay.joined("arena").await;
    let id = victim.client_id();
    witness.expect_member_joined(id).await;
    victim.sever();
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
    let relay = TestRelay::start(Server::builder().max_clients(MAX)).await;
    relay.create_room("arena");
    for round in 0..10 * MAX {
        match round % 5 {
            // Clean: joins, then closes.
            0 => drop(relay.joined("arena").await),
            // Reset.
            1 => relay.joined("arena").await.sever(),
            // Mid-frame.
            2 => {
                let mut client = relay.client().await;
                client.send_raw(&[0, 0, 1, 0, 3]).await;
                drop(client);
            }
            // Before the handshake.
            3 => {
                let mut stream = tokio::net::TcpStream::connect(relay.addr()).await.unwrap();
                tokio::io::AsyncWriteExt::write_all(&mut stream, &[0, 0])
                    .await
                    .unwrap();
                drop(stream);
            }
            // Kicked.
            _ => {
                let mut client = relay.joined("arena").await;
                relay.handle().kick(client.client_id(), "next").unwrap();
                client
                    .expect_disconnect(ghost_sync::DisconnectKind::Kicked)
                    .await;
            }
        }
    }
    // Every slot comes back once the server has seen every close.
    let fresh = within("max_clients fresh clients", async {
        loop {
            let mut fresh = Vec::new();
            for _ in 0..MAX {
                match ghost_sync::Client::connect(relay.addr()).await {
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
    assert_eq!(relay.handle().client_count(), MAX);
    assert_eq!(relay.handle().room_client_count("arena"), Some(0));
}
