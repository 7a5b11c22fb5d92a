//! The policy layers inside a running relay: rate limit, per-IP connection limit, room-name
//! policy, and tower's own middleware dropped into `ServerBuilder::layer` unchanged.

mod common;

use common::*;
use ghost_sync::layers::{ClientRateLimitLayer, RoomNamePolicyLayer};
use ghost_sync::protocol::RejectCode;
use ghost_sync::testing::TestRelay;
use ghost_sync::{DisconnectKind, DisconnectReason, Server, ServerEvent};
use std::time::Duration;
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;

#[tokio::test]
async fn frames_past_the_rate_limit_are_refused_with_a_reason() {
    // Three frames per hour: the fourth is refused, the client stays connected.
    let limit = ClientRateLimitLayer::new(3, 1 << 20).burst_frames(3);
    let relay = TestRelay::start(Server::builder().rate_limit(limit)).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await; // each spends one frame on its join
    let mut listener = clients.pop().unwrap();
    let mut spammer = clients.pop().unwrap();
    for n in 0..3u8 {
        spammer.broadcast([n]).await;
    }
    let mut delivered = Vec::new();
    for _ in 0..2 {
        let data = listener.expect_broadcast_from(spammer.client_id()).await;
        delivered.push(data[0]);
    }
    assert_eq!(delivered, vec![0, 1]);
    let reason = spammer.expect_error("").await;
    assert!(reason.starts_with("rate limit exceeded"), "{reason}");
    // Keepalive is never rate-limited: the spammer is still connected and answered.
    spammer.ping().await;
    listener.broadcast(b"still here?").await;
    spammer.expect_broadcast_from(listener.client_id()).await;
}

#[tokio::test]
async fn repeated_violations_disconnect_the_client_with_the_reason() {
    let (make, mut hooks) = Recorder::reentrant();
    let limit = ClientRateLimitLayer::new(1, 1 << 20)
        .burst_frames(1)
        .disconnect_after(3);
    let relay = TestRelay::start(Server::builder().handler_with(make).rate_limit(limit)).await;
    relay.create_room("arena");
    let mut spammer = relay.joined("arena").await; // the join is the one frame allowed
    let spammer_id = spammer.client_id();
    for _ in 0..5 {
        // The relay may close before the last ones are written.
        let _ = spammer
            .try_send_frame(&ghost_sync::protocol::ClientFrame::Broadcast { data: b"spam" })
            .await;
    }
    let reason = spammer
        .expect_disconnect_after(DisconnectKind::Policy, |event| {
            matches!(event, ServerEvent::Error(_))
        })
        .await;
    match &reason {
        DisconnectReason::Policy(why) => assert!(why.contains("rate limit"), "{why}"),
        other => panic!("expected a policy disconnect, got {other:?}"),
    }
    wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(id, DisconnectReason::Policy(_)) if *id == spammer_id),
    )
    .await;
}

#[tokio::test]
async fn the_connection_past_the_per_ip_limit_is_refused_in_the_handshake() {
    let relay = TestRelay::start(Server::builder().max_connections_per_ip(2)).await;
    let first = relay.client().await;
    let _second = relay.client().await;
    let reason = relay.expect_rejected(RejectCode::ConnectRejected).await;
    assert!(
        reason.contains("too many connections from 127.0.0.1"),
        "{reason}"
    );
    // A slot frees once its connection is fully closed.
    let first_id = first.client_id();
    drop(first);
    within("the slot to free", async {
        loop {
            if relay.handle().client_info(first_id).is_none() {
                if let Ok(client) = ghost_sync::Client::connect(relay.addr()).await {
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
    let relay = TestRelay::start(Server::builder()).await;
    let long = "x".repeat(65);
    relay.create_room(&long);
    relay.create_room("bad\nname");
    let mut client = relay.client().await;
    client.join(&long).await;
    client
        .expect_event(ServerEvent::Error(
            "invalid room name: too long (65 bytes, max 64)".into(),
        ))
        .await;
    client.join("bad\nname").await;
    client.expect_error("not allowed").await;
    // 64 bytes is fine.
    let longest = "y".repeat(64);
    relay.create_room(&longest);
    client.join(&longest).await;
    client.expect_joined(&longest).await;
}

#[tokio::test]
async fn the_room_name_policy_can_be_replaced_or_turned_off() {
    let strict = Server::builder().room_names(RoomNamePolicyLayer::ascii_identifiers());
    let relay = TestRelay::start(strict).await;
    relay.create_room("café");
    let mut client = relay.client().await;
    client.join("café").await;
    client.expect_error("").await;

    let relay = TestRelay::start(Server::builder().room_names(None)).await;
    let long = "z".repeat(500);
    relay.create_room(&long);
    let mut client = relay.client().await;
    client.join(&long).await;
    client.expect_joined(&long).await;
}

#[tokio::test]
async fn towers_concurrency_limit_and_timeout_drop_in_unchanged() {
    let relay = TestRelay::start(
        Server::builder()
            .layer(ConcurrencyLimitLayer::new(1))
            .layer(TimeoutLayer::new(Duration::from_secs(30))),
    )
    .await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    a.broadcast(b"through tower").await;
    b.expect_broadcast(a.client_id(), b"through tower").await;
}
