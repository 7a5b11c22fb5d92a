//! `Client::recv` is cancel-safe: cancelling it at any point loses and corrupts nothing.

mod common;

use common::*;
use ghost_sync::{Server, ServerEvent};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_cancelled_over_and_over_still_delivers_every_frame_intact() {
    const COUNT: u32 = 300;
    const SIZE: usize = 20_000;
    // Room for the whole burst: loss under backpressure is not what this test is about.
    let (handle, addr) = start(Server::builder().max_queued_bytes(COUNT as usize * SIZE * 2)).await;
    handle.create_room("lobby").unwrap();
    let mut clients = join_all(addr, "lobby", 2).await;
    let mut receiver = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();

    let send = tokio::spawn(async move {
        for i in 0..COUNT {
            let mut data = vec![(i % 251) as u8; SIZE];
            data[..4].copy_from_slice(&i.to_le_bytes());
            sender.broadcast(&data).await.unwrap();
        }
        sender
    });

    let mut cancelled = 0u32;
    let mut next = 0u32;
    within("every frame", async {
        while next < COUNT {
            // Alternate two ways of abandoning recv half-way: a racing branch that is
            // ready after one yield, and a very short timeout.
            let event = if next % 2 == 0 {
                tokio::select! {
                    event = receiver.recv() => Some(event),
                    _ = tokio::task::yield_now() => None,
                }
            } else {
                tokio::time::timeout(Duration::from_micros(50), receiver.recv())
                    .await
                    .ok()
            };
            let Some(event) = event else {
                cancelled += 1;
                continue;
            };
            match event.unwrap() {
                Some(ServerEvent::Broadcast { data, .. }) => {
                    assert_eq!(data.len(), SIZE);
                    assert_eq!(u32::from_le_bytes(data[..4].try_into().unwrap()), next);
                    assert!(data[4..].iter().all(|&b| b == (next % 251) as u8));
                    next += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert!(
        cancelled > 0,
        "recv was never cancelled: the test proved nothing"
    );
    within("the sender", send).await.unwrap();
}
