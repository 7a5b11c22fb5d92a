//! Room state: the server and the members set entries of a lobby's state; a player who
//! joins late gets all of them right after the member list, and a player's entries go when
//! it leaves.
//!
//! Self-contained: starts a relay on a free port, creates room "lobby", has the server set
//! the map, alice set her loadout and ready flag, then bob joins and prints the snapshot he
//! gets. Alice leaves, and bob sees her entries deleted; the server's map stays.
//!
//! ```text
//! cargo run --example lobby_state
//! ```

use ghost_sync::{Client, Server, ServerEvent, SyncError, SERVER_ID};
use std::time::Duration;

/// The next event; an error if none comes within two seconds.
async fn next(client: &mut Client) -> anyhow::Result<ServerEvent> {
    match tokio::time::timeout(Duration::from_secs(2), client.recv()).await?? {
        Some(event) => Ok(event),
        None => Err(SyncError::ConnectionClosed.into()),
    }
}

fn describe(event: &ServerEvent) -> String {
    match event {
        ServerEvent::State { owner, key, value } if value.is_empty() => {
            format!("{key} deleted (was {})", owner_name(*owner))
        }
        ServerEvent::State { owner, key, value } => format!(
            "{key} = {} (set by {})",
            String::from_utf8_lossy(value),
            owner_name(*owner)
        ),
        other => format!("{other:?}"),
    }
}

fn owner_name(owner: ghost_sync::Uuid) -> &'static str {
    if owner == SERVER_ID {
        "the server"
    } else {
        "a player"
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        // At most 32 entries and 4 KiB per room: plenty for a lobby.
        .room_state_limits(32, 4 * 1024)
        .build()
        .run()
        .await?;
    handle.create_room("lobby")?;
    handle.set_room_state("lobby", "map", b"dust2")?;
    let addr = handle.local_addr().expect("the server is running");

    let mut alice = Client::connect(addr).await?;
    alice.join("lobby").await?;
    // Joined, Members, then the state: the map.
    for _ in 0..3 {
        println!("alice: {}", describe(&next(&mut alice).await?));
    }
    alice.set_state("alice/loadout", b"sniper").await?;
    alice.set_state("alice/ready", b"yes").await?;

    // Alice's sets are requests on her own connection: wait until the relay has applied
    // both (the handle reads the room's state) before bob joins.
    for _ in 0..200 {
        if handle.room_state("lobby")?.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut bob = Client::connect(addr).await?;
    bob.join("lobby").await?;
    // Joined, Members, then one State per entry, in the order they were first set.
    let mut got = 0;
    while got < 3 {
        let event = next(&mut bob).await?;
        if matches!(event, ServerEvent::State { .. }) {
            got += 1;
        }
        println!("bob: {}", describe(&event));
    }

    alice.leave().await?;
    // PlayerLeft, then alice's two entries deleted.
    for _ in 0..3 {
        println!("bob: {}", describe(&next(&mut bob).await?));
    }
    for entry in handle.room_state("lobby")? {
        println!(
            "left in the lobby: {} = {}",
            entry.key,
            String::from_utf8_lossy(&entry.value)
        );
    }

    drop((alice, bob));
    handle.shutdown().await;
    Ok(())
}
