//! The harness against an in-process ghost-sync relay (no redis or nats needed): the raw
//! client written from PROTOCOL.md interoperates with the library's own `Client`, a clean run
//! is reported clean, and a relay that drops frames is caught by the loss check.

use ghost_sync::{Client, Server, ServerEvent};
use ghost_sync_bench::load::{Pacing, Phase, PubMode, Swarm, Topology};
use ghost_sync_bench::proto::{self, ghost, Event, Proto};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn relay(rooms: usize, channel_capacity: usize) -> (ghost_sync::ServerHandle, SocketAddr) {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .channel_capacity(channel_capacity)
        .build()
        .run()
        .await
        .unwrap();
    for i in 0..rooms {
        handle.create_room(&format!("room-{i}")).unwrap();
    }
    let addr = handle.local_addr().unwrap();
    (handle, addr)
}

/// Reads until `want` matches an event; returns the bytes of the first delivery if asked.
async fn next_event(s: &mut TcpStream, buf: &mut Vec<u8>, want: fn(&Event) -> bool) -> Vec<u8> {
    loop {
        if let Some((event, used)) = proto::parse(Proto::Ghost, buf).unwrap() {
            let data = match &event {
                Event::Deliver(r) => buf[r.clone()].to_vec(),
                _ => Vec::new(),
            };
            buf.drain(..used);
            if want(&event) {
                return data;
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "relay closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_client_and_library_client_interoperate() {
    let (handle, addr) = relay(1, 1024).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    ghost::hello(&mut out);
    ghost::join(&mut out, "room-0");
    raw.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    next_event(&mut raw, &mut buf, |e| *e == Event::Hello).await;
    next_event(&mut raw, &mut buf, |e| *e == Event::Subscribed).await;

    let mut lib = Client::connect(addr).await.unwrap();
    lib.join("room-0").await.unwrap();
    loop {
        if let Some(ServerEvent::Joined { .. }) = lib.recv().await.unwrap() {
            break;
        }
    }
    // Library → raw.
    lib.broadcast(b"from the library").await.unwrap();
    let got = next_event(&mut raw, &mut buf, |e| matches!(e, Event::Deliver(_))).await;
    assert_eq!(got, b"from the library");
    // Raw → library.
    out.clear();
    ghost::broadcast(&mut out, b"from the raw client");
    raw.write_all(&out).await.unwrap();
    loop {
        match lib.recv().await.unwrap() {
            Some(ServerEvent::Broadcast { data, .. }) => {
                assert_eq!(&data[..], b"from the raw client");
                break;
            }
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
    handle.shutdown().await;
}

fn topo(addr: SocketAddr) -> Topology {
    Topology {
        proto: Proto::Ghost,
        addr,
        first_room: 0,
        rooms: 2,
        room_size: 4,
        payload: 64,
        mode: PubMode::All,
        slow_member: false,
        max_window: 64,
        connect_concurrency: 8,
    }
}

const RUN: [Phase; 1] = [Phase {
    duration: Duration::from_millis(300),
    record: true,
    stall: false,
}];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_is_clean() {
    let (handle, addr) = relay(2, 1024).await;
    let mut swarm = Swarm::connect(topo(addr)).await.unwrap();
    let r = swarm
        .run(Pacing::Window(64), &RUN, None, Duration::from_secs(5))
        .await
        .unwrap();
    let totals = swarm.finish().await;
    assert!(totals.clean(), "{totals:?}");
    assert!(r[0].deliveries > 0 && !r[0].hist.is_empty());
    // Every message reached the 3 other members of its room.
    assert_eq!(totals.received, 3 * totals.sent);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_dropped_by_the_relay_are_caught() {
    // A one-frame queue per client: bursts of 16 broadcasts overflow it and the relay drops.
    let (handle, addr) = relay(2, 1).await;
    let mut swarm = Swarm::connect(topo(addr)).await.unwrap();
    swarm
        .run(Pacing::Window(64), &RUN, None, Duration::from_millis(300))
        .await
        .unwrap();
    let totals = swarm.finish().await;
    assert!(totals.lost > 0, "{totals:?}");
    assert!(!totals.clean());
    assert_eq!(totals.received + totals.lost, 3 * totals.sent);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_swarm_times_cross_server_deliveries_apart() {
    // The same relay under two addresses: members 0 and 2 count as on "server 0", 1 and 3 on
    // "server 1", so 2 of each message's 3 deliveries cross.
    let (handle, addr) = relay(2, 1024).await;
    let mut swarm = Swarm::connect_spread(topo(addr), &[addr, addr])
        .await
        .unwrap();
    swarm.wait_presence(Duration::from_secs(5)).await.unwrap();
    let r = swarm
        .run(Pacing::Window(64), &RUN, None, Duration::from_secs(5))
        .await
        .unwrap();
    let totals = swarm.finish().await;
    assert!(totals.clean(), "{totals:?}");
    // About two thirds: a read batch being recorded as the phase ends may have reached one
    // histogram and not yet the other.
    let (cross, all) = (r[0].cross_hist.len() as f64, r[0].hist.len() as f64);
    assert!(
        all > 0.0 && (cross / all - 2.0 / 3.0).abs() < 0.02,
        "{cross} of {all}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_unconnected_relays_never_meet() {
    // Two relays that know nothing of each other: each member sees only the half of its room
    // on its own relay, so waiting for presence fails instead of measuring a split room.
    let (a, addr_a) = relay(2, 1024).await;
    let (b, addr_b) = relay(2, 1024).await;
    let swarm = Swarm::connect_spread(topo(addr_a), &[addr_a, addr_b])
        .await
        .unwrap();
    let err = swarm
        .wait_presence(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("8 members"), "{err}");
    let _ = swarm.finish().await;
    a.shutdown().await;
    b.shutdown().await;
}
