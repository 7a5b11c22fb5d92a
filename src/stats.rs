//! Server statistics: cheap atomic counters, and the [`Stats`] snapshot read from them.
//!
//! Counters are relaxed atomics, and the hot path adds to them once per read or write batch,
//! not once per frame, so counting costs the relay nothing measurable.

use crate::disconnect::DisconnectKind;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The live counters of one server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_total: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    disconnects: [AtomicU64; DisconnectKind::ALL.len()],
}

impl Counters {
    pub(crate) fn disconnected(&self, kind: DisconnectKind) {
        self.disconnects[kind.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, connections: usize, rooms: usize) -> Stats {
        Stats {
            connections: connections as u64,
            connections_total: self.connections_total.load(Relaxed),
            rooms: rooms as u64,
            frames_in: self.frames_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            disconnects: DisconnectKind::ALL
                .iter()
                .map(|&kind| (kind, self.disconnects[kind.index()].load(Relaxed)))
                .collect(),
            broker_published: 0,
            broker_received: 0,
            broker_dropped: 0,
            broker_lost: 0,
            broker_disconnects: 0,
        }
    }
}

/// A snapshot of a server's counters, from [`ServerHandle::stats`](crate::ServerHandle::stats).
///
/// Counts start at zero when the server is built. Connections count once their handshake
/// succeeded; frames and bytes count whole frames (length prefix included) after the
/// handshake, keepalive included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since the server started.
    pub connections_total: u64,
    /// Rooms that exist now.
    pub rooms: u64,
    /// Frames received from clients.
    pub frames_in: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Frames written to clients. A join's `Joined` and the member list behind it go out
    /// together and count as one.
    pub frames_out: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Frames dropped because a client's write queue was full (each also fired
    /// `on_backpressure`).
    pub frames_dropped: u64,
    /// Connections ended, by reason, in the order of [`DisconnectKind::ALL`].
    pub disconnects: Vec<(DisconnectKind, u64)>,
    /// With a broker: frames published to it for members on other relays (one per frame
    /// and room, however many members).
    pub broker_published: u64,
    /// With a broker: frames received from other relays.
    pub broker_received: u64,
    /// With a broker: frames not published, because the broker was away or its queue full
    /// (also logged, at most every 2 s).
    pub broker_dropped: u64,
    /// With a broker: frames and registry messages from other relays lost on the way (gaps
    /// in their numbering), including messages dropped because this relay fell behind (also
    /// logged, at most every 2 s).
    pub broker_lost: u64,
    /// With a broker: times the connection to it was lost.
    pub broker_disconnects: u64,
}

impl Stats {
    /// How many connections ended for this reason.
    pub fn disconnects_for(&self, kind: DisconnectKind) -> u64 {
        self.disconnects
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}
