//! Direct sends: a member whispers to one other member of its room, and a hook refuses
//! whispers to the room's host (`ServerHandler::on_direct`).
//!
//! Self-contained: starts a relay on a free port, creates room "tavern", joins host, alice
//! and bob, then alice whispers to bob (only bob hears it), tries the host (refused by the
//! hook), and names someone who is not in the room (refused by the relay, nobody hears it).
//!
//! ```text
//! cargo run --example whisper
//! ```

use ghost_sync::{Client, DirectRequest, Server, ServerEvent, ServerHandler, SyncError, Uuid};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Refuses direct sends that name the host, whose id `main` fills in once it connected.
struct NoWhispersToTheHost {
    host: Arc<OnceLock<Uuid>>,
}

impl ServerHandler for NoWhispersToTheHost {
    fn on_direct(&self, direct: &DirectRequest<'_>) -> Result<(), String> {
        match self.host.get() {
            Some(host) if direct.targets.contains(host) => Err("the host reads no whispers".into()),
            _ => Ok(()),
        }
    }
}

/// The next event, skipping arrivals; an error if none comes within two seconds.
async fn next(client: &mut Client) -> anyhow::Result<ServerEvent> {
    loop {
        match tokio::time::timeout(Duration::from_secs(2), client.recv()).await?? {
            Some(ServerEvent::PlayerJoined { .. }) => continue,
            Some(event) => return Ok(event),
            None => return Err(SyncError::ConnectionClosed.into()),
        }
    }
}

/// Connects and joins `room`, reading the `Joined` and the member list.
async fn joined(addr: std::net::SocketAddr, room: &str) -> anyhow::Result<Client> {
    let mut client = Client::connect(addr).await?;
    client.join(room).await?;
    let joined = next(&mut client).await?;
    anyhow::ensure!(matches!(joined, ServerEvent::Joined { .. }), "{joined:?}");
    let members = next(&mut client).await?;
    anyhow::ensure!(
        matches!(members, ServerEvent::Members { .. }),
        "{members:?}"
    );
    Ok(client)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let host_id = Arc::new(OnceLock::new());
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .handler(NoWhispersToTheHost {
            host: Arc::clone(&host_id),
        })
        .build()
        .run()
        .await?;
    handle.create_room("tavern")?;
    let addr = handle.local_addr().expect("the server is running");

    let mut host = joined(addr, "tavern").await?;
    let _ = host_id.set(host.client_id());
    let mut alice = joined(addr, "tavern").await?;
    let mut bob = joined(addr, "tavern").await?;

    alice
        .send_to(&[bob.client_id()], b"meet me upstairs")
        .await?;
    if let ServerEvent::Direct { sender_id, data } = next(&mut bob).await? {
        let from = if sender_id == alice.client_id() {
            "alice"
        } else {
            "?"
        };
        println!("bob hears from {from}: {}", String::from_utf8_lossy(&data));
    }

    alice.send_to(&[host.client_id()], b"psst").await?;
    println!("alice to the host: {:?}", next(&mut alice).await?);

    alice
        .send_to(&[bob.client_id(), Uuid::new_v4()], b"anyone?")
        .await?;
    println!("alice to a stranger: {:?}", next(&mut alice).await?);

    // Neither refused whisper reached anyone: the host's next event is this broadcast.
    alice.broadcast(b"good night").await?;
    println!("the host's next event: {:?}", next(&mut host).await?);

    // Clients hang up first, so the relay has nobody left to say goodbye to.
    drop((host, alice, bob));
    handle.shutdown().await;
    Ok(())
}
