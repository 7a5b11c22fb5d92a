//! Latest-state frames: a mover broadcasts the position of three entities with
//! `Client::broadcast_keyed`, keyed by entity id, while an observer stops reading for a
//! while (a frozen game loop). Its queue fills; from then on each newer position of an entity
//! replaces the older one still queued for it, instead of being dropped, so when the observer
//! reads again it ends with the latest position of every entity, and never an older one after
//! a newer one.
//!
//! Self-contained: a relay on a free port, a queue of 16 frames per client.
//!
//! ```text
//! cargo run --example positions
//! ```

use ghost_sync::{Client, Server, ServerEvent};
use std::collections::BTreeMap;

const ENTITIES: u32 = 3;
const TICKS: u32 = 3_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .channel_capacity(16)
        .build()
        .run()
        .await?;
    handle.create_room("world")?;
    let addr = handle.local_addr().ok_or("the relay has no address")?;

    let mut observer = Client::connect(addr).await?;
    observer.join("world").await?;
    let mut mover = Client::connect(addr).await?;
    mover.join("world").await?;

    // The observer does not call `recv` meanwhile: its socket fills, then its queue.
    for tick in 0..TICKS {
        for entity in 1..=ENTITIES {
            // A position and some padding, as a real snapshot would carry.
            let mut state = tick.to_le_bytes().to_vec();
            state.resize(1024, 0);
            mover.broadcast_keyed(entity, &state).await?;
        }
    }
    let sent = TICKS * ENTITIES;

    let mut latest = BTreeMap::new();
    let mut received = 0;
    while latest.len() < ENTITIES as usize || latest.values().any(|&t| t != TICKS - 1) {
        match observer.recv().await? {
            Some(ServerEvent::Keyed { key, data, .. }) => {
                let tick = u32::from_le_bytes(data[..4].try_into()?);
                let before = latest.insert(key, tick);
                assert!(before < Some(tick), "an older position after a newer one");
                received += 1;
            }
            Some(ServerEvent::Dropped { count }) => println!("({count} frames dropped)"),
            Some(_) => {}
            None => return Err("the relay closed the connection".into()),
        }
    }
    println!("sent {sent} positions, the observer read {received}:");
    for (entity, tick) in &latest {
        println!("  entity {entity}: position of tick {tick} (the last one)");
    }
    handle.shutdown().await;
    Ok(())
}
