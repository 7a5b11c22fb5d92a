//! Three relays sharing their rooms over Redis, and a chat across them: one player on each
//! relay, every line reaching the two others. Every relay runs the same startup code
//! (`ensure_room("lobby")`), as the processes of a real deployment would.
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no     # in another terminal
//! cargo run --features redis --example cluster [-- redis://127.0.0.1:6379]
//! ```
//!
//! It exits by itself once the chat is over.

use ghost_sync::cluster::RedisOptions;
use ghost_sync::{Client, Server, ServerEvent, ServerHandle};
use std::time::Duration;

/// One relay process's startup, run three times here: the same code on every relay.
async fn start_relay(url: &str, prefix: &str, name: &str) -> anyhow::Result<ServerHandle> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .redis(RedisOptions::new(url).key_prefix(prefix).relay_name(name))
        .build()
        .run()
        .await?;
    // `create_room` would fail on every relay but the first: the room is cluster-wide.
    let created = handle.ensure_room("lobby")?;
    println!(
        "{name} listens on {} ({} the lobby)",
        handle.local_addr().map_or("?".into(), |a| a.to_string()),
        if created { "created" } else { "found" }
    );
    Ok(handle)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // A prefix of its own, so that a second run never meets the first one's keys.
    let prefix = format!("cluster-example-{}", std::process::id());
    let mut relays = Vec::new();
    for name in ["relay-a", "relay-b", "relay-c"] {
        relays.push(start_relay(&url, &prefix, name).await?);
    }

    let names = ["ana", "bo", "cy"];
    let mut players = Vec::new();
    for (relay, name) in relays.iter().zip(names) {
        let addr = relay
            .local_addr()
            .ok_or_else(|| anyhow::anyhow!("not bound"))?;
        let mut client = Client::connect(addr).await?;
        client.join("lobby").await?;
        players.push((name, client));
    }
    // Everyone waits until it sees the two others, wherever they are connected.
    for (name, client) in &mut players {
        let mut others = 0;
        while others < 2 {
            match next(client).await? {
                ServerEvent::Members { client_ids, .. } => others += client_ids.len(),
                ServerEvent::PlayerJoined { .. } => others += 1,
                _ => {}
            }
        }
        println!("{name} sees both other players");
    }

    for (name, client) in &mut players {
        let line = format!("hello from {name}");
        client.broadcast(line.as_bytes()).await?;
    }
    for (name, client) in &mut players {
        for _ in 0..2 {
            if let ServerEvent::Broadcast { data, .. } = next(client).await? {
                println!("{name} got: {}", String::from_utf8_lossy(&data));
            }
        }
    }
    for relay in &relays {
        println!(
            "{}: {} members in the lobby across the cluster",
            relay
                .cluster()
                .map_or("?".into(), |c| c.relay_name().to_owned()),
            relay.room_client_count("lobby").unwrap_or(0)
        );
    }
    // The room outlives the relays in Redis otherwise (rooms are the application's to end).
    relays[0].delete_room("lobby");
    for relay in relays {
        relay.shutdown().await;
    }
    Ok(())
}

/// The next event, within a generous time.
async fn next(client: &mut Client) -> anyhow::Result<ServerEvent> {
    match tokio::time::timeout(Duration::from_secs(10), client.recv()).await {
        Ok(Ok(Some(event))) => Ok(event),
        Ok(Ok(None)) => anyhow::bail!("the relay closed the connection"),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => anyhow::bail!("no event within 10 s"),
    }
}
