//! A `MaxPlayers` handler, which caps a room's size in `on_join` by reading the room's member
//! count, stays exact under concurrent joins.
//!
//! The handler is the one in `examples/max_players.rs`, plus a short pause between reading the
//! count and answering.

mod common;

use common::*;
use ghost_sync::{Client, Server, ServerEvent, ServerHandle, ServerHandler, Uuid};
use std::net::SocketAddr;

struct MaxPlayers {
    limit: usize,
    handle: ServerHandle,
}

impl ServerHandler for MaxPlayers {
    fn on_join(&self, _client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        let count = self.handle.room_client_count(room_id);
        // A policy that takes a moment (a lookup, say) widens the window in which a second
        // join could slip past the same count if joins were not admitted one at a time.
        std::thread::sleep(std::time::Duration::from_millis(2));
        match count {
            Some(count) => count < self.limit,
            None => false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupancy_checked_in_on_join_is_never_exceeded_by_100_simultaneous_joins() {
    const LIMIT: usize = 10;
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(|handle| MaxPlayers {
            limit: LIMIT,
            handle,
        })
        .build();
    server.handle().create_room("arena").unwrap();
    let handle = server.run().await.unwrap();
    let addr = handle.local_addr().unwrap();

    // Connect everyone first, then fire all joins at once.
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(Client::connect(addr).await.unwrap());
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                client.join("arena").await.unwrap();
                loop {
                    match next_event(&mut client).await {
                        ServerEvent::Joined { .. } => return (true, client),
                        ServerEvent::Error(msg) => {
                            assert_eq!(msg, "join rejected: arena");
                            return (false, client);
                        }
                        ServerEvent::PlayerJoined { .. } => continue,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut admitted = 0;
    let mut keep = Vec::new();
    for task in tasks {
        let (joined, client) = within("a join answer", task).await.unwrap();
        admitted += usize::from(joined);
        keep.push(client);
        assert!(handle.room_client_count("arena").unwrap() <= LIMIT);
    }
    assert_eq!(admitted, LIMIT);
    assert_eq!(handle.room_client_count("arena"), Some(LIMIT));
}
