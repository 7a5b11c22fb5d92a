//! A `MaxPlayers` handler that caps a room's size in `on_join`: it holds the server's own
//! handle (`ServerBuilder::handler_with`) to count the room's members.
//!
//! Self-contained: starts a relay on a free port, creates room "duel" (2 players), connects
//! three clients and shows the third one refused.
//!
//! ```text
//! cargo run --example max_players
//! ```

use ghost_sync::{Client, Server, ServerEvent, ServerHandle, ServerHandler, Uuid};
use std::net::SocketAddr;
use std::time::Duration;

struct MaxPlayers {
    limit: usize,
    handle: ServerHandle,
}

impl ServerHandler for MaxPlayers {
    fn on_join(&self, _client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        // Joins into one room are admitted one at a time, so this check is exact.
        match self.handle.room_client_count(room_id) {
            Some(count) => count < self.limit,
            None => false,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(|handle| MaxPlayers { limit: 2, handle })
        .build()
        .run()
        .await?;
    handle.create_room("duel")?;
    let addr = handle.local_addr().expect("the server is running");
    println!("relay on {addr}, room \"duel\" holds 2 players");

    let mut players = Vec::new();
    for n in 1..=3 {
        let mut client = Client::connect(addr).await?;
        client.join("duel").await?;
        // The answer to a join is the next event for this client: Joined or Error.
        match tokio::time::timeout(Duration::from_secs(2), client.recv()).await?? {
            Some(ServerEvent::Joined { room_id, .. }) => println!("player {n}: joined {room_id}"),
            Some(ServerEvent::Error(msg)) => println!("player {n}: refused ({msg})"),
            other => println!("player {n}: unexpected {other:?}"),
        }
        players.push(client);
    }
    let count = handle.room_client_count("duel").unwrap_or(0);
    println!("players in duel: {count}");

    // Clients hang up first, so the relay has nobody left to say goodbye to.
    drop(players);
    handle.shutdown().await;
    Ok(())
}
