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
    /// The rooms gauge, and the fan-out series each new room records into.
    #[cfg(feature = "metrics")]
    series: crate::telemetry::RoomSeries,
}

/// A server gone takes its rooms out of the rooms gauge, which the whole process shares (a
/// restarted or a second server would otherwise count them forever).
#[cfg(feature = "metrics")]
impl Drop for Registry {
    fn drop(&mut self) {
        let rooms = match self.rooms.get_mut() {
            Ok(rooms) => rooms.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        };
        self.series.rooms.decrement(rooms as f64);
    }
}

impl Registry {
    /// An empty registry whose rooms record their fan-out per room (`room_labels`) or in one
    /// series.
    #[cfg(feature = "metrics")]
    pub(crate) fn with_room_labels(room_labels: bool) -> Self {
        Self {
            rooms: RwLock::default(),
            series: crate::telemetry::RoomSeries::register(room_labels),
        }
    }

    /// A new room of this registry.
    fn room(&self, id: &str, options: RoomOptions) -> Arc<Room> {
        let room = Room::new(id, options);
        #[cfg(feature = "metrics")]
        let room = room.with_fanout(self.series.fanout_for(id));
        Arc::new(room)
    }

    /// The rooms gauge follows a room added (`1`) or removed (`-1`): moved by the change,
    /// not set to the count, so that two changes racing cannot leave it wrong; after the
    /// map's lock is released, since a recorder is the application's code.
    fn counted(&self, change: i8) {
        #[cfg(feature = "metrics")]
        self.series.rooms.increment(f64::from(change));
        #[cfg(not(feature = "metrics"))]
        let _ = change;
    }

    /// Adds a room; `false` if the id is taken.
    pub(crate) fn create(&self, id: &str, options: RoomOptions) -> bool {
        if read(&self.rooms).contains_key(id) {
            return false;
        }
        // Made outside the lock: it may register a metric series with the recorder.
        let room = self.room(id, options);
        let mut rooms = write(&self.rooms);
        if rooms.contains_key(id) {
            return false;
        }
        rooms.insert(Arc::clone(room.id()), room);
        drop(rooms);
        self.counted(1);
        true
    }

    /// Removes a room from the map and marks it deleted; its members stay connected.
    pub(crate) fn delete(&self, id: &str) -> Option<Arc<Room>> {
        let room = write(&self.rooms).remove(id)?;
        room.mark_deleted();
        self.counted(-1);
        Some(room)
    }

    /// The room with this id, created (with `options`) if there is none; `true` with it if
    /// it was created. A backplane mirrors rooms created on other relays through it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn get_or_create(&self, id: &str, options: RoomOptions) -> (Arc<Room>, bool) {
        if let Some(room) = read(&self.rooms).get(id) {
            return (Arc::clone(room), false);
        }
        // Made outside the lock: it may register a metric series with the recorder.
        let room = self.room(id, options);
        let mut rooms = write(&self.rooms);
        if let Some(room) = rooms.get(id) {
            return (Arc::clone(room), false);
        }
        rooms.insert(Arc::clone(room.id()), Arc::clone(&room));
        drop(rooms);
        self.counted(1);
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
                drop(rooms);
                self.counted(-1);
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
