//! The `metrics` feature: every series' value after real loopback traffic, read from a
//! recorder of this test's own.
//!
//! Each server is built inside `metrics::with_local_recorder`, so its series land in that
//! test's recorder alone (the tests run in parallel), and the traffic happens afterwards, on
//! the runtime's worker threads, outside that scope: a value only arrives if the server
//! registered its handles when it was built, as it must (no lookup per event).

mod common;

use common::*;
use ghost_sync::layers::BoxError;
use ghost_sync::telemetry::*;
use ghost_sync::{
    Client, DisconnectKind, DisconnectReason, Identity, Server, ServerBuilder, SyncError,
};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every series registered, by `name{label="value",...}` (labels in registration order).
#[derive(Default)]
struct TestRecorder {
    series: Mutex<HashMap<String, Series>>,
}

#[derive(Clone)]
enum Series {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Samples>),
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn render(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl TestRecorder {
    fn slot(&self, key: &Key, make: impl FnOnce() -> Series) -> Series {
        self.series
            .lock()
            .unwrap()
            .entry(render(key))
            .or_insert_with(make)
            .clone()
    }

    fn get(&self, name: &str) -> Option<Series> {
        self.series.lock().unwrap().get(name).cloned()
    }

    fn counter(&self, name: &str) -> u64 {
        match self.get(name) {
            Some(Series::Counter(n)) => n.load(Ordering::Relaxed),
            _ => panic!("no counter {name}; have {:?}", self.names()),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.get(name) {
            Some(Series::Gauge(n)) => f64::from_bits(n.load(Ordering::Relaxed)),
            _ => panic!("no gauge {name}; have {:?}", self.names()),
        }
    }

    fn samples(&self, name: &str) -> Vec<f64> {
        match self.get(name) {
            Some(Series::Histogram(s)) => s.0.lock().unwrap().clone(),
            _ => panic!("no histogram {name}; have {:?}", self.names()),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.series.lock().unwrap().keys().cloned().collect();
        names.sort();
        names
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.slot(key, || Series::Counter(Arc::default())) {
            Series::Counter(n) => Counter::from_arc(n),
            _ => panic!("{} registered as two kinds", render(key)),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.slot(key, || Series::Gauge(Arc::default())) {
            Series::Gauge(n) => Gauge::from_arc(n),
            _ => panic!("{} registered as two kinds", render(key)),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.slot(key, || Series::Histogram(Arc::default())) {
            Series::Histogram(s) => Histogram::from_arc(s),
            _ => panic!("{} registered as two kinds", render(key)),
        }
    }
}

fn label(name: &str, key: &str, value: &str) -> String {
    format!("{name}{{{key}=\"{value}\"}}")
}

/// Builds and runs the server with its series registered in `recorder`.
async fn start_recorded(
    recorder: &TestRecorder,
    builder: ServerBuilder,
) -> (ghost_sync::ServerHandle, std::net::SocketAddr) {
    let server = metrics::with_local_recorder(recorder, || builder.bind("127.0.0.1:0").build());
    let handle = server.run().await.unwrap();
    let addr = handle.local_addr().unwrap();
    (handle, addr)
}

/// No ping during a test, so that frame counts are exact.
fn quiet() -> ServerBuilder {
    Server::builder()
        .idle_timeout(Duration::from_secs(600))
        .ping_interval(Duration::from_secs(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_counts_connections_joins_frames_bytes_fanout_and_disconnects_by_reason() {
    let recorder = TestRecorder::default();
    let (hooks_handler, mut hooks) = common::Recorder::new();
    let (relay, addr) = start_recorded(&recorder, quiet().handler(hooks_handler)).await;
    relay.create_room("arena").unwrap();
    relay.create_room("spare").unwrap();
    relay.create_room("gone").unwrap();
    assert!(relay.delete_room("gone"));
    assert_eq!(recorder.gauge(ROOMS), 2.0);

    let mut clients = join_all(addr, "arena", 3).await;
    assert_eq!(recorder.gauge(CONNECTIONS), 3.0);
    assert_eq!(recorder.counter(CONNECTIONS_TOTAL), 3);
    assert_eq!(recorder.counter(JOINS_TOTAL), 3);

    const N: usize = 5;
    for i in 0..N {
        clients[0].broadcast(&[i as u8; 10]).await.unwrap();
        for receiver in &mut clients[1..] {
            assert!(matches!(
                next_event(receiver).await,
                ghost_sync::ServerEvent::Broadcast { .. }
            ));
        }
    }
    // One sample per broadcast, of its recipients (everyone but the sender), in the one
    // series without a room label.
    assert_eq!(recorder.samples(FANOUT_RECIPIENTS), vec![2.0; N]);
    assert!(!recorder
        .names()
        .iter()
        .any(|n| n.starts_with(&format!("{FANOUT_RECIPIENTS}{{"))));

    // A refused join, by reason.
    clients[2].join("nowhere").await.unwrap();
    assert!(matches!(
        next_event(&mut clients[2]).await,
        ghost_sync::ServerEvent::Error(_)
    ));
    assert_eq!(
        recorder.counter(&label(JOIN_REFUSALS_TOTAL, "reason", "not_found")),
        1
    );

    // One kicked, two leave. Each connection counts its frames before it ends, and writes
    // its last before `on_disconnect`: after the three hooks, every count is final.
    let kicked = clients[1].client_id();
    relay.kick(kicked, "afk").unwrap();
    let mut reasons = vec![DisconnectKind::Kicked];
    wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(id, _) if *id == kicked),
    )
    .await;
    // A client dropped with frames unread may end in a reset: whatever each hook says.
    clients.clear();
    for _ in 0..2 {
        match wait_hook(&mut hooks, |h| matches!(h, Hook::Disconnect(..))).await {
            Hook::Disconnect(_, reason) => reasons.push(reason.kind()),
            _ => unreachable!(),
        }
    }
    assert_eq!(recorder.gauge(CONNECTIONS), 0.0);
    for kind in DisconnectKind::ALL {
        let expected = reasons.iter().filter(|&&k| k == kind).count() as u64;
        let name = label(DISCONNECTS_TOTAL, "reason", kind.as_str());
        assert_eq!(recorder.counter(&name), expected, "{name}");
    }

    let stats = relay.stats();
    // Three joins, N broadcasts and the refused join, no keepalive; and the goodbye (`Bye`)
    // of each of the two clients dropped, unless the relay was already closing it.
    let received = recorder.counter(FRAMES_RECEIVED_TOTAL);
    assert!(
        (3 + N as u64 + 1..=3 + N as u64 + 1 + 2).contains(&received),
        "{received} frames received"
    );
    assert_eq!(recorder.counter(FRAMES_RECEIVED_TOTAL), stats.frames_in);
    assert_eq!(recorder.counter(BYTES_RECEIVED_TOTAL), stats.bytes_in);
    assert!(stats.bytes_in > 10 * N as u64);
    // At least: three confirmations, three announcements, 2N broadcasts, the error reply,
    // the kick's farewell.
    assert!(recorder.counter(FRAMES_SENT_TOTAL) >= 3 + 3 + 2 * N as u64 + 2);
    assert_eq!(recorder.counter(FRAMES_SENT_TOTAL), stats.frames_out);
    assert_eq!(recorder.counter(BYTES_SENT_TOTAL), stats.bytes_out);
    assert_eq!(recorder.counter(FRAMES_DROPPED_TOTAL), 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_count_by_reason() {
    let recorder = TestRecorder::default();
    let builder = quiet().max_clients(1).authenticate_with(
        |creds: ghost_sync::auth::Credentials| async move {
            if creds.token.as_ref() == b"good" {
                Ok(Identity::new("player"))
            } else {
                Err(BoxError::from("bad token"))
            }
        },
    );
    let (relay, addr) = start_recorded(&recorder, builder).await;

    match Client::builder().token("bad").connect(addr).await {
        Err(SyncError::AuthFailed(_)) => {}
        other => panic!("expected an auth failure, got {other:?}"),
    }
    // The refused connection holds its seat until both ends closed it; until then a new one
    // is refused as full, and counted so: count what this test sees.
    let mut full_while_closing = 0;
    let mut first = within("the refused connection's seat", async {
        loop {
            match Client::builder().token("good").connect(addr).await {
                Ok(client) => return client,
                Err(SyncError::ServerFull) => full_while_closing += 1,
                Err(other) => panic!("expected a welcome or a full server, got {other:?}"),
            }
        }
    })
    .await;
    // Answered by its driver, which runs once the connection is counted.
    first.join("nowhere").await.unwrap();
    next_event(&mut first).await;
    match Client::builder().token("good").connect(addr).await {
        Err(SyncError::ServerFull) => {}
        other => panic!("expected a full server, got {other:?}"),
    }
    let refusals = |reason| recorder.counter(&label(HANDSHAKE_REFUSALS_TOTAL, "reason", reason));
    assert_eq!(refusals("auth_failed"), 1);
    assert_eq!(refusals("server_full"), full_while_closing + 1);
    assert_eq!(refusals("unsupported_version"), 0);
    // A refused connection is no connection.
    assert_eq!(recorder.counter(CONNECTIONS_TOTAL), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_counts_dropped_frames_and_its_queue_depth() {
    let recorder = TestRecorder::default();
    let (hooks_handler, mut hooks) = common::Recorder::new();
    let builder = Server::builder()
        .handler(hooks_handler)
        .channel_capacity(8)
        .max_payload(64 * 1024)
        // Ticks that sample the queue depth soon, long before a write times out.
        .ping_interval(Duration::from_millis(300))
        .write_timeout(Duration::from_secs(60));
    let (relay, addr) = start_recorded(&recorder, builder).await;
    relay.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut fast = clients.pop().unwrap();
    let mut sender = clients.pop().unwrap();
    // Joins, then never reads again.
    let slow = RawClient::tiny_window_joined(addr, "arena").await;
    next_event(&mut fast).await; // PlayerJoined
    next_event(&mut sender).await; // PlayerJoined

    // In lockstep with the fast client (which so never drops), until the slow client's
    // queue is full: bounded, at most 256 MiB.
    let payload = vec![7u8; 64 * 1024];
    let mut full = false;
    for _ in 0..4096 {
        sender.broadcast(&payload).await.unwrap();
        next_event(&mut fast).await;
        if std::iter::from_fn(|| hooks.try_recv().ok()).any(|h| matches!(h, Hook::Backpressure(..)))
        {
            full = true;
            break;
        }
    }
    assert!(full, "the slow client's queue never filled");
    // `on_backpressure` fires after the drop is counted.
    assert!(recorder.counter(FRAMES_DROPPED_TOTAL) >= 1);
    assert_eq!(
        recorder.counter(FRAMES_DROPPED_TOTAL),
        relay.stats().frames_dropped
    );

    // Its queue stays full from now on, and the driver samples it at the tick that ends the
    // connection (no pong, or no room for the ping), before it ends it.
    let hook = wait_hook(&mut hooks, |h| {
        matches!(h, Hook::Disconnect(_, r) if matches!(r, DisconnectReason::SlowConsumer | DisconnectReason::PingTimeout))
    })
    .await;
    let depths = recorder.samples(QUEUE_DEPTH);
    assert!(
        depths.iter().any(|&d| d >= 1.0),
        "no full queue sampled: {depths:?} ({hook:?})"
    );
    assert!(depths.iter().all(|&d| d <= 8.0), "{depths:?}");
    drop(slow);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_labels_are_opt_in_one_fanout_series_per_room() {
    let recorder = TestRecorder::default();
    let (relay, addr) = start_recorded(&recorder, quiet().metrics_room_labels(true)).await;
    // A room's series is registered when the room is made.
    metrics::with_local_recorder(&recorder, || {
        relay.create_room("duel").unwrap();
        relay.create_room("crowd").unwrap();
    });
    let mut duel = join_all(addr, "duel", 2).await;
    let mut crowd = join_all(addr, "crowd", 4).await;
    duel[0].broadcast(b"d").await.unwrap();
    next_event(&mut duel[1]).await;
    crowd[0].broadcast(b"c").await.unwrap();
    for member in &mut crowd[1..] {
        next_event(member).await;
    }
    assert_eq!(
        recorder.samples(&label(FANOUT_RECIPIENTS, "room", "duel")),
        vec![1.0]
    );
    assert_eq!(
        recorder.samples(&label(FANOUT_RECIPIENTS, "room", "crowd")),
        vec![3.0]
    );
    // The unlabelled series gets nothing.
    assert_eq!(recorder.samples(FANOUT_RECIPIENTS), Vec::<f64>::new());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_takes_its_rooms_out_of_the_rooms_gauge() {
    let recorder = TestRecorder::default();
    let (handle, _) = start_recorded(&recorder, quiet()).await;
    handle.create_room("a").unwrap();
    handle.create_room("b").unwrap();
    assert_eq!(recorder.gauge(ROOMS), 2.0);
    handle.shutdown().await;
    drop(handle);
    // The gauge is the process's: a restarted server must not find these two still counted.
    assert_eq!(recorder.gauge(ROOMS), 0.0);
}

#[test]
fn a_request_built_for_a_test_registers_no_series() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        ghost_sync::FrameRequest::builder(ghost_sync::ClientMessage::Leave).build()
    });
    assert_eq!(recorder.names(), Vec::<String>::new());
}
