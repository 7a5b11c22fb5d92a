//! Room state across relays: the broker keeps it and every relay's copy follows its feed, so
//! a joiner anywhere (on a relay with no member in the room, on a relay started later, after
//! the broker restarted) gets the whole state in first-set order, a leaver's entries go
//! everywhere, and two relays setting one key at once end with the same value.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{Client, RoomStateEntry, ServerEvent, ServerHandle, Uuid, SERVER_ID};
use std::time::Duration;

fn entry(owner: Uuid, key: &str, value: &[u8]) -> RoomStateEntry {
    RoomStateEntry {
        key: key.to_owned(),
        owner,
        value: value.to_vec().into(),
    }
}

/// `handle`'s copy of "lobby"'s state.
fn state_of(handle: &ServerHandle) -> Vec<RoomStateEntry> {
    handle.room_state("lobby").unwrap_or_default()
}

/// Waits until `handle`'s copy of "lobby"'s state holds `n` entries: a client's set has
/// arrived (before the test sets one through the handle, whose order it checks).
async fn holds(handle: &ServerHandle, n: usize) {
    eventually("the relay holds the client's set", || {
        state_of(handle).len() == n
    })
    .await;
}

/// Joins "lobby" and returns the state entries of the snapshot, read up to `marker` (a
/// broadcast that must come after them).
async fn join_for_snapshot(client: &mut Client, marker: &[u8]) -> Vec<RoomStateEntry> {
    join(client, "lobby").await;
    let mut snapshot = Vec::new();
    loop {
        match next_event(client).await {
            ServerEvent::State { owner, key, value } => {
                snapshot.push(RoomStateEntry { key, owner, value })
            }
            ServerEvent::Broadcast { data, .. } if data == marker => return snapshot,
            other => panic!("expected the snapshot, then the marker; got {other:?}"),
        }
    }
}

/// Live changes reach the members on other relays, as large as `max_payload` allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_members_on_other_relays_live() {
    let broker = Broker::start();
    let cluster = relays(&broker.url(), &prefix("state"), 2).await;
    let [mut a, mut far]: [_; 2] = room_with(&cluster, "lobby", &[0, 1])
        .await
        .try_into()
        .unwrap();
    let value = vec![9u8; ghost_sync::server::DEFAULT_MAX_PAYLOAD - 1];
    a.set_state("k", &value).await.unwrap();
    assert_eq!(
        next_event(&mut far).await,
        ServerEvent::State {
            owner: a.client_id(),
            key: "k".into(),
            value: value.into()
        }
    );
    // That entry fills the room's state: deleted, and the deletion goes across too.
    a.set_state("k", b"").await.unwrap();
    assert_eq!(
        next_event(&mut far).await,
        ServerEvent::State {
            owner: a.client_id(),
            key: "k".into(),
            value: "".into()
        }
    );
    cluster[0]
        .handle
        .set_room_state("lobby", "map", b"dust")
        .unwrap();
    assert_eq!(
        next_event(&mut far).await,
        ServerEvent::State {
            owner: SERVER_ID,
            key: "map".into(),
            value: "dust".into()
        }
    );
    drop((a, far));
    stop(cluster).await;
}

/// A relay with no member in the room keeps its state all the same: its first joiner gets
/// every entry, a member's and the server's, in first-set order (an overwrite keeps its
/// place), then live traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_on_a_relay_without_members_gets_the_whole_state_in_order() {
    let broker = Broker::start();
    let cluster = relays(&broker.url(), &prefix("state-empty-relay"), 2).await;
    let [mut setter]: [_; 1] = room_with(&cluster, "lobby", &[0]).await.try_into().unwrap();
    setter.set_state("a", b"1").await.unwrap();
    holds(&cluster[0].handle, 1).await;
    cluster[0]
        .handle
        .set_room_state("lobby", "map", b"dust")
        .unwrap();
    setter.set_state("b", b"2").await.unwrap();
    setter.set_state("a", b"3").await.unwrap();
    let want = vec![
        entry(setter.client_id(), "a", b"3"),
        entry(SERVER_ID, "map", b"dust"),
        entry(setter.client_id(), "b", b"2"),
    ];
    eventually("relay 1 holds the room's state", || {
        state_of(&cluster[1].handle) == want
    })
    .await;

    let mut joiner = connect(cluster[1].addr).await;
    join(&mut joiner, "lobby").await;
    // Its snapshot came with its member list; the marker only proves nothing else follows.
    let snapshot = {
        let mut snapshot = Vec::new();
        while snapshot.len() < want.len() {
            match next_event(&mut joiner).await {
                ServerEvent::State { owner, key, value } => {
                    snapshot.push(RoomStateEntry { key, owner, value })
                }
                other => panic!("expected the snapshot, got {other:?}"),
            }
        }
        snapshot
    };
    assert_eq!(snapshot, want);
    loop {
        match next_event(&mut setter).await {
            ServerEvent::PlayerJoined { client_id } if client_id == joiner.client_id() => break,
            // The backend's set reaches the setter too; only its own sets are not echoed.
            ServerEvent::State { .. } => continue,
            other => panic!("expected the joiner, got {other:?}"),
        }
    }
    setter.broadcast(b"live").await.unwrap();
    match next_event(&mut joiner).await {
        ServerEvent::Broadcast { data, .. } => assert_eq!(data, "live"),
        other => panic!("expected live traffic, got {other:?}"),
    }
    drop((setter, joiner));
    stop(cluster).await;
}

