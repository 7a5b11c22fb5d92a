//! [`TestRelay`]: a relay running inside the test process on a free loopback port, with
//! shortcuts to make [`TestClient`]s for it.

use super::client::{TestClient, TestClientBuilder};
use super::names::Names;
use super::DEFAULT_TIMEOUT;
use crate::pipeline::FrameLayer;
use crate::protocol::RejectCode;
use crate::server::{Server, ServerBuilder, ServerHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A relay for a test: bound to `127.0.0.1` on a free port and serving in the background.
///
/// Dropping it starts a [`shutdown`](ServerHandle::shutdown) on the runtime it runs on
/// (wherever the drop happens), so a test that starts several relays does not keep the
/// earlier ones serving; call [`shutdown`](TestRelay::shutdown) to wait until every
/// connection is closed and every hook has run.
#[derive(Debug)]
pub struct TestRelay {
    handle: ServerHandle,
    /// The runtime the relay runs on, for the shutdown a drop starts.
    runtime: tokio::runtime::Handle,
    addr: SocketAddr,
    names: Names,
    made: AtomicUsize,
}

impl TestRelay {
    /// Builds the server from `builder`, binds it to `127.0.0.1:0` (whatever address the
    /// builder had) and runs it. Panics, saying why, if it cannot run.
    pub async fn start<L>(builder: ServerBuilder<L>) -> Self
    where
        L: FrameLayer,
    {
        Self::run(builder.bind("127.0.0.1:0").build()).await
    }

    /// Runs a server built by the test itself, for a test that uses its handle before it
    /// runs; bind it to `127.0.0.1:0`. Panics, saying why, if it cannot run.
    pub async fn run<L>(server: Server<L>) -> Self
    where
        L: FrameLayer,
    {
        let handle = match server.run().await {
            Ok(handle) => handle,
            Err(err) => panic!("the test relay did not start: {err}"),
        };
        let Some(addr) = handle.local_addr() else {
            panic!("the test relay runs but has no local address");
        };
        Self {
            handle,
            runtime: tokio::runtime::Handle::current(),
            addr,
            names: Names::default(),
            made: AtomicUsize::new(0),
        }
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's handle: rooms, clients, stats, kicks.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// Creates a room; panics if it cannot (it exists, the name is refused).
    pub fn create_room(&self, room: &str) {
        if let Err(err) = self.handle.create_room(room) {
            panic!("the test relay cannot create room {room:?}: {err}");
        }
    }

    /// Options for a new client, named "client N" unless given a name.
    pub fn client_builder(&self) -> TestClientBuilder {
        let n = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        TestClientBuilder::new(self.addr, self.names.clone()).name(format!("client {n}"))
    }

    /// A new client, past its handshake.
    pub async fn client(&self) -> TestClient {
        self.client_builder().connect().await
    }

    /// A new client that sends `token` in its handshake.
    pub async fn client_with_token(&self, token: impl AsRef<[u8]>) -> TestClient {
        self.client_builder().token(token).connect().await
    }

    /// A new client in `room`, its `Joined` and member list consumed.
    pub async fn joined(&self, room: &str) -> TestClient {
        let mut client = self.client().await;
        client.join(room).await;
        client.expect_joined(room).await;
        client
    }

    /// `n` new clients in `room`, one after the other, each earlier member's `PlayerJoined`
    /// for each later one consumed: nothing is left to read.
    pub async fn join_all(&self, room: &str, n: usize) -> Vec<TestClient> {
        let mut clients: Vec<TestClient> = Vec::with_capacity(n);
        for _ in 0..n {
            let newcomer = self.joined(room).await;
            for other in clients.iter_mut() {
                other.expect_member_joined(newcomer.client_id()).await;
            }
            clients.push(newcomer);
        }
        clients
    }

    /// Connects and expects the handshake to be refused with `code`; returns the reason.
    pub async fn expect_rejected(&self, code: RejectCode) -> String {
        self.client_builder().expect_rejected(code).await
    }

    /// Shuts the relay down and waits until every connection is closed and every hook ran
    /// (see [`ServerHandle::shutdown`]).
    pub async fn shutdown(&self) {
        // A connection lingers at most a few seconds: past this, something is stuck (a hook
        // that blocks, say), and the test says so instead of hanging.
        let patience = DEFAULT_TIMEOUT * 3;
        if tokio::time::timeout(patience, self.handle.shutdown())
            .await
            .is_err()
        {
            panic!("the relay did not shut down within {patience:?}: a hook or a task is stuck");
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        // Cheap and idempotent; on the runtime the relay runs on, wherever the drop happens
        // (once that runtime is gone, so are the relay's tasks).
        let handle = self.handle.clone();
        self.runtime.spawn(async move { handle.shutdown().await });
    }
}
