//! Direct sends end to end over loopback: who receives (the targets, once each, never the
//! sender), who does not, the `on_direct` hook, all-or-nothing targets, the errors, and the
//! payload limit counting the targets.

mod common;
// The cluster suite's own broker and relays, for the one cluster case here (feature `redis`).
#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "cluster/broker.rs"]
mod broker;
#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "cluster/relays.rs"]
mod relays;

use common::{Hook, Recorder};
use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{DirectRequest, DisconnectKind, Server, ServerHandler, Uuid};
use std::sync::{Arc, Mutex};

/// `sender` broadcasts a marker and every one of `others` must get it next: proof that
/// nothing else (a stray direct send) was queued for them before it.
async fn marker(sender: &mut TestClient, others: &mut [&mut TestClient]) {
    sender.broadcast(b"marker").await;
    let from = sender.client_id();
    for other in others.iter_mut() {
        other.expect_broadcast(from, b"marker").await;
    }
    // And the sender got nothing back in the meantime (no echo, no error).
    sender.expect_round_trip().await;
}

#[tokio::test]
async fn a_direct_send_reaches_its_target_only_as_a_direct_event() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 3).await;
    let (a, b) = (c[0].client_id(), c[1].client_id());
    c[0].send_to(&[b], b"psst").await;
    // `expect_direct` accepts a Direct event only: a Broadcast of the same bytes fails it.
    c[1].expect_direct(a, b"psst").await;
    let (first, rest) = c.split_at_mut(1);
    let (second, third) = rest.split_at_mut(1);
    marker(&mut first[0], &mut [&mut second[0], &mut third[0]]).await;
}

#[tokio::test]
async fn each_target_gets_it_once_and_the_sender_never_does() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 4).await;
    let ids: Vec<Uuid> = c.iter().map(|c| c.client_id()).collect();
    // b twice, the sender itself, c; d is not named.
    c[0].send_to(&[ids[1], ids[0], ids[1], ids[2]], b"team")
        .await;
    c[1].expect_direct(ids[0], b"team").await;
    c[2].expect_direct(ids[0], b"team").await;
    let (sender, others) = c.split_first_mut().unwrap();
    let mut others: Vec<&mut TestClient> = others.iter_mut().collect();
    marker(sender, &mut others).await;
}

/// Refuses a direct send whose data is "deny" (no reason) or "deny:why" (reason "why"), and
/// records the targets of every send it sees.
#[derive(Default, Clone)]
struct Gate {
    seen: Arc<Mutex<Vec<Vec<Uuid>>>>,
}

impl ServerHandler for Gate {
    fn on_direct(&self, direct: &DirectRequest<'_>) -> Result<(), String> {
        self.seen.lock().unwrap().push(direct.targets.to_vec());
        match direct.data {
            b"deny" => Err(String::new()),
            b"deny:why" => Err("why".to_owned()),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn on_direct_refuses_with_and_without_a_reason_and_nobody_receives() {
    let gate = Gate::default();
    let relay = TestRelay::start(Server::builder().handler(gate.clone())).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 2).await;
    let b = c[1].client_id();
    c[0].send_to(&[b], b"deny").await;
    assert_eq!(
        c[0].expect_error("direct rejected").await,
        "direct rejected"
    );
    c[0].send_to(&[b, b], b"deny:why").await;
    assert_eq!(
        c[0].expect_error("direct rejected").await,
        "direct rejected: why"
    );
    let (sender, other) = c.split_at_mut(1);
    marker(&mut sender[0], &mut [&mut other[0]]).await;
    // The hook saw the targets as the client listed them.
    assert_eq!(*gate.seen.lock().unwrap(), vec![vec![b], vec![b, b]]);
}

#[tokio::test]
async fn a_target_outside_the_room_means_nobody_gets_it() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    relay.create_room("elsewhere");
    let mut c = relay.join_all("arena", 2).await;
    let outsider = relay.joined("elsewhere").await;
    let stranger = Uuid::from_u128(7);
    let b = c[1].client_id();
    // b is a member, but the outsider is not: b does not get it either. The first
    // non-member in the client's order is named.
    c[0].send_to(&[b, outsider.client_id(), stranger], b"psst")
        .await;
    assert_eq!(
        c[0].expect_error("not in the room").await,
        format!("not in the room: {}", outsider.client_id())
    );
    c[0].send_to(&[stranger, b], b"psst").await;
    assert_eq!(
        c[0].expect_error("not in the room").await,
        format!("not in the room: {stranger}")
    );
    let (sender, other) = c.split_at_mut(1);
    marker(&mut sender[0], &mut [&mut other[0]]).await;
}

#[tokio::test]
async fn a_direct_send_outside_a_room_is_an_error() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let member = relay.joined("arena").await;
    let mut loner = relay.client().await;
    loner.send_to(&[member.client_id()], b"psst").await;
    assert_eq!(loner.expect_error("not in a room").await, "not in a room");
}

