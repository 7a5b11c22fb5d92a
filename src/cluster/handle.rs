//! [`ClusterHandle`]: the exact, asynchronous variants of the handle's room calls, which
//! wait for the broker's answer instead of reading this relay's mirror.

use super::answer;
use crate::error::SyncError;
use crate::handler::guarded;
use crate::room::RoomOptions;
use crate::server::Shared;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What [`ServerHandle::cluster`](crate::ServerHandle::cluster) gives a relay that shares
/// its rooms over a broker: calls that ask the broker and wait for its answer (one round
/// trip), for when a caller needs the exact state of the whole cluster rather than this
/// relay's view of it, which may be one pub/sub hop behind.
///
/// ```no_run
/// # async fn demo(handle: ghost_sync::ServerHandle) -> Result<(), ghost_sync::SyncError> {
/// if let Some(cluster) = handle.cluster() {
///     // Exactly one relay of the cluster gets `Ok` here; the others `RoomAlreadyExists`.
///     cluster.create_room("final").await?;
///     let seated = cluster.room_client_count("final").await?;
///     # let _ = seated;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClusterHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cluster: Arc<super::Cluster>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("relay", &self.relay_name())
            .finish()
    }
}

fn broker(err: super::BrokerError) -> SyncError {
    SyncError::Broker(err.0)
}

impl ClusterHandle {
    /// This relay's name in the cluster.
    pub fn relay_name(&self) -> &str {
        &self.cluster.relay
    }

    /// Creates a room, as the broker decides: exactly one of several concurrent creates of
    /// one id succeeds, on whichever relays they run. Fires `on_room_create` on this relay.
    ///
    /// Fails with [`SyncError::RoomAlreadyExists`], or [`SyncError::Broker`] if the broker
    /// did not answer.
    pub async fn create_room(&self, room_id: &str) -> Result<(), SyncError> {
        self.create_room_with(room_id, RoomOptions::default()).await
    }

    /// [`create_room`](ClusterHandle::create_room) with options.
    pub async fn create_room_with(
        &self,
        room_id: &str,
        options: RoomOptions,
    ) -> Result<(), SyncError> {
        let (tx, rx) = oneshot::channel();
        self.cluster
            .room_created(room_id, options.max_clients, Some(tx));
        if !answer(rx).await.map_err(broker)? {
            return Err(SyncError::RoomAlreadyExists(room_id.to_owned()));
        }
        // The feed may have brought it here already; otherwise it is here from now on.
        self.shared.registry.get_or_create(room_id, options);
        tracing::debug!(room_id, "room created in the cluster");
        if let Some(handler) = self.shared.handler() {
            guarded("on_room_create", || handler.on_room_create(room_id));
        }
        Ok(())
    }

    /// Soft-deletes a room on every relay, as the broker decides; `Ok(false)` if the broker
    /// had no such room. Fires `on_room_delete` on this relay.
    pub async fn delete_room(&self, room_id: &str) -> Result<bool, SyncError> {
        let (tx, rx) = oneshot::channel();
        self.cluster.room_deleted(room_id, Some(tx));
        if !answer(rx).await.map_err(broker)? {
            return Ok(false);
        }
        if let Some(room) = self.shared.registry.get(room_id) {
            self.shared.registry.delete_this(&room);
        }
        if let Some(handler) = self.shared.handler() {
            guarded("on_room_delete", || handler.on_room_delete(room_id));
        }
        Ok(true)
    }

    /// The number of members of a room on every relay, as the broker counts them now;
    /// `None` if the broker has no such room.
    pub async fn room_client_count(&self, room_id: &str) -> Result<Option<usize>, SyncError> {
        let (tx, rx) = oneshot::channel();
        self.cluster.submit(super::Op::CountMembers {
            room: Arc::from(room_id),
            answer: tx,
        });
        answer(rx).await.map_err(broker)
    }
}
