//! The game-load scenario: *every* member of every room publishes a 128-byte payload at a
//! fixed tick rate, the load of a game whose clients each send their state every tick.
//!
//! Two room shapes, each its own run: 16 rooms of 8 and 1 room of 64 (`--game-clients N`:
//! N/8 rooms of 8 and N/128 rooms of 64, at least one of each), at 30 and 60 Hz
//! (`--game-rates`): four cells, each on ghost-sync's relay, redis-server and nats-server
//! (`--servers`) under the same offered load, members × Hz messages a second, paced open
//! loop from one thread (sends spread evenly over the tick, not in a burst at its start).
//! Every run starts a fresh server process; a round runs every cell on every server in turn,
//! so a change in the machine's load hits the servers alike, and the report takes the
//! median of the rounds.
//!
//! Per run, over the measured stretch after a warm-up (and, for ghost-sync, after every
//! member has been told of all its room's others): the server's CPU seconds, deliveries,
//! offered and achieved message rates, CPU seconds per million deliveries, latency, loss,
//! reordering and disconnects, the server's system calls per delivery ([`syscalls`]), the
//! machine's busy CPU and its load average before and after. A run *keeps up* if it
//! delivered at least 98 % of what was offered and its paced publisher did not fall behind
//! ([`keep_up`]); one that did not measures a backlog, not the tick load, and the report
//! says so. [`table`] and [`report`] turn the runs into the tables, the verdicts, the JSON
//! document and the Markdown section; [`entry`] builds the relay and writes the results.

pub mod entry;
pub mod report;
pub mod syscalls;
pub mod table;

pub use entry::{run_game, GameArgs};

use crate::load::{Pacing, Phase, PubMode, Swarm, Topology};
use crate::proto::Proto;
use crate::scenarios::{Checks, Figures};
use crate::servers::{self, ServerOpts, ServerProc};
use crate::sys;
use anyhow::Result;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use syscalls::SyscallCount;

/// Bytes of every message.
pub const PAYLOAD: usize = 128;
/// Clients of each shape by default: 16 rooms of 8 and 1 room of 64.
pub const DEFAULT_CLIENTS: usize = 128;
/// Tick rates by default, Hz.
pub const DEFAULT_RATES: [f64; 2] = [30.0, 60.0];
/// Share of the offered deliveries a run may fall short by and still keep up.
pub const SHORTFALL: f64 = 0.02;
/// Ticks a message may go out behind its schedule before the publisher counts as fallen
/// behind. One would flag the scheduling hiccups of a shared 2-core machine (a 20 ms lag is
/// common there, more than a tick at 60 Hz) though nothing backs up; three ticks of delay
/// (50 ms at 60 Hz, 100 ms at 30 Hz) is a backlog of that many ticks' messages.
pub const LAG_TICKS: f64 = 3.0;

/// How many rooms of how many members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub room_size: usize,
}

impl Shape {
    /// Connections in all.
    pub fn members(self) -> usize {
        self.rooms * self.room_size
    }

    /// The two shapes for `--game-clients n`: n/8 rooms of 8 and n/128 rooms of 64, at least
    /// one room each. The rooms of 64 get half the clients: each of their messages makes 63
    /// deliveries instead of 7, so at the same client count they would offer 9 times the
    /// deliveries; at half it is 4.5 times. The default, 128, gives 16 × 8 and 1 × 64.
    pub fn for_clients(n: usize) -> [Shape; 2] {
        [
            Shape {
                rooms: (n / 8).max(1),
                room_size: 8,
            },
            Shape {
                rooms: (n / 128).max(1),
                room_size: 64,
            },
        ]
    }

    /// `16x8`.
    pub fn label(self) -> String {
        format!("{}x{}", self.rooms, self.room_size)
    }
}

/// One cell: a shape, every member publishing at a tick rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// The rooms.
    pub shape: Shape,
    /// Messages per second from each member.
    pub hz: f64,
}

