//! Joins beyond a plain `on_join` yes or no: bytes sent with a join, refusals with a reason,
//! the member list a joiner receives, room capacity, and a client split into two halves.

mod common;

use common::*;
use ghost_sync::testing::TestRelay;
use ghost_sync::{Client, JoinRequest, RoomOptions, Server, ServerEvent, ServerHandler, Uuid};
use std::sync::Arc;

/// "private" needs the password "sesame", sent with the join.
struct Password;

impl ServerHandler for Password {
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        match (join.room_id, join.data) {
            ("private", b"sesame") => Ok(()),
            ("private", b"") => Err("password required".into()),
            ("private", _) => Err("wrong password".into()),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn join_data_reaches_the_hook_and_its_reason_reaches_the_client() {
    let relay = TestRelay::start(Server::builder().handler(Password)).await;
    relay.create_room("private");
    let mut client = relay.client().await;

    client.join("private").await;
    client
        .expect_event(ServerEvent::Error(
            "join rejected: private: password required".into(),
        ))
        .await;
    client.join_with("private", b"open up").await;
    client
        .expect_event(ServerEvent::Error(
            "join rejected: private: wrong password".into(),
        ))
        .await;
    client.join_with("private", b"sesame").await;
    client.expect_joined("private").await;
}

/// A handler that implements only the plain `on_join` still works (the default
/// `on_join_request` calls it), and its refusal reads "join rejected: ROOM", with no reason.
struct NoArena;

impl ServerHandler for NoArena {
    fn on_join(&self, _id: Uuid, room_id: &str, _addr: std::net::SocketAddr) -> bool {
        room_id != "arena"
    }
}

#[tokio::test]
async fn a_plain_on_join_keeps_working() {
    let relay = TestRelay::start(Server::builder().handler(NoArena)).await;
    relay.create_room("arena");
    let mut client = relay.client().await;
    client.join_with("arena", b"ignored").await;
    client
        .expect_event(ServerEvent::Error("join rejected: arena".into()))
        .await;
}

#[tokio::test]
async fn a_joiner_learns_who_is_already_in_the_room() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let first = relay.joined("arena").await;
    let mut second = relay.client().await;
    second.join("arena").await;
    assert_eq!(second.expect_joined("arena").await, vec![first.client_id()]);
    let mut third = relay.client().await;
    third.join("arena").await;
    let mut members = third.expect_joined("arena").await;
    members.sort();
    let mut expected = vec![first.client_id(), second.client_id()];
    expected.sort();
    assert_eq!(members, expected);
    // The first joiner of a room hears of nobody.
    relay.create_room("empty");
    let mut alone = relay.client().await;
    alone.join("empty").await;
    assert!(alone.expect_joined("empty").await.is_empty());
}

#[tokio::test]
async fn room_capacity_holds_under_a_rush_of_joins() {
    let relay = TestRelay::start(Server::builder()).await;
    let handle = relay.handle();
    handle
        .create_room_with(
            "duel",
            RoomOptions {
                max_clients: Some(2),
            },
        )
        .unwrap();
    assert_eq!(handle.room_capacity("duel"), Some(Some(2)));
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(relay.client().await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                client.join("duel").await;
                loop {
                    match client.next_event().await {
                        ServerEvent::Joined { .. } => return (true, client),
                        ServerEvent::Error(reason) => {
                            assert_eq!(reason, "room full: duel");
                            return (false, client);
                        }
                        _ => continue,
                    }
                }
            })
        })
        .collect();
    let mut admitted = 0;
    let mut keep = Vec::new();
    for task in tasks {
        let (joined, client) = task.await.unwrap();
        admitted += usize::from(joined);
        keep.push(client);
    }
    assert_eq!(admitted, 2);
    assert_eq!(handle.room_client_count("duel"), Some(2));
}

