//! Micro-benchmarks of the hot paths, without redis or nats (`cargo bench -p ghost-sync-bench`):
//!
//! - `parse`: the harness's parsers over a buffer of deliveries, in ns per message, per
//!   protocol and payload size: what a delivery costs the load generator, to tell that the
//!   harness is not what limits a server's figures;
//! - `fanout`: an in-process ghost-sync relay (the library's public `Server` API) and the
//!   harness's raw members in one room, window of 64: deliveries per second and process CPU
//!   per delivery. With relay and load in one process this is the easiest thing to profile
//!   (`perf record -e cpu-clock -g target/release/deps/hot_paths-* fanout`).
//!
//! - `coalesce`: the cost of a keyed frame that replaces the older value of its key in a
//!   member's full queue, at queue depths 16 and 1,024 (as many keys as the queue holds, so a
//!   scan of the queue would cost 64 times more at the deeper one), against a plain broadcast
//!   that the full queue drops: ns of the relay's routing per frame, from the first frame
//!   sent to the sender's pong. The same figure at both depths is what "no scan" means.
//!
//! An argument filters the benchmarks by name.

use ghost_sync::protocol::{
    decode_frame, encode, ClientFrame, FrameReader, ServerFrame, PROTOCOL_VERSION,
};
use ghost_sync::Server;
use ghost_sync_bench::load::{Pacing, Phase, PubMode, Swarm, Topology};
use ghost_sync_bench::payload;
use ghost_sync_bench::proto::{self, Proto};
use std::time::{Duration, Instant};

fn parse_bench(filter: &str) {
    for proto in Proto::ALL {
        for size in [16, 256, 4096] {
            let name = format!("parse/{}/{size}B", proto.name());
            if !name.contains(filter) {
                continue;
            }
            // A buffer of server-side deliveries as the harness reads them.
            let mut one = Vec::new();
            let data = payload::template(size);
            match proto {
                Proto::Ghost => {
                    let body = 1 + 16 + 8 + size;
                    one.extend_from_slice(&(body as u32).to_be_bytes());
                    one.push(6);
                    one.extend_from_slice(&[0x11; 16]);
                    one.extend_from_slice(&(size as u64).to_le_bytes());
                    one.extend_from_slice(&data);
                }
                Proto::Redis => {
                    one.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$6\r\nroom-1\r\n");
                    one.extend_from_slice(format!("${size}\r\n").as_bytes());
                    one.extend_from_slice(&data);
                    one.extend_from_slice(b"\r\n");
                }
                Proto::Nats => {
                    one.extend_from_slice(format!("MSG room-1 1 {size}\r\n").as_bytes());
                    one.extend_from_slice(&data);
                    one.extend_from_slice(b"\r\n");
                }
            }
            let per_buf = (64 * 1024 / one.len()).max(1);
            let buf = one.repeat(per_buf);
            let mut n = 0u64;
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(300) {
                let mut at = 0;
                while let Ok(Some((event, used))) = proto::parse(proto, &buf[at..]) {
                    if let proto::Event::Deliver(r) = event {
                        let body = &buf[at + r.start..at + r.end];
                        std::hint::black_box(payload::read(body, size).ok());
                    }
                    at += used;
                    n += 1;
                }
            }
            let ns = t0.elapsed().as_nanos() as f64 / n as f64;
            println!("{name:<28} {ns:>8.1} ns/message");
        }
    }
}

async fn fanout_bench(filter: &str) {
    for room_size in [8, 64, 1000] {
        let name = format!("fanout/room={room_size}/256B");
        if !name.contains(filter) {
            continue;
        }
        let handle = Server::builder()
            .bind("127.0.0.1:0")
            .max_clients(2000)
            .build()
            .run()
            .await
            .expect("relay");
        handle.create_room("room-0").expect("room");
        let addr = handle.local_addr().expect("address");
        let mut swarm = Swarm::connect(Topology {
            proto: Proto::Ghost,
            addr,
            first_room: 0,
            rooms: 1,
            room_size,
            payload: 256,
            mode: PubMode::One,
            slow_member: false,
            max_window: 64,
            connect_concurrency: 64,
        })
        .await
        .expect("swarm");
        let phases = [
            Phase {
                duration: Duration::from_millis(200),
                record: false,
                stall: false,
            },
            Phase {
                duration: Duration::from_secs(1),
                record: false,
                stall: false,
            },
        ];
        let pid = std::process::id();
        let r = swarm
            .run(
                Pacing::Window(64),
                &phases,
                Some(pid),
                Duration::from_secs(5),
            )
            .await
            .expect("run");
        let totals = swarm.finish().await;
        handle.shutdown().await;
        let m = &r[1];
        let cpu_ns = m.server_cpu_s.unwrap_or(0.0) * 1e9 / m.deliveries.max(1) as f64;
        println!(
            "{name:<28} {:>10.0} deliveries/s {cpu_ns:>8.0} ns process CPU/delivery{}",
            m.rate(),
            if totals.clean() { "" } else { "  LOSS" }
        );
    }
}

