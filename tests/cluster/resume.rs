//! A seat held on one relay resumes on another (`resume_window` in a cluster): the same
//! client and room, the frames the old relay queued forwarded, and nobody told of anything.

use crate::broker::{prefix, Broker};
use crate::relays::{eventually, options};
use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{DisconnectReason, Server, ServerEvent, ServerHandler, Uuid, SERVER_ID};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(60);

/// `n` relays named `r0`, `r1`, … sharing `prefix`, holding seats for a minute.
async fn resumable_relays(url: &str, prefix: &str, n: usize) -> Vec<TestRelay> {
    resumable_relays_with(url, prefix, n, &Hooks::default()).await
}

/// [`resumable_relays`], each recording its seat hooks into `hooks`.
async fn resumable_relays_with(url: &str, prefix: &str, n: usize, hooks: &Hooks) -> Vec<TestRelay> {
    let mut out = Vec::new();
    for i in 0..n {
        let server = Server::builder()
            .bind("127.0.0.1:0")
            .resume_window(WINDOW)
            .redis(options(url, prefix, &format!("r{i}")))
            .handler(Hooks {
                relay: i,
                calls: Arc::clone(&hooks.calls),
            })
            .build();
        out.push(TestRelay::run(server).await);
    }
    out
}

/// A seat hook call: the relay it fired on, the hook, the client.
type Call = (usize, &'static str, Uuid);

/// Records the seat hooks, with the relay they fired on.
#[derive(Clone, Default)]
struct Hooks {
    relay: usize,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Hooks {
    fn record(&self, hook: &'static str, client: Uuid) {
        self.calls.lock().unwrap().push((self.relay, hook, client));
    }

    fn of(&self, client: Uuid) -> Vec<(usize, &'static str)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.2 == client)
            .map(|c| (c.0, c.1))
            .collect()
    }
}

impl ServerHandler for Hooks {
    fn on_leave(&self, client_id: Uuid, _room_id: &str) {
        self.record("leave", client_id);
    }
    fn on_disconnect(&self, client_id: Uuid, reason: &DisconnectReason) {
        let hook = if *reason == DisconnectReason::Replaced {
            "disconnect(replaced)"
        } else {
            "disconnect"
        };
        self.record(hook, client_id);
    }
    fn on_drop(&self, client_id: Uuid, _reason: &DisconnectReason) {
        self.record("drop", client_id);
    }
    fn on_resume(&self, client_id: Uuid, _missed: u32) {
        self.record("resume", client_id);
    }
}

/// Joins `client` to "arena" and waits until every relay lists it there.
async fn join_everywhere(relays: &[TestRelay], client: &mut TestClient) {
    client.join("arena").await;
    client.expect_joined("arena").await;
    let id = client.client_id();
    for relay in relays {
        eventually("every relay lists the member", || {
            relay
                .handle()
                .room_members("arena")
                .is_some_and(|members| members.contains(&id))
        })
        .await;
    }
}

/// Nothing but a server message `marker`, sent to `client` from `from`: what came before
/// it is what the client was sent.
async fn expect_only_marker(from: &TestRelay, client: &mut TestClient) {
    from.handle()
        .send_to(client.client_id(), b"marker")
        .unwrap();
    client.expect_broadcast(SERVER_ID, b"marker").await;
}

#[tokio::test]
async fn a_seat_held_on_one_relay_resumes_on_another_with_what_was_queued_for_it() {
    let broker = Broker::start();
    let hooks = Hooks::default();
    let relays = resumable_relays_with(&broker.url(), &prefix("resume-moves"), 3, &hooks).await;
    relays[0].create_room("arena");
    eventually("every relay mirrors the room", || {
        relays.iter().all(|r| r.handle().room_exists("arena"))
    })
    .await;
    let (mut alice, token) = relays[0].resumable("alice").await;
    join_everywhere(&relays, &mut alice).await;
    let mut bob = relays[1].client_builder().name("bob").connect().await;
    join_everywhere(&relays, &mut bob).await;
    let mut carol = relays[2].client_builder().name("carol").connect().await;
    join_everywhere(&relays, &mut carol).await;
    let id = alice.client_id();
    alice.expect_member_joined(bob.client_id()).await;
    alice.expect_member_joined(carol.client_id()).await;
    bob.expect_member_joined(carol.client_id()).await;

    alice.sever();
    eventually("r0 holds the seat", || relays[0].handle().is_held(id)).await;
    bob.broadcast(b"while away 1").await;
    bob.broadcast(b"while away 2").await;
    eventually("r0 queued both for the held seat", || {
        relays[0]
            .handle()
            .client_info(id)
            .is_some_and(|info| info.queue_depth >= 2)
    })
    .await;

    // The reconnect lands on r1.
    let (mut back, _next) = relays[1].resume("alice", &token).await;
    assert_eq!(back.client_id(), id);
    back.expect_broadcast(bob.client_id(), b"while away 1")
        .await;
    back.expect_broadcast(bob.client_id(), b"while away 2")
        .await;
    back.expect_event(ServerEvent::Resumed { missed: 0 }).await;
    assert!(!relays[0].handle().is_held(id));
    for relay in &relays {
        eventually("every relay has the member on r1", || {
            relay
                .handle()
                .room_members("arena")
                .is_some_and(|members| members.contains(&id))
                && relay.handle().client_info(id).is_some_and(|info| {
                    info.addr == relays[1].handle().client_info(id).unwrap().addr
                })
        })
        .await;
    }

    // The old relay let the client go (it serves it no more), the new one resumed it, and
    // nobody left the room.
    eventually("the hooks of the move", || {
        hooks.of(id) == [(0, "drop"), (0, "disconnect(replaced)"), (1, "resume")]
    })
    .await;

    // It lives on r1 now, in both directions, and the third relay finds it there.
    relays[2].handle().send_to(id, b"found you").unwrap();
    back.expect_broadcast(SERVER_ID, b"found you").await;
    bob.broadcast(b"after").await;
    back.expect_broadcast(bob.client_id(), b"after").await;
    back.broadcast(b"i am back").await;
    carol
        .expect_broadcast(bob.client_id(), b"while away 1")
        .await;
    carol
        .expect_broadcast(bob.client_id(), b"while away 2")
        .await;
    carol.expect_broadcast(bob.client_id(), b"after").await;
    carol.expect_broadcast(id, b"i am back").await;
    bob.expect_broadcast(id, b"i am back").await;
    // Nobody saw it leave or join.
    expect_only_marker(&relays[2], &mut carol).await;
    expect_only_marker(&relays[1], &mut bob).await;

    // Its end, from r1, is told once to everyone.
    back.bye().await;
    bob.expect_member_left(id).await;
    carol.expect_member_left(id).await;
    for relay in &relays {
        eventually("the client is gone everywhere", || {
            relay.handle().client_info(id).is_none()
        })
        .await;
    }
    expect_only_marker(&relays[2], &mut carol).await;
    eventually("its end's hooks, on r1 alone", || {
        hooks.of(id)[3..] == [(1, "leave"), (1, "disconnect")]
    })
    .await;
    assert_eq!(hooks.of(id).len(), 5, "{:?}", hooks.of(id));
}

#[tokio::test]
async fn a_resume_on_another_relay_takes_over_a_half_open_connection_and_is_single_use() {
    let broker = Broker::start();
    let relays = resumable_relays(&broker.url(), &prefix("resume-takeover"), 2).await;
    relays[0].create_room("arena");
    eventually("every relay mirrors the room", || {
        relays.iter().all(|r| r.handle().room_exists("arena"))
    })
    .await;
    let (mut old, token) = relays[0].resumable("old").await;
    join_everywhere(&relays, &mut old).await;
    let id = old.client_id();
    let mut peer = relays[1].client_builder().name("peer").connect().await;
    join_everywhere(&relays, &mut peer).await;

    // `old` stays open and unread on r0, as a link gone silent; the client comes back on r1.
    let (mut new, _) = relays[1].resume("new", &token).await;
    assert_eq!(new.client_id(), id);
    new.expect_event(ServerEvent::Resumed { missed: 0 }).await;
    old.expect_replaced().await;
    new.broadcast(b"here").await;
    peer.expect_broadcast(id, b"here").await;
    expect_only_marker(&relays[1], &mut peer).await;

    // Single use, on either relay; and a token nobody issued is unknown everywhere.
    for relay in &relays {
        let why = relay.expect_resume_refused(b"", &token).await;
        assert!(
            why == "resume token already used" || why == "unknown resume token",
            "{why}"
        );
        let why = relay.expect_resume_refused(b"", &[7; 16]).await;
        assert_eq!(why, "unknown resume token");
    }
}
