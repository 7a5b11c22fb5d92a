//! The control surface on `ServerHandle`: kick, server-originated messages, the client list,
//! stats, and the `on_disconnect` hook that every ending connection fires exactly once.

mod common;

use common::*;
use ghost_sync::{
    DisconnectKind, DisconnectReason, Server, ServerEvent, SyncError, Uuid, SERVER_ID,
};

#[tokio::test]
async fn a_kicked_client_reads_the_reason_and_its_hooks_fire_once() {
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(Server::builder().handler_with(make)).await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut stayer = clients.pop().unwrap();
    let mut cheater = clients.pop().unwrap();
    let cheater_id = cheater.client_id();

    handle.kick(cheater_id, "speed hack detected").unwrap();

    match next_error(&mut cheater).await {
        SyncError::Kicked(reason) => assert_eq!(reason, "speed hack detected"),
        other => panic!("expected Kicked, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut stayer).await,
        ServerEvent::PlayerLeft {
            client_id: cheater_id
        }
    );
    let leave = Hook::Leave(cheater_id, "arena".into());
    let gone = Hook::Disconnect(
        cheater_id,
        DisconnectReason::Kicked("speed hack detected".into()),
    );
    // on_leave, then on_disconnect; each exactly once (checked after a second kick and a
    // later disconnect of someone else, which proves the hooks had every chance to repeat).
    wait_hook(&mut hooks, |h| *h == leave).await;
    wait_hook(&mut hooks, |h| *h == gone).await;
    assert!(matches!(
        handle.kick(cheater_id, "again"),
        Err(SyncError::ClientNotFound(id)) if id == cheater_id
    ));
    let stayer_id = stayer.client_id();
    drop(stayer);
    let mut later = Vec::new();
    loop {
        let hook = wait_hook(&mut hooks, |_| true).await;
        let done = hook == Hook::Disconnect(stayer_id, DisconnectReason::ClientClosed);
        later.push(hook);
        if done {
            break;
        }
    }
    assert!(
        !later.contains(&leave) && !later.contains(&gone),
        "{later:?}"
    );
    assert!(handle.client_info(cheater_id).is_none());
}

#[tokio::test]
async fn kicking_an_unknown_client_says_so() {
    let (handle, _addr) = start(Server::builder()).await;
    let nobody = Uuid::from_u128(42);
    assert!(matches!(
        handle.kick(nobody, "x"),
        Err(SyncError::ClientNotFound(id)) if id == nobody
    ));
    assert!(matches!(
        handle.send_to(nobody, b"x"),
        Err(SyncError::ClientNotFound(_))
    ));
}

#[tokio::test]
async fn send_to_reaches_one_client_marked_as_the_server() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    let mut clients = join_all(addr, "arena", 2).await;
    let mut other = clients.pop().unwrap();
    let mut target = clients.pop().unwrap();

    handle.send_to(target.client_id(), b"your turn").unwrap();
    assert_eq!(
        next_event(&mut target).await,
        ServerEvent::Broadcast {
            sender_id: SERVER_ID,
            data: bytes::Bytes::from_static(b"your turn"),
        }
    );
    assert_eq!(SERVER_ID, Uuid::nil());
    // The other member got nothing: its next event is the target's own broadcast.
    target.broadcast(b"moved").await.unwrap();
    assert_eq!(
        next_event(&mut other).await,
        ServerEvent::Broadcast {
            sender_id: target.client_id(),
            data: bytes::Bytes::from_static(b"moved"),
        }
    );
}

#[tokio::test]
async fn a_client_outside_any_room_can_be_sent_to() {
    let (handle, addr) = start(Server::builder()).await;
    let mut lonely = ghost_sync::Client::connect(addr).await.unwrap();
    handle.send_to(lonely.client_id(), b"welcome").unwrap();
    assert!(matches!(
        next_event(&mut lonely).await,
        ServerEvent::Broadcast { sender_id, data } if sender_id == SERVER_ID && &data[..] == b"welcome"
    ));
}

#[tokio::test]
async fn broadcast_to_room_reaches_every_member() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    handle.create_room("elsewhere").unwrap();
    let mut members = join_all(addr, "arena", 3).await;
    let mut outsider = joined(addr, "elsewhere").await;

    assert_eq!(handle.broadcast_to_room("arena", b"round 2").unwrap(), 3);
    for member in members.iter_mut() {
        assert_eq!(
            next_event(member).await,
            ServerEvent::Broadcast {
                sender_id: SERVER_ID,
                data: bytes::Bytes::from_static(b"round 2"),
            }
        );
    }
    // The outsider's next event is its own room's message, not arena's.
    handle.broadcast_to_room("elsewhere", b"here").unwrap();
    assert!(matches!(
        next_event(&mut outsider).await,
        ServerEvent::Broadcast { data, .. } if &data[..] == b"here"
    ));
    assert!(matches!(
        handle.broadcast_to_room("nowhere", b"x"),
        Err(SyncError::RoomNotFound(room)) if room == "nowhere"
    ));
}

#[tokio::test]
async fn server_messages_over_max_payload_are_refused() {
    let (handle, addr) = start(Server::builder().max_payload(8)).await;
    handle.create_room("arena").unwrap();
    let client = joined(addr, "arena").await;
    assert!(matches!(
        handle.send_to(client.client_id(), &[0; 9]),
        Err(SyncError::PayloadTooLarge)
    ));
    assert!(matches!(
        handle.broadcast_to_room("arena", &[0; 9]),
        Err(SyncError::PayloadTooLarge)
    ));
}