impl Cell {
    /// `16x8 @30Hz`.
    pub fn label(&self) -> String {
        format!("{} @{}Hz", self.shape.label(), self.hz)
    }

    /// The key in JSON: `16x8@30`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.shape.label(), self.hz)
    }

    /// Messages offered per second, all members together.
    pub fn msgs_per_s(&self) -> f64 {
        self.shape.members() as f64 * self.hz
    }

    /// Deliveries offered per second on `proto`.
    pub fn deliveries_per_s(&self, proto: Proto) -> f64 {
        self.msgs_per_s() * receivers_per_message(proto, self.shape.room_size) as f64
    }

    /// Unread messages allowed per room: half a second of the room's messages, at least 64.
    /// A safety bound only; a publisher that finds it full has fallen behind
    /// ([`Delivered::stalls`], [`keep_up`]).
    pub fn window(&self) -> u32 {
        ((self.shape.room_size as f64 * self.hz / 2.0).ceil() as u32).max(64)
    }
}

/// Deliveries one message makes in a room of `room_size` where everyone publishes:
/// ghost-sync and nats skip the sender (N−1); redis cannot and sends it back too (N, counted
/// as deliveries since the server did the work).
pub fn receivers_per_message(proto: Proto, room_size: usize) -> usize {
    match proto {
        Proto::Redis => room_size,
        Proto::Ghost | Proto::Nats => room_size.saturating_sub(1),
    }
}

/// What the scenario is told.
#[derive(Clone, Debug)]
pub struct GameConfig {
    /// `--quick`: shorter runs, one round.
    pub quick: bool,
    /// Servers to measure, in the order a round runs them.
    pub servers: Vec<Proto>,
    /// Room shapes.
    pub shapes: Vec<Shape>,
    /// Tick rates, Hz.
    pub rates: Vec<f64>,
    /// Payload bytes.
    pub payload: usize,
    /// Paced load before each measurement.
    pub warmup: Duration,
    /// Each measurement.
    pub measure: Duration,
    /// Rounds.
    pub rounds: usize,
    /// How long ghost-sync's members may take to see each other.
    pub presence_timeout: Duration,
    /// The relay binary.
    pub relay_bin: PathBuf,
    /// Where the servers' logs go.
    pub log_dir: PathBuf,
}

impl GameConfig {
    /// The full run (3 rounds of 15 s after 2 s of warm-up) or the `--quick` one (1 round
    /// of 5 s after 1 s), on every server, the default shapes and rates.
    pub fn new(quick: bool, relay_bin: PathBuf, log_dir: PathBuf) -> Self {
        GameConfig {
            quick,
            servers: Proto::ALL.to_vec(),
            shapes: Shape::for_clients(DEFAULT_CLIENTS).to_vec(),
            rates: DEFAULT_RATES.to_vec(),
            payload: PAYLOAD,
            warmup: Duration::from_secs(if quick { 1 } else { 2 }),
            measure: Duration::from_secs(if quick { 5 } else { 15 }),
            rounds: if quick { 1 } else { 3 },
            presence_timeout: Duration::from_secs(20),
            relay_bin,
            log_dir,
        }
    }

    /// Every cell, shape by shape, rate by rate.
    pub fn cells(&self) -> Vec<Cell> {
        self.shapes
            .iter()
            .flat_map(|&shape| self.rates.iter().map(move |&hz| Cell { shape, hz }))
            .collect()
    }
}

/// One cell on one server in one round.
#[derive(Clone, Debug)]
pub struct GameRun {
    /// The load.
    pub cell: Cell,
    /// The server.
    pub server: Proto,
    /// Round number, from 1.
    pub round: usize,
    /// The measured stretch (`None` if the run failed before it).
    pub figures: Option<Figures>,
    /// Deliveries during the measured stretch.
    pub deliveries: u64,
    /// Messages published during it.
    pub published: u64,
    /// The server's system calls during it.
    pub syscalls: SyscallCount,
    /// The whole machine's busy and stolen CPU seconds during it (sampled beside it).
    pub machine_cpu: Option<(f64, f64)>,
    /// Load average (1/5/15 min) before the server started and after it stopped.
    pub load: ([f64; 3], [f64; 3]),
    /// ghost-sync: from the last join confirmed to every member knowing its room's others, ms.
    pub presence_ms: Option<f64>,
    /// Loss, reordering, disconnects, failures.
    pub checks: Checks,
}

