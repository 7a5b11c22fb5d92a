//! [`RoomFrames`]: a room's frames from other relays, fanned out to the members here.
//!
//! It runs on the dispatcher's task for a frame queued behind other messages, and on the
//! broker connection's own task otherwise (see [`Inflow`](crate::cluster::backplane::Inflow)),
//! so it keeps its little state (the last sequence number seen from each sender relay) under
//! a lock of its own, and fires `on_backpressure` only after releasing it.

use crate::cluster::backplane::FrameSink;
use crate::cluster::bus_message::parse_room_message;
use crate::cluster::Cluster;
use crate::outbox::Pending;
use crate::protocol::{encode, ServerFrame};
use crate::server::Shared;
use crate::session::report_backpressure;
use crate::sync::lock;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Sender relays (runs of a relay) tracked for gaps, at most.
const MAX_TRACKED_RELAYS: usize = 1_024;
/// Rooms tracked per sender relay, at most.
const MAX_TRACKED_ROOMS: usize = 65_536;

/// Room id → the last sequence number received in it, from one sender relay.
type LastSeen = HashMap<Box<[u8]>, u64>;

/// What the gap count needs.
#[derive(Default)]
struct Seen {
    /// The last sequence number received from each sender relay, per room.
    by_relay: HashMap<u64, LastSeen>,
    /// Frames found missing since the last log line, and when that was.
    unreported: u64,
    reported_at: Option<std::time::Instant>,
}

/// How often at most lost frames are logged (they are counted in `stats()` at once).
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Fans out other relays' room frames here (see the module's docs).
pub(crate) struct RoomFrames {
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    seen: Mutex<Seen>,
    /// Bytes an encoded `Broadcast` adds to its data.
    broadcast_overhead: usize,
}

impl RoomFrames {
    pub(crate) fn new(shared: Arc<Shared>, cluster: Arc<Cluster>) -> Self {
        Self {
            shared,
            cluster,
            seen: Mutex::new(Seen::default()),
            broadcast_overhead: encode(&ServerFrame::Broadcast {
                sender_id: Uuid::nil(),
                data: &[],
            })
            .len(),
        }
    }

    /// Counts the frames missing between the last one from this sender and `seq`.
    fn note(&self, room: &[u8], origin: u64, seq: u64) {
        let mut seen = lock(&self.seen);
        let seen = &mut *seen;
        // Bounded: a table grown past its size (rooms and relays churn) starts afresh.
        if seen.by_relay.len() >= MAX_TRACKED_RELAYS {
            seen.by_relay.clear();
        }
        let rooms = seen.by_relay.entry(origin).or_default();
        if rooms.len() >= MAX_TRACKED_ROOMS {
            rooms.clear();
        }
        // Looked up by the borrowed id: no allocation once a room is known.
        let last = match rooms.get_mut(room) {
            Some(last) => last,
            None => rooms.entry(Box::from(room)).or_insert(0),
        };
        if *last != 0 && seq > *last + 1 {
            let missing = seq - *last - 1;
            self.cluster.counters.lost.fetch_add(missing, Relaxed);
            seen.unreported += missing;
        }
        // Lower than before: the sender's room was deleted and created again, and counts
        // from the start.
        *last = seq;
        if seen.unreported == 0 {
            return;
        }
        let now = std::time::Instant::now();
        if seen.reported_at.is_none_or(|at| now >= at + REPORT_EVERY) {
            tracing::warn!(
                frames = seen.unreported,
                "frames from other relays lost on the way (the broker was away or behind)"
            );
            seen.unreported = 0;
            seen.reported_at = Some(now);
        }
    }
}

impl FrameSink for RoomFrames {
    fn deliver(&self, room: &[u8], message: Bytes) {
        let Some((origin, seq, frame)) = parse_room_message(&message) else {
            return;
        };
        if origin == self.cluster.origin {
            return; // Our own, delivered here when it was sent.
        }
        self.note(room, origin, seq);
        // Each message's header: a keyed frame's holds 4 bytes more (its key) than a
        // broadcast's.
        let keyed = keyed_header(&frame);
        let overhead = if keyed.is_some() {
            self.broadcast_overhead + 4
        } else {
            self.broadcast_overhead
        };
        if frame.len().saturating_sub(overhead) > self.shared.config.max_payload {
            // From a relay with a larger `max_payload`: this relay's clients would refuse it
            // (every relay of a cluster should use the same limit).
            self.cluster.counters.lost.fetch_add(1, Relaxed);
            tracing::warn!(
                len = frame.len(),
                "a frame from another relay exceeds max_payload: dropped"
            );
            return;
        }
        let Some(room) = std::str::from_utf8(room)
            .ok()
            .and_then(|id| self.shared.registry.get(id))
        else {
            return;
        };
        self.cluster.counters.received.fetch_add(1, Relaxed);
        let mut pending = Pending::default();
        // A keyed frame may replace its sender's older one for a slow member here too.
        // (Room-state changes come on the feed, not this way: see `cluster/room_state.rs`.)
        let dropped = if let Some((sender, key)) = keyed {
            let (recipients, dropped) = room.broadcast_keyed(sender, key, &frame, &mut pending);
            room.fanned_out(recipients);
            dropped
        } else {
            room.broadcast_all(&frame, &mut pending).1
        };
        self.shared.flush(&mut pending);
        if dropped.is_empty() {
            return;
        }
        match self.shared.handler() {
            Some(handler) => {
                report_backpressure(&*handler, &self.shared.counters, &dropped, room.id())
            }
            None => self.shared.counters.dropped(dropped.len() as u64),
        }
    }
}

/// The sender and key of an encoded server `Keyed` frame (tag 13: sender at bytes 5..21, key
/// at 21..25, PROTOCOL.md section 5); `None` for any other frame.
fn keyed_header(frame: &[u8]) -> Option<(Uuid, u32)> {
    match frame.get(4..25) {
        Some([13, header @ ..]) => {
            let sender = Uuid::from_slice(&header[..16]).ok()?;
            let key = u32::from_le_bytes(header[16..20].try_into().ok()?);
            Some((sender, key))
        }
        _ => None,
    }
}
