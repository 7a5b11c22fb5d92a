//! A seat kept across a brief drop (`resume_window`), end to end over loopback: what holds a
//! seat and what ends it, the resume with the frames queued meanwhile then `Resumed{missed}`,
//! the expiry, the takeover of a half-open connection, single-use tokens, and the bounds.

mod common;

use common::within;
use ghost_sync::auth::{Credentials, Identity};
use ghost_sync::layers::ClientRateLimitLayer;
use ghost_sync::protocol::ClientFrame;
use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{
    DisconnectKind, DisconnectReason, Server, ServerBuilder, ServerEvent, ServerHandle,
    ServerHandler, Uuid, SERVER_ID,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// The seat hooks, in the order they fired.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seat {
    Drop(Uuid, DisconnectReason),
    Resume(Uuid, u32),
    Leave(Uuid),
    Disconnect(Uuid, DisconnectReason),
}

struct SeatRecorder(mpsc::UnboundedSender<Seat>);

impl ServerHandler for SeatRecorder {
    fn on_leave(&self, client_id: Uuid, _room_id: &str) {
        let _ = self.0.send(Seat::Leave(client_id));
    }
    fn on_disconnect(&self, client_id: Uuid, reason: &DisconnectReason) {
        let _ = self.0.send(Seat::Disconnect(client_id, reason.clone()));
    }
    fn on_drop(&self, client_id: Uuid, reason: &DisconnectReason) {
        let _ = self.0.send(Seat::Drop(client_id, reason.clone()));
    }
    fn on_resume(&self, client_id: Uuid, missed: u32) {
        let _ = self.0.send(Seat::Resume(client_id, missed));
    }
}

type Hooks = mpsc::UnboundedReceiver<Seat>;

/// A relay holding seats for `window`, from `builder`, with a recording handler and a room
/// "arena".
async fn relay_with(builder: ServerBuilder, window: Duration) -> (TestRelay, Hooks) {
    let (tx, rx) = mpsc::unbounded_channel();
    let relay = TestRelay::start(builder.resume_window(window).handler(SeatRecorder(tx))).await;
    relay.create_room("arena");
    (relay, rx)
}

async fn relay(window: Duration) -> (TestRelay, Hooks) {
    relay_with(Server::builder(), window).await
}

const LONG: Duration = Duration::from_secs(60);

/// The first hook of `id` that `pick` accepts (others are skipped).
async fn hook(hooks: &mut Hooks, pick: impl Fn(&Seat) -> bool) -> Seat {
    within("a seat hook", async {
        loop {
            let hook = hooks.recv().await.expect("handler dropped");
            if pick(&hook) {
                return hook;
            }
        }
    })
    .await
}

/// Waits for the drop of `id`; returns its reason.
async fn dropped(hooks: &mut Hooks, id: Uuid) -> DisconnectReason {
    match hook(
        hooks,
        |h| matches!(h, Seat::Drop(who, _) | Seat::Disconnect(who, _) if *who == id),
    )
    .await
    {
        Seat::Drop(_, reason) => reason,
        other => panic!("expected the seat of {id} to be held, got {other:?}"),
    }
}

/// A resumable client in "arena", with its token.
async fn joined(relay: &TestRelay, name: &str) -> (TestClient, Vec<u8>) {
    let (mut client, token) = relay.resumable(name).await;
    client.join("arena").await;
    client.expect_joined("arena").await;
    (client, token)
}

/// The peer's next event is the marker the server sends now: nothing (no `PlayerLeft`)
/// came before it.
async fn expect_nothing_before_marker(handle: &ServerHandle, peer: &mut TestClient) {
    handle.send_to(peer.client_id(), b"marker").unwrap();
    peer.expect_broadcast(SERVER_ID, b"marker").await;
}

/// Resumes `token` and checks the seat is the same, its queued frames `then` Resumed{0}.
async fn resume_same(relay: &TestRelay, token: &[u8], id: Uuid) -> (TestClient, Vec<u8>) {
    let (mut client, next) = relay.resume("resumed", token).await;
    assert_eq!(client.client_id(), id, "a resume keeps the client id");
    assert_eq!(next.len(), 16);
    assert_ne!(next, token, "a resume rotates the token");
    client
        .expect_event(ServerEvent::Resumed { missed: 0 })
        .await;
    (client, next)
}

