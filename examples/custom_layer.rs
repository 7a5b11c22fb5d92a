//! Adding tower layers to the frame pipeline with `ServerBuilder::layer`.
//!
//! Every request a client sends (join, leave, broadcast) passes through the layers as a
//! `FrameRequest`. A layer that returns `Err(e)` refuses the frame: the sender receives
//! `ServerEvent::Error(e.to_string())` and stays connected. Keepalive never passes through
//! layers, so no policy can cause a ping timeout. This example adds:
//!
//! - tower's own middleware, unchanged: `LoadShedLayer` + `RateLimitLayer` (refuse what is
//!   over 20 frames a second instead of holding it back), `ConcurrencyLimitLayer`,
//!   `TimeoutLayer`;
//! - tower's `FilterLayer`: refuses broadcasts that are not UTF-8 text;
//! - `BlockWordLayer`, written from scratch: refuses broadcasts containing a word, and ends
//!   the connection (with a reason the client reads) at the third;
//! - ghost-sync-layers' `ClientRateLimitLayer` (per client, frames and bytes), through
//!   `ServerBuilder::rate_limit`, which puts it in its place in the default stack.
//!
//! Self-contained: alice and bob join room "chat" on a relay on a free port; alice sends four
//! messages, bob prints what got through, alice prints what was refused.
//!
//! ```text
//! cargo run --example custom_layer
//! ```
//!
//! `tests/custom_layer_unit.rs` unit-tests these layers alone, with no relay and no socket.

use ghost_sync::layers::ClientRateLimitLayer;
use ghost_sync::{
    Client, ClientMessage, DisconnectReason, FrameRequest, Reply, Server, ServerEvent,
};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::filter::FilterLayer;
use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, Layer, Service};

/// Refuses broadcasts that contain `word`; the `strikes`-th one ends the connection.
#[derive(Clone)]
pub struct BlockWordLayer {
    /// The word refused.
    pub word: &'static str,
    /// Refusals before the client is disconnected (the last one disconnects).
    pub strikes: u32,
}

impl<S> Layer<S> for BlockWordLayer {
    type Service = BlockWord<S>;

    fn layer(&self, inner: S) -> BlockWord<S> {
        BlockWord {
            inner,
            word: self.word,
            strikes_left: self.strikes,
        }
    }
}

/// The service `BlockWordLayer` builds, once per connection: so its strike count is the
/// connection's own.
pub struct BlockWord<S> {
    inner: S,
    word: &'static str,
    strikes_left: u32,
}

/// The refusal; its `Display` is what the client receives.
#[derive(Debug)]
pub struct Blocked(&'static str);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message blocked: contains {:?}", self.0)
    }
}

impl std::error::Error for Blocked {}

impl<S> Service<FrameRequest> for BlockWord<S>
where
    S: Service<FrameRequest, Response = Reply>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: FrameRequest) -> Self::Future {
        if let ClientMessage::Broadcast { data } = req.message() {
            let word = self.word.as_bytes();
            if data.windows(word.len()).any(|w| w == word) {
                self.strikes_left = self.strikes_left.saturating_sub(1);
                if self.strikes_left == 0 {
                    // Not an error: the connection ends, and the client reads why.
                    let reason =
                        DisconnectReason::Policy(format!("said {:?} once too often", self.word));
                    return Box::pin(std::future::ready(Ok(Reply::disconnect(reason))));
                }
                let refusal: BoxError = Box::new(Blocked(self.word));
                return Box::pin(std::future::ready(Err(refusal)));
            }
        }
        let future = self.inner.call(req);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

/// tower's `FilterLayer` predicate: only text is relayed.
pub fn text_only(req: FrameRequest) -> Result<FrameRequest, BoxError> {
    match req.message() {
        ClientMessage::Broadcast { data } if std::str::from_utf8(data).is_err() => {
            Err("only text messages are relayed".into())
        }
        _ => Ok(req),
    }
}

/// Prints this client's events until it has had none for a moment.
async fn print_events(name: &str, client: &mut Client) -> anyhow::Result<()> {
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(300), client.recv()).await {
        match event? {
            Some(ServerEvent::Broadcast { data, .. }) => {
                println!("  {name} received: {}", String::from_utf8_lossy(&data));
            }
            Some(ServerEvent::Error(msg)) => println!("  {name} was refused: {msg}"),
            Some(ServerEvent::Joined { room_id, .. }) => println!("  {name} joined {room_id}"),
            Some(ServerEvent::PlayerJoined { .. }) => println!("  {name} sees someone join"),
            Some(other) => println!("  {name}: {other:?}"),
            None => break,
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .rate_limit(ClientRateLimitLayer::new(50, 64 * 1024).disconnect_after(100))
        // Layers added first see frames first.
        .layer(LoadShedLayer::new())
        .layer(RateLimitLayer::new(20, Duration::from_secs(1)))
        .layer(ConcurrencyLimitLayer::new(1))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .layer(FilterLayer::new(text_only))
        .layer(BlockWordLayer {
            word: "cheat",
            strikes: 3,
        })
        .build()
        .run()
        .await?;
    handle.create_room("chat")?;
    let addr = handle.local_addr().expect("the server is running");
    println!("relay on {addr}, room \"chat\": text only, no \"cheat\"");

    let mut bob = Client::connect(addr).await?;
    bob.join("chat").await?;
    let mut alice = Client::connect(addr).await?;
    alice.join("chat").await?;
    print_events("bob", &mut bob).await?; // Joined, then alice's PlayerJoined
    print_events("alice", &mut alice).await?; // Joined

    let messages: [&[u8]; 4] = [b"hello bob", b"want to cheat?", &[0xff, 0xfe], b"gg"];
    for data in messages {
        match std::str::from_utf8(data) {
            Ok(text) => println!("alice sends {text:?}"),
            Err(_) => println!("alice sends the bytes {data:?}"),
        }
        alice.broadcast(data).await?;
    }
    print_events("bob", &mut bob).await?;
    print_events("alice", &mut alice).await?;

    drop((alice, bob));
    handle.shutdown().await;
    Ok(())
}
