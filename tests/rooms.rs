//! Room membership end to end: joining, leaving, switching rooms, refusals, soft delete.

mod common;

use common::*;
use ghost_sync::testing::TestRelay;
use ghost_sync::{Server, ServerEvent, ServerHandler, SyncError, Uuid};
use std::net::SocketAddr;

#[tokio::test]
async fn joining_a_missing_room_says_room_not_found() {
    let relay = TestRelay::start(Server::builder()).await;
    let mut client = relay.client().await;
    client.join("lobby").await;
    client
        .expect_event(ServerEvent::Error("room not found: lobby".into()))
        .await;
}

struct Refuse;

impl ServerHandler for Refuse {
    fn on_join(&self, _: Uuid, _: &str, _: SocketAddr) -> bool {
        false
    }
}

#[tokio::test]
async fn a_join_refused_by_on_join_says_join_rejected() {
    let relay = TestRelay::start(Server::builder().handler(Refuse)).await;
    relay.create_room("lobby");
    let mut client = relay.client().await;
    client.join("lobby").await;
    client
        .expect_event(ServerEvent::Error("join rejected: lobby".into()))
        .await;
    assert_eq!(relay.handle().room_client_count("lobby"), Some(0));
}

#[tokio::test]
async fn the_joiner_gets_joined_and_the_others_get_player_joined() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("lobby");
    let mut first = relay.joined("lobby").await;
    let second = relay.joined("lobby").await;
    first.expect_member_joined(second.client_id()).await;
    wait_hook(&mut hooks, |h| {
        *h == Hook::Join(second.client_id(), "lobby".into())
    })
    .await;
    let mut members = relay.handle().room_members("lobby").unwrap();
    members.sort();
    let mut expected = vec![first.client_id(), second.client_id()];
    expected.sort();
    assert_eq!(members, expected);
}

#[tokio::test]
async fn joining_another_room_leaves_the_first() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("a");
    relay.create_room("b");
    let mut clients = relay.join_all("a", 2).await;
    let mut mover = clients.pop().unwrap();
    let mut stayer = clients.pop().unwrap();

    mover.join("b").await;
    mover
        .expect_event(ServerEvent::Joined {
            client_id: mover.client_id(),
            room_id: "b".into(),
        })
        .await;
    stayer.expect_member_left(mover.client_id()).await;
    wait_hook(&mut hooks, |h| {
        *h == Hook::Leave(mover.client_id(), "a".into())
    })
    .await;
    assert_eq!(relay.handle().room_client_count("a"), Some(1));
    assert_eq!(relay.handle().room_client_count("b"), Some(1));
}

#[tokio::test]
async fn leaving_confirms_tells_the_rest_and_fires_on_leave_once() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("lobby");
    let mut clients = relay.join_all("lobby", 2).await;
    let mut leaver = clients.pop().unwrap();
    let mut stayer = clients.pop().unwrap();
    leaver.leave().await;
    leaver.expect_left("lobby").await;
    stayer.expect_member_left(leaver.client_id()).await;
    // Leaving again is refused, and disconnecting afterwards fires no second on_leave.
    leaver.leave().await;
    leaver
        .expect_event(ServerEvent::Error("not in a room".into()))
        .await;
    let leaver_id = leaver.client_id();
    drop(leaver);
    drop(stayer);
    // Once shutdown returns every connection task has ended: all hooks are in.
    within("shutdown", relay.shutdown()).await;
    let leaves = std::iter::from_fn(|| hooks.try_recv().ok())
        .filter(|h| *h == Hook::Leave(leaver_id, "lobby".into()))
        .count();
    assert_eq!(leaves, 1, "on_leave once for one join");
}

#[tokio::test]
async fn disconnecting_tells_the_rest_and_fires_on_leave_exactly_once() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    relay.create_room("lobby");
    let mut clients = relay.join_all("lobby", 2).await;
    let gone = clients.pop().unwrap();
    let mut stayer = clients.pop().unwrap();
    let gone_id = gone.client_id();
    drop(gone);
    stayer.expect_member_left(gone_id).await;
    wait_hook(&mut hooks, |h| *h == Hook::Leave(gone_id, "lobby".into())).await;
    assert_eq!(relay.handle().room_client_count("lobby"), Some(1));
    drop(stayer);
    // Once shutdown returns every connection task has ended: all hooks are in.
    within("shutdown", relay.shutdown()).await;
    let again = std::iter::from_fn(|| hooks.try_recv().ok())
        .filter(|h| *h == Hook::Leave(gone_id, "lobby".into()))
        .count();
    assert_eq!(again, 0, "on_leave fired twice");
}

