//! Server lifecycle: binding, slots of vanished or stuck clients, and freeing everything.

mod common;

use bytes::Bytes;
use common::*;
use ghost_sync::{Client, Server, ServerHandle, ServerHandler, SyncError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn binding_a_taken_address_is_a_bind_error() {
    let (_handle, addr) = start(Server::builder()).await;
    let second = Server::builder().bind(addr).build().run().await;
    assert!(matches!(second, Err(SyncError::Bind(_))), "{second:?}");
}

#[tokio::test]
async fn local_addr_is_known_only_once_running() {
    let server = Server::builder().bind("127.0.0.1:0").build();
    assert_eq!(server.handle().local_addr(), None);
    let handle = server.run().await.unwrap();
    assert_ne!(handle.local_addr().unwrap().port(), 0);
}

/// Sets a flag when dropped; holds a handle, as a `MaxPlayers` handler does
/// (`examples/max_players.rs`).
struct Tracked {
    _handle: ServerHandle,
    dropped: Arc<AtomicBool>,
}

impl ServerHandler for Tracked {}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_handler_holding_a_handle_is_freed_after_shutdown() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(move |handle| Tracked {
            _handle: handle,
            dropped: flag,
        })
        .build();
    let handle = server.run().await.unwrap();
    let client = Client::connect(handle.local_addr().unwrap()).await.unwrap();
    assert!(!dropped.load(Ordering::SeqCst), "alive while serving");
    within("shutdown", handle.shutdown()).await;
    drop(client);
    drop(handle);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler and the server leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_neither_keeps_its_slot_nor_blocks_shutdown() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = start(
        Server::builder()
            .handler(recorder)
            .max_clients(2)
            .channel_capacity(8)
            .ping_interval(Duration::from_millis(500))
            .idle_timeout(Duration::from_secs(3600)),
    )
    .await;
    handle.create_room("arena").unwrap();
    let mut sender = joined(addr, "arena").await;
    // The slow client joins, then never reads again, and keeps its socket open.
    let slow = RawClient::joined(addr, "arena").await;
    // Broadcast until the slow client's socket and queue are full (at most 256 MiB).
    let payload = Bytes::from(vec![7u8; 64 * 1024]);
    let sender_id = sender.client_id();
    let mut full = false;
    for _ in 0..4096 {
        sender.broadcast(&payload).await.unwrap();
        if let Ok(Hook::Backpressure(..)) = hooks.try_recv() {
            full = true;
            break;
        }
    }
    assert!(full, "the slow client's queue never filled");
    // The relay gives up on it (its pings cannot even be queued)...
    wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Leave(id, _) if *id != sender_id),
    )
    .await;
    // ...and its slot frees although its writer was stuck on a full socket.
    drop(sender);
    let newcomer = within("a free slot", async {
        loop {
            match Client::connect(addr).await {
                Ok(client) => return client,
                Err(SyncError::ServerFull) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    within("shutdown", handle.shutdown()).await;
    drop((newcomer, slow));
}
