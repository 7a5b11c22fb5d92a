//! The load itself: a [`Swarm`] of connections to one server, grouped in rooms, with
//! publishers, receivers and the per-room window of unread messages.
//!
//! **Rooms and connections.** A room of size *N* has *N* connections for every server.
//! ghost-sync: *N* members, the publisher is one of them and gets no copy of its own message,
//! so a message reaches *N*−1 receivers. redis and nats, one publisher per room: a separate
//! publisher connection and *N*−1 subscribers. Every member publishing: NATS members
//! subscribe and publish on one connection with echo off (*N*−1 receivers, like
//! ghost-sync); redis members subscribe and publish on one RESP3 connection, and redis has
//! no echo suppression, so each message also comes back to its sender (*N* deliveries,
//! counted as deliveries, since the server did the work, and checked like the others).
//!
//! **The window.** A room has at most `W` unread messages: a message counts as read when the
//! room's last receiver has it. Publishers take a slot before sending; the receiver that
//! completes a message frees it. Lost messages (a gap in the sequence) free their slots too,
//! so a loss shows as loss, not as a hang.
//!
//! **Pacing.** [`Pacing::Window`]: every publisher sends as fast as the window lets it
//! (saturation). [`Pacing::Rate`]: open loop at a fixed total rate, from one paced thread;
//! each payload carries its *scheduled* send time, so a stall anywhere (the publisher's
//! socket, the server, a full window) shows in the latency instead of being hidden.
//!
//! **Checks.** Every delivery goes through a [`SeqChecker`]: size, filler, room, order, loss.

use crate::check::{Outcome, SeqChecker};
use crate::payload::{self, now_ns, Header};
use crate::proto::{self, ghost, nats, resp, Event, Proto};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

/// Who publishes in each room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubMode {
    /// One publisher per room (member 0).
    One,
    /// Every member publishes.
    All,
    /// Nobody publishes and every member subscribes (idle connections).
    Idle,
}

impl PubMode {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PubMode::One => "one",
            PubMode::All => "all",
            PubMode::Idle => "idle",
        }
    }
}

/// The shape of a swarm: which server, how many rooms of what size, what payload.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The server's protocol.
    pub proto: Proto,
    /// The server's address.
    pub addr: SocketAddr,
    /// Global index of the first room (rooms are named `room-{i}`).
    pub first_room: usize,
    /// Number of rooms.
    pub rooms: usize,
    /// Connections per room.
    pub room_size: usize,
    /// Payload size in bytes (at least [`payload::HEADER_LEN`]).
    pub payload: usize,
    /// Who publishes.
    pub mode: PubMode,
    /// Make the last member of the first room a slow consumer: a tiny receive buffer, left
    /// out of the window and of the latency, and stalled (never reads again) during phases
    /// that ask for it.
    pub slow_member: bool,
    /// The largest window that runs on this swarm will use.
    pub max_window: u32,
    /// Connections set up at once.
    pub connect_concurrency: usize,
}

/// The name of room `i`, the same for every server (and the relay's pre-created rooms).
pub fn room_name(i: usize) -> String {
    format!("room-{i}")
}

/// What one member of a room does.
#[derive(Clone, Copy, Debug)]
struct Role {
    subscribes: bool,
    publishes: bool,
    receives_own: bool,
    slow: bool,
}

fn role(topo: &Topology, room: usize, member: usize) -> Role {
    let publishes = match topo.mode {
        PubMode::One => member == 0,
        PubMode::All => true,
        PubMode::Idle => false,
    };
    let subscribes = topo.proto == Proto::Ghost || !publishes || topo.mode == PubMode::All;
    Role {
        subscribes,
        publishes,
        receives_own: topo.proto == Proto::Redis && topo.mode == PubMode::All,
        slow: topo.slow_member
            && topo.mode == PubMode::One
            && room == 0
            && member + 1 == topo.room_size
            && member != 0,
    }
}

/// The per-room window of unread messages.
#[derive(Debug)]
struct Window {
    cap: AtomicU32,
    outstanding: AtomicU32,
    notify: Notify,
}

