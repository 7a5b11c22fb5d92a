//! A relay server with policy hooks: a `GameHandler` that admits only loopback connections
//! and logs joins and slow clients, two rooms ("lobby" and "deathmatch"), and a graceful
//! shutdown on Ctrl-C.
//!
//! ```text
//! cargo run --example server                  # listens on 127.0.0.1:7777
//! cargo run --example server -- 127.0.0.1:9000
//! ```
//!
//! Then connect with `cargo run --example client` (same address argument).

use ghost_sync::{Server, ServerHandler, Uuid};
use std::net::SocketAddr;

struct GameHandler;

impl ServerHandler for GameHandler {
    fn on_connect(&self, addr: SocketAddr) -> bool {
        // Reject non-local clients in development.
        addr.ip().is_loopback()
    }

    fn on_join(&self, client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        println!("{client_id} joined {room_id}");
        true
    }

    fn on_backpressure(&self, client_id: Uuid, room_id: &str) {
        eprintln!("slow client {client_id} in {room_id}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7777".to_owned());

    let server = Server::builder()
        .bind(addr)
        .max_clients(128)
        .max_payload(64 * 1024)
        .channel_capacity(64)
        .handler(GameHandler)
        .build();
    let handle = server.run().await?;

    // Rooms are managed at runtime through the handle.
    handle.create_room("lobby")?;
    handle.create_room("deathmatch")?;
    if let Some(addr) = handle.local_addr() {
        println!("relay listening on {addr} (rooms: lobby, deathmatch); Ctrl-C stops it");
    }

    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    handle.shutdown().await;
    Ok(())
}
