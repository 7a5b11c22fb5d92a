//! User layers in the frame pipeline: tower's own middleware drops in through
//! `ServerBuilder::layer`, and a refusal reaches the client as an error event.

mod common;

use common::*;
use ghost_sync::layers::BoxError;
use ghost_sync::{ClientMessage, FrameRequest, Server, ServerEvent};
use std::time::Duration;
use tower::filter::FilterLayer;
use tower::limit::RateLimitLayer;
use tower::load_shed::LoadShedLayer;

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
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .layer(FilterLayer::new(no_cheats))
        .build()
        .run()
        .await
        .unwrap();
    let addr = handle.local_addr().unwrap();
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
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .layer(LoadShedLayer::new())
        .layer(RateLimitLayer::new(3, Duration::from_secs(3600)))
        .build()
        .run()
        .await
        .unwrap();
    let addr = handle.local_addr().unwrap();
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
