//! An HTTP admin endpoint beside the relay, in one process: axum serves the relay's stats, its
//! rooms and its clients as JSON, and kicks a client on request. Both are tower services on
//! one tokio runtime; the admin side only needs a `ServerHandle`.
//!
//! ```text
//! GET  /stats                          counters (connections, frames, bytes, disconnects)
//! GET  /rooms                          every room with its members and capacity
//! GET  /clients                        every client: address, identity, room, queue depth
//! POST /kick/{client_id}?reason=...    disconnects a client, telling it the reason
//! GET  /metrics                        Prometheus text (built with `--features metrics`)
//! ```
//!
//! With `--features metrics`, the relay's metrics (see `ghost_sync::telemetry`) go to a
//! `metrics-exporter-prometheus` recorder installed before the relay is built, and `/metrics`
//! renders them: the admin router serves them, so the exporter needs no HTTP listener of its
//! own.
//!
//! Self-contained by default: it starts the relay and the admin endpoint on free ports,
//! connects a player, calls each route over HTTP, prints the answers and stops. To keep it
//! running and try it with curl:
//!
//! ```text
//! cargo run --example axum_admin -- --serve
//! curl -s localhost:8080/stats
//! cargo run --example axum_admin --features metrics -- --serve
//! curl -s localhost:8080/metrics
//! ```

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ghost_sync::{Client, ServerHandle, SyncError, Uuid};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::UNIX_EPOCH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The admin routes, over a handle to the relay.
pub fn router(relay: ServerHandle) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/rooms", get(rooms))
        .route("/clients", get(clients))
        .route("/kick/{client_id}", post(kick))
        .with_state(relay)
}

/// Installs the Prometheus recorder as the process's global recorder, to be done before the
/// relay is built (the relay registers its series then). The handle renders them.
#[cfg(feature = "metrics")]
pub fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    Ok(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
}

/// `router` with `GET /metrics`: the Prometheus text of `metrics`. It reads the relay's
/// stats first, which brings the broker's counters (with a broker) up to date.
#[cfg(feature = "metrics")]
pub fn with_metrics(
    router: Router,
    relay: ServerHandle,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    router.route(
        "/metrics",
        get(move || async move {
            let _ = relay.stats();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                metrics.render(),
            )
        }),
    )
}

async fn stats(State(relay): State<ServerHandle>) -> Json<Value> {
    let stats = relay.stats();
    let disconnects: serde_json::Map<String, Value> = stats
        .disconnects
        .iter()
        .map(|(kind, n)| (kind.as_str().to_owned(), json!(n)))
        .collect();
    Json(json!({
        "connections": stats.connections,
        "connections_total": stats.connections_total,
        "rooms": stats.rooms,
        "frames_in": stats.frames_in,
        "bytes_in": stats.bytes_in,
        "frames_out": stats.frames_out,
        "bytes_out": stats.bytes_out,
        "frames_dropped": stats.frames_dropped,
        "disconnects": disconnects,
    }))
}

async fn rooms(State(relay): State<ServerHandle>) -> Json<Value> {
    let mut ids = relay.room_ids();
    ids.sort();
    let rooms: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "members": relay
                    .room_members(id)
                    .unwrap_or_default()
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>(),
                "capacity": relay.room_capacity(id).flatten(),
            })
        })
        .collect();
    Json(json!(rooms))
}

async fn clients(State(relay): State<ServerHandle>) -> Json<Value> {
    let clients: Vec<Value> = relay
        .clients()
        .iter()
        .map(|client| {
            json!({
                "id": client.id.to_string(),
                "addr": client.addr.to_string(),
                "identity": client.identity.as_ref().map(|i| i.user_id().to_owned()),
                "room": client.room,
                "connected_since": client
                    .connected_since
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                "queue_depth": client.queue_depth,
            })
        })
        .collect();
    Json(json!(clients))
}

async fn kick(
    State(relay): State<ServerHandle>,
    Path(client_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let Ok(client_id) = client_id.parse::<Uuid>() else {
        let error = format!("not a client id: {client_id}");
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error })));
    };
    let reason = query
        .get("reason")
        .map_or("kicked by an admin", String::as_str);
    match relay.kick(client_id, reason) {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "kicked": client_id.to_string() })),
        ),
        Err(SyncError::ClientNotFound(_)) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("client not found: {client_id}") })),
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": err.to_string() })),
        ),
    }
}

/// A bare HTTP/1.1 request, enough for the demo (no HTTP client dependency).
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(format!("{status}\n  {body}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let serve = std::env::args().any(|arg| arg == "--serve");
    let (relay_bind, admin_bind) = if serve {
        ("0.0.0.0:7777", "127.0.0.1:8080")
    } else {
        ("127.0.0.1:0", "127.0.0.1:0")
    };
    // Before the relay is built: it registers its metrics with the recorder installed then.
    #[cfg(feature = "metrics")]
    let metrics = install_metrics()?;
    let relay = ghost_sync::Server::builder()
        .bind(relay_bind)
        .build()
        .run()
        .await?;
    relay.create_room("lobby")?;
    let admin = TcpListener::bind(admin_bind).await?;
    let admin_addr = admin.local_addr()?;
    let app = router(relay.clone());
    #[cfg(feature = "metrics")]
    let app = {
        // Without the exporter's own listener, nobody else drains its histograms: every 5 s
        // (its default), so that they do not grow between scrapes.
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        with_metrics(app, relay.clone(), metrics)
    };
    let server = tokio::spawn(async move { axum::serve(admin, app).await });
    println!(
        "relay on {}, admin on http://{admin_addr}",
        relay.local_addr().expect("the relay is running")
    );
    if serve {
        server.await??;
        return Ok(());
    }

    let mut player = Client::connect(relay.local_addr().expect("running")).await?;
    player.join("lobby").await?;
    player.recv().await?; // Joined
    player.recv().await?; // the member list
    let mut paths = vec!["/stats", "/rooms", "/clients"];
    if cfg!(feature = "metrics") {
        paths.push("/metrics");
    }
    for path in paths {
        println!("GET {path} -> {}", http(admin_addr, "GET", path).await?);
    }
    let kick = format!("/kick/{}?reason=afk", player.client_id());
    println!("POST {kick} -> {}", http(admin_addr, "POST", &kick).await?);
    match player.recv().await {
        Err(err) => println!("the player's recv() says: {err}"),
        Ok(event) => println!("the player got {event:?}"),
    }
    server.abort();
    relay.shutdown().await;
    Ok(())
}
