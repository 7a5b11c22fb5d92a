//! A room: its members' write queues, its metadata, and the fan-out that relays a frame to them.
//!
//! Fan-out is the hot path. A frame is encoded once by the caller and shared: each recipient
//! gets a clone of the same [`Bytes`] (a reference-count increment) pushed on its queue, all
//! under one read lock per frame. The queues are written after the lock is released, by the
//! caller's [`Pending`] flush: the relaying task writes each recipient once per batch of
//! frames. A full queue drops the frame for that member only; the caller learns who, and
//! fires `on_backpressure` after the lock is released.
//!
//! The room's state (`room_state.rs`, a child module) lives behind its own lock, taken after
//! the members' (and after the remote list's): a set holds the members' read lock while it
//! changes the store and queues the change, and a join holds their write lock while it takes
//! its snapshot, so a joiner sees each change exactly once, in its snapshot or live after it.

use crate::outbox::{Outbox, Pending, Refused};
use crate::protocol::{encode_into, encode_members, ServerFrame};
use crate::sync::{lock, read, write};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

// The state's store and the room's calls on it; a child module, for the room's fields.
#[path = "room_state.rs"]
mod state;

use state::RoomState;
pub use state::RoomStateEntry;
#[cfg(test)]
pub(crate) use state::STATE_FRAME_OVERHEAD;
pub(crate) use state::{check_key, StateLimits};

/// One member of a room: who it is and where its frames go.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) id: Uuid,
    pub(crate) outbox: Outbox,
}

/// Members whose queue was full when a frame was relayed to them.
pub(crate) type Dropped = Vec<Uuid>;

/// Why a member could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinRefused {
    /// The room was deleted before the member could be added.
    Deleted,
    /// The room holds `max_clients` members.
    Full,
}

/// Options of a room, for
/// [`ServerHandle::create_room_with`](crate::ServerHandle::create_room_with).
///
/// ```
/// use ghost_sync::RoomOptions;
///
/// let duel = RoomOptions { max_clients: Some(2), ..RoomOptions::default() };
/// # let _ = duel;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomOptions {
    /// Most members at once; a join beyond it is refused with `"room full: <id>"`. Checked
    /// and applied under the room's lock, so concurrent joins can never overfill the room.
    /// `None` (the default): no limit.
    pub max_clients: Option<usize>,
}

/// A room created through the `ServerHandle`.
#[derive(Debug)]
pub(crate) struct Room {
    id: Arc<str>,
    options: RoomOptions,
    members: RwLock<Vec<Member>>,
    meta: Mutex<HashMap<String, String>>,
    /// The room's state; `None` until its first entry (and again once it holds none).
    state: Mutex<Option<Box<RoomState>>>,
    /// Soft delete: members keep their connection, but the room refuses new joins and relays.
    deleted: AtomicBool,
    /// Admits joins one at a time, so that an `on_join` capacity check and the insert that
    /// follows it are atomic. It guards no data and no handle method takes it, so a hook that
    /// calls back into the handle cannot deadlock on it.
    turnstile: Arc<tokio::sync::Mutex<()>>,
    /// With a backplane: the members on other relays (ids only; their frames reach them
    /// through the broker), and their number, which the broadcast path reads without a lock
    /// to decide whether a frame must be published at all.
    remote: RwLock<Vec<Uuid>>,
    remote_len: AtomicUsize,
    /// With a backplane: the generation the broker gave this room when it was created (0
    /// until it is known), which tells this room from a later one with the same id.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    generation: AtomicU64,
    /// With a backplane: the sequence number of the last frame this relay published to the
    /// room, so that receivers notice frames the broker lost.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    published: AtomicU64,
    /// Where this room's broadcasts record their number of recipients: the server's one
    /// series, or this room's own with `metrics_room_labels` (see the registry).
    #[cfg(feature = "metrics")]
    fanout: ::metrics::Histogram,
}

impl Room {
    pub(crate) fn new(id: &str, options: RoomOptions) -> Self {
        Self {
            id: Arc::from(id),
            options,
            members: RwLock::new(Vec::new()),
            meta: Mutex::new(HashMap::new()),
            state: Mutex::new(None),
            deleted: AtomicBool::new(false),
            turnstile: Arc::new(tokio::sync::Mutex::new(())),
            remote: RwLock::new(Vec::new()),
            remote_len: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            published: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            fanout: ::metrics::Histogram::noop(),
        }
    }

