//! `max_clients` is exact across relays: with joins racing on every relay, exactly the
//! capacity gets in, and the seats of those who leave come back.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{RoomOptions, ServerEvent};

#[tokio::test]
async fn concurrent_joins_on_every_relay_fill_a_capped_room_exactly() {
    const CAPACITY: usize = 5;
    const PER_RELAY: usize = 6;
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("capacity"), 3).await;
    let duel = RoomOptions {
        max_clients: Some(CAPACITY),
    };
    relays[0].handle.create_room_with("arena", duel).unwrap();
    let mut clients = Vec::new();
    for relay in &relays {
        eventually("the room is known", || relay.handle.room_exists("arena")).await;
        for _ in 0..PER_RELAY {
            clients.push(connect(relay.addr).await);
        }
    }
    // Every join is sent before any answer is read: they race at the broker.
    for client in &mut clients {
        client.join("arena").await.unwrap();
    }
    let (mut seated, mut refused) = (Vec::new(), 0);
    for mut client in clients {
        match next_event(&mut client).await {
            ServerEvent::Joined { .. } => seated.push(client),
            ServerEvent::Error(message) => {
                assert_eq!(message, "room full: arena");
                refused += 1;
            }
            other => panic!("expected Joined or room full, got {other:?}"),
        }
    }
    assert_eq!(seated.len(), CAPACITY, "exactly the capacity got in");
    assert_eq!(refused, 3 * PER_RELAY - CAPACITY);
    let exact = relays[2].handle.cluster().unwrap();
    assert_eq!(
        exact.room_client_count("arena").await.unwrap(),
        Some(CAPACITY)
    );

    // A seat given back is free for a member of any relay.
    drop(seated.pop());
    eventually("the seat comes back", || {
        relays[1].handle.room_client_count("arena") == Some(CAPACITY - 1)
    })
    .await;
    let mut late = connect(relays[1].addr).await;
    join(&mut late, "arena").await;
    stop(relays).await;
}

#[tokio::test]
async fn a_join_whose_client_goes_away_meanwhile_gives_its_seat_back() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("abandoned"), 2).await;
    let duel = RoomOptions {
        max_clients: Some(1),
    };
    relays[0].handle.create_room_with("duel", duel).unwrap();
    eventually("the room is known", || relays[1].handle.room_exists("duel")).await;
    // The broker holds the join (frozen) while its client disconnects.
    let mut quitter = connect(relays[0].addr).await;
    broker.pause();
    quitter.join("duel").await.unwrap();
    drop(quitter);
    eventually("the quitter is gone", || {
        relays[0].handle.client_count() == 0
    })
    .await;
    broker.resume();
    // Its seat, taken or not, is free again: a client of the other relay gets it.
    let mut player = connect(relays[1].addr).await;
    let mut joined = false;
    for _ in 0..100 {
        player.join("duel").await.unwrap();
        match next_event(&mut player).await {
            ServerEvent::Joined { .. } => {
                joined = true;
                break;
            }
            ServerEvent::Error(message) => assert_eq!(message, "room full: duel"),
            other => panic!("expected Joined or room full, got {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(joined, "the seat came back");
    let exact = relays[0].handle.cluster().unwrap();
    assert_eq!(exact.room_client_count("duel").await.unwrap(), Some(1));
    stop(relays).await;
}
