//! Metrics through the [`metrics`] facade (cargo feature `metrics`): the names,
//! and the handles a server registers once, when it is built.
//!
//! The application installs a recorder (`metrics-exporter-prometheus`, say) **before**
//! [`ServerBuilder::build`](crate::ServerBuilder::build): the server registers every series
//! there, once, and keeps the handles, so the hot path never looks a metric up by name. A
//! server built before any recorder was installed emits nothing.
//!
//! Names follow Prometheus conventions: a `ghost_sync_` prefix, `_total` on counters, reasons
//! as labels (the snake_case names of [`DisconnectKind`] and [`RejectCode`]). No series is
//! labelled by client; a `room` label exists only with
//! [`ServerBuilder::metrics_room_labels`](crate::ServerBuilder::metrics_room_labels).
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `ghost_sync_connections` | gauge | | connections open now (handshake done) |
//! | `ghost_sync_connections_total` | counter | | connections accepted (handshake done) |
//! | `ghost_sync_handshake_refusals_total` | counter | `reason` | connections refused before or at the handshake: `server_full`, `connect_rejected`, `auth_failed`, `unsupported_version`, `protocol`, `shutting_down` |
//! | `ghost_sync_joins_total` | counter | | joins that put a client in a room |
//! | `ghost_sync_join_refusals_total` | counter | `reason` | joins refused: `not_found` (no such room, or deleted), `full`, `rejected` (`on_join_request` said no), `broker` (the broker did not answer) |
//! | `ghost_sync_frames_received_total` | counter | | frames received from clients after the handshake (keepalive included) |
//! | `ghost_sync_bytes_received_total` | counter | | their bytes, length prefix included |
//! | `ghost_sync_frames_sent_total` | counter | | frames written to clients (a join's `Joined` and member list count as one) |
//! | `ghost_sync_bytes_sent_total` | counter | | their bytes |
//! | `ghost_sync_frames_dropped_total` | counter | | frames dropped because a client's write queue was full |
//! | `ghost_sync_disconnects_total` | counter | `reason` | connections ended, by [`DisconnectKind::as_str`] |
//! | `ghost_sync_rooms` | gauge | | rooms that exist now |
//! | `ghost_sync_queue_depth` | histogram | | frames waiting in a client's write queue, sampled at each of its ping ticks |
//! | `ghost_sync_fanout_recipients` | histogram | (`room`) | members on this relay a broadcast was queued for, one sample per broadcast |
//!
//! With the `redis` feature, the broker's counters as well: `ghost_sync_broker_published_total`,
//! `ghost_sync_broker_received_total`, `ghost_sync_broker_dropped_total`,
//! `ghost_sync_broker_lost_total` and `ghost_sync_broker_disconnects_total`, with the
//! meanings of the `broker_*` fields of [`Stats`](crate::Stats); they are copied from those
//! counters (see [`ServerHandle::stats`](crate::ServerHandle::stats)) whenever stats are read,
//! so they are as fresh as the last `stats()` call or `stats_interval` report.
//!
//! Counters are added to where the relay already counts for [`Stats`](crate::Stats): once
//! per read or write batch, not once per frame. The two histograms cost one sample per
//! broadcast and one per client per ping interval. The queue depth is sampled on a timer
//! rather than at every write on purpose: a write happens per batch and recipient, so its
//! sample rate would follow the traffic, while a tick's follows the number of clients; and a
//! gauge of every queued frame would cost two updates per frame and recipient.
//!
//! `room` labels make one fan-out series per room ever created: with many short-lived rooms
//! that is unbounded cardinality in the recorder. Turn them on only for a few long-lived
//! rooms, and let the recorder forget idle series (`PrometheusBuilder::idle_timeout`).

use crate::disconnect::DisconnectKind;
use crate::protocol::RejectCode;
use crate::stats::JoinRefusal;
use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

