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
