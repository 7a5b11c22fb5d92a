//! Broadcast end to end: who receives, who does not, the hook, and payload limits.

mod common;

use bytes::Bytes;
use common::*;
use ghost_sync::protocol::{ClientFrame, DisconnectCode};
use ghost_sync::{Server, ServerEvent, SyncError};

#[tokio::test]
async fn a_broadcast_reaches_every_other_member_and_nobody_else() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = start(Server::builder().handler(recorder)).await;
    handle.create_room("red").unwrap();
    handle.create_room("blue").unwrap();
    let mut red = join_all(addr, "red", 3).await;
    // blue speaks raw frames, so that its keepalive answers are visible.
    let mut blue = RawClient::joined(addr, "blue").await;

    red[0].broadcast(b"attack").await.unwrap();
    let sender = red[0].client_id();
    for member in red.iter_mut().skip(1) {
        assert_eq!(
            next_event(member).await,
            ServerEvent::Broadcast {
                sender_id: sender,
                data: Bytes::from_static(b"attack")
            }
        );
    }
    assert_eq!(
        wait_hook(&mut hooks, |h| matches!(h, Hook::Broadcast(..))).await,
        Hook::Broadcast(sender, "red".into(), b"attack".to_vec())
    );

    // The next thing the sender sees is this marker: it never got its own "attack".
    red[1].broadcast(b"marker").await.unwrap();
    assert_eq!(
        next_event(&mut red[0]).await,
        ServerEvent::Broadcast {
            sender_id: red[1].client_id(),
            data: Bytes::from_static(b"marker")
        }
    );
    // blue is alone in its room: its own broadcast comes back to nobody, and red's traffic,
    // relayed before blue's ping was answered, never reached it.
    blue.send(&ClientFrame::Broadcast { data: b"alone" }).await;
    blue.send(&ClientFrame::Ping).await;
    assert_eq!(
        blue.recv_skipping(|f| *f == Frame::Ping).await,
        Some(Frame::Pong)
    );
}

#[tokio::test]
async fn broadcasting_outside_a_room_is_an_error() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut client = ghost_sync::Client::connect(addr).await.unwrap();
    client.broadcast(b"hello?").await.unwrap();
    assert_eq!(
        next_event(&mut client).await,
        ServerEvent::Error("not in a room".into())
    );
}

#[tokio::test]
async fn the_client_refuses_to_send_a_payload_over_the_relays_limit() {
    let (handle, addr) = start(Server::builder().max_payload(100)).await;
    handle.create_room("lobby").unwrap();
    let mut client = joined(addr, "lobby").await;
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
    let (handle, addr) = start(Server::builder().max_payload(100)).await;
    handle.create_room("lobby").unwrap();
    let mut raw = RawClient::joined(addr, "lobby").await;
    // Within the frame overhead, so only the payload-limit layer can catch it.
    raw.send(&ClientFrame::Broadcast { data: &[7; 101] }).await;
    match raw.recv_skipping_pings().await {
        Some(Frame::Disconnect { code, message }) => {
            assert_eq!(code, DisconnectCode::PayloadTooLarge as u8);
            assert!(message.contains("101"), "the reason says why: {message}");
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn an_oversized_length_prefix_disconnects_before_the_body_is_sent() {
    let (_handle, addr) = start(Server::builder().max_payload(100)).await;
    let mut raw = RawClient::greeted(addr).await;
    // Announce 1 MiB and send nothing more: the relay must not wait for it.
    raw.send_bytes(&(1u32 << 20).to_be_bytes()).await;
    match raw.recv_skipping_pings().await {
        Some(Frame::Disconnect { code, .. }) => {
            assert_eq!(code, DisconnectCode::PayloadTooLarge as u8)
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
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
    let (handle, addr) = start(builder.channel_capacity(4096)).await;
    handle.create_room("all").unwrap();
    let mut members = join_all(addr, "all", MEMBERS).await;
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
    assert_eq!(handle.stats().frames_dropped, 0);
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
