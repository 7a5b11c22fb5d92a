//! The measurements: the matrix (saturation with a window of 64 and of 1, optionally with a
//! busy load generator, then latency at a fixed rate), idle memory per connection, the
//! many-clients scale test (split over worker processes), the slow consumer, and fairness
//! (flooders in one room against a bystander pair in another).

use crate::fairness::{self, Bystanders, Flood, FloodSpec, FloodTotals};
use crate::hog::Hog;
use crate::load::{room_name, Pacing, Phase, PhaseResult, PubMode, Swarm, Topology, Totals};
use crate::proto::Proto;
use crate::servers::{self, ServerOpts, ServerProc};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Everything a run of the comparison is told.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--quick`: a reduced matrix and short runs.
    pub quick: bool,
    /// Servers to measure.
    pub servers: Vec<Proto>,
    /// Room sizes of the matrix.
    pub room_sizes: Vec<usize>,
    /// Payload sizes of the matrix.
    pub payloads: Vec<usize>,
    /// Publisher modes of the matrix.
    pub modes: Vec<PubMode>,
    /// Connections per matrix cell (rooms = connections / room size, at least one room).
    pub connections: usize,
    /// Warm-up before each measurement.
    pub warmup: Duration,
    /// Length of a saturation measurement.
    pub sat_measure: Duration,
    /// Length of a latency measurement.
    pub lat_measure: Duration,
    /// Unread messages per room during saturation.
    pub sat_window: u32,
    /// Unread messages per room during latency runs (a safety bound only).
    pub lat_window: u32,
    /// Idle connections of the memory test (0 skips it).
    pub mem_connections: usize,
    /// Room size of the memory test.
    pub mem_room_size: usize,
    /// Clients of the scale test (0 skips it).
    pub scale_clients: usize,
    /// How long the scale test holds its clients.
    pub scale_hold: Duration,
    /// Worker processes of the scale test.
    pub scale_workers: usize,
    /// Room size of the scale test.
    pub scale_room_size: usize,
    /// Messages per second per room during the scale test.
    pub scale_rate_per_room: f64,
    /// Run the slow-consumer test.
    pub slow: bool,
    /// Length of each slow-consumer phase.
    pub slow_phase: Duration,
    /// Messages per second into the slow-consumer test's room: high enough that the stopped
    /// member's socket buffers and the server's queue for it fill within a second.
    pub slow_rate: f64,
    /// Run the fairness test (ghost-sync only).
    pub fairness: bool,
    /// Flooders of the fairness test.
    pub fair_flooders: usize,
    /// Length of each measured fairness phase (the flooders flood for `fair_ramp` longer).
    /// Their flood ends before the relay's second ping tick (26 s with the defaults): a
    /// flooder whose queue is full at two ticks is cut off, which would thin the flood out
    /// in the middle of the measurement.
    pub fair_phase: Duration,
    /// Flooding before the bystanders' measurement starts, so that it starts under load.
    pub fair_ramp: Duration,
    /// Messages per second from the sending bystander.
    pub fair_rate: f64,
    /// `RELAY_WORKER_THREADS` of the fairness test's relay.
    pub fair_worker_threads: usize,
    /// Run the matrix.
    pub matrix: bool,
    /// Busy-spinning threads in the bench process during the matrix's saturation runs
    /// (`--hog N`, see [`crate::hog`]): 0 for none.
    pub hog: usize,
    /// Server options (relay binary, log directory).
    pub server: ServerOpts,
}

impl Config {
    /// The full run, or the `--quick` one.
    pub fn new(quick: bool, relay_bin: PathBuf, log_dir: PathBuf) -> Config {
        let server = ServerOpts {
            relay_bin,
            rooms: 1,
            max_clients: 20_000,
            worker_threads: None,
            log_dir,
        };
        if quick {
            Config {
                quick,
                servers: Proto::ALL.to_vec(),
                room_sizes: vec![8, 64],
                payloads: vec![256],
                modes: vec![PubMode::One],
                connections: 512,
                warmup: Duration::from_millis(250),
                sat_measure: Duration::from_millis(700),
                lat_measure: Duration::from_millis(1000),
                sat_window: 64,
                lat_window: 512,
                mem_connections: 1000,
                mem_room_size: 8,
                scale_clients: 2000,
                scale_hold: Duration::from_secs(4),
                scale_workers: 2,
                scale_room_size: 10,
                scale_rate_per_room: 1.0,
                slow: true,
                slow_phase: Duration::from_millis(1200),
                slow_rate: 2000.0,
                fairness: true,
                fair_flooders: 4,
                fair_phase: Duration::from_secs(10),
                fair_ramp: Duration::from_secs(1),
                fair_rate: 100.0,
                fair_worker_threads: 2,
                matrix: true,
                hog: 0,
                server,
            }
        } else {
            Config {
                quick,
                servers: Proto::ALL.to_vec(),
                room_sizes: vec![2, 8, 64, 1000],
                payloads: vec![16, 256, 4096],
                modes: vec![PubMode::One, PubMode::All],
                connections: 512,
                warmup: Duration::from_millis(400),
                sat_measure: Duration::from_millis(1500),
                lat_measure: Duration::from_millis(2500),
                sat_window: 64,
                lat_window: 512,
                mem_connections: 10_000,
                mem_room_size: 8,
                scale_clients: 19_500,
                scale_hold: Duration::from_secs(60),
                scale_workers: 2,
                scale_room_size: 10,
                scale_rate_per_room: 1.0,
                slow: true,
                slow_phase: Duration::from_secs(3),
                slow_rate: 2000.0,
                fairness: true,
                fair_flooders: 4,
                fair_phase: Duration::from_secs(20),
                fair_ramp: Duration::from_secs(1),
                fair_rate: 100.0,
                fair_worker_threads: 2,
                matrix: true,
                hog: 0,
                server,
            }
        }
    }
}

/// Latency percentiles of one run, in microseconds.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Deliveries timed.
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// The figures of one measured phase.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Seconds measured.
    pub secs: f64,
    /// Deliveries per second.
    pub deliveries_per_s: f64,
    /// Messages published per second.
    pub msgs_per_s: f64,
    /// Server CPU seconds used.
    pub server_cpu_s: Option<f64>,
    /// Harness CPU seconds used.
    pub harness_cpu_s: f64,
    /// Deliveries per server CPU-second.
    pub per_cpu_s: Option<f64>,
    /// Latency, if recorded.
    pub latency: Option<Latency>,
    /// Largest lag of a paced publish behind its schedule, ms.
    pub pub_lag_max_ms: f64,
    /// Times a paced publisher found its window full.
    pub window_stalls: u64,
}

impl Latency {
    /// The percentiles of a histogram in nanoseconds; `None` if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        let us = |ns: u64| ns as f64 / 1000.0;
        (!h.is_empty()).then(|| Latency {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        })
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "samples": self.samples,
            "p50": round(self.p50_us, 1),
            "p99": round(self.p99_us, 1),
            "p999": round(self.p999_us, 1),
            "max": round(self.max_us, 1),
        })
    }
}

impl Figures {
    /// The figures of one measured phase.
    pub fn of(r: &PhaseResult) -> Figures {
        Figures {
            secs: r.secs,
            deliveries_per_s: r.rate(),
            msgs_per_s: r.msg_rate(),
            server_cpu_s: r.server_cpu_s,
            harness_cpu_s: r.harness_cpu_s,
            per_cpu_s: r.per_cpu_s(),
            latency: Latency::of(&r.hist),
            pub_lag_max_ms: r.pub_lag_max_ns as f64 / 1e6,
            window_stalls: r.window_stalls,
        }
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "secs": round(self.secs, 3),
            "deliveries_per_s": self.deliveries_per_s.round(),
            "msgs_per_s": round(self.msgs_per_s, 1),
            "server_cpu_s": self.server_cpu_s.map(|c| round(c, 3)),
            "harness_cpu_s": round(self.harness_cpu_s, 3),
            "deliveries_per_cpu_s": self.per_cpu_s.map(f64::round),
            "latency_us": self.latency.as_ref().map(Latency::json),
            "pub_lag_max_ms": round(self.pub_lag_max_ms, 3),
            "window_stalls": self.window_stalls,
        })
    }
}

/// Rounds to `d` decimals.
pub fn round(x: f64, d: i32) -> f64 {
    let f = 10f64.powi(d);
    (x * f).round() / f
}

/// The checks of a swarm, kept for the report.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries received in order.
    pub received: u64,
    /// Lost deliveries.
    pub lost: u64,
    /// Duplicated or reordered deliveries.
    pub stale: u64,
    /// Unexpected disconnects.
    pub disconnects: u64,
    /// Other failures.
    pub errors: u64,
    /// The first failures, word for word.
    pub first_errors: Vec<String>,
}

impl Checks {
    /// Adds the checks of one swarm.
    pub fn add(&mut self, t: &Totals) {
        self.sent += t.sent;
        self.received += t.received;
        self.lost += t.lost;
        self.stale += t.stale;
        self.disconnects += t.disconnects;
        self.errors += t.error_count;
        for e in &t.errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e.clone());
            }
        }
    }

    /// Counts a failure, keeping its words.
    pub fn fail(&mut self, why: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(why);
        }
    }

    /// Nothing lost, reordered or failed.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.stale == 0 && self.disconnects == 0 && self.errors == 0
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "sent": self.sent, "received": self.received, "lost": self.lost,
            "stale": self.stale, "disconnects": self.disconnects, "errors": self.errors,
            "first_errors": self.first_errors,
        })
    }
}

/// One server in one matrix cell.
#[derive(Clone, Debug)]
pub struct ServerCell {
    /// Which server.
    pub proto: Proto,
    /// Saturation with the full window.
    pub sat: Option<Figures>,
    /// Saturation with one unread message per room.
    pub sat1: Option<Figures>,
    /// Fixed-rate latency run.
    pub lat: Option<Figures>,
    /// Checks of every run of this server in this cell.
    pub checks: Checks,
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Connections per room.
    pub room_size: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Who publishes.
    pub mode: PubMode,
    /// Rooms.
    pub rooms: usize,
    /// The fixed rate of the latency runs, messages per second (all rooms).
    pub lat_rate: Option<f64>,
    /// The servers' figures.
    pub servers: Vec<ServerCell>,
}

impl Cell {
    /// The figures of `proto`, if measured.
    pub fn server(&self, proto: Proto) -> Option<&ServerCell> {
        self.servers.iter().find(|s| s.proto == proto)
    }
}

/// Idle memory of one server.
#[derive(Clone, Debug)]
pub struct Memory {
    /// Which server.
    pub proto: Proto,
    /// Idle joined connections.
    pub connections: usize,
    /// RSS before the connections, bytes.
    pub rss_before: u64,
    /// RSS with them, bytes.
    pub rss_after: u64,
    /// Server user-space bytes per connection (RSS delta / connections).
    pub per_conn: f64,
    /// Kernel bytes per connection: slab + TCP buffer deltas, whole system, both loopback
    /// ends (None without /proc/slabinfo).
    pub kernel_per_conn: Option<f64>,
    /// TCP socket buffer bytes per connection (sockstat `mem` delta).
    pub sock_buf_per_conn: f64,
    /// Checks (the connections must stay up).
    pub checks: Checks,
}

/// The many-clients test.
#[derive(Clone, Debug, Default)]
pub struct Scale {
    /// Clients asked for.
    pub clients: usize,
    /// Clients joined.
    pub joined: usize,
    /// Worker processes.
    pub workers: usize,
    /// Seconds held.
    pub held_s: f64,
    /// Fewest relay file descriptors seen while holding.
    pub min_server_fds: usize,
    /// Relay RSS while holding, bytes.
    pub server_rss: u64,
    /// Relay CPU seconds while holding.
    pub server_cpu_s: f64,
    /// Deliveries while holding.
    pub deliveries: u64,
    /// CPU seconds of the worker processes while holding.
    pub workers_cpu_s: f64,
    /// Worst p99 over the workers, µs.
    pub p99_us: f64,
    /// Worst max over the workers, µs.
    pub max_us: f64,
    /// Checks over every worker.
    pub checks: Checks,
}

/// The slow-consumer test of one server.
#[derive(Clone, Debug)]
pub struct Slow {
    /// Which server.
    pub proto: Proto,
    /// Messages per second into the room.
    pub rate: f64,
    /// Everyone reading.
    pub before: Figures,
    /// One member stopped reading.
    pub after: Figures,
    /// What the stopped member missed.
    pub slow_member_lost: u64,
    /// The server disconnected the stopped member.
    pub slow_member_disconnected: bool,
    /// Checks for the others.
    pub checks: Checks,
}

/// One phase of the fairness test, as the bystanders saw it.
#[derive(Clone, Debug)]
pub struct FairPhase {
    /// Flooders during the phase (0: the baseline).
    pub flooders: usize,
    /// Seconds over which the measured messages were sent.
    pub secs: f64,
    /// Bystander messages sent in the measured stretch.
    pub sent: u64,
    /// Of those, received.
    pub received: u64,
    /// Of those, later than [`fairness::LATE_NS`].
    pub late: u64,
    /// Their latency.
    pub latency: Option<Latency>,
    /// Largest lag of a bystander send behind its schedule (the harness's own delay, not
    /// counted in the latency), ms.
    pub sender_lag_max_ms: f64,
    /// Relay CPU over the whole phase (warm-up, measured stretch, drain), % of one core.
    pub server_cpu_pct: Option<f64>,
    /// What the flooders did (none in the baseline).
    pub flood: Option<FloodTotals>,
}

impl FairPhase {
    /// The JSON form.
    pub fn json(&self, name: &str) -> Value {
        json!({
            "phase": name,
            "flooders": self.flooders,
            "secs": round(self.secs, 3),
            "sent": self.sent,
            "received": self.received,
            "over_100ms": self.late,
            "latency_us": self.latency.as_ref().map(Latency::json),
            "sender_lag_max_ms": round(self.sender_lag_max_ms, 3),
            "server_cpu_pct": self.server_cpu_pct.map(|c| round(c, 1)),
            "flood": self.flood.as_ref().map(|f| json!({
                "flooders": f.flooders,
                "frames_sent": f.frames_sent,
                "frame_bytes": fairness::FLOOD_FRAME,
                "secs": round(f.secs, 3),
                "frames_per_s": (f.frames_sent as f64 / f.secs.max(1e-9)).round(),
                "bytes_received": f.bytes_received,
                "frames_received": f.frames_received,
                "pongs": f.pongs,
                "closed_by_relay": f.closed_by_relay,
                "disconnect_codes": f.disconnect_codes,
                "errors": f.errors,
            })),
        })
    }
}

/// The fairness test: flooders in one room against a bystander pair in another.
#[derive(Clone, Debug)]
pub struct Fairness {
    /// The relay's `RELAY_WORKER_THREADS`.
    pub worker_threads: usize,
    /// The bystanders' messages per second.
    pub rate: f64,
    /// Bytes of each bystander message.
    pub payload: usize,
    /// No flooder.
    pub baseline: FairPhase,
    /// The flooders flooding.
    pub flood: FairPhase,
    /// The bystanders' checks over both phases (loss, order, disconnects).
    pub checks: Checks,
}

/// Everything one comparison measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// The matrix.
    pub cells: Vec<Cell>,
    /// Idle memory.
    pub memory: Vec<Memory>,
    /// Scale test (ghost-sync only).
    pub scale: Option<Scale>,
    /// Slow consumer.
    pub slow: Vec<Slow>,
    /// Fairness (ghost-sync only).
    pub fairness: Option<Fairness>,
    /// Runs that could not be done at all.
    pub failures: Vec<String>,
}

fn topology(proto: Proto, addr: SocketAddr, rooms: usize, room_size: usize) -> Topology {
    Topology {
        proto,
        addr,
        first_room: 0,
        rooms,
        room_size,
        payload: 256,
        mode: PubMode::One,
        slow_member: false,
        max_window: 64,
        connect_concurrency: 128,
    }
}

/// Runs the whole comparison.
pub async fn run_all(cfg: &Config) -> Result<Results> {
    let mut res = Results::default();
    if cfg.matrix {
        for &mode in &cfg.modes {
            for &room_size in &cfg.room_sizes {
                for &payload in &cfg.payloads {
                    let cell = run_cell(cfg, room_size, payload, mode).await;
                    res.cells.push(cell);
                }
            }
        }
    }
    if cfg.slow {
        for &proto in &cfg.servers {
            match run_slow(cfg, proto, cfg.slow_rate).await {
                Ok(s) => res.slow.push(s),
                Err(e) => res.failures.push(format!("slow consumer, {proto}: {e:#}")),
            }
        }
    }
    if cfg.fairness && cfg.servers.contains(&Proto::Ghost) {
        match run_fairness(cfg).await {
            Ok(f) => res.fairness = Some(f),
            Err(e) => res.failures.push(format!("fairness: {e:#}")),
        }
    }
    if cfg.mem_connections > 0 {
        for &proto in &cfg.servers {
            match run_memory(cfg, proto).await {
                Ok(m) => res.memory.push(m),
                Err(e) => res.failures.push(format!("memory, {proto}: {e:#}")),
            }
        }
    }
    if cfg.scale_clients > 0 && cfg.servers.contains(&Proto::Ghost) {
        match run_scale(cfg).await {
            Ok(s) => res.scale = Some(s),
            Err(e) => res.failures.push(format!("scale: {e:#}")),
        }
    }
    Ok(res)
}

fn progress(msg: &str) {
    eprintln!(
        "[bench {:>7.1}s] {msg}",
        crate::payload::now_ns() as f64 / 1e9
    );
}

/// One matrix cell: saturation (window 64, then 1) per server, then latency per server at
/// half the weakest peer's window-1 rate.
async fn run_cell(cfg: &Config, room_size: usize, payload: usize, mode: PubMode) -> Cell {
    let rooms = (cfg.connections / room_size).max(1);
    let mut cell = Cell {
        room_size,
        payload,
        mode,
        rooms,
        lat_rate: None,
        servers: Vec::new(),
    };
    let phases = |measure| {
        [
            Phase {
                duration: cfg.warmup,
                record: false,
                stall: false,
            },
            Phase {
                duration: measure,
                record: true,
                stall: false,
            },
        ]
    };
    for &proto in &cfg.servers {
        progress(&format!(
            "{proto}: rooms of {room_size} ×{rooms}, {payload} B, {} publishing: saturation{}",
            mode.name(),
            if cfg.hog > 0 {
                format!(
                    ", {} hog thread{} spinning",
                    cfg.hog,
                    if cfg.hog == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        ));
        let mut sc = ServerCell {
            proto,
            sat: None,
            sat1: None,
            lat: None,
            checks: Checks::default(),
        };
        let outcome: Result<()> = async {
            let server = start(cfg, proto, rooms).await?;
            let r = async {
                let mut topo = topology(proto, server.addr, rooms, room_size);
                topo.payload = payload;
                topo.mode = mode;
                topo.max_window = cfg.sat_window.max(cfg.lat_window);
                let mut swarm = Swarm::connect(topo).await?;
                let ph = phases(cfg.sat_measure);
                let drain = Duration::from_secs(5);
                // Both saturation runs, warm-ups and drains included, under the hog (if any);
                // dropped on every way out, which stops and joins its threads.
                let hog = Hog::start(cfg.hog);
                let r = swarm
                    .run(Pacing::Window(cfg.sat_window), &ph, Some(server.pid), drain)
                    .await;
                let r1 = match &r {
                    Ok(_) => Some(
                        swarm
                            .run(Pacing::Window(1), &ph, Some(server.pid), drain)
                            .await,
                    ),
                    Err(_) => None,
                };
                hog.stop();
                let totals = swarm.finish().await;
                sc.checks.add(&totals);
                sc.sat = Some(Figures::of(&r?[1]));
                if let Some(r1) = r1 {
                    sc.sat1 = Some(Figures::of(&r1?[1]));
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            server.stop().await?;
            r
        }
        .await;
        if let Err(e) = outcome {
            sc.checks.fail(format!("saturation: {e:#}"));
        }
        cell.servers.push(sc);
    }

    // The fixed rate: half the weakest peer's one-at-a-time saturation rate (ghost-sync's
    // own if no peer was measured).
    let rate_of = |p: Proto| {
        cell.server(p)
            .and_then(|s| s.sat1.as_ref())
            .map(|f| f.msgs_per_s)
            .filter(|&r| r > 0.0)
    };
    let peers: Vec<f64> = [Proto::Redis, Proto::Nats]
        .into_iter()
        .filter_map(rate_of)
        .collect();
    let base = if peers.is_empty() {
        rate_of(Proto::Ghost)
    } else {
        peers.into_iter().reduce(f64::min)
    };
    cell.lat_rate = base.map(|r| r / 2.0);
    let Some(rate) = cell.lat_rate else {
        return cell;
    };
    for i in 0..cell.servers.len() {
        let proto = cell.servers[i].proto;
        progress(&format!(
            "{proto}: rooms of {room_size} ×{rooms}, {payload} B, {} publishing: latency at {rate:.0} msg/s",
            mode.name()
        ));
        let outcome: Result<Figures> = async {
            let server = start(cfg, proto, rooms).await?;
            let r = async {
                let mut topo = topology(proto, server.addr, rooms, room_size);
                topo.payload = payload;
                topo.mode = mode;
                topo.max_window = cfg.lat_window;
                let mut swarm = Swarm::connect(topo).await?;
                let r = swarm
                    .run(
                        Pacing::Rate {
                            msgs_per_sec: rate,
                            window: cfg.lat_window,
                        },
                        &phases(cfg.lat_measure),
                        Some(server.pid),
                        Duration::from_secs(5),
                    )
                    .await;
                let totals = swarm.finish().await;
                cell.servers[i].checks.add(&totals);
                Ok::<_, anyhow::Error>(Figures::of(&r?[1]))
            }
            .await;
            server.stop().await?;
            r
        }
        .await;
        match outcome {
            Ok(f) => cell.servers[i].lat = Some(f),
            Err(e) => cell.servers[i].checks.fail(format!("latency: {e:#}")),
        }
    }
    cell
}

async fn start(cfg: &Config, proto: Proto, rooms: usize) -> Result<ServerProc> {
    let mut opts = cfg.server.clone();
    opts.rooms = rooms;
    servers::start(proto, &opts).await
}

/// One room of 64 at a fixed rate: everyone reading, then one member stops reading.
async fn run_slow(cfg: &Config, proto: Proto, rate: f64) -> Result<Slow> {
    progress(&format!(
        "{proto}: slow consumer in a room of 64 at {rate:.0} msg/s"
    ));
    let server = start(cfg, proto, 1).await?;
    let r = async {
        let mut topo = topology(proto, server.addr, 1, 64);
        topo.slow_member = true;
        topo.max_window = cfg.lat_window;
        let mut swarm = Swarm::connect(topo).await?;
        let ph = [
            Phase {
                duration: cfg.warmup,
                record: false,
                stall: false,
            },
            Phase {
                duration: cfg.slow_phase,
                record: true,
                stall: false,
            },
            // The member stops; its socket buffers and the server's queue for it fill up.
            Phase {
                duration: Duration::from_secs(1),
                record: false,
                stall: true,
            },
            Phase {
                duration: cfg.slow_phase,
                record: true,
                stall: true,
            },
        ];
        let r = swarm
            .run(
                Pacing::Rate {
                    msgs_per_sec: rate,
                    window: cfg.lat_window,
                },
                &ph,
                Some(server.pid),
                Duration::from_secs(5),
            )
            .await;
        let totals = swarm.finish().await;
        let r = r?;
        let mut checks = Checks::default();
        checks.add(&totals);
        Ok::<_, anyhow::Error>(Slow {
            proto,
            rate,
            before: Figures::of(&r[1]),
            after: Figures::of(&r[3]),
            slow_member_lost: totals.slow_member_lost,
            slow_member_disconnected: totals.slow_member_disconnected,
            checks,
        })
    }
    .await;
    server.stop().await?;
    r
}

/// Fairness: the bystander pair in `room-1` alone (the baseline), then with
/// `cfg.fair_flooders` flooders writing tiny broadcasts back to back in `room-0`, on a relay
/// with `cfg.fair_worker_threads` worker threads.
async fn run_fairness(cfg: &Config) -> Result<Fairness> {
    let n = cfg.fair_flooders;
    progress(&format!(
        "ghost-sync: fairness, bystanders at {:.0} msg/s alone, then against {n} flooders, \
         {:?} each, RELAY_WORKER_THREADS={}",
        cfg.fair_rate, cfg.fair_phase, cfg.fair_worker_threads
    ));
    let mut opts = cfg.server.clone();
    opts.rooms = 2;
    opts.worker_threads = Some(cfg.fair_worker_threads);
    let server = servers::start(Proto::Ghost, &opts).await?;
    let r = fairness_with(cfg, &server).await;
    server.stop().await?;
    r
}

async fn fairness_with(cfg: &Config, server: &ServerProc) -> Result<Fairness> {
    // Long enough for a stalled delivery to arrive: the stalls this test looks for last seconds.
    let drain = Duration::from_secs(10);
    let mut by = Bystanders::connect(server.addr, &room_name(1)).await?;
    let phases = async {
        let cpu = CpuMeter::start(server.pid);
        let b = by
            .phase(cfg.fair_rate, cfg.fair_ramp, cfg.fair_phase, drain)
            .await?;
        let baseline = fair_phase(0, &b, cpu.pct(), None);

        let spec = FloodSpec {
            addr: server.addr,
            room: room_name(0),
            flooders: cfg.fair_flooders,
            duration: cfg.fair_ramp + cfg.fair_phase,
            // Far beyond what loopback takes in the duration: the clock ends the flood.
            max_frames: 1 << 34,
        };
        let flood = tokio::task::spawn_blocking(move || Flood::start(&spec))
            .await
            .context("starting the flooders")??;
        let cpu = CpuMeter::start(server.pid);
        let b = by
            .phase(cfg.fair_rate, cfg.fair_ramp, cfg.fair_phase, drain)
            .await;
        let cpu = cpu.pct();
        // On a failed phase the flooders must not go on for their whole duration.
        if b.is_err() {
            flood.stop();
        }
        let totals = tokio::task::spawn_blocking(move || flood.join())
            .await
            .context("waiting for the flooders")?;
        let flooded = fair_phase(cfg.fair_flooders, &b?, cpu, Some(totals));
        Ok::<_, anyhow::Error>((baseline, flooded))
    }
    .await;
    let totals = by.finish().await;
    let (baseline, flood) = phases?;
    let mut checks = Checks::default();
    checks.add(&totals);
    Ok(Fairness {
        worker_threads: cfg.fair_worker_threads,
        rate: cfg.fair_rate,
        payload: fairness::BYSTANDER_PAYLOAD,
        baseline,
        flood,
        checks,
    })
}

/// A process's CPU use from now on.
struct CpuMeter {
    pid: u32,
    cpu0: Option<f64>,
    t0: Instant,
}

impl CpuMeter {
    fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            cpu0: sys::cpu_seconds(pid).ok(),
            t0: Instant::now(),
        }
    }

    /// CPU seconds since the start over wall seconds, in % of one core.
    fn pct(&self) -> Option<f64> {
        let cpu1 = sys::cpu_seconds(self.pid).ok()?;
        let wall = self.t0.elapsed().as_secs_f64();
        Some(100.0 * (cpu1 - self.cpu0?) / wall.max(1e-9))
    }
}

fn fair_phase(
    flooders: usize,
    b: &fairness::BystanderPhase,
    server_cpu_pct: Option<f64>,
    flood: Option<FloodTotals>,
) -> FairPhase {
    FairPhase {
        flooders,
        secs: b.secs,
        sent: b.sent,
        received: b.received,
        late: b.late,
        latency: Latency::of(&b.hist),
        sender_lag_max_ms: b.sender_lag_max_ns as f64 / 1e6,
        server_cpu_pct,
        flood,
    }
}

/// Idle joined connections: the server's RSS (and the kernel's memory) before and after.
async fn run_memory(cfg: &Config, proto: Proto) -> Result<Memory> {
    let n = cfg.mem_connections;
    let rooms = n.div_ceil(cfg.mem_room_size);
    progress(&format!("{proto}: memory of {n} idle joined connections"));
    let server = start(cfg, proto, rooms).await?;
    let r = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss0 = sys::rss_bytes(server.pid)?;
        let sock0 = sys::sockstat()?;
        let slab0 = sys::slab_bytes();
        let mut topo = topology(proto, server.addr, rooms, cfg.mem_room_size);
        topo.mode = PubMode::Idle;
        topo.payload = 16;
        topo.max_window = 1;
        let swarm = Swarm::connect(topo).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss1 = sys::rss_bytes(server.pid)?;
        let sock1 = sys::sockstat()?;
        let slab1 = sys::slab_bytes();
        let conns = swarm.connections();
        let totals = swarm.finish().await;
        let mut checks = Checks::default();
        checks.add(&totals);
        let per = |a: u64, b: u64| (b as f64 - a as f64) / conns as f64;
        let sock_buf = per(sock0.tcp_mem_bytes, sock1.tcp_mem_bytes);
        Ok::<_, anyhow::Error>(Memory {
            proto,
            connections: conns,
            rss_before: rss0,
            rss_after: rss1,
            per_conn: per(rss0, rss1),
            kernel_per_conn: slab0.zip(slab1).map(|(a, b)| per(a, b) + sock_buf),
            sock_buf_per_conn: sock_buf,
            checks,
        })
    }
    .await;
    server.stop().await?;
    r
}

/// What a scale-test worker is told (passed as JSON on its command line).
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// The relay.
    pub addr: SocketAddr,
    /// Its first room (global index).
    pub first_room: usize,
    /// Its rooms.
    pub rooms: usize,
    /// Clients per room.
    pub room_size: usize,
    /// Messages per second, all its rooms together.
    pub rate: f64,
    /// How long to hold after GO.
    pub hold: Duration,
}

impl WorkerSpec {
    fn to_json(&self) -> String {
        json!({
            "addr": self.addr.to_string(), "first_room": self.first_room, "rooms": self.rooms,
            "room_size": self.room_size, "rate": self.rate, "hold_ms": self.hold.as_millis() as u64,
        })
        .to_string()
    }

    /// Parses the worker's command-line JSON.
    pub fn from_json(s: &str) -> Result<WorkerSpec> {
        let v: Value = serde_json::from_str(s)?;
        let num = |k: &str| {
            v[k].as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| anyhow!("worker spec without {k}"))
        };
        Ok(WorkerSpec {
            addr: v["addr"]
                .as_str()
                .ok_or_else(|| anyhow!("worker spec without addr"))?
                .parse()?,
            first_room: num("first_room")?,
            rooms: num("rooms")?,
            room_size: num("room_size")?,
            rate: v["rate"].as_f64().unwrap_or(1.0),
            hold: Duration::from_millis(num("hold_ms")? as u64),
        })
    }
}

/// The worker side of the scale test: connect and join, say READY, wait for GO on stdin,
/// hold with light traffic, print RESULT with the checks.
pub async fn worker_main(spec: WorkerSpec) -> Result<()> {
    sys::raise_nofile_limit();
    let mut topo = topology(Proto::Ghost, spec.addr, spec.rooms, spec.room_size);
    topo.first_room = spec.first_room;
    topo.max_window = 64;
    topo.connect_concurrency = 64;
    let mut swarm = Swarm::connect(topo).await?;
    println!("READY {}", swarm.connections());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    match stdin.next_line().await? {
        Some(l) if l.trim() == "GO" => {}
        other => bail!("worker expected GO, got {other:?}"),
    }
    let r = swarm
        .run(
            Pacing::Rate {
                msgs_per_sec: spec.rate,
                window: 64,
            },
            &[Phase {
                duration: spec.hold,
                record: true,
                stall: false,
            }],
            None,
            Duration::from_secs(5),
        )
        .await;
    let totals = swarm.finish().await;
    let r = r?;
    let f = Figures::of(&r[0]);
    let lat = f.latency.clone();
    println!(
        "RESULT {}",
        json!({
            "sent": totals.sent, "received": totals.received, "lost": totals.lost,
            "stale": totals.stale, "disconnects": totals.disconnects,
            "errors": totals.error_count, "first_errors": totals.errors,
            "peers_left": totals.peers_left,
            "deliveries": r[0].deliveries,
            "harness_cpu_s": r[0].harness_cpu_s,
            "p99_us": lat.as_ref().map_or(0.0, |l| l.p99_us),
            "max_us": lat.as_ref().map_or(0.0, |l| l.max_us),
        })
    );
    Ok(())
}

/// The scale test: many clients on one relay, split over worker processes (each process may
/// hold only so many sockets), held with light traffic.
async fn run_scale(cfg: &Config) -> Result<Scale> {
    let clients = cfg.scale_clients;
    let size = cfg.scale_room_size;
    let rooms = clients / size;
    progress(&format!(
        "ghost-sync: scale, {} clients in {} worker processes, held {:?}",
        rooms * size,
        cfg.scale_workers,
        cfg.scale_hold
    ));
    let server = start(cfg, Proto::Ghost, rooms).await?;
    let r = scale_with(cfg, &server, rooms, size).await;
    server.stop().await?;
    r
}

async fn scale_with(cfg: &Config, server: &ServerProc, rooms: usize, size: usize) -> Result<Scale> {
    let exe = std::env::current_exe()?;
    let mut res = Scale {
        clients: rooms * size,
        workers: cfg.scale_workers,
        ..Scale::default()
    };
    let mut workers = Vec::new();
    let per = rooms.div_ceil(cfg.scale_workers);
    let mut first = 0;
    while first < rooms {
        let n = per.min(rooms - first);
        let spec = WorkerSpec {
            addr: server.addr,
            first_room: first,
            rooms: n,
            room_size: size,
            rate: cfg.scale_rate_per_room * n as f64,
            hold: cfg.scale_hold,
        };
        let mut child = tokio::process::Command::new(&exe)
            .arg("__worker")
            .arg(spec.to_json())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no worker stdout"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no worker stdin"))?;
        workers.push((child, stdin, BufReader::new(stdout).lines()));
        first += n;
    }
    // Wait until every worker has joined all its clients.
    for (_, _, lines) in workers.iter_mut() {
        let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
            .await
            .map_err(|_| anyhow!("a worker did not get ready in time"))??
            .ok_or_else(|| anyhow!("a worker exited before READY"))?;
        let n: usize = line
            .strip_prefix("READY ")
            .ok_or_else(|| anyhow!("unexpected worker output {line:?}"))?
            .trim()
            .parse()?;
        res.joined += n;
    }
    progress(&format!("{} clients joined; holding", res.joined));
    let cpu0 = sys::cpu_seconds(server.pid)?;
    let t0 = Instant::now();
    for (_, stdin, _) in workers.iter_mut() {
        stdin.write_all(b"GO\n").await?;
        stdin.flush().await?;
    }
    // Watch the relay's sockets while the workers hold.
    res.min_server_fds = usize::MAX;
    let sample_every = Duration::from_millis(500);
    while t0.elapsed() + sample_every < cfg.scale_hold {
        tokio::time::sleep(sample_every).await;
        res.min_server_fds = res.min_server_fds.min(sys::fd_count(server.pid)?);
        res.server_rss = res.server_rss.max(sys::rss_bytes(server.pid)?);
    }
    res.server_cpu_s = sys::cpu_seconds(server.pid)? - cpu0;
    for (mut child, _stdin, mut lines) in workers {
        let line = tokio::time::timeout(cfg.scale_hold + Duration::from_secs(60), async {
            loop {
                match lines.next_line().await? {
                    Some(l) if l.starts_with("RESULT ") => return Ok(l),
                    Some(_) => continue,
                    None => bail!("a worker exited without a result"),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("a worker gave no result in time"))??;
        res.held_s = t0.elapsed().as_secs_f64();
        let v: Value = serde_json::from_str(&line["RESULT ".len()..])?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let mut t = Totals {
            sent: n("sent"),
            received: n("received"),
            lost: n("lost"),
            stale: n("stale"),
            disconnects: n("disconnects"),
            error_count: n("errors"),
            ..Totals::default()
        };
        if let Some(errs) = v["first_errors"].as_array() {
            t.errors = errs
                .iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect();
        }
        res.checks.add(&t);
        res.deliveries += n("deliveries");
        res.workers_cpu_s += v["harness_cpu_s"].as_f64().unwrap_or(0.0);
        res.p99_us = res.p99_us.max(v["p99_us"].as_f64().unwrap_or(0.0));
        res.max_us = res.max_us.max(v["max_us"].as_f64().unwrap_or(0.0));
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    if res.joined < res.clients {
        res.checks.fail(format!(
            "only {} of {} clients joined",
            res.joined, res.clients
        ));
    }
    Ok(res)
}
