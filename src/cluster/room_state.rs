//! A room's state across relays: Redis keeps it, and every relay keeps a copy that follows
//! the feed, whether or not it has members in the room, so that a joiner anywhere gets the
//! whole state in its snapshot (and a relay that starts, or resyncs, loads it).
//!
//! A change made here applies here at once (its members see it without a broker round
//! trip) and goes to the broker, which numbers it on the feed; the other relays apply it when
//! they read it there. Two relays changing one key at once would each end with the other's
//! value, so a relay skips another's change to a key while a change of its own to that key
//! is on its way: the other's came first in the feed's order, and its own, coming after,
//! is the one every relay and the broker end with.

use super::backplane::Op;
use super::Cluster;
use crate::outbox::Pending;
use crate::protocol::{encode, ServerFrame};
use crate::room::{Dropped, Room, RoomStateEntry, StateRefused};
use crate::server::Shared;
use crate::sync::lock;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Room → key → changes this relay made and has not yet read back on the feed.
pub(super) type Unechoed = HashMap<Arc<str>, HashMap<Box<str>, u32>>;

/// What a local change of a room's state returns: `Ok(None)` when nothing changed.
type Applied = Result<Option<Dropped>, StateRefused>;

impl Cluster {
    /// Applies a change of `room`'s state made here with `apply` (the room's `set_state`)
    /// and sends it to the broker, under the lock of the changes on their way: two changes
    /// made here at once reach the broker in the order they applied here, and a change from
    /// another relay read meanwhile (older in the feed's order) waits, then finds this one
    /// on its way and does not overwrite it.
    pub(crate) fn set_state(
        &self,
        room: &Room,
        owner: Uuid,
        key: &str,
        value: &[u8],
        apply: impl FnOnce() -> Applied,
    ) -> Applied {
        let mut unechoed = lock(&self.unechoed);
        let applied = apply();
        // A room the broker deleted keeps none of it (see `room_deleted_on_broker`): kept here, for
        // the members still in it, and not counted as on its way.
        if matches!(applied, Ok(Some(_)))
            && !room.is_deleted()
            && self.submit(Op::SetState {
                room: Arc::clone(room.id()),
                origin: self.origin,
                owner,
                key: key.to_owned(),
                value: Bytes::copy_from_slice(value),
            })
        {
            let keys = unechoed.entry(Arc::clone(room.id())).or_default();
            match keys.get_mut(key) {
                Some(count) => *count += 1,
                None => {
                    keys.insert(Box::from(key), 1);
                }
            }
        }
        applied
    }

    /// Counts a change of ours to `room`'s `key` as read back on the feed.
    fn echoed(&self, room: &Arc<str>, key: &str) {
        let mut unechoed = lock(&self.unechoed);
        let Some(keys) = unechoed.get_mut(&**room) else {
            return;
        };
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
        if keys.is_empty() {
            unechoed.remove(&**room);
        }
    }

    /// The dispatcher's half: a change read on the feed, made on the relay run `origin`.
    /// Ours was applied when it was made; another relay's applies here (to the copy, and to
    /// the members here) unless a change of ours to the same key is still on its way.
    pub(super) fn state_read(
        &self,
        shared: &Shared,
        room: &Room,
        origin: u64,
        entry: &RoomStateEntry,
    ) -> Option<Dropped> {
        if origin == self.origin {
            self.echoed(room.id(), &entry.key);
            return None;
        }
        // Held while it applies: a change made here meanwhile waits, and comes after it.
        let unechoed = lock(&self.unechoed);
        if unechoed
            .get(&**room.id())
            .is_some_and(|keys| keys.contains_key(&*entry.key))
        {
            return None;
        }
        let mut pending = Pending::default();
        let dropped = apply_entry(shared, room, entry, &mut pending);
        drop(unechoed);
        shared.flush(&mut pending);
        dropped
    }

    /// A resync's half: makes `room`'s copy of the state the broker's `entries`, telling the
    /// members here what changed.
    pub(super) fn state_reloaded(
        &self,
        shared: &Shared,
        room: &Room,
        entries: Vec<RoomStateEntry>,
    ) -> Dropped {
        let mut pending = Pending::default();
        let mut dropped = Dropped::default();
        let have = room.state_entries();
        for gone in have
            .iter()
            .filter(|e| !entries.iter().any(|kept| kept.key == e.key))
        {
            let deleted = RoomStateEntry {
                value: Bytes::new(),
                ..gone.clone()
            };
            dropped.extend(apply_entry(shared, room, &deleted, &mut pending).unwrap_or_default());
        }
        for entry in entries.iter().filter(|e| !have.contains(e)) {
            dropped.extend(apply_entry(shared, room, entry, &mut pending).unwrap_or_default());
        }
        shared.flush(&mut pending);
        dropped
    }

    /// The broker deleted `room`, the generation this relay has if any (the dispatcher
    /// marked it deleted first): a change of ours to it still on its way reaches the broker
    /// after the delete, which keeps none of it, so it will never be read back, and must not
    /// hold off another relay's changes to a later room of the same id.
    pub(super) fn room_deleted_on_broker(&self, room: &str) {
        lock(&self.unechoed).remove(room);
    }

    /// Forgets every change of ours still on its way (a resync reloads what reached the
    /// broker).
    pub(super) fn forget_unechoed(&self) {
        lock(&self.unechoed).clear();
    }
}

/// Applies another relay's change (or the broker's copy) to `room` and queues it for the
/// members here; `None` if it changed nothing or is over this relay's limits.
fn apply_entry(
    shared: &Shared,
    room: &Room,
    entry: &RoomStateEntry,
    pending: &mut Pending,
) -> Option<Dropped> {
    let frame = encode(&ServerFrame::State {
        owner: entry.owner,
        key: &entry.key,
        value: &entry.value,
    });
    let limits = shared.config.room_state;
    match room.set_state(
        entry.owner,
        &entry.key,
        &entry.value,
        &frame,
        limits,
        pending,
    ) {
        Ok(dropped) => dropped,
        Err(refused) => {
            tracing::warn!(room_id = %room.id(), why = %refused.message(room.id()), "a state change from another relay is over this relay's limits: not kept here");
            None
        }
    }
}