/// A raw ghost-sync client: frames written whole, the relay's read as they come.
struct Raw {
    stream: tokio::net::TcpStream,
    buf: bytes::BytesMut,
}

impl Raw {
    async fn connect(
        addr: std::net::SocketAddr,
        receive_buffer: Option<u32>,
    ) -> (Self, ghost_sync::Uuid) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        }
        let stream = socket.connect(addr).await.expect("connect");
        let mut raw = Raw {
            stream,
            buf: bytes::BytesMut::new(),
        };
        raw.send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: &[],
            resume: &[],
        })
        .await;
        let id = match raw.next().await {
            ServerFrameOwned::Welcome(id) => id,
            other => panic!("expected a welcome, got {other:?}"),
        };
        raw.send(&ClientFrame::Join {
            room_id: "room-0",
            data: &[],
        })
        .await;
        while raw.next().await != ServerFrameOwned::Members {}
        (raw, id)
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&encode(frame)).await.expect("write");
    }

    async fn next(&mut self) -> ServerFrameOwned {
        use tokio::io::AsyncReadExt;
        let reader = FrameReader::for_payload(64 * 1024);
        loop {
            if let Some(body) = reader.next_frame(&mut self.buf).expect("frame") {
                return match decode_frame::<ServerFrame<'_>>(&body).expect("decode") {
                    ServerFrame::Welcome { client_id, .. } => ServerFrameOwned::Welcome(client_id),
                    ServerFrame::Members { more: false, .. } => ServerFrameOwned::Members,
                    ServerFrame::Pong => ServerFrameOwned::Pong,
                    _ => ServerFrameOwned::Other,
                };
            }
            self.buf.reserve(64 * 1024);
            assert!(
                self.stream.read_buf(&mut self.buf).await.expect("read") > 0,
                "closed"
            );
        }
    }

    /// Sends `frames` (encoded back to back), then a ping, and waits for the pong: by then the
    /// relay has routed every frame.
    async fn send_all_and_sync(&mut self, frames: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(frames).await.expect("write");
        self.send(&ClientFrame::Ping).await;
        while self.next().await != ServerFrameOwned::Pong {}
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ServerFrameOwned {
    Welcome(ghost_sync::Uuid),
    Members,
    Pong,
    Other,
}

async fn coalesce_bench(filter: &str) {
    const FRAMES: usize = 200_000;
    for depth in [16usize, 1024] {
        for keyed in [true, false] {
            let name = format!(
                "coalesce/depth={depth}/{}",
                if keyed {
                    "keyed-replaced"
                } else {
                    "plain-dropped"
                }
            );
            if !name.contains(filter) {
                continue;
            }
            let handle = Server::builder()
                .bind("127.0.0.1:0")
                .channel_capacity(depth)
                .max_queued_bytes(64 << 20)
                .write_timeout(Duration::from_secs(600))
                .ping_interval(Duration::from_secs(600))
                .idle_timeout(Duration::from_secs(1200))
                .build()
                .run()
                .await
                .expect("relay");
            handle.create_room("room-0").expect("room");
            let addr = handle.local_addr().expect("address");
            // The observer never reads after its join: its queue fills and stays full.
            let (_observer, observer_id) = Raw::connect(addr, Some(4096)).await;
            let (mut sender, _) = Raw::connect(addr, None).await;
            let keys = depth as u32;
            let value = vec![0u8; 1024];
            let mut fill = Vec::new();
            for key in 0..keys {
                fill.extend_from_slice(&encode(&ClientFrame::Keyed { key, data: &value }));
            }
            while handle
                .client_info(observer_id)
                .is_some_and(|info| info.queue_depth < depth)
            {
                sender.send_all_and_sync(&fill).await;
            }
            let small = [7u8; 16];
            let mut frames = Vec::new();
            for n in 0..FRAMES {
                let key = n as u32 % keys;
                let frame = if keyed {
                    encode(&ClientFrame::Keyed { key, data: &small })
                } else {
                    encode(&ClientFrame::Broadcast { data: &small })
                };
                frames.extend_from_slice(&frame);
            }
            let t0 = Instant::now();
            sender.send_all_and_sync(&frames).await;
            let ns = t0.elapsed().as_nanos() as f64 / FRAMES as f64;
            let depth_now = handle.client_info(observer_id).map_or(0, |i| i.queue_depth);
            println!("{name:<36} {ns:>8.0} ns/frame (observer's queue: {depth_now} frames)");
            handle.shutdown().await;
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    parse_bench(&filter);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(fanout_bench(&filter));
    rt.block_on(coalesce_bench(&filter));
}
