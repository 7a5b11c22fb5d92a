//! Worst-case memory is bounded by a formula of the options (`Server::memory_bound`), and
//! holds while 1,000 clients misbehave at once: half never read, half flood their rooms and
//! never read either.

mod common;

use common::*;
use ghost_sync::{Client, Server};

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_under_the_bound_while_1000_clients_misbehave() {
    const ROOMS: usize = 100;
    const DEAF: usize = 5;
    const LOUD: usize = 5;
    const FRAMES: usize = 200;
    const PAYLOAD: usize = 4096;
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .max_clients(ROOMS * (DEAF + LOUD) + 8)
        .max_payload(PAYLOAD)
        .max_queued_bytes(64 * 1024);
    let server = server.build();
    let bound = server.memory_bound();
    let before = rss();
    let handle = server.run().await.unwrap();
    let addr = handle.local_addr().unwrap();

    let mut deaf = Vec::new();
    let mut loud = Vec::new();
    for r in 0..ROOMS {
        let room = format!("room-{r}");
        handle.create_room(&room).unwrap();
        for _ in 0..DEAF {
            deaf.push(RawClient::tiny_window_joined(addr, &room).await);
        }
        for _ in 0..LOUD {
            loud.push(joined(addr, &room).await);
        }
    }
    // Every loud client floods its room at once; nobody reads.
    let floods: Vec<_> = loud
        .into_iter()
        .map(|mut client: Client| {
            tokio::spawn(async move {
                for _ in 0..FRAMES {
                    client.broadcast(&[0xab; PAYLOAD]).await.unwrap();
                }
                client
            })
        })
        .collect();
    let mut loud = Vec::new();
    for flood in floods {
        loud.push(within("a flood", flood).await.unwrap());
    }
    // Everything sent has reached the relay: frames in = joins + floods.
    let expected = (ROOMS * (DEAF + LOUD) + ROOMS * LOUD * FRAMES) as u64;
    within("the relay to take every frame", async {
        while handle.stats().frames_in < expected {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let stats = handle.stats();
    assert!(stats.frames_dropped > 0, "the budgets never had to drop");
    let grown = rss().saturating_sub(before);
    // The clients live in this process too: each holds at most a read buffer and a frame.
    let clients = (ROOMS * (DEAF + LOUD)) as u64 * 32 * 1024;
    assert!(
        grown <= bound + clients,
        "RSS grew {} MiB; bound {} MiB + clients {} MiB",
        grown >> 20,
        bound >> 20,
        clients >> 20
    );
    println!(
        "RSS grew {} MiB under a bound of {} MiB (+{} MiB of clients); {} frames dropped",
        grown >> 20,
        bound >> 20,
        clients >> 20,
        stats.frames_dropped
    );
    drop((deaf, loud));
}
