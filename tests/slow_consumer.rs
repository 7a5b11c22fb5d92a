//! A client that stops reading pins a bounded amount of memory (`max_queued_bytes`), and once
//! its socket stops draining for `write_timeout` it is disconnected as a slow consumer,
//! freeing its slot. The rest of its room never waits for it.

mod common;

use common::*;
use ghost_sync::protocol::DisconnectCode;
use ghost_sync::{DisconnectKind, DisconnectReason, Server, ServerEvent};
use std::time::Duration;

/// The one connected client that is not `known` (a raw client, whose id the test never read).
fn other_client(handle: &ghost_sync::ServerHandle, known: ghost_sync::Uuid) -> ghost_sync::Uuid {
    handle
        .clients()
        .into_iter()
        .find(|c| c.id != known)
        .map(|c| c.id)
        .expect("another client is connected")
}

#[tokio::test]
async fn the_byte_budget_drops_frames_for_a_reader_that_stalls() {
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(
        Server::builder()
            .handler_with(make)
            .max_payload(1024)
            .max_queued_bytes(8 * 1024)
            // The frame limit alone would never drop: only the byte budget is under test.
            .channel_capacity(1 << 16)
            .write_timeout(Duration::from_secs(3600)),
    )
    .await;
    handle.create_room("arena").unwrap();
    let deaf = RawClient::joined(addr, "arena").await;
    let mut loud = joined(addr, "arena").await;
    let deaf_id = other_client(&handle, loud.client_id());
    // Enough to fill the kernel's socket buffers many times over; stops at the first drop.
    let dropped = within("a drop", async {
        for _ in 0..100_000 {
            loud.broadcast(&[0; 1024]).await.unwrap();
            if handle.stats().frames_dropped > 0 {
                return true;
            }
        }
        false
    })
    .await;
    assert!(dropped, "the byte budget never dropped a frame");
    wait_hook(&mut hooks, |h| {
        *h == Hook::Backpressure(deaf_id, "arena".into())
    })
    .await;
    let queued = handle.client_info(deaf_id).unwrap().queue_depth;
    // 8 KiB of 1 KiB frames (plus its own few small ones): the queue stays tiny.
    assert!(queued <= 16, "queue depth {queued}");
    drop(deaf);
}

#[tokio::test]
async fn a_socket_that_stops_draining_is_disconnected_as_a_slow_consumer() {
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(
        Server::builder()
            .handler_with(make)
            .write_timeout(Duration::from_millis(300)),
    )
    .await;
    handle.create_room("arena").unwrap();
    let deaf = RawClient::joined(addr, "arena").await;
    let mut loud = joined(addr, "arena").await;
    let deaf_id = other_client(&handle, loud.client_id());
    let gone = Hook::Disconnect(deaf_id, DisconnectReason::SlowConsumer);
    // Keep the pressure on until the deaf client is dropped; the publisher never stalls.
    let mut hook_seen = false;
    within("the slow-consumer disconnect", async {
        for _ in 0..1_000_000 {
            loud.broadcast(&[0; 16 * 1024]).await.unwrap();
            while let Ok(hook) = hooks.try_recv() {
                hook_seen |= hook == gone;
            }
            if hook_seen {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(hook_seen);
    // The rest of the room hears that it left, and the slot is free.
    loop {
        match next_event(&mut loud).await {
            ServerEvent::PlayerLeft { client_id } if client_id == deaf_id => break,
            _ => continue,
        }
    }
    assert!(handle.client_info(deaf_id).is_none());
    assert_eq!(
        handle.stats().disconnects_for(DisconnectKind::SlowConsumer),
        1
    );
    drop(deaf);
}

/// A reader that stalls past `write_timeout` and then reads again, as a client behind a
/// brief network hiccup would: everything it gets parses, up to the end of the frame the
/// relay was writing, and its last frame says why it was cut off.
#[tokio::test]
async fn a_slow_consumer_that_reads_again_gets_whole_frames_then_its_reason() {
    let long = Duration::from_secs(600);
    let (handle, addr) = start(
        Server::builder()
            .write_timeout(Duration::from_millis(300))
            .ping_interval(long)
            .idle_timeout(long),
    )
    .await;
    handle.create_room("arena").unwrap();
    let mut deaf = RawClient::tiny_window_joined(addr, "arena").await;
    let mut loud = joined(addr, "arena").await;
    let deaf_id = other_client(&handle, loud.client_id());
    // Odd-sized frames, so that the deadline is all but sure to fall inside one.
    within("the slow-consumer disconnect", async {
        while handle.client_info(deaf_id).is_some() {
            loud.broadcast(&[7; 10_007]).await.unwrap();
            tokio::task::yield_now().await;
        }
    })
    .await;

    // Reading again: only whole frames (`recv` panics on a malformed one), and the last of
    // them is the reason.
    let mut last = None;
    while let Some(frame) = deaf.recv().await {
        last = Some(frame);
    }
    let farewell = Frame::Disconnect {
        code: DisconnectCode::SlowConsumer as u8,
        message: "slow consumer".into(),
    };
    if last.as_ref() != Some(&farewell) {
        let last = last.map(|frame| match frame {
            Frame::Broadcast { data, .. } => format!("a broadcast of {} bytes", data.len()),
            other => format!("{other:?}"),
        });
        panic!("the stream ended with {last:?}, not the reason");
    }
}