impl Window {
    /// Takes up to `max` free slots; returns how many.
    fn try_take(&self, max: u32) -> u32 {
        let mut cur = self.outstanding.load(Ordering::Acquire);
        loop {
            let cap = self.cap.load(Ordering::Relaxed);
            if cur >= cap {
                return 0;
            }
            let n = max.min(cap - cur);
            match self.outstanding.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return n,
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, n: u32) {
        self.outstanding.fetch_sub(n, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

/// Shared state of one room.
#[derive(Debug)]
struct Room {
    name: String,
    /// Global publisher id of member 0.
    base_id: u32,
    /// Receivers that must have a message before it counts as read.
    receivers: u32,
    /// Members that subscribed (what redis reports as the reach of a publish).
    subscribers: u32,
    ring: u32,
    /// Remaining receivers per in-flight message: `rank * ring + seq % ring`.
    slots: Box<[AtomicU32]>,
    /// Messages sent so far, per member.
    sent: Box<[AtomicU32]>,
    window: Window,
    mode: PubMode,
    /// Other members each member has been told of (`Members`, `PlayerJoined`).
    peers_seen: Box<[AtomicU32]>,
}

impl Room {
    fn rank(&self, member: usize) -> usize {
        if self.mode == PubMode::All {
            member
        } else {
            0
        }
    }

    fn slot(&self, member: usize, seq: u32) -> &AtomicU32 {
        &self.slots[self.rank(member) * self.ring as usize + (seq % self.ring) as usize]
    }

    /// Marks message `seq` of `member` in flight (before it is sent).
    fn arm(&self, member: usize, seq: u32) {
        if self.receivers == 0 {
            self.window.release(1);
        } else {
            self.slot(member, seq)
                .store(self.receivers, Ordering::Release);
        }
    }

    /// One receiver has message `seq` of `member` (or knows it lost).
    fn read(&self, member: usize, seq: u32) {
        if self.slot(member, seq).fetch_sub(1, Ordering::AcqRel) == 1 {
            self.window.release(1);
        }
    }
}

/// One outgoing write: bytes, and the scheduled send time of its first message if paced.
struct Out {
    bytes: Vec<u8>,
    sched_ns: Option<u64>,
}

/// How many failures are kept word for word.
const MAX_ERRORS: usize = 20;
/// Latency histogram shards (receivers record into `conn % SHARDS`).
const SHARDS: usize = 16;
/// Largest latency recorded (larger values are clamped): 60 s.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// State shared by every task of a swarm.
struct Shared {
    proto: Proto,
    payload: usize,
    recording: AtomicBool,
    stall: AtomicBool,
    stop_publishers: AtomicBool,
    delivered: AtomicU64,
    published: AtomicU64,
    hist: Vec<Mutex<Histogram<u64>>>,
    /// Servers the members are spread over (member `m` on server `m % servers`).
    servers: usize,
    /// The share of `hist` whose publisher and receiver are on different servers.
    cross_hist: Vec<Mutex<Histogram<u64>>>,
    pub_lag_max_ns: AtomicU64,
    window_stalls: AtomicU64,
    error_count: AtomicU64,
    errors: Mutex<Vec<String>>,
    disconnects: AtomicU64,
    slow_disconnects: AtomicU64,
    peers_left: AtomicU64,
}

impl Shared {
    fn error(&self, what: String) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < MAX_ERRORS {
                errors.push(what);
            }
        }
    }
}

/// What a receiver hands back at the end.
struct ReaderReport {
    room: usize,
    member: usize,
    role: Role,
    checker: SeqChecker,
}

struct Member {
    room: usize,
    member: usize,
    role: Role,
    tx: mpsc::UnboundedSender<Out>,
}

/// How publishers send during a run.
#[derive(Clone, Copy, Debug)]
pub enum Pacing {
    /// As fast as a window of this many unread messages per room allows.
    Window(u32),
    /// Open loop: this many messages per second in total (spread evenly over publishers),
    /// with this window as a safety bound (a full window delays sends, and the delay shows
    /// in the latency, since payloads carry the scheduled time).
    Rate {
        /// Messages per second, all publishers together.
        msgs_per_sec: f64,
        /// Unread messages allowed per room.
        window: u32,
    },
}

/// One measured stretch of a run.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    /// How long it lasts.
    pub duration: Duration,
    /// Record latencies (off for warm-up).
    pub record: bool,
    /// The slow member (if any) stops reading.
    pub stall: bool,
}

/// What one phase measured.
#[derive(Debug)]
pub struct PhaseResult {
    /// Wall-clock length in seconds.
    pub secs: f64,
    /// Deliveries during the phase.
    pub deliveries: u64,
    /// Messages published during the phase.
    pub published: u64,
    /// The server's CPU seconds during the phase (if its pid was given; every server's
    /// together if several were).
    pub server_cpu_s: Option<f64>,
    /// Each server's CPU seconds during the phase, in the order their pids were given.
    pub server_cpu_each: Vec<f64>,
    /// The harness's own CPU seconds during the phase.
    pub harness_cpu_s: f64,
    /// Latencies (ns) of the phase's deliveries, if it recorded.
    pub hist: Histogram<u64>,
    /// The part of `hist` from a publisher on another server than the receiver (empty
    /// unless the members were spread over several servers).
    pub cross_hist: Histogram<u64>,
    /// Longest time from a paced message's scheduled send to the end of its write.
    pub pub_lag_max_ns: u64,
    /// Times a paced publisher found its room's window full.
    pub window_stalls: u64,
}

impl PhaseResult {
    /// Deliveries per second.
    pub fn rate(&self) -> f64 {
        self.deliveries as f64 / self.secs.max(1e-9)
    }

