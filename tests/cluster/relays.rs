//! Relays sharing one broker, and the waits the tests synchronise on.

use ghost_sync::cluster::RedisOptions;
use ghost_sync::{Client, Server, ServerEvent, ServerHandle, ServerHandler, SyncError, Uuid};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Long enough for a loaded 2-core machine; only reached when a test is failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Waits for `fut`, failing the test instead of hanging.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls `check` until it holds (mirrors converge one pub/sub hop later).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// One relay of a test's cluster.
pub struct Relay {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    pub prefix: String,
}

pub fn options(url: &str, prefix: &str, name: &str) -> RedisOptions {
    RedisOptions::new(url).key_prefix(prefix).relay_name(name)
}

/// Starts a relay on a free loopback port sharing `prefix` on the broker at `url`.
pub async fn relay(url: &str, prefix: &str, name: &str) -> Relay {
    relay_with(url, prefix, name, ghost_sync::NoopHandler).await
}

pub async fn relay_with(url: &str, prefix: &str, name: &str, handler: impl ServerHandler) -> Relay {
    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .redis(options(url, prefix, name))
        .handler(handler)
        .build()
        .run()
        .await
        .expect("the relay starts");
    let addr = handle.local_addr().expect("bound");
    Relay {
        handle,
        addr,
        prefix: prefix.to_owned(),
    }
}

/// `n` relays named `r0`, `r1`, …
pub async fn relays(url: &str, prefix: &str, n: usize) -> Vec<Relay> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(relay(url, prefix, &format!("r{i}")).await);
    }
    out
}

/// The next event; fails on an error, a closed connection or a timeout.
pub async fn next_event(client: &mut Client) -> ServerEvent {
    match within("an event", client.recv()).await {
        Ok(Some(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Joins `room` and consumes `Joined` and the member list; returns the members listed.
pub async fn join(client: &mut Client, room: &str) -> Vec<Uuid> {
    client.join(room).await.expect("join sent");
    match next_event(client).await {
        ServerEvent::Joined { room_id, .. } => assert_eq!(room_id, room),
        other => panic!("expected Joined, got {other:?}"),
    }
    match next_event(client).await {
        ServerEvent::Members { client_ids, .. } => client_ids,
        other => panic!("expected Members, got {other:?}"),
    }
}

/// Connects to `addr`.
pub async fn connect(addr: SocketAddr) -> Client {
    within("connect", Client::connect(addr))
        .await
        .expect("connected")
}

/// Creates `room` (on the first relay), and connects a client to `relays[i]` for each `i` of
/// `placement`, in order, each joined; returns once every relay counts them all. The earlier
/// clients have `PlayerJoined` events of the later ones waiting. (Used by the cluster cases
/// of `tests/direct.rs` too, which includes this file.)
#[allow(dead_code)]
pub async fn room_with(relays: &[Relay], room: &str, placement: &[usize]) -> Vec<Client> {
    relays[0].handle.create_room(room).unwrap();
    for relay in relays {
        eventually("the room is known", || relay.handle.room_exists(room)).await;
    }
    let mut clients = Vec::new();
    for &at in placement {
        let mut client = connect(relays[at].addr).await;
        join(&mut client, room).await;
        clients.push(client);
    }
    for relay in relays {
        eventually("every relay sees every member", || {
            relay.handle.room_client_count(room) == Some(placement.len())
        })
        .await;
    }
    clients
}

/// The error `recv` ends with, skipping events.
pub async fn next_error(client: &mut Client) -> SyncError {
    loop {
        match within("an error", client.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => return SyncError::ConnectionClosed,
            Err(err) => return err,
        }
    }
}

/// Sends `client` a marker from its own relay and reads up to it: every event before the
/// marker, so that a test sees exactly what arrived (a second copy of anything included).
pub async fn events_until_marker(client: &mut Client, handle: &ServerHandle) -> Vec<ServerEvent> {
    let marker = format!("marker-{}", client.client_id());
    handle
        .send_to(client.client_id(), marker.as_bytes())
        .unwrap();
    let mut seen = Vec::new();
    loop {
        match next_event(client).await {
            ServerEvent::Broadcast { sender_id, data }
                if sender_id == ghost_sync::SERVER_ID && data == marker.as_bytes() =>
            {
                return seen
            }
            other => seen.push(other),
        }
    }
}

/// Stops every relay.
pub async fn stop(relays: Vec<Relay>) {
    for relay in relays {
        within("shutdown", relay.handle.shutdown()).await;
    }
}
