//! A relay that dies without a goodbye (SIGKILL): its members leave everywhere within the
//! lease's bound, each leave exactly once although every surviving relay sweeps, and its
//! seats in capped rooms come back.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::{RoomOptions, ServerEvent};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "../support/relay_bin.rs"]
mod support;

/// The relay example, built with the `redis` feature.
fn relay_bin() -> PathBuf {
    support::relay_bin(&["redis"])
}

/// A relay in a process of its own, to be killed or frozen.
async fn spawn_relay(url: &str, prefix: &str, name: &str) -> (Child, std::net::SocketAddr) {
    let bin = tokio::task::spawn_blocking(relay_bin).await.unwrap();
    let mut child = Command::new(bin)
        .args(["--bind", "127.0.0.1:0", "--rooms", "0", "--redis", url])
        .args(["--key-prefix", prefix, "--relay-name", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the relay starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = within("READY", lines.next_line())
        .await
        .unwrap()
        .expect("a READY line");
    let addr = ready
        .strip_prefix("READY ")
        .expect("READY <addr>")
        .parse()
        .unwrap();
    // Keep reading, so that the relay never blocks on a full stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test]
async fn a_killed_relay_s_members_leave_everywhere_once_and_free_their_seats() {
    let broker = Broker::start();
    let prefix = prefix("sigkill");
    let survivors = relays(&broker.url(), &prefix, 2).await;
    let arena = RoomOptions {
        max_clients: Some(3),
    };
    survivors[0]
        .handle
        .create_room_with("arena", arena)
        .unwrap();
    let (mut doomed, doomed_addr) = spawn_relay(&broker.url(), &prefix, "doomed").await;

    // One member on each survivor (the third, on the relay about to die, fills the room).
    let mut watchers = Vec::new();
    for relay in &survivors {
        eventually("the room is known", || relay.handle.room_exists("arena")).await;
        let mut client = connect(relay.addr).await;
        join(&mut client, "arena").await;
        watchers.push(client);
    }
    // One member on the relay about to die fills the room; a second client there is in no
    // room, and must vanish from the cluster's clients all the same.
    let mut member = connect(doomed_addr).await;
    join(&mut member, "arena").await;
    let idle = connect(doomed_addr).await;
    let (doomed_member, idle_id) = (member.client_id(), idle.client_id());
    for relay in &survivors {
        eventually("the room is full everywhere", || {
            relay.handle.room_client_count("arena") == Some(3)
        })
        .await;
        eventually("the idle client is known", || {
            relay.handle.client_info(idle_id).is_some()
        })
        .await;
    }
    // Settle the presence the watchers saw so far.
    for (client, relay) in watchers.iter_mut().zip(&survivors) {
        events_until_marker(client, &relay.handle).await;
    }

    doomed.start_kill().unwrap();
    let killed = Instant::now();
    doomed.wait().await.unwrap();
    for relay in &survivors {
        eventually("the dead relay's member leaves", || {
            relay.handle.room_client_count("arena") == Some(2)
        })
        .await;
        eventually("its clients vanish", || {
            relay.handle.client_info(doomed_member).is_none()
                && relay.handle.client_info(idle_id).is_none()
        })
        .await;
    }
    // The bound is documented (CLUSTER.md); a test only reports how long it took.
    eprintln!(
        "the dead relay's members left {:?} after the kill",
        killed.elapsed()
    );
    // Both survivors sweep; each watcher still hears the leave exactly once.
    let left = ServerEvent::PlayerLeft {
        client_id: doomed_member,
    };
    for (client, relay) in watchers.iter_mut().zip(&survivors) {
        assert_eq!(
            events_until_marker(client, &relay.handle).await,
            std::slice::from_ref(&left)
        );
    }
    // The seat is free again.
    let mut late = connect(survivors[1].addr).await;
    join(&mut late, "arena").await;
    drop((member, idle));
    stop(survivors).await;
}

#[tokio::test]
async fn a_relay_declared_dead_after_a_long_pause_writes_its_members_back() {
    let broker = Broker::start();
    let prefix = prefix("fenced");
    let survivors = relays(&broker.url(), &prefix, 1).await;
    survivors[0].handle.create_room("lobby").unwrap();
    let (mut frozen, frozen_addr) = spawn_relay(&broker.url(), &prefix, "frozen").await;
    let mut watcher = connect(survivors[0].addr).await;
    join(&mut watcher, "lobby").await;
    let mut sleeper = connect(frozen_addr).await;
    join(&mut sleeper, "lobby").await;
    let sleeper_id = sleeper.client_id();
    let handle = &survivors[0].handle;
    eventually("both members counted", || {
        handle.room_client_count("lobby") == Some(2)
    })
    .await;
    events_until_marker(&mut watcher, handle).await;

    // A pause longer than the lease (a stop-the-world stall, a partition): the others
    // declare the relay dead and its member gone.
    let pid = frozen.id().expect("running").to_string();
    let signal = |which: &str| {
        let status = std::process::Command::new("kill")
            .args([which, &pid])
            .status();
        assert!(status.expect("kill runs").success());
    };
    signal("-STOP");
    eventually("the frozen relay's member is reaped", || {
        handle.room_client_count("lobby") == Some(1)
    })
    .await;
    assert_eq!(
        events_until_marker(&mut watcher, handle).await,
        [ServerEvent::PlayerLeft {
            client_id: sleeper_id
        }]
    );
    // Awake, it finds its lease gone and writes its state back: its member is there again,
    // and its frames flow as before.
    signal("-CONT");
    eventually("the member is back", || {
        handle.room_client_count("lobby") == Some(2)
    })
    .await;
    assert_eq!(
        events_until_marker(&mut watcher, handle).await,
        [ServerEvent::PlayerJoined {
            client_id: sleeper_id
        }]
    );
    sleeper.broadcast(b"still here").await.unwrap();
    match next_event(&mut watcher).await {
        ServerEvent::Broadcast { sender_id, data } => {
            assert_eq!((sender_id, &data[..]), (sleeper_id, &b"still here"[..]));
        }
        other => panic!("expected the woken member's frame, got {other:?}"),
    }
    frozen.start_kill().unwrap();
    stop(survivors).await;
}
