//! The server side: builder, handle, the entry every connection comes in through (from the
//! accept loop or [`Relay::serve_connection`]), connection driver and writer.

mod builder;
mod config;
mod connection;
mod entry;
mod handle;
mod listener;
mod relay;
mod room_state;
mod run;
mod shared;
mod socket;
mod writer;

/// The bottom of the frame stack, under the user's layers (also at
/// [`pipeline::CoreService`](crate::pipeline::CoreService)).
pub use crate::pipeline::CoreService;
pub use builder::ServerBuilder;
pub use config::{
    DEFAULT_BIND, DEFAULT_CHANNEL_CAPACITY, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_PING_INTERVAL,
    DEFAULT_ROOM_STATE_MAX_BYTES, DEFAULT_ROOM_STATE_MAX_KEYS, DEFAULT_WRITE_TIMEOUT,
};
#[cfg(feature = "redis")]
pub(crate) use connection::hand_off;
pub(crate) use connection::seats::Token;
pub use handle::{ServerHandle, SERVER_ID};
pub use relay::Relay;
pub use run::Server;
pub(crate) use shared::Shared;
