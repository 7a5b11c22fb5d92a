//! [`ServerHandle`]: manage rooms and clients, read stats, and stop the server at runtime.
//!
//! Every method is synchronous except `shutdown`, takes at most one short lock at a time and
//! fires hooks after releasing it, so any method may be called from inside any hook.

use super::Shared;
use crate::directory::ClientInfo;
use crate::error::SyncError;
use crate::handler::guarded;
use crate::outbox::{Pending, Refused};
use crate::protocol::{encode, ServerFrame};
use crate::room::RoomOptions;
use crate::session::report_backpressure;
use crate::stats::Stats;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use crate::event::SERVER_ID;

/// A cheap, cloneable handle to a server (`Clone + Send + Sync`): rooms, clients, stats,
/// server-originated messages, and shutdown.
///
/// ```
/// use ghost_sync::{Client, Server, ServerEvent, SyncError, SERVER_ID};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), SyncError> {
/// let handle = Server::builder().bind("127.0.0.1:0").build().run().await?;
/// handle.create_room("lobby")?;
///
/// let mut player = Client::connect(handle.local_addr().unwrap()).await?;
/// player.join("lobby").await?;
/// assert!(matches!(player.recv().await?, Some(ServerEvent::Joined { .. })));
/// assert!(matches!(player.recv().await?, Some(ServerEvent::Members { .. })));
///
/// handle.send_to(player.client_id(), b"welcome!")?;
/// match player.recv().await? {
///     Some(ServerEvent::Broadcast { sender_id, data }) => {
///         assert_eq!((sender_id, &data[..]), (SERVER_ID, &b"welcome!"[..]));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(handle.client_info(player.client_id()).unwrap().room.as_deref(), Some("lobby"));
/// assert_eq!(handle.stats().connections, 1);
///
/// handle.kick(player.client_id(), "server restarting")?;
/// assert!(matches!(player.recv().await, Err(SyncError::Kicked(reason)) if reason == "server restarting"));
/// handle.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr())
            .field("rooms", &self.room_count())
            .finish()
    }
}

impl ServerHandle {
    /// Creates an empty room; fires `on_room_create` (unless the server has stopped).
    ///
    /// Fails with [`SyncError::RoomAlreadyExists`] if a room with this id exists.
    pub fn create_room(&self, room_id: &str) -> Result<(), SyncError> {
        self.create_room_with(room_id, RoomOptions::default())
    }

    /// Creates an empty room with options (a capacity, say); fires `on_room_create`.
    ///
    /// ```
    /// # async fn demo(handle: ghost_sync::ServerHandle) -> Result<(), ghost_sync::SyncError> {
    /// use ghost_sync::RoomOptions;
    ///
    /// handle.create_room_with("duel", RoomOptions { max_clients: Some(2), ..Default::default() })?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails with [`SyncError::RoomAlreadyExists`] if a room with this id exists.
    pub fn create_room_with(&self, room_id: &str, options: RoomOptions) -> Result<(), SyncError> {
        let max_clients = options.max_clients;
        if !self.shared.registry.create(room_id, options) {
            return Err(SyncError::RoomAlreadyExists(room_id.to_owned()));
        }
        if let Some(cluster) = self.shared.cluster() {
            cluster.room_created(room_id, max_clients, None);
        }
        tracing::debug!(room_id, "room created");
        if let Some(handler) = self.shared.handler() {
            guarded("on_room_create", || handler.on_room_create(room_id));
        }
        Ok(())
    }

    /// Creates the room unless one with this id exists already with the same options:
    /// `Ok(true)` if it was created here, `Ok(false)` if it was there. The startup call of
    /// a relay that shares its rooms with others, since every relay runs the same program
    /// and all but the first find the room there.
    ///
    /// Fails with [`SyncError::RoomAlreadyExists`] if the existing room has other options.
    pub fn ensure_room(&self, room_id: &str) -> Result<bool, SyncError> {
        self.ensure_room_with(room_id, RoomOptions::default())
    }