impl GameRun {
    /// Whether the run delivered what was offered; `None` if it measured nothing.
    pub fn keep_up(&self) -> Option<KeepUp> {
        let f = self.figures.as_ref()?;
        Some(keep_up(
            &self.cell,
            self.server,
            &Delivered {
                secs: f.secs,
                deliveries: self.deliveries,
                published: self.published,
                lag_ms: f.pub_lag_max_ms,
                stalls: f.window_stalls,
            },
        ))
    }

    /// Server CPU seconds per million deliveries.
    pub fn cpu_per_m(&self) -> Option<f64> {
        let cpu = self.figures.as_ref()?.server_cpu_s?;
        (self.deliveries > 0).then(|| cpu / self.deliveries as f64 * 1e6)
    }

    /// The server's system calls per delivery.
    pub fn syscalls_per_delivery(&self) -> Option<f64> {
        self.syscalls
            .per_delivery(self.figures.as_ref()?.deliveries_per_s)
    }
}

/// What a measured stretch delivered, for [`keep_up`].
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    /// Seconds measured.
    pub secs: f64,
    /// Deliveries.
    pub deliveries: u64,
    /// Messages published.
    pub published: u64,
    /// The paced publisher's largest lag behind its schedule, ms.
    pub lag_ms: f64,
    /// Times the paced publisher found a room's window full.
    pub stalls: u64,
}

/// Whether a run delivered the load it was offered.
#[derive(Clone, Debug, PartialEq)]
pub struct KeepUp {
    /// Deliveries over the offered deliveries (members × Hz × receivers per message × secs).
    pub delivered_share: f64,
    /// Messages published over those offered.
    pub published_share: f64,
    /// What fell short, in words; empty if the run kept up.
    pub shortfalls: Vec<String>,
}

impl KeepUp {
    /// Nothing fell short.
    pub fn ok(&self) -> bool {
        self.shortfalls.is_empty()
    }
}

/// Judges a run: it keeps up unless its deliveries fall more than [`SHORTFALL`] short of
/// the offered ones, or the paced publisher fell behind, by sending less than offered (by
/// the same share), by finding a room's window full, or by a message going out more than
/// [`LAG_TICKS`] ticks late.
pub fn keep_up(cell: &Cell, proto: Proto, d: &Delivered) -> KeepUp {
    let share = |got: f64, offered: f64| {
        if offered > 0.0 {
            got / offered
        } else {
            f64::NAN
        }
    };
    let delivered_share = share(d.deliveries as f64, cell.deliveries_per_s(proto) * d.secs);
    let published_share = share(d.published as f64, cell.msgs_per_s() * d.secs);
    let tick_ms = 1e3 / cell.hz;
    let short = |s: f64| s.is_nan() || s < 1.0 - SHORTFALL;
    let mut shortfalls = Vec::new();
    if short(delivered_share) {
        shortfalls.push(format!(
            "delivered {:.1} % of the offered deliveries",
            100.0 * delivered_share
        ));
    }
    if short(published_share) {
        shortfalls.push(format!(
            "published {:.1} % of the offered messages",
            100.0 * published_share
        ));
    }
    if d.stalls > 0 {
        shortfalls.push(format!("found a room's window full {} times", d.stalls));
    }
    if d.lag_ms > LAG_TICKS * tick_ms {
        shortfalls.push(format!(
            "a message went out {:.1} ms late, over {LAG_TICKS} ticks of {tick_ms:.1} ms",
            d.lag_ms
        ));
    }
    KeepUp {
        delivered_share,
        published_share,
        shortfalls,
    }
}

