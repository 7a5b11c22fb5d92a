//! Broadcasts across relays: every other member on every relay, never the sender, each
//! sender's order kept, no duplicates; and a room whose members share one relay never
//! touches the broker.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{Client, ServerEvent, Uuid, SERVER_ID};
use std::collections::HashMap;

/// `per_relay` members on each relay, all in `room`, each having seen every other one.
async fn members(relays: &[Relay], room: &str, per_relay: usize) -> Vec<Client> {
    relays[0].handle.create_room(room).unwrap();
    let mut clients = Vec::new();
    for relay in relays {
        eventually("the room is known", || relay.handle.room_exists(room)).await;
        for _ in 0..per_relay {
            let mut client = connect(relay.addr).await;
            join(&mut client, room).await;
            clients.push(client);
        }
    }
    let total = relays.len() * per_relay;
    for relay in relays {
        eventually("every relay sees every member", || {
            relay.handle.room_client_count(room) == Some(total)
        })
        .await;
    }
    // Each member's own view: the earlier ones were listed, the later ones announced.
    for (i, client) in clients.iter_mut().enumerate() {
        for _ in i + 1..total {
            assert!(matches!(
                next_event(client).await,
                ServerEvent::PlayerJoined { .. }
            ));
        }
    }
    clients
}

#[tokio::test]
async fn a_broadcast_reaches_every_other_member_on_every_relay_in_order_once() {
    const MESSAGES: u32 = 200;
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("broadcast"), 3).await;
    let clients = members(&relays, "lobby", 2).await;
    let ids: Vec<Uuid> = clients.iter().map(|c| c.client_id()).collect();
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for client in clients {
        let (tx, rx) = client.split();
        senders.push(tx);
        readers.push(rx);
    }
    let sending = senders.into_iter().map(|mut tx| {
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                tx.broadcast(&n.to_le_bytes()).await.unwrap();
            }
            tx
        })
    });
    let sending: Vec<_> = sending.collect();
    for (me, mut rx) in readers.into_iter().enumerate() {
        let mut next: HashMap<Uuid, u32> = HashMap::new();
        let expected = (ids.len() as u32 - 1) * MESSAGES;
        for _ in 0..expected {
            match within("a broadcast", rx.recv()).await {
                Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
                    assert_ne!(sender_id, ids[me], "a sender never gets its own frame");
                    let n = u32::from_le_bytes(data[..].try_into().unwrap());
                    let want = next.entry(sender_id).or_insert(0);
                    assert_eq!(
                        n, *want,
                        "in order and without duplicates, from every relay"
                    );
                    *want += 1;
                }
                other => panic!("expected a broadcast, got {other:?}"),
            }
        }
        assert_eq!(next.len(), ids.len() - 1);
        assert!(next.values().all(|&n| n == MESSAGES));
    }
    for task in sending {
        task.await.unwrap();
    }
    stop(relays).await;
}

#[tokio::test]
async fn one_publish_per_frame_and_only_relays_with_members_subscribe() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("subscriptions"), 3).await;
    // Two members on r0, two on r1, none on r2.
    let mut clients = members(&relays[..2], "lobby", 2).await;
    let channel = format!("{}:bus:lobby", relays[0].prefix);
    assert_eq!(
        broker.subscribers(&channel),
        2,
        "r2 holds no member: it does not listen"
    );
    for _ in 0..10 {
        clients[0].broadcast(b"x").await.unwrap();
    }
    for client in &mut clients[1..] {
        for _ in 0..10 {
            assert!(matches!(
                next_event(client).await,
                ServerEvent::Broadcast { .. }
            ));
        }
    }
    // Ten frames for two members elsewhere: ten publishes, not twenty.
    assert_eq!(relays[0].handle.stats().broker_published, 10);
    drop(clients);
    eventually("no relay listens to an empty room", || {
        broker.subscribers(&channel) == 0
    })
    .await;
    stop(relays).await;
}

#[tokio::test]
async fn broadcast_to_room_from_any_handle_reaches_every_member() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("server-broadcast"), 3).await;
    // Members on r0 and r1 only: r2 holds none, and still reaches them all.
    let mut clients = members(&relays[..2], "lobby", 2).await;
    eventually("r2 sees the four members", || {
        relays[2].handle.room_client_count("lobby") == Some(4)
    })
    .await;
    assert_eq!(
        relays[2]
            .handle
            .broadcast_to_room("lobby", b"hello all")
            .unwrap(),
        4
    );
    for client in &mut clients {
        match next_event(client).await {
            ServerEvent::Broadcast { sender_id, data } => {
                assert_eq!((sender_id, &data[..]), (SERVER_ID, &b"hello all"[..]));
            }
            other => panic!("expected the server's broadcast, got {other:?}"),
        }
    }
    stop(relays).await;
}

#[tokio::test]
async fn a_room_whose_members_share_one_relay_never_publishes() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("local-room"), 3).await;
    let mut clients = members(&relays[..1], "local", 3).await;
    for client in &mut clients {
        client.broadcast(b"x").await.unwrap();
    }
    for client in &mut clients {
        for _ in 0..2 {
            assert!(matches!(
                next_event(client).await,
                ServerEvent::Broadcast { .. }
            ));
        }
    }
    assert_eq!(relays[0].handle.stats().broker_published, 0);
    stop(relays).await;
}

#[tokio::test]
async fn a_keyed_broadcast_reaches_members_on_other_relays_as_keyed() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("keyed"), 2).await;
    let mut clients = members(&relays, "positions", 1).await;
    let sender = clients[0].client_id();
    for round in 0u32..20 {
        clients[0]
            .broadcast_keyed(round % 3, &round.to_le_bytes())
            .await
            .unwrap();
    }
    // Relayed through the broker in order, each still a Keyed frame with its sender and key.
    for round in 0u32..20 {
        assert_eq!(
            next_event(&mut clients[1]).await,
            ServerEvent::Keyed {
                sender_id: sender,
                key: round % 3,
                data: round.to_le_bytes().to_vec().into(),
            }
        );
    }
    stop(relays).await;
}
