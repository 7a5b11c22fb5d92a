//! The link task: owns the relay's one connection to Redis, runs the queued [`Op`]s on it in
//! order, renews the lease and reaps dead relays, and reconnects (resubscribing) when the
//! connection breaks. Room frames skip it: they go straight into the connection
//! ([`Direct`](super::Direct)).
//!
//! [`commands`] turns each op into its Redis commands; [`push`](super::push) hands what
//! Redis pushes to the dispatcher.

mod commands;

use super::push::push_sender;
use super::{room_channel, scripts, LinkCounters, CONNECT_TIMEOUT, LEASE_TTL, RENEW_EVERY};
use crate::cluster::backplane::{Inbound, Inflow, Op};
use crate::sync::lock;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, RedisError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// What was lost toward and from the broker, as last logged: losses are counted in
/// `stats()` and, at most every [`REPORT_EVERY`], logged.
#[derive(Default)]
struct LossReport {
    at: Option<tokio::time::Instant>,
    publish_dropped: u64,
    inbound_dropped: u64,
}

/// How often at most the link logs what was lost.
const REPORT_EVERY: Duration = Duration::from_secs(2);

impl LossReport {
    fn log_news(&mut self, counters: &LinkCounters) {
        let now = tokio::time::Instant::now();
        if self.at.is_some_and(|at| now < at + REPORT_EVERY) {
            return;
        }
        self.at = Some(now);
        let publish = counters.publish_dropped.load(Ordering::Relaxed);
        let inbound = counters.inbound_dropped.load(Ordering::Relaxed);
        if publish > self.publish_dropped {
            tracing::warn!(
                frames = publish - self.publish_dropped,
                "frames for other relays dropped (the broker away or behind)"
            );
        }
        if inbound > self.inbound_dropped {
            tracing::warn!(
                messages = inbound - self.inbound_dropped,
                "messages from the broker dropped (this relay fell behind)"
            );
        }
        self.publish_dropped = publish;
        self.inbound_dropped = inbound;
    }
}

/// How long the link waits for any answer of the broker before it treats the connection as
/// lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping relay waits for the broker to take its goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the link shares with the relay's side of the backplane.
pub(super) struct Shared {
    pub(super) direct: Arc<super::Direct>,
    pub(super) inbound: mpsc::Sender<Inbound>,
    pub(super) inflow: Arc<Inflow>,
    pub(super) resync: Arc<Notify>,
    pub(super) up: Arc<AtomicBool>,
    pub(super) queued_bytes: Arc<AtomicUsize>,
    pub(super) counters: Arc<LinkCounters>,
}

pub(super) struct Link {
    client: redis::Client,
    url: String,
    prefix: String,
    relay: Arc<str>,
    incarnation: String,
    feed: String,
    control: String,
    /// Rooms whose bus this relay listens to: resubscribed after a reconnection.
    subscribed: HashSet<Arc<str>>,
    conn: Option<MultiplexedConnection>,
    /// Notified by the connection's push sender when the connection closes.
    lost: Arc<Notify>,
    shared: Shared,
}