/// Everything the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct GameResults {
    /// Every run, round by round.
    pub runs: Vec<GameRun>,
}

fn progress(msg: &str) {
    eprintln!(
        "[bench {:>7.1}s] game: {msg}",
        crate::payload::now_ns() as f64 / 1e9
    );
}

/// Runs every round: each cell on each server in turn.
pub async fn run(cfg: &GameConfig) -> GameResults {
    let mut res = GameResults::default();
    let cells = cfg.cells();
    for round in 1..=cfg.rounds {
        for &cell in &cells {
            for &server in &cfg.servers {
                progress(&format!(
                    "round {round}/{}: {server}, {}, {:.0} msg/s offered",
                    cfg.rounds,
                    cell.label(),
                    cell.msgs_per_s()
                ));
                res.runs.push(run_one(cfg, cell, server, round).await);
            }
        }
    }
    res
}

/// Starts a fresh server, runs the cell on it, stops it.
async fn run_one(cfg: &GameConfig, cell: Cell, server: Proto, round: usize) -> GameRun {
    let mut run = GameRun {
        cell,
        server,
        round,
        figures: None,
        deliveries: 0,
        published: 0,
        syscalls: SyscallCount::default(),
        machine_cpu: None,
        load: (sys::loadavg(), [f64::NAN; 3]),
        presence_ms: None,
        checks: Checks::default(),
    };
    let opts = ServerOpts {
        relay_bin: cfg.relay_bin.clone(),
        rooms: cell.shape.rooms,
        max_clients: 20_000,
        worker_threads: None,
        log_dir: cfg.log_dir.clone(),
    };
    match servers::start(server, &opts).await {
        Ok(mut proc) => {
            if let Err(e) = load(cfg, &proc, &mut run).await {
                run.checks.fail(format!("{e:#}"));
            }
            // A server that died under the load explains the failures above.
            if !proc.running() {
                run.checks.fail(format!("{server} exited during the run"));
            }
            if let Err(e) = proc.stop().await {
                run.checks.fail(format!("stopping {server}: {e:#}"));
            }
        }
        Err(e) => run.checks.fail(format!("starting {server}: {e:#}")),
    }
    run.load.1 = sys::loadavg();
    run
}

