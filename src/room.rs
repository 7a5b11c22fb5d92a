//! A room: its members' write queues, its metadata, and the fan-out that relays a frame to them.
//!
//! Fan-out is the hot path. A frame is encoded once by the caller and shared: each recipient
//! gets a clone of the same [`Bytes`] (a reference-count increment) through a non-blocking
//! `try_send`, all under one read lock per frame. A full queue drops the frame for that member
//! only; the caller learns who, and fires `on_backpressure` after the lock is released.

use crate::sync::{lock, read, write};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc::{self, error::TrySendError};
use uuid::Uuid;

/// The sending end of a client's bounded write queue.
pub(crate) type Outbox = mpsc::Sender<Bytes>;

/// One member of a room: who it is and where its frames go.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) id: Uuid,
    pub(crate) outbox: Outbox,
}

/// Members whose queue was full when a frame was relayed to them.
pub(crate) type Dropped = Vec<Uuid>;

/// The room was deleted before the member could be added.
#[derive(Debug)]
pub(crate) struct RoomDeleted;

/// A room created through the `ServerHandle`.
#[derive(Debug)]
pub(crate) struct Room {
    id: Arc<str>,
    members: RwLock<Vec<Member>>,
    meta: Mutex<HashMap<String, String>>,
    /// Soft delete: members keep their connection, but the room refuses new joins and relays.
    deleted: AtomicBool,
    /// Admits joins one at a time, so that an `on_join` capacity check and the insert that
    /// follows it are atomic. It guards no data and no handle method takes it, so a hook that
    /// calls back into the handle cannot deadlock on it.
    turnstile: Arc<tokio::sync::Mutex<()>>,
}

impl Room {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: Arc::from(id),
            members: RwLock::new(Vec::new()),
            meta: Mutex::new(HashMap::new()),
            deleted: AtomicBool::new(false),
            turnstile: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub(crate) fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub(crate) fn turnstile(&self) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.turnstile)
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.members).len()
    }

    pub(crate) fn member_ids(&self) -> Vec<Uuid> {
        read(&self.members).iter().map(|m| m.id).collect()
    }

    /// Adds `member`: queues `joined` (its `Joined` event) for it first, so that no room
    /// traffic can reach it before its confirmation, then tells the others with `announce`
    /// (an encoded `PlayerJoined`).
    pub(crate) fn join(
        &self,
        member: Member,
        joined: &Bytes,
        announce: &Bytes,
    ) -> Result<Dropped, RoomDeleted> {
        let mut members = write(&self.members);
        // Checked under the write lock: a delete that raced this join either happened before
        // (refused here) or after (the member is in the room like any other when it was deleted).
        if self.is_deleted() {
            return Err(RoomDeleted);
        }
        let mut dropped = relay(&members, member.id, announce);
        if let Err(TrySendError::Full(_)) = member.outbox.try_send(joined.clone()) {
            dropped.push(member.id);
        }
        members.push(member);
        Ok(dropped)
    }

    /// Removes `id` and tells the rest with `announce` (an encoded `PlayerLeft`; empty to
    /// tell nobody); `None` if `id` was not a member.
    pub(crate) fn leave(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        let mut members = write(&self.members);
        let at = members.iter().position(|m| m.id == id)?;
        members.swap_remove(at);
        if announce.is_empty() {
            return Some(Dropped::new());
        }
        Some(relay(&members, id, announce))
    }

    /// Relays `frame` to every member but `from`.
    pub(crate) fn broadcast(&self, from: Uuid, frame: &Bytes) -> Dropped {
        relay(&read(&self.members), from, frame)
    }

    pub(crate) fn set_meta(&self, key: &str, value: String) {
        lock(&self.meta).insert(key.to_owned(), value);
    }

    pub(crate) fn get_meta(&self, key: &str) -> Option<String> {
        lock(&self.meta).get(key).cloned()
    }
}

fn relay(members: &[Member], from: Uuid, frame: &Bytes) -> Dropped {
    let mut dropped = Dropped::new();
    for member in members {
        if member.id == from {
            continue;
        }
        // A closed queue means that member is already disconnecting: nothing to report.
        if let Err(TrySendError::Full(_)) = member.outbox.try_send(frame.clone()) {
            dropped.push(member.id);
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u128, capacity: usize) -> (Member, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Member {
                id: Uuid::from_u128(n),
                outbox: tx,
            },
            rx,
        )
    }

    #[test]
    fn a_broadcast_shares_one_buffer_and_skips_the_sender() {
        let room = Room::new("r");
        let (a, mut ra) = member(1, 4);
        let (b, mut rb) = member(2, 4);
        room.join(a, &Bytes::new(), &Bytes::new()).unwrap();
        room.join(b, &Bytes::new(), &Bytes::new()).unwrap();
        while ra.try_recv().is_ok() {} // a's Joined, then b's PlayerJoined
        while rb.try_recv().is_ok() {} // b's Joined
        let frame = Bytes::from_static(b"frame");
        assert!(room.broadcast(Uuid::from_u128(1), &frame).is_empty());
        let got = rb.try_recv().unwrap();
        assert_eq!(got.as_ptr(), frame.as_ptr(), "same buffer, not a copy");
        assert!(
            ra.try_recv().is_err(),
            "the sender does not get its own frame"
        );
    }

    #[test]
    fn a_full_queue_drops_for_that_member_only() {
        let room = Room::new("r");
        let (a, _ra) = member(1, 1);
        let (b, mut rb) = member(2, 8);
        let (c, _rc) = member(3, 8);
        room.join(a, &Bytes::new(), &Bytes::new()).unwrap();
        room.join(b, &Bytes::new(), &Bytes::new()).unwrap();
        room.join(c, &Bytes::new(), &Bytes::new()).unwrap();
        // a's single slot already holds b's PlayerJoined.
        let dropped = room.broadcast(Uuid::from_u128(3), &Bytes::from_static(b"x"));
        assert_eq!(dropped, vec![Uuid::from_u128(1)]);
        while rb.try_recv().is_ok() {}
    }

    #[test]
    fn a_deleted_room_refuses_joins() {
        let room = Room::new("r");
        room.mark_deleted();
        let (a, _ra) = member(1, 1);
        assert!(room.join(a, &Bytes::new(), &Bytes::new()).is_err());
        assert_eq!(room.len(), 0);
    }
}
