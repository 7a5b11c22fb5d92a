//! The cluster scenario: the same fixed-rate load on one relay alone, on plain redis
//! pub/sub, and on a cluster of three relays that share one redis-server as their broker.
//!
//! Every room has 8 members, all publishing 256-byte payloads at a fixed rate; in the
//! cluster, member `m` of each room connects to relay `m % 3`, so most deliveries cross from
//! one relay to another through redis. Before the measurement, every ghost-sync member must
//! have been told of its room's 7 others (`Members`, then `PlayerJoined`): in the cluster a
//! member on another relay arrives one broker hop after its join. Reported per setup: the
//! deliveries per CPU-second of *all* its server processes (the three relays and redis for
//! the cluster), latency at the fixed rate (and, for the cluster, of the cross-relay
//! deliveries alone), loss and reordering. [`table`] and [`report`] turn the runs into the
//! table, the targets, the JSON document and the Markdown section; [`entry`] builds the
//! relays and writes the results.

pub mod entry;
pub mod report;
pub mod table;

pub use entry::{run_cluster, ClusterArgs};

use crate::load::{Pacing, Phase, PubMode, Swarm, Topology};
use crate::proto::Proto;
use crate::scenarios::{Checks, Figures, Latency};
use crate::servers::{self, ServerOpts, ServerProc};
use crate::sys;
use anyhow::{anyhow, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the cluster scenario is told.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `--quick`: one short round.
    pub quick: bool,
    /// Relays in the cluster.
    pub relays: usize,
    /// Rooms (all three setups).
    pub rooms: usize,
    /// Members per room.
    pub room_size: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Messages per second from each member.
    pub rate_per_member: f64,
    /// Unpaced time before each measurement.
    pub warmup: Duration,
    /// Each measurement.
    pub measure: Duration,
    /// Rounds; each runs the three setups in turn, so a change in the machine's load hits
    /// them alike.
    pub rounds: usize,
    /// Unread messages allowed per room: a safety bound, far above what the rate needs.
    pub window: u32,
    /// How long the members may take to see each other.
    pub presence_timeout: Duration,
    /// The plain relay binary (setup *single*).
    pub relay_bin: PathBuf,
    /// The relay built with `--features redis` (the cluster), or why there is none.
    pub cluster_relay_bin: Result<PathBuf, String>,
    /// Where the servers' logs go.
    pub log_dir: PathBuf,
}

impl ClusterConfig {
    /// The full run (3 rounds of 15 s), or the `--quick` one (1 round of 5 s). 64 rooms of 8
    /// at 7.5 msg/s per member: 3,840 msg/s, the fixed rate of the matrix's rooms of 8 with
    /// everyone publishing 256 B (about 3.8k msg/s, half the weakest peer's one-at-a-time
    /// rate, in the full run of BENCHMARKS.md): a fixed operating point well below
    /// saturation.
    pub fn new(
        quick: bool,
        relay_bin: PathBuf,
        cluster_relay_bin: Result<PathBuf, String>,
        log_dir: PathBuf,
    ) -> Self {
        ClusterConfig {
            quick,
            relays: 3,
            rooms: 64,
            room_size: 8,
            payload: 256,
            rate_per_member: 7.5,
            warmup: Duration::from_secs(if quick { 1 } else { 2 }),
            measure: Duration::from_secs(if quick { 5 } else { 15 }),
            rounds: if quick { 1 } else { 3 },
            window: 64,
            presence_timeout: Duration::from_secs(20),
            relay_bin,
            cluster_relay_bin,
            log_dir,
        }
    }

    /// Messages per second, all members together.
    pub fn total_rate(&self) -> f64 {
        self.rate_per_member * (self.rooms * self.room_size) as f64
    }
}

/// The three setups under the same load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// One relay, no broker.
    Single,
    /// redis-server's own pub/sub, members on RESP3 connections.
    Redis,
    /// Three relays sharing one redis-server.
    Cluster,
}

impl Setup {
    /// Every setup, in the order a round runs them.
    pub const ALL: [Setup; 3] = [Setup::Single, Setup::Redis, Setup::Cluster];