#[tokio::test]
async fn client_info_tells_address_room_and_connection_time() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("arena").unwrap();
    let before = std::time::SystemTime::now();
    let mut client = joined(addr, "arena").await;
    let lobby = ghost_sync::Client::connect(addr).await.unwrap();

    let info = handle.client_info(client.client_id()).unwrap();
    assert_eq!(info.id, client.client_id());
    assert_eq!(info.addr.ip(), addr.ip());
    assert_eq!(info.room.as_deref(), Some("arena"));
    assert_eq!(info.identity, None, "an open relay gives no identity");
    assert!(info.connected_since >= before - std::time::Duration::from_secs(1));
    assert_eq!(info.queue_depth, 0);

    let mut ids: Vec<Uuid> = handle.clients().iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![client.client_id(), lobby.client_id()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(handle.client_count(), 2);
    assert_eq!(handle.client_info(lobby.client_id()).unwrap().room, None);

    client.leave().await.unwrap();
    assert!(matches!(
        next_event(&mut client).await,
        ServerEvent::Left { .. }
    ));
    assert_eq!(handle.client_info(client.client_id()).unwrap().room, None);
}

#[tokio::test]
async fn stats_count_connections_frames_bytes_and_disconnects() {
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(Server::builder().handler_with(make)).await;
    handle.create_room("arena").unwrap();
    assert_eq!(handle.stats().connections, 0);

    let mut clients = join_all(addr, "arena", 2).await;
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    a.broadcast(&[7; 100]).await.unwrap();
    assert!(matches!(
        next_event(&mut b).await,
        ServerEvent::Broadcast { .. }
    ));

    let stats = handle.stats();
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.connections_total, 2);
    assert_eq!(stats.rooms, 1);
    // Two joins and one broadcast at least; the broadcast alone is 4 + 1 + 8 + 100 bytes.
    assert!(stats.frames_in >= 3, "{stats:?}");
    assert!(stats.bytes_in >= 113, "{stats:?}");
    // Joined with its member list (counted as one) for each, PlayerJoined for a, the
    // broadcast for b.
    assert!(stats.frames_out >= 4, "{stats:?}");
    assert!(stats.bytes_out > stats.bytes_in, "{stats:?}");

    let b_id = b.client_id();
    handle.kick(b_id, "bye").unwrap();
    assert!(matches!(next_error(&mut b).await, SyncError::Kicked(_)));
    // Read everything first: closing with unread bytes would be a reset, not a clean close.
    assert!(matches!(
        next_event(&mut a).await,
        ServerEvent::PlayerLeft { .. }
    ));
    let a_id = a.client_id();
    drop(a);
    for id in [b_id, a_id] {
        wait_hook(
            &mut hooks,
            |h| matches!(h, Hook::Disconnect(who, _) if *who == id),
        )
        .await;
    }
    let stats = handle.stats();
    assert_eq!(stats.connections, 0);
    assert_eq!(stats.connections_total, 2);
    assert_eq!(stats.disconnects_for(DisconnectKind::Kicked), 1);
    assert_eq!(stats.disconnects_for(DisconnectKind::ClientClosed), 1);
    assert_eq!(stats.disconnects_for(DisconnectKind::IdleTimeout), 0);
}

#[tokio::test]
async fn dropped_frames_are_counted() {
    // A member that never reads, with a tiny queue: a burst cannot all be queued.
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(Server::builder().handler_with(make).channel_capacity(2)).await;
    handle.create_room("arena").unwrap();
    let _deaf = RawClient::joined(addr, "arena").await;
    let mut loud = joined(addr, "arena").await;
    for _ in 0..64 {
        loud.broadcast(&[1; 1024]).await.unwrap();
    }
    wait_hook(&mut hooks, |h| matches!(h, Hook::Backpressure(..))).await;
    assert!(handle.stats().frames_dropped >= 1);
}

#[tokio::test]
async fn on_disconnect_names_the_reason() {
    let (make, mut hooks) = Recorder::reentrant();
    let (handle, addr) = start(
        Server::builder()
            .handler_with(make)
            .max_payload(16)
            .idle_timeout(std::time::Duration::from_millis(300)),
    )
    .await;
    handle.create_room("arena").unwrap();

    // Idle: never sends a frame after the handshake.
    let idle = RawClient::greeted(addr).await;
    let idle_id = match handle.clients().first() {
        Some(info) => info.id,
        None => panic!("the idle client is listed"),
    };
    wait_hook(&mut hooks, |h| {
        *h == Hook::Disconnect(idle_id, DisconnectReason::IdleTimeout)
    })
    .await;
    drop(idle);

    // Payload too large: a raw frame past max_payload.
    let mut big = RawClient::greeted(addr).await;
    big.send(&ghost_sync::protocol::ClientFrame::Broadcast { data: &[0; 64] })
        .await;
    wait_hook(&mut hooks, |h| {
        matches!(h, Hook::Disconnect(_, DisconnectReason::PayloadTooLarge(_)))
    })
    .await;
    drop(big);

    // Protocol: an unknown tag.
    let mut garbage = RawClient::greeted(addr).await;
    garbage.send_bytes(&[0, 0, 0, 1, 200]).await;
    wait_hook(&mut hooks, |h| {
        matches!(h, Hook::Disconnect(_, DisconnectReason::Protocol(_)))
    })
    .await;
    drop(garbage);

    // Shutdown, with a client that reads its farewell.
    let mut stays = ghost_sync::Client::connect(addr).await.unwrap();
    let reader = tokio::spawn(async move { next_error(&mut stays).await });
    handle.shutdown().await;
    assert!(reader.await.unwrap().is_connection_closed());
    wait_hook(&mut hooks, |h| {
        matches!(h, Hook::Disconnect(_, DisconnectReason::ServerShutdown))
    })
    .await;
}
