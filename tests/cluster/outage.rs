//! The broker goes away and comes back: local rooms keep working, cross-relay traffic is
//! dropped and counted meanwhile, and the relays reconnect, resubscribe and write their
//! state back, after which cross-relay traffic flows again.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{Client, ServerEvent};
use std::time::Duration;

/// Reads until a broadcast with `data` arrives (skipping presence and other broadcasts);
/// `false` if none within `wait`.
async fn got(client: &mut Client, data: &[u8], wait: Duration) -> bool {
    tokio::time::timeout(wait, async {
        loop {
            match client.recv().await {
                Ok(Some(ServerEvent::Broadcast { data: d, .. })) if d == data => return true,
                Ok(Some(_)) => continue,
                other => panic!("the connection ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// "lobby" with two members on r0 (`a`, `b`) and one on r1 (`far`), seen by r0.
async fn two_here_one_there(relays: &[Relay]) -> [Client; 3] {
    relays[0].handle.create_room("lobby").unwrap();
    eventually("the room is known", || {
        relays[1].handle.room_exists("lobby")
    })
    .await;
    let mut clients = Vec::new();
    for relay in [&relays[0], &relays[0], &relays[1]] {
        let mut client = connect(relay.addr).await;
        join(&mut client, "lobby").await;
        clients.push(client);
    }
    eventually("r0 sees the far member", || {
        relays[0].handle.room_client_count("lobby") == Some(3)
    })
    .await;
    clients.try_into().unwrap_or_else(|_| unreachable!())
}

#[tokio::test]
async fn local_rooms_survive_a_broker_restart_and_cross_relay_traffic_resumes() {
    let mut broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("outage"), 3).await;
    let [mut a, mut b, mut far] = two_here_one_there(&relays).await;
    a.broadcast(b"before").await.unwrap();
    assert!(got(&mut far, b"before", PATIENCE).await);

    broker.kill();
    eventually("r0 notices the broker is gone", || {
        relays[0].handle.stats().broker_disconnects > 0
    })
    .await;
    // Meanwhile the members on one relay still hear each other…
    a.broadcast(b"during").await.unwrap();
    assert!(
        got(&mut b, b"during", PATIENCE).await,
        "local delivery goes on"
    );
    // …and what could not cross is counted, not silently gone.
    eventually("the lost frame is counted", || {
        relays[0].handle.stats().broker_dropped > 0
    })
    .await;

    broker.restart();
    // Each relay reconnects, resubscribes and writes its rooms and members back.
    let mut n = 0u32;
    loop {
        n += 1;
        let line = format!("after-{n}");
        a.broadcast(line.as_bytes()).await.unwrap();
        if got(&mut far, line.as_bytes(), Duration::from_millis(500)).await {
            break;
        }
        assert!(n < 40, "cross-relay traffic did not resume");
    }
    // The registry is whole again: a new relay sees the room and its three members.
    let late = relay(&broker.url(), &relays_prefix(&relays[0]), "late").await;
    eventually("the restored registry counts everyone", || {
        late.handle.room_client_count("lobby") == Some(3)
    })
    .await;
    stop(relays).await;
    stop(vec![late]).await;
}

fn relays_prefix(relay: &Relay) -> String {
    relay.prefix.clone()
}

#[tokio::test]
async fn a_stalled_broker_never_stalls_local_delivery() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("stall"), 2).await;
    let [a, mut b, _far] = two_here_one_there(&relays).await;

    // Frozen, not gone: its socket stays open and answers nothing. Every frame for the far
    // member now waits in r0's queue toward the broker, which must not grow without bound.
    broker.pause();
    let (mut tx, _rx) = a.split();
    let frame = vec![7u8; 32 * 1024];
    // 3,000 × 32 KiB: more than the 64 MiB the queue toward the broker may hold. b's own
    // queue may drop some (it is 1 MiB); what matters is that frames keep reaching it.
    for _ in 0..3_000 {
        within("a local send", tx.broadcast(&frame)).await.unwrap();
    }
    // A last frame, repeated until b has it: b gets it while the broker is still frozen.
    let done = tokio::spawn(async move {
        loop {
            match b.recv().await {
                Ok(Some(ServerEvent::Broadcast { data, .. })) if data == b"end"[..] => return b,
                Ok(Some(_)) => {}
                other => panic!("b's connection ended: {other:?}"),
            }
        }
    });
    let b = within("local delivery while the broker is frozen", async {
        loop {
            tx.broadcast(b"end").await.unwrap();
            if done.is_finished() {
                return done.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(b);
    assert!(
        relays[0].handle.stats().broker_dropped > 0,
        "the overflow was dropped and counted"
    );
    broker.resume();
    stop(relays).await;
}
