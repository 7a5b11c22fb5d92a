//! Liveness over real sockets: the client learns which timer disconnected it.
//!
//! The exact timer rules are tested with paused time in `src/server/connection.rs`; these
//! tests only check that each reason reaches a real client, with short real timers.

mod common;

use common::*;
use ghost_sync::{Client, Server, SyncError};
use std::time::Duration;

#[tokio::test]
async fn a_silent_client_is_disconnected_with_idle_timeout() {
    let (_handle, addr) = start(
        Server::builder()
            .idle_timeout(Duration::from_millis(300))
            .ping_interval(Duration::from_secs(3600)),
    )
    .await;
    let mut client = Client::connect(addr).await.unwrap();
    assert!(matches!(
        next_error(&mut client).await,
        SyncError::IdleTimeout
    ));
    // After the reason, the connection reads as closed.
    assert!(matches!(within("close", client.recv()).await, Ok(None)));
}

#[tokio::test]
async fn a_client_that_stops_calling_recv_is_disconnected_with_ping_timeout() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = start(
        Server::builder()
            .handler(recorder)
            .idle_timeout(Duration::from_secs(3600))
            .ping_interval(Duration::from_millis(200)),
    )
    .await;
    handle.create_room("lobby").unwrap();
    let mut client = joined(addr, "lobby").await;
    // Not calling recv: no pongs. The relay gives up on its own; on_leave tells us when.
    wait_hook(&mut hooks, |h| matches!(h, Hook::Leave(..))).await;
    assert!(matches!(
        next_error(&mut client).await,
        SyncError::PingTimeout
    ));
}

#[tokio::test]
async fn a_client_driving_recv_survives_many_ping_intervals() {
    let (handle, addr) = start(
        Server::builder()
            .idle_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_millis(500)),
    )
    .await;
    handle.create_room("lobby").unwrap();
    let mut client = joined(addr, "lobby").await;
    let mut other = joined(addr, "lobby").await;
    // Two and a half times the idle timeout passes while the client only calls recv (which answers
    // pings): the relay keeps it. `other` ends the wait with a broadcast.
    let waker = tokio::spawn(async move {
        // `other` drives recv too (recv is cancel-safe, so it can race a timer).
        let wait = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                event = other.recv() => assert!(event.is_ok(), "{event:?}"),
            }
        }
        other.broadcast(b"still there?").await.unwrap();
        while other.recv().await.is_ok() {}
    });
    loop {
        match within("a broadcast", client.recv()).await {
            Ok(Some(ghost_sync::ServerEvent::Broadcast { data, .. })) => {
                assert_eq!(&data[..], b"still there?");
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("client was disconnected: {other:?}"),
        }
    }
    waker.abort();
}