    /// The key in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Setup::Single => "single",
            Setup::Redis => "redis",
            Setup::Cluster => "cluster",
        }
    }

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Single => "single relay",
            Setup::Redis => "redis pub/sub",
            Setup::Cluster => "cluster",
        }
    }
}

/// One setup in one round.
#[derive(Clone, Debug)]
pub struct SetupRun {
    /// Which setup.
    pub setup: Setup,
    /// Round number, from 1.
    pub round: usize,
    /// The measured stretch (`None` if the run failed before it).
    pub figures: Option<Figures>,
    /// Latency of the deliveries between members on different relays (cluster only).
    pub cross: Option<Latency>,
    /// Latency of the deliveries between members on the same relay (cluster only).
    pub same: Option<Latency>,
    /// Each server process and its CPU seconds during the measurement.
    pub cpu_each: Vec<(String, f64)>,
    /// The whole machine's busy and stolen CPU seconds during the measurement (about: sampled
    /// beside it), to tell other work on the machine from the setup's own.
    pub machine_cpu: Option<(f64, f64)>,
    /// From the last join confirmed to every member knowing all of its room's others, ms.
    pub presence_ms: Option<f64>,
    /// Loss, reordering, disconnects, failures.
    pub checks: Checks,
}

/// Everything the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct ClusterResults {
    /// Every run, round by round.
    pub runs: Vec<SetupRun>,
    /// Setups that could not be run at all, and why.
    pub skipped: Vec<(Setup, String)>,
}

fn progress(msg: &str) {
    eprintln!(
        "[bench {:>7.1}s] cluster: {msg}",
        crate::payload::now_ns() as f64 / 1e9
    );
}

/// Runs every round.
pub async fn run(cfg: &ClusterConfig) -> ClusterResults {
    let mut res = ClusterResults::default();
    if let Err(why) = &cfg.cluster_relay_bin {
        res.skipped.push((Setup::Cluster, why.clone()));
    }
    for round in 1..=cfg.rounds {
        for setup in Setup::ALL {
            if setup == Setup::Cluster && cfg.cluster_relay_bin.is_err() {
                continue;
            }
            progress(&format!(
                "round {round}/{}: {}, {} rooms of {} at {:.0} msg/s",
                cfg.rounds,
                setup.label(),
                cfg.rooms,
                cfg.room_size,
                cfg.total_rate()
            ));
            res.runs.push(run_setup(cfg, setup, round).await);
        }
    }
    res
}

/// Starts the setup's servers, runs the load on them, stops them.
async fn run_setup(cfg: &ClusterConfig, setup: Setup, round: usize) -> SetupRun {
    let mut run = SetupRun {
        setup,
        round,
        figures: None,
        cross: None,
        same: None,
        cpu_each: Vec::new(),
        machine_cpu: None,
        presence_ms: None,
        checks: Checks::default(),
    };
    let servers = match start(cfg, setup).await {
        Ok(s) => s,
        Err(e) => {
            run.checks.fail(format!("starting the servers: {e:#}"));
            return run;
        }
    };
    if let Err(e) = load(cfg, &servers, &mut run).await {
        run.checks.fail(format!("{e:#}"));
    }
    for (name, mut s) in servers {
        // A server that died under the load explains the failures above.
        if !s.running() {
            run.checks.fail(format!("{name} exited during the run"));
        }
        if let Err(e) = s.stop().await {
            run.checks.fail(format!("stopping {name}: {e:#}"));
        }
    }
    run
}

fn opts(cfg: &ClusterConfig, relay_bin: &Path) -> ServerOpts {
    ServerOpts {
        relay_bin: relay_bin.to_path_buf(),
        rooms: cfg.rooms,
        max_clients: 20_000,
        worker_threads: None,
        log_dir: cfg.log_dir.clone(),
    }
}