    /// Messages published per second.
    pub fn msg_rate(&self) -> f64 {
        self.published as f64 / self.secs.max(1e-9)
    }

    /// Deliveries per server CPU-second.
    pub fn per_cpu_s(&self) -> Option<f64> {
        self.server_cpu_s
            .filter(|&c| c > 0.0)
            .map(|c| self.deliveries as f64 / c)
    }
}

/// The checks over a swarm's whole life.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Messages delivered in order.
    pub received: u64,
    /// Deliveries that never happened (slow member excluded).
    pub lost: u64,
    /// Duplicated or reordered deliveries.
    pub stale: u64,
    /// Messages the slow member missed (expected: the relay drops for it).
    pub slow_member_lost: u64,
    /// Connections that closed before the end (slow member excluded).
    pub disconnects: u64,
    /// The slow member was disconnected by the server (a policy, not a failure).
    pub slow_member_disconnected: bool,
    /// Other failures (protocol errors, refusals, wrong payloads, wrong publish reach).
    pub error_count: u64,
    /// The first few failures, word for word.
    pub errors: Vec<String>,
    /// ghost-sync `PlayerLeft` events seen during the run (someone disconnected).
    pub peers_left: u64,
    /// Messages published.
    pub sent: u64,
}

impl Totals {
    /// No loss, no reordering, no failure, no disconnect.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.stale == 0 && self.disconnects == 0 && self.error_count == 0
    }
}

/// A set of connections to one server, in rooms, ready to run load.
pub struct Swarm {
    topo: Topology,
    rooms: Vec<Arc<Room>>,
    members: Vec<Member>,
    shared: Arc<Shared>,
    stop_readers: watch::Sender<bool>,
    readers: Vec<JoinHandle<ReaderReport>>,
    writers: Vec<JoinHandle<()>>,
}

impl Swarm {
    /// Connects every member, completes each handshake and subscription, and starts the
    /// receivers. Returns once every subscription is confirmed by the server.
    pub async fn connect(topo: Topology) -> Result<Swarm> {
        let addr = topo.addr;
        Swarm::connect_spread(topo, &[addr]).await
    }

