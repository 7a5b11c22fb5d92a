//! The missed-frame notice over loopback: after frames for a client were dropped, the next
//! frame it gets comes behind `Dropped { count }`, once per episode, and a client that keeps
//! up never gets one.

use ghost_sync::testing::{TestClient, TestRelay};
use ghost_sync::{Client, Server, ServerEvent};
use std::time::Duration;

/// A relay whose clients' queues hold 4 frames, and that never gives up on a stalled one.
async fn relay() -> TestRelay {
    let relay = TestRelay::start(
        Server::builder()
            .channel_capacity(4)
            .write_timeout(Duration::from_secs(600))
            .ping_interval(Duration::from_secs(600))
            .idle_timeout(Duration::from_secs(1200)),
    )
    .await;
    relay.create_room("arena");
    relay
}

fn numbered(n: u32) -> Vec<u8> {
    [&n.to_le_bytes()[..], &[0; 1020]].concat()
}

/// Broadcasts numbered frames from `sender` until the relay has dropped some, then `extra`
/// more; `fast` reads each one (so it is never behind). Returns how many were sent.
async fn flood(
    relay: &TestRelay,
    sender: &mut TestClient,
    fast: &mut TestClient,
    extra: u32,
) -> u32 {
    let before = relay.handle().stats().frames_dropped;
    let mut sent = 0;
    while relay.handle().stats().frames_dropped == before && sent < 20_000 {
        sender.broadcast(numbered(sent)).await;
        // Expecting exactly a broadcast: a Dropped notice here would fail the test.
        fast.expect_broadcast(sender.client_id(), numbered(sent))
            .await;
        sent += 1;
    }
    assert!(
        relay.handle().stats().frames_dropped > before,
        "nothing dropped"
    );
    for _ in 0..extra {
        sender.broadcast(numbered(sent)).await;
        fast.expect_broadcast(sender.client_id(), numbered(sent))
            .await;
        sent += 1;
    }
    sent
}

#[tokio::test]
async fn after_drops_the_next_frame_comes_behind_one_notice_of_how_many() {
    let relay = relay().await;
    let mut clients = relay.join_all("arena", 2).await;
    let (mut sender, mut fast) = (clients.remove(0), clients.remove(0));
    let mut slow = relay.client_builder().receive_buffer(4096).connect().await;
    slow.join("arena").await;
    slow.expect_joined("arena").await;
    sender.expect_member_joined(slow.client_id()).await;
    fast.expect_member_joined(slow.client_id()).await;

    for episode in 0..2 {
        let stalled = slow.stop_reading();
        let dropped_before = relay.handle().stats().frames_dropped;
        let sent = flood(&relay, &mut sender, &mut fast, 5).await;
        sender.expect_round_trip().await;
        let dropped = (relay.handle().stats().frames_dropped - dropped_before) as u32;
        slow = stalled.resume();
        // What was queued and written arrives whole and in order, with no notice: the drops
        // all came after it.
        let mut last = None;
        for _ in 0..sent - dropped {
            let data = slow.expect_broadcast_from(sender.client_id()).await;
            let n = u32::from_le_bytes(data[..4].try_into().unwrap());
            assert!(last.is_none_or(|last| n > last), "{n} after {last:?}");
            last = Some(n);
        }
        // The next frame comes behind the notice, once.
        sender.broadcast(b"after").await;
        fast.expect_broadcast(sender.client_id(), b"after").await;
        assert_eq!(slow.expect_dropped().await, dropped, "episode {episode}");
        slow.expect_broadcast(sender.client_id(), b"after").await;
        // And the one after it does not.
        sender.broadcast(b"again").await;
        fast.expect_broadcast(sender.client_id(), b"again").await;
        slow.expect_broadcast(sender.client_id(), b"again").await;
    }
}

#[tokio::test]
async fn the_client_reports_the_notice_as_an_event() {
    let relay = relay().await;
    let mut clients = relay.join_all("arena", 2).await;
    let (mut sender, mut fast) = (clients.remove(0), clients.remove(0));
    // A Client that does not call `recv` does not read: it stalls until it does.
    let mut client = Client::connect(relay.addr()).await.unwrap();
    client.join("arena").await.unwrap();
    sender.expect_member_joined(client.client_id()).await;
    fast.expect_member_joined(client.client_id()).await;
    flood(&relay, &mut sender, &mut fast, 0).await;
    sender.expect_round_trip().await;
    let dropped = relay.handle().stats().frames_dropped as u32;
    let reading = tokio::spawn(async move {
        loop {
            match client.recv().await {
                Ok(Some(ServerEvent::Dropped { count })) => return count,
                Ok(Some(_)) => continue,
                other => panic!("expected events, got {other:?}"),
            }
        }
    });
    // Sent until the client has read enough to take it: the first one it takes comes
    // behind the notice.
    let mut tries = 0;
    while !reading.is_finished() && tries < 2_000 {
        sender.broadcast(b"after").await;
        fast.expect_broadcast(sender.client_id(), b"after").await;
        tries += 1;
    }
    let count = tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("no Dropped event")
        .unwrap();
    assert!(count >= dropped, "{count} < {dropped}");
}
