//! A test kit (feature `testing`): an in-process relay on a free port, and test clients whose
//! expectations fail with a readable message instead of hanging, and that inject faults on
//! demand.
//!
//! - [`TestRelay::start`] runs a [`ServerBuilder`](crate::ServerBuilder) on `127.0.0.1:0`;
//!   [`TestRelay::client`], [`joined`](TestRelay::joined) and
//!   [`join_all`](TestRelay::join_all) make clients for it.
//! - A [`TestClient`] speaks the wire protocol itself over a plain `TcpStream`, so that it can
//!   send anything (a payload over the limit, half a frame) and misbehave for real. Its
//!   `expect_*` methods take the next event (keepalive skipped) and panic if it is not the one
//!   expected, or if nothing comes within the client's timeout ([`DEFAULT_TIMEOUT`] unless
//!   set): [`expect_joined`](TestClient::expect_joined),
//!   [`expect_broadcast_from`](TestClient::expect_broadcast_from),
//!   [`expect_member_joined`](TestClient::expect_member_joined),
//!   [`expect_member_left`](TestClient::expect_member_left),
//!   [`expect_error`](TestClient::expect_error),
//!   [`expect_no_event`](TestClient::expect_no_event),
//!   [`expect_disconnect`](TestClient::expect_disconnect), and for the game features
//!   [`expect_direct`](TestClient::expect_direct),
//!   [`expect_keyed_from`](TestClient::expect_keyed_from),
//!   [`expect_state`](TestClient::expect_state) and
//!   [`expect_dropped`](TestClient::expect_dropped), and more. The message names the
//!   client, the expectation, what arrived instead, and what the client received before.
//! - Faults: [`sever`](TestClient::sever) (a reset, no goodbye),
//!   [`stop_reading`](TestClient::stop_reading), [`slow_reader`](TestClient::slow_reader),
//!   [`send_raw`](TestClient::send_raw).
//! - Resumes (`resume_window`): [`TestRelay::resumable`] keeps the resume token of a
//!   client's `Welcome`, [`TestRelay::resume`] claims the held seat with it,
//!   [`TestRelay::expect_resume_refused`] reads a refusal, and [`TestClient::bye`] ends a
//!   seat as a client that quits properly.
//!
//! While it waits in an expectation a test client answers the relay's pings, so that a long
//! test is not cut off by the ping timeout; a [stalled](TestClient::stop_reading) client does
//! not, which is the point of it.
//!
//! Run these tests on tokio's real clock, not `start_paused`: the sockets are real, and a
//! paused clock that jumps ahead whenever the runtime idles would fire timeouts early and
//! make a slow reader's pace meaningless.
//!
//! ```
//! use ghost_sync::testing::TestRelay;
//! use ghost_sync::{DisconnectKind, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let relay = TestRelay::start(Server::builder().max_payload(100)).await;
//! relay.create_room("arena");
//! let mut clients = relay.join_all("arena", 2).await;
//! let (mut alice, mut bob) = (clients.remove(0), clients.remove(0));
//!
//! alice.broadcast(b"hello").await;
//! bob.expect_broadcast(alice.client_id(), b"hello").await;
//!
//! // Over the limit: the relay disconnects alice, and bob hears that she left.
//! alice.broadcast([0; 101]).await;
//! alice.expect_disconnect(DisconnectKind::PayloadTooLarge).await;
//! bob.expect_member_left(alice.client_id()).await;
//! # }
//! ```

mod client;
mod expect;
mod faults;
mod game;
mod names;
mod relay;
mod resume;
mod wire;

pub use client::{TestClient, TestClientBuilder};
pub use faults::{SlowReader, Stalled};
pub use relay::TestRelay;
pub use resume::{HelloAnswer, ResumeToken};
pub use wire::Received;

use std::time::Duration;

/// How long an expectation waits by default: far more than any event takes on loopback, so
/// that only a failing test ever waits it out, even on a loaded CI machine.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