/// Connections open now (gauge).
pub const CONNECTIONS: &str = "ghost_sync_connections";
/// Connections accepted since the server was built (counter).
pub const CONNECTIONS_TOTAL: &str = "ghost_sync_connections_total";
/// Connections refused, by `reason` (counter).
pub const HANDSHAKE_REFUSALS_TOTAL: &str = "ghost_sync_handshake_refusals_total";
/// Joins that put a client in a room (counter).
pub const JOINS_TOTAL: &str = "ghost_sync_joins_total";
/// Joins refused, by `reason` (counter).
pub const JOIN_REFUSALS_TOTAL: &str = "ghost_sync_join_refusals_total";
/// Frames received from clients (counter).
pub const FRAMES_RECEIVED_TOTAL: &str = "ghost_sync_frames_received_total";
/// Bytes received from clients (counter).
pub const BYTES_RECEIVED_TOTAL: &str = "ghost_sync_bytes_received_total";
/// Frames written to clients (counter).
pub const FRAMES_SENT_TOTAL: &str = "ghost_sync_frames_sent_total";
/// Bytes written to clients (counter).
pub const BYTES_SENT_TOTAL: &str = "ghost_sync_bytes_sent_total";
/// Frames dropped for a full write queue (counter).
pub const FRAMES_DROPPED_TOTAL: &str = "ghost_sync_frames_dropped_total";
/// Connections ended, by `reason` (counter).
pub const DISCONNECTS_TOTAL: &str = "ghost_sync_disconnects_total";
/// Rooms that exist now (gauge).
pub const ROOMS: &str = "ghost_sync_rooms";
/// Frames waiting in a client's write queue at its ping tick (histogram).
pub const QUEUE_DEPTH: &str = "ghost_sync_queue_depth";
/// Local recipients of one broadcast (histogram; `room` label if opted in).
pub const FANOUT_RECIPIENTS: &str = "ghost_sync_fanout_recipients";
/// With a broker: frames published to it (counter).
pub const BROKER_PUBLISHED_TOTAL: &str = "ghost_sync_broker_published_total";
/// With a broker: frames received from other relays (counter).
pub const BROKER_RECEIVED_TOTAL: &str = "ghost_sync_broker_received_total";
/// With a broker: frames not published (counter).
pub const BROKER_DROPPED_TOTAL: &str = "ghost_sync_broker_dropped_total";
/// With a broker: frames and messages from other relays lost on the way (counter).
pub const BROKER_LOST_TOTAL: &str = "ghost_sync_broker_lost_total";
/// With a broker: times the connection to it was lost (counter).
pub const BROKER_DISCONNECTS_TOTAL: &str = "ghost_sync_broker_disconnects_total";

/// Every [`RejectCode`], in wire order: `handshake_refusals[code as usize]`.
const REJECT_CODES: [RejectCode; 7] = [
    RejectCode::ServerFull,
    RejectCode::ConnectRejected,
    RejectCode::AuthFailed,
    RejectCode::UnsupportedVersion,
    RejectCode::Protocol,
    RejectCode::ShuttingDown,
    RejectCode::ResumeFailed,
];

/// The `reason` label of a refused handshake.
fn reject_label(code: RejectCode) -> &'static str {
    match code {
        RejectCode::ServerFull => "server_full",
        RejectCode::ConnectRejected => "connect_rejected",
        RejectCode::AuthFailed => "auth_failed",
        RejectCode::UnsupportedVersion => "unsupported_version",
        RejectCode::Protocol => "protocol",
        RejectCode::ShuttingDown => "shutting_down",
        RejectCode::ResumeFailed => "resume_failed",
    }
}

impl JoinRefusal {
    const ALL: [JoinRefusal; 4] = [Self::NotFound, Self::Full, Self::Rejected, Self::Broker];

    fn label(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Full => "full",
            Self::Rejected => "rejected",
            Self::Broker => "broker",
        }
    }
}

/// The handles of one server's series, registered once with the recorder installed then.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    pub(crate) connections: Gauge,
    pub(crate) connections_total: Counter,
    handshake_refusals: [Counter; REJECT_CODES.len()],
    pub(crate) joins: Counter,
    join_refusals: [Counter; JoinRefusal::ALL.len()],
    pub(crate) frames_received: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) frames_sent: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) frames_dropped: Counter,
    disconnects: [Counter; DisconnectKind::ALL.len()],
    pub(crate) queue_depth: Histogram,
}

/// Handles that record nothing: the counters of a value outside any server (a
/// `FrameRequest` built for a test), which must not register series of its own.
impl Default for ServerMetrics {
    fn default() -> Self {
        Self {
            connections: Gauge::noop(),
            connections_total: Counter::noop(),
            handshake_refusals: REJECT_CODES.map(|_| Counter::noop()),
            joins: Counter::noop(),
            join_refusals: JoinRefusal::ALL.map(|_| Counter::noop()),
            frames_received: Counter::noop(),
            bytes_received: Counter::noop(),
            frames_sent: Counter::noop(),
            bytes_sent: Counter::noop(),
            frames_dropped: Counter::noop(),
            disconnects: DisconnectKind::ALL.map(|_| Counter::noop()),
            queue_depth: Histogram::noop(),
        }
    }
}

impl ServerMetrics {
    /// Describes and registers every series with the recorder installed now.
    pub(crate) fn register() -> Self {
        describe();
        Self {
            connections: gauge!(CONNECTIONS),
            connections_total: counter!(CONNECTIONS_TOTAL),
            handshake_refusals: REJECT_CODES
                .map(|code| counter!(HANDSHAKE_REFUSALS_TOTAL, "reason" => reject_label(code))),
            joins: counter!(JOINS_TOTAL),
            join_refusals: JoinRefusal::ALL
                .map(|why| counter!(JOIN_REFUSALS_TOTAL, "reason" => why.label())),
            frames_received: counter!(FRAMES_RECEIVED_TOTAL),
            bytes_received: counter!(BYTES_RECEIVED_TOTAL),
            frames_sent: counter!(FRAMES_SENT_TOTAL),
            bytes_sent: counter!(BYTES_SENT_TOTAL),
            frames_dropped: counter!(FRAMES_DROPPED_TOTAL),
            disconnects: DisconnectKind::ALL
                .map(|kind| counter!(DISCONNECTS_TOTAL, "reason" => kind.as_str())),
            queue_depth: histogram!(QUEUE_DEPTH),
        }
    }

