//! Joins beyond a plain `on_join` yes or no: bytes sent with a join, refusals with a reason,
//! the member list a joiner receives, room capacity, and a client split into two halves.

mod common;

use common::*;
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
    let (handle, addr) = start(Server::builder().handler(Password)).await;
    handle.create_room("private").unwrap();
    let mut client = Client::connect(addr).await.unwrap();

    client.join("private").await.unwrap();
    assert_eq!(
        next_event(&mut client).await,
        ServerEvent::Error("join rejected: private: password required".into())
    );
    client.join_with("private", b"open up").await.unwrap();
    assert_eq!(
        next_event(&mut client).await,
        ServerEvent::Error("join rejected: private: wrong password".into())
    );
    client.join_with("private", b"sesame").await.unwrap();
    expect_joined(&mut client, "private").await;
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
    let (handle, addr) = start(Server::builder().handler(NoArena)).await;
    handle.create_room("arena").unwrap();
    let mut client = Client::connect(addr).await.unwrap();
    client.join_with("arena", b"ignored").await.unwrap();
    assert_eq!(
        next_event(&mut client).await,
        ServerEvent::Error("join rejected: arena".into())
    );
}

#[tokio::test]
async fn a_joiner_learns_who_is_already_in_the_room() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    let first = joined(addr, "arena").await;
    let mut second = Client::connect(addr).await.unwrap();
    second.join("arena").await.unwrap();
    assert_eq!(
        expect_joined(&mut second, "arena").await,
        vec![first.client_id()]
    );
    let mut third = Client::connect(addr).await.unwrap();
    third.join("arena").await.unwrap();
    let mut members = expect_joined(&mut third, "arena").await;
    members.sort();
    let mut expected = vec![first.client_id(), second.client_id()];
    expected.sort();
    assert_eq!(members, expected);
    // The first joiner of a room hears of nobody.
    handle.create_room("empty").unwrap();
    let mut alone = Client::connect(addr).await.unwrap();
    alone.join("empty").await.unwrap();
    assert!(expect_joined(&mut alone, "empty").await.is_empty());
}

#[tokio::test]
async fn room_capacity_holds_under_a_rush_of_joins() {
    let (handle, addr) = start(Server::builder()).await;
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
        clients.push(Client::connect(addr).await.unwrap());
    }
    let start = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                client.join("duel").await.unwrap();
                loop {
                    match next_event(&mut client).await {
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
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    let mut peer = joined(addr, "arena").await;
    let (mut tx, mut rx) = Client::connect(addr).await.unwrap().split();
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
    assert_eq!(
        next_event(&mut peer).await,
        ServerEvent::PlayerJoined { client_id: my_id }
    );
    for n in 0..3u8 {
        tx.broadcast(&[n]).await.unwrap();
        match next_event(&mut peer).await {
            ServerEvent::Broadcast { sender_id, data } => {
                assert_eq!((sender_id, &data[..]), (my_id, &[n][..]))
            }
            other => panic!("unexpected {other:?}"),
        }
        peer.broadcast(&[10 + n]).await.unwrap();
    }
    assert_eq!(receiver.await.unwrap(), vec![10, 11, 12]);
}

#[tokio::test]
async fn the_receiving_half_answers_pings_while_the_sender_is_idle() {
    let (handle, addr) =
        start(Server::builder().ping_interval(std::time::Duration::from_millis(20))).await;
    let (tx, mut rx) = Client::connect(addr).await.unwrap().split();
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
    let (handle, addr) = start(
        Server::builder()
            .max_payload(1)
            .max_clients(FILLERS + 10)
            // The fillers neither read nor answer pings: keep them in for the whole test.
            .ping_interval(long)
            .idle_timeout(long)
            .write_timeout(long),
    )
    .await;
    handle.create_room("r").unwrap();
    let mut fillers = Vec::with_capacity(FILLERS);
    // Tiny receive windows: once a filler's socket is full its writer stops, and the
    // `PlayerJoined` of later fillers are dropped for it at the cost of a queue check,
    // instead of a wake-up and a write each.
    for _ in 0..FILLERS {
        fillers.push(RawClient::tiny_window_joined(addr, "r").await);
    }

    let mut joiner = Client::connect(addr).await.unwrap();
    joiner.join("r").await.unwrap();
    let mut listed = within("the member list", expect_joined(&mut joiner, "r")).await;
    let mut members = handle.room_members("r").unwrap();
    members.retain(|&id| id != joiner.client_id());
    listed.sort();
    members.sort();
    assert_eq!(listed.len(), FILLERS);
    assert_eq!(listed, members);

    fillers[0]
        .send(&ghost_sync::protocol::ClientFrame::Broadcast { data: b"!" })
        .await;
    match next_event(&mut joiner).await {
        ServerEvent::Broadcast { data, .. } => assert_eq!(&data[..], b"!"),
        other => panic!("expected the broadcast, got {other:?}"),
    }
}

/// Joining the room one is already in answers as a first join does, `Joined` then the
/// member list, so that a client waiting for the list never waits in vain; nobody else is
/// told anything.
#[tokio::test]
async fn joining_the_same_room_again_answers_joined_and_the_member_list() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("r").unwrap();
    let mut first = joined(addr, "r").await;
    let mut second = joined(addr, "r").await;
    assert_eq!(
        next_event(&mut first).await,
        ServerEvent::PlayerJoined {
            client_id: second.client_id()
        }
    );

    second.join("r").await.unwrap();
    assert_eq!(
        expect_joined(&mut second, "r").await,
        vec![first.client_id()]
    );
    // `first` hears nothing of it: the next thing it gets is this broadcast.
    second.broadcast(b"after").await.unwrap();
    match next_event(&mut first).await {
        ServerEvent::Broadcast { sender_id, data } => {
            assert_eq!(sender_id, second.client_id());
            assert_eq!(&data[..], b"after");
        }
        other => panic!("expected the broadcast, got {other:?}"),
    }
}
