//! Reusable, generic [tower] layers for a connection-oriented TCP relay.
//!
//! The layers here know nothing about the relay's wire format. Each one is
//! generic over a small request trait (in the way `tower-http` is generic over
//! the body), so any frame or connection type can opt in by implementing it:
//!
//! | layer                     | scope      | request trait        | refuses with                                   |
//! |---------------------------|------------|----------------------|------------------------------------------------|
//! | [`ConnectionLimitLayer`]  | connection | none                 | [`ConnectionLimitExceeded`]                    |
//! | [`PerIpLimitLayer`]       | connection | [`PeerIp`]           | [`TooManyConnectionsFromIp`]                   |
//! | [`PayloadLimitLayer`]     | frame      | [`PayloadLength`]    | [`PayloadTooLarge`]                            |
//! | [`ClientRateLimitLayer`]  | frame      | [`PayloadLength`]    | [`RateLimited`], then [`RateLimitViolations`]  |
//! | [`RoomNamePolicyLayer`]   | frame      | [`RoomName`]         | [`InvalidRoomName`]                            |
//! | [`IdleTimeoutLayer`]      | frame      | [`HasActivityClock`] | (see [`IdleDeadline`])                         |
//! | [`AuthLayer`]             | frame      | [`Authenticated`]    | [`Unauthenticated`]                            |
//!
//! [`ClientRateLimitLayer`] keeps its budgets per service, so build the
//! frame stack once per connection. For the handshake itself,
//! [`HmacTokens`] mints and verifies shared-secret signed tokens.
//!
//! Refusals are returned as [`BoxError`]s wrapping the error structs above, so
//! callers tell them apart with `downcast_ref`.
//!
//! # Example
//!
//! ```
//! use ghost_sync_layers::{AuthLayer, Authenticated, PayloadLength, PayloadLimitLayer, PayloadTooLarge};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! struct Frame {
//!     payload: Vec<u8>,
//!     authenticated: bool,
//! }
//!
//! impl PayloadLength for Frame {
//!     fn payload_len(&self) -> usize {
//!         self.payload.len()
//!     }
//! }
//!
//! impl Authenticated for Frame {
//!     fn is_authenticated(&self) -> bool {
//!         self.authenticated
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let relay = ServiceBuilder::new()
//!     .layer(PayloadLimitLayer::new(4))
//!     .layer(AuthLayer::new())
//!     .service(service_fn(|frame: Frame| async move {
//!         Ok::<_, Infallible>(frame.payload.len())
//!     }));
//!
//! let ok = Frame { payload: vec![1, 2, 3], authenticated: true };
//! assert_eq!(relay.clone().oneshot(ok).await.ok(), Some(3));
//!
//! let big = Frame { payload: vec![0; 5], authenticated: true };
//! let refused = relay.oneshot(big).await.err();
//! let refused = refused.as_deref().and_then(|e| e.downcast_ref::<PayloadTooLarge>());
//! assert_eq!(refused, Some(&PayloadTooLarge { len: 5, max: 4 }));
//! # }
//! ```

#![deny(missing_docs)]
// No unsafe code: memory safety is the compiler's to check, not a sanitizer's.
#![forbid(unsafe_code)]

/// The error type every refusing layer returns, as in tower itself.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub mod auth;
pub mod client_rate_limit;
pub mod connection_limit;
pub mod future;
pub mod idle_timeout;
pub mod ip_limit;
pub mod payload_limit;
pub mod room_name;
pub mod token;

pub use auth::{Auth, AuthLayer, Authenticated, Unauthenticated};
pub use client_rate_limit::{
    ClientRateLimit, ClientRateLimitLayer, RateLimitKind, RateLimitViolations, RateLimited,
};
pub use connection_limit::{
    AdmissionPermit, Admitted, ConnectionLimit, ConnectionLimitExceeded, ConnectionLimitLayer,
};
pub use idle_timeout::{
    ActivityClock, HasActivityClock, IdleDeadline, IdleTimeout, IdleTimeoutElapsed,
    IdleTimeoutLayer,
};
pub use ip_limit::{
    IpAdmitted, IpPermit, PeerIp, PerIpLimit, PerIpLimitLayer, TooManyConnectionsFromIp,
};
pub use payload_limit::{PayloadLength, PayloadLimit, PayloadLimitLayer, PayloadTooLarge};
pub use room_name::{
    InvalidRoomName, InvalidRoomNameReason, RoomName, RoomNamePolicy, RoomNamePolicyLayer,
    DEFAULT_MAX_ROOM_NAME_LEN,
};
pub use token::{HmacTokens, TokenClaims, TokenError, MAX_TOKEN_LEN};
