//! [`ServerHandler`]: the hooks through which the game backend decides policy.
//!
//! Hooks are synchronous and run on the connection's task, never under a relay lock, so a hook
//! may call any [`ServerHandle`](crate::ServerHandle) method. `on_broadcast` runs once per
//! relayed frame: keep it cheap, and move anything slow into a tower layer or your own task.

use crate::auth::Identity;
use crate::disconnect::DisconnectReason;
use std::net::SocketAddr;
use uuid::Uuid;

/// A join as [`ServerHandler::on_join_request`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct JoinRequest<'a> {
    /// Who asks.
    pub client_id: Uuid,
    /// The room it asks to join (it exists).
    pub room_id: &'a str,
    /// Where the client connects from.
    pub addr: SocketAddr,
    /// Who the validator said the client is; `None` on an open relay.
    pub identity: Option<&'a Identity>,
    /// The bytes the client sent with the join ([`Client::join_with`]); empty for a plain
    /// join.
    ///
    /// [`Client::join_with`]: crate::Client::join_with
    pub data: &'a [u8],
}

impl<'a> JoinRequest<'a> {
    /// A plain join of `room_id` by `client_id` from `addr`, with no identity and no data:
    /// for unit tests of an `on_join_request` hook.
    ///
    /// ```
    /// use ghost_sync::auth::Identity;
    /// use ghost_sync::{JoinRequest, Uuid};
    ///
    /// let alice = Identity::new("alice");
    /// let join = JoinRequest::new(Uuid::new_v4(), "arena", "127.0.0.1:4000".parse().unwrap())
    ///     .with_identity(&alice)
    ///     .with_data(b"password");
    /// assert_eq!(join.identity.map(Identity::user_id), Some("alice"));
    /// ```
    pub fn new(client_id: Uuid, room_id: &'a str, addr: SocketAddr) -> Self {
        Self {
            client_id,
            room_id,
            addr,
            identity: None,
            data: &[],
        }
    }

    /// The same join by a client the validator identified.
    pub fn with_identity(mut self, identity: &'a Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The same join, carrying `data`.
    pub fn with_data(mut self, data: &'a [u8]) -> Self {
        self.data = data;
        self
    }
}

/// A direct send as [`ServerHandler::on_direct`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DirectRequest<'a> {
    /// Who sends.
    pub client_id: Uuid,
    /// The room the sender is in.
    pub room_id: &'a str,
    /// The members it names, as it listed them (not yet checked to be in the room).
    pub targets: &'a [Uuid],
    /// The bytes to relay.
    pub data: &'a [u8],
}

impl<'a> DirectRequest<'a> {
    /// A send of `data` from `client_id` in `room_id` to `targets`: for unit tests of an
    /// `on_direct` hook.
    ///
    /// ```
    /// use ghost_sync::{DirectRequest, Uuid};
    ///
    /// let to = [Uuid::from_u128(2)];
    /// let whisper = DirectRequest::new(Uuid::from_u128(1), "arena", &to, b"psst");
    /// assert_eq!(whisper.targets, &to);
    /// ```
    pub fn new(client_id: Uuid, room_id: &'a str, targets: &'a [Uuid], data: &'a [u8]) -> Self {
        Self {
            client_id,
            room_id,
            targets,
            data,
        }
    }
}

