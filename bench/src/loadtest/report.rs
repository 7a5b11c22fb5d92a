//! The load tester's report: what a run measured, as text for a person or one JSON object
//! (its fields are listed on [`Report::to_json`]), and the names it gives to the ways a
//! client can fail or be disconnected.

use ghost_sync::SyncError;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A short stable name for why a call failed or a connection ended (`auth_failed`,
/// `idle_timeout`, `slow_consumer`, `connection_refused`, ...).
pub fn reason(err: &SyncError) -> &'static str {
    match err {
        SyncError::IdleTimeout => "idle_timeout",
        SyncError::PingTimeout => "ping_timeout",
        SyncError::ConnectionClosed => "connection_closed",
        SyncError::ConnectionReset => "connection_reset",
        SyncError::PayloadTooLarge => "payload_too_large",
        SyncError::Protocol(_) => "protocol",
        SyncError::RoomNotFound(_) => "room_not_found",
        SyncError::ServerFull => "server_full",
        SyncError::ConnectRejected(_) => "connect_rejected",
        SyncError::AuthFailed(_) => "auth_failed",
        SyncError::Kicked(_) => "kicked",
        SyncError::SlowConsumer => "slow_consumer",
        SyncError::Disconnected(_) => "disconnected",
        SyncError::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection_refused",
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "io",
        },
        _ => "other",
    }
}

/// What one run measured. Deliveries, loss and latency count only frames *sent* in the
/// measuring window, at receivers that stayed connected to the end (a client the relay
/// dropped shows under [`disconnects`](Report::disconnects) instead).
#[derive(Debug, Clone)]
pub struct Report {
    /// The relay's address.
    pub addr: String,
    /// Rooms joined (planned).
    pub rooms: usize,
    /// Clients planned.
    pub clients: usize,
    /// Clients that connected and joined.
    pub joined: usize,
    /// Broadcasts per second per client (target).
    pub rate_hz: f64,
    /// Bytes per broadcast.
    pub payload_bytes: usize,
    /// Warm-up before the window, seconds.
    pub warmup_secs: f64,
    /// The measuring window, seconds.
    pub window_secs: f64,
    /// Broadcasts sent in the window.
    pub published: u64,
    /// Broadcasts sent in the whole run (warm-up included).
    pub published_total: u64,
    /// Deliveries the window's broadcasts should make: each to every other member of its
    /// room that stayed connected.
    pub expected: u64,
    /// Those deliveries that arrived.
    pub received: u64,
    /// `expected - received` (0 if more came).
    pub lost: u64,
    /// Sequence numbers skipped between two deliveries from one sender (the whole run).
    pub gaps: u64,
    /// Deliveries that came after a later one from the same sender.
    pub reordered: u64,
    /// Deliveries whose payload was not one this run sent.
    pub malformed: u64,
    /// Latency of the window's deliveries, microseconds.
    pub latency_us: Histogram<u64>,
    /// Clients disconnected during the run, by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Clients that could not connect, by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Clients connected but refused their room, by reason.
    pub join_failures: BTreeMap<String, u64>,
    /// Publishers whose broadcast failed, by reason.
    pub publish_errors: BTreeMap<String, u64>,
    /// What went wrong, in words, with advice where there is some.
    pub errors: Vec<String>,
}

impl Report {
    /// Window deliveries per second.
    pub fn deliveries_per_sec(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.received as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// `lost / expected`, 0 when nothing was expected.
    pub fn loss_ratio(&self) -> f64 {
        if self.expected > 0 {
            self.lost as f64 / self.expected as f64
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (0.5, 0.99, ...) in µs; `None` without deliveries.
    pub fn latency_at(&self, q: f64) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q))
    }

    /// 0, or 1 when no client could connect and join (nothing was measured).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.joined == 0)
    }

    /// The report as one JSON object:
    ///
    /// `addr`, `rooms`, `clients`, `joined`, `rate_hz`, `payload_bytes`, `warmup_s`,
    /// `window_s`, `published`, `published_total`, `expected`, `received`, `lost`, `loss`
    /// (ratio), `gaps`, `reordered`, `malformed`, `deliveries_per_sec`, `latency_us`
    /// (`{count, mean, p50, p99, p999, max}`, or `null` without deliveries), `disconnects`,
    /// `connect_failures`, `join_failures`, `publish_errors` (objects of reason → count) and
    /// `errors` (strings).
    pub fn to_json(&self) -> Value {
        let latency = (!self.latency_us.is_empty()).then(|| {
            let h = &self.latency_us;
            json!({
                "count": h.len(),
                "mean": (h.mean() * 10.0).round() / 10.0,
                "p50": h.value_at_quantile(0.5),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
            })
        });
        json!({
            "addr": self.addr,
            "rooms": self.rooms,
            "clients": self.clients,
            "joined": self.joined,
            "rate_hz": self.rate_hz,
            "payload_bytes": self.payload_bytes,
            "warmup_s": self.warmup_secs,
            "window_s": self.window_secs,
            "published": self.published,
            "published_total": self.published_total,
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost,
            "loss": self.loss_ratio(),
            "gaps": self.gaps,
            "reordered": self.reordered,
            "malformed": self.malformed,
            "deliveries_per_sec": (self.deliveries_per_sec() * 10.0).round() / 10.0,
            "latency_us": latency,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "join_failures": self.join_failures,
            "publish_errors": self.publish_errors,
            "errors": self.errors,
        })
    }
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.3} ms", us as f64 / 1000.0),
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ghost-sync-loadtest against {}: {} clients in {} rooms, {} Hz each, {} B payloads",
            self.addr, self.clients, self.rooms, self.rate_hz, self.payload_bytes
        )?;
        writeln!(f, "joined        {} of {}", self.joined, self.clients)?;
        if !self.connect_failures.is_empty() {
            writeln!(f, "not connected {}", counts(&self.connect_failures))?;
        }
        if !self.join_failures.is_empty() {
            writeln!(f, "join refused  {}", counts(&self.join_failures))?;
        }
        if self.joined > 0 {
            writeln!(
                f,
                "window        {:.2} s (after {:.2} s of warm-up)",
                self.window_secs, self.warmup_secs
            )?;
            writeln!(
                f,
                "published     {} broadcasts ({:.1}/s)",
                self.published,
                self.published as f64 / self.window_secs.max(f64::MIN_POSITIVE)
            )?;
            writeln!(
                f,
                "deliveries    {} of {} expected: {:.1}/s",
                self.received,
                self.expected,
                self.deliveries_per_sec()
            )?;
            writeln!(
                f,
                "loss          {} ({:.3}%); sequence gaps {}, reordered {}, malformed {}",
                self.lost,
                self.loss_ratio() * 100.0,
                self.gaps,
                self.reordered,
                self.malformed
            )?;
            writeln!(
                f,
                "latency       p50 {}  p99 {}  p99.9 {}  max {}",
                ms(self.latency_at(0.5)),
                ms(self.latency_at(0.99)),
                ms(self.latency_at(0.999)),
                ms((!self.latency_us.is_empty()).then(|| self.latency_us.max()))
            )?;
            writeln!(f, "disconnects   {}", counts(&self.disconnects))?;
            if !self.publish_errors.is_empty() {
                writeln!(f, "publish errors {}", counts(&self.publish_errors))?;
            }
        }
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}