#[tokio::test]
async fn a_split_client_sends_from_one_task_and_receives_in_another() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("arena");
    let mut peer = relay.joined("arena").await;
    // The split halves are what is under test: a real `Client`.
    let (mut tx, mut rx) = Client::connect(relay.addr()).await.unwrap().split();
    let my_id = tx.client_id();
    assert_eq!(rx.client_id(), my_id);

    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 3 {
            match within("an event", rx.recv()).await {
                Ok(Some(ServerEvent::Broadcast { data, .. })) => got.push(data[0]),
                Ok(Some(_)) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    });
    tx.join("arena").await.unwrap();
    peer.expect_member_joined(my_id).await;
    for n in 0..3u8 {
        tx.broadcast(&[n]).await.unwrap();
        peer.expect_broadcast(my_id, [n]).await;
        peer.broadcast([10 + n]).await;
    }
    assert_eq!(receiver.await.unwrap(), vec![10, 11, 12]);
}

#[tokio::test]
async fn the_receiving_half_answers_pings_while_the_sender_is_idle() {
    let relay =
        TestRelay::start(Server::builder().ping_interval(std::time::Duration::from_millis(20)))
            .await;
    let handle = relay.handle();
    let (tx, mut rx) = Client::connect(relay.addr()).await.unwrap().split();
    let reader = tokio::spawn(async move { rx.recv().await });
    // Nothing but pongs reaches the relay after the handshake: wait for five of them.
    within("five pongs", async {
        while handle.stats().frames_in < 5 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        handle.client_info(tx.client_id()).is_some(),
        "still connected"
    );
    reader.abort();
}

/// A room of thousands and a relay whose `max_payload` is one byte: the member list comes in
/// as many frames as it takes, each within the limit the client reads with, and the joiner
/// gets every member and goes on receiving the room's traffic.
#[tokio::test]
async fn a_joiner_gets_the_whole_member_list_of_a_big_room_under_a_tiny_max_payload() {
    const FILLERS: usize = 2_048;
    let long = std::time::Duration::from_secs(600);
    let relay = TestRelay::start(
        Server::builder()
            .max_payload(1)
            .max_clients(FILLERS + 10)
            // The fillers neither read nor answer pings: keep them in for the whole test.
            .ping_interval(long)
            .idle_timeout(long)
            .write_timeout(long),
    )
    .await;
    relay.create_room("r");
    let mut fillers = Vec::with_capacity(FILLERS);
    // Tiny receive windows: once a filler's socket is full its writer stops, and the
    // `PlayerJoined` of later fillers are dropped for it at the cost of a queue check,
    // instead of a wake-up and a write each.
    for _ in 0..FILLERS {
        let mut filler = relay.client_builder().receive_buffer(4096).connect().await;
        filler.join("r").await;
        filler
            .expect_event(ServerEvent::Joined {
                client_id: filler.client_id(),
                room_id: "r".into(),
            })
            .await;
        fillers.push(filler.stop_reading());
    }

    let mut joiner = relay.client_builder().timeout(PATIENCE).connect().await;
    joiner.join("r").await;
    let mut listed = joiner.expect_joined("r").await;
    let mut members = relay.handle().room_members("r").unwrap();
    members.retain(|&id| id != joiner.client_id());
    listed.sort();
    members.sort();
    assert_eq!(listed.len(), FILLERS);
    assert_eq!(listed, members);

    fillers[0]
        .send_frame(&ghost_sync::protocol::ClientFrame::Broadcast { data: b"!" })
        .await;
    let filler = fillers[0].client_id();
    assert_eq!(&joiner.expect_broadcast_from(filler).await[..], b"!");
}

/// Joining the room one is already in answers as a first join does, `Joined` then the
/// member list, so that a client waiting for the list never waits in vain; nobody else is
/// told anything.
#[tokio::test]
async fn joining_the_same_room_again_answers_joined_and_the_member_list() {
    let relay = TestRelay::start(Server::builder()).await;
    relay.create_room("r");
    let mut first = relay.joined("r").await;
    let mut second = relay.joined("r").await;
    first.expect_member_joined(second.client_id()).await;

    second.join("r").await;
    assert_eq!(second.expect_joined("r").await, vec![first.client_id()]);
    // `first` hears nothing of it: the next thing it gets is this broadcast.
    second.broadcast(b"after").await;
    first.expect_broadcast(second.client_id(), b"after").await;
}
