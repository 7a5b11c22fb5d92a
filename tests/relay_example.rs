//! `examples/relay.rs` as a real process: Ctrl-C (SIGINT) or SIGTERM sends every client its
//! shutdown farewell and ends the process, even while its standard input stays open; closing
//! standard input (how the benchmark harness stops it) does the same.
//!
//! What these tests guard is the process's exit, which no in-process test can see: a relay
//! that said goodbye to everyone could still hang in the runtime's drop, waiting for a
//! blocking read of stdin. So they build the example with cargo (a separate `cargo build` is
//! free of the lock `cargo test` takes: that lock is released before the tests run) and spawn
//! the binary itself, whose pid is then the relay's own.

#![cfg(unix)]

use ghost_sync::{Client, ServerEvent, SyncError};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Long enough for a loaded machine; a relay that hangs never gets there.
const GENEROUS: Duration = Duration::from_secs(30);

#[path = "support/relay_bin.rs"]
mod support;

fn relay_bin() -> PathBuf {
    support::relay_bin(&[])
}

/// A relay process that has printed its READY line.
struct Relay {
    child: Child,
    /// Held open for the relay's whole life unless a test closes it on purpose.
    stdin: Option<ChildStdin>,
    /// Held so that the relay's stdout never turns into a broken pipe.
    _stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    addr: String,
}

async fn start_relay() -> Relay {
    let mut child = Command::new(relay_bin())
        .args(["--bind", "127.0.0.1:0", "--rooms", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the relay starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(GENEROUS, stdout.next_line())
        .await
        .expect("the relay printed a line in time")
        .expect("the relay's stdout is readable")
        .expect("the relay printed READY before exiting");
    let addr = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Relay {
        stdin: child.stdin.take(),
        child,
        _stdout: stdout,
        addr,
    }
}

/// A client in room-0, its `Joined` and `Members` read: the relay is serving it.
async fn joined_client(addr: &str) -> Client {
    let mut client = Client::connect(addr).await.expect("the client connects");
    client.join("room-0").await.expect("the join is sent");
    match client.recv().await {
        Ok(Some(ServerEvent::Joined { room_id, .. })) => assert_eq!(room_id, "room-0"),
        other => panic!("expected Joined, got {other:?}"),
    }
    match client.recv().await {
        Ok(Some(ServerEvent::Members { .. })) => {}
        other => panic!("expected Members, got {other:?}"),
    }
    client
}

fn send_signal(relay: &Relay, signal: &str) {
    let pid = relay.child.id().expect("the relay is still running");
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// The client gets the relay's shutdown farewell, and the relay exits by itself, cleanly.
async fn farewell_then_exit(relay: &mut Relay, mut client: Client) {
    // `ConnectionClosed` is the shutdown goodbye; a relay that died without one would give
    // `Ok(None)` or `ConnectionReset` instead.
    let farewell = tokio::time::timeout(GENEROUS, client.recv())
        .await
        .expect("the client heard from the relay in time");
    assert!(
        matches!(farewell, Err(SyncError::ConnectionClosed)),
        "expected the shutdown farewell, got {farewell:?}"
    );
    let status = tokio::time::timeout(GENEROUS, relay.child.wait())
        .await
        .expect("the relay exited by itself in time")
        .expect("waiting for the relay");
    assert!(status.success(), "the relay exited with {status}");
}

async fn signal_stops_the_relay_with_stdin_open(signal: &str) {
    let mut relay = start_relay().await;
    let client = joined_client(&relay.addr).await;
    send_signal(&relay, signal);
    farewell_then_exit(&mut relay, client).await;
    assert!(relay.stdin.is_some(), "stdin stayed open throughout");
}

#[tokio::test]
async fn sigint_stops_the_relay_while_stdin_stays_open() {
    signal_stops_the_relay_with_stdin_open("-INT").await;
}

#[tokio::test]
async fn sigterm_stops_the_relay_while_stdin_stays_open() {
    signal_stops_the_relay_with_stdin_open("-TERM").await;
}

#[tokio::test]
async fn closing_stdin_stops_the_relay() {
    let mut relay = start_relay().await;
    let client = joined_client(&relay.addr).await;
    drop(relay.stdin.take());
    farewell_then_exit(&mut relay, client).await;
}
