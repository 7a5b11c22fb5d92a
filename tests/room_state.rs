//! Room state end to end over loopback: a joiner's snapshot in first-set order, overwrites,
//! deletes, no echo, the entries of a member that leaves, the server's entries, the bounds,
//! and a set racing a join seen exactly once.

use ghost_sync::protocol::ClientFrame;
use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{RoomStateEntry, Server, ServerEvent, SyncError, SERVER_ID};

/// `sender` broadcasts a marker and `other` must get it next: nothing else came before it.
async fn marker(sender: &mut TestClient, other: &mut TestClient) {
    sender.broadcast(b"marker").await;
    other.expect_broadcast(sender.client_id(), b"marker").await;
}

#[tokio::test]
async fn a_late_joiner_gets_the_state_after_its_member_list_then_only_live_traffic() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut a = relay.joined("lobby").await;
    a.set_state("k1", b"v1").await;
    a.set_state("k2", b"v2").await;
    // Overwritten: keeps its place, takes its last value.
    a.set_state("k1", b"v3").await;
    // The setter gets no echo of any of them.
    a.expect_round_trip().await;

    let mut b = relay.client().await;
    b.join("lobby").await;
    assert_eq!(b.expect_joined("lobby").await, vec![a.client_id()]);
    b.expect_state(a.client_id(), "k1", b"v3").await;
    b.expect_state(a.client_id(), "k2", b"v2").await;
    a.expect_member_joined(b.client_id()).await;
    marker(&mut a, &mut b).await;

    // Joining again gives the same snapshot.
    b.join("lobby").await;
    b.expect_joined("lobby").await;
    b.expect_state(a.client_id(), "k1", b"v3").await;
    b.expect_state(a.client_id(), "k2", b"v2").await;
    marker(&mut a, &mut b).await;
}

#[tokio::test]
async fn a_change_reaches_the_others_and_an_empty_value_deletes() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut c = relay.join_all("lobby", 2).await;
    let (mut a, mut b) = (c.remove(0), c.remove(0));
    a.set_state("k", b"v").await;
    b.expect_state(a.client_id(), "k", b"v").await;
    a.set_state("k", b"").await;
    b.expect_state(a.client_id(), "k", b"").await;
    // Deleting what is not there does nothing and tells nobody.
    a.set_state("missing", b"").await;
    marker(&mut a, &mut b).await;
    a.expect_round_trip().await;
    assert_eq!(relay.handle().room_state("lobby").unwrap(), vec![]);

    // A joiner gets no trace of the deleted entry.
    let mut late = relay.client().await;
    late.join("lobby").await;
    late.expect_joined("lobby").await;
    a.expect_member_joined(late.client_id()).await;
    marker(&mut a, &mut late).await;
}

#[tokio::test]
async fn a_leaver_s_entries_go_and_the_server_s_stay() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut c = relay.join_all("lobby", 3).await;
    let (mut a, mut b, mut d) = (c.remove(0), c.remove(0), c.remove(0));
    let (ida, idb) = (a.client_id(), b.client_id());
    relay
        .handle()
        .set_room_state("lobby", "map", b"dust")
        .unwrap();
    a.set_state("a1", b"1").await;
    a.set_state("a2", b"2").await;
    b.set_state("b1", b"3").await;
    d.expect_state(SERVER_ID, "map", b"dust").await;
    d.expect_state(ida, "a1", b"1").await;
    d.expect_state(ida, "a2", b"2").await;
    d.expect_state(idb, "b1", b"3").await;
    b.expect_state(SERVER_ID, "map", b"dust").await;
    b.expect_state(ida, "a1", b"1").await;
    b.expect_state(ida, "a2", b"2").await;

    // On request: its PlayerLeft, then an empty State per entry it owned, in their order.
    a.leave().await;
    a.wait_for("its Left", |e| matches!(e, ServerEvent::Left { .. }))
        .await;
    for other in [&mut b, &mut d] {
        other.expect_member_left(ida).await;
        other.expect_state(ida, "a1", b"").await;
        other.expect_state(ida, "a2", b"").await;
    }
    // By disconnecting: the same.
    b.sever();
    d.expect_member_left(idb).await;
    d.expect_state(idb, "b1", b"").await;

    let state = relay.handle().room_state("lobby").unwrap();
    assert_eq!(
        state,
        vec![RoomStateEntry {
            key: "map".into(),
            owner: SERVER_ID,
            value: "dust".into()
        }]
    );
    let mut late = relay.client().await;
    late.join("lobby").await;
    late.expect_joined("lobby").await;
    late.expect_state(SERVER_ID, "map", b"dust").await;
    d.expect_member_joined(late.client_id()).await;
    marker(&mut d, &mut late).await;
}