    /// [`connect`](Swarm::connect), with member `m` of every room on server
    /// `addrs[m % addrs.len()]` (`topo.addr` is then unused): a room spread over a cluster.
    pub async fn connect_spread(topo: Topology, addrs: &[SocketAddr]) -> Result<Swarm> {
        if addrs.is_empty() {
            bail!("no server address");
        }
        if topo.room_size < 2 {
            bail!("rooms need at least 2 connections");
        }
        if topo.payload < payload::HEADER_LEN {
            bail!("payloads need at least {} bytes", payload::HEADER_LEN);
        }
        let ring = topo.max_window.max(1);
        let rooms: Vec<Arc<Room>> = (0..topo.rooms)
            .map(|r| {
                let roles: Vec<Role> = (0..topo.room_size).map(|m| role(&topo, r, m)).collect();
                let subscribers = roles.iter().filter(|x| x.subscribes).count() as u32;
                let counted = roles.iter().filter(|x| x.subscribes && !x.slow).count() as u32;
                let pub_subscribes = roles.iter().any(|x| x.publishes && x.subscribes);
                let receivers = if pub_subscribes && !roles[0].receives_own {
                    counted.saturating_sub(1)
                } else {
                    counted
                };
                let publishers = roles.iter().filter(|x| x.publishes).count().max(1);
                Arc::new(Room {
                    name: room_name(topo.first_room + r),
                    base_id: ((topo.first_room + r) * topo.room_size) as u32,
                    receivers,
                    subscribers,
                    ring,
                    slots: (0..publishers * ring as usize)
                        .map(|_| AtomicU32::new(0))
                        .collect(),
                    sent: (0..topo.room_size).map(|_| AtomicU32::new(0)).collect(),
                    window: Window {
                        cap: AtomicU32::new(ring),
                        outstanding: AtomicU32::new(0),
                        notify: Notify::new(),
                    },
                    mode: topo.mode,
                    peers_seen: (0..topo.room_size).map(|_| AtomicU32::new(0)).collect(),
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            proto: topo.proto,
            payload: topo.payload,
            recording: AtomicBool::new(false),
            stall: AtomicBool::new(false),
            stop_publishers: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            published: AtomicU64::new(0),
            hist: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            servers: addrs.len(),
            cross_hist: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            pub_lag_max_ns: AtomicU64::new(0),
            window_stalls: AtomicU64::new(0),
            error_count: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            disconnects: AtomicU64::new(0),
            slow_disconnects: AtomicU64::new(0),
            peers_left: AtomicU64::new(0),
        });
        let (stop_readers, stop_rx) = watch::channel(false);
        let limit = Arc::new(Semaphore::new(topo.connect_concurrency.max(1)));
        let mut setups = Vec::with_capacity(topo.rooms * topo.room_size);
        // Member-major order: the first member of every room first, so that rooms fill evenly.
        for m in 0..topo.room_size {
            for (r, room) in rooms.iter().enumerate() {
                let role = role(&topo, r, m);
                let limit = Arc::clone(&limit);
                let room_name = room.name.clone();
                let (proto, addr, all) = (
                    topo.proto,
                    addrs[m % addrs.len()],
                    topo.mode == PubMode::All,
                );
                setups.push((
                    r,
                    m,
                    role,
                    tokio::spawn(async move {
                        let _permit = limit.acquire_owned().await?;
                        tokio::time::timeout(
                            Duration::from_secs(60),
                            open(proto, addr, role, all, &room_name),
                        )
                        .await
                        .map_err(|_| anyhow!("setup of a {proto} connection timed out"))?
                    }),
                ));
            }
        }
        let mut swarm = Swarm {
            topo,
            rooms,
            members: Vec::with_capacity(setups.len()),
            shared,
            stop_readers,
            readers: Vec::new(),
            writers: Vec::new(),
        };
        let mut first_err = None;
        for (i, (r, m, role, task)) in setups.into_iter().enumerate() {
            let (stream, buf) = match task.await {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                    continue;
                }
                Err(e) => {
                    first_err.get_or_insert(anyhow!("setup task failed: {e}"));
                    continue;
                }
            };
            let (rd, wr) = stream.into_split();
            let (tx, rx) = mpsc::unbounded_channel();
            swarm
                .writers
                .push(tokio::spawn(writer(wr, rx, Arc::clone(&swarm.shared))));
            swarm.readers.push(tokio::spawn(reader(
                rd,
                buf,
                ReaderCtx {
                    shared: Arc::clone(&swarm.shared),
                    room: Arc::clone(&swarm.rooms[r]),
                    room_index: r,
                    member: m,
                    role,
                    tx: tx.clone(),
                    shard: i % SHARDS,
                    stop: stop_rx.clone(),
                },
            )));
            swarm.members.push(Member {
                room: r,
                member: m,
                role,
                tx,
            });
        }
        if let Some(e) = first_err {
            let what = format!(
                "connecting {} rooms × {} to {}",
                swarm.topo.rooms, swarm.topo.room_size, swarm.topo.proto
            );
            swarm.finish().await;
            return Err(e.context(what));
        }
        Ok(swarm)
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.members.len()
    }

    /// Waits (up to `timeout`) until every member of every room has been told of all the
    /// others (ghost-sync `Members` and `PlayerJoined`; a no-op for the other servers,
    /// whose subscriptions carry no presence). On one relay that is the join's own answer;
    /// in a cluster, a member on another relay arrives one broker hop later.
    pub async fn wait_presence(&self, timeout: Duration) -> Result<()> {
        if self.topo.proto != Proto::Ghost {
            return Ok(());
        }
        let want = (self.topo.room_size - 1) as u32;
        let missing = || {
            self.rooms
                .iter()
                .flat_map(|r| r.peers_seen.iter())
                .filter(|n| n.load(Ordering::Acquire) < want)
                .count()
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = missing();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("after {timeout:?}, {left} members still miss some of their room's {want} others");
            }
            // Fine enough to time a broker hop; a scan of a few thousand counters is cheap.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs the publishers with `pacing` through `phases`, measuring each; then stops the
    /// publishers and waits (up to `drain`) until every room's messages are read.
    pub async fn run(
        &mut self,
        pacing: Pacing,
        phases: &[Phase],
        server_pid: Option<u32>,
        drain: Duration,
    ) -> Result<Vec<PhaseResult>> {
        self.run_pids(pacing, phases, server_pid.as_slice(), drain)
            .await
    }

    /// [`run`](Swarm::run), with the CPU time of several server processes (a cluster's
    /// relays and its broker) added up.
    pub async fn run_pids(
        &mut self,
        pacing: Pacing,
        phases: &[Phase],
        server_pids: &[u32],
        drain: Duration,
    ) -> Result<Vec<PhaseResult>> {
        let window = match pacing {
            Pacing::Window(w) | Pacing::Rate { window: w, .. } => w,
        };
        if window == 0 || window > self.rooms.first().map_or(1, |r| r.ring) {
            bail!("window {window} outside 1..={}", self.topo.max_window);
        }
        for room in &self.rooms {
            room.window.cap.store(window, Ordering::Release);
        }
        self.shared.stop_publishers.store(false, Ordering::Release);
        let publishers: Vec<PubRef> = {
            // Room-major within each publisher rank, so consecutive paced sends hit different
            // rooms.
            let mut v: Vec<&Member> = self.members.iter().filter(|m| m.role.publishes).collect();
            v.sort_by_key(|m| (m.member, m.room));
            v.into_iter()
                .map(|m| PubRef {
                    room: Arc::clone(&self.rooms[m.room]),
                    member: m.member,
                    tx: m.tx.clone(),
                    template: payload::template(self.topo.payload),
                })
                .collect()
        };
        let mut tasks = Vec::new();
        let mut pacer = None;
        match pacing {
            Pacing::Window(_) => {
                for p in publishers {
                    tasks.push(tokio::spawn(publish_windowed(p, Arc::clone(&self.shared))));
                }
            }
            Pacing::Rate { msgs_per_sec, .. } => {
                if !publishers.is_empty() {
                    let shared = Arc::clone(&self.shared);
                    pacer = Some(std::thread::spawn(move || {
                        paced(publishers, msgs_per_sec, &shared)
                    }));
                }
            }
        }

        let mut results = Vec::with_capacity(phases.len());
        let me = std::process::id();
        for phase in phases {
            self.shared.stall.store(phase.stall, Ordering::Release);
            for shard in self.shared.hist.iter().chain(&self.shared.cross_hist) {
                if let Ok(mut h) = shard.lock() {
                    h.reset();
                }
            }
            self.shared.pub_lag_max_ns.store(0, Ordering::Relaxed);
            let stalls0 = self.shared.window_stalls.load(Ordering::Relaxed);
            self.shared.recording.store(phase.record, Ordering::Release);
            let cpu0 = cpu_each(server_pids)?;
            let mine0 = sys::cpu_seconds(me)?;
            let d0 = self.shared.delivered.load(Ordering::Acquire);
            let p0 = self.shared.published.load(Ordering::Acquire);
            let t0 = Instant::now();
            tokio::time::sleep(phase.duration).await;
            let d1 = self.shared.delivered.load(Ordering::Acquire);
            let p1 = self.shared.published.load(Ordering::Acquire);
            let secs = t0.elapsed().as_secs_f64();
            let cpu1 = cpu_each(server_pids)?;
            let mine1 = sys::cpu_seconds(me)?;
            self.shared.recording.store(false, Ordering::Release);
            let hist = merged(&self.shared.hist)?;
            let cross_hist = merged(&self.shared.cross_hist)?;
            let cpu_each: Vec<f64> = cpu0.iter().zip(&cpu1).map(|(a, b)| b - a).collect();
            results.push(PhaseResult {
                secs,
                deliveries: d1 - d0,
                published: p1 - p0,
                server_cpu_s: (!cpu_each.is_empty()).then(|| cpu_each.iter().sum()),
                server_cpu_each: cpu_each,
                harness_cpu_s: mine1 - mine0,
                hist,
                cross_hist,
                pub_lag_max_ns: self.shared.pub_lag_max_ns.load(Ordering::Relaxed),
                window_stalls: self.shared.window_stalls.load(Ordering::Relaxed) - stalls0,
            });
        }

        self.shared.stop_publishers.store(true, Ordering::Release);
        for room in &self.rooms {
            room.window.notify.notify_waiters();
        }
        for t in tasks {
            t.await.context("publisher task")?;
        }
        if let Some(p) = pacer {
            p.join()
                .map_err(|_| anyhow!("the paced publisher panicked"))?;
        }
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline
            && self
                .rooms
                .iter()
                .any(|r| r.window.outstanding.load(Ordering::Acquire) > 0)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(results)
    }

    /// Stops the receivers, closes every connection and returns the checks.
    pub async fn finish(self) -> Totals {
        let _ = self.stop_readers.send(true);
        let mut totals = Totals::default();
        for room in &self.rooms {
            totals.sent += room
                .sent
                .iter()
                .map(|s| u64::from(s.load(Ordering::Acquire)))
                .sum::<u64>();
        }
        for r in self.readers {
            let Ok(mut rep) = r.await else {
                totals.error_count += 1;
                totals.errors.push("a receiver task failed".to_owned());
                continue;
            };
            if !rep.role.subscribes {
                continue;
            }
            let room = &self.rooms[rep.room];
            let own = rep.member;
            let receives_own = rep.role.receives_own;
            rep.checker.finish(|p| {
                if p == own && !receives_own {
                    0
                } else {
                    room.sent[p].load(Ordering::Acquire)
                }
            });
            if rep.role.slow {
                totals.slow_member_lost += rep.checker.lost;
            } else {
                totals.lost += rep.checker.lost;
                totals.stale += rep.checker.stale;
            }
            totals.received += rep.checker.received;
        }
        drop(self.members);
        for w in self.writers {
            let _ = w.await;
        }
        totals.disconnects = self.shared.disconnects.load(Ordering::Relaxed);
        totals.slow_member_disconnected = self.shared.slow_disconnects.load(Ordering::Relaxed) > 0;
        totals.error_count += self.shared.error_count.load(Ordering::Relaxed);
        totals.peers_left = self.shared.peers_left.load(Ordering::Relaxed);
        if let Ok(errors) = self.shared.errors.lock() {
            totals.errors.extend(errors.iter().cloned());
        }
        totals
    }
}

/// The CPU seconds of each of `pids` so far.
fn cpu_each(pids: &[u32]) -> Result<Vec<f64>> {
    pids.iter().map(|&p| sys::cpu_seconds(p)).collect()
}

/// The sum of a set of histogram shards.
fn merged(shards: &[Mutex<Histogram<u64>>]) -> Result<Histogram<u64>> {
    let mut hist = new_histogram();
    for shard in shards {
        if let Ok(h) = shard.lock() {
            hist.add(&*h)
                .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        }
    }
    Ok(hist)
}

/// Connects one member and completes its handshake and subscription; returns the stream
/// and whatever was read past the confirmation.
async fn open(
    proto: Proto,
    addr: SocketAddr,
    role: Role,
    all_publish: bool,
    room: &str,
) -> Result<(TcpStream, BytesMut)> {
    let mut stream = if role.slow {
        // A tiny receive buffer: the server's sends to it back up at once.
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(4096)?;
        socket.connect(addr).await?
    } else {
        TcpStream::connect(addr).await?
    };
    stream.set_nodelay(true)?;
    let mut out = Vec::new();
    let want = match proto {
        Proto::Ghost => {
            ghost::hello(&mut out);
            ghost::join(&mut out, room);
            vec![Event::Hello, Event::Subscribed]
        }
        Proto::Redis if role.subscribes => {
            if all_publish {
                resp::command(&mut out, &[b"HELLO", b"3"]);
            }
            resp::command(&mut out, &[b"SUBSCRIBE", room.as_bytes()]);
            vec![Event::Subscribed]
        }
        Proto::Redis => {
            resp::command(&mut out, &[b"PING"]);
            vec![Event::Pong]
        }
        Proto::Nats => {
            nats::connect(&mut out);
            if role.subscribes {
                nats::sub(&mut out, room, 1);
            }
            nats::ping(&mut out);
            vec![Event::Hello, Event::Pong]
        }
    };
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    for target in want {
        loop {
            match proto::parse(proto, &buf).map_err(|e| anyhow!("{proto} setup: {e}"))? {
                Some((event, used)) => {
                    buf.advance(used);
                    match event {
                        e if e == target => break,
                        Event::Fail(why) | Event::Closed(why) => bail!("{proto} setup: {why}"),
                        Event::Ping => {
                            let mut pong = Vec::new();
                            proto::encode_pong(proto, &mut pong);
                            stream.write_all(&pong).await?;
                        }
                        _ => {}
                    }
                }
                None => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        bail!("{proto} closed the connection during setup");
                    }
                }
            }
        }
    }
    Ok((stream, buf))
}

