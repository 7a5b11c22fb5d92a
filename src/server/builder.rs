//! [`ServerBuilder`]: every option of a relay, and [`Server::builder`], where it starts.

use super::config::Config;
use super::handle::ServerHandle;
use super::run::Server;
use super::Shared;
use crate::auth::{self, Credentials, Identity as ClientIdentity, Validator};
#[cfg(doc)]
use crate::error::SyncError;
use crate::handler::{NoopHandler, ServerHandler};
use ghost_sync_layers::{BoxError, ClientRateLimitLayer, RoomNamePolicyLayer};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tower::layer::util::{Identity, Stack};
use tower::Service;

type MakeHandler = Box<dyn FnOnce(ServerHandle) -> Arc<dyn ServerHandler> + Send>;

/// Configures a [`Server`]. Created by [`Server::builder`].
///
/// `L` is the stack of user layers added with [`layer`](ServerBuilder::layer).
pub struct ServerBuilder<L = Identity> {
    config: Config,
    handler: MakeHandler,
    validator: Option<Validator>,
    layer: L,
}

impl<L> fmt::Debug for ServerBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L> ServerBuilder<L> {
    /// TCP listen address (default `"0.0.0.0:7777"`). `"127.0.0.1:0"` picks a free port;
    /// [`ServerHandle::local_addr`] tells which.
    pub fn bind(mut self, addr: impl ToString) -> Self {
        self.config.bind = addr.to_string();
        self
    }

    /// Maximum concurrent connections (default 1024); the next one is refused with
    /// [`SyncError::ServerFull`].
    pub fn max_clients(mut self, n: usize) -> Self {
        self.config.max_clients = n;
        self
    }

    /// Maximum payload (broadcast data or room id) in bytes (default 64 KiB, at most
    /// 16 MiB). A client that sends more is disconnected with [`SyncError::PayloadTooLarge`].
    pub fn max_payload(mut self, n: usize) -> Self {
        self.config.max_payload = n;
        self
    }

