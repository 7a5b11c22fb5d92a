//! Rooms are cluster-wide: created, counted, described and deleted from any relay.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{RoomOptions, ServerEvent, SyncError};

#[tokio::test]
async fn a_room_created_on_one_relay_exists_on_all_and_a_second_create_fails_everywhere() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("create"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    for relay in &relays[1..] {
        eventually("the room reaches every relay", || {
            relay.handle.room_exists("lobby")
        })
        .await;
        assert!(matches!(
            relay.handle.create_room("lobby"),
            Err(SyncError::RoomAlreadyExists(id)) if id == "lobby"
        ));
    }
    // The exact variant asks the broker: of two creates back to back on two relays, the
    // second fails even before the first one's news reached its relay.
    let (a, b) = (
        relays[1].handle.cluster().unwrap(),
        relays[2].handle.cluster().unwrap(),
    );
    a.create_room("final").await.unwrap();
    assert!(matches!(
        b.create_room("final").await,
        Err(SyncError::RoomAlreadyExists(_))
    ));
    for relay in &relays {
        eventually("one room of each id", || {
            let mut ids = relay.handle.room_ids();
            ids.sort();
            ids == ["final", "lobby"]
        })
        .await;
    }
    stop(relays).await;
}

#[tokio::test]
async fn every_relay_may_ensure_the_same_room_at_startup() {
    let broker = Broker::start();
    let prefix = prefix("ensure");
    let mut relays = Vec::new();
    for i in 0..3 {
        let relay = relay(&broker.url(), &prefix, &format!("r{i}")).await;
        // What every relay's program runs at startup: none of them fails.
        relay.handle.ensure_room("lobby").unwrap();
        relays.push(relay);
    }
    for relay in &relays {
        assert_eq!(relay.handle.room_ids(), ["lobby"]);
        // Other options are a conflict, not a silent mismatch.
        let duel = RoomOptions {
            max_clients: Some(2),
        };
        assert!(matches!(
            relay.handle.ensure_room_with("lobby", duel),
            Err(SyncError::RoomAlreadyExists(_))
        ));
    }
    stop(relays).await;
}

#[tokio::test]
async fn metadata_set_on_one_relay_is_read_on_another() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("meta"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    eventually("the room reaches r1", || {
        relays[1].handle.room_exists("lobby")
    })
    .await;
    relays[1]
        .handle
        .set_room_meta("lobby", "map", "dust")
        .unwrap();
    for relay in &relays {
        eventually("the metadata reaches every relay", || {
            relay.handle.get_room_meta("lobby", "map").as_deref() == Some("dust")
        })
        .await;
    }
    stop(relays).await;
}

#[tokio::test]
async fn counts_and_member_lists_include_every_relay() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("counts"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for relay in &relays {
        eventually("the room is known", || relay.handle.room_exists("lobby")).await;
        let mut client = connect(relay.addr).await;
        join(&mut client, "lobby").await;
        ids.push(client.client_id());
        clients.push(client);
    }
    ids.sort();
    for relay in &relays {
        eventually("every relay counts the three members", || {
            relay.handle.room_client_count("lobby") == Some(3)
        })
        .await;
        let mut members = relay.handle.room_members("lobby").unwrap();
        members.sort();
        assert_eq!(members, ids);
        assert_eq!(relay.handle.room_ids(), ["lobby"]);
        let exact = relay.handle.cluster().unwrap();
        assert_eq!(exact.room_client_count("lobby").await.unwrap(), Some(3));
    }
    drop(clients);
    for relay in &relays {
        eventually("the leaves are counted everywhere", || {
            relay.handle.room_client_count("lobby") == Some(0)
        })
        .await;
    }
    stop(relays).await;
}

#[tokio::test]
async fn a_soft_delete_reaches_every_relay_and_a_new_room_of_that_id_starts_empty() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("delete"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    let mut clients = Vec::new();
    for relay in &relays {
        eventually("the room is known", || relay.handle.room_exists("lobby")).await;
        let mut client = connect(relay.addr).await;
        join(&mut client, "lobby").await;
        clients.push(client);
    }
    for relay in &relays {
        eventually("all three seen", || {
            relay.handle.room_client_count("lobby") == Some(3)
        })
        .await;
    }
    assert!(relays[1].handle.delete_room("lobby"));
    for relay in &relays {
        eventually("the delete reaches every relay", || {
            !relay.handle.room_exists("lobby")
        })
        .await;
    }
    for client in &mut clients {
        client.broadcast(b"still here?").await.unwrap();
        loop {
            match next_event(client).await {
                ServerEvent::Error(message) => {
                    assert_eq!(message, "room deleted: lobby");
                    break;
                }
                // Presence of the others, racing with the delete.
                ServerEvent::PlayerJoined { .. } => continue,
                other => panic!("expected the delete's error, got {other:?}"),
            }
        }
    }
    relays[2].handle.create_room("lobby").unwrap();
    for relay in &relays {
        eventually("the new room reaches every relay", || {
            relay.handle.room_client_count("lobby") == Some(0)
        })
        .await;
    }
    let mut newcomer = connect(relays[0].addr).await;
    assert!(
        join(&mut newcomer, "lobby").await.is_empty(),
        "the new room starts empty"
    );
    stop(relays).await;
}

#[tokio::test]
async fn a_change_made_just_before_shutdown_still_reaches_the_other_relays() {
    let broker = Broker::start();
    let mut relays = relays(&broker.url(), &prefix("last-words"), 2).await;
    relays[0].handle.create_room("lobby").unwrap();
    eventually("the room reaches r1", || {
        relays[1].handle.room_exists("lobby")
    })
    .await;
    let leaving = relays.remove(0);
    // Queued toward the broker, then the relay stops at once.
    assert!(leaving.handle.delete_room("lobby"));
    within("shutdown", leaving.handle.shutdown()).await;
    eventually("the delete reached the other relay", || {
        !relays[0].handle.room_exists("lobby")
    })
    .await;
    stop(relays).await;
}