    /// The room with its broadcasts recorded in `fanout`.
    #[cfg(feature = "metrics")]
    pub(crate) fn with_fanout(mut self, fanout: ::metrics::Histogram) -> Self {
        self.fanout = fanout;
        self
    }

    /// One broadcast reached `recipients` members here: recorded once the members' lock is
    /// released, since a recorder is the application's code.
    pub(crate) fn fanned_out(&self, recipients: usize) {
        #[cfg(feature = "metrics")]
        self.fanout.record(recipients as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = recipients;
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

    /// Members on this relay and, with a backplane, on the others.
    pub(crate) fn len(&self) -> usize {
        read(&self.members).len() + self.remote_len.load(Ordering::Acquire)
    }

    /// Whether some member sits on another relay: the broadcast path publishes only then.
    pub(crate) fn has_remote(&self) -> bool {
        self.remote_len.load(Ordering::Acquire) > 0
    }

    /// Members on other relays.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remote_len(&self) -> usize {
        self.remote_len.load(Ordering::Acquire)
    }

    pub(crate) fn member_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = read(&self.members).iter().map(|m| m.id).collect();
        ids.extend(read(&self.remote).iter().copied());
        ids
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Release);
    }

    /// The sequence number of the next frame this relay publishes to the room.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn next_published(&self) -> u64 {
        self.published.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn options(&self) -> &RoomOptions {
        &self.options
    }

    /// Adds `member`: queues its `Joined` and the list of the other members for it first, so
    /// that no room traffic can reach it before its confirmation, then tells the others with
    /// `announce` (an encoded `PlayerJoined`). The list is cut into `Members` frames that fit
    /// the limit of a relay with this `max_payload`.
    pub(crate) fn join(
        &self,
        member: Member,
        announce: &Bytes,
        max_payload: usize,
    ) -> Result<Dropped, JoinRefused> {
        self.admit(member, announce, max_payload, true)
    }

    /// Adds `member` as [`join`](Room::join) does, but without checking the capacity: the
    /// broker already gave it a seat, counting the members of every relay.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn join_seated(
        &self,
        member: Member,
        announce: &Bytes,
        max_payload: usize,
    ) -> Result<Dropped, JoinRefused> {
        self.admit(member, announce, max_payload, false)
    }

    fn admit(
        &self,
        member: Member,
        announce: &Bytes,
        max_payload: usize,
        check_capacity: bool,
    ) -> Result<Dropped, JoinRefused> {
        let mut members = write(&self.members);
        // Checked under the write lock: a delete that raced this join either happened before
        // (refused here) or after (the member is in the room like any other when it was deleted).
        if self.is_deleted() {
            return Err(JoinRefused::Deleted);
        }
        let remote = self.remote_len.load(Ordering::Acquire);
        if check_capacity
            && self
                .options
                .max_clients
                .is_some_and(|max| members.len() + remote >= max)
        {
            return Err(JoinRefused::Full);
        }
        let confirmation = self.confirmation(&members, member.id, max_payload);
        let mut pending = Pending::default();
        let mut dropped = relay(&members, member.id, announce, &mut pending);
        if let Err(Refused::Full) = pending.push(&member.outbox, confirmation) {
            dropped.push(member.id);
        }
        members.push(member);
        drop(members);
        pending.flush();
        Ok(dropped)
    }

    /// A member joins this room again: it gets its `Joined`, the other members and the room's
    /// state, as for a first join (see [`join`](Room::join)); nobody else is told. Queued
    /// under the members' write lock, as a first join's, so that no change of the room can
    /// be queued for it between the snapshot and the queueing of it. `true`: its queue was
    /// full, and it got nothing.
    pub(crate) fn rejoin(&self, member: &Member, max_payload: usize) -> bool {
        let members = write(&self.members);
        let confirmation = self.confirmation(&members, member.id, max_payload);
        let mut pending = Pending::default();
        let full = matches!(
            pending.push(&member.outbox, confirmation),
            Err(Refused::Full)
        );
        drop(members);
        pending.flush();
        full
    }

    /// The `Joined` of `joiner`, then the `Members` frames listing `members` but `joiner`,
    /// then one `State` per entry of the room's state, as one buffer: one queue entry, so
    /// that nothing comes between them and they are never dropped apart.
    fn confirmation(&self, members: &[Member], joiner: Uuid, max_payload: usize) -> Bytes {
        let mut out = BytesMut::new();
        let joined = ServerFrame::Joined {
            client_id: joiner,
            room_id: &self.id,
        };
        encode_into(&joined, &mut out);
        let others: Vec<Uuid> = members
            .iter()
            .map(|m| m.id)
            .chain(read(&self.remote).iter().copied())
            .filter(|&id| id != joiner)
            .collect();
        encode_members(&self.id, &others, max_payload, &mut out);
        if let Some(state) = lock(&self.state).as_deref() {
            state.encode_into(&mut out);
        }
        out.freeze()
    }

    /// Removes `id`, deletes the state entries it owns, and tells the rest with `announce`
    /// (an encoded `PlayerLeft`; empty to tell nobody) followed by an empty `State` per
    /// deleted entry, as one queue entry; `None` if `id` was not a member.
    pub(crate) fn leave(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        let mut members = write(&self.members);
        let at = members.iter().position(|m| m.id == id)?;
        members.swap_remove(at);
        let mut deleted = BytesMut::new();
        RoomState::remove_owned(&mut lock(&self.state), id, &mut deleted);
        if announce.is_empty() {
            return Some(Dropped::new());
        }
        Some(relay_now(members, id, &followed_by(announce, deleted)))
    }

    /// Runs `work` on the members here, under their read lock: a fan-out that must see
    /// the membership as one moment (a direct send checks its targets and queues for them
    /// under it). `work` must not call out to the application.
    pub(crate) fn with_members<R>(&self, work: impl FnOnce(&[Member]) -> R) -> R {
        work(&read(&self.members))
    }

    /// Whether `id` is a member on another relay.
    pub(crate) fn is_remote(&self, id: Uuid) -> bool {
        self.has_remote() && read(&self.remote).contains(&id)
    }

    /// Records a member on another relay and tells the members here with `announce` (an
    /// encoded `PlayerJoined`); `None` if it was already known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add_remote(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        // The local members' lock first, as everywhere: a confirmation built under it reads
        // the remote list too.
        let members = read(&self.members);
        let mut remote = write(&self.remote);
        if remote.contains(&id) {
            return None;
        }
        remote.push(id);
        self.remote_len.store(remote.len(), Ordering::Release);
        drop(remote);
        Some(relay_now(members, id, announce))
    }

    /// Forgets a member on another relay, deletes the state entries it owns here, and tells
    /// the members here with `announce` (an encoded `PlayerLeft`) followed by an empty
    /// `State` per deleted entry; `None` if it was not known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remove_remote(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        let members = read(&self.members);
        let mut remote = write(&self.remote);
        let at = remote.iter().position(|&m| m == id)?;
        remote.swap_remove(at);
        self.remote_len.store(remote.len(), Ordering::Release);
        drop(remote);
        // The entries it set, as this relay's copy of the state holds them, go with it, as
        // on its own relay.
        let mut deleted = BytesMut::new();
        RoomState::remove_owned(&mut lock(&self.state), id, &mut deleted);
        Some(relay_now(members, id, &followed_by(announce, deleted)))
    }

    /// Ids of the members on other relays.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remote_ids(&self) -> Vec<Uuid> {
        read(&self.remote).clone()
    }

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

    pub(crate) fn set_meta(&self, key: &str, value: String) {
        lock(&self.meta).insert(key.to_owned(), value);
    }

    pub(crate) fn get_meta(&self, key: &str) -> Option<String> {
        lock(&self.meta).get(key).cloned()
    }

    /// Every metadata entry, for a backplane writing this room back to its broker.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn meta_all(&self) -> Vec<(String, String)> {
        lock(&self.meta)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Queues `frame` for every member but `from`, to be written by `pending`'s flush.