#[tokio::test]
async fn the_handle_sets_deletes_and_reads_the_state() {
    let relay = TestRelay::start(Server::builder().max_payload(100)).await;
    relay.create_room("lobby");
    let mut member = relay.joined("lobby").await;
    let handle = relay.handle();
    handle.set_room_state("lobby", "map", b"dust").unwrap();
    member.expect_state(SERVER_ID, "map", b"dust").await;
    assert_eq!(handle.room_state("lobby").unwrap()[0].value, "dust");
    handle.set_room_state("lobby", "map", b"").unwrap();
    member.expect_state(SERVER_ID, "map", b"").await;
    assert!(handle.room_state("lobby").unwrap().is_empty());

    assert!(matches!(
        handle.set_room_state("nowhere", "map", b"x"),
        Err(SyncError::RoomNotFound(id)) if id == "nowhere"
    ));
    assert!(matches!(
        handle.room_state("nowhere"),
        Err(SyncError::RoomNotFound(_))
    ));
    assert!(matches!(
        handle.set_room_state("lobby", "", b"x"),
        Err(SyncError::InvalidRequest(why)) if why == "invalid state key: empty"
    ));
    assert!(matches!(
        handle.set_room_state("lobby", &"k".repeat(256), b"x"),
        Err(SyncError::InvalidRequest(why)) if why == "invalid state key: longer than 255 bytes"
    ));
    assert!(matches!(
        handle.set_room_state("lobby", "map", &[0; 98]),
        Err(SyncError::PayloadTooLarge)
    ));
    member.expect_round_trip().await;
}

#[tokio::test]
async fn past_the_bounds_a_set_is_refused_and_the_old_value_kept() {
    // A payload limit above the state's, so that only the state's bound refuses.
    let relay = TestRelay::start(Server::builder().max_payload(128 * 1024)).await;
    relay.create_room("lobby");
    let mut a = relay.joined("lobby").await;
    for n in 0..256 {
        a.set_state(&format!("k{n}"), b"v").await;
    }
    a.set_state("one-more", b"v").await;
    assert_eq!(
        a.expect_error("room state full").await,
        "room state full: lobby: 256 keys"
    );
    // A key that exists can still change.
    a.set_state("k0", b"w").await;
    a.expect_round_trip().await;
    let handle = relay.handle();
    assert!(matches!(
        handle.set_room_state("lobby", "one-more", b"v"),
        Err(SyncError::RoomStateFull(why)) if why == "lobby: 256 keys"
    ));
    let state = handle.room_state("lobby").unwrap();
    assert_eq!((state.len(), &state[0].value[..]), (256, &b"w"[..]));

    // Bytes: 65 536 of keys and values at most.
    relay.create_room("bytes");
    let mut b = relay.joined("bytes").await;
    b.set_state("a", vec![1; 60_000]).await;
    b.set_state("b", vec![2; 5_535]).await; // 60 001 + 5 536: one byte over
    assert_eq!(
        b.expect_error("room state full").await,
        "room state full: bytes: 65536 bytes"
    );
    b.set_state("a", vec![3; 65_536]).await; // an overwrite counts its new size
    b.expect_error("room state full: bytes: 65536 bytes").await;
    b.set_state("b", vec![2; 5_534]).await; // exactly the bound
    b.expect_round_trip().await;
    assert!(matches!(
        handle.set_room_state("bytes", "c", b"x"),
        Err(SyncError::RoomStateFull(why)) if why == "bytes: 65536 bytes"
    ));
    let state = handle.room_state("bytes").unwrap();
    assert_eq!(state[0].value, vec![1; 60_000], "the old value is kept");
    assert_eq!(state.len(), 2);
}