// 1 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn off_by_default_a_drop_ends_the_seat_at_once_and_the_token_is_empty() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let (mut gone, token) = relay.resumable("gone").await;
    assert!(token.is_empty(), "no token without resume_window");
    gone.join("arena").await;
    gone.expect_joined("arena").await;
    let gone_id = gone.client_id();
    let mut peer = relay.joined("arena").await;
    gone.sever();
    peer.expect_member_left(gone_id).await;
    let why = relay.expect_resume_refused(b"", &[7; 16]).await;
    assert_eq!(why, "resume is off on this relay");
}

// 2 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_token_has_16_random_bytes_differs_per_client_and_rotates() {
    let (relay, mut hooks) = relay(LONG).await;
    let (a, token_a) = joined(&relay, "a").await;
    let (b, token_b) = joined(&relay, "b").await;
    assert_eq!((token_a.len(), token_b.len()), (16, 16));
    assert_ne!(token_a, token_b);
    for (client, token) in [(&a, &token_a), (&b, &token_b)] {
        let id = client.client_id();
        let id = id.as_bytes();
        // No run of 4 bytes of the id appears in the token: it is not derived from it.
        for run in id.windows(4) {
            assert!(
                !token.windows(4).any(|w| w == run),
                "token shares bytes with the id"
            );
        }
    }
    let a_id = a.client_id();
    a.sever();
    dropped(&mut hooks, a_id).await;
    let (a, token_2) = resume_same(&relay, &token_a, a_id).await;
    a.sever();
    dropped(&mut hooks, a_id).await;
    let (_a, token_3) = resume_same(&relay, &token_2, a_id).await;
    assert_ne!(token_3, token_2);
    drop(b);
}

// 3 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_reset_holds_the_seat_and_the_peer_sees_nothing() {
    let (relay, mut hooks) = relay(LONG).await;
    let (gone, token) = joined(&relay, "gone").await;
    let id = gone.client_id();
    let mut peer = relay.joined("arena").await;
    gone.sever();
    let reason = dropped(&mut hooks, id).await;
    assert!(
        matches!(
            reason,
            DisconnectReason::Transport(_) | DisconnectReason::ClientClosed
        ),
        "{reason:?}"
    );
    assert!(
        relay.handle().client_info(id).is_some(),
        "a held seat stays listed"
    );
    assert!(relay.handle().is_held(id));
    assert_eq!(relay.handle().room_members("arena").unwrap().len(), 2);
    expect_nothing_before_marker(relay.handle(), &mut peer).await;
    let (_back, _) = resume_same(&relay, &token, id).await;
    assert!(!relay.handle().is_held(id));
    expect_nothing_before_marker(relay.handle(), &mut peer).await;
}

#[tokio::test]
async fn a_close_without_bye_holds_the_seat() {
    let (relay, mut hooks) = relay(LONG).await;
    let (gone, token) = joined(&relay, "gone").await;
    let id = gone.client_id();
    let mut peer = relay.joined("arena").await;
    gone.close_without_bye();
    assert_eq!(
        dropped(&mut hooks, id).await,
        DisconnectReason::ClientClosed
    );
    expect_nothing_before_marker(relay.handle(), &mut peer).await;
    resume_same(&relay, &token, id).await;
}

#[tokio::test]
async fn an_idle_timeout_holds_the_seat() {
    let (relay, mut hooks) = relay_with(
        Server::builder().idle_timeout(Duration::from_millis(300)),
        LONG,
    )
    .await;
    let (mut quiet, token) = joined(&relay, "quiet").await;
    let id = quiet.client_id();
    quiet.expect_disconnect(DisconnectKind::IdleTimeout).await;
    assert_eq!(dropped(&mut hooks, id).await, DisconnectReason::IdleTimeout);
    assert!(relay.handle().is_held(id));
    resume_same(&relay, &token, id).await;
}

