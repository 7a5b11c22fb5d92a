//! Latest-state (keyed) broadcasts over loopback: relayed like broadcasts while the receiver
//! keeps up, and, once its queue is full, each newer value of a key replaces the older one
//! still queued, so that a stalled reader still ends with the latest state of every key.

use ghost_sync::testing::TestRelay;
use ghost_sync::{Server, ServerEvent};
use std::collections::HashMap;
use std::time::Duration;

const KEYS: u32 = 4;

/// A keyed value: the round it was sent in, padded so that a few of them fill the buffers.
fn value(round: u32) -> Vec<u8> {
    [&round.to_le_bytes()[..], &[0; 1020]].concat()
}

fn round_of(data: &[u8]) -> u32 {
    u32::from_le_bytes(data[..4].try_into().unwrap())
}

#[tokio::test]
async fn a_receiver_that_keeps_up_gets_every_keyed_frame_in_order() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let (mut sender, mut receiver) = (clients.remove(0), clients.remove(0));
    for round in 0..50 {
        for key in 1..=KEYS {
            sender.broadcast_keyed(key, value(round)).await;
            let (got_key, data) = receiver.expect_keyed_from(sender.client_id()).await;
            assert_eq!((got_key, round_of(&data)), (key, round));
        }
    }
}

#[tokio::test]
async fn a_stalled_reader_ends_with_the_latest_value_of_every_key() {
    let relay = TestRelay::start(
        Server::builder()
            .channel_capacity(8)
            .write_timeout(Duration::from_secs(600))
            .ping_interval(Duration::from_secs(600))
            .idle_timeout(Duration::from_secs(1200)),
    )
    .await;
    relay.create_room("arena");
    let mut sender = relay.joined("arena").await;
    let mut stalled = relay.client_builder().receive_buffer(4096).connect().await;
    stalled.join("arena").await;
    stalled.expect_joined("arena").await;
    sender.expect_member_joined(stalled.client_id()).await;
    let stalled = stalled.stop_reading();
    // 8 MiB of values, far more than the kernel buffers and the queue of 8 hold: without
    // replacement, the last rounds would find the queue full and be dropped.
    let rounds = 2_000;
    for round in 0..rounds {
        for key in 1..=KEYS {
            sender.broadcast_keyed(key, value(round)).await;
        }
    }
    // The relay has routed every value before it answers this ping.
    sender.expect_round_trip().await;
    let mut reader = stalled.resume();
    let mut latest: HashMap<u32, u32> = HashMap::new();
    let mut first_seen = Vec::new();
    let mut frames = 0u32;
    while latest.len() < KEYS as usize || latest.values().any(|&round| round != rounds - 1) {
        match reader.next_event().await {
            ServerEvent::Keyed {
                sender_id,
                key,
                data,
            } => {
                assert_eq!(sender_id, sender.client_id());
                let round = round_of(&data);
                if let Some(&before) = latest.get(&key) {
                    assert!(round > before, "key {key}: round {round} after {before}");
                } else {
                    first_seen.push(key);
                }
                latest.insert(key, round);
                frames += 1;
            }
            // A value the writer had already taken cannot be replaced, so a few may still be
            // dropped; they are counted.
            ServerEvent::Dropped { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(first_seen, vec![1, 2, 3, 4], "the keys' first order");
    assert!(
        frames < rounds * KEYS,
        "every value arrived: nothing was coalesced"
    );
}
