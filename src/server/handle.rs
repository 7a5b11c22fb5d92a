//! [`ServerHandle`]: manage rooms and stop the server at runtime.
//!
//! Every method is synchronous except `shutdown`, takes at most one short lock and fires
//! hooks after releasing it, so any method may be called from inside any hook.

use super::Shared;
use crate::error::SyncError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

/// A cheap, cloneable handle to a server (`Clone + Send + Sync`).
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
        if !self.shared.registry.create(room_id) {
            return Err(SyncError::RoomAlreadyExists(room_id.to_owned()));
        }
        tracing::debug!(room_id, "room created");
        if let Some(handler) = self.shared.handler() {
            handler.on_room_create(room_id);
        }
        Ok(())
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
        tracing::debug!(room_id, "room deleted");
        if let Some(handler) = self.shared.handler() {
            handler.on_room_delete(room_id);
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
        room.set_meta(key, value.into());
        Ok(())
    }

    /// Reads a metadata entry of a room; `None` if the room or the key does not exist.
    pub fn get_room_meta(&self, room_id: &str, key: &str) -> Option<String> {
        self.shared.registry.get(room_id)?.get_meta(key)
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
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}
