//! A room: its members' write queues, its metadata, and the fan-out that relays a frame to them.
//!
//! Fan-out is the hot path. A frame is encoded once by the caller and shared: each recipient
//! gets a clone of the same [`Bytes`] (a reference-count increment) pushed on its queue, all
//! under one read lock per frame. The queues are written after the lock is released, by the
//! caller's [`Pending`] flush: the relaying task writes each recipient once per batch of
//! frames. A full queue drops the frame for that member only; the caller learns who, and
//! fires `on_backpressure` after the lock is released.
//!
//! - `mod.rs`: the room, its members and metadata, joins and leaves;
//! - `fanout.rs`: relaying a frame to the members (plain, keyed), the hot path;
//! - `remote.rs`: with a backplane, the members on other relays and the room's generation;
//! - `state.rs`: the room's key-value state.
//!
//! The room's state (`state.rs`) lives behind its own lock, taken after
//! the members' (and after the remote list's): a set holds the members' read lock while it
//! changes the store and queues the change, and a join holds their write lock while it takes
//! its snapshot, so a joiner sees each change exactly once, in its snapshot or live after it.

use crate::outbox::{Outbox, Pending, Refused};
use crate::protocol::{encode_into, encode_members, ServerFrame};
use crate::sync::{lock, read, write};
use bytes::{Bytes, BytesMut};
use fanout::{followed_by, relay, relay_now};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

mod fanout;
mod remote;
// The state's store and the room's calls on it.
mod state;
#[cfg(test)]
mod tests;

use state::RoomState;
pub use state::RoomStateEntry;
#[cfg(test)]
pub(crate) use state::STATE_FRAME_OVERHEAD;
pub(crate) use state::{check_key, StateLimits, StateRefused};

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

    pub(crate) fn member_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = read(&self.members).iter().map(|m| m.id).collect();
        ids.extend(read(&self.remote).iter().copied());
        ids
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
