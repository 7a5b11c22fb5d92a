//! Shutdown: every client is told, every member leaves, and `shutdown()` waits for them.

mod common;

use common::*;
use ghost_sync::{Client, Server, SyncError};

#[tokio::test]
async fn shutdown_tells_every_client_fires_on_leave_and_waits_for_the_connections() {
    let (recorder, mut hooks) = Recorder::new();
    let (handle, addr) = start(Server::builder().handler(recorder)).await;
    handle.create_room("lobby").unwrap();
    let members = join_all(addr, "lobby", 3).await;
    let outsider = Client::connect(addr).await.unwrap();
    let ids: Vec<_> = members.iter().map(|c| c.client_id()).collect();

    // The clients read concurrently, as real ones would; shutdown must still finish.
    let readers: Vec<_> = members
        .into_iter()
        .chain(std::iter::once(outsider))
        .map(|mut client| {
            // The farewell is the very next thing: no PlayerLeft noise from the others.
            tokio::spawn(async move { within("the farewell", client.recv()).await.unwrap_err() })
        })
        .collect();
    within("shutdown", handle.shutdown()).await;

    for reader in readers {
        let err = within("a reader", reader).await.unwrap();
        assert!(matches!(err, SyncError::ConnectionClosed), "{err:?}");
        assert!(err.is_connection_closed());
    }
    let mut left = Vec::new();
    while let Ok(hook) = hooks.try_recv() {
        if let Hook::Leave(id, room) = hook {
            assert_eq!(room, "lobby");
            left.push(id);
        }
    }
    left.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        left, expected,
        "on_leave once per member, before shutdown returned"
    );

    // Nothing listens any more.
    assert!(Client::connect(addr).await.is_err());
}
