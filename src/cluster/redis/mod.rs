//! The Redis backplane (feature `redis`): one RESP3 connection per relay carries the bus
//! (`PUBLISH` / `SUBSCRIBE`, one channel per room) and the registry (Lua scripts, see
//! [`scripts`]), in one order; [`link`] keeps it up.

mod direct;
mod events;
mod link;
mod push;
mod scripts;

use super::backplane::{Backplane, Inbound, Inflow, Op};
use bytes::Bytes;
pub(crate) use direct::Direct;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// How long `run()` waits for the broker before it fails.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A relay renews its lease this often…
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(2);
/// …and a lease not renewed for this long is reaped by any other relay.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(6);
/// Requests waiting for the broker connection, at most.
const MAX_QUEUED_OPS: usize = 65_536;
/// Bytes of frames waiting to be published, at most.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Messages from the broker waiting for the dispatcher, at most.
pub(crate) const MAX_INBOUND: usize = 65_536;

/// How a relay joins other relays over Redis: the broker's URL, the prefix of every key and
/// channel it uses, and this relay's name. Give it to
/// [`ServerBuilder::redis`](crate::ServerBuilder::redis).
///
/// ```
/// use ghost_sync::cluster::RedisOptions;
///
/// let options = RedisOptions::new("redis://127.0.0.1:6379")
///     .key_prefix("mygame")
///     .relay_name("eu-1");
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    pub(crate) url: String,
    pub(crate) key_prefix: String,
    pub(crate) relay_name: Option<String>,
}

impl RedisOptions {
    /// Redis at `url` (`redis://host:port[/db]`, with `user:password@` if needed), with the
    /// key prefix `ghost-sync` and a generated relay name.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "ghost-sync".to_owned(),
            relay_name: None,
        }
    }

    /// The prefix of every key and channel (default `ghost-sync`). Relays share rooms if
    /// and only if they use the same broker and the same prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// This relay's name, unique among the relays sharing the prefix (default:
    /// `relay-` and a random id). A relay restarted under its old name takes over from its
    /// dead predecessor at once, instead of after the lease runs out.
    pub fn relay_name(mut self, name: impl Into<String>) -> Self {
        self.relay_name = Some(name.into());
        self
    }

    pub(crate) fn name(&self) -> String {
        self.relay_name
            .clone()
            .unwrap_or_else(|| format!("relay-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// Counters the backplane keeps for `stats()`.
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    /// Frames not published: the queue was full or the broker away.
    pub(crate) publish_dropped: std::sync::atomic::AtomicU64,
    /// Messages from the broker dropped because the dispatcher was behind.
    pub(crate) inbound_dropped: std::sync::atomic::AtomicU64,
    /// Times the connection to the broker was lost.
    pub(crate) disconnects: std::sync::atomic::AtomicU64,
}

/// The relay's side of the Redis link: frames go straight into the connection, everything
/// else through a bounded queue into the link task.
pub(crate) struct RedisBackplane {
    direct: Arc<Direct>,
    ops: mpsc::Sender<Op>,
    queued_bytes: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
    pub(crate) counters: Arc<LinkCounters>,
}

/// What [`connect`] gives the relay: the backplane, and the receiving end of what it hears.
pub(crate) struct Connected {
    pub(crate) backplane: RedisBackplane,
    pub(crate) inbound: mpsc::Receiver<Inbound>,
    pub(crate) inflow: Arc<Inflow>,
    pub(crate) resync: Arc<Notify>,
}

/// Connects to the broker (failing within [`CONNECT_TIMEOUT`] if it cannot), subscribes to
/// the feed and this relay's control channel, and starts the link task, which keeps the
/// connection up until `shutdown`.
pub(crate) async fn connect(
    options: &RedisOptions,
    max_payload: usize,
    relay: Arc<str>,
    incarnation: u64,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<Connected, String> {
    let (ops_tx, ops_rx) = mpsc::channel(MAX_QUEUED_OPS);
    let (inbound_tx, inbound) = mpsc::channel(MAX_INBOUND);
    let resync = Arc::new(Notify::new());
    let up = Arc::new(AtomicBool::new(false));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let counters = Arc::new(LinkCounters::default());
    let inflow = Arc::new(Inflow::default());
    let direct = Arc::new(Direct::new(&options.key_prefix, incarnation, max_payload));
    let mut link = link::Link::new(
        options,
        relay,
        incarnation,
        link::Shared {
            direct: Arc::clone(&direct),
            inbound: inbound_tx,
            inflow: Arc::clone(&inflow),
            resync: Arc::clone(&resync),
            up: Arc::clone(&up),
            queued_bytes: Arc::clone(&queued_bytes),
            counters: Arc::clone(&counters),
        },
    )?;
    tokio::time::timeout(CONNECT_TIMEOUT, link.connect())
        .await
        .map_err(|_| {
            format!(
                "the broker at {} did not answer within {CONNECT_TIMEOUT:?}",
                options.url
            )
        })??;
    tasks.spawn(link.run(ops_rx, shutdown));
    Ok(Connected {
        backplane: RedisBackplane {
            direct,
            ops: ops_tx,
            queued_bytes,
            up,
            counters,
        },
        inbound,
        inflow,
        resync,
    })
}

impl Backplane for RedisBackplane {
    fn submit(&self, op: Op) -> bool {
        if let Op::Publish { room, seq, frame } = &op {
            let sent = self.direct.publish(room, *seq, frame);
            if !sent {
                self.counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return sent;
        }
        let size = match &op {
            Op::Control { message, .. } => Some(message.len()),
            Op::SetState { key, value, .. } => Some(key.len() + value.len()),
            _ => None,
        };
        if let Some(size) = size {
            // Traffic is dropped rather than queued while the broker is away or behind: it
            // is stale by the time it could go, and it must never grow without bound.
            let up = self.up.load(Ordering::Acquire);
            let sent = up
                && self.queued_bytes.fetch_add(size, Ordering::AcqRel) + size <= MAX_QUEUED_BYTES
                && self.ops.try_send(op).is_ok();
            if !sent {
                if up {
                    // Counted by the `fetch_add` above (`up` was read once).
                    self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                }
                self.counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return sent;
        }
        match self.ops.try_send(op) {
            Ok(()) => true,
            // A registry change must not be lost to a burst of traffic: it waits for room
            // in a task of its own. At most one per connection event is ever in flight.
            Err(mpsc::error::TrySendError::Full(op)) => {
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        let ops = self.ops.clone();
                        runtime.spawn(async move {
                            let _ = ops.send(op).await;
                        });
                        true
                    }
                    Err(_) => false,
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The channel of a room's bus.
pub(crate) fn room_channel(prefix: &str, room: &str) -> String {
    format!("{prefix}:bus:{room}")
}

/// Bytes of a pub/sub message, shared without a copy.
pub(crate) fn into_bytes(value: redis::Value) -> Option<Bytes> {
    match value {
        redis::Value::BulkString(b) => Some(Bytes::from(b)),
        _ => None,
    }
}
