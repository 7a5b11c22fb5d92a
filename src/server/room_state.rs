//! The [`ServerHandle`]'s room-state calls: the server sets entries of a room's state (owned
//! by nobody, so they outlive every member) and reads them back.

use super::ServerHandle;
use crate::error::SyncError;
use crate::outbox::Pending;
use crate::protocol::{encode, ServerFrame};
use crate::room::{check_key, RoomStateEntry};
use crate::session::report_backpressure;
use crate::SERVER_ID;

impl ServerHandle {
    /// Sets the entry `key` of a room's state to `value`, owned by the server
    /// ([`SERVER_ID`]): every member gets a `ServerEvent::State`, every later joiner gets
    /// the entry after its member list, and it stays until the server changes or deletes
    /// it (members leaving do not). An empty `value` deletes the entry (deleting a missing
    /// one does nothing and tells nobody). A member whose queue is full misses the change,
    /// and `on_backpressure` fires for it. On relays sharing rooms (feature `redis`) it
    /// applies here at once, and the broker stores it and passes it to every other relay.
    ///
    /// ```
    /// # async fn demo(handle: ghost_sync::ServerHandle) -> Result<(), ghost_sync::SyncError> {
    /// handle.set_room_state("lobby", "map", b"dust")?;
    /// assert_eq!(&handle.room_state("lobby")?[0].value[..], b"dust");
    /// handle.set_room_state("lobby", "map", b"")?; // deleted
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails with [`SyncError::RoomNotFound`]; [`SyncError::InvalidRequest`] for a key that
    /// is empty or longer than 255 bytes; [`SyncError::PayloadTooLarge`] when the key and
    /// value together exceed `max_payload` (clients would refuse the frame); and
    /// [`SyncError::RoomStateFull`] past `room_state_limits` (the entry keeps its old value).
    pub fn set_room_state(&self, room_id: &str, key: &str, value: &[u8]) -> Result<(), SyncError> {
        let room = self
            .shared
            .registry
            .get(room_id)
            .ok_or_else(|| SyncError::RoomNotFound(room_id.to_owned()))?;
        check_key(key).map_err(|refused| refused.into_error(room_id))?;
        if key.len() + value.len() > self.shared.config.max_payload {
            return Err(SyncError::PayloadTooLarge);
        }
        let frame = encode(&ServerFrame::State {
            owner: SERVER_ID,
            key,
            value,
        });
        let limits = self.shared.config.room_state;
        let mut pending = Pending::default();
        let mut apply = || room.set_state(SERVER_ID, key, value, &frame, limits, &mut pending);
        // In a cluster the broker keeps it too, and every other relay gets it.
        let set = match self.shared.cluster() {
            Some(cluster) => cluster.set_state(&room, SERVER_ID, key, value, apply),
            None => apply(),
        };
        self.shared.flush(&mut pending);
        let dropped = match set {
            Ok(Some(dropped)) => dropped,
            Ok(None) => return Ok(()),
            Err(refused) => return Err(refused.into_error(room_id)),
        };
        if let Some(handler) = self.shared.handler() {
            report_backpressure(&*handler, &self.shared.counters, &dropped, room.id());
        }
        Ok(())
    }

    /// The entries of a room's state, in the order they were first set (the order a joiner
    /// gets them in).
    ///
    /// Fails with [`SyncError::RoomNotFound`].
    pub fn room_state(&self, room_id: &str) -> Result<Vec<RoomStateEntry>, SyncError> {
        let room = self
            .shared
            .registry
            .get(room_id)
            .ok_or_else(|| SyncError::RoomNotFound(room_id.to_owned()))?;
        Ok(room.state_entries())
    }
}
