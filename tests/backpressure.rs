//! Backpressure: a client that does not read loses frames, alone, and nobody waits for it.

mod common;

use bytes::Bytes;
use common::*;
use ghost_sync::testing::TestRelay;
use ghost_sync::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_for_the_slow_client_only_and_fires_on_backpressure() {
    // The handler calls back into the handle from on_backpressure too.
    let (recorder, mut hooks) = Recorder::reentrant();
    let relay = TestRelay::start(
        Server::builder()
            .handler_with(recorder)
            .channel_capacity(8)
            .max_payload(64 * 1024),
    )
    .await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let mut fast = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();

    // The slow client joins and then never reads again.
    let slow = relay.joined("arena").await.stop_reading();
    fast.expect_member_joined(slow.client_id()).await;
    sender.expect_member_joined(slow.client_id()).await;

    // In lockstep with the fast client, until the slow client's socket buffers and its
    // 8-frame queue are full (at most 256 MiB). The fast client never has more than one
    // frame queued, so it loses nothing, and the sender never waits for the slow one.
    let payload = Bytes::from(vec![42u8; 64 * 1024]);
    let mut dropped = None;
    for i in 0..4096u32 {
        let mut data = payload.to_vec();
        data[..4].copy_from_slice(&i.to_le_bytes());
        sender.broadcast(&data).await;
        let got = fast.expect_broadcast_from(sender.client_id()).await;
        assert_eq!(u32::from_le_bytes(got[..4].try_into().unwrap()), i);
        dropped = std::iter::from_fn(|| hooks.try_recv().ok())
            .find(|h| matches!(h, Hook::Backpressure(..)));
        if dropped.is_some() {
            break;
        }
    }
    let dropped = dropped.expect("the slow client's queue never filled");
    match dropped {
        Hook::Backpressure(client, room) => {
            assert_ne!(client, fast.client_id());
            assert_ne!(client, sender.client_id());
            assert_eq!(room, "arena");
        }
        _ => unreachable!(),
    }
    // Nothing was dropped for the fast client, before or after.
    let fast_id = fast.client_id();
    assert!(!std::iter::from_fn(|| hooks.try_recv().ok())
        .any(|h| h == Hook::Backpressure(fast_id, "arena".into())));
    drop(slow);
}
