//! `examples/axum_admin.rs`: its axum router, driven as the tower service it is, against a
//! running relay: stats and rooms as JSON, and a kick on request.

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_admin.rs"]
mod axum_admin;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use ghost_sync::{Server, SyncError};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_admin_router_serves_stats_rooms_and_clients_and_kicks_on_request() {
    let (relay, addr) = start(Server::builder()).await;
    relay.create_room("lobby").unwrap();
    let mut player = joined(addr, "lobby").await;
    let app = axum_admin::router(relay.clone());

    let (status, stats) = call(&app, "GET", "/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["disconnects"]["kicked"], 0);

    let (_, rooms) = call(&app, "GET", "/rooms").await;
    assert_eq!(rooms[0]["id"], "lobby");
    assert_eq!(rooms[0]["members"][0], player.client_id().to_string());

    let (_, clients) = call(&app, "GET", "/clients").await;
    assert_eq!(clients[0]["room"], "lobby");

    let kick = format!("/kick/{}?reason=afk", player.client_id());
    let (status, _) = call(&app, "POST", &kick).await;
    assert_eq!(status, StatusCode::OK);
    match next_error(&mut player).await {
        SyncError::Kicked(reason) => assert_eq!(reason, "afk"),
        other => panic!("expected a kick, got {other:?}"),
    }
    let (status, _) = call(&app, "POST", &kick).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "POST", "/kick/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
