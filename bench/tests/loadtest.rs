//! `ghost-sync-loadtest` against in-process relays on loopback: a clean run counts every
//! delivery and loses none, the JSON report has its documented fields, a relay that checks
//! tokens admits the right one and the report names a wrong one, missing rooms and an absent
//! relay are reported plainly, and the binary itself prints one JSON object.

use ghost_sync::auth::HmacTokenValidator;
use ghost_sync::{Server, ServerHandle, ServerHandler, Uuid};
use ghost_sync_bench::loadtest::{self, Options, Report, Rooms};
use std::net::SocketAddr;
use std::time::Duration;

/// Generous: a run is bounded by its own durations; this only stops a hung test.
const PATIENCE: Duration = Duration::from_secs(20);

async fn relay(
    rooms: &[&str],
    validator: Option<HmacTokenValidator>,
) -> (ServerHandle, SocketAddr) {
    let mut builder = Server::builder().bind("127.0.0.1:0");
    if let Some(v) = validator {
        builder = builder.authenticate(v);
    }
    let handle = builder.build().run().await.unwrap();
    for room in rooms {
        handle.create_room(room).unwrap();
    }
    let addr = handle.local_addr().unwrap();
    (handle, addr)
}

/// 2 rooms × 3 clients at 20 Hz, a short window.
fn small(addr: SocketAddr) -> Options {
    Options {
        addr: addr.to_string(),
        rooms: Rooms::Names(vec!["a".to_owned(), "b".to_owned()]),
        room_size: Some(3),
        rate: 20.0,
        payload: 32,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(3),
        ..Options::default()
    }
}

async fn run(options: &Options) -> Report {
    tokio::time::timeout(PATIENCE, loadtest::run(options))
        .await
        .expect("the run ends by itself")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_counts_every_delivery() {
    let (handle, addr) = relay(&["a", "b"], None).await;
    let report = run(&small(addr)).await;
    assert_eq!((report.clients, report.joined, report.rooms), (6, 6, 2));
    assert!(report.published > 0, "{report}");
    assert!(report.published_total >= report.published);
    // Each broadcast reaches the 2 other members of its room of 3.
    assert_eq!(report.expected, report.published * 2, "{report}");
    assert!(report.received > 0);
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.received, report.expected);
    assert_eq!((report.gaps, report.reordered, report.malformed), (0, 0, 0));
    assert_eq!(report.latency_us.len(), report.received);
    assert!(report.disconnects.is_empty(), "{report}");
    assert!(report.errors.is_empty(), "{report}");
    assert_eq!(report.exit_code(), 0);

    let json = report.to_json();
    for field in [
        "addr",
        "rooms",
        "clients",
        "joined",
        "rate_hz",
        "payload_bytes",
        "warmup_s",
        "window_s",
        "published",
        "published_total",
        "expected",
        "received",
        "lost",
        "loss",
        "gaps",
        "reordered",
        "malformed",
        "deliveries_per_sec",
        "latency_us",
        "disconnects",
        "connect_failures",
        "join_failures",
        "publish_errors",
        "errors",
    ] {
        assert!(json.get(field).is_some(), "no {field} in {json}");
    }
    for q in ["count", "mean", "p50", "p99", "p999", "max"] {
        assert!(
            json["latency_us"][q].is_number(),
            "no latency_us.{q} in {json}"
        );
    }
    assert_eq!(json["received"], report.received);
    assert_eq!(json["loss"], 0.0);
    let text = report.to_string();
    assert!(
        text.contains("p99.9") && text.contains("disconnects   none"),
        "{text}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_sent_and_a_wrong_one_is_reported() {
    let validator = HmacTokenValidator::new(b"load test secret");
    let token = validator
        .tokens()
        .mint_for("loadtest", Duration::from_secs(600));
    let (handle, addr) = relay(&["a", "b"], Some(validator)).await;

    let mut good = small(addr);
    good.token = Some(token);
    good.duration = Duration::from_millis(500);
    let report = run(&good).await;
    assert_eq!(report.joined, 6, "{report}");
    assert!(report.received > 0 && report.lost == 0, "{report}");

    for token in [None, Some("v1.bogus.0.0".to_owned())] {
        let mut bad = small(addr);
        bad.token = token;
        let report = run(&bad).await;
        assert_eq!(report.joined, 0, "{report}");
        assert_eq!(
            report.connect_failures.get("auth_failed"),
            Some(&6),
            "{report}"
        );
        assert_eq!(report.exit_code(), 1);
        assert!(
            report.errors.iter().any(|e| e.contains("--token")),
            "{report}"
        );
        assert_eq!(report.to_json()["connect_failures"]["auth_failed"], 6);
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rooms_and_no_relay_are_reported() {
    let (handle, addr) = relay(&["a"], None).await;
    let report = run(&small(addr)).await;
    // Room a exists, room b does not: its 3 clients are refused, and joins create no room.
    assert_eq!(report.joined, 3, "{report}");
    assert_eq!(
        report.join_failures.get("room_not_found"),
        Some(&3),
        "{report}"
    );
    assert!(
        report.errors.iter().any(|e| e.contains("create_room")),
        "{report}"
    );
    assert_eq!(handle.room_client_count("b"), None);
    assert!(report.received > 0 && report.lost == 0, "{report}");
    handle.shutdown().await;

    // Nothing listens there any more.
    let mut gone = small(addr);
    gone.connect_timeout = Duration::from_secs(5);
    let report = run(&gone).await;
    assert_eq!(report.joined, 0);
    assert_eq!(report.exit_code(), 1);
    assert!(!report.connect_failures.is_empty(), "{report}");
}

/// Tells the test once clients publish (so every client has joined and receives).
struct Publishing(tokio::sync::mpsc::Sender<()>);

impl ServerHandler for Publishing {
    fn on_broadcast(&self, _client_id: Uuid, _room_id: &str, _data: &[u8]) {
        let _ = self.0.try_send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_shutting_down_shows_as_disconnects() {
    let (tx, mut publishing) = tokio::sync::mpsc::channel(1);
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .handler(Publishing(tx))
        .build()
        .run()
        .await
        .unwrap();
    handle.create_room("a").unwrap();
    handle.create_room("b").unwrap();
    let mut options = small(handle.local_addr().unwrap());
    options.duration = Duration::from_secs(10);
    let run = tokio::spawn(async move { run(&options).await });
    // Publishing starts once all six joined: shut down then.
    tokio::time::timeout(PATIENCE, publishing.recv())
        .await
        .unwrap()
        .unwrap();
    handle.shutdown().await;
    let report = run.await.unwrap();
    assert_eq!(report.joined, 6);
    assert_eq!(report.disconnects.values().sum::<u64>(), 6, "{report}");
    assert_eq!(
        report.disconnects.get("connection_closed"),
        Some(&6),
        "{report}"
    );
    assert_eq!(report.to_json()["disconnects"]["connection_closed"], 6);
    assert!(
        report.errors.iter().any(|e| e.contains("disconnected")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_one_json_object() {
    let (handle, addr) = relay(&["lobby", "deathmatch"], None).await;
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ghost-sync-loadtest"))
            .args([
                "--addr",
                &addr.to_string(),
                "--room-size",
                "2",
                "--rate",
                "20",
            ])
            .args(["--duration", "500ms", "--warmup", "100ms", "--json"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["joined"], 4);
    assert!(json["received"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    // stderr is not a terminal here: no progress line.
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghost-sync-loadtest"))
        .args(["--payload", "8"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--payload"));
    handle.shutdown().await;
}
