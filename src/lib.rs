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
//! - [`server`]: builder, handle, accept loop, connection driver, batched writer.
//! - [`pipeline`]: the tower `Service` stack each client frame passes through.
//! - [`protocol`]: the wire format (see `PROTOCOL.md`).
//! - [`auth`]: credentials, identities, validators ([`auth::HmacTokenValidator`]).
//! - [`Client`] (and its halves [`ClientSender`], [`ClientReceiver`]), [`ServerEvent`],
//!   [`SyncError`], [`ServerHandler`] (and [`JoinRequest`], [`DisconnectReason`]).
//! - The control surface's values: [`ClientInfo`], [`Stats`], [`RoomOptions`].
//! - The reusable layers live in the `ghost-sync-layers` crate, re-exported as [`layers`].

#![deny(missing_docs)]
// No unsafe code: memory safety is the compiler's to check, not a sanitizer's.
#![forbid(unsafe_code)]

pub mod auth;
mod client;
#[cfg(feature = "redis")]
pub mod cluster;
#[cfg(not(feature = "redis"))]
#[path = "cluster/disabled.rs"]
mod cluster;
mod directory;
mod disconnect;
mod error;
mod event;
mod handler;
mod outbox;
pub mod pipeline;
pub mod protocol;
mod registry;
mod room;
pub mod server;
mod session;
mod stats;
mod sync;
#[cfg(feature = "metrics")]
pub mod telemetry;

pub use auth::Identity;
pub use client::{Client, ClientBuilder, ClientReceiver, ClientSender};
pub use directory::ClientInfo;
pub use disconnect::{DisconnectKind, DisconnectReason};
pub use error::SyncError;
pub use event::ServerEvent;
pub use handler::{JoinRequest, NoopHandler, ServerHandler};
pub use pipeline::{ClientMessage, FrameRequest, Reply};
pub use room::RoomOptions;
pub use server::{Server, ServerBuilder, ServerHandle, SERVER_ID};
pub use stats::Stats;
pub use uuid::Uuid;

/// The reusable tower layers (re-export of `ghost-sync-layers`).
pub use ghost_sync_layers as layers;

/// The README's code blocks, compiled as doctests so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
