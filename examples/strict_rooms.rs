//! A `StrictRooms` handler that refuses joins in `on_join` unless the room id is on a fixed
//! allow-list, even if the backend created other rooms.
//!
//! Self-contained: starts a relay on a free port with rooms "lobby" and "secret", then one
//! client tries "lobby" (joined), "secret" (refused by the hook) and "nowhere" (no such room).
//!
//! ```text
//! cargo run --example strict_rooms
//! ```

use ghost_sync::{Client, Server, ServerEvent, ServerHandler, Uuid};
use std::net::SocketAddr;
use std::time::Duration;

struct StrictRooms;

impl ServerHandler for StrictRooms {
    fn on_join(&self, _client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        // Only allow pre-approved room ids.
        matches!(room_id, "lobby" | "deathmatch" | "duel")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .handler(StrictRooms)
        .build()
        .run()
        .await?;
    handle.create_room("lobby")?;
    handle.create_room("secret")?;
    let addr = handle.local_addr().expect("the server is running");
    println!("relay on {addr}, rooms: lobby, secret");

    let mut client = Client::connect(addr).await?;
    for room in ["lobby", "secret", "nowhere"] {
        client.join(room).await?;
        match tokio::time::timeout(Duration::from_secs(2), client.recv()).await?? {
            Some(ServerEvent::Joined { room_id, .. }) => {
                println!("join {room:?}: joined {room_id}");
                // Then the member list: who was already there.
                tokio::time::timeout(Duration::from_secs(2), client.recv()).await??;
            }
            Some(ServerEvent::Error(msg)) => println!("join {room:?}: refused ({msg})"),
            other => println!("join {room:?}: unexpected {other:?}"),
        }
    }

    drop(client);
    handle.shutdown().await;
    Ok(())
}