    pub(crate) fn refused(&self, code: RejectCode) {
        // `RejectCode` is `repr(u8)` in wire order, as `REJECT_CODES`.
        if let Some(counter) = self.handshake_refusals.get(code as usize) {
            counter.increment(1);
        }
    }

    pub(crate) fn join_refused(&self, why: JoinRefusal) {
        self.join_refusals[why as usize].increment(1);
    }

    pub(crate) fn disconnected(&self, kind: DisconnectKind) {
        self.connections.decrement(1.0);
        self.disconnects[kind.index()].increment(1);
    }
}

/// The series kept per room registry: the rooms gauge, and the fan-out histogram each room
/// records into (one shared series, or one per room with labels).
#[derive(Debug)]
pub(crate) struct RoomSeries {
    room_labels: bool,
    pub(crate) rooms: Gauge,
    fanout: Histogram,
}

/// Handles that record nothing, for a registry outside a server.
impl Default for RoomSeries {
    fn default() -> Self {
        Self {
            room_labels: false,
            rooms: Gauge::noop(),
            fanout: Histogram::noop(),
        }
    }
}

impl RoomSeries {
    pub(crate) fn register(room_labels: bool) -> Self {
        Self {
            room_labels,
            rooms: gauge!(ROOMS),
            fanout: histogram!(FANOUT_RECIPIENTS),
        }
    }

    /// The fan-out histogram a new room records into: registered here, once per room, so a
    /// broadcast looks nothing up.
    pub(crate) fn fanout_for(&self, room_id: &str) -> Histogram {
        if self.room_labels {
            histogram!(FANOUT_RECIPIENTS, "room" => room_id.to_owned())
        } else {
            self.fanout.clone()
        }
    }
}

/// The broker's counters, copied from the cluster's whenever stats are read; handles that
/// record nothing by default (a relay without a broker).
#[cfg(feature = "redis")]
#[derive(Debug)]
pub(crate) struct BrokerMetrics([Counter; 5]);

#[cfg(feature = "redis")]
impl Default for BrokerMetrics {
    fn default() -> Self {
        Self([(); 5].map(|()| Counter::noop()))
    }
}

#[cfg(feature = "redis")]
impl BrokerMetrics {
    pub(crate) fn register() -> Self {
        Self(
            [
                BROKER_PUBLISHED_TOTAL,
                BROKER_RECEIVED_TOTAL,
                BROKER_DROPPED_TOTAL,
                BROKER_LOST_TOTAL,
                BROKER_DISCONNECTS_TOTAL,
            ]
            .map(|name| counter!(name)),
        )
    }

    /// Sets the counters to the cluster's totals, in the order of `Cluster::stats`.
    pub(crate) fn update(&self, totals: [u64; 5]) {
        for (counter, total) in self.0.iter().zip(totals) {
            counter.absolute(total);
        }
    }
}

/// Descriptions and units, for the recorder's `# HELP` lines.
fn describe() {
    describe_gauge!(CONNECTIONS, "Connections open now.");
    describe_counter!(CONNECTIONS_TOTAL, "Connections accepted.");
    describe_counter!(
        HANDSHAKE_REFUSALS_TOTAL,
        "Connections refused at admission or handshake, by reason."
    );
    describe_counter!(JOINS_TOTAL, "Joins that put a client in a room.");
    describe_counter!(JOIN_REFUSALS_TOTAL, "Joins refused, by reason.");
    describe_counter!(
        FRAMES_RECEIVED_TOTAL,
        "Frames received from clients after the handshake."
    );
    describe_counter!(
        BYTES_RECEIVED_TOTAL,
        Unit::Bytes,
        "Bytes received from clients after the handshake."
    );
    describe_counter!(FRAMES_SENT_TOTAL, "Frames written to clients.");
    describe_counter!(BYTES_SENT_TOTAL, Unit::Bytes, "Bytes written to clients.");
    describe_counter!(
        FRAMES_DROPPED_TOTAL,
        "Frames dropped because a client's write queue was full."
    );
    describe_counter!(DISCONNECTS_TOTAL, "Connections ended, by reason.");
    describe_gauge!(ROOMS, "Rooms that exist now.");
    describe_histogram!(
        QUEUE_DEPTH,
        "Frames waiting in a client's write queue, sampled at its ping ticks."
    );
    describe_histogram!(
        FANOUT_RECIPIENTS,
        "Members on this relay a broadcast was queued for."
    );
    #[cfg(feature = "redis")]
    {
        describe_counter!(BROKER_PUBLISHED_TOTAL, "Frames published to the broker.");
        describe_counter!(BROKER_RECEIVED_TOTAL, "Frames received from other relays.");
        describe_counter!(BROKER_DROPPED_TOTAL, "Frames not published to the broker.");
        describe_counter!(
            BROKER_LOST_TOTAL,
            "Frames and messages from other relays lost on the way."
        );
        describe_counter!(
            BROKER_DISCONNECTS_TOTAL,
            "Times the connection to the broker was lost."
        );
    }
}
