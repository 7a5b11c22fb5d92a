//! A broker that cannot be reached at startup is a clear error from `run()`, not a hang.

use crate::relays::*;
use ghost_sync::{Server, SyncError};
use std::net::TcpListener;

#[tokio::test]
async fn run_fails_when_nothing_listens_at_the_broker_s_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let run = Server::builder()
        .bind("127.0.0.1:0")
        .redis(options(&url, "unreachable", "r0"))
        .build()
        .run();
    match within("run() fails instead of hanging", run).await {
        Err(SyncError::Broker(message)) => assert!(message.contains(&url), "{message}"),
        other => panic!("expected a broker error, got {other:?}"),
    }
}

#[tokio::test]
async fn run_fails_when_the_broker_accepts_but_never_answers() {
    // A socket that accepts connections and never reads them: the handshake hangs.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let run = Server::builder()
        .bind("127.0.0.1:0")
        .redis(options(&url, "silent", "r0"))
        .build()
        .run();
    assert!(matches!(
        within("run() gives up on a silent broker", run).await,
        Err(SyncError::Broker(_))
    ));
    drop(silent);
}