/// A relay started after the state was set loads it from the broker, without the entries
/// of a member that left before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_later_loads_the_state_without_a_leavers_entries() {
    let broker = Broker::start();
    let prefix = prefix("state-late-relay");
    let first = vec![relay(&broker.url(), &prefix, "r0").await];
    let [mut stays, mut leaver]: [_; 2] = room_with(&first, "lobby", &[0, 0])
        .await
        .try_into()
        .unwrap();
    stays.set_state("x", b"1").await.unwrap();
    leaver.set_state("y", b"2").await.unwrap();
    holds(&first[0].handle, 2).await;
    first[0]
        .handle
        .set_room_state("lobby", "map", b"dust")
        .unwrap();
    eventually("r0 holds three entries", || {
        state_of(&first[0].handle).len() == 3
    })
    .await;
    drop(leaver);
    eventually("the leaver is gone", || {
        first[0].handle.room_client_count("lobby") == Some(1)
    })
    .await;

    let late = relay(&broker.url(), &prefix, "late").await;
    let want = vec![
        entry(stays.client_id(), "x", b"1"),
        entry(SERVER_ID, "map", b"dust"),
    ];
    eventually("the late relay loaded the state", || {
        state_of(&late.handle) == want
    })
    .await;
    let mut joiner = connect(late.addr).await;
    let joiner_id = joiner.client_id();
    let marker = async {
        // Sent once the joiner is in: it comes after the snapshot.
        loop {
            match next_event(&mut stays).await {
                ServerEvent::PlayerJoined { client_id } if client_id == joiner_id => break,
                ServerEvent::PlayerJoined { .. } => continue,
                ServerEvent::PlayerLeft { .. } | ServerEvent::State { .. } => continue,
                other => panic!("expected the joiner, got {other:?}"),
            }
        }
        stays.broadcast(b"marker").await.unwrap();
    };
    let (snapshot, ()) = tokio::join!(join_for_snapshot(&mut joiner, b"marker"), marker);
    assert_eq!(snapshot, want);
    drop((stays, joiner));
    stop(first).await;
    stop(vec![late]).await;
}

/// A member's entries go with it on every relay, after its `PlayerLeft`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_entries_go_on_every_relay() {
    let broker = Broker::start();
    let cluster = relays(&broker.url(), &prefix("state-leaver"), 2).await;
    let [setter, mut far]: [_; 2] = room_with(&cluster, "lobby", &[0, 1])
        .await
        .try_into()
        .unwrap();
    let mut setter = setter;
    setter.set_state("setter/ready", b"yes").await.unwrap();
    loop {
        match next_event(&mut far).await {
            ServerEvent::State { key, .. } if key == "setter/ready" => break,
            ServerEvent::PlayerJoined { .. } => continue,
            other => panic!("expected the change, got {other:?}"),
        }
    }
    let setter_id = setter.client_id();
    drop(setter);
    match next_event(&mut far).await {
        ServerEvent::PlayerLeft { client_id } if client_id == setter_id => {}
        other => panic!("expected the setter's PlayerLeft, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut far).await,
        ServerEvent::State {
            owner: setter_id,
            key: "setter/ready".into(),
            value: "".into()
        }
    );
    for relay in &cluster {
        eventually("the entry is gone", || state_of(&relay.handle).is_empty()).await;
    }
    drop(far);
    stop(cluster).await;
}

