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
//! - `BlockWordLayer`, written from scratch: refuses broadcasts containing a word;
//! - ghost-sync-layers' `ClientRateLimitLayer` (per client, frames and bytes), through
//!   `ServerBuilder::rate_limit`, which puts it in its place in the default stack.
//!
//! Self-contained: alice and bob join room "chat" on a relay on a free port; alice sends four
//! messages, bob prints what got through, alice prints what was refused.
//!
//! ```text
//! cargo run --example custom_layer
//! ```

use ghost_sync::layers::ClientRateLimitLayer;
use ghost_sync::{Client, ClientMessage, FrameRequest, Reply, Server, ServerEvent};
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

/// Refuses broadcasts that contain `word`.
#[derive(Clone)]
struct BlockWordLayer {
    word: &'static str,
}

impl<S> Layer<S> for BlockWordLayer {
    type Service = BlockWord<S>;

    fn layer(&self, inner: S) -> BlockWord<S> {
        BlockWord {
            inner,
            word: self.word,
        }
    }
}

/// The service `BlockWordLayer` builds, once per connection.
struct BlockWord<S> {
    inner: S,
    word: &'static str,
}

/// The refusal; its `Display` is what the client receives.
#[derive(Debug)]
struct Blocked(&'static str);

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
                let refusal: BoxError = Box::new(Blocked(self.word));
                return Box::pin(std::future::ready(Err(refusal)));
            }
        }
        let future = self.inner.call(req);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

/// tower's `FilterLayer` predicate: only text is relayed.
fn text_only(req: FrameRequest) -> Result<FrameRequest, BoxError> {
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
        .layer(BlockWordLayer { word: "cheat" })
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
