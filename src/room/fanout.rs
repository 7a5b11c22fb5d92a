//! Fan-out, the hot path: a frame, encoded once, queued for the members of a room under one
//! read lock of them, each a reference-count increment of the same buffer; `Pending` writes
//! the queues once the lock is released.

use super::{Dropped, Member, Room};
use crate::outbox::{Pending, Refused};
use crate::sync::read;
use bytes::{Bytes, BytesMut};
use uuid::Uuid;

impl Room {
    /// Queues `frame` for every member but `from`; `pending` then writes them. Returns how
    /// many it was for, and who did not get it; the caller records the fan-out
    /// ([`fanned_out`](Room::fanned_out)) once it holds no lock (its `pending` is behind one).
    pub(crate) fn broadcast(
        &self,
        from: Uuid,
        frame: &Bytes,
        pending: &mut Pending,
    ) -> (usize, Dropped) {
        let members = read(&self.members);
        let dropped = relay(&members, from, frame, pending);
        // Every member but the sender: a client only broadcasts to the room it is in. (A
        // frame from another relay comes through `broadcast_all`.)
        (members.len().saturating_sub(1), dropped)
    }

    /// Queues `frame` for every member (`pending` then writes them); returns how many got
    /// it, and who did not.
    pub(crate) fn broadcast_all(&self, frame: &Bytes, pending: &mut Pending) -> (usize, Dropped) {
        let members = read(&self.members);
        // No member has the server's (nil) id, so nobody is skipped.
        let dropped = relay(&members, Uuid::nil(), frame, pending);
        let recipients = members.len();
        drop(members);
        self.fanned_out(recipients);
        (recipients - dropped.len(), dropped)
    }

    /// [`broadcast`](Room::broadcast) for a keyed frame, the latest value of `from`'s `key`:
    /// a member whose queue is full gets it in the place of the older value still queued
    /// for it, if any, instead of losing it (see `Outbox::push_keyed`). Who did not get it
    /// is only who had no older value to replace. Returns how many it was for, as
    /// `broadcast` does.
    pub(crate) fn broadcast_keyed(
        &self,
        from: Uuid,
        key: u32,
        frame: &Bytes,
        pending: &mut Pending,
    ) -> (usize, Dropped) {
        // The sender is a member here, or (a frame from another relay) not: counted either way.
        relay_keyed(&read(&self.members), from, key, frame, pending)
    }
}

/// Queues `frame` for every member but `from`, to be written by `pending`'s flush.
pub(super) fn relay(
    members: &[Member],
    from: Uuid,
    frame: &Bytes,
    pending: &mut Pending,
) -> Dropped {
    let mut dropped = Dropped::new();
    for member in members {
        if member.id == from {
            continue;
        }
        // A closed queue means that member is already disconnecting: nothing to report.
        if let Err(Refused::Full) = pending.push(&member.outbox, frame.clone()) {
            dropped.push(member.id);
        }
    }
    dropped
}

/// [`relay`] for a keyed frame: the latest value of `from`'s `key`.
fn relay_keyed(
    members: &[Member],
    from: Uuid,
    key: u32,
    frame: &Bytes,
    pending: &mut Pending,
) -> (usize, Dropped) {
    let mut dropped = Dropped::new();
    let mut recipients = 0;
    for member in members {
        if member.id == from {
            continue;
        }
        recipients += 1;
        if let Err(Refused::Full) = pending.push_keyed(&member.outbox, frame.clone(), from, key) {
            dropped.push(member.id);
        }
    }
    (recipients, dropped)
}

/// `announce` (a `PlayerLeft`) followed by the empty `State`s of the entries its member
/// owned, as one queue entry.
pub(super) fn followed_by(announce: &Bytes, deleted: BytesMut) -> Bytes {
    if deleted.is_empty() {
        return announce.clone();
    }
    let mut frames = BytesMut::with_capacity(announce.len() + deleted.len());
    frames.extend_from_slice(announce);
    frames.extend_from_slice(&deleted);
    frames.freeze()
}

/// [`relay`], then writes the queues once `members`' lock is released.
pub(super) fn relay_now<G: std::ops::Deref<Target = Vec<Member>>>(
    members: G,
    from: Uuid,
    frame: &Bytes,
) -> Dropped {
    let mut pending = Pending::default();
    let dropped = relay(&members, from, frame, &mut pending);
    drop(members);
    pending.flush();
    dropped
}
