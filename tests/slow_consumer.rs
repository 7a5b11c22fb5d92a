//! A client that stops reading pins a bounded amount of memory (`max_queued_bytes`), and once
//! its socket stops draining for `write_timeout` it is disconnected as a slow consumer,
//! freeing its slot. The rest of its room never waits for it.

mod common;

use common::*;
use ghost_sync::protocol::DisconnectCode;
use ghost_sync::testing::{Received, TestRelay};
use ghost_sync::{DisconnectKind, DisconnectReason, Server, ServerEvent};
use std::time::Duration;

#[tokio::test]
async fn the_byte_budget_drops_frames_for_a_reader_that_stalls() {
    let (make, mut hooks) = Recorder::reentrant();
    let relay = TestRelay::start(
        Server::builder()
            .handler_with(make)
            .max_payload(1024)
            .max_queued_bytes(8 * 1024)
            // The frame limit alone would never drop: only the byte budget is under test.
            .channel_capacity(1 << 16)
            .write_timeout(Duration::from_secs(3600)),
    )
    .await;
    let handle = relay.handle();
    relay.create_room("arena");
    let deaf = relay.joined("arena").await.stop_reading();
    let deaf_id = deaf.client_id();
    let mut loud = relay.joined("arena").await;
    // Enough to fill the kernel's socket buffers many times over; stops at the first drop.
    let dropped = within("a drop", async {
        for _ in 0..100_000 {
            loud.broadcast([0; 1024]).await;
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
    let relay = TestRelay::start(
        Server::builder()
            .handler_with(make)
            .write_timeout(Duration::from_millis(300)),
    )
    .await;
    let handle = relay.handle();
    relay.create_room("arena");
    let deaf = relay.joined("arena").await.stop_reading();
    let deaf_id = deaf.client_id();
    let mut loud = relay.joined("arena").await;
    let gone = Hook::Disconnect(deaf_id, DisconnectReason::SlowConsumer);
    // Keep the pressure on until the deaf client is dropped; the publisher never stalls.
    let mut hook_seen = false;
    within("the slow-consumer disconnect", async {
        for _ in 0..1_000_000 {
            loud.broadcast([0; 16 * 1024]).await;
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
    loud.wait_for("the deaf client's PlayerLeft", |event| {
        *event == ServerEvent::PlayerLeft { client_id: deaf_id }
    })
    .await;
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
    let relay = TestRelay::start(
        Server::builder()
            .write_timeout(Duration::from_millis(300))
            .ping_interval(long)
            .idle_timeout(long),
    )
    .await;
    let handle = relay.handle();
    relay.create_room("arena");
    let mut deaf = relay.client_builder().receive_buffer(4096).connect().await;
    deaf.join("arena").await;
    deaf.expect_joined("arena").await;
    let deaf_id = deaf.client_id();
    let deaf = deaf.stop_reading();
    let mut loud = relay.joined("arena").await;
    // Odd-sized frames, so that the deadline is all but sure to fall inside one.
    within("the slow-consumer disconnect", async {
        while handle.client_info(deaf_id).is_some() {
            loud.broadcast([7; 10_007]).await;
            tokio::task::yield_now().await;
        }
    })
    .await;

    // Reading again: only whole frames (anything else is not one of loud's frames), and the
    // last of them is the reason.
    let mut deaf = deaf.resume();
    let loud_id = loud.client_id();
    let last = loop {
        match deaf.next_received().await {
            Received::Event(ServerEvent::PlayerJoined { client_id }) if client_id == loud_id => {}
            Received::Event(ServerEvent::Broadcast { sender_id, data })
                if sender_id == loud_id && data.len() == 10_007 => {}
            other => break other,
        }
    };
    let farewell = Received::Disconnect {
        code: DisconnectCode::SlowConsumer as u8,
        message: "slow consumer".into(),
    };
    assert_eq!(last, farewell, "the stream did not end with the reason");
    deaf.expect_closed().await;
}