/// The setup's server processes, named; the ones members connect to first (relays, or
/// redis alone), the cluster's broker last.
async fn start(cfg: &ClusterConfig, setup: Setup) -> Result<Vec<(String, ServerProc)>> {
    match setup {
        Setup::Single => {
            let relay = servers::start(Proto::Ghost, &opts(cfg, &cfg.relay_bin)).await?;
            Ok(vec![("relay".to_owned(), relay)])
        }
        Setup::Redis => {
            let redis = servers::start(Proto::Redis, &opts(cfg, &cfg.relay_bin)).await?;
            Ok(vec![("redis-server".to_owned(), redis)])
        }
        Setup::Cluster => {
            let bin = cfg
                .cluster_relay_bin
                .as_ref()
                .map_err(|why| anyhow!("{why}"))?;
            let o = opts(cfg, bin);
            // A fresh broker for every run: nothing left from the run before.
            let redis = servers::start(Proto::Redis, &o).await?;
            let url = format!("redis://{}", redis.addr);
            let mut procs: Vec<(String, ServerProc)> = Vec::new();
            let started = async {
                // The first relay creates the rooms; the others find them there ("already
                // exists" is fine with --redis), so they start after its READY.
                for i in 0..cfg.relays {
                    let name = format!("relay-{i}");
                    let extra: Vec<String> = [
                        "--room-prefix",
                        "room-",
                        "--redis",
                        &url,
                        "--key-prefix",
                        "ghost-sync-bench",
                        "--relay-name",
                        &name,
                    ]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                    let log = format!("cluster-{name}.log");
                    let p = servers::start_relay(&o, &extra, &log)
                        .await
                        .with_context(|| {
                            format!("starting {name} (log: {})", o.log_dir.join(&log).display())
                        })?;
                    procs.push((name, p));
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = started {
                for (_, p) in procs {
                    let _ = p.stop().await;
                }
                let _ = redis.stop().await;
                return Err(e);
            }
            procs.push(("redis-server".to_owned(), redis));
            Ok(procs)
        }
    }
}

/// Connects the rooms, waits for presence, runs the warm-up and the measurement.
async fn load(
    cfg: &ClusterConfig,
    servers: &[(String, ServerProc)],
    run: &mut SetupRun,
) -> Result<()> {
    let (proto, addrs): (Proto, Vec<SocketAddr>) = match run.setup {
        Setup::Single => (Proto::Ghost, vec![servers[0].1.addr]),
        Setup::Redis => (Proto::Redis, vec![servers[0].1.addr]),
        Setup::Cluster => (
            Proto::Ghost,
            servers[..cfg.relays].iter().map(|(_, p)| p.addr).collect(),
        ),
    };
    let topo = Topology {
        proto,
        addr: addrs[0],
        first_room: 0,
        rooms: cfg.rooms,
        room_size: cfg.room_size,
        payload: cfg.payload,
        mode: PubMode::All,
        slow_member: false,
        max_window: cfg.window,
        connect_concurrency: 64,
    };
    let mut swarm = Swarm::connect_spread(topo, &addrs).await?;
    let joined = Instant::now();
    let r = async {
        swarm.wait_presence(cfg.presence_timeout).await?;
        if proto == Proto::Ghost {
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
        let pids: Vec<u32> = servers.iter().map(|(_, p)| p.pid).collect();
        let pacing = Pacing::Rate {
            msgs_per_sec: cfg.total_rate(),
            window: cfg.window,
        };
        let (warmup, measure) = (cfg.warmup, cfg.measure);
        let sampler = tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let a = sys::machine_cpu_seconds().ok()?;
            tokio::time::sleep(measure).await;
            let b = sys::machine_cpu_seconds().ok()?;
            Some((b.0 - a.0, b.1 - a.1))
        });
        let r = swarm
            .run_pids(pacing, &phases, &pids, Duration::from_secs(5))
            .await?;
        run.machine_cpu = sampler.await.ok().flatten();
        let m = &r[1];
        run.figures = Some(Figures::of(m));
        if run.setup == Setup::Cluster {
            run.cross = Latency::of(&m.cross_hist);
            // The rest of the deliveries. A read batch recorded as the phase ended may be in
            // one histogram and not the other: then a bucket would go negative, and there is
            // no same-relay figure rather than a wrong one.
            let mut same = m.hist.clone();
            if same.subtract(&m.cross_hist).is_ok() {
                run.same = Latency::of(&same);
            }
        }
        run.cpu_each = servers
            .iter()
            .map(|(n, _)| n.clone())
            .zip(m.server_cpu_each.iter().copied())
            .collect();
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let totals = swarm.finish().await;
    run.checks.add(&totals);
    r
}