/// The broker restarts empty: the relays write the state back (their copies are not wiped
/// by the reload), and a relay started after that loads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_a_broker_restart() {
    let mut broker = Broker::start();
    let prefix = prefix("state-restart");
    let cluster = relays(&broker.url(), &prefix, 2).await;
    let [mut a, mut far]: [_; 2] = room_with(&cluster, "lobby", &[0, 1])
        .await
        .try_into()
        .unwrap();
    a.set_state("k", b"v").await.unwrap();
    holds(&cluster[0].handle, 1).await;
    cluster[0]
        .handle
        .set_room_state("lobby", "map", b"dust")
        .unwrap();
    let want = vec![
        entry(a.client_id(), "k", b"v"),
        entry(SERVER_ID, "map", b"dust"),
    ];
    for relay in &cluster {
        eventually("every relay holds it", || state_of(&relay.handle) == want).await;
    }

    broker.restart();
    // Cross-relay traffic again: both relays are back and wrote their state.
    let mut n = 0u32;
    'resumed: loop {
        n += 1;
        let line = format!("after-{n}");
        a.broadcast(line.as_bytes()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match far.recv().await {
                    Ok(Some(ServerEvent::Broadcast { data, .. })) if data == line.as_bytes() => {
                        return
                    }
                    Ok(Some(_)) => continue,
                    other => panic!("the connection ended: {other:?}"),
                }
            }
        })
        .await;
        if got.is_ok() {
            break 'resumed;
        }
        assert!(n < 40, "cross-relay traffic did not resume");
    }
    for relay in &cluster {
        assert_eq!(state_of(&relay.handle), want, "a relay's copy survives");
    }
    let late = relay(&broker.url(), &prefix, "late").await;
    eventually("the late relay loaded the state", || {
        state_of(&late.handle) == want
    })
    .await;
    drop((a, far));
    stop(cluster).await;
    stop(vec![late]).await;
}

/// Two relays set one key at once, round after round: every relay (and the broker, as a
/// relay started at the end loads it) ends each round with the same value, and so does
/// each member's view of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sets_of_one_key_on_two_relays_converge() {
    const ROUNDS: usize = 30;
    let broker = Broker::start();
    let prefix = prefix("state-race");
    let cluster = relays(&broker.url(), &prefix, 2).await;
    let [mut a, mut b]: [_; 2] = room_with(&cluster, "lobby", &[0, 1])
        .await
        .try_into()
        .unwrap();
    let mut last = Vec::new();
    for round in 0..ROUNDS {
        let (va, vb) = (format!("a{round}"), format!("b{round}"));
        let (sa, sb) = tokio::join!(
            a.set_state("k", va.as_bytes()),
            b.set_state("k", vb.as_bytes())
        );
        sa.unwrap();
        sb.unwrap();
        eventually("both relays agree", || {
            let (here, there) = (state_of(&cluster[0].handle), state_of(&cluster[1].handle));
            here == there
                && here.len() == 1
                && (here[0].value == va.as_bytes() || here[0].value == vb.as_bytes())
        })
        .await;
        last = state_of(&cluster[0].handle);
    }
    // What each member was told ends at that value too (its own set, or the other's).
    let agreed = last[0].value.to_vec();
    for (client, own) in [
        (&mut a, format!("a{}", ROUNDS - 1)),
        (&mut b, format!("b{}", ROUNDS - 1)),
    ] {
        let mut view = own.into_bytes();
        while view != agreed {
            match within("the member's view converges", client.recv()).await {
                Ok(Some(ServerEvent::State { value, .. })) => view = value.to_vec(),
                Ok(Some(ServerEvent::PlayerJoined { .. })) => continue,
                other => panic!("expected a State, got {other:?}"),
            }
        }
    }
    let late = relay(&broker.url(), &prefix, "late").await;
    eventually("the broker holds it too", || state_of(&late.handle) == last).await;
    drop((a, b));
    stop(cluster).await;
    stop(vec![late]).await;
}

/// A member sets a key as another relay deletes the room, round after round: when the set
/// reaches the broker after the delete, nothing keeps it (and nothing reads it back), so the
/// relay that made it must not go on holding off the other relays' changes to that key in
/// the next room of the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_that_the_broker_gets_after_a_delete_holds_off_nothing_in_the_next_room() {
    const ROUNDS: usize = 12;
    let broker = Broker::start();
    let cluster = relays(&broker.url(), &prefix("state-deleted"), 2).await;
    let exact = cluster[1].handle.cluster().unwrap();
    for round in 0..ROUNDS {
        let [mut a, mut b]: [_; 2] = room_with(&cluster, "lobby", &[0, 1])
            .await
            .try_into()
            .unwrap();
        // The room this round: the previous round's set, late or not, is not held over.
        let theirs = format!("b{round}");
        b.set_state("k", theirs.as_bytes()).await.unwrap();
        let want = vec![entry(b.client_id(), "k", theirs.as_bytes())];
        eventually("relay 0 applies the other relay's set", || {
            state_of(&cluster[0].handle) == want
        })
        .await;
        // The race: the set may reach the broker before the delete, or after it.
        let (deleted, set) = tokio::join!(exact.delete_room("lobby"), a.set_state("k", b"mine"));
        assert!(deleted.unwrap());
        set.unwrap();
        for relay in &cluster {
            eventually("the room is gone", || !relay.handle.room_exists("lobby")).await;
        }
        drop((a, b));
        for relay in &cluster {
            eventually("its members left", || relay.handle.client_count() == 0).await;
        }
    }
    stop(cluster).await;
}
