//! Server statistics: cheap atomic counters, and the [`Stats`] snapshot read from them.
//!
//! Counters are relaxed atomics, and the hot path adds to them once per read or write batch,
//! not once per frame, so counting costs the relay nothing measurable.

use crate::disconnect::DisconnectKind;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The live counters of one server, and with the `metrics` feature the handles of its
/// metrics: every method adds to both, so the call sites stay the same either way.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections_total: AtomicU64,
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    frames_dropped: AtomicU64,
    disconnects: [AtomicU64; DisconnectKind::ALL.len()],
    #[cfg(feature = "metrics")]
    metrics: crate::telemetry::ServerMetrics,
    #[cfg(all(feature = "metrics", feature = "redis"))]
    broker: crate::telemetry::BrokerMetrics,
}

/// Why a join was refused: a label of `ghost_sync_join_refusals_total` with the `metrics`
/// feature (its names and `ALL` are in `telemetry.rs`), counted nowhere without it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JoinRefusal {
    /// No such room, or it was deleted.
    NotFound,
    /// The room holds its `max_clients`.
    Full,
    /// `on_join_request` refused.
    Rejected,
    /// The broker did not answer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Broker,
}

impl Counters {
    /// A server's counters: with the `metrics` feature, its series are registered now, with
    /// the recorder installed now (the broker's too, for a relay with one). `Default` gives
    /// counters that register nothing, for values outside a server.
    pub(crate) fn registered(with_broker: bool) -> Self {
        #[cfg(not(all(feature = "metrics", feature = "redis")))]
        let _ = with_broker;
        Self {
            #[cfg(feature = "metrics")]
            metrics: crate::telemetry::ServerMetrics::register(),
            #[cfg(all(feature = "metrics", feature = "redis"))]
            broker: if with_broker {
                crate::telemetry::BrokerMetrics::register()
            } else {
                crate::telemetry::BrokerMetrics::default()
            },
            ..Self::default()
        }
    }

    /// A client completed its handshake.
    pub(crate) fn connected(&self) {
        self.connections_total.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        {
            self.metrics.connections_total.increment(1);
            self.metrics.connections.increment(1.0);
        }
    }

    /// A connection that completed its handshake ended (once per [`connected`](Self::connected)).
    pub(crate) fn disconnected(&self, kind: DisconnectKind) {
        self.disconnects[kind.index()].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.disconnected(kind);
    }

    /// One read batch: `frames` frames of `bytes` bytes in all.
    pub(crate) fn received(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.frames_in.fetch_add(frames, Relaxed);
            self.bytes_in.fetch_add(bytes, Relaxed);
            #[cfg(feature = "metrics")]
            {
                self.metrics.frames_received.increment(frames);
                self.metrics.bytes_received.increment(bytes);
            }
        }
    }

    /// One write: `frames` frames of `bytes` bytes in all.
    pub(crate) fn sent(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.frames_out.fetch_add(frames, Relaxed);
            self.bytes_out.fetch_add(bytes, Relaxed);
            #[cfg(feature = "metrics")]
            {
                self.metrics.frames_sent.increment(frames);
                self.metrics.bytes_sent.increment(bytes);
            }
        }
    }

    /// `frames` frames dropped for full write queues.
    pub(crate) fn dropped(&self, frames: u64) {
        if frames > 0 {
            self.frames_dropped.fetch_add(frames, Relaxed);
            #[cfg(feature = "metrics")]
            self.metrics.frames_dropped.increment(frames);
        }
    }

    /// A connection refused at admission or at its handshake (metrics only).
    pub(crate) fn refused(&self, code: crate::protocol::RejectCode) {
        #[cfg(feature = "metrics")]
        self.metrics.refused(code);
        #[cfg(not(feature = "metrics"))]
        let _ = code;
    }

    /// A client joined a room (metrics only).
    pub(crate) fn joined(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.joins.increment(1);
    }

    /// A join was refused (metrics only).
    pub(crate) fn join_refused(&self, why: JoinRefusal) {
        #[cfg(feature = "metrics")]
        self.metrics.join_refused(why);
        #[cfg(not(feature = "metrics"))]
        let _ = why;
    }

    /// A client's write queue held `frames` frames at its ping tick (metrics only).
    pub(crate) fn queue_depth(&self, frames: usize) {
        #[cfg(feature = "metrics")]
        self.metrics.queue_depth.record(frames as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = frames;
    }

    /// Whether anything records the queue depth: sampling it takes a lock, for nothing
    /// without the `metrics` feature.
    pub(crate) const SAMPLES_QUEUE_DEPTH: bool = cfg!(feature = "metrics");

    /// The broker's totals, as `stats()` read them, copied to the broker's metrics.
    pub(crate) fn broker_totals(&self, totals: [u64; 5]) {
        #[cfg(all(feature = "metrics", feature = "redis"))]
        self.broker.update(totals);
        #[cfg(not(all(feature = "metrics", feature = "redis")))]
        let _ = totals;
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
