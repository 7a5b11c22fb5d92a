//! The quickest look at ghost-sync: a relay and three bots in one process.
//!
//! ```text
//! cargo run --example demo
//! RUST_LOG=ghost_sync=debug cargo run --example demo   # plus the relay's own logs
//! ```
//!
//! It starts a relay on a free local port, creates room "arena", connects three bots that
//! join it and exchange a few broadcasts, lets one leave, prints every event each bot
//! receives along with the room counts the server handle reports, then shuts the relay
//! down gracefully. Every wait has a timeout, so it always finishes within seconds.

use anyhow::Context;
use ghost_sync::{Client, Server, ServerEvent, ServerHandle, Uuid};
use std::collections::HashMap;
use std::time::Duration;

/// Longest wait for any single event.
const STEP: Duration = Duration::from_secs(2);

struct Bot {
    name: &'static str,
    client: Client,
}

/// Bot names by client id, to print names instead of UUIDs.
type Names = HashMap<Uuid, &'static str>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    tokio::time::timeout(Duration::from_secs(20), run())
        .await
        .context("the demo took too long")?
}

/// The whole demo: a relay, three bots, a few messages, a shutdown.
pub async fn run() -> anyhow::Result<()> {
    let handle = Server::builder().bind("127.0.0.1:0").build().run().await?;
    let addr = handle.local_addr().context("the relay has an address")?;
    println!("relay listening on {addr}");
    handle.create_room("arena")?;
    println!("created room \"arena\" ({} room)", handle.room_count());

    let mut names = Names::new();
    let mut bots: Vec<Bot> = Vec::new();
    for name in ["ada", "ben", "cleo"] {
        let client = Client::connect(addr).await?;
        names.insert(client.client_id(), name);
        let mut bot = Bot { name, client };
        println!("\n{name} connects and joins arena");
        bot.client.join("arena").await?;
        next_event(&mut bot, &names).await?; // Joined
        next_event(&mut bot, &names).await?; // Members: who was already there
        for other in &mut bots {
            next_event(other, &names).await?; // PlayerJoined
        }
        bots.push(bot);
    }
    print_counts(&handle);

    for (from, text) in [
        (0, "hello everyone"),
        (1, "hi ada!"),
        (2, "good luck, have fun"),
    ] {
        println!("\n{} broadcasts {text:?}", bots[from].name);
        bots[from].client.broadcast(text.as_bytes()).await?;
        for (i, bot) in bots.iter_mut().enumerate() {
            if i != from {
                next_event(bot, &names).await?; // Broadcast
            }
        }
    }

    println!("\ncleo leaves arena");
    bots[2].client.leave().await?;
    for bot in &mut bots {
        next_event(bot, &names).await?; // Left for cleo, PlayerLeft for the others
    }
    print_counts(&handle);

    println!("\nshutting the relay down");
    let stopping = tokio::spawn({
        let handle = handle.clone();
        async move { handle.shutdown().await }
    });
    for bot in &mut bots {
        goodbye(bot).await?;
    }
    drop(bots);
    tokio::time::timeout(STEP, stopping).await??;
    println!("relay stopped");
    Ok(())
}

/// Receives the next event for `bot` and prints it.
async fn next_event(bot: &mut Bot, names: &Names) -> anyhow::Result<()> {
    let name = |id: &Uuid| names.get(id).copied().unwrap_or("someone");
    let event = tokio::time::timeout(STEP, bot.client.recv())
        .await
        .with_context(|| format!("{} waited too long for an event", bot.name))??
        .with_context(|| format!("{}'s connection closed", bot.name))?;
    let line = match &event {
        ServerEvent::Joined { room_id, .. } => format!("Joined {room_id}"),
        ServerEvent::Members { client_ids, .. } => {
            let present: Vec<&str> = client_ids.iter().map(name).collect();
            format!("Members {present:?}")
        }
        ServerEvent::Left { room_id } => format!("Left {room_id}"),
        ServerEvent::PlayerJoined { client_id } => format!("PlayerJoined {}", name(client_id)),
        ServerEvent::PlayerLeft { client_id } => format!("PlayerLeft {}", name(client_id)),
        ServerEvent::Broadcast { sender_id, data } => format!(
            "Broadcast from {}: {:?}",
            name(sender_id),
            String::from_utf8_lossy(data)
        ),
        ServerEvent::Error(msg) => format!("Error {msg}"),
        other => format!("{other:?}"),
    };
    println!("  [{}] {line}", bot.name);
    Ok(())
}

/// Waits for the relay's goodbye, which `recv()` returns as `SyncError::ConnectionClosed`.
async fn goodbye(bot: &mut Bot) -> anyhow::Result<()> {
    // Bots that closed before this one may show up first, as PlayerLeft: skip those.
    for _ in 0..8 {
        match tokio::time::timeout(STEP, bot.client.recv()).await? {
            Ok(Some(ServerEvent::PlayerLeft { .. })) => {}
            Err(err) if err.is_connection_closed() => {
                println!("  [{}] recv() -> Err({err})", bot.name);
                return Ok(());
            }
            other => anyhow::bail!("{} expected the relay's goodbye, got {other:?}", bot.name),
        }
    }
    anyhow::bail!("{} got no goodbye", bot.name)
}

fn print_counts(handle: &ServerHandle) {
    let members = handle.room_client_count("arena").unwrap_or(0);
    println!(
        "handle: {} room(s), {members} client(s) in arena",
        handle.room_count()
    );
}