/// Connects the rooms, waits for presence, runs the warm-up and the measurement, with the
/// system-call count and the machine's CPU sampled beside the measurement.
async fn load(cfg: &GameConfig, server: &ServerProc, run: &mut GameRun) -> Result<()> {
    let cell = run.cell;
    let topo = Topology {
        proto: server.proto,
        addr: server.addr,
        first_room: 0,
        rooms: cell.shape.rooms,
        room_size: cell.shape.room_size,
        payload: cfg.payload,
        mode: PubMode::All,
        slow_member: false,
        max_window: cell.window(),
        connect_concurrency: 64,
    };
    let mut swarm = Swarm::connect(topo).await?;
    let joined = Instant::now();
    let r = async {
        swarm.wait_presence(cfg.presence_timeout).await?;
        if server.proto == Proto::Ghost {
            run.presence_ms = Some(joined.elapsed().as_secs_f64() * 1e3);
        }
        let phases = [
            Phase {
                duration: cfg.warmup,
                record: false,
                stall: false,
            },
            Phase {
                duration: cfg.measure,
                record: true,
                stall: false,
            },
        ];
        let (warmup, measure, pid) = (cfg.warmup, cfg.measure, server.pid);
        let sampler = tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let a = sys::machine_cpu_seconds().ok();
            let count = syscalls::Counter::start(pid, measure).finish().await;
            let b = sys::machine_cpu_seconds().ok();
            (a.zip(b).map(|(a, b)| (b.0 - a.0, b.1 - a.1)), count)
        });
        let pacing = Pacing::Rate {
            msgs_per_sec: cell.msgs_per_s(),
            window: cell.window(),
        };
        let r = swarm
            .run_pids(pacing, &phases, &[pid], Duration::from_secs(5))
            .await;
        match sampler.await {
            Ok((machine, count)) => {
                run.machine_cpu = machine;
                run.syscalls = count;
            }
            Err(e) => run.syscalls.perf_error = Some(format!("the sampler failed: {e}")),
        }
        let r = r?;
        let m = &r[1];
        run.figures = Some(Figures::of(m));
        run.deliveries = m.deliveries;
        run.published = m.published;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let totals = swarm.finish().await;
    run.checks.add(&totals);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(rooms: usize, room_size: usize, hz: f64) -> Cell {
        Cell {
            shape: Shape { rooms, room_size },
            hz,
        }
    }

    #[test]
    fn shapes_for_client_counts() {
        let [a, b] = Shape::for_clients(DEFAULT_CLIENTS);
        assert_eq!((a.rooms, a.room_size, b.rooms, b.room_size), (16, 8, 1, 64));
        let [a, b] = Shape::for_clients(1024);
        assert_eq!((a.rooms, b.rooms), (128, 8));
        let [a, b] = Shape::for_clients(3);
        assert_eq!((a.rooms, b.rooms), (1, 1));
    }

    #[test]
    fn offered_load() {
        let c = cell(16, 8, 30.0);
        assert_eq!(c.msgs_per_s(), 3840.0);
        assert_eq!(c.deliveries_per_s(Proto::Ghost), 3840.0 * 7.0);
        assert_eq!(c.deliveries_per_s(Proto::Nats), 3840.0 * 7.0);
        assert_eq!(c.deliveries_per_s(Proto::Redis), 3840.0 * 8.0);
        assert_eq!(c.window(), 120);
        assert_eq!(cell(1, 64, 60.0).window(), 1920);
        assert_eq!(cell(1, 8, 1.0).window(), 64);
        assert_eq!(c.label(), "16x8 @30Hz");
        assert_eq!(c.key(), "16x8@30");
        let cfg = GameConfig::new(true, PathBuf::new(), PathBuf::new());
        assert_eq!(cfg.cells().len(), 4);
        assert_eq!(cfg.cells()[1], cell(16, 8, 60.0));
    }

    #[test]
    fn keeping_up() {
        let c = cell(16, 8, 30.0);
        let on_time = Delivered {
            secs: 10.0,
            deliveries: 3840 * 7 * 10,
            published: 38_400,
            lag_ms: 2.0,
            stalls: 0,
        };
        let k = keep_up(&c, Proto::Ghost, &on_time);
        assert!(k.ok(), "{k:?}");
        assert!((k.delivered_share - 1.0).abs() < 1e-9);
        // redis's offered deliveries include the echo: the same count falls 12.5 % short.
        let k = keep_up(&c, Proto::Redis, &on_time);
        assert!(!k.ok());
        assert!(k.shortfalls[0].contains("87.5 %"), "{k:?}");
        // 1.5 % short still keeps up; 3 % does not.
        let mut d = on_time;
        d.deliveries = (3840.0 * 7.0 * 10.0 * 0.985) as u64;
        assert!(keep_up(&c, Proto::Ghost, &d).ok());
        d.deliveries = (3840.0 * 7.0 * 10.0 * 0.97) as u64;
        assert!(!keep_up(&c, Proto::Ghost, &d).ok());
        // The publisher falling behind, each way.
        let behind = |f: &dyn Fn(&mut Delivered)| {
            let mut d = on_time;
            f(&mut d);
            keep_up(&c, Proto::Ghost, &d)
        };
        assert!(!behind(&|d| d.stalls = 1).ok());
        // Three ticks at 30 Hz: 100 ms.
        assert!(!behind(&|d| d.lag_ms = 101.0).ok());
        assert!(behind(&|d| d.lag_ms = 99.0).ok());
        assert!(!behind(&|d| d.published = 30_000).ok());
        // Nothing measured is not keeping up.
        let nothing = behind(&|d| d.secs = 0.0);
        assert!(!nothing.ok());
    }
}
