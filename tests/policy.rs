//! The policy layers inside a running relay: rate limit, per-IP connection limit, room-name
//! policy, and tower's own middleware dropped into `ServerBuilder::layer` unchanged.

mod common;

use common::*;
use ghost_sync::layers::{ClientRateLimitLayer, RoomNamePolicyLayer};
use ghost_sync::{Client, DisconnectReason, Server, ServerEvent, SyncError};
use std::time::Duration;
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;

#[tokio::test]
async fn frames_past_the_rate_limit_are_refused_with_a_reason() {
    // Three frames per hour: the fourth is refused, the client stays connected.
    let limit = ClientRateLimitLayer::new(3, 1 << 20).burst_frames(3);
    let (handle, addr) = start(Server::builder().rate_limit(limit)).await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await; // each spends one frame on its join
    let mut listener = clients.pop().unwrap();
    let mut spammer = clients.pop().unwrap();
    for n in 0..3u8 {
        spammer.broadcast(&[n]).await.unwrap();
    }
    let mut delivered = Vec::new();
    for _ in 0..2 {
        match next_event(&mut listener).await {
            ServerEvent::Broadcast { data, .. } => delivered.push(data[0]),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, vec![0, 1]);
    match next_event(&mut spammer).await {
        ServerEvent::Error(reason) => {
            assert!(reason.starts_with("rate limit exceeded"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Keepalive is never rate-limited: the spammer is still connected and answered.
    spammer.ping().await.unwrap();
    listener.broadcast(b"still here?").await.unwrap();
    assert!(matches!(
        next_event(&mut spammer).await,
        ServerEvent::Broadcast { .. }
    ));
}

#[tokio::test]
async fn repeated_violations_disconnect_the_client_with_the_reason() {
    let (make, mut hooks) = Recorder::reentrant();
    let limit = ClientRateLimitLayer::new(1, 1 << 20)
        .burst_frames(1)
        .disconnect_after(3);
    let (handle, addr) = start(Server::builder().handler_with(make).rate_limit(limit)).await;
    handle.create_room("arena").unwrap();
    let mut spammer = joined(addr, "arena").await; // the join is the one frame allowed
    let spammer_id = spammer.client_id();
    for _ in 0..5 {
        // The relay may close before the last ones are written.
        let _ = spammer.broadcast(b"spam").await;
    }
    let reason = loop {
        match within("the disconnect", spammer.recv()).await {
            Ok(Some(ServerEvent::Error(_))) => continue,
            Err(SyncError::Disconnected(reason)) => break reason,
            other => panic!("expected a policy disconnect, got {other:?}"),
        }
    };
    assert!(reason.contains("rate limit"), "{reason}");
    wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(id, DisconnectReason::Policy(_)) if *id == spammer_id),
    )
    .await;
}

#[tokio::test]
async fn the_connection_past_the_per_ip_limit_is_refused_in_the_handshake() {
    let (handle, addr) = start(Server::builder().max_connections_per_ip(2)).await;
    let first = Client::connect(addr).await.unwrap();
    let _second = Client::connect(addr).await.unwrap();
    match Client::connect(addr).await {
        Err(SyncError::ConnectRejected(reason)) => {
            assert!(
                reason.contains("too many connections from 127.0.0.1"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A slot frees once its connection is fully closed.
    let first_id = first.client_id();
    drop(first);
    within("the slot to free", async {
        loop {
            if handle.client_info(first_id).is_none() {
                if let Ok(client) = Client::connect(addr).await {
                    return client;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn room_names_past_the_policy_are_refused_with_a_reason() {
    let (handle, addr) = start(Server::builder()).await;
    let long = "x".repeat(65);
    handle.create_room(&long).unwrap();
    handle.create_room("bad\nname").unwrap();
    let mut client = Client::connect(addr).await.unwrap();
    client.join(&long).await.unwrap();
    assert_eq!(
        next_event(&mut client).await,
        ServerEvent::Error("invalid room name: too long (65 bytes, max 64)".into())
    );
    client.join("bad\nname").await.unwrap();
    match next_event(&mut client).await {
        ServerEvent::Error(reason) => assert!(reason.contains("not allowed"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    // 64 bytes is fine.
    let longest = "y".repeat(64);
    handle.create_room(&longest).unwrap();
    client.join(&longest).await.unwrap();
    expect_joined(&mut client, &longest).await;
}

#[tokio::test]
async fn the_room_name_policy_can_be_replaced_or_turned_off() {
    let strict = Server::builder().room_names(RoomNamePolicyLayer::ascii_identifiers());
    let (handle, addr) = start(strict).await;
    handle.create_room("café").unwrap();
    let mut client = Client::connect(addr).await.unwrap();
    client.join("café").await.unwrap();
    assert!(matches!(
        next_event(&mut client).await,
        ServerEvent::Error(_)
    ));

    let (handle, addr) = start(Server::builder().room_names(None)).await;
    let long = "z".repeat(500);
    handle.create_room(&long).unwrap();
    let mut client = Client::connect(addr).await.unwrap();
    client.join(&long).await.unwrap();
    expect_joined(&mut client, &long).await;
}

#[tokio::test]
async fn towers_concurrency_limit_and_timeout_drop_in_unchanged() {
    let (handle, addr) = start(
        Server::builder()
            .layer(ConcurrencyLimitLayer::new(1))
            .layer(TimeoutLayer::new(Duration::from_secs(30))),
    )
    .await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    a.broadcast(b"through tower").await.unwrap();
    assert!(matches!(
        next_event(&mut b).await,
        ServerEvent::Broadcast { data, .. } if &data[..] == b"through tower"
    ));
}
