//! User layers in the frame pipeline: tower's own middleware drops in through
//! `ServerBuilder::layer`, and a refusal reaches the client as an error event.

mod common;

use common::*;
use ghost_sync::layers::BoxError;
use ghost_sync::protocol::ClientFrame;
use ghost_sync::{
    ClientMessage, DisconnectReason, FrameRequest, Reply, Server, ServerEvent, SyncError,
};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tower::filter::FilterLayer;
use tower::layer::layer_fn;
use tower::limit::RateLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::Service;

fn no_cheats(req: FrameRequest) -> Result<FrameRequest, BoxError> {
    if let ClientMessage::Broadcast { data } = req.message() {
        if data.windows(5).any(|w| w == b"cheat") {
            return Err("cheating is not allowed".into());
        }
    }
    Ok(req)
}

#[tokio::test]
async fn a_tower_filter_refuses_frames_and_the_client_learns_why() {
    let (handle, addr) = start(Server::builder().layer(FilterLayer::new(no_cheats))).await;
    handle.create_room("lobby").unwrap();
    let mut clients = join_all(addr, "lobby", 2).await;

    clients[0].broadcast(b"I cheat").await.unwrap();
    assert_eq!(
        next_event(&mut clients[0]).await,
        ServerEvent::Error("cheating is not allowed".into())
    );
    clients[0].broadcast(b"fair play").await.unwrap();
    // The refused frame never reached the room: the first thing the other member sees is
    // the fair one.
    match next_event(&mut clients[1]).await {
        ServerEvent::Broadcast { data, .. } => assert_eq!(&data[..], b"fair play"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn towers_rate_limit_behind_load_shed_refuses_the_excess() {
    let (handle, addr) = start(
        Server::builder()
            .layer(LoadShedLayer::new())
            .layer(RateLimitLayer::new(3, Duration::from_secs(3600))),
    )
    .await;
    handle.create_room("lobby").unwrap();
    // The join itself is the first of the three frames allowed.
    let mut clients = join_all(addr, "lobby", 2).await;
    for n in 0..2u8 {
        clients[0].broadcast(&[n]).await.unwrap();
        assert!(matches!(
            next_event(&mut clients[1]).await,
            ServerEvent::Broadcast { .. }
        ));
    }
    clients[0].broadcast(b"one too many").await.unwrap();
    match next_event(&mut clients[0]).await {
        ServerEvent::Error(msg) => assert!(msg.contains("overloaded"), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
    // Other clients have their own budget: the layer is applied per connection.
    clients[1].broadcast(b"mine").await.unwrap();
    assert!(matches!(
        next_event(&mut clients[0]).await,
        ServerEvent::Broadcast { .. }
    ));
}

/// Reports when its inner service is not ready: the frame is being held back.
#[derive(Clone)]
struct ReportStall<S> {
    inner: S,
    stalled: Arc<Notify>,
}

impl<S: Service<R>, R> Service<R> for ReportStall<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let ready = self.inner.poll_ready(cx);
        if ready.is_pending() {
            self.stalled.notify_one();
        }
        ready
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_frame_held_back_by_a_user_layer() {
    let stalled = Arc::new(Notify::new());
    let report = stalled.clone();
    let (handle, addr) = start(
        Server::builder()
            .layer(layer_fn(move |inner| ReportStall {
                inner,
                stalled: report.clone(),
            }))
            .layer(RateLimitLayer::new(1, Duration::from_secs(3600))),
    )
    .await;
    handle.create_room("lobby").unwrap();
    // The join uses the hour's only frame; the broadcast then waits in the rate limiter.
    let mut client = joined(addr, "lobby").await;
    client.broadcast(b"held back").await.unwrap();
    within("the frame to be held back", stalled.notified()).await;
    within("shutdown", handle.shutdown()).await;
    assert!(matches!(
        next_error(&mut client).await,
        ghost_sync::SyncError::ConnectionClosed
    ));
}

#[tokio::test]
async fn keepalive_never_passes_through_user_layers() {
    // A layer that refuses every frame must not make the relay miss the client's pongs.
    let refuse_all =
        |_req: FrameRequest| -> Result<FrameRequest, BoxError> { Err("nothing is allowed".into()) };
    let (_handle, addr) = start(
        Server::builder()
            .ping_interval(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(3600))
            .layer(FilterLayer::new(refuse_all)),
    )
    .await;
    let mut raw = RawClient::greeted(addr).await;
    for _ in 0..5 {
        assert_eq!(raw.recv().await, Some(Frame::Ping));
        raw.send(&ClientFrame::Pong).await;
    }
    raw.send(&ClientFrame::Leave).await;
    assert_eq!(
        raw.recv_skipping_pings().await,
        Some(Frame::Error("nothing is allowed".into()))
    );
}

#[tokio::test]
async fn a_long_refusal_reaches_a_client_even_with_a_tiny_max_payload() {
    let wordy =
        |_req: FrameRequest| -> Result<FrameRequest, BoxError> { Err("no ".repeat(1000).into()) };
    let (_handle, addr) = start(
        Server::builder()
            .max_payload(10)
            .layer(FilterLayer::new(wordy)),
    )
    .await;
    let mut client = ghost_sync::Client::connect(addr).await.unwrap();
    client.leave().await.unwrap();
    match next_event(&mut client).await {
        ServerEvent::Error(msg) => {
            assert_eq!(msg.len(), ghost_sync::protocol::MAX_REASON_LEN);
            assert!(msg.starts_with("no no"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The client answers a ping at once, behind a frame that a rate limit holds for several
/// ping intervals and, optionally, a large frame: the relay must read the pong before
/// judging the client.
async fn pong_behind_a_held_frame(large_frame_before_the_pong: bool) {
    let stalled = Arc::new(Notify::new());
    let report = stalled.clone();
    let (handle, addr) = start(
        Server::builder()
            .ping_interval(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(3600))
            .layer(layer_fn(move |inner| ReportStall {
                inner,
                stalled: report.clone(),
            }))
            .layer(RateLimitLayer::new(1, Duration::from_secs(2))),
    )
    .await;
    handle.create_room("lobby").unwrap();
    // The join uses the period's only frame; the broadcast is then held for ~2 s.
    let mut raw = RawClient::joined(addr, "lobby").await;
    assert_eq!(raw.recv().await, Some(Frame::Ping));
    raw.send(&ClientFrame::Broadcast { data: b"x" }).await;
    within("the hold", stalled.notified()).await;
    if large_frame_before_the_pong {
        raw.send(&ClientFrame::Broadcast {
            data: &[0; 16 * 1024],
        })
        .await;
    }
    raw.send(&ClientFrame::Pong).await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Ping),
        "the relay judged the client without reading the pong waiting in its socket"
    );
}

#[tokio::test]
async fn a_prompt_pong_behind_a_held_frame_is_not_a_ping_timeout() {
    pong_behind_a_held_frame(false).await;
}

#[tokio::test]
async fn a_prompt_pong_behind_a_held_frame_and_a_large_one_is_not_a_ping_timeout() {
    pong_behind_a_held_frame(true).await;
}

/// Ends the connection of a client that broadcasts "quit", with a reason.
#[derive(Clone)]
struct QuitOnWord<S> {
    inner: S,
}

impl<S> Service<FrameRequest> for QuitOnWord<S>
where
    S: Service<FrameRequest, Response = Reply>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Reply;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: FrameRequest) -> Self::Future {
        if matches!(req.message(), ClientMessage::Broadcast { data } if &data[..] == b"quit") {
            let reason = DisconnectReason::Policy("you asked to quit".into());
            return Box::pin(std::future::ready(Ok(Reply::disconnect(reason))));
        }
        Box::pin(self.inner.call(req))
    }
}

#[tokio::test]
async fn a_user_layer_ends_a_connection_and_the_client_and_the_room_learn_why() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = start(
        Server::builder()
            .handler(recorder)
            .layer(layer_fn(|inner| QuitOnWord { inner })),
    )
    .await;
    handle.create_room("lobby").unwrap();
    let mut clients = join_all(addr, "lobby", 2).await;
    let quitter = clients[0].client_id();
    clients[0].broadcast(b"quit").await.unwrap();
    match next_error(&mut clients[0]).await {
        SyncError::Disconnected(why) => assert_eq!(why, "you asked to quit"),
        other => panic!("expected the layer's reason, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut clients[1]).await,
        ServerEvent::PlayerLeft { client_id: quitter }
    );
    let reason = DisconnectReason::Policy("you asked to quit".into());
    let gone = Hook::Disconnect(quitter, reason);
    wait_hook(&mut hooks, |h| *h == gone).await;
}
