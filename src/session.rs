//! A session: the per-connection state that every layer of the frame pipeline can see.
//!
//! It lives in an `Arc` shared by the connection driver and each
//! [`FrameRequest`](crate::FrameRequest); only the connection's own task mutates it, so its small lock is
//! never contended.

use crate::auth::Identity;
use crate::cluster::Cluster;
use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, ServerHandler};
use crate::outbox::{Flusher, Outbox, Pending};
use crate::protocol::{encode, ServerFrame};
use crate::room::{Member, Room};
use crate::stats::Counters;
use crate::sync::lock;
use bytes::Bytes;
use ghost_sync_layers::ActivityClock;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client_id: Uuid,
    pub(crate) peer: SocketAddr,
    /// Who the validator said this client is; `None` on an open relay.
    pub(crate) identity: Option<Identity>,
    pub(crate) connected_at: SystemTime,
    /// This client's own write queue (rooms hold clones of it).
    pub(crate) outbox: Outbox,
    /// Cancelled to end the connection from outside its driver (a kick, a stalled writer);
    /// the driver watches it.
    end: CancellationToken,
    /// Why, the first time (later requests change nothing).
    end_reason: OnceLock<DisconnectReason>,
    /// Touched by the idle-timeout layer on every frame; read by the idle deadline.
    pub(crate) activity: ActivityClock,
    /// Set by the handshake; the auth layer refuses frames until it is.
    authenticated: AtomicBool,
    /// A ping was sent and no pong has come back yet.
    awaiting_pong: AtomicBool,
    /// The client sent `Bye`: its close ends its seat rather than holding it.
    said_bye: AtomicBool,
    room: Mutex<Option<Arc<Room>>>,
    /// The other clients' queues this client's frames filled since the driver last wrote
    /// them (see [`flush`](Session::flush)).
    pending: Mutex<Pending>,
    /// The backplane, told of this client's leaves; `None`: the relay is alone.
    cluster: Option<Arc<Cluster>>,
    /// With a flush window, where the pending queues go instead of being written at once.
    flusher: Option<Arc<Flusher>>,
}

impl Session {
    pub(crate) fn new(
        client_id: Uuid,
        peer: SocketAddr,
        identity: Option<Identity>,
        outbox: Outbox,
    ) -> Self {
        Self {
            client_id,
            peer,
            identity,
            connected_at: SystemTime::now(),
            outbox,
            end: CancellationToken::new(),
            end_reason: OnceLock::new(),
            activity: ActivityClock::new(),
            authenticated: AtomicBool::new(false),
            awaiting_pong: AtomicBool::new(false),
            said_bye: AtomicBool::new(false),
            room: Mutex::new(None),
            pending: Mutex::default(),
            cluster: None,
            flusher: None,
        }
    }

    /// The session of a held seat resumed on a new connection from `peer`: the same client,
    /// identity, queue (the rooms hold it) and room, which moves over (so `held` leaves no
    /// room when it goes); fresh connection state.
    pub(crate) fn resumed_from(held: &Session, peer: SocketAddr) -> Self {
        let mut session = Self::new(
            held.client_id,
            peer,
            held.identity.clone(),
            held.outbox.clone(),
        )
        .with_cluster(held.cluster.clone())
        .with_flusher(held.flusher.clone());
        session.room = Mutex::new(lock(&held.room).take());
        session
    }

    /// The client said `Bye`.
    pub(crate) fn said_bye(&self) {
        self.said_bye.store(true, Ordering::Release);
    }

    /// Whether the client said `Bye`.
    pub(crate) fn has_said_bye(&self) -> bool {
        self.said_bye.load(Ordering::Acquire)
    }

    /// This session on a relay with a flush window (`flush_interval`).
    pub(crate) fn with_flusher(mut self, flusher: Option<Arc<Flusher>>) -> Self {
        self.flusher = flusher;
        self
    }

    /// This session on a relay that shares its rooms through `cluster`.
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    pub(crate) fn member(&self) -> Member {
        Member {
            id: self.client_id,
            outbox: self.outbox.clone(),
        }
    }

    /// Asks the connection to end for `reason` (a kick, a slow consumer); the first reason
    /// wins.
    pub(crate) fn end_with(&self, reason: DisconnectReason) {
        let _ = self.end_reason.set(reason);
        self.end.cancel();
    }

    /// Completes once [`end_with`](Session::end_with) was called.
    pub(crate) fn ended(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.end.cancelled()
    }

