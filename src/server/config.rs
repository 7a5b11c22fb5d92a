//! The server's options and their defaults (the README's options table lists the same).

use crate::protocol::MAX_PAYLOAD_LIMIT;
use crate::room::StateLimits;
use ghost_sync_layers::{ClientRateLimitLayer, RoomNamePolicyLayer};
use std::time::Duration;

/// Options set through [`ServerBuilder`](crate::ServerBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) bind: String,
    pub(crate) max_clients: usize,
    pub(crate) max_payload: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) channel_capacity: usize,
    /// Most bytes queued for one client (queue plus the batch being written).
    pub(crate) max_queued_bytes: usize,
    /// Longest a single write to a client may take before it counts as a slow consumer.
    pub(crate) write_timeout: Duration,
    /// The flush window (see `outbox/flusher.rs`); `None` (the default): each batch's frames
    /// are written at its end.
    pub(crate) flush_interval: Option<Duration>,
    /// Emit a stats snapshot as a tracing event this often; `None`: never.
    pub(crate) stats_interval: Option<Duration>,
    /// Most connections one IP address may hold; `None`: no limit.
    pub(crate) max_connections_per_ip: Option<usize>,
    /// The per-client rate limit; `None` (the default): none.
    pub(crate) rate_limit: Option<ClientRateLimitLayer>,
    /// The room-name policy; `None`: any name up to `max_payload`.
    pub(crate) room_names: Option<RoomNamePolicyLayer>,
    /// The bounds of each room's state.
    pub(crate) room_state: StateLimits,
    /// The broker this relay shares its rooms through; `None`: it is alone.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<crate::cluster::RedisOptions>,
    /// How long a dropped client's seat is held for a resume; `None` (the default): not
    /// at all, a drop ends the seat at once.
    pub(crate) resume_window: Option<Duration>,
    /// Most seats held at once; `None`: `max_clients`.
    pub(crate) max_held_seats: Option<usize>,
    /// A `room` label on the fan-out histogram (see `telemetry.rs`); off by default.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_room_labels: bool,
}

/// Default listen address.
pub const DEFAULT_BIND: &str = "0.0.0.0:7777";
/// Default `max_clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Default `max_payload`: 64 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;
/// Default `idle_timeout`: 31 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(31);
/// Default `ping_interval`: 13 s (not a divisor of 31, so the two timers rarely coincide).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(13);
/// Default `channel_capacity`: 1024 frames per client.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;
/// Default `max_queued_bytes`: 1 MiB per client (Redis allows a pub/sub client 32 MB, NATS
/// 64 MB; a game relay's frames are small, and this bounds memory at a few GiB for 1024
/// stuck clients even at the worst).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1024 * 1024;
/// Default most entries of one room's state (`room_state_limits`).
pub const DEFAULT_ROOM_STATE_MAX_KEYS: usize = 256;
/// Default most bytes of keys and values in one room's state (`room_state_limits`): 64 KiB.
pub const DEFAULT_ROOM_STATE_MAX_BYTES: usize = 64 * 1024;
/// Default `write_timeout`: 10 s, as NATS's write deadline.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.to_owned(),
            max_clients: DEFAULT_MAX_CLIENTS,
            max_payload: DEFAULT_MAX_PAYLOAD,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            stats_interval: None,
            flush_interval: None,
            max_connections_per_ip: None,
            rate_limit: None,
            room_names: Some(RoomNamePolicyLayer::new()),
            room_state: StateLimits {
                max_keys: DEFAULT_ROOM_STATE_MAX_KEYS,
                max_bytes: DEFAULT_ROOM_STATE_MAX_BYTES,
            },
            resume_window: None,
            max_held_seats: None,
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "metrics")]
            metrics_room_labels: false,
        }
    }
}

