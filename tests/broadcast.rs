//! Broadcast end to end: who receives, who does not, the hook, and payload limits.

mod common;

use common::*;
use ghost_sync::testing::TestRelay;
use ghost_sync::{DisconnectKind, DisconnectReason, Server, ServerEvent, SyncError};

#[tokio::test]
async fn a_broadcast_reaches_every_other_member_and_nobody_else() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("red");
    relay.create_room("blue");
    let mut red = relay.join_all("red", 3).await;
    let mut blue = relay.joined("blue").await;

    red[0].broadcast(b"attack").await;
    let sender = red[0].client_id();
    for member in red.iter_mut().skip(1) {
        member.expect_broadcast(sender, b"attack").await;
    }
    assert_eq!(
        wait_hook(&mut hooks, |h| matches!(h, Hook::Broadcast(..))).await,
        Hook::Broadcast(sender, "red".into(), b"attack".to_vec())
    );

    // The next thing the sender sees is this marker: it never got its own "attack".
    red[1].broadcast(b"marker").await;
    let marker_from = red[1].client_id();
    red[0].expect_broadcast(marker_from, b"marker").await;
    // blue is alone in its room: its own broadcast comes back to nobody, and red's traffic,
    // relayed before blue's ping was answered, never reached it.
    blue.broadcast(b"alone").await;
    blue.expect_round_trip().await;
}

#[tokio::test]
async fn broadcasting_outside_a_room_is_an_error() {
    let relay = TestRelay::start(Server::builder()).await;
    let mut client = relay.client().await;
    client.broadcast(b"hello?").await;
    client
        .expect_event(ServerEvent::Error("not in a room".into()))
        .await;
}

#[tokio::test]
async fn the_client_refuses_to_send_a_payload_over_the_relays_limit() {
    let relay = TestRelay::start(Server::builder().max_payload(100)).await;
    relay.create_room("lobby");
    // The client library's own check is under test: a real `Client`.
    let mut client = joined(relay.addr(), "lobby").await;
    assert_eq!(client.max_payload(), 100);
    assert!(matches!(
        client.broadcast(&[0; 101]).await,
        Err(SyncError::PayloadTooLarge)
    ));
    // Exactly at the limit is fine, and the connection is still usable.
    client.broadcast(&[0; 100]).await.unwrap();
    client.leave().await.unwrap();
    assert!(matches!(
        next_event(&mut client).await,
        ServerEvent::Left { .. }
    ));
}

#[tokio::test]
async fn a_payload_over_max_payload_disconnects_with_payload_too_large() {
    let relay = TestRelay::start(Server::builder().max_payload(100)).await;
    relay.create_room("lobby");
    let mut client = relay.joined("lobby").await;
    // Within the frame overhead, so only the payload-limit layer can catch it.
    client.broadcast([7; 101]).await;
    // The goodbye, then the end of the stream.
    match client
        .expect_disconnect(DisconnectKind::PayloadTooLarge)
        .await
    {
        DisconnectReason::PayloadTooLarge(message) => {
            assert!(message.contains("101"), "the reason says why: {message}")
        }
        other => panic!("expected a payload-too-large disconnect, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_length_prefix_disconnects_before_the_body_is_sent() {
    let relay = TestRelay::start(Server::builder().max_payload(100)).await;
    let mut client = relay.client().await;
    // Announce 1 MiB and send nothing more: the relay must not wait for it.
    client.send_raw(&(1u32 << 20).to_be_bytes()).await;
    client
        .expect_disconnect(DisconnectKind::PayloadTooLarge)
        .await;
}

/// Every member publishing at once, each with frames pipelined: every receiver gets every
/// other member's frames, each sender's in its order. The publishers' tasks write the
/// recipients' sockets themselves, so this is the order rule of those direct writes.
async fn every_member_publishing_keeps_each_sender_s_order(builder: ghost_sync::ServerBuilder) {
    const MEMBERS: usize = 6;
    const EACH: u32 = 300;
    // Every receiver's queue can hold all it is sent (5 × 300 frames): this checks order, and
    // a flush window may let a burst pile up past the default 1024 frames, which would drop
    // frames (backpressure, asserted absent below) rather than reorder them.
    let relay = TestRelay::start(builder.channel_capacity(4096)).await;
    relay.create_room("all");
    // Split `Client`s: each member sends from one task and receives in another.
    let mut members = join_all(relay.addr(), "all", MEMBERS).await;
    let ids: Vec<_> = members.iter().map(|m| m.client_id()).collect();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for member in members.drain(..) {
        let (tx, rx) = member.split();
        senders.push(tx);
        receivers.push(rx);
    }
    let sending: Vec<_> = senders
        .into_iter()
        .map(|mut tx| {
            tokio::spawn(async move {
                for i in 0..EACH {
                    tx.broadcast(&i.to_be_bytes()).await.unwrap();
                }
                tx
            })
        })
        .collect();
    let receiving: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, mut rx)| {
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut next = [0u32; MEMBERS];
                let mut left = EACH as usize * (MEMBERS - 1);
                while left > 0 {
                    let event = within("a broadcast", rx.recv()).await.unwrap().unwrap();
                    let ServerEvent::Broadcast { sender_id, data } = event else {
                        continue;
                    };
                    let from = ids.iter().position(|&id| id == sender_id).unwrap();
                    assert_ne!(from, me, "nobody gets its own frames");
                    let n = u32::from_be_bytes(data[..].try_into().unwrap());
                    assert_eq!(n, next[from], "member {me}: frames of {from} out of order");
                    next[from] += 1;
                    left -= 1;
                }
                rx
            })
        })
        .collect();
    for task in receiving {
        task.await.unwrap();
    }
    for task in sending {
        task.await.unwrap();
    }
    assert_eq!(relay.handle().stats().frames_dropped, 0);
}

#[tokio::test]
async fn every_member_publishing_gets_every_frame_in_each_sender_s_order() {
    every_member_publishing_keeps_each_sender_s_order(Server::builder()).await;
}

#[tokio::test]
async fn with_a_flush_window_every_frame_still_arrives_in_order() {
    every_member_publishing_keeps_each_sender_s_order(
        Server::builder().flush_interval(std::time::Duration::from_millis(2)),
    )
    .await;
}