/// Writes everything queued for one connection, coalescing what is waiting.
async fn writer(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut sched = first.sched_ns;
        if buf.is_empty() {
            buf = first.bytes;
        } else {
            buf.extend_from_slice(&first.bytes);
        }
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => {
                    buf.extend_from_slice(&more.bytes);
                    sched = match (sched, more.sched_ns) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            // The receiver sees the connection fail and reports it.
            break;
        }
        if let Some(s) = sched {
            let lag = now_ns().saturating_sub(s);
            shared.pub_lag_max_ns.fetch_max(lag, Ordering::Relaxed);
        }
        buf.clear();
    }
}

struct ReaderCtx {
    shared: Arc<Shared>,
    room: Arc<Room>,
    room_index: usize,
    member: usize,
    role: Role,
    tx: mpsc::UnboundedSender<Out>,
    shard: usize,
    stop: watch::Receiver<bool>,
}

/// Receives, checks and times everything one connection gets, until told to stop.
async fn reader(mut rd: OwnedReadHalf, mut buf: BytesMut, mut ctx: ReaderCtx) -> ReaderReport {
    let proto = ctx.shared.proto;
    let size = ctx.shared.payload;
    let mut checker = SeqChecker::new(ctx.room.sent.len());
    let mut latencies: Vec<u64> = Vec::with_capacity(1024);
    let mut cross: Vec<u64> = Vec::new();
    let servers = ctx.shared.servers;
    let mut failed = false;
    let stopping = ctx.stop.clone();
    'read: loop {
        let mut at = 0;
        let mut delivered = 0u64;
        let recording = ctx.shared.recording.load(Ordering::Acquire) && !ctx.role.slow;
        loop {
            let parsed = proto::parse(proto, &buf[at..]);
            let (event, used) = match parsed {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    ctx.shared.error(format!("{proto} protocol error: {e}"));
                    failed = true;
                    break;
                }
            };
            match event {
                Event::Deliver(range) => {
                    let body = &buf[at + range.start..at + range.end];
                    delivered += 1;
                    match deliver(&ctx, &mut checker, body, size) {
                        Ok((sent_ns, publisher)) if recording => {
                            let l = now_ns().saturating_sub(sent_ns);
                            latencies.push(l);
                            if publisher % servers != ctx.member % servers {
                                cross.push(l);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => ctx.shared.error(e),
                    }
                }
                Event::Ping => {
                    let mut pong = Vec::new();
                    proto::encode_pong(proto, &mut pong);
                    let _ = ctx.tx.send(Out {
                        bytes: pong,
                        sched_ns: None,
                    });
                }
                Event::PubAck(n) => {
                    if n != i64::from(ctx.room.subscribers) {
                        ctx.shared.error(format!(
                            "PUBLISH reached {n} subscribers of {}, expected {}",
                            ctx.room.name, ctx.room.subscribers
                        ));
                    }
                }
                Event::PeerLeft => {
                    ctx.shared.peers_left.fetch_add(1, Ordering::Relaxed);
                }
                Event::Peers(n) => {
                    ctx.room.peers_seen[ctx.member].fetch_add(n, Ordering::AcqRel);
                }
                Event::Fail(why) if ctx.role.slow => {
                    // NATS tells a slow consumer why it is cut off: expected here.
                    let _ = why;
                    ctx.shared.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                }
                Event::Fail(why) => ctx.shared.error(format!("{proto}: {why}")),
                Event::Closed(why) => {
                    if ctx.role.slow {
                        ctx.shared.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                    } else if !*ctx.stop.borrow() {
                        ctx.shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        ctx.shared.error(format!("{proto}: {why}"));
                    }
                    failed = true;
                }
                Event::Hello | Event::Subscribed | Event::Pong | Event::Ignore => {}
            }
            at += used;
            if failed {
                break;
            }
        }
        buf.advance(at);
        if delivered > 0 {
            ctx.shared.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        if !latencies.is_empty() {
            if let Ok(mut h) = ctx.shared.hist[ctx.shard].lock() {
                for &l in &latencies {
                    h.saturating_record(l.max(1));
                }
            }
            latencies.clear();
        }
        if !cross.is_empty() {
            if let Ok(mut h) = ctx.shared.cross_hist[ctx.shard].lock() {
                for &l in &cross {
                    h.saturating_record(l.max(1));
                }
            }
            cross.clear();
        }
        if failed {
            break 'read;
        }
        if ctx.role.slow && ctx.shared.stall.load(Ordering::Acquire) {
            // The slow consumer stops reading for good; the socket stays open.
            let _ = ctx.stop.wait_for(|&s| s).await;
            break 'read;
        }
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(128 * 1024);
        }
        tokio::select! {
            biased;
            _ = ctx.stop.wait_for(|&s| s) => break 'read,
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    if ctx.role.slow {
                        ctx.shared.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                    } else if !*stopping.borrow() {
                        ctx.shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        ctx.shared.error(format!(
                            "{proto}: a connection of {} closed during the run",
                            ctx.room.name
                        ));
                    }
                    break 'read;
                }
                Ok(_) => {}
            },
        }
    }
    ReaderReport {
        room: ctx.room_index,
        member: ctx.member,
        role: ctx.role,
        checker,
    }
}