fn broken(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

impl Link {
    pub(super) fn new(
        options: &super::RedisOptions,
        relay: Arc<str>,
        incarnation: u64,
        shared: Shared,
    ) -> Result<Self, String> {
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("bad broker URL {}: {e}", options.url))?;
        // Pub/sub messages arrive as RESP3 pushes on the same connection as the commands.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| format!("bad broker URL {}: {e}", options.url))?;
        let prefix = options.key_prefix.clone();
        Ok(Self {
            client,
            url: options.url.clone(),
            feed: format!("{prefix}:feed"),
            control: format!("{prefix}:ctl:{relay}"),
            prefix,
            relay,
            incarnation: incarnation.to_string(),
            subscribed: HashSet::new(),
            conn: None,
            lost: Arc::new(Notify::new()),
            shared,
        })
    }

    /// Connects and subscribes to the feed, this relay's control channel and every room
    /// this relay has members in; then asks the dispatcher to resync.
    pub(super) async fn connect(&mut self) -> Result<(), String> {
        let lost = Arc::new(Notify::new());
        let sender = push_sender(
            self.shared.inbound.clone(),
            Arc::clone(&self.shared.inflow),
            Arc::clone(&lost),
            Arc::clone(&self.shared.counters),
            self.feed.clone(),
            self.control.clone(),
            format!("{}:bus:", self.prefix),
        );
        let config = AsyncConnectionConfig::new()
            .set_push_sender(sender)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            // The link puts its own deadline on what it waits for (`RESPONSE_TIMEOUT`): a
            // publish, which waits for nothing, then needs no timer.
            .set_response_timeout(None)
            .set_pipeline_buffer_size(self.shared.direct.capacity);
        let failed = |e: RedisError| format!("the broker at {}: {e}", self.url);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(failed)?;
        conn.subscribe(&[self.feed.as_str(), self.control.as_str()])
            .await
            .map_err(failed)?;
        let rooms: Vec<String> = self
            .subscribed
            .iter()
            .map(|room| room_channel(&self.prefix, room))
            .collect();
        if !rooms.is_empty() {
            conn.subscribe(&rooms).await.map_err(failed)?;
        }
        *lock(&self.shared.direct.conn) = Some(conn.clone());
        self.conn = Some(conn);
        self.lost = lost;
        self.shared.up.store(true, Ordering::Release);
        self.shared.resync.notify_one();
        tracing::info!(url = %self.url, relay = %self.relay, "connected to the broker");
        Ok(())
    }

    fn down(&mut self, why: &str) {
        *lock(&self.shared.direct.conn) = None;
        if self.conn.take().is_some() {
            self.shared.up.store(false, Ordering::Release);
            self.shared
                .counters
                .disconnects
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(url = %self.url, why, "lost the broker: reconnecting");
        }
    }

    pub(super) async fn run(mut self, mut ops: mpsc::Receiver<Op>, shutdown: CancellationToken) {
        let mut lease =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::from_millis(50);
        let mut reported = LossReport::default();
        loop {
            reported.log_news(&self.shared.counters);
            if self.conn.is_none() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    op = ops.recv() => match op {
                        Some(op) => self.fail(op),
                        None => return,
                    },
                    _ = tokio::time::sleep(backoff) => match self.connect_in_time().await {
                        Ok(()) => backoff = Duration::from_millis(50),
                        Err(err) => {
                            tracing::debug!(%err, "broker still unreachable");
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    },
                }
                continue;
            }
            let lost = Arc::clone(&self.lost);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // What the handle did just before the shutdown (a room deleted, say)
                    // still reaches the broker, within the goodbye's patience.
                    let pending = self.finish_queued(&mut ops);
                    if tokio::time::timeout(GOODBYE_TIMEOUT, pending).await.is_err() {
                        tracing::warn!("the broker did not take the last changes in time");
                    }
                    self.goodbye().await;
                    return;
                }
                _ = lost.notified() => self.down("connection closed"),
                _ = lease.tick() => {
                    if tokio::time::timeout(RESPONSE_TIMEOUT, self.lease()).await.is_err() {
                        self.down("the broker did not answer the lease renewal in time");
                    }
                }
                op = ops.recv() => match op {
                    Some(op) => self.execute_in_time(op).await,
                    None => return,
                },
            }
        }
    }

    /// Runs the ops already queued, then returns.
    async fn finish_queued(&mut self, ops: &mut mpsc::Receiver<Op>) {
        while let Ok(op) = ops.try_recv() {
            if self.conn.is_none() {
                return;
            }
            self.execute(op).await;
        }
    }

    /// [`connect`](Link::connect), given up on after [`CONNECT_TIMEOUT`].
    async fn connect_in_time(&mut self) -> Result<(), String> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .unwrap_or_else(|_| Err("the broker did not answer in time".into()))
    }

    /// Runs an op, treating a broker that does not answer within [`RESPONSE_TIMEOUT`] as
    /// lost (the op's answer, if it wanted one, then says the broker is unavailable).
    async fn execute_in_time(&mut self, op: Op) {
        if tokio::time::timeout(RESPONSE_TIMEOUT, self.execute(op))
            .await
            .is_err()
        {
            self.down("the broker did not answer in time");
        }
    }

    async fn lease(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let renewed = scripts::RENEW
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(&*self.relay)
            .arg(&self.incarnation)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async::<u64>(conn)
            .await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(relay = %self.relay, "this relay was declared dead: writing its state back");
                self.shared.resync.notify_one();
            }
            Err(err) => {
                if broken(&err) {
                    return self.down(&err.to_string());
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match scripts::REAP
            .prepare_invoke()
            .arg(&self.prefix)
            .invoke_async::<u64>(conn)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(clients = n, "reaped the clients of dead relays"),
            Err(err) if broken(&err) => self.down(&err.to_string()),
            Err(err) => tracing::error!(%err, "reaping dead relays failed"),
        }
    }

    /// At shutdown: this relay's clients leave everywhere now, not when its lease runs out.
    async fn goodbye(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut bye = scripts::GOODBYE.prepare_invoke();
        bye.arg(&self.prefix)
            .arg(&*self.relay)
            .arg(&self.incarnation);
        // A frozen broker must not hold up the shutdown: the lease runs out instead.
        match tokio::time::timeout(GOODBYE_TIMEOUT, bye.invoke_async::<u64>(conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(%err, "could not say goodbye to the broker"),
            Err(_) => tracing::warn!("the broker did not take the goodbye in time"),
        }
    }
}
