//! A terminal chat over the relay, to try by hand in several terminals.
//!
//! ```text
//! cargo run --example chat -- server [ADDR]        # a relay with room "chat"
//! cargo run --example chat -- client NAME [ADDR]   # join "chat" as NAME
//! ```
//!
//! ADDR defaults to 127.0.0.1:7777. A client sends each line typed as "NAME: line" and prints
//! what the others send and who joins and leaves; Ctrl-D leaves. It waits on stdin and on
//! `Client::recv` at once with `tokio::select!`, which is fine because `recv` is cancel-safe.

use ghost_sync::{Client, Server, ServerEvent, ServerHandler, Uuid};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, BufReader};

const DEFAULT_ADDR: &str = "127.0.0.1:7777";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["server"] => server(DEFAULT_ADDR).await,
        ["server", addr] => server(addr).await,
        ["client", name] => client(name, DEFAULT_ADDR).await,
        ["client", name, addr] => client(name, addr).await,
        _ => {
            eprintln!("usage: chat server [ADDR] | chat client NAME [ADDR]");
            std::process::exit(2);
        }
    }
}

/// Logs who comes and goes on the relay's side.
struct ChatLog;

impl ServerHandler for ChatLog {
    fn on_join(&self, client_id: Uuid, room_id: &str, addr: SocketAddr) -> bool {
        println!("{client_id} ({addr}) is joining {room_id}");
        true
    }

    fn on_leave(&self, client_id: Uuid, room_id: &str) {
        println!("{client_id} left {room_id}");
    }
}

async fn server(addr: &str) -> anyhow::Result<()> {
    let handle = Server::builder()
        .bind(addr)
        .handler(ChatLog)
        .build()
        .run()
        .await?;
    handle.create_room("chat")?;
    if let Some(addr) = handle.local_addr() {
        println!("chat relay on {addr}; Ctrl-C stops it");
    }
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

async fn client(name: &str, addr: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(addr).await?;
    client.join("chat").await?;
    match client.recv().await? {
        Some(ServerEvent::Joined { .. }) => {}
        Some(ServerEvent::Error(msg)) => anyhow::bail!("cannot join the chat: {msg}"),
        other => anyhow::bail!("unexpected answer to join: {other:?}"),
    }
    println!("joined the chat as {name}; type a line and press Enter, Ctrl-D to leave");

    // The relay only knows ids; names are learned from the messages people send.
    let mut names: HashMap<Uuid, String> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    if let Err(err) = client.broadcast(format!("{name}: {line}").as_bytes()).await {
                        if err.is_connection_closed() {
                            break;
                        }
                        eprintln!("not sent: {err}");
                    }
                }
                None => break, // Ctrl-D
            },
            event = client.recv() => match event {
                Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
                    let text = String::from_utf8_lossy(&data);
                    if let Some((sender, _)) = text.split_once(": ") {
                        names.insert(sender_id, sender.to_owned());
                    }
                    println!("{text}");
                }
                Ok(Some(ServerEvent::PlayerJoined { client_id })) => {
                    println!("* someone joined ({})", short(client_id));
                }
                Ok(Some(ServerEvent::Members { client_ids, .. })) => {
                    println!("* {} already here", client_ids.len());
                }
                Ok(Some(ServerEvent::PlayerLeft { client_id })) => match names.remove(&client_id) {
                    Some(who) => println!("* {who} left"),
                    None => println!("* someone left ({})", short(client_id)),
                },
                Ok(Some(ServerEvent::Error(msg))) => eprintln!("relay: {msg}"),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) if err.is_connection_closed() => {
                    println!("* the relay closed the connection");
                    return Ok(());
                }
                Err(err) => return Err(err.into()),
            },
        }
    }
    // Dropping the client closes the connection; the others see PlayerLeft.
    println!("* you left the chat");
    Ok(())
}

/// The first 8 hex digits of an id, enough to tell people apart.
fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}