/// Policy hooks called by the relay. Every method has a no-op default that allows everything.
///
/// ```
/// use ghost_sync::{ServerHandler, Uuid};
/// use std::net::SocketAddr;
///
/// struct StrictRooms;
///
/// impl ServerHandler for StrictRooms {
///     fn on_join(&self, _client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
///         matches!(room_id, "lobby" | "deathmatch" | "duel")
///     }
/// }
/// ```
pub trait ServerHandler: Send + Sync + 'static {
    /// A TCP connection arrived from `addr`; return `false` to refuse it (the client's
    /// `connect` fails with [`SyncError::ConnectRejected`](crate::SyncError::ConnectRejected)).
    fn on_connect(&self, addr: SocketAddr) -> bool {
        let _ = addr;
        true
    }

    /// `client_id` asks to join the existing room `room_id`; return `false` to refuse (the
    /// client receives `ServerEvent::Error("join rejected: ...")`).
    ///
    /// Joins into one room are admitted one at a time, so a capacity check made here with
    /// [`ServerHandle::room_client_count`](crate::ServerHandle::room_client_count) is exact.
    fn on_join(&self, client_id: Uuid, room_id: &str, addr: SocketAddr) -> bool {
        let _ = (client_id, room_id, addr);
        true
    }

    /// The full form of [`on_join`](ServerHandler::on_join): sees the client's identity and
    /// the bytes it sent with the join, and refuses with a reason the client reads
    /// (`ServerEvent::Error("join rejected: <room>: <reason>")`).
    ///
    /// The default calls `on_join`, so a handler implements one or the other. Runs under the
    /// same one-join-at-a-time rule as `on_join`.
    ///
    /// ```
    /// use ghost_sync::{JoinRequest, ServerHandler};
    ///
    /// struct PrivateRooms;
    ///
    /// impl ServerHandler for PrivateRooms {
    ///     fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
    ///         if join.room_id.starts_with("private-") && join.data != b"secret" {
    ///             return Err("wrong password".into());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        if self.on_join(join.client_id, join.room_id, join.addr) {
            Ok(())
        } else {
            Err(String::new())
        }
    }

    /// `client_id` left `room_id`: on request, by joining another room, or by disconnecting.
    /// Fires exactly once per join.
    fn on_leave(&self, client_id: Uuid, room_id: &str) {
        let _ = (client_id, room_id);
    }

    /// `client_id` relayed `data` to the other members of `room_id`: a broadcast, or a
    /// latest-state (keyed) broadcast.
    fn on_broadcast(&self, client_id: Uuid, room_id: &str, data: &[u8]) {
        let _ = (client_id, room_id, data);
    }

    /// A member of a room asks to send bytes to some members only (`Client::send_to`);
    /// return `Err(reason)` to refuse: nobody receives them, and the sender gets
    /// `Error("direct rejected: <reason>")` (`"direct rejected"` for an empty reason).
    /// Called before the relay checks that the targets are in the room.
    fn on_direct(&self, direct: &DirectRequest<'_>) -> Result<(), String> {
        let _ = direct;
        Ok(())
    }

    /// A frame for `client_id` in `room_id` was dropped because its write queue was full.
    fn on_backpressure(&self, client_id: Uuid, room_id: &str) {
        let _ = (client_id, room_id);
    }

    /// The seat of `client_id` ended, for `reason`. Fires exactly once per client id that
    /// completed its handshake, after `on_leave` (if it was in a room). With
    /// [`resume_window`](crate::ServerBuilder::resume_window) a dropped connection whose seat
    /// is held fires [`on_drop`](ServerHandler::on_drop) instead, and this fires only when
    /// the seat ends (the window ran out: `reason` is the drop's), not once per connection.
    fn on_disconnect(&self, client_id: Uuid, reason: &DisconnectReason) {
        let _ = (client_id, reason);
    }

    /// The connection of `client_id` dropped for `reason` and its seat is held for a resume
    /// (only with [`resume_window`](crate::ServerBuilder::resume_window)): it stays in its
    /// room and the others are not told. Either [`on_resume`](ServerHandler::on_resume)
    /// follows, or, once the window runs out, `on_leave` and `on_disconnect`. A resume that
    /// takes over a connection still open fires this with [`DisconnectReason::Replaced`],
    /// then `on_resume`.
    fn on_drop(&self, client_id: Uuid, reason: &DisconnectReason) {
        let _ = (client_id, reason);
    }

    /// `client_id` resumed its held seat on a new connection; `missed` frames for it were
    /// dropped meanwhile (its queue was full). Fires once per resume, after an `on_drop` of
    /// the same id.
    fn on_resume(&self, client_id: Uuid, missed: u32) {
        let _ = (client_id, missed);
    }

    /// A room was created through the handle.
    fn on_room_create(&self, room_id: &str) {
        let _ = room_id;
    }

    /// A room was (soft-)deleted through the handle.
    fn on_room_delete(&self, room_id: &str) {
        let _ = room_id;
    }
}

/// How the relay holds the handler: shared by the accept loop and every connection.
pub(crate) type SharedHandler = std::sync::Arc<dyn ServerHandler>;

/// The default handler: allows everything, observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopHandler;

impl ServerHandler for NoopHandler {}

/// Runs one hook, catching a panic: a bug in the game backend's hook must not take the relay
/// (or another client's connection) down with it. `None` when it panicked; the caller decides
/// what that means for the client involved (usually: disconnect it with an internal error).
pub(crate) fn guarded<R>(hook: &'static str, call: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(result) => Some(result),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(hook, panic = message, "a ServerHandler hook panicked");
            None
        }
    }
}