    /// Longest time without any frame from a client (default 31 s); then it is disconnected
    /// with [`SyncError::IdleTimeout`].
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.idle_timeout = d;
        self
    }

    /// Ping cadence, and the pong deadline (default 13 s): a ping still unanswered at the
    /// next tick disconnects the client with [`SyncError::PingTimeout`].
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.config.ping_interval = d;
        self
    }

    /// Per-client write queue size in frames (default 1024). When full, frames for that
    /// client are dropped and `on_backpressure` fires.
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.config.channel_capacity = n;
        self
    }

    /// Most connections one IP address may hold at once (default: no limit). The next one
    /// from that address is refused in the handshake with [`SyncError::ConnectRejected`]
    /// ("too many connections from ..."). IPv4-mapped IPv6 addresses count as their IPv4.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.config.max_connections_per_ip = Some(n);
        self
    }

    /// Rate-limits every client (default: no limit): frames and bytes per second, as token
    /// buckets. A frame over budget is refused with `ServerEvent::Error("rate limit
    /// exceeded: ...")`; with [`disconnect_after`], the client is disconnected after that many
    /// refusals ([`SyncError::Disconnected`] with the reason). Keepalive frames are never
    /// counted.
    ///
    /// ```
    /// use ghost_sync::layers::ClientRateLimitLayer;
    /// use ghost_sync::Server;
    ///
    /// let server = Server::builder()
    ///     .rate_limit(ClientRateLimitLayer::new(60, 64 * 1024).disconnect_after(100))
    ///     .build();
    /// # drop(server);
    /// ```
    ///
    /// [`disconnect_after`]: ghost_sync_layers::ClientRateLimitLayer::disconnect_after
    pub fn rate_limit(mut self, limit: ClientRateLimitLayer) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// The room-name policy for joins (default [`RoomNamePolicyLayer::new`]: at most 64
    /// bytes, no control characters). A join naming a room against it is refused with
    /// `ServerEvent::Error("invalid room name: ...")`. `None` turns it off (to put your own
    /// policy elsewhere in the stack with [`layer`](ServerBuilder::layer)).
    pub fn room_names(mut self, policy: impl Into<Option<RoomNamePolicyLayer>>) -> Self {
        self.config.room_names = policy.into();
        self
    }

    /// With the `metrics` feature: labels `ghost_sync_fanout_recipients` with `room`, one
    /// series per room (off by default: one series for the whole server). Every room ever
    /// created then stays a series in the recorder, so keep it for a few long-lived rooms,
    /// or let the recorder forget idle series. See [`telemetry`](crate::telemetry).
    #[cfg(feature = "metrics")]
    pub fn metrics_room_labels(mut self, on: bool) -> Self {
        self.config.metrics_room_labels = on;
        self
    }

    /// Emits a [`Stats`](crate::Stats) snapshot as a `tracing` event (target
    /// `ghost_sync::stats`, level INFO) every `every`. Off by default.
    pub fn stats_interval(mut self, every: Duration) -> Self {
        self.config.stats_interval = Some(every);
        self
    }

    /// Holds the frames relayed to each client for up to `window` and writes them together
    /// (off by default: a publisher's frames are written as soon as it has read its batch).
    /// A client receiving from many publishers then gets one write per window instead of one
    /// per publisher's batch: fewer system calls and wake-ups on both sides, paid for with up
    /// to `window` of added latency. BENCHMARKS.md has the trade in figures; 1–2 ms suits a
    /// game whose rooms are large and busy, and `Duration::ZERO` turns it off. Replies,
    /// pings and the handle's sends are never delayed. The frames wait in each client's
    /// queue meanwhile, so `channel_capacity` must hold what a client may be sent within one
    /// window: past it, frames are dropped for that client (backpressure) as always.
    pub fn flush_interval(mut self, window: Duration) -> Self {
        self.config.flush_interval = Some(window);
        self
    }

    /// Checks every client's credentials during its handshake with `validator`, a tower
    /// service from [`Credentials`] to [`Identity`](crate::Identity). A client it refuses
    /// gets [`SyncError::AuthFailed`] with the error's text; a client it accepts carries the
    /// identity, which hooks and layers see ([`ServerHandle::client_info`],
    /// [`FrameRequest::identity`](crate::FrameRequest::identity)). Without a validator (the default) the relay is open.
    ///
    /// [`HmacTokenValidator`](crate::auth::HmacTokenValidator) is the simple production
    /// choice; [`authenticate_with`](ServerBuilder::authenticate_with) takes a closure.
    pub fn authenticate<V>(mut self, validator: V) -> Self
    where
        V: Service<Credentials, Response = ClientIdentity> + Clone + Send + Sync + 'static,
        V::Error: Into<BoxError>,
        V::Future: Send + 'static,
    {
        self.validator = Some(auth::boxed(validator));
        self
    }

    /// [`authenticate`](ServerBuilder::authenticate) with an async closure.
    ///
    /// ```
    /// use ghost_sync::auth::{Credentials, Identity};
    /// use ghost_sync::Server;
    ///
    /// let server = Server::builder()
    ///     .authenticate_with(|credentials: Credentials| async move {
    ///         match &credentials.token[..] {
    ///             b"let-me-in" => Ok(Identity::new("guest")),
    ///             _ => Err("unknown token"),
    ///         }
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn authenticate_with<F, Fut, E>(self, validate: F) -> Self
    where
        F: Fn(Credentials) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<ClientIdentity, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.authenticate(tower::service_fn(validate))
    }

    /// Most bytes queued for one client (default 1 MiB, raised to at least one largest
    /// frame plus a full room-state snapshot, see
    /// [`room_state_limits`](ServerBuilder::room_state_limits)): its queue and the batch its
    /// writer is writing together never hold more. Past it, frames for that client are
    /// dropped and `on_backpressure` fires, as with a full `channel_capacity`.
    pub fn max_queued_bytes(mut self, n: usize) -> Self {
        self.config.max_queued_bytes = n;
        self
    }

    /// The bounds of each room's state (default 256 entries and 64 KiB of keys and values
    /// together, per room): a `SetState` past them is refused with
    /// `Error("room state full: <room_id>: <max_keys> keys")` (or `... <max_bytes> bytes`) and
    /// the entry keeps its old value; [`ServerHandle::set_room_state`] fails with
    /// [`SyncError::RoomStateFull`]. `0` turns room state off.
    ///
    /// A joiner gets the whole state in the same queue entry as its member list, so
    /// `max_queued_bytes` is raised if need be to hold one largest frame plus a full
    /// snapshot (`max_bytes` plus 37 bytes per entry); with the defaults that is about
    /// 137 KiB, well under the 1 MiB default.
    ///
    /// ```
    /// use ghost_sync::Server;
    ///
    /// let server = Server::builder().room_state_limits(32, 4 * 1024).build();
    /// # drop(server);
    /// ```
    pub fn room_state_limits(mut self, max_keys: usize, max_bytes: usize) -> Self {
        self.config.room_state = crate::room::StateLimits {
            max_keys,
            max_bytes,
        };
        self
    }

    /// How long a client's socket may take no byte of a write (default 10 s; checked every
    /// `d`, so a stall is noticed between `d` and `2 × d` after the last byte it took). A
    /// client whose socket stops draining for that long is disconnected as a slow consumer
    /// ([`DisconnectReason::SlowConsumer`](crate::DisconnectReason::SlowConsumer)), instead
    /// of pinning its slot and memory.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.config.write_timeout = d;
        self
    }

    /// Holds a dropped client's seat for `d` (default: off; `Duration::ZERO` is off; at
    /// most 1 h), so that it can come back on a new connection with the resume token of its
    /// last `Welcome` and find itself as it was: the same client id, still in its room, the
    /// frames queued meanwhile delivered, then `Resumed { missed }`. The others see nothing
    /// unless the seat ends.
    ///
    /// A close without `Bye` (a crash, a reset), a transport error, an idle timeout, a ping
    /// timeout and a slow consumer hold the seat; a `Bye`, a kick, a policy, protocol or
    /// internal error and a shutdown end it at once. A held seat gives its connection slot
    /// back but stays in its room (it counts toward the room's capacity), and its queue keeps
    /// filling within `channel_capacity` and `max_queued_bytes`. After `d` without a resume
    /// it ends: `PlayerLeft` to the room, then `on_leave` and `on_disconnect` with the reason
    /// of the drop. [`ServerHandler::on_drop`] and [`ServerHandler::on_resume`] tell the two
    /// steps. PROTOCOL.md section 7a is the client's side.
    ///
    /// ```
    /// use ghost_sync::Server;
    /// use std::time::Duration;
    ///
    /// let server = Server::builder()
    ///     .resume_window(Duration::from_secs(20))
    ///     .max_held_seats(256)
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn resume_window(mut self, d: Duration) -> Self {
        self.config.resume_window = Some(d);
        self
    }

    /// Most seats held at once (default `max_clients`; with `resume_window` only): past it,
    /// a drop ends the seat at once, as without `resume_window`. Each held seat may keep
    /// `max_queued_bytes` queued, which [`Server::memory_bound`] counts.
    pub fn max_held_seats(mut self, n: usize) -> Self {
        self.config.max_held_seats = Some(n);
        self
    }

    /// Shares this relay's rooms with every relay using the same Redis and key prefix
    /// (feature `redis`; default: none, the relay is alone). A client may then join a room
    /// on any relay and sees the members of every relay as if they shared one.
    /// [`Server::run`] connects first and fails with [`SyncError::Broker`] if the broker
    /// does not answer within 5 s. CLUSTER.md tells the guarantees and the failure modes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ghost_sync::SyncError> {
    /// use ghost_sync::{cluster::RedisOptions, Server};
    ///
    /// let handle = Server::builder()
    ///     .redis(RedisOptions::new("redis://127.0.0.1:6379").relay_name("eu-1"))
    ///     .build()
    ///     .run()
    ///     .await?;
    /// handle.ensure_room("lobby")?; // every relay runs this at startup: all succeed
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, options: crate::cluster::RedisOptions) -> Self {
        self.config.redis = Some(options);
        self
    }

    /// The policy hooks (default [`NoopHandler`]).
    pub fn handler(mut self, handler: impl ServerHandler) -> Self {
        let handler: Arc<dyn ServerHandler> = Arc::new(handler);
        self.handler = Box::new(move |_| handler);
        self
    }

    /// The policy hooks, built from the server's handle, for a handler that manages rooms
    /// itself, such as the `MaxPlayers` below, which caps a room's size in `on_join`
    /// (`examples/max_players.rs` runs a complete one).
    ///
    /// ```
    /// use ghost_sync::{Server, ServerHandle, ServerHandler, Uuid};
    /// use std::net::SocketAddr;
    ///
    /// struct MaxPlayers { limit: usize, handle: ServerHandle }
    ///
    /// impl ServerHandler for MaxPlayers {
    ///     fn on_join(&self, _id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
    ///         self.handle.room_client_count(room_id).is_some_and(|n| n < self.limit)
    ///     }
    /// }
    ///
    /// let server = Server::builder()
    ///     .handler_with(|handle| MaxPlayers { limit: 8, handle })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn handler_with<H, F>(mut self, make: F) -> Self
    where
        H: ServerHandler,
        F: FnOnce(ServerHandle) -> H + Send + 'static,
    {
        self.handler = Box::new(move |handle| Arc::new(make(handle)));
        self
    }

    /// Adds a tower layer to the frame pipeline, between the built-in layers and the hooks.
    /// Layers added first see frames first.
    ///
    /// Its service receives [`FrameRequest`](crate::FrameRequest)s and returns [`Reply`](crate::Reply)s; an `Err` it returns is
    /// sent to the client as `ServerEvent::Error(err.to_string())` and the connection stays
    /// open. tower's own middleware (rate limits, timeouts, filters) drops in unchanged.
    pub fn layer<N>(self, layer: N) -> ServerBuilder<Stack<N, L>> {
        ServerBuilder {
            config: self.config,
            handler: self.handler,
            validator: self.validator,
            layer: Stack::new(layer, self.layer),
        }
    }

    /// Builds the server. Nothing is bound until [`Server::run`].
    pub fn build(self) -> Server<L> {
        let shared = Arc::new(Shared::new(self.config.sanitized(), self.validator));
        let handle = ServerHandle {
            shared: Arc::clone(&shared),
        };
        let handler = (self.handler)(handle);
        shared.set_handler(&handler);
        Server::new(shared, handler, self.layer)
    }
}

impl Server {
    /// A builder with every option at its default: each option's method says which, and the
    /// `DEFAULT_*` constants of [`server`](crate::server) hold them.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: Config::default(),
            handler: Box::new(|_| Arc::new(NoopHandler)),
            validator: None,
            layer: Identity::new(),
        }
    }
}