/// Checks one delivery and frees the window slots it settles; returns its send time and its
/// publisher (member index).
fn deliver(
    ctx: &ReaderCtx,
    checker: &mut SeqChecker,
    body: &[u8],
    size: usize,
) -> Result<(u64, usize), String> {
    let h: Header = payload::read(body, size)?;
    let room = &ctx.room;
    let publisher = h
        .publisher
        .checked_sub(room.base_id)
        .map(|p| p as usize)
        .filter(|&p| p < room.sent.len())
        .ok_or_else(|| format!("{} got a message from publisher {}", room.name, h.publisher))?;
    if publisher == ctx.member && !ctx.role.receives_own {
        return Err(format!("{} got its own message back", room.name));
    }
    match checker.observe(publisher, h.seq) {
        Some(Outcome::InOrder) => {
            if !ctx.role.slow {
                room.read(publisher, h.seq);
            }
        }
        Some(Outcome::Gap {
            first_missing,
            missing,
        }) => {
            if !ctx.role.slow {
                for k in 0..=missing {
                    room.read(publisher, first_missing.wrapping_add(k));
                }
            }
        }
        Some(Outcome::Stale) | None => {}
    }
    Ok((h.sent_ns, publisher))
}

/// A publisher: its room, member index, and the queue of its connection's writer.
struct PubRef {
    room: Arc<Room>,
    member: usize,
    tx: mpsc::UnboundedSender<Out>,
    template: Vec<u8>,
}

