//! The room registry: the map from room id to room, shared by connections and the handle.
//!
//! Every method takes the map lock for a map operation only and returns; callers fire hooks
//! after it is released.

use crate::room::{Room, RoomOptions};
use crate::sync::{read, write};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// All live (not deleted) rooms.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: RwLock<HashMap<Arc<str>, Arc<Room>>>,
}

impl Registry {
    /// Adds a room; `false` if the id is taken.
    pub(crate) fn create(&self, id: &str, options: RoomOptions) -> bool {
        let mut rooms = write(&self.rooms);
        if rooms.contains_key(id) {
            return false;
        }
        let room = Arc::new(Room::new(id, options));
        rooms.insert(Arc::clone(room.id()), room);
        true
    }

    /// Removes a room from the map and marks it deleted; its members stay connected.
    pub(crate) fn delete(&self, id: &str) -> Option<Arc<Room>> {
        let room = write(&self.rooms).remove(id)?;
        room.mark_deleted();
        Some(room)
    }

    /// The room with this id, created (with `options`) if there is none; `true` with it if
    /// it was created. A backplane mirrors rooms created on other relays through it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn get_or_create(&self, id: &str, options: RoomOptions) -> (Arc<Room>, bool) {
        let mut rooms = write(&self.rooms);
        if let Some(room) = rooms.get(id) {
            return (Arc::clone(room), false);
        }
        let room = Arc::new(Room::new(id, options));
        rooms.insert(Arc::clone(room.id()), Arc::clone(&room));
        (room, true)
    }

    /// Deletes the room with this id if it is `room` itself (not a later room with the same
    /// id), as [`delete`](Registry::delete) does.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn delete_this(&self, room: &Arc<Room>) -> bool {
        let mut rooms = write(&self.rooms);
        match rooms.get(room.id().as_ref()) {
            Some(current) if Arc::ptr_eq(current, room) => {
                rooms.remove(room.id().as_ref());
                room.mark_deleted();
                true
            }
            _ => false,
        }
    }

    /// Every live room.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        read(&self.rooms).values().cloned().collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Room>> {
        read(&self.rooms).get(id).cloned()
    }

    pub(crate) fn count(&self) -> usize {
        read(&self.rooms).len()
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        read(&self.rooms).keys().map(|k| k.to_string()).collect()
    }
}