    /// [`ensure_room`](ServerHandle::ensure_room) with options.
    pub fn ensure_room_with(&self, room_id: &str, options: RoomOptions) -> Result<bool, SyncError> {
        loop {
            if let Some(room) = self.shared.registry.get(room_id) {
                if *room.options() != options {
                    return Err(SyncError::RoomAlreadyExists(room_id.to_owned()));
                }
                return Ok(false);
            }
            match self.create_room_with(room_id, options.clone()) {
                Ok(()) => return Ok(true),
                // Created meanwhile by another caller: compare with that one.
                Err(SyncError::RoomAlreadyExists(_)) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Soft-deletes a room; fires `on_room_delete` (unless the server has stopped). Returns
    /// `false` if there was no such room.
    ///
    /// Members are not kicked: they stay connected, and their next broadcast in the room gets
    /// an error. A room created later with the same id starts empty.
    pub fn delete_room(&self, room_id: &str) -> bool {
        if self.shared.registry.delete(room_id).is_none() {
            return false;
        }
        if let Some(cluster) = self.shared.cluster() {
            cluster.room_deleted(room_id, None);
        }
        tracing::debug!(room_id, "room deleted");
        if let Some(handler) = self.shared.handler() {
            guarded("on_room_delete", || handler.on_room_delete(room_id));
        }
        true
    }

    /// Whether a room with this id exists.
    pub fn room_exists(&self, room_id: &str) -> bool {
        self.shared.registry.get(room_id).is_some()
    }

    /// Number of rooms.
    pub fn room_count(&self) -> usize {
        self.shared.registry.count()
    }

    /// Ids of all rooms, in no particular order.
    pub fn room_ids(&self) -> Vec<String> {
        self.shared.registry.ids()
    }

    /// Number of clients in a room; `None` if there is no such room.
    pub fn room_client_count(&self, room_id: &str) -> Option<usize> {
        self.shared.registry.get(room_id).map(|room| room.len())
    }

    /// Ids of the clients in a room; `None` if there is no such room.
    pub fn room_members(&self, room_id: &str) -> Option<Vec<Uuid>> {
        self.shared
            .registry
            .get(room_id)
            .map(|room| room.member_ids())
    }

    /// Sets a metadata entry on a room.
    ///
    /// Fails with [`SyncError::RoomNotFound`] if there is no such room.
    pub fn set_room_meta(
        &self,
        room_id: &str,
        key: &str,
        value: impl Into<String>,
    ) -> Result<(), SyncError> {
        let room = self
            .shared
            .registry
            .get(room_id)
            .ok_or_else(|| SyncError::RoomNotFound(room_id.to_owned()))?;
        let value = value.into();
        if let Some(cluster) = self.shared.cluster() {
            cluster.meta_set(room_id, key, &value);
        }
        room.set_meta(key, value);
        Ok(())
    }

    /// Reads a metadata entry of a room; `None` if the room or the key does not exist.
    pub fn get_room_meta(&self, room_id: &str, key: &str) -> Option<String> {
        self.shared.registry.get(room_id)?.get_meta(key)
    }

    /// The capacity a room was created with; `None` if there is no such room, `Some(None)`
    /// for a room without a limit.
    pub fn room_capacity(&self, room_id: &str) -> Option<Option<usize>> {
        Some(self.shared.registry.get(room_id)?.options().max_clients)
    }

    /// Disconnects a client, telling it `reason` (its `recv()` returns
    /// [`SyncError::Kicked`]`(reason)`). It leaves its room as any disconnecting client does:
    /// `PlayerLeft` to the others, `on_leave` once, then `on_disconnect` with
    /// [`DisconnectReason::Kicked`](crate::DisconnectReason::Kicked). The disconnect happens
    /// on the client's own task, shortly after this returns. A seat held for a resume
    /// (`resume_window`) ends at once, before this returns; a resume with its token is then
    /// refused ("seat ended: kicked").
    ///
    /// Fails with [`SyncError::ClientNotFound`] if no such client is connected.
    pub fn kick(&self, client_id: Uuid, reason: &str) -> Result<(), SyncError> {
        let Some(session) = self.shared.directory.get(client_id) else {
            // On another relay: that relay kicks it.
            return match self.shared.cluster() {
                Some(cluster) if cluster.kick(client_id, reason) => Ok(()),
                _ => Err(SyncError::ClientNotFound(client_id)),
            };
        };
        tracing::debug!(%client_id, reason, "kick");
        let reason = crate::DisconnectReason::Kicked(reason.to_owned());
        if let Some(seats) = &self.shared.seats {
            // A held seat has no connection to end: it ends here (`PlayerLeft` to its
            // room, `on_leave`, `on_disconnect`); a live one's token is refused from now on.
            if let Some(held) = seats.end(client_id, &reason) {
                super::connection::end_held(held, Some(reason), false);
                return Ok(());
            }
        }
        session.end_with(reason);
        Ok(())
    }

    /// Sends `data` to one client, as a [`ServerEvent::Broadcast`](crate::ServerEvent) whose
    /// `sender_id` is [`SERVER_ID`]. To a held seat it is queued, within the queue's budgets,
    /// and delivered on its resume.
    ///
    /// Fails with [`SyncError::ClientNotFound`], [`SyncError::PayloadTooLarge`] (over
    /// `max_payload`, which clients refuse), or [`SyncError::Backpressure`] when the
    /// client's queue is full (the message is dropped and `on_backpressure` fires).
    pub fn send_to(&self, client_id: Uuid, data: &[u8]) -> Result<(), SyncError> {
        let Some(session) = self.shared.directory.get(client_id) else {
            // On another relay: that relay queues it (and reports its backpressure).
            let cluster = self.shared.cluster();
            let frame = self.server_message(data)?;
            return match cluster {
                Some(cluster) if cluster.send_to(client_id, frame) => Ok(()),
                _ => Err(SyncError::ClientNotFound(client_id)),
            };
        };
        let frame = self.server_message(data)?;
        match session.outbox.try_send(frame) {
            Ok(()) => Ok(()),
            // Disconnecting: as good as gone.
            Err(Refused::Closed) => Err(SyncError::ClientNotFound(client_id)),
            Err(Refused::Full) => {
                if let Some(handler) = self.shared.handler() {
                    let room = session.current_room();
                    let room_id = room.as_ref().map_or("", |r| r.id());
                    report_backpressure(&*handler, &self.shared.counters, &[client_id], room_id);
                }
                Err(SyncError::Backpressure(client_id))
            }
        }
    }

    /// Sends `data` to every member of a room, as a [`ServerEvent::Broadcast`] whose
    /// `sender_id` is [`SERVER_ID`]; returns how many members it was queued for. A member
    /// whose queue is full misses it, and `on_backpressure` fires for it.
    ///
    /// Fails with [`SyncError::RoomNotFound`] or [`SyncError::PayloadTooLarge`].
    ///
    /// [`ServerEvent::Broadcast`]: crate::ServerEvent::Broadcast
    pub fn broadcast_to_room(&self, room_id: &str, data: &[u8]) -> Result<usize, SyncError> {
        let room = self
            .shared
            .registry
            .get(room_id)
            .ok_or_else(|| SyncError::RoomNotFound(room_id.to_owned()))?;
        let frame = self.server_message(data)?;
        let mut pending = Pending::default();
        let (mut delivered, dropped) = room.broadcast_all(&frame, &mut pending);
        self.shared.flush(&mut pending);
        if room.has_remote() {
            if let Some(cluster) = self.shared.cluster() {
                cluster.publish(&room, &frame);
                delivered += room.remote_len();
            }
        }
        if let Some(handler) = self.shared.handler() {
            report_backpressure(&*handler, &self.shared.counters, &dropped, room.id());
        }
        Ok(delivered)
    }

    fn server_message(&self, data: &[u8]) -> Result<bytes::Bytes, SyncError> {
        if data.len() > self.shared.config.max_payload {
            return Err(SyncError::PayloadTooLarge);
        }
        Ok(encode(&ServerFrame::Broadcast {
            sender_id: SERVER_ID,
            data,
        }))
    }

    /// What the relay knows about a connected client; `None` if it is not connected. A
    /// client whose seat is held for a resume is listed (see
    /// [`is_held`](ServerHandle::is_held)).
    pub fn client_info(&self, client_id: Uuid) -> Option<ClientInfo> {
        match self.shared.directory.get(client_id) {
            Some(session) => Some(ClientInfo::of(&session)),
            None => self.shared.cluster()?.remote_info(client_id),
        }
    }

    /// Every connected client, in no particular order (with a broker: on every relay).
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self
            .shared
            .directory
            .all()
            .iter()
            .map(|session| ClientInfo::of(session))
            .collect();
        if let Some(cluster) = self.shared.cluster() {
            all.extend(cluster.remote_infos());
        }
        all
    }

    /// Whether `client_id`'s connection dropped and its seat is held for a resume
    /// ([`resume_window`](crate::ServerBuilder::resume_window)): it is still listed and in
    /// its room, and frames for it queue until it resumes or the seat ends.
    pub fn is_held(&self, client_id: Uuid) -> bool {
        self.shared
            .seats
            .as_ref()
            .is_some_and(|seats| seats.is_held(client_id))
    }

    /// Number of connected clients (handshake completed; with a broker: on every relay;
    /// held seats included).
    pub fn client_count(&self) -> usize {
        self.shared.directory.len() + self.shared.cluster().map_or(0, |c| c.remote_count())
    }

    /// The exact, asynchronous variants of the room calls, which ask the broker; `None` on
    /// a relay that shares its rooms with no other (no [`ServerBuilder::redis`], or before
    /// [`Server::run`]).
    ///
    /// [`ServerBuilder::redis`]: crate::ServerBuilder::redis
    /// [`Server::run`]: crate::Server::run
    #[cfg(feature = "redis")]
    pub fn cluster(&self) -> Option<crate::cluster::ClusterHandle> {
        Some(crate::cluster::ClusterHandle {
            shared: Arc::clone(&self.shared),
            cluster: Arc::clone(self.shared.cluster()?),
        })
    }

    /// A snapshot of the server's counters. Cheap: a few atomic loads and two map sizes.
    pub fn stats(&self) -> Stats {
        let mut stats = self
            .shared
            .counters
            .snapshot(self.shared.directory.len(), self.shared.registry.count());
        if let Some(cluster) = self.shared.cluster() {
            let totals = cluster.stats();
            self.shared.counters.broker_totals(totals);
            let [published, received, dropped, lost, disconnects] = totals;
            stats.broker_published = published;
            stats.broker_received = received;
            stats.broker_dropped = dropped;
            stats.broker_lost = lost;
            stats.broker_disconnects = disconnects;
        }
        stats
    }

    /// The address the server is listening on (with the real port when bound to port 0);
    /// `None` before [`Server::run`](crate::Server::run).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// Stops the server: stops accepting, tells every client (their `recv()` returns
    /// [`SyncError::ConnectionClosed`]), fires `on_leave` for every room member, and returns
    /// once every connection is closed. A client that neither reads its farewell nor closes
    /// is given up on after about two seconds. Calling it again, or from several handles,
    /// is fine.
    ///
    /// [`drain`](ServerHandle::drain) is the patient form.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// Stops gracefully: stops accepting, tells every client the server is going away
    /// (after the frames already queued for it, which get up to `timeout` to reach it), fires
    /// `on_leave` and `on_disconnect` for everyone, and returns once every connection is
    /// closed. Returns `true` if that happened within `timeout`; otherwise the connections
    /// still open are closed at once (their unsent frames are lost) and it returns `false`.
    ///
    /// Use it before a deploy restarts the relay; [`shutdown`](ServerHandle::shutdown) is the
    /// immediate form (about two seconds of grace per connection).
    pub async fn drain(&self, timeout: Duration) -> bool {
        // A second drain (or one after `shutdown`) keeps the first grace period.
        let _ = self.shared.drain_grace.set(timeout);
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let finished = tokio::time::timeout(timeout, self.shared.tasks.wait())
            .await
            .is_ok();
        if !finished {
            tracing::warn!(
                ?timeout,
                "drain timed out: closing the remaining connections"
            );
            self.shared.abort.cancel();
            self.shared.tasks.wait().await;
        }
        finished
    }
}

/// Emits a stats snapshot as a tracing event every `every`, until shutdown.
pub(crate) async fn report_stats(handle: ServerHandle, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = handle.shared.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let stats = handle.stats();
        tracing::info!(
            target: "ghost_sync::stats",
            connections = stats.connections,
            connections_total = stats.connections_total,
            rooms = stats.rooms,
            frames_in = stats.frames_in,
            bytes_in = stats.bytes_in,
            frames_out = stats.frames_out,
            bytes_out = stats.bytes_out,
            frames_dropped = stats.frames_dropped,
            disconnects = ?stats.disconnects,
            "stats"
        );
    }
}
