//! The test kit itself (`ghost_sync::testing`): its failures read well, its expectations
//! see what the relay sent, and its faults have the effect on the relay they promise.

mod common;

use common::{wait_hook, Hook, Recorder};
use ghost_sync::protocol::RejectCode;
use ghost_sync::testing::{Received, TestClient, TestRelay};
use ghost_sync::{DisconnectKind, DisconnectReason, Server, ServerEvent};
use std::time::Duration;

/// The message a task panicked with.
async fn panic_message(task: tokio::task::JoinHandle<()>) -> String {
    let payload = task.await.expect_err("the expectation passed").into_panic();
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[tokio::test]
#[should_panic(expected = "client 2 [")]
async fn a_wrong_event_fails_naming_the_client() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    clients[0].broadcast(b"hi").await;
    let alice = clients[0].client_id();
    clients[1].expect_member_left(alice).await;
}

#[tokio::test]
async fn a_failure_says_what_was_expected_what_came_and_what_came_before() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut alice = relay.client_builder().name("alice").connect().await;
    alice.join("arena").await;
    alice.expect_joined("arena").await;
    let mut bob = relay.client_builder().name("bob").connect().await;
    bob.join("arena").await;
    bob.expect_joined("arena").await;
    alice.expect_member_joined(bob.client_id()).await;
    bob.broadcast(b"attack").await;
    let bob_id = bob.client_id();
    let message = panic_message(tokio::spawn(async move {
        alice.expect_member_left(bob_id).await;
    }))
    .await;
    let short = &bob_id.simple().to_string()[..8];
    assert!(message.starts_with("alice ["), "{message}");
    assert!(
        message.contains(&format!("expected PlayerLeft(bob [{short}])")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "got:     Broadcast from bob [{short}]: 6 bytes b\"attack\""
        )),
        "{message}"
    );
    assert!(
        message.contains("earlier: Joined(\"arena\" as alice"),
        "{message}"
    );
    drop(bob);
}

#[tokio::test]
async fn an_expectation_times_out_with_a_message_instead_of_hanging() {
    let relay = TestRelay::start(Server::builder()).await;
    let client = relay
        .client()
        .await
        .with_timeout(Duration::from_millis(200));
    let id = client.client_id();
    let message = panic_message(tokio::spawn(async move {
        let mut client = client;
        client.expect_broadcast_from(id).await;
    }))
    .await;
    assert!(
        message.contains("expected a broadcast from client 1 ["),
        "{message}"
    );
    assert!(message.contains("got:     nothing within"), "{message}");
}

#[tokio::test]
async fn expect_no_event_fails_on_an_event_and_passes_on_keepalive() {
    let relay = TestRelay::start(Server::builder().ping_interval(Duration::from_millis(20))).await;
    relay.create_room("arena");
    let mut client = relay.joined("arena").await;
    // Several pings come and are answered within the window: they are not events.
    client.expect_no_event(Duration::from_millis(200)).await;
    relay.handle().broadcast_to_room("arena", b"x").unwrap();
    let message = panic_message(tokio::spawn(async move {
        client.expect_no_event(Duration::from_secs(5)).await;
    }))
    .await;
    assert!(message.contains("expected no event within 5s"), "{message}");
    assert!(
        message.contains("got:     Broadcast from the server: 1 bytes b\"x\""),
        "{message}"
    );
}

#[tokio::test]
async fn a_disconnect_comes_with_the_reason_the_relay_gave() {
    let relay = TestRelay::start(Server::builder()).await;
    let mut client = relay.client().await;
    relay.handle().kick(client.client_id(), "cheating").unwrap();
    assert_eq!(
        client.expect_disconnect(DisconnectKind::Kicked).await,
        DisconnectReason::Kicked("cheating".into())
    );
}

#[tokio::test]
async fn a_refused_handshake_is_an_expectation_too() {
    let relay = TestRelay::start(Server::builder().max_clients(1)).await;
    let _first = relay.client().await;
    relay.expect_rejected(RejectCode::ServerFull).await;
    let message = panic_message(tokio::spawn({
        let builder = TestClient::builder(relay.addr());
        async move {
            builder.expect_rejected(RejectCode::AuthFailed).await;
        }
    }))
    .await;
    assert!(message.contains("got ServerFull"), "{message}");
}

#[tokio::test]
async fn a_severed_client_leaves_its_room_once_with_a_transport_error() {
    let (make, mut hooks) = Recorder::reentrant();
    let relay = TestRelay::start(Server::builder().handler_with(make)).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let gone = clients.pop().unwrap();
    let gone_id = gone.client_id();
    gone.sever();
    clients[0].expect_member_left(gone_id).await;
    let hook = wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(id, _) if *id == gone_id),
    )
    .await;
    assert!(
        matches!(
            hook,
            Hook::Disconnect(
                _,
                DisconnectReason::Transport(_) | DisconnectReason::ClientClosed
            )
        ),
        "{hook:?}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_as_a_slow_consumer() {
    let relay = TestRelay::start(
        Server::builder()
            .write_timeout(Duration::from_millis(300))
            .ping_interval(Duration::from_secs(600))
            .idle_timeout(Duration::from_secs(600)),
    )
    .await;
    relay.create_room("arena");
    let mut deaf = relay.client_builder().receive_buffer(4096).connect().await;
    deaf.join("arena").await;
    deaf.expect_joined("arena").await;
    let deaf_id = deaf.client_id();
    let mut loud = relay.joined("arena").await;
    let stalled = deaf.stop_reading();
    for _ in 0..100_000 {
        if relay.handle().client_info(deaf_id).is_none() {
            break;
        }
        loud.broadcast([7; 10_007]).await;
        tokio::task::yield_now().await;
    }
    assert!(
        relay.handle().client_info(deaf_id).is_none(),
        "still connected"
    );
    loud.wait_for("deaf's PlayerLeft", |e| {
        *e == ServerEvent::PlayerLeft { client_id: deaf_id }
    })
    .await;
    // Reading again, it gets whole frames and then the reason.
    let mut deaf = stalled.resume();
    let reason = deaf
        .expect_disconnect_after(DisconnectKind::SlowConsumer, |e| {
            matches!(
                e,
                ServerEvent::Broadcast { .. } | ServerEvent::PlayerJoined { .. }
            )
        })
        .await;
    assert_eq!(reason, DisconnectReason::SlowConsumer);
}