#[tokio::test]
async fn the_bounds_are_configurable() {
    let relay = TestRelay::start(Server::builder().room_state_limits(1, 10)).await;
    relay.create_room("lobby");
    let mut a = relay.joined("lobby").await;
    a.set_state("k", b"123456789").await;
    a.set_state("j", b"").await; // a delete of a missing key is never over a bound
    a.set_state("j", b"1").await;
    assert_eq!(
        a.expect_error("room state full").await,
        "room state full: lobby: 1 keys"
    );
    a.set_state("k", b"1234567890").await;
    assert_eq!(
        a.expect_error("room state full").await,
        "room state full: lobby: 10 bytes"
    );
    a.expect_round_trip().await;
}

#[tokio::test]
async fn bad_keys_and_places_are_refused() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut loner = relay.client().await;
    loner.set_state("k", b"v").await;
    assert_eq!(loner.expect_error("not in a room").await, "not in a room");

    let mut a = relay.joined("lobby").await;
    // Raw frames: the real client refuses to send these.
    a.send_frame(&ClientFrame::SetState {
        key: "",
        value: b"v",
    })
    .await;
    assert_eq!(
        a.expect_error("invalid state key").await,
        "invalid state key: empty"
    );
    a.set_state(&"k".repeat(256), b"v").await;
    assert_eq!(
        a.expect_error("invalid state key").await,
        "invalid state key: longer than 255 bytes"
    );
    a.set_state(&"k".repeat(255), b"v").await; // the longest key
    a.expect_round_trip().await;
    assert!(relay.handle().delete_room("lobby"));
    a.set_state("k", b"v").await;
    assert_eq!(a.expect_error("room deleted").await, "room deleted: lobby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_racing_a_join_is_seen_exactly_once() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut setter = relay.joined("lobby").await;
    let mut joiner = relay.client().await;
    for round in 0..100 {
        let key = format!("k{round}");
        // Two sockets, two relay tasks: the set and the join really race.
        tokio::join!(setter.set_state(&key, b"v"), joiner.join("lobby"));
        joiner.expect_joined("lobby").await;
        setter.expect_member_joined(joiner.client_id()).await;
        setter.broadcast(b"marker").await;
        // Everything up to the marker: the snapshot and whatever came live.
        let mut seen = 0;
        loop {
            match joiner.next_event().await {
                ServerEvent::State { key: k, .. } if k == key => seen += 1,
                ServerEvent::State { .. } => {}
                ServerEvent::Broadcast { data, .. } if data == "marker" => break,
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(seen, 1, "round {round}: the set seen {seen} times");
        joiner.leave().await;
        joiner.expect_left("lobby").await;
        setter.expect_member_left(joiner.client_id()).await;
    }
}

/// Joining the room again (the resync path) gets a snapshot no set can slip past: after the
/// new `Joined`, each set racing it is seen exactly once, in the snapshot or live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_racing_a_rejoin_is_seen_exactly_once_after_it() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("lobby");
    let mut setter = relay.joined("lobby").await;
    let mut joiner = relay.joined("lobby").await;
    setter.expect_member_joined(joiner.client_id()).await;
    for round in 0..100 {
        let key = format!("k{round}");
        tokio::join!(setter.set_state(&key, b"v"), joiner.join("lobby"));
        // Before the new Joined: the old view (a live State may come).
        joiner
            .wait_for("the Joined of the rejoin", |e| {
                matches!(e, ServerEvent::Joined { .. })
            })
            .await;
        // Sent after the set on the same connection, and after the Joined was queued: the
        // marker comes after the snapshot and after anything live.
        setter.broadcast(b"marker").await;
        let mut after_joined = Some(0);
        loop {
            match joiner.next_event().await {
                ServerEvent::State { key: k, .. } if k == key => {
                    if let Some(seen) = after_joined.as_mut() {
                        *seen += 1;
                    }
                }
                ServerEvent::State { .. } | ServerEvent::Members { .. } => {}
                ServerEvent::Broadcast { data, .. } if data == "marker" => break,
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(
            after_joined,
            Some(1),
            "round {round}: seen after the Joined"
        );
    }
}