#[tokio::test]
async fn a_ping_timeout_holds_the_seat() {
    let (relay, mut hooks) = relay_with(
        Server::builder().ping_interval(Duration::from_millis(200)),
        LONG,
    )
    .await;
    let (frozen, token) = joined(&relay, "frozen").await;
    let id = frozen.client_id();
    let frozen = frozen.stop_reading();
    assert_eq!(dropped(&mut hooks, id).await, DisconnectReason::PingTimeout);
    drop(frozen);
    resume_same(&relay, &token, id).await;
}

#[tokio::test]
async fn a_slow_consumer_holds_the_seat_and_resumes_with_what_was_queued() {
    let (relay, mut hooks) = relay_with(
        Server::builder().write_timeout(Duration::from_millis(300)),
        LONG,
    )
    .await;
    let (deaf, token) = joined(&relay, "deaf").await;
    let id = deaf.client_id();
    let deaf = deaf.stop_reading();
    let mut loud = relay.joined("arena").await;
    let mut held = false;
    within("the slow-consumer hold", async {
        for _ in 0..1_000_000 {
            loud.broadcast([0; 16 * 1024]).await;
            while let Ok(h) = hooks.try_recv() {
                match h {
                    Seat::Drop(who, DisconnectReason::SlowConsumer) if who == id => held = true,
                    Seat::Drop(..) | Seat::Resume(..) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            if held {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    drop(deaf);
    expect_nothing_before_marker(relay.handle(), &mut loud).await;
    let (mut back, _) = relay.resume("deaf again", &token).await;
    assert_eq!(back.client_id(), id);
    // What the queue kept, then Resumed.
    let missed = within("Resumed", async {
        for _ in 0..100_000 {
            match back.next_event().await {
                ServerEvent::Broadcast { sender_id, .. } => assert_eq!(sender_id, loud.client_id()),
                ServerEvent::Resumed { missed } => return missed,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("no Resumed")
    })
    .await;
    // The batch the stalled write gave up on is lost with the old socket: counted.
    assert!(missed > 0, "missed {missed}");
    hook(&mut hooks, |h| *h == Seat::Resume(id, missed)).await;
}

// 4 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bye_ends_the_seat_at_once() {
    let (relay, mut hooks) = relay(LONG).await;
    let (leaving, token) = joined(&relay, "leaving").await;
    let id = leaving.client_id();
    let mut peer = relay.joined("arena").await;
    leaving.bye().await;
    peer.expect_member_left(id).await;
    hook(&mut hooks, |h| {
        *h == Seat::Disconnect(id, DisconnectReason::ClientClosed)
    })
    .await;
    let why = relay.expect_resume_refused(b"", &token).await;
    assert_eq!(why, "seat ended: client closed");
}

#[tokio::test]
async fn a_kick_ends_a_live_seat_and_a_held_one() {
    let (relay, mut hooks) = relay(LONG).await;
    let (mut live, live_token) = joined(&relay, "live").await;
    let (held, held_token) = joined(&relay, "held").await;
    let (live_id, held_id) = (live.client_id(), held.client_id());
    let mut peer = relay.joined("arena").await;

    relay.handle().kick(live_id, "cheating").unwrap();
    live.expect_disconnect_after(DisconnectKind::Kicked, |e| {
        matches!(e, ServerEvent::PlayerJoined { .. })
    })
    .await;
    peer.expect_member_left(live_id).await;
    let why = relay.expect_resume_refused(b"", &live_token).await;
    assert_eq!(why, "seat ended: kicked");

    held.sever();
    dropped(&mut hooks, held_id).await;
    relay.handle().kick(held_id, "afk").unwrap();
    peer.expect_member_left(held_id).await;
    hook(&mut hooks, |h| {
        *h == Seat::Disconnect(held_id, DisconnectReason::Kicked("afk".into()))
    })
    .await;
    assert!(relay.handle().client_info(held_id).is_none());
    let why = relay.expect_resume_refused(b"", &held_token).await;
    assert_eq!(why, "seat ended: kicked");
}

#[tokio::test]
async fn a_policy_disconnect_ends_the_seat() {
    let limit = ClientRateLimitLayer::new(1, 1 << 20)
        .burst_frames(1)
        .disconnect_after(3);
    let (relay, mut hooks) = relay_with(Server::builder().rate_limit(limit), LONG).await;
    // Joined before the limit bites: the join is its one frame.
    let (mut spammer, token) = joined(&relay, "spammer").await;
    let id = spammer.client_id();
    for _ in 0..5 {
        let _ = spammer
            .try_send_frame(&ClientFrame::Broadcast { data: b"spam" })
            .await;
    }
    spammer
        .expect_disconnect_after(DisconnectKind::Policy, |e| {
            matches!(e, ServerEvent::Error(_))
        })
        .await;
    hook(
        &mut hooks,
        |h| matches!(h, Seat::Disconnect(who, DisconnectReason::Policy(_)) if *who == id),
    )
    .await;
    let why = relay.expect_resume_refused(b"", &token).await;
    assert_eq!(why, "seat ended: policy");
}

// 5 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_drop_mid_stream_loses_no_frame_below_the_budget() {
    let (relay, mut hooks) = relay_with(Server::builder().channel_capacity(64), LONG).await;
    let (mut receiver, token) = joined(&relay, "receiver").await;
    let id = receiver.client_id();
    let mut sender = relay.joined("arena").await;
    receiver.expect_member_joined(sender.client_id()).await;
    let sender_id = sender.client_id();
    for k in 0..10u32 {
        sender.broadcast(k.to_le_bytes()).await;
    }
    for k in 0..10u32 {
        receiver.expect_broadcast(sender_id, k.to_le_bytes()).await;
    }
    receiver.sever();
    dropped(&mut hooks, id).await;
    for k in 10..60u32 {
        sender.broadcast(k.to_le_bytes()).await;
    }
    // Queued, not written: the seat's queue holds them (after a round trip, all are in).
    sender.expect_round_trip().await;
    let (mut back, _) = relay.resume("receiver again", &token).await;
    assert_eq!(back.client_id(), id);
    for k in 10..60u32 {
        back.expect_broadcast(sender_id, k.to_le_bytes()).await;
    }
    back.expect_event(ServerEvent::Resumed { missed: 0 }).await;
    hook(&mut hooks, |h| *h == Seat::Resume(id, 0)).await;
    // Still in the room: its broadcast reaches the others.
    back.broadcast(b"i am back").await;
    sender.expect_broadcast(id, b"i am back").await;
}

// 6 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn missed_counts_what_the_budget_dropped_during_the_hold() {
    const CAPACITY: u32 = 8;
    let (relay, mut hooks) =
        relay_with(Server::builder().channel_capacity(CAPACITY as usize), LONG).await;
    let (receiver, token) = joined(&relay, "receiver").await;
    let id = receiver.client_id();
    let mut sender = relay.joined("arena").await;
    let sender_id = sender.client_id();
    receiver.sever();
    dropped(&mut hooks, id).await;
    for k in 0..CAPACITY + 5 {
        sender.broadcast(k.to_le_bytes()).await;
    }
    sender.expect_round_trip().await;
    let (mut back, _) = relay.resume("receiver again", &token).await;
    for k in 0..CAPACITY {
        back.expect_broadcast(sender_id, k.to_le_bytes()).await;
    }
    back.expect_event(ServerEvent::Resumed { missed: 5 }).await;
    hook(&mut hooks, |h| *h == Seat::Resume(id, 5)).await;
}

// 7 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_seat_ends_once_with_the_drop_reason() {
    let (relay, mut hooks) = relay(Duration::from_millis(300)).await;
    let (gone, token) = joined(&relay, "gone").await;
    let id = gone.client_id();
    let mut peer = relay.joined("arena").await;
    gone.close_without_bye();
    assert_eq!(
        dropped(&mut hooks, id).await,
        DisconnectReason::ClientClosed
    );
    // Expiry: the room hears it then, and the hooks fire then.
    peer.expect_member_left(id).await;
    hook(&mut hooks, |h| *h == Seat::Leave(id)).await;
    hook(&mut hooks, |h| {
        *h == Seat::Disconnect(id, DisconnectReason::ClientClosed)
    })
    .await;
    let why = relay.expect_resume_refused(b"", &token).await;
    assert_eq!(why, "resume token expired");
    assert!(relay.handle().client_info(id).is_none());
    // Once: nothing more for this id, even after a round trip through the relay.
    peer.expect_round_trip().await;
    while let Ok(h) = hooks.try_recv() {
        assert!(
            !matches!(h, Seat::Leave(who) | Seat::Disconnect(who, _) if who == id),
            "{h:?} fired twice"
        );
    }
}

// 8 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_resume_takes_over_a_half_open_connection() {
    let (relay, mut hooks) = relay(LONG).await;
    let (mut old, token) = joined(&relay, "old").await;
    let id = old.client_id();
    let mut peer = relay.joined("arena").await;
    // `old` stays open and unread, as a link gone silent.
    let (mut new, _) = relay.resume("new", &token).await;
    assert_eq!(new.client_id(), id);
    new.expect_event(ServerEvent::Resumed { missed: 0 }).await;
    // What was still unread (the peer's PlayerJoined), then the goodbye or the end.
    old.expect_replaced().await;
    expect_nothing_before_marker(relay.handle(), &mut peer).await;
    hook(&mut hooks, |h| {
        *h == Seat::Drop(id, DisconnectReason::Replaced)
    })
    .await;
    hook(&mut hooks, |h| *h == Seat::Resume(id, 0)).await;
    new.broadcast(b"here").await;
    peer.expect_broadcast(id, b"here").await;
    while let Ok(h) = hooks.try_recv() {
        assert!(
            !matches!(h, Seat::Drop(who, _) | Seat::Resume(who, _) if who == id),
            "{h:?} fired twice"
        );
    }
}

// 9 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_is_single_use_unknown_tokens_and_other_users_are_refused() {
    let builder = Server::builder().authenticate_with(|credentials: Credentials| async move {
        match std::str::from_utf8(&credentials.token) {
            Ok(user) if !user.is_empty() => Ok(Identity::new(user)),
            _ => Err("no user"),
        }
    });
    let (relay, mut hooks) = relay_with(builder, LONG).await;
    let (mut alice, token) = relay.resumable_with("alice", b"alice").await;
    alice.join("arena").await;
    alice.expect_joined("arena").await;
    let id = alice.client_id();
    alice.sever();
    dropped(&mut hooks, id).await;
    let why = relay.expect_resume_refused(b"bob", &token).await;
    assert_eq!(why, "resume token belongs to another user");
    let (mut back, _) = relay.resume_with("alice", b"alice", &token).await;
    assert_eq!(back.client_id(), id);
    back.expect_event(ServerEvent::Resumed { missed: 0 }).await;
    let why = relay.expect_resume_refused(b"alice", &token).await;
    assert_eq!(why, "resume token already used");
    let why = relay.expect_resume_refused(b"alice", &[0x5a; 16]).await;
    assert_eq!(why, "unknown resume token");
    let why = relay.expect_resume_refused(b"alice", b"short").await;
    assert_eq!(why, "unknown resume token");
}

// 10 --------------------------------------------------------------------------------------

#[tokio::test]
async fn past_max_held_seats_a_drop_ends_the_seat_at_once() {
    let (relay, mut hooks) = relay_with(Server::builder().max_held_seats(1), LONG).await;
    let (first, _) = joined(&relay, "first").await;
    let (second, _) = joined(&relay, "second").await;
    let (first_id, second_id) = (first.client_id(), second.client_id());
    let mut peer = relay.joined("arena").await;
    first.sever();
    dropped(&mut hooks, first_id).await;
    second.sever();
    peer.expect_member_left(second_id).await;
    let ended = hook(
        &mut hooks,
        |h| matches!(h, Seat::Drop(who, _) | Seat::Disconnect(who, _) if *who == second_id),
    )
    .await;
    assert!(matches!(ended, Seat::Disconnect(..)), "{ended:?}");
    assert!(relay.handle().is_held(first_id));
}

// Shutdown --------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_ends_the_held_seats() {
    let (relay, mut hooks) = relay(LONG).await;
    let (gone, _) = joined(&relay, "gone").await;
    let id = gone.client_id();
    gone.sever();
    dropped(&mut hooks, id).await;
    within("the shutdown", relay.shutdown()).await;
    hook(&mut hooks, |h| {
        *h == Seat::Disconnect(id, DisconnectReason::ServerShutdown)
    })
    .await;
}