#[tokio::test]
async fn a_slow_reader_loses_frames_alone_and_reads_whole_frames() {
    let relay = TestRelay::start(
        Server::builder()
            .max_queued_bytes(16 * 1024)
            .channel_capacity(1 << 16)
            .write_timeout(Duration::from_secs(600)),
    )
    .await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let mut slow = relay.client_builder().receive_buffer(4096).connect().await;
    slow.join("arena").await;
    slow.expect_joined("arena").await;
    for client in clients.iter_mut() {
        client.expect_member_joined(slow.client_id()).await;
    }
    let mut fast = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();
    let slow = slow.slow_reader(4 * 1024);
    let mut sent = 0u32;
    while relay.handle().stats().frames_dropped == 0 && sent < 20_000 {
        sender
            .broadcast([&sent.to_be_bytes()[..], &[0; 1020]].concat())
            .await;
        let data = fast.expect_broadcast_from(sender.client_id()).await;
        assert_eq!(
            data[..4],
            sent.to_be_bytes(),
            "the fast reader lost a frame"
        );
        sent += 1;
    }
    assert!(relay.handle().stats().frames_dropped > 0, "nothing dropped");
    assert!(slow.bytes_read() > 0, "the slow reader read nothing");
    let mut slow = slow.stop().await;
    // Everything it gets is a whole frame, in order, with gaps where frames were dropped.
    slow.ping().await;
    let mut last = None;
    let mut got = 0u32;
    let mut notices = 0u32;
    loop {
        match slow.next_received().await {
            Received::Pong => break,
            // Each gap is announced by the frame after it (at the latest, the pong).
            Received::Event(ServerEvent::Dropped { .. }) => notices += 1,
            Received::Event(ServerEvent::Broadcast { data, .. }) => {
                let n = u32::from_be_bytes(data[..4].try_into().unwrap());
                assert!(last.is_none_or(|last| n > last), "{n} after {last:?}");
                last = Some(n);
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got < sent, "got all {sent} frames");
    assert!(notices > 0, "no Dropped notice for the gaps");
    assert!(relay.handle().client_info(slow.client_id()).is_some());
}

#[tokio::test]
async fn expect_no_event_while_answers_pings_and_fails_on_an_event() {
    let relay = TestRelay::start(Server::builder().ping_interval(Duration::from_millis(20))).await;
    relay.create_room("arena");
    let mut client = relay.joined("arena").await;
    // Ten ping intervals pass: the client is still connected afterwards.
    client
        .expect_no_event_while(tokio::time::sleep(Duration::from_millis(200)))
        .await;
    client.expect_round_trip().await;
    let handle = relay.handle().clone();
    let message = panic_message(tokio::spawn(async move {
        client
            .expect_no_event_while(async {
                handle.broadcast_to_room("arena", b"x").unwrap();
                std::future::pending::<()>().await
            })
            .await;
    }))
    .await;
    assert!(
        message.contains("expected no event while waiting"),
        "{message}"
    );
    assert!(
        message.contains("got:     Broadcast from the server"),
        "{message}"
    );
}

#[tokio::test]
async fn a_dropped_client_with_unread_frames_still_closes_cleanly() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let (quitter, mut talker) = (clients.remove(0), clients.remove(0));
    let id = quitter.client_id();
    for n in 0..5u8 {
        talker.broadcast([n]).await;
    }
    // Two round trips: the relay has written the broadcasts to the quitter's socket, which
    // holds them unread.
    talker.expect_round_trip().await;
    talker.expect_round_trip().await;
    drop(quitter);
    // Closing a socket with unread bytes would be a reset (a transport error to the relay).
    let gone = wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(who, _) if *who == id),
    )
    .await;
    assert_eq!(gone, Hook::Disconnect(id, DisconnectReason::ClientClosed));
}

#[tokio::test]
async fn a_write_the_relay_does_not_take_fails_instead_of_hanging() {
    use tower::limit::RateLimitLayer;
    // The join uses the hour's only frame; the relay then stops reading this client.
    let relay = TestRelay::start(
        Server::builder().layer(RateLimitLayer::new(1, Duration::from_secs(3600))),
    )
    .await;
    relay.create_room("arena");
    let mut client = relay
        .joined("arena")
        .await
        .with_timeout(Duration::from_millis(500));
    let data = vec![7u8; 60 * 1024];
    let chunk =
        ghost_sync::protocol::encode(&ghost_sync::protocol::ClientFrame::Broadcast { data: &data });
    let mut failed = None;
    // The kernel's buffers and the relay's read reserve hold a few MiB at most.
    for _ in 0..2_000 {
        if let Err(err) = client.try_send_raw(&chunk).await {
            failed = Some(err);
            break;
        }
    }
    let err = failed.expect("the writes never blocked");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("not reading"), "{err}");
}
