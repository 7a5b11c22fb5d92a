//! # ghost-sync
//!
//! A room-based TCP relay for real-time multiplayer. Clients connect, join a room, broadcast
//! bytes to the room and receive room events; the game backend that embeds the relay decides
//! policy through [`ServerHandler`] hooks and tower layers, and manages rooms at runtime
//! through a [`ServerHandle`].
//!
//! ```no_run
//! use ghost_sync::{Server, ServerHandler, Uuid};
//! use std::net::SocketAddr;
//!
//! struct GameHandler;
//!
//! impl ServerHandler for GameHandler {
//!     fn on_connect(&self, addr: SocketAddr) -> bool {
//!         addr.ip().is_loopback()
//!     }
//! }
//!
//! # async fn demo() -> Result<(), ghost_sync::SyncError> {
//! let handle = Server::builder()
//!     .bind("127.0.0.1:7777")
//!     .max_clients(128)
//!     .handler(GameHandler)
//!     .build()
//!     .run()
//!     .await?;
//! handle.create_room("lobby")?;
//! # handle.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//! - [`server`]: builder, handle, accept loop, connection driver, batched writer, and
//!   [`Relay::serve_connection`] for connections over any transport.
//! - [`pipeline`]: the tower `Service` stack each client frame passes through
//!   ([`FrameLayer`], and [`FrameRequest::builder`] to unit-test a layer alone).
//! - [`protocol`]: the wire format (see `PROTOCOL.md`), and `protocol::EventDecoder` for a
//!   client over another transport.
//! - Feature `testing`: `testing`, the test kit (an in-process relay, test clients with
//!   expectations and faults). Feature `metrics`: `telemetry`, the metric names.
//! - Features `client` and `server` (both default): a client-only build has [`Client`],
//!   [`ServerEvent`], [`SyncError`] and [`protocol`], and none of the server's dependencies.
//! - [`auth`]: credentials, identities, validators ([`auth::HmacTokenValidator`]).
//! - [`Client`] (and its halves [`ClientSender`], [`ClientReceiver`]), [`ServerEvent`],
//!   [`SyncError`], [`ServerHandler`] (and [`JoinRequest`], [`DirectRequest`], [`DisconnectReason`]).
//! - The control surface's values: [`ClientInfo`], [`Stats`], [`RoomOptions`].
//! - The reusable layers live in the `ghost-sync-layers` crate, re-exported as [`layers`].

#![deny(missing_docs)]
// No unsafe code: memory safety is the compiler's to check, not a sanitizer's. The one
// exception is in the crate's own test binary: the allocation-counting allocator of its unit
// tests (src/outbox/alloc_count.rs), which cannot be written without `unsafe impl`.
#![cfg_attr(not(test), forbid(unsafe_code))]
#![cfg_attr(test, deny(unsafe_code))]

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "redis")]
pub mod cluster;
#[cfg(all(feature = "server", not(feature = "redis")))]
#[path = "cluster/disabled.rs"]
mod cluster;
#[cfg(feature = "server")]
mod directory;
#[cfg(feature = "server")]
mod disconnect;
mod error;
mod event;
#[cfg(feature = "server")]
mod handler;
#[cfg(feature = "server")]
mod outbox;
#[cfg(feature = "server")]
pub mod pipeline;
pub mod protocol;
#[cfg(feature = "server")]
mod registry;
#[cfg(feature = "server")]
mod room;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod session;
#[cfg(feature = "server")]
mod stats;
mod sync;
#[cfg(feature = "metrics")]
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "server")]
pub use auth::Identity;
#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, ClientReceiver, ClientSender, ReconnectPolicy};
#[cfg(feature = "server")]
pub use directory::ClientInfo;
#[cfg(feature = "server")]
pub use disconnect::{DisconnectKind, DisconnectReason};
pub use error::SyncError;
pub use event::{ServerEvent, SERVER_ID};
#[cfg(feature = "server")]
pub use handler::{DirectRequest, JoinRequest, NoopHandler, ServerHandler};
#[cfg(feature = "server")]
pub use pipeline::{ClientMessage, FrameLayer, FrameRequest, Reply, ReplyKind};
#[cfg(feature = "server")]
pub use room::RoomOptions;
#[cfg(feature = "server")]
pub use room::RoomStateEntry;
#[cfg(feature = "server")]
pub use server::{Relay, Server, ServerBuilder, ServerHandle};
#[cfg(feature = "server")]
pub use stats::Stats;
pub use uuid::Uuid;

/// The reusable tower layers (re-export of `ghost-sync-layers`).
#[cfg(feature = "server")]
pub use ghost_sync_layers as layers;

/// The README's code blocks, compiled as doctests so that they cannot go stale.
#[cfg(all(doctest, feature = "client", feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
