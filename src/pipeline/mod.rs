//! The frame pipeline: the tower `Service` stack every decoded client frame passes through.
//!
//! Built once per connection, never boxed per frame:
//!
//! ```text
//! recover               layer errors → replies to the client (or a disconnect with a reason)
//! PayloadLimit          payload > max_payload → disconnect with PayloadTooLarge
//! IdleTimeout           records activity for the connection's idle deadline
//! Auth                  frames from an unauthenticated session are refused
//! ClientRateLimit       optional (ServerBuilder::rate_limit): frames and bytes per second
//! RoomNamePolicy        join room names: length (64 bytes) and characters (replaceable)
//! your layers           ServerBuilder::layer(..): filters, tower's middleware
//! Hooks                 on_join (allow/deny, one join per room at a time), on_broadcast
//! RoomRouter            join / leave / broadcast against the room registry
//! ```
//!
//! Keepalive frames (ping, pong) never enter the pipeline: the connection driver answers them
//! and records the activity itself, so that a user layer that refuses or holds back frames
//! (a rate limit, say) can never turn keepalive into a ping or idle timeout.
//!
//! Admission runs in a second, connection-scope stack (see `connect_hook.rs` and the
//! connection-limit layer), so a full server refuses a connection before any frame is read.
//!
//! The request is a [`FrameRequest`]: the decoded [`ClientMessage`] plus the connection's
//! session. The response is a [`Reply`]. Refusals that are normal protocol outcomes (room not
//! found, join rejected) are replies; an `Err` from a layer becomes a reply too (see
//! [`recover`](fn@recover)).
//!
//! A layer the pipeline accepts is a [`FrameLayer`] over the [`CoreService`]. To unit-test
//! one alone, build requests with [`FrameRequest::builder`], put a `tower::service_fn` under
//! the layer, and read what comes back with [`Reply::kind`].

pub(crate) mod connect_hook;
mod core;
mod frame_layer;
pub(crate) mod hooks;
mod recover;
mod reply;
mod request;
pub(crate) mod router;

pub use self::core::{CoreFuture, CoreService};
pub use frame_layer::FrameLayer;
pub use recover::recover;
pub use reply::{Reply, ReplyKind};
pub use request::{ClientMessage, FrameRequest, FrameRequestBuilder};
