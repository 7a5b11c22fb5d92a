//! The handle's control calls reach a client on any relay, and client hooks fire once, on
//! the relay that holds the client.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{DisconnectReason, ServerEvent, ServerHandler, SyncError, Uuid, SERVER_ID};
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn kick_send_to_and_client_info_work_from_any_relay() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("control"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    let mut player = connect(relays[0].addr).await;
    join(&mut player, "lobby").await;
    let id = player.client_id();
    let far = &relays[2].handle;
    eventually("r2 knows the player and its room", || {
        far.client_info(id).and_then(|info| info.room).as_deref() == Some("lobby")
    })
    .await;
    let info = far.client_info(id).unwrap();
    assert_eq!(info.addr, relays[0].handle.client_info(id).unwrap().addr);
    assert!(far.clients().iter().any(|c| c.id == id));

    far.send_to(id, b"from afar").unwrap();
    match next_event(&mut player).await {
        ServerEvent::Broadcast { sender_id, data } => {
            assert_eq!((sender_id, &data[..]), (SERVER_ID, &b"from afar"[..]));
        }
        other => panic!("expected the message, got {other:?}"),
    }
    far.kick(id, "see you").unwrap();
    assert!(matches!(
        next_error(&mut player).await,
        SyncError::Kicked(reason) if reason == "see you"
    ));
    for relay in &relays {
        eventually("the kicked client is gone everywhere", || {
            relay.handle.client_info(id).is_none()
        })
        .await;
    }
    assert!(matches!(
        far.kick(id, "again"),
        Err(SyncError::ClientNotFound(_))
    ));
    assert!(matches!(
        far.send_to(Uuid::new_v4(), b"?"),
        Err(SyncError::ClientNotFound(_))
    ));
    stop(relays).await;
}

/// A hook call: the relay it fired on, the hook, the client.
type Call = (&'static str, &'static str, Uuid);

/// Records the client hooks, with the relay they fired on.
#[derive(Clone, Default)]
struct Hooks {
    relay: &'static str,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl ServerHandler for Hooks {
    fn on_join(&self, client_id: Uuid, _room_id: &str, _addr: std::net::SocketAddr) -> bool {
        self.calls
            .lock()
            .unwrap()
            .push((self.relay, "join", client_id));
        true
    }
    fn on_leave(&self, client_id: Uuid, _room_id: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((self.relay, "leave", client_id));
    }
    fn on_disconnect(&self, client_id: Uuid, _reason: &DisconnectReason) {
        self.calls
            .lock()
            .unwrap()
            .push((self.relay, "disconnect", client_id));
    }
}

#[tokio::test]
async fn client_hooks_fire_once_on_the_relay_that_holds_the_client() {
    let broker = Broker::start();
    let prefix = prefix("hooks");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut relays = Vec::new();
    for name in ["r0", "r1", "r2"] {
        let hooks = Hooks {
            relay: name,
            calls: Arc::clone(&calls),
        };
        relays.push(relay_with(&broker.url(), &prefix, name, hooks).await);
    }
    relays[0].handle.create_room("lobby").unwrap();
    let mut ids = Vec::new();
    for relay in &relays {
        eventually("the room is known", || relay.handle.room_exists("lobby")).await;
        let mut client = connect(relay.addr).await;
        join(&mut client, "lobby").await;
        ids.push(client.client_id());
        drop(client);
        let id = *ids.last().unwrap();
        eventually("the disconnect hook fired", || {
            calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.1 == "disconnect" && c.2 == id)
        })
        .await;
    }
    stop(relays).await;
    let calls = calls.lock().unwrap().clone();
    for (relay, id) in ["r0", "r1", "r2"].into_iter().zip(ids) {
        let mine: Vec<_> = calls.iter().filter(|c| c.2 == id).collect();
        assert_eq!(
            mine,
            [
                &(relay, "join", id),
                &(relay, "leave", id),
                &(relay, "disconnect", id)
            ],
            "each hook once, on the client's own relay"
        );
    }
}