fn relay(members: &[Member], from: Uuid, frame: &Bytes, pending: &mut Pending) -> Dropped {
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
fn followed_by(announce: &Bytes, deleted: BytesMut) -> Bytes {
    if deleted.is_empty() {
        return announce.clone();
    }
    let mut frames = BytesMut::with_capacity(announce.len() + deleted.len());
    frames.extend_from_slice(announce);
    frames.extend_from_slice(&deleted);
    frames.freeze()
}

/// [`relay`], then writes the queues once `members`' lock is released.
fn relay_now<G: std::ops::Deref<Target = Vec<Member>>>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_frame, FrameReader};

    fn member(n: u128, capacity: usize) -> (Member, crate::outbox::Inbox) {
        let (tx, rx) = crate::outbox::outbox(capacity, 1 << 20);
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
        let room = Room::new("r", RoomOptions::default());
        let (a, mut ra) = member(1, 4);
        let (b, mut rb) = member(2, 4);
        room.join(a, &Bytes::new(), 1024).unwrap();
        room.join(b, &Bytes::new(), 1024).unwrap();
        while ra.try_recv().is_some() {} // a's Joined and Members, then b's PlayerJoined
        while rb.try_recv().is_some() {} // b's Joined and Members
        let frame = Bytes::from_static(b"frame");
        let (recipients, dropped) =
            room.broadcast(Uuid::from_u128(1), &frame, &mut Pending::default());
        assert_eq!((recipients, dropped.is_empty()), (1, true));
        let got = rb.try_recv().unwrap();
        assert_eq!(got.as_ptr(), frame.as_ptr(), "same buffer, not a copy");
        assert!(
            ra.try_recv().is_none(),
            "the sender does not get its own frame"
        );
    }

    #[test]
    fn a_full_queue_drops_for_that_member_only() {
        let room = Room::new("r", RoomOptions::default());
        let (a, _ra) = member(1, 1);
        let (b, mut rb) = member(2, 8);
        let (c, _rc) = member(3, 8);
        room.join(a, &Bytes::new(), 1024).unwrap();
        room.join(b, &Bytes::new(), 1024).unwrap();
        room.join(c, &Bytes::new(), 1024).unwrap();
        // a's single slot already holds its Joined.
        let (_, dropped) = room.broadcast(
            Uuid::from_u128(3),
            &Bytes::from_static(b"x"),
            &mut Pending::default(),
        );
        assert_eq!(dropped, vec![Uuid::from_u128(1)]);
        while rb.try_recv().is_some() {}
    }

    #[test]
    fn a_full_room_refuses_joins_and_counts_stay_exact() {
        let room = Room::new(
            "r",
            RoomOptions {
                max_clients: Some(2),
            },
        );
        let (a, _ra) = member(1, 8);
        let (b, _rb) = member(2, 8);
        let (c, _rc) = member(3, 8);
        room.join(a, &Bytes::new(), 1024).unwrap();
        room.join(b, &Bytes::new(), 1024).unwrap();
        assert_eq!(room.join(c, &Bytes::new(), 1024), Err(JoinRefused::Full));
        assert_eq!(room.len(), 2);
    }

    #[test]
    fn a_joiner_is_told_who_is_already_there() {
        let room = Room::new("r", RoomOptions::default());
        let (a, _ra) = member(1, 8);
        let (b, mut rb) = member(2, 8);
        room.join(a, &Bytes::new(), 1024).unwrap();
        room.join(b, &Bytes::new(), 1024).unwrap();
        // One queue entry: b's Joined, then the list right behind it.
        let mut confirmation = BytesMut::from(&rb.try_recv().unwrap()[..]);
        assert!(rb.try_recv().is_none());
        let frames = FrameReader::for_payload(1024);
        let joined = frames.next_frame(&mut confirmation).unwrap().unwrap();
        assert!(matches!(
            decode_frame::<ServerFrame<'_>>(&joined).unwrap(),
            ServerFrame::Joined { client_id, room_id: "r" } if client_id == Uuid::from_u128(2)
        ));
        let list = frames.next_frame(&mut confirmation).unwrap().unwrap();
        assert!(confirmation.is_empty());
        match decode_frame::<ServerFrame<'_>>(&list).unwrap() {
            ServerFrame::Members {
                room_id,
                client_ids,
                more,
            } => {
                assert_eq!(room_id, "r");
                assert!(!more);
                let ids: Vec<_> = crate::protocol::member_ids(client_ids).collect();
                assert_eq!(ids, vec![Uuid::from_u128(1)]);
            }
            other => panic!("expected the member list, got {other:?}"),
        }
    }

    #[test]
    fn a_deleted_room_refuses_joins() {
        let room = Room::new("r", RoomOptions::default());
        room.mark_deleted();
        let (a, _ra) = member(1, 1);
        assert_eq!(room.join(a, &Bytes::new(), 1024), Err(JoinRefused::Deleted));
        assert_eq!(room.len(), 0);
    }
}
