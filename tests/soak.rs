//! Soak: many clients in rooms of 8 and 64 exchange messages at a steady rate. Zero
//! unexpected disconnects, zero loss below capacity, per-sender order kept, memory flat after
//! warm-up.
//!
//! `cargo test` runs a short version (256 clients, a few seconds). The full one (5,000
//! clients, 10 minutes) is ignored by default; run it before a release:
//!
//! ```text
//! cargo test --release --test soak -- --ignored --nocapture
//! ```

mod common;

use common::*;
use ghost_sync::{Client, DisconnectKind, Server, ServerEvent, Uuid};
use std::collections::HashMap;
use std::time::Duration;

/// Resident memory of this process (relay and clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Report {
    delivered: u64,
    rss_warm_kib: u64,
    rss_end_kib: u64,
}

/// `clients` clients, half in rooms of 8 and half in rooms of 64; each sends `messages`
/// messages, one every `every`, carrying its sequence number; each checks that it received
/// every message of every other member of its room, in order.
async fn soak(clients: usize, messages: u32, every: Duration) -> Report {
    // Queues deep enough to ride out a client starved of CPU for a while (a loaded CI
    // machine): the soak is about loss below capacity, not about backpressure.
    let (handle, addr) = start(
        Server::builder()
            .max_clients(clients + 16)
            .channel_capacity(1 << 16)
            .max_queued_bytes(64 << 20),
    )
    .await;
    let mut plan = Vec::new();
    for n in 0..clients {
        let (size, index) = if n < clients / 2 {
            (8, n / 8)
        } else {
            (64, n / 64 + 1_000_000)
        };
        let room = format!("room-{size}-{index}");
        if !handle.room_exists(&room) {
            handle.create_room(&room).unwrap();
        }
        plan.push(room);
    }
    // Everyone joins first, so that every member hears every message.
    let mut joined_clients = Vec::new();
    for room in &plan {
        let mut client = Client::connect(addr).await.unwrap();
        client.join(room).await.unwrap();
        expect_joined(&mut client, room).await;
        joined_clients.push(client);
    }
    let members: HashMap<String, usize> = plan.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.clone()).or_default() += 1;
        m
    });
    let start = tokio::sync::Barrier::new(clients + 1);
    let start = std::sync::Arc::new(start);
    let mut tasks = Vec::new();
    for (client, room) in joined_clients.into_iter().zip(&plan) {
        let others = members[room] - 1;
        let start = std::sync::Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = client.split();
            let receiver = tokio::spawn(async move {
                let mut next: HashMap<Uuid, u32> = HashMap::new();
                let mut total = 0u64;
                let expected = others as u64 * u64::from(messages);
                while total < expected {
                    match rx.recv().await {
                        Ok(Some(ServerEvent::Broadcast { sender_id, data })) => {
                            let seq = u32::from_le_bytes(data[..4].try_into().unwrap());
                            let want = next.entry(sender_id).or_default();
                            assert_eq!(seq, *want, "order or loss from {sender_id}");
                            *want += 1;
                            total += 1;
                        }
                        Ok(Some(ServerEvent::PlayerJoined { .. })) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                (total, rx)
            });
            start.wait().await;
            let mut ticks = tokio::time::interval(every);
            for seq in 0..messages {
                ticks.tick().await;
                let mut data = [0u8; 64];
                data[..4].copy_from_slice(&seq.to_le_bytes());
                tx.broadcast(&data).await.unwrap();
            }
            let (total, rx) = receiver.await.unwrap();
            (total, tx, rx)
        }));
    }
    start.wait().await;
    let warm_at = messages / 4;
    let mut rss_warm_kib = 0;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(every * warm_at).await;
        rss_kib()
    });
    let mut delivered = 0;
    let mut keep = Vec::new();
    // The traffic itself takes `messages × every`; past that, the usual patience.
    let deadline = tokio::time::Instant::now() + every * messages + PATIENCE;
    for task in tasks {
        let (total, tx, rx) = tokio::time::timeout_at(deadline, task)
            .await
            .expect("every client's traffic in time")
            .unwrap();
        delivered += total;
        keep.push((tx, rx));
    }
    if let Ok(rss) = sampler.await {
        rss_warm_kib = rss;
    }
    let rss_end_kib = rss_kib();
    let stats = handle.stats();
    for kind in DisconnectKind::ALL {
        assert_eq!(
            stats.disconnects_for(kind),
            0,
            "unexpected {kind:?} disconnects"
        );
    }
    assert_eq!(stats.frames_dropped, 0, "loss below capacity");
    assert_eq!(handle.client_count(), clients);
    drop(keep);
    Report {
        delivered,
        rss_warm_kib,
        rss_end_kib,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_soak_256_clients() {
    let report = soak(256, 40, Duration::from_millis(50)).await;
    // 128 clients in rooms of 8 (7 others), 128 in rooms of 64 (63 others), 40 messages each.
    assert_eq!(report.delivered, (128 * 7 + 128 * 63) * 40);
    // Memory does not climb once warm (generous: allocator noise, a handful of buffers).
    assert!(
        report.rss_end_kib <= report.rss_warm_kib + 32 * 1024,
        "RSS {} KiB warm, {} KiB at the end",
        report.rss_warm_kib,
        report.rss_end_kib
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "10 minutes, 5,000 clients: run before a release"]
async fn soak_5000_clients_10_minutes() {
    // 600 s at 2 messages a second.
    let report = soak(5_000, 1_200, Duration::from_millis(500)).await;
    println!(
        "delivered {} messages; RSS {} KiB warm, {} KiB at the end",
        report.delivered, report.rss_warm_kib, report.rss_end_kib
    );
    assert!(report.rss_end_kib <= report.rss_warm_kib + report.rss_warm_kib / 10 + 16 * 1024);
}