#[tokio::test]
async fn rooms_come_from_the_handle_only_and_empty_rooms_stay() {
    let (recorder, mut hooks) = Recorder::new();
    let relay = TestRelay::start(Server::builder().handler(recorder)).await;
    let handle = relay.handle();
    assert_eq!(handle.room_count(), 0);
    handle.create_room("lobby").unwrap();
    assert_eq!(
        wait_hook(&mut hooks, |h| matches!(h, Hook::RoomCreate(_))).await,
        Hook::RoomCreate("lobby".into())
    );
    assert!(matches!(
        handle.create_room("lobby"),
        Err(SyncError::RoomAlreadyExists(id)) if id == "lobby"
    ));
    let client = relay.joined("lobby").await;
    drop(client);
    wait_hook(&mut hooks, |h| matches!(h, Hook::Leave(..))).await;
    assert!(handle.room_exists("lobby"), "an empty room is not deleted");
    assert_eq!(handle.room_ids(), vec!["lobby".to_string()]);
    assert_eq!(handle.room_client_count("lobby"), Some(0));
    assert!(handle.delete_room("lobby"));
    assert_eq!(
        wait_hook(&mut hooks, |h| matches!(h, Hook::RoomDelete(_))).await,
        Hook::RoomDelete("lobby".into())
    );
    assert!(!handle.delete_room("lobby"));
    assert!(!handle.room_exists("lobby"));
    assert_eq!(handle.room_client_count("lobby"), None);
    assert_eq!(handle.room_members("lobby"), None);
}

#[tokio::test]
async fn a_soft_deleted_room_keeps_its_members_connected_but_refuses_their_broadcasts() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut clients = relay.join_all("arena", 2).await;
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    assert!(relay.handle().delete_room("arena"));

    a.broadcast(b"anyone?").await;
    a.expect_event(ServerEvent::Error("room deleted: arena".into()))
        .await;
    // Still connected: a ping round trip works, and b received nothing.
    a.join("arena").await;
    a.expect_event(ServerEvent::Error("room not found: arena".into()))
        .await;

    // A new room with the same name starts empty and does not inherit the old members.
    relay.create_room("arena");
    assert_eq!(relay.handle().room_client_count("arena"), Some(0));
    let mut c = relay.joined("arena").await;
    c.broadcast(b"fresh").await;
    b.broadcast(b"stale").await;
    b.expect_event(ServerEvent::Error("room deleted: arena".into()))
        .await;
    // a joins the new room: it gets c's next message, and never b's stale one.
    a.join("arena").await;
    assert_eq!(a.expect_joined("arena").await, vec![c.client_id()]);
    c.expect_member_joined(a.client_id()).await;
    c.broadcast(b"welcome").await;
    a.expect_broadcast(c.client_id(), b"welcome").await;
}

#[tokio::test]
async fn room_metadata_is_set_and_read_through_the_handle() {
    let relay = TestRelay::start(Server::builder()).await;
    let handle = relay.handle();
    assert!(matches!(
        handle.set_room_meta("lobby", "map", "dust"),
        Err(SyncError::RoomNotFound(id)) if id == "lobby"
    ));
    handle.create_room("lobby").unwrap();
    handle.set_room_meta("lobby", "map", "dust").unwrap();
    handle
        .set_room_meta("lobby", "mode", String::from("ctf"))
        .unwrap();
    assert_eq!(
        handle.get_room_meta("lobby", "map").as_deref(),
        Some("dust")
    );
    assert_eq!(
        handle.get_room_meta("lobby", "mode").as_deref(),
        Some("ctf")
    );
    assert_eq!(handle.get_room_meta("lobby", "missing"), None);
    assert_eq!(handle.get_room_meta("nowhere", "map"), None);
}

