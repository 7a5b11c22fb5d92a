//! The clients: connecting and joining, then per client one publisher task (broadcasts at the
//! rate) and one receiver task (checks and times its room's broadcasts).
//!
//! Every payload carries the sender's member index in its room, a per-sender sequence number
//! and the send time on this process's monotonic clock ([`payload::now_ns`]), so a receiver
//! computes the latency itself and sees gaps and reordering per sender. The measuring window
//! is a span of that clock: a frame counts if it was *sent* inside it, on both sides.
//!
//! Receivers keep their own histograms and counts (returned when they end); what the progress
//! line shows is shared through atomics and a histogram each receiver merges into about twice
//! a second, so no delivery takes a lock.

use super::report::reason;
use crate::payload::{self, Header};
use ghost_sync::{Client, ClientReceiver, ClientSender, ServerEvent, SyncError};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// How often a receiver hands its latest latencies to the progress line.
const MERGE_EVERY: Duration = Duration::from_millis(500);

/// The measuring window, in [`payload::now_ns`] time: frames sent in `[start, end)` count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    fn contains(&self, ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&ns)
    }
}

/// A new latency histogram (microseconds, 3 significant digits, growing as needed: a
/// preallocated one for a minute's range would take ~140 KB per receiver).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
}

/// What the tasks share with the progress line and the coordinator.
pub(crate) struct Live {
    /// Clients joined and not (yet) disconnected.
    pub connected: AtomicUsize,
    /// Every delivery so far, warm-up included.
    pub deliveries: AtomicU64,
    /// Deliveries of frames sent in the window.
    pub window_received: AtomicU64,
    /// Clients the relay disconnected (or that lost their connection) during the run.
    pub disconnects: AtomicUsize,
    /// Latencies so far (µs), merged in by receivers every [`MERGE_EVERY`].
    pub latency: Mutex<Histogram<u64>>,
    /// Set once every client has joined and before anyone publishes.
    pub window: OnceLock<Window>,
    /// Where the run is, for the progress line (a [`Phase`] as `u8`).
    pub phase: AtomicU8,
}

/// The stages of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Connecting,
    WarmingUp,
    Measuring,
    Draining,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::WarmingUp => "warm-up",
            Self::Measuring => "measuring",
            Self::Draining => "draining",
        }
    }
}

impl Live {
    pub fn new() -> Self {
        Self {
            connected: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            window_received: AtomicU64::new(0),
            disconnects: AtomicUsize::new(0),
            latency: Mutex::new(histogram()),
            window: OnceLock::new(),
            phase: AtomicU8::new(Phase::Connecting as u8),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::WarmingUp,
            2 => Phase::Measuring,
            _ => Phase::Draining,
        }
    }

    /// The p99 latency so far, in µs.
    pub fn p99_us(&self) -> Option<u64> {
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        (!h.is_empty()).then(|| h.value_at_quantile(0.99))
    }
}

/// Why a client never took part.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// `connect` or `join`.
    pub stage: &'static str,
    /// A short stable name (`auth_failed`, `room_not_found`, ...).
    pub reason: String,
    /// The words (the relay's when it gave some).
    pub detail: String,
}

impl Failure {
    fn connect(err: &SyncError) -> Self {
        Self {
            stage: "connect",
            reason: reason(err).to_owned(),
            detail: err.to_string(),
        }
    }

    fn join(reason: &str, detail: String) -> Self {
        Self {
            stage: "join",
            reason: reason.to_owned(),
            detail,
        }
    }
}

/// The relay's answer to a join, as a reason name ("room not found: lobby" → `room_not_found`).
fn join_refusal(message: &str) -> &'static str {
    if message.starts_with("room not found") || message.starts_with("room deleted") {
        "room_not_found"
    } else if message.starts_with("room full") {
        "room_full"
    } else if message.starts_with("join rejected") {
        "join_rejected"
    } else {
        "join_error"
    }
}

/// Connects, checks the payload fits, joins `room` and waits for the relay's `Joined`.
pub(crate) async fn connect_and_join(
    addr: &str,
    token: Option<&str>,
    room: &str,
    payload_len: usize,
    deadline: Duration,
) -> Result<Client, Failure> {
    let attempt = async {
        let mut builder = Client::builder();
        if let Some(token) = token {
            builder = builder.token(token);
        }
        let mut client = builder
            .connect(addr)
            .await
            .map_err(|e| Failure::connect(&e))?;
        if payload_len > client.max_payload() {
            return Err(Failure::join(
                "payload_too_large",
                format!(
                    "the relay takes broadcasts of at most {} bytes; --payload is {payload_len}",
                    client.max_payload()
                ),
            ));
        }
        client
            .join(room)
            .await
            .map_err(|e| Failure::join(reason(&e), e.to_string()))?;
        loop {
            match client.recv().await {
                Ok(Some(ServerEvent::Joined { room_id, .. })) if room_id == room => {
                    return Ok(client)
                }
                Ok(Some(ServerEvent::Error(message))) => {
                    return Err(Failure::join(join_refusal(&message), message))
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Failure::join(
                        "closed_by_relay",
                        "the relay closed the connection".to_owned(),
                    ))
                }
                Err(e) => return Err(Failure::join(reason(&e), e.to_string())),
            }
        }
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Failure {
            stage: "connect",
            reason: "timeout".to_owned(),
            detail: format!("no welcome and join within {deadline:?}"),
        }),
    }
}