    /// The reason given to `end_with`.
    pub(crate) fn end_reason(&self) -> DisconnectReason {
        self.end_reason
            .get()
            .cloned()
            .unwrap_or_else(|| DisconnectReason::Internal("ended without a reason".into()))
    }

    /// The queues this client's frames are filling, for the fan-out to add to.
    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    /// Writes the frames this client relayed since the last flush, each recipient's in one
    /// write: now, or with a flush window, at its end. `behind`: the batch held more than
    /// one frame, so the relay is not keeping up with this client at once; the recipients'
    /// writer tasks then write, each taking what several publishers queued meanwhile.
    pub(crate) fn flush(&self, behind: bool) {
        // Taken out of the lock: writing counts what was sent, and counting may call the
        // application's metrics recorder, which must not run under a lock of ours.
        let mut pending = std::mem::take(&mut *lock(&self.pending));
        match &self.flusher {
            Some(flusher) => flusher.hand(&mut pending),
            None if behind => pending.wake_writers(),
            None => pending.flush(),
        }
        // Back, emptied, so that its allocation serves the next batch (only this
        // connection's task fills it, so nothing came in meanwhile; if something did, that
        // list stays).
        let mut slot = lock(&self.pending);
        if slot.is_empty() {
            *slot = pending;
        }
    }

    /// Lets go of the pending list's allocation, for a client gone quiet.
    pub(crate) fn release_pending(&self) {
        lock(&self.pending).release();
    }

    /// Frames waiting in this client's write queue.
    pub(crate) fn queue_depth(&self) -> usize {
        self.outbox.depth()
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    pub(crate) fn set_authenticated(&self) {
        self.authenticated.store(true, Ordering::Release);
    }

    /// Records that a ping went out.
    pub(crate) fn ping_sent(&self) {
        self.awaiting_pong.store(true, Ordering::Release);
    }

    /// A ping went out and no pong has come back since.
    pub(crate) fn awaiting_pong(&self) -> bool {
        self.awaiting_pong.load(Ordering::Acquire)
    }

    pub(crate) fn pong_received(&self) {
        self.awaiting_pong.store(false, Ordering::Release);
    }

    pub(crate) fn current_room(&self) -> Option<Arc<Room>> {
        lock(&self.room).clone()
    }

    /// Takes the session out of its room's pointer without leaving the room: the room is
    /// told by the caller (a seat moving to another relay).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn take_room(&self) -> Option<Arc<Room>> {
        lock(&self.room).take()
    }

    pub(crate) fn set_room(&self, room: Arc<Room>) {
        *lock(&self.room) = Some(room);
    }

    /// Leaves the current room, if any: the rest of the room gets `PlayerLeft`, and
    /// `on_leave` fires once, after every lock is released.
    pub(crate) fn leave_room(
        &self,
        handler: &dyn ServerHandler,
        counters: &Counters,
    ) -> Option<Arc<Room>> {
        self.leave(handler, counters, true)
    }

    /// Leaves the current room without telling the rest of it: at shutdown everyone is
    /// leaving, and a last `PlayerLeft` per member would only be noise before the farewell.
    /// `on_leave` still fires.
    pub(crate) fn leave_room_quietly(
        &self,
        handler: &dyn ServerHandler,
        counters: &Counters,
    ) -> Option<Arc<Room>> {
        self.leave(handler, counters, false)
    }

    fn leave(
        &self,
        handler: &dyn ServerHandler,
        counters: &Counters,
        announce: bool,
    ) -> Option<Arc<Room>> {
        let room = lock(&self.room).take()?;
        let announce = if announce {
            encode(&ServerFrame::PlayerLeft {
                client_id: self.client_id,
            })
        } else {
            Bytes::new()
        };
        if let Some(dropped) = room.leave(self.client_id, &announce) {
            // The other relays learn of it even at shutdown: their members stay.
            if let Some(cluster) = &self.cluster {
                cluster.left(&room, self.client_id);
            }
            guarded("on_leave", || handler.on_leave(self.client_id, room.id()));
            report_backpressure(handler, counters, &dropped, room.id());
        }
        Some(room)
    }
}

/// Counts the dropped frames and fires `on_backpressure` for every member whose queue was
/// full.
pub(crate) fn report_backpressure(
    handler: &dyn ServerHandler,
    counters: &Counters,
    dropped: &[Uuid],
    room_id: &str,
) {
    counters.dropped(dropped.len() as u64);
    for &client_id in dropped {
        tracing::debug!(%client_id, room_id, "write queue full: frame dropped");
        guarded("on_backpressure", || {
            handler.on_backpressure(client_id, room_id)
        });
    }
}
