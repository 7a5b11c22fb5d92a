//! The link task: owns the relay's one connection to Redis, runs the queued [`Op`]s on it in
//! order (consecutive publishes as one pipeline), renews the lease and reaps dead relays,
//! and reconnects (resubscribing) when the connection breaks.
//!
//! Messages Redis pushes (RESP3) are parsed on the connection's own task and handed to the
//! dispatcher through a bounded queue: when it is full they are dropped and counted, so a
//! slow relay can never make the broker's messages pile up in memory.

use super::events::{capacity_field, parse_event, parse_snapshot};
use super::{into_bytes, room_channel, scripts, LinkCounters, LEASE_TTL, RENEW_EVERY};
use crate::cluster::backplane::{BrokerError, Inbound, LocalState, Op, Restored, Seat};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use redis::{RedisError, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Publishes sent in one pipeline, at most.
const MAX_BATCH: usize = 512;
/// How long a stopping relay waits for the broker to take its goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the link shares with the relay's side of the backplane.
pub(super) struct Shared {
    pub(super) inbound: mpsc::Sender<Inbound>,
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
    /// An op taken from the queue while gathering a batch of publishes.
    stash: Option<Op>,
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
            stash: None,
            shared,
        })
    }

    /// Connects and subscribes to the feed, this relay's control channel and every room
    /// this relay has members in; then asks the dispatcher to resync.
    pub(super) async fn connect(&mut self) -> Result<(), String> {
        let lost = Arc::new(Notify::new());
        let sender = push_sender(
            self.shared.inbound.clone(),
            Arc::clone(&lost),
            Arc::clone(&self.shared.counters),
            self.feed.clone(),
            self.control.clone(),
            format!("{}:bus:", self.prefix),
        );
        let config = AsyncConnectionConfig::new()
            .set_push_sender(sender)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)));
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
        self.conn = Some(conn);
        self.lost = lost;
        self.shared.up.store(true, Ordering::Release);
        self.shared.resync.notify_one();
        tracing::info!(url = %self.url, relay = %self.relay, "connected to the broker");
        Ok(())
    }

    fn down(&mut self, why: &str) {
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
        loop {
            if self.conn.is_none() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    op = ops.recv() => match op {
                        Some(op) => self.fail(op),
                        None => return,
                    },
                    _ = tokio::time::sleep(backoff) => match self.connect().await {
                        Ok(()) => backoff = Duration::from_millis(50),
                        Err(err) => {
                            tracing::debug!(%err, "broker still unreachable");
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    },
                }
                continue;
            }
            if let Some(op) = self.stash.take() {
                self.execute(op, &mut ops).await;
                continue;
            }
            let lost = Arc::clone(&self.lost);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.goodbye().await;
                    return;
                }
                _ = lost.notified() => self.down("connection closed"),
                _ = lease.tick() => self.lease().await,
                op = ops.recv() => match op {
                    Some(op) => self.execute(op, &mut ops).await,
                    None => return,
                },
            }
        }
    }

    /// An op that arrived while the broker is away: traffic is dropped and counted, answers
    /// say so, and subscriptions are remembered for the reconnection.
    fn fail(&mut self, op: Op) {
        fn unavailable<T>() -> Result<T, BrokerError> {
            Err(BrokerError("the broker is unavailable".into()))
        }
        match op {
            Op::Publish { message, .. } | Op::Control { message, .. } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(message.len(), Ordering::AcqRel);
                self.shared
                    .counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Op::Subscribe(room) => {
                self.subscribed.insert(room);
            }
            Op::Unsubscribe(room) => {
                self.subscribed.remove(&room);
            }
            Op::CreateRoom { answer, .. } => {
                // Written back by the restore that follows the reconnection.
                if let Some(answer) = answer {
                    let _ = answer.send(unavailable());
                }
            }
            Op::DeleteRoom { room, answer } => {
                if answer.is_none() {
                    tracing::warn!(room_id = %room, "the broker is away: this delete is undone when it comes back");
                }
                if let Some(answer) = answer {
                    let _ = answer.send(unavailable());
                }
            }
            Op::Join { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::CountMembers { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::Restore { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::Snapshot { answer } => {
                let _ = answer.send(unavailable());
            }
            // Clients and memberships are written back by the restore that follows the
            // reconnection; metadata is not (the broker's copy, if it kept one, wins).
            Op::SetMeta { room, key, .. } => {
                tracing::warn!(room_id = %room, key, "the broker is away: metadata change not shared");
            }
            Op::Leave { .. } | Op::ClientConnected { .. } | Op::ClientDisconnected { .. } => {}
        }
    }

    async fn execute(&mut self, op: Op, ops: &mut mpsc::Receiver<Op>) {
        if matches!(op, Op::Publish { .. } | Op::Control { .. }) {
            return self.publish(op, ops).await;
        }
        let Some(conn) = self.conn.as_mut() else {
            return self.fail(op);
        };
        let prefix = self.prefix.as_str();
        let relay = &*self.relay;
        let result: Result<(), RedisError> = match op {
            Op::Subscribe(room) => {
                let done = conn.subscribe(room_channel(prefix, &room)).await;
                self.subscribed.insert(room);
                done
            }
            Op::Unsubscribe(room) => {
                let done = conn.unsubscribe(room_channel(prefix, &room)).await;
                self.subscribed.remove(&room);
                done
            }
            Op::CreateRoom {
                room,
                max_clients,
                answer,
            } => {
                let run = scripts::CREATE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .arg(capacity_field(max_clients))
                    .invoke_async::<u64>(conn)
                    .await;
                answer_with(answer, run.as_ref().map(|&generation| generation != 0));
                run.map(drop)
            }
            Op::DeleteRoom { room, answer } => {
                let run = scripts::DELETE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .invoke_async::<u64>(conn)
                    .await;
                answer_with(answer, run.as_ref().map(|&n| n == 1));
                run.map(drop)
            }
            Op::SetMeta { room, key, value } => scripts::SET_META
                .prepare_invoke()
                .arg(prefix)
                .arg(&*room)
                .arg(key)
                .arg(value)
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::Join {
                room,
                client,
                answer,
            } => {
                let run = scripts::JOIN
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(relay)
                    .arg(client.to_string())
                    .arg(&*room)
                    .invoke_async::<String>(conn)
                    .await;
                let seat = match run.as_deref() {
                    Ok("ok") => Ok(Seat::Taken),
                    Ok("full") => Ok(Seat::Full),
                    Ok("missing") => Ok(Seat::NoRoom),
                    Ok(_) => {
                        // This relay's lease is gone: it must write its state back first.
                        self.shared.resync.notify_one();
                        Err(BrokerError("the relay is resyncing with the broker".into()))
                    }
                    Err(err) => Err(BrokerError(err.to_string())),
                };
                let _ = answer.send(seat);
                run.map(drop)
            }
            Op::Leave { room, client } => scripts::LEAVE
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .arg(&*room)
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::ClientConnected { client, record } => scripts::HELLO
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .arg(record.encode())
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::ClientDisconnected { client } => scripts::BYE
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::CountMembers { room, answer } => {
                let run = scripts::COUNT
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .invoke_async::<i64>(conn)
                    .await;
                let _ = answer.send(
                    run.as_ref()
                        .map(|&n| usize::try_from(n).ok())
                        .map_err(|e| BrokerError(e.to_string())),
                );
                run.map(drop)
            }
            Op::Restore { state, answer } => {
                let mut invocation = scripts::RESTORE.prepare_invoke();
                restore_args(&mut invocation, prefix, relay, &self.incarnation, &state);
                let run = invocation.invoke_async::<(String, Vec<String>)>(conn).await;
                let _ = answer.send(
                    run.as_ref()
                        .map(|(epoch, full)| Restored {
                            epoch: epoch.clone(),
                            full: full
                                .iter()
                                .filter_map(|c| uuid::Uuid::parse_str(c).ok())
                                .collect(),
                        })
                        .map_err(|e| BrokerError(e.to_string())),
                );
                run.map(drop)
            }
            Op::Snapshot { answer } => {
                let run = scripts::SNAPSHOT
                    .prepare_invoke()
                    .arg(prefix)
                    .invoke_async::<Value>(conn)
                    .await;
                let _ = answer.send(match &run {
                    Ok(value) => parse_snapshot(value).ok_or_else(|| {
                        BrokerError("the broker sent a snapshot this relay cannot read".into())
                    }),
                    Err(e) => Err(BrokerError(e.to_string())),
                });
                run.map(drop)
            }
            Op::Publish { .. } | Op::Control { .. } => Ok(()),
        };
        if let Err(err) = result {
            if broken(&err) {
                self.down(&err.to_string());
            } else {
                tracing::error!(%err, "the broker refused a registry change");
            }
        }
    }

    /// Sends `first` and the publishes queued right behind it as one pipeline: one write,
    /// one round trip, however many frames.
    async fn publish(&mut self, first: Op, ops: &mut mpsc::Receiver<Op>) {
        let mut pipe = redis::pipe();
        let mut bytes = 0;
        let mut count = 0;
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Publish { room, message } => {
                    bytes += message.len();
                    pipe.cmd("PUBLISH")
                        .arg(room_channel(&self.prefix, &room))
                        .arg(&message[..])
                        .ignore();
                }
                Op::Control { relay, message } => {
                    bytes += message.len();
                    pipe.cmd("PUBLISH")
                        .arg(format!("{}:ctl:{relay}", self.prefix))
                        .arg(&message[..])
                        .ignore();
                }
                other => {
                    self.stash = Some(other);
                    break;
                }
            }
            count += 1;
            if count < MAX_BATCH {
                next = ops.try_recv().ok();
            }
        }
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        let Some(conn) = self.conn.as_mut() else {
            self.shared
                .counters
                .publish_dropped
                .fetch_add(count as u64, Ordering::Relaxed);
            return;
        };
        if let Err(err) = pipe.query_async::<()>(conn).await {
            self.shared
                .counters
                .publish_dropped
                .fetch_add(count as u64, Ordering::Relaxed);
            if broken(&err) {
                self.down(&err.to_string());
            }
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

fn answer_with(
    answer: Option<crate::cluster::backplane::Answer<bool>>,
    result: Result<bool, &RedisError>,
) {
    if let Some(answer) = answer {
        let _ = answer.send(result.map_err(|e| BrokerError(e.to_string())));
    }
}

fn restore_args(
    invocation: &mut redis::ScriptInvocation<'_>,
    prefix: &str,
    relay: &str,
    incarnation: &str,
    state: &LocalState,
) {
    invocation
        .arg(prefix)
        .arg(relay)
        .arg(incarnation)
        .arg(LEASE_TTL.as_millis() as u64)
        .arg(state.epoch.as_deref().unwrap_or(""))
        .arg(state.rooms.len());
    for room in &state.rooms {
        invocation
            .arg(&room.id)
            .arg(room.generation)
            .arg(capacity_field(room.max_clients))
            .arg(room.meta.len());
        for (key, value) in &room.meta {
            invocation.arg(key).arg(value);
        }
    }
    for (client, record, room) in &state.clients {
        invocation
            .arg(client.to_string())
            .arg(record.encode())
            .arg(room.as_deref().unwrap_or(""));
    }
}

/// What the connection does with each message Redis pushes: parse it and queue it for the
/// dispatcher without waiting; a full queue drops it (and counts it).
fn push_sender(
    inbound: mpsc::Sender<Inbound>,
    lost: Arc<Notify>,
    counters: Arc<LinkCounters>,
    feed: String,
    control: String,
    room_prefix: String,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        let message = match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    return Ok(());
                };
                let (Some(channel), Some(payload)) = (into_bytes(channel), into_bytes(payload))
                else {
                    return Ok(());
                };
                if channel[..] == *feed.as_bytes() {
                    match parse_event(&payload) {
                        Some((seq, event)) => Inbound::State { seq, event },
                        None => {
                            tracing::warn!("unreadable feed message from the broker");
                            return Ok(());
                        }
                    }
                } else if channel[..] == *control.as_bytes() {
                    Inbound::Control(payload)
                } else if channel.starts_with(room_prefix.as_bytes()) {
                    Inbound::Room {
                        room: channel.slice(room_prefix.len()..),
                        message: payload,
                    }
                } else {
                    return Ok(());
                }
            }
            PushKind::Disconnection => {
                lost.notify_one();
                return Ok(());
            }
            _ => return Ok(()),
        };
        if inbound.try_send(message).is_err() {
            counters.inbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
