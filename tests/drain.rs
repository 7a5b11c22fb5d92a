//! `ServerHandle::drain(timeout)`: stop accepting, flush what is queued for every client, say
//! why, fire the hooks, and return once everyone is gone, or close the rest at the deadline.

mod common;

use common::*;
use ghost_sync::{Client, DisconnectReason, Server, ServerEvent, SyncError};
use std::time::Duration;

#[tokio::test]
async fn drain_flushes_every_queued_frame_before_the_farewell() {
    const FRAMES: u64 = 200;
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(Server::builder().handler_with(make)).await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut reader = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();
    let reader_id = reader.client_id();
    let before = handle.stats().frames_in;
    for n in 0..FRAMES {
        sender.broadcast(&n.to_le_bytes()).await.unwrap();
    }
    // Every broadcast has been relayed (queued for the reader, which has read none yet).
    within("the relay to take every frame", async {
        while handle.stats().frames_in < before + FRAMES {
            tokio::task::yield_now().await;
        }
    })
    .await;

    let drain = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.drain(Duration::from_secs(30)).await })
    };
    for n in 0..FRAMES {
        match next_event(&mut reader).await {
            ServerEvent::Broadcast { data, .. } => assert_eq!(&data[..], &n.to_le_bytes()),
            other => panic!("frame {n}: unexpected {other:?}"),
        }
    }
    assert!(matches!(
        next_error(&mut reader).await,
        SyncError::ConnectionClosed
    ));
    assert!(next_error(&mut sender).await.is_connection_closed());
    assert!(within("the drain", drain).await.unwrap(), "drained in time");
    wait_hook(&mut hooks, |h| {
        *h == Hook::Disconnect(reader_id, DisconnectReason::ServerShutdown)
    })
    .await;
    assert_eq!(handle.client_count(), 0);
    // No longer accepting.
    assert!(Client::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_drain_past_its_timeout_closes_the_rest_and_says_so() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    // A client that never reads, with far more queued for it than its socket holds.
    let deaf = RawClient::joined(addr, "arena").await;
    let mut loud = joined(addr, "arena").await;
    for _ in 0..200 {
        loud.broadcast(&[0; 60 * 1024]).await.unwrap();
    }
    let drained = within("the drain", handle.drain(Duration::from_millis(300))).await;
    assert!(!drained, "a client that never reads cannot be drained");
    assert_eq!(handle.client_count(), 0);
    drop(deaf);
}