#[tokio::test]
async fn a_direct_send_in_a_deleted_room_is_an_error() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 2).await;
    assert!(relay.handle().delete_room("arena"));
    let b = c[1].client_id();
    c[0].send_to(&[b], b"psst").await;
    assert_eq!(
        c[0].expect_error("room deleted").await,
        "room deleted: arena"
    );
    c[1].expect_round_trip().await;
}

#[tokio::test]
async fn the_payload_limit_counts_the_targets() {
    let relay = TestRelay::start(Server::builder().max_payload(100)).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 2).await;
    let (a, b) = (c[0].client_id(), c[1].client_id());
    // 6 targets (96 bytes) and 4 bytes of data: exactly the limit, relayed.
    c[0].send_to(&[b; 6], b"1234").await;
    c[1].expect_direct(a, b"1234").await;
    // One byte more, although the data alone is far under the limit: disconnected.
    c[0].send_to(&[b; 6], b"12345").await;
    c[0].expect_disconnect(DisconnectKind::PayloadTooLarge)
        .await;
    c[1].expect_member_left(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_a_direct_send_for_that_target_only() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder).channel_capacity(8)).await;
    relay.create_room("arena");
    let mut c = relay.join_all("arena", 2).await;
    let (mut sender, mut fast) = (c.remove(0), c.remove(0));
    let slow = relay.joined("arena").await.stop_reading();
    sender.expect_member_joined(slow.client_id()).await;
    fast.expect_member_joined(slow.client_id()).await;
    // In lockstep with the fast target, until the slow one's socket buffers and 8-frame
    // queue are full (at most 256 MiB).
    let targets = [slow.client_id(), fast.client_id()];
    let mut data = vec![7u8; 60 * 1024];
    let mut dropped = None;
    for i in 0..4096u32 {
        data[..4].copy_from_slice(&i.to_le_bytes());
        sender.send_to(&targets, &data).await;
        fast.expect_direct(sender.client_id(), &data).await;
        dropped = std::iter::from_fn(|| hooks.try_recv().ok())
            .find(|h| matches!(h, Hook::Backpressure(..)));
        if dropped.is_some() {
            break;
        }
    }
    assert_eq!(
        dropped.expect("the slow target's queue never filled"),
        Hook::Backpressure(slow.client_id(), "arena".into())
    );
    drop(slow);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_on_another_relay_gets_it_through_the_broker() {
    use ghost_sync::ServerEvent;
    use relays::{events_until_marker, next_event, room_with, stop};

    let broker = broker::Broker::start();
    let cluster = relays::relays(&broker.url(), &broker::prefix("direct"), 2).await;
    let [mut a, mut b, mut c, mut far]: [_; 4] = room_with(&cluster, "arena", &[0, 0, 0, 1])
        .await
        .try_into()
        .unwrap();
    // To one member here and one on the other relay; c is not named.
    a.send_to(&[b.client_id(), far.client_id()], b"psst")
        .await
        .unwrap();
    for client in [&mut b, &mut far] {
        loop {
            match next_event(client).await {
                ServerEvent::Direct { sender_id, data } => {
                    assert_eq!((sender_id, &data[..]), (a.client_id(), &b"psst"[..]));
                    break;
                }
                ServerEvent::PlayerJoined { .. } => continue,
                other => panic!("expected the direct send, got {other:?}"),
            }
        }
    }
    let seen = events_until_marker(&mut c, &cluster[0].handle).await;
    assert!(
        seen.iter()
            .all(|e| matches!(e, ServerEvent::PlayerJoined { .. })),
        "c was not named: {seen:?}"
    );
    // A target in no room of the cluster is still refused, and nobody gets it.
    let stranger = ghost_sync::Uuid::new_v4();
    a.send_to(&[far.client_id(), stranger], b"again")
        .await
        .unwrap();
    loop {
        match next_event(&mut a).await {
            ServerEvent::Error(why) => {
                assert_eq!(why, format!("not in the room: {stranger}"));
                break;
            }
            ServerEvent::PlayerJoined { .. } => continue,
            other => panic!("expected the refusal, got {other:?}"),
        }
    }
    let seen = events_until_marker(&mut far, &cluster[1].handle).await;
    assert!(seen.is_empty(), "nobody got the refused send: {seen:?}");
    drop((a, b, c, far));
    stop(cluster).await;
}