/// What a publisher did.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// Broadcasts sent, warm-up included.
    pub total: u64,
    /// Broadcasts sent in the window.
    pub in_window: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Broadcasts every `period` from `first` until the window ends.
///
/// Ticks missed while a broadcast waited for the socket are skipped
/// ([`MissedTickBehavior::Skip`]): the offered rate never exceeds the target, and what was
/// actually sent is what counts. A broadcast is never cancelled half-way (a cancelled one
/// would finish later, uncounted).
pub(crate) async fn publish(
    mut tx: ClientSender,
    member: u32,
    payload_len: usize,
    period: Duration,
    first: Instant,
    window: Window,
) -> Published {
    let mut out = Published::default();
    let mut buf = payload::template(payload_len);
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seq: u32 = 0;
    loop {
        ticks.tick().await;
        let sent_ns = payload::now_ns();
        if sent_ns >= window.end_ns {
            return out;
        }
        payload::write(
            &mut buf,
            Header {
                publisher: member,
                seq,
                sent_ns,
            },
        );
        if let Err(e) = tx.broadcast(&buf).await {
            out.error = Some(reason(&e).to_owned());
            return out;
        }
        seq = seq.wrapping_add(1);
        out.total += 1;
        if window.contains(sent_ns) {
            out.in_window += 1;
        }
    }
}

/// What a receiver saw.
#[derive(Debug)]
pub(crate) struct Received {
    /// Deliveries of frames sent in the window.
    pub in_window: u64,
    /// Latencies (µs) of those deliveries.
    pub latency: Histogram<u64>,
    /// Sequence numbers skipped between two deliveries from one sender (whole run).
    pub gaps: u64,
    /// Deliveries that came after a later one from the same sender.
    pub reordered: u64,
    /// Deliveries whose payload was not one of ours (wrong size, filler, sender index).
    pub malformed: u64,
    /// Why the connection ended before the run did; `None` if it lasted.
    pub disconnect: Option<String>,
}

/// Receives until `stop` turns true or the connection ends.
pub(crate) async fn receive(
    mut rx: ClientReceiver,
    room_size: usize,
    payload_len: usize,
    live: Arc<Live>,
    alive: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut out = Received {
        in_window: 0,
        latency: histogram(),
        gaps: 0,
        reordered: 0,
        malformed: 0,
        disconnect: None,
    };
    let mut recent = histogram();
    let mut next_seq: Vec<Option<u32>> = vec![None; room_size];
    let mut merge = tokio::time::interval(MERGE_EVERY);
    merge.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = merge.tick() => merge_into(&live, &mut recent),
            event = rx.recv() => match event {
                Ok(Some(ServerEvent::Broadcast { data, .. })) => {
                    let now = payload::now_ns();
                    let Ok(h) = payload::read(&data, payload_len) else {
                        out.malformed += 1;
                        continue;
                    };
                    let Some(expected) = next_seq.get_mut(h.publisher as usize) else {
                        out.malformed += 1;
                        continue;
                    };
                    match *expected {
                        Some(next) if h.seq < next => out.reordered += 1,
                        Some(next) => out.gaps += u64::from(h.seq - next),
                        None => {}
                    }
                    if expected.is_none_or(|next| h.seq >= next) {
                        *expected = Some(h.seq.wrapping_add(1));
                    }
                    let us = now.saturating_sub(h.sent_ns) / 1000;
                    record(&mut recent, us);
                    live.deliveries.fetch_add(1, Ordering::Relaxed);
                    if live.window.get().is_some_and(|w| w.contains(h.sent_ns)) {
                        out.in_window += 1;
                        record(&mut out.latency, us);
                        live.window_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    out.disconnect = Some("closed_by_relay".to_owned());
                    break;
                }
                Err(e) => {
                    out.disconnect = Some(reason(&e).to_owned());
                    break;
                }
            },
        }
    }
    merge_into(&live, &mut recent);
    if out.disconnect.is_some() {
        alive.store(false, Ordering::Release);
        live.connected.fetch_sub(1, Ordering::Relaxed);
        live.disconnects.fetch_add(1, Ordering::Relaxed);
    }
    out
}

/// Records `us`, growing the histogram if needed (`saturating_record` would clamp instead).
fn record(h: &mut Histogram<u64>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

fn merge_into(live: &Live, recent: &mut Histogram<u64>) {
    if recent.is_empty() {
        return;
    }
    let mut so_far = live.latency.lock().unwrap_or_else(|e| e.into_inner());
    // Both grow as needed, so adding cannot fail for want of range.
    let _ = so_far.add(&*recent);
    drop(so_far);
    recent.reset();
}

/// A joined client's sending half, waiting for the publishers to start.
pub(crate) struct SenderSlot {
    pub tx: ClientSender,
    /// The client's index in its room (the payload's sender field).
    pub index: u32,
}