/// Bytes of bookkeeping per connection, beyond its buffers: its two tasks, its session, its
/// directory entry, its queue's channel. Measured well below this (see RELIABILITY.md).
pub(crate) const CONNECTION_OVERHEAD: u64 = 16 * 1024;
/// Bytes of bookkeeping per held seat beyond its queue: its session, its table entries and
/// expiry task, and its ended-token record.
pub(crate) const HELD_OVERHEAD: u64 = 2 * 1024;
/// The longest `resume_window` (longer ones are lowered to it): a seat held for hours is a
/// room slot lost for hours.
pub(crate) const MAX_RESUME_WINDOW: Duration = Duration::from_secs(3600);
/// Bytes per room member in a room's member list.
pub(crate) const MEMBER_OVERHEAD: u64 = 64;

impl Config {
    /// Whether the relay shares its rooms through a broker.
    pub(crate) fn has_broker(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// The most memory the relay's connections can hold at once, whatever clients do: every
    /// slot taken, every read buffer holding a largest frame, every queue full to its byte
    /// budget while its writer copies a batch. Rooms, their metadata and their state come on
    /// top: only the application creates rooms, each room's state is bounded by
    /// `room_state_limits` (plus about 100 bytes of bookkeeping per entry) whoever sets it,
    /// and a member costs `MEMBER_OVERHEAD`. A joiner's snapshot of a room's state is one
    /// entry of its queue, which `sanitized` keeps `max_queued_bytes` large enough for: it is
    /// within the queue's budget counted here.
    pub(crate) fn memory_bound(&self) -> u64 {
        let clients = self.max_clients as u64;
        let largest_frame = (self.max_payload + crate::protocol::FRAME_OVERHEAD) as u64;
        let read = largest_frame + super::connection::MAX_READ_RESERVE as u64;
        let write = self.max_queued_bytes as u64 + super::writer::COPY_BUFFER_MAX as u64;
        // The queue and the batch being written: two `Vec<Bytes>` of channel_capacity each,
        // and the index of the keyed frames queued (for a client sent keyed frames).
        let index = crate::outbox::MAX_INDEX_BYTES_PER_FRAME as u64;
        let slots = self.channel_capacity as u64 * (2 * 32 + index);
        let per_connection = read + write + slots + CONNECTION_OVERHEAD + MEMBER_OVERHEAD;
        let refusals = super::entry::MAX_LINGERING_REFUSALS as u64 * 8 * 1024;
        // A held seat keeps its queue (full, at worst) and its session, not its buffers.
        let held = self.held_seats() as u64
            * (self.max_queued_bytes as u64 + self.channel_capacity as u64 * 32 + HELD_OVERHEAD);
        clients * per_connection + refusals + held
    }

    /// Most seats held at once: 0 with `resume_window` off.
    pub(crate) fn held_seats(&self) -> usize {
        match self.resume_window {
            Some(_) => self.max_held_seats.unwrap_or(self.max_clients),
            None => 0,
        }
    }

    /// Brings values that cannot work into range, saying so, rather than panicking later
    /// (a zero-capacity channel or a zero ping interval would panic inside tokio).
    pub(crate) fn sanitized(mut self) -> Self {
        if self.channel_capacity == 0 {
            tracing::warn!("channel_capacity 0 raised to 1");
            self.channel_capacity = 1;
        }
        if self.max_payload > MAX_PAYLOAD_LIMIT {
            tracing::warn!(
                max_payload = self.max_payload,
                "max_payload lowered to {MAX_PAYLOAD_LIMIT}"
            );
            self.max_payload = MAX_PAYLOAD_LIMIT;
        }
        // A client must be able to queue at least one largest frame.
        let largest_frame = self.max_payload + crate::protocol::FRAME_OVERHEAD;
        if self.max_queued_bytes < largest_frame {
            tracing::warn!(
                max_queued_bytes = self.max_queued_bytes,
                "max_queued_bytes raised to one largest frame ({largest_frame} bytes)"
            );
            self.max_queued_bytes = largest_frame;
        }
        // A joiner's confirmation (its `Joined`, member list and the room's state) is one
        // queue entry. An empty queue takes any entry, but a client switching rooms may
        // have frames queued: leave room for a full state's snapshot behind one largest
        // frame, or a joiner of a busy room would lose its confirmation for nothing.
        let snapshot = largest_frame.saturating_add(self.room_state.snapshot_bound());
        if self.max_queued_bytes < snapshot {
            tracing::warn!(
                max_queued_bytes = self.max_queued_bytes,
                "max_queued_bytes raised to one largest frame and a full room state's \
                 snapshot ({snapshot} bytes)"
            );
            self.max_queued_bytes = snapshot;
        }
        let min = Duration::from_millis(1);
        if self.write_timeout < min {
            tracing::warn!("write_timeout raised to 1 ms");
            self.write_timeout = min;
        }
        if self.ping_interval < min {
            tracing::warn!("ping_interval raised to 1 ms");
            self.ping_interval = min;
        }
        if self.stats_interval.is_some_and(|every| every < min) {
            tracing::warn!("stats_interval raised to 1 ms");
            self.stats_interval = Some(min);
        }
        if self.flush_interval.is_some_and(|every| every.is_zero()) {
            self.flush_interval = None;
        }
        if let Some(window) = self.resume_window {
            if window.is_zero() {
                self.resume_window = None;
            } else if window > MAX_RESUME_WINDOW {
                tracing::warn!("resume_window lowered to 1 h");
                self.resume_window = Some(MAX_RESUME_WINDOW);
            }
        }
        if self.idle_timeout < min {
            tracing::warn!("idle_timeout raised to 1 ms");
            self.idle_timeout = min;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_seats_add_their_queues_to_the_memory_bound_and_nothing_when_off() {
        let off = Config::default();
        let on = Config {
            resume_window: Some(Duration::from_secs(10)),
            max_held_seats: Some(10),
            ..Config::default()
        };
        let per_held =
            off.max_queued_bytes as u64 + off.channel_capacity as u64 * 32 + HELD_OVERHEAD;
        assert_eq!(on.memory_bound() - off.memory_bound(), 10 * per_held);
        // A bound without a limit on held seats: max_clients.
        let default_held = Config {
            resume_window: Some(Duration::from_secs(10)),
            ..Config::default()
        };
        assert_eq!(default_held.held_seats(), off.max_clients);
        assert_eq!(off.held_seats(), 0);
    }

    #[test]
    fn a_zero_resume_window_is_off_and_a_long_one_is_clamped() {
        let zero = Config {
            resume_window: Some(Duration::ZERO),
            ..Config::default()
        }
        .sanitized();
        assert_eq!(zero.resume_window, None);
        let long = Config {
            resume_window: Some(Duration::from_secs(86_400)),
            ..Config::default()
        }
        .sanitized();
        assert_eq!(long.resume_window, Some(MAX_RESUME_WINDOW));
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.bind, "0.0.0.0:7777");
        assert_eq!(config.max_clients, 1024);
        assert_eq!(config.max_payload, 64 * 1024);
        assert_eq!(config.idle_timeout, Duration::from_secs(31));
        assert_eq!(config.ping_interval, Duration::from_secs(13));
        assert_eq!(config.channel_capacity, 1024);
        assert_eq!(config.room_state.max_keys, 256);
        assert_eq!(config.room_state.max_bytes, 64 * 1024);
    }

    #[test]
    fn the_queue_leaves_room_for_a_full_room_state_snapshot() {
        let config = Config {
            max_payload: 1000,
            max_queued_bytes: 0,
            room_state: StateLimits {
                max_keys: 10,
                max_bytes: 5000,
            },
            ..Config::default()
        }
        .sanitized();
        let largest_frame = 1000 + crate::protocol::FRAME_OVERHEAD;
        let snapshot = 10 * crate::room::STATE_FRAME_OVERHEAD + 5000;
        assert_eq!(config.max_queued_bytes, largest_frame + snapshot);
    }

    #[test]
    fn values_that_cannot_work_are_brought_into_range() {
        let config = Config {
            channel_capacity: 0,
            max_payload: usize::MAX,
            ping_interval: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            ..Config::default()
        }
        .sanitized();
        assert_eq!(config.channel_capacity, 1);
        assert_eq!(config.max_payload, MAX_PAYLOAD_LIMIT);
        assert!(config.ping_interval > Duration::ZERO);
        assert!(config.idle_timeout > Duration::ZERO);
    }
}
