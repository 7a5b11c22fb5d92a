//! Keeping the seat through a brief drop: a relay with `resume_window`, and a client with a
//! `ReconnectPolicy` that cuts its own connection (`simulate_connection_loss`, as a Wi-Fi
//! blip would). While it is away, the relay holds its seat: the others see nothing, and what
//! they send is queued for it. Its next `recv` reconnects with the resume token of its last
//! `Welcome`, gets the same id, the frames queued meanwhile, then `Resumed { missed }`.
//!
//! Self-contained: a relay on a free port, alice and bob in room "arena".
//!
//! ```text
//! cargo run --example resume
//! ```

use ghost_sync::{
    Client, DisconnectReason, ReconnectPolicy, Server, ServerEvent, ServerHandler, Uuid,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// Tells the example when the relay noticed the drop.
struct Seats(mpsc::UnboundedSender<String>);

impl ServerHandler for Seats {
    fn on_drop(&self, client_id: Uuid, reason: &DisconnectReason) {
        let _ = self
            .0
            .send(format!("relay: {client_id} dropped ({reason}); seat held"));
    }

    fn on_resume(&self, client_id: Uuid, missed: u32) {
        let _ = self.0.send(format!(
            "relay: {client_id} resumed, {missed} frames missed"
        ));
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tx, mut seats) = mpsc::unbounded_channel();
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .resume_window(Duration::from_secs(10))
        .handler(Seats(tx))
        .build()
        .run()
        .await?;
    handle.create_room("arena")?;
    let addr = handle.local_addr().ok_or("the relay has no address")?;

    let mut alice = Client::builder()
        .reconnect(ReconnectPolicy::new(5))
        .connect(addr)
        .await?;
    alice.join("arena").await?;
    let mut bob = Client::connect(addr).await?;
    bob.join("arena").await?;
    // Alice's Joined, Members, then bob's arrival.
    for _ in 0..3 {
        alice.recv().await?;
    }
    println!("alice is {}", alice.client_id());

    alice.simulate_connection_loss();
    println!("alice: connection cut");
    println!("{}", seats.recv().await.ok_or("no drop")?);
    for n in 1..=3 {
        bob.broadcast(format!("move {n}").as_bytes()).await?;
    }
    println!("bob: sent 3 moves while alice was away");

    // The next recv reconnects: the moves, then Resumed.
    loop {
        match alice.recv().await? {
            Some(ServerEvent::Broadcast { data, .. }) => {
                println!("alice: got {:?}", String::from_utf8_lossy(&data));
            }
            Some(ServerEvent::Resumed { missed }) => {
                println!(
                    "alice: resumed as {}, {missed} frames missed",
                    alice.client_id()
                );
                break;
            }
            Some(other) => println!("alice: {other:?}"),
            None => return Err("the connection ended".into()),
        }
    }
    println!("{}", seats.recv().await.ok_or("no resume")?);
    alice.broadcast(b"back!").await?;
    // Bob's events: his Joined and member list, then alice's frame, and no PlayerLeft.
    loop {
        match bob.recv().await? {
            Some(ServerEvent::Broadcast { data, .. }) => {
                println!("bob: got {:?}", String::from_utf8_lossy(&data));
                break;
            }
            Some(ServerEvent::PlayerLeft { .. }) => return Err("bob saw alice leave".into()),
            Some(_) => {}
            None => return Err("bob's connection ended".into()),
        }
    }
    println!("bob never saw alice leave");
    alice.close().await?;
    handle.shutdown().await;
    Ok(())
}
