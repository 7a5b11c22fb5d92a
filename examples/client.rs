//! A client for `examples/server.rs`: join "lobby", say hello, then print room events until
//! the relay closes the connection.
//!
//! ```text
//! cargo run --example server                  # in one terminal
//! cargo run --example client                  # in one or more others
//! cargo run --example client -- 127.0.0.1:9000
//! ```

use ghost_sync::{Client, ServerEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7777".to_owned());
    let mut client = Client::connect(addr.as_str()).await?;
    client.join("lobby").await?;

    // join() sends the request; the confirmation comes through recv().
    match client.recv().await? {
        Some(ServerEvent::Joined { client_id, room_id }) => {
            println!("joined {room_id} as {client_id}");
        }
        Some(ServerEvent::Error(msg)) => {
            eprintln!("join failed: {msg}");
            return Ok(());
        }
        _ => return Ok(()),
    }

    client.broadcast(b"hello room").await?;

    // Keep calling recv(): it also answers the relay's keepalive pings.
    loop {
        match client.recv().await {
            Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
                println!("{sender_id}: {}", String::from_utf8_lossy(&data));
            }
            Ok(Some(ServerEvent::PlayerJoined { client_id })) => println!(">> {client_id} joined"),
            Ok(Some(ServerEvent::PlayerLeft { client_id })) => println!(">> {client_id} left"),
            Ok(Some(_)) => {}
            // A relay shutting down says goodbye: recv() returns ConnectionClosed.
            Ok(None) => return Ok(()),
            Err(err) if err.is_connection_closed() => {
                println!("relay closed the connection");
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
    }
}