impl PubRef {
    /// Appends message number `seq`, stamped `sent_ns`, to `out`, and marks it in flight.
    fn encode(&mut self, proto: Proto, out: &mut Vec<u8>, seq: u32, sent_ns: u64) {
        self.room.arm(self.member, seq);
        payload::write(
            &mut self.template,
            Header {
                publisher: self.room.base_id + self.member as u32,
                seq,
                sent_ns,
            },
        );
        proto::encode_publish(proto, out, &self.room.name, &self.template);
    }
}

/// Most messages a windowed publisher puts in one write.
const MAX_BATCH: u32 = 16;

/// Saturation: send whenever the room's window has a free slot.
async fn publish_windowed(mut p: PubRef, shared: Arc<Shared>) {
    let mut seq = p.room.sent[p.member].load(Ordering::Acquire);
    let proto = shared.proto;
    loop {
        if shared.stop_publishers.load(Ordering::Acquire) {
            break;
        }
        let n = p.room.window.try_take(MAX_BATCH);
        if n == 0 {
            let notified = p.room.window.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if p.room.window.outstanding.load(Ordering::Acquire)
                < p.room.window.cap.load(Ordering::Acquire)
            {
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            continue;
        }
        let mut out = Vec::with_capacity(n as usize * (p.template.len() + 64));
        let now = now_ns();
        for _ in 0..n {
            p.encode(proto, &mut out, seq, now);
            seq = seq.wrapping_add(1);
        }
        p.room.sent[p.member].store(seq, Ordering::Release);
        shared.published.fetch_add(u64::from(n), Ordering::Relaxed);
        if p.tx
            .send(Out {
                bytes: out,
                sched_ns: None,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Open loop: one thread sends every publisher's messages at their scheduled times.
fn paced(mut pubs: Vec<PubRef>, msgs_per_sec: f64, shared: &Shared) {
    sys::precise_timers();
    let proto = shared.proto;
    let interval = 1e9 / msgs_per_sec.max(1e-3);
    let mut seqs: Vec<u32> = pubs
        .iter()
        .map(|p| p.room.sent[p.member].load(Ordering::Acquire))
        .collect();
    let t0 = now_ns() + 1_000_000;
    let mut i: u64 = 0;
    let mut stalled = false;
    while !shared.stop_publishers.load(Ordering::Acquire) {
        let due = t0 + (i as f64 * interval) as u64;
        let now = now_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos((due - now).min(20_000_000)));
            continue;
        }
        let k = (i % pubs.len() as u64) as usize;
        let p = &mut pubs[k];
        if p.room.window.try_take(1) == 0 {
            if !stalled {
                shared.window_stalls.fetch_add(1, Ordering::Relaxed);
                stalled = true;
            }
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        stalled = false;
        let mut out = Vec::with_capacity(p.template.len() + 64);
        p.encode(proto, &mut out, seqs[k], due);
        seqs[k] = seqs[k].wrapping_add(1);
        p.room.sent[p.member].store(seqs[k], Ordering::Release);
        shared.published.fetch_add(1, Ordering::Relaxed);
        let _ = p.tx.send(Out {
            bytes: out,
            sched_ns: Some(due),
        });
        i += 1;
    }
}
