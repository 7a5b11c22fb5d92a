//! `examples/axum_admin.rs` with `--features metrics`: its admin server and a relay in this
//! process, some traffic from real clients, then `GET /metrics` over HTTP on loopback, and
//! the values read back from the Prometheus text.
//!
//! The example installs its recorder globally, once per process: this binary holds this one
//! test only.

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_admin.rs"]
mod axum_admin;

use common::*;
use ghost_sync::{DisconnectReason, Server, ServerEvent};
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpListener;

/// The samples of a Prometheus text exposition, by series (`name` or `name{labels}`).
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_serves_the_relays_metrics_over_http() {
    let prometheus = axum_admin::install_metrics().unwrap();
    let (hooks_handler, mut hooks) = Recorder::new();
    let (relay, addr) = start(
        Server::builder()
            .handler(hooks_handler)
            .idle_timeout(Duration::from_secs(600))
            .ping_interval(Duration::from_secs(300)),
    )
    .await;
    relay.create_room("lobby").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let app =
        axum_admin::with_metrics(axum_admin::router(relay.clone()), relay.clone(), prometheus);
    let server = tokio::spawn(async move { axum::serve(admin, app).await });

    // Three players; one broadcasts four frames to the other two; one is kicked.
    let mut players = join_all(addr, "lobby", 3).await;
    for i in 0..4u8 {
        players[0].broadcast(&[i; 16]).await.unwrap();
        for other in &mut players[1..] {
            assert!(matches!(
                next_event(other).await,
                ServerEvent::Broadcast { .. }
            ));
        }
    }
    let kicked = players[2].client_id();
    relay.kick(kicked, "afk").unwrap();
    // `on_disconnect` comes after the disconnect is counted.
    wait_hook(
        &mut hooks,
        |h| matches!(h, Hook::Disconnect(id, DisconnectReason::Kicked(_)) if *id == kicked),
    )
    .await;

    let response = within(
        "GET /metrics",
        axum_admin::http(admin_addr, "GET", "/metrics"),
    )
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let values = parse(&response);
    let value = |series: &str| {
        *values
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{response}"))
    };
    assert_eq!(value("ghost_sync_connections_total"), 3.0);
    assert_eq!(value("ghost_sync_connections"), 2.0);
    assert_eq!(value("ghost_sync_joins_total"), 3.0);
    assert_eq!(value("ghost_sync_rooms"), 1.0);
    // Three joins and four broadcasts at least (the players that are left may have more
    // frames under way, none here since no ping is due).
    assert!(value("ghost_sync_frames_received_total") >= 7.0);
    assert!(value("ghost_sync_bytes_received_total") >= 4.0 * 16.0);
    assert!(value("ghost_sync_frames_sent_total") >= 8.0);
    assert!(value("ghost_sync_bytes_sent_total") >= 8.0 * 16.0);
    assert_eq!(
        value("ghost_sync_disconnects_total{reason=\"kicked\"}"),
        1.0
    );
    assert_eq!(
        value("ghost_sync_disconnects_total{reason=\"client_closed\"}"),
        0.0
    );
    assert_eq!(
        value("ghost_sync_handshake_refusals_total{reason=\"server_full\"}"),
        0.0
    );
    assert_eq!(value("ghost_sync_frames_dropped_total"), 0.0);
    // The fan-out histogram: one sample per broadcast, two recipients each.
    assert_eq!(value("ghost_sync_fanout_recipients_count"), 4.0);
    assert_eq!(value("ghost_sync_fanout_recipients_sum"), 8.0);
    assert!(
        response.contains("# HELP ghost_sync_connections_total"),
        "{response}"
    );

    server.abort();
    relay.shutdown().await;
}