/// A handler that calls back into the handle from every hook.
struct Reentrant {
    handle: ghost_sync::ServerHandle,
}

impl Reentrant {
    fn poke(&self, room_id: &str) {
        let _ = self.handle.room_client_count(room_id);
        let _ = self.handle.room_members(room_id);
        let _ = self.handle.room_ids();
        let _ = self.handle.set_room_meta(room_id, "touched", "yes");
        let _ = self.handle.get_room_meta(room_id, "touched");
        let _ = self.handle.room_exists(room_id);
    }
}

impl ServerHandler for Reentrant {
    fn on_connect(&self, _addr: SocketAddr) -> bool {
        self.poke("lobby");
        true
    }
    fn on_join(&self, _: Uuid, room_id: &str, _: SocketAddr) -> bool {
        self.poke(room_id);
        let _ = self.handle.create_room("side");
        true
    }
    fn on_leave(&self, _: Uuid, room_id: &str) {
        self.poke(room_id);
    }
    fn on_broadcast(&self, _: Uuid, room_id: &str, _: &[u8]) {
        self.poke(room_id);
        self.handle.delete_room("side");
    }
    fn on_room_create(&self, room_id: &str) {
        self.poke(room_id);
    }
    fn on_room_delete(&self, room_id: &str) {
        self.poke(room_id);
    }
}

#[tokio::test]
async fn every_handle_method_can_be_called_from_inside_every_hook() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(|handle| Reentrant { handle })
        .build();
    server.handle().create_room("lobby").unwrap();
    let relay = TestRelay::run(server).await;
    let mut clients = relay.join_all("lobby", 2).await;
    clients[0].broadcast(b"x").await;
    let sender = clients[0].client_id();
    clients[1].expect_broadcast_from(sender).await;
    assert!(
        !relay.handle().room_exists("side"),
        "on_broadcast deleted it"
    );
    drop(clients);
    within("shutdown", relay.shutdown()).await;
}

/// Deletes and re-creates the room from inside `on_join`: the join must not slip into the
/// new room, whose own `on_join` check never ran.
struct Recreate {
    handle: ghost_sync::ServerHandle,
}

impl ServerHandler for Recreate {
    fn on_join(&self, _: Uuid, room_id: &str, _: SocketAddr) -> bool {
        self.handle.delete_room(room_id);
        self.handle.create_room(room_id).unwrap();
        true
    }
}

#[tokio::test]
async fn a_join_admitted_into_a_room_never_lands_in_its_replacement() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(|handle| Recreate { handle })
        .build();
    let handle = server.handle();
    handle.create_room("arena").unwrap();
    let relay = TestRelay::run(server).await;
    let mut client = relay.client().await;
    client.join("arena").await;
    client
        .expect_event(ServerEvent::Error("room not found: arena".into()))
        .await;
    assert_eq!(relay.handle().room_client_count("arena"), Some(0));
}

/// Deletes the room a client asks to join while the join is being admitted, as a concurrent
/// `delete_room` could.
struct DeleteDuringJoin {
    handle: ghost_sync::ServerHandle,
}

impl ServerHandler for DeleteDuringJoin {
    fn on_join(&self, _: Uuid, room_id: &str, _: SocketAddr) -> bool {
        if room_id == "b" {
            self.handle.delete_room(room_id);
        }
        true
    }
}

#[tokio::test]
async fn a_refused_join_leaves_the_client_in_its_room() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .handler_with(|handle| DeleteDuringJoin { handle })
        .build();
    let handle = server.handle();
    handle.create_room("a").unwrap();
    handle.create_room("b").unwrap();
    let relay = TestRelay::run(server).await;
    let mut clients = relay.join_all("a", 2).await;
    clients[0].join("b").await;
    clients[0]
        .expect_event(ServerEvent::Error("room not found: b".into()))
        .await;
    assert_eq!(relay.handle().room_client_count("a"), Some(2));
    // Still in "a": a broadcast reaches the other member, with no PlayerLeft before it.
    clients[0].broadcast(b"still here").await;
    let sender = clients[0].client_id();
    clients[1].expect_broadcast_from(sender).await;
}
