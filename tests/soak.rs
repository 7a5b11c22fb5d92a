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

/// One look at the process while traffic flows.
#[derive(Debug)]
struct Sample {
    /// How far into the traffic's duration, in percent.
    percent: u32,
    rss_kib: u64,
    frames_in: u64,
    frames_out: u64,
}

struct Report {
    delivered: u64,
    samples: Vec<Sample>,
    rss_end_kib: u64,
}

impl Report {
    /// The baseline: RSS a quarter of the way in, once every buffer has been through a few
    /// bursts.
    fn rss_warm_kib(&self) -> u64 {
        self.samples
            .iter()
            .find(|s| s.percent == 25)
            .map_or(0, |s| s.rss_kib)
    }

    /// The highest RSS seen from the baseline on, traffic's end included.
    fn rss_peak_after_warm_kib(&self) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.percent >= 25)
            .map(|s| s.rss_kib)
            .chain([self.rss_end_kib])
            .max()
            .unwrap_or(0)
    }

    fn print(&self) {
        for s in &self.samples {
            println!(
                "{:>3}%: RSS {:>7} KiB, frames in {:>10}, frames out {:>11}",
                s.percent, s.rss_kib, s.frames_in, s.frames_out
            );
        }
        println!(
            "end : RSS {:>7} KiB; delivered {} messages",
            self.rss_end_kib, self.delivered
        );
    }
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
    // RSS is sampled every 5% of the traffic's duration; the sample at 25% is the warm
    // baseline. Samples are taken while traffic flows, so a backlog the allocator keeps
    // after it drains does not hide or fake a trend.
    let traffic = every * messages;
    let sampler = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let period = traffic / 20;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            // A late tick must not be followed by a catch-up burst, or samples bunch up.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut samples = Vec::new();
            for step in 1..=20u32 {
                ticks.tick().await;
                let stats = handle.stats();
                samples.push(Sample {
                    percent: step * 5,
                    rss_kib: rss_kib(),
                    frames_in: stats.frames_in,
                    frames_out: stats.frames_out,
                });
            }
            samples
        })
    };
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
    let samples = sampler.await.expect("the RSS sampler");
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
        samples,
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
        report.rss_peak_after_warm_kib() <= report.rss_warm_kib() + 32 * 1024,
        "RSS climbed after warm-up: {:?}",
        report.samples
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "10 minutes, 5,000 clients: run before a release"]
async fn soak_5000_clients_10_minutes() {
    // 600 s at 2 messages a second.
    let report = soak(5_000, 1_200, Duration::from_millis(500)).await;
    report.print();
    let warm = report.rss_warm_kib();
    assert!(
        report.rss_peak_after_warm_kib() <= warm + warm / 10 + 16 * 1024,
        "RSS climbed more than 10% after warm-up"
    );
}
