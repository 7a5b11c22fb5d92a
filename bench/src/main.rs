//! `ghost-sync-bench`: runs the comparison of ghost-sync with redis-server and nats-server,
//! prints a table, the targets and one JSON line, and writes the results.
//!
//! ```text
//! cargo run --release -p ghost-sync-bench -- [--quick] [--out FILE] [--svg FILE]
//!     [--update-md FILE] [--servers ghost,redis,nats] [--no-matrix] [--no-memory]
//!     [--no-scale] [--no-slow] [--no-fairness] [--fairness] [--fair-flooders N]
//!     [--fair-secs S] [--relay PATH] [--cluster] [--no-cluster] [--cluster-relay PATH]
//!     [--game] [--no-game] [--game-clients N] [--game-rates 30,60] [--game-rounds N]
//!     [--game-secs S] [--game-out FILE] [--hog N]
//! ```
//!
//! The full run is the matrix and the other single-relay tests, then the game-load test
//! (every member publishing at 30 and 60 Hz, on all three servers), then the cluster test;
//! `--game` and `--cluster` run one of those alone, `--no-game` and `--no-cluster` skip
//! one. `--hog N` starts N busy-spinning threads in this process for each saturation run of
//! the matrix (default 0: none), so that the load generator takes a core or more.
//!
//! Exits 1 if any delivery was lost or reordered, a connection dropped, or a run failed;
//! a missed target is a measurement, not a failure. The scale test re-executes this binary
//! as worker processes (`__worker`), since one process may hold only 20,000 sockets.

use anyhow::{anyhow, bail, Context, Result};
use ghost_sync_bench::cluster::{self, ClusterArgs};
use ghost_sync_bench::game::{self, GameArgs};
use ghost_sync_bench::load::PubMode;
use ghost_sync_bench::proto::Proto;
use ghost_sync_bench::report;
use ghost_sync_bench::scenarios::{self, Config, WorkerSpec};
use ghost_sync_bench::{servers, sys};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "ghost-sync-bench [--quick] [--out FILE] [--svg FILE] [--update-md FILE]
    [--servers ghost,redis,nats] [--no-matrix] [--no-memory] [--no-scale] [--no-slow]
    [--no-fairness] [--fairness] [--fair-flooders N] [--fair-secs S]
    [--relay PATH] [--room-sizes 2,8] [--payloads 256] [--modes one,all] [--connections N]
    [--mem-connections N]
    [--scale-clients N] [--scale-hold SECS] [--cluster] [--no-cluster]
    [--cluster-relay PATH] [--cluster-out FILE] [--cluster-rounds N] [--cluster-secs S]
    [--cluster-rate R] [--game] [--no-game] [--game-clients N] [--game-rates 30,60]
    [--game-rounds N] [--game-secs S] [--game-out FILE] [--hog N]

  --quick         reduced matrix (rooms of 8 and 64, 256 B, one publisher), short runs,
                  1,000 idle connections, 2,000 clients for 4 s, fairness phases of
                  10 s: under a minute and a half
  --out FILE      results JSON (default bench/results/latest.json, quick.json with --quick)
  --svg FILE      chart (default bench/results/chart.svg, quick.svg with --quick)
  --update-md F   rewrite the generated section of F (e.g. BENCHMARKS.md)
  --servers LIST  which servers to run (default all three)
  --relay PATH    use this relay binary instead of building examples/relay.rs
  --room-sizes L, --payloads L, --modes one,all, --connections N
                  override the matrix (e.g. to re-run one cell)
  --hog N         N busy-spinning threads in the bench process through each saturation run
                  of the matrix (warm-up to drain; not the latency runs), so that the load
                  generator takes a core or more (default 0); recorded in the results
  --mem-connections N
                  idle joined connections of the memory test (10,000; 1,000 quick)
  --scale-clients N, --scale-hold SECS
                  override the scale test (19,500 clients, 60 s)
  --fairness      run only the fairness test (ghost-sync alone; no redis or nats needed);
                  results to bench/results/fairness.json (fairness-quick.json with --quick)
  --no-fairness   skip the fairness test
  --fair-flooders N, --fair-secs S
                  flooders (default 4) and seconds per measured phase (10 quick, 20 full)
  --cluster       run only the cluster test: one relay, redis pub/sub, and 3 relays sharing
                  one redis-server, same fixed-rate load; results to bench/results/cluster.json
                  (cluster-quick.json with --quick, or --cluster-out); --update-md rewrites
                  only its section
  --no-cluster    skip the cluster test
  --cluster-relay PATH
                  a relay built with --features redis (default: build it)
  --cluster-rounds N, --cluster-secs S, --cluster-rate R
                  rounds (3 full, 1 quick), seconds measured per run (15 full, 5 quick),
                  messages per second per member (7.5)
  --game          run only the game-load test: every member of every room publishing 128 B
                  at a tick rate, 16 rooms of 8 and 1 room of 64, at 30 and 60 Hz, on each
                  server of --servers (fresh process per run, servers interleaved per round,
                  medians of the rounds); results to bench/results/game.json (game-quick.json
                  with --quick, or --game-out); --update-md rewrites only its section
  --no-game       skip the game-load test
  --game-clients N
                  N/8 rooms of 8 and N/128 rooms of 64, at least one each (default 128:
                  16x8 and 1x64; the rooms of 64 get half the clients, each of their
                  messages making 9 times the deliveries)
  --game-rates L, --game-rounds N, --game-secs S
                  tick rates in Hz (30,60), rounds (3 full, 1 quick), seconds measured per
                  run after the warm-up of 2 s (1 s quick) (15 full, 5 quick)";

struct Args {
    quick: bool,
    out: Option<PathBuf>,
    svg: Option<PathBuf>,
    update_md: Option<PathBuf>,
    servers: Option<Vec<Proto>>,
    no_matrix: bool,
    no_memory: bool,
    no_scale: bool,
    no_slow: bool,
    no_fairness: bool,
    fairness_only: bool,
    fair_flooders: Option<usize>,
    fair_secs: Option<u64>,
    relay: Option<PathBuf>,
    room_sizes: Option<Vec<usize>>,
    payloads: Option<Vec<usize>>,
    modes: Option<Vec<PubMode>>,
    connections: Option<usize>,
    mem_connections: Option<usize>,
    scale_clients: Option<usize>,
    scale_hold: Option<u64>,
    cluster_only: bool,
    no_cluster: bool,
    cluster: ClusterArgs,
    game_only: bool,
    no_game: bool,
    game: GameArgs,
    hog: usize,
}

fn list<T>(s: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    s.split(',')
        .map(|x| f(x.trim()).ok_or_else(|| anyhow!("bad list item {x:?}")))
        .collect()
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        quick: false,
        out: None,
        svg: None,
        update_md: None,
        servers: None,
        no_matrix: false,
        no_memory: false,
        no_scale: false,
        no_slow: false,
        no_fairness: false,
        fairness_only: false,
        fair_flooders: None,
        fair_secs: None,
        relay: None,
        room_sizes: None,
        payloads: None,
        modes: None,
        connections: None,
        mem_connections: None,
        scale_clients: None,
        scale_hold: None,
        cluster_only: false,
        no_cluster: false,
        cluster: ClusterArgs::default(),
        game_only: false,
        no_game: false,
        game: GameArgs::default(),
        hog: 0,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--quick" => a.quick = true,
            "--out" => a.out = Some(value()?.into()),
            "--svg" => a.svg = Some(value()?.into()),
            "--update-md" => a.update_md = Some(value()?.into()),
            "--servers" => {
                a.servers = Some(
                    value()?
                        .split(',')
                        .map(|s| {
                            Proto::from_name(s.trim()).ok_or_else(|| anyhow!("unknown server {s}"))
                        })
                        .collect::<Result<_>>()?,
                )
            }
            "--no-matrix" => a.no_matrix = true,
            "--no-memory" => a.no_memory = true,
            "--no-scale" => a.no_scale = true,
            "--no-slow" => a.no_slow = true,
            "--no-fairness" => a.no_fairness = true,
            "--fairness" => a.fairness_only = true,
            "--fair-flooders" => a.fair_flooders = Some(value()?.parse()?),
            "--fair-secs" => a.fair_secs = Some(value()?.parse()?),
            "--relay" => a.relay = Some(value()?.into()),
            "--room-sizes" => a.room_sizes = Some(list(&value()?, |x| x.parse().ok())?),
            "--payloads" => a.payloads = Some(list(&value()?, |x| x.parse().ok())?),
            "--modes" => {
                a.modes = Some(list(&value()?, |x| match x {
                    "one" => Some(PubMode::One),
                    "all" => Some(PubMode::All),
                    _ => None,
                })?)
            }
            "--connections" => a.connections = Some(value()?.parse()?),
            "--mem-connections" => a.mem_connections = Some(value()?.parse()?),
            "--scale-clients" => a.scale_clients = Some(value()?.parse()?),
            "--scale-hold" => a.scale_hold = Some(value()?.parse()?),
            "--cluster" => a.cluster_only = true,
            "--no-cluster" => a.no_cluster = true,
            "--cluster-relay" => a.cluster.cluster_relay = Some(value()?.into()),
            "--cluster-out" => a.cluster.out = Some(value()?.into()),
            "--cluster-rounds" => a.cluster.rounds = Some(value()?.parse()?),
            "--cluster-secs" => a.cluster.secs = Some(value()?.parse()?),
            "--cluster-rate" => a.cluster.rate = Some(value()?.parse()?),
            "--hog" => a.hog = value()?.parse()?,
            "--game" => a.game_only = true,
            "--no-game" => a.no_game = true,
            "--game-clients" => a.game.clients = Some(value()?.parse()?),
            "--game-rates" => a.game.rates = Some(list(&value()?, |x| x.parse().ok())?),
            "--game-rounds" => a.game.rounds = Some(value()?.parse()?),
            "--game-secs" => a.game.secs = Some(value()?.parse()?),
            "--game-out" => a.game.out = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.fairness_only && a.no_fairness {
        bail!("--fairness and --no-fairness contradict each other");
    }
    if a.fairness_only && a.update_md.is_some() {
        // The generated section is the full comparison's; a fairness-only run would replace it.
        bail!("--update-md rewrites the full run's section: not with --fairness");
    }
    if a.cluster_only && (a.no_cluster || a.fairness_only) {
        bail!("--cluster runs only the cluster test: not with --no-cluster or --fairness");
    }
    if a.game_only && (a.no_game || a.fairness_only || a.cluster_only) {
        bail!("--game runs only the game test: not with --no-game, --fairness or --cluster");
    }
    if a.game.clients == Some(0) || a.game.rounds == Some(0) || a.game.secs == Some(0) {
        bail!("--game-clients, --game-rounds and --game-secs need at least 1");
    }
    if a.game
        .rates
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.iter().any(|&hz| !(hz > 0.0 && hz.is_finite())))
    {
        bail!("--game-rates needs positive rates");
    }
    if a.fair_flooders == Some(0) || a.fair_secs == Some(0) {
        bail!("--fair-flooders and --fair-secs need at least 1");
    }
    Ok(a)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `YYYY-MM-DD HH:MM` for a Unix time (UTC).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if argv.first().map(String::as_str) == Some("__worker") {
        let spec = WorkerSpec::from_json(argv.get(1).ok_or_else(|| anyhow!("no worker spec"))?)?;
        return rt.block_on(scenarios::worker_main(spec));
    }
    let mut args = parse_args(&argv)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    args.cluster.quick = args.quick;
    args.cluster.relay = args.relay.clone();
    args.cluster.root = workspace();
    args.cluster.started_utc = utc(now);
    // The full run includes the cluster test, unless told otherwise or it has no redis.
    let with_cluster = !args.no_cluster
        && !args.fairness_only
        && args
            .servers
            .as_ref()
            .is_none_or(|s| s.contains(&Proto::Redis));
    let mut cluster_args = args.cluster.clone();
    cluster_args.update_md = args.update_md.clone();
    // The full run includes the game test too, unless told otherwise.
    let with_game = !args.no_game && !args.fairness_only;
    let mut game_args = args.game.clone();
    game_args.quick = args.quick;
    game_args.relay = args.relay.clone();
    game_args.servers = args.servers.clone();
    game_args.update_md = args.update_md.clone();
    game_args.root = workspace();
    let run_game = |mut a: GameArgs| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        a.started_utc = utc(now);
        rt.block_on(game::run_game(a))
    };
    let clean = if args.cluster_only {
        sys::raise_nofile_limit();
        rt.block_on(cluster::run_cluster(cluster_args))?
    } else if args.game_only {
        sys::raise_nofile_limit();
        run_game(game_args)?
    } else {
        let clean = rt.block_on(run(args))?;
        // Before the cluster, which leaves the relay example built with --features redis.
        let game_clean = !with_game || run_game(game_args)?;
        let cluster_clean = !with_cluster || rt.block_on(cluster::run_cluster(cluster_args))?;
        clean && game_clean && cluster_clean
    };
    // Leave at once: nothing left to flush, and tasks of closed connections need no wait.
    rt.shutdown_background();
    std::process::exit(if clean { 0 } else { 1 });
}

async fn run(args: Args) -> Result<bool> {
    let nofile = sys::raise_nofile_limit();
    let root = workspace();
    let relay = match args.relay {
        Some(p) => p,
        None => servers::build_relay()?,
    };
    let mut cfg = Config::new(args.quick, relay, root.join("target/bench-logs"));
    if let Some(s) = args.servers {
        cfg.servers = s;
    }
    cfg.matrix &= !args.no_matrix;
    if let Some(v) = args.room_sizes {
        cfg.room_sizes = v;
    }
    if let Some(v) = args.payloads {
        cfg.payloads = v;
    }
    if let Some(v) = args.modes {
        cfg.modes = v;
    }
    if let Some(v) = args.connections {
        cfg.connections = v;
    }
    if let Some(v) = args.mem_connections {
        cfg.mem_connections = v;
    }
    if let Some(v) = args.scale_clients {
        cfg.scale_clients = v;
    }
    if let Some(v) = args.scale_hold {
        cfg.scale_hold = std::time::Duration::from_secs(v);
    }
    cfg.hog = args.hog;
    cfg.slow &= !args.no_slow;
    cfg.fairness &= !args.no_fairness;
    if let Some(n) = args.fair_flooders {
        cfg.fair_flooders = n;
    }
    if let Some(s) = args.fair_secs {
        cfg.fair_phase = std::time::Duration::from_secs(s);
    }
    if args.fairness_only {
        cfg.servers = vec![Proto::Ghost];
        cfg.matrix = false;
        cfg.slow = false;
        cfg.mem_connections = 0;
        cfg.scale_clients = 0;
    }
    if args.no_memory {
        cfg.mem_connections = 0;
    }
    if args.no_scale {
        cfg.scale_clients = 0;
    }
    let mut versions = serde_json::Map::new();
    for &p in &cfg.servers {
        versions.insert(p.name().to_owned(), json!(servers::peer_version(p)?));
    }
    versions.insert(
        "rustc".into(),
        json!(sys::command_line_output("rustc", &["--version"]).unwrap_or_default()),
    );
    if cfg
        .mem_connections
        .max(cfg.scale_clients / cfg.scale_workers.max(1))
        + 100
        > nofile as usize
    {
        eprintln!("warning: the open-files limit is {nofile}; large tests may fail");
    }
    let load_before = sys::loadavg();
    if load_before[0] > 0.5 {
        eprintln!(
            "warning: load average {:.2}: the machine is busy, figures will be noisy",
            load_before[0]
        );
    }
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t0 = Instant::now();
    let res = scenarios::run_all(&cfg).await?;
    let load_after = sys::loadavg();
    let command = format!(
        "cargo run --release -p ghost-sync-bench --{}{}{}",
        if cfg.quick { " --quick" } else { "" },
        if args.fairness_only {
            " --fairness"
        } else {
            ""
        },
        if cfg.hog > 0 {
            format!(" --hog {}", cfg.hog)
        } else {
            String::new()
        }
    );
    let meta = json!({
        "started_utc": utc(started),
        "duration_s": scenarios::round(t0.elapsed().as_secs_f64(), 1),
        "load_before": load_before,
        "load_after": load_after,
        "machine": sys::machine(),
        "versions": versions,
        "commit": sys::command_line_output("git", &["-C", &root.to_string_lossy(), "rev-parse", "--short", "HEAD"]),
        "command": command,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
        "hog": cfg.hog,
    });
    let targets = report::targets(&cfg, &res);
    let doc = report::to_json(&cfg, &res, meta.clone(), &targets);
    let table = report::table(&res);

    let results_dir = root.join("bench/results");
    let name = match (args.fairness_only, cfg.quick) {
        (true, true) => "fairness-quick",
        (true, false) => "fairness",
        (false, true) => "quick",
        (false, false) => "latest",
    };
    let out = args
        .out
        .unwrap_or_else(|| results_dir.join(format!("{name}.json")));
    // A fairness-only run has no matrix to chart: no chart unless asked for.
    let svg_path = match args.svg {
        Some(p) => Some(p),
        None if args.fairness_only => None,
        None => Some(results_dir.join(if cfg.quick { "quick.svg" } else { "chart.svg" })),
    };
    for p in std::iter::once(&out).chain(svg_path.as_ref()) {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let subtitle = format!(
        "{} · load avg {:.2} → {:.2} · {}",
        meta["started_utc"].as_str().unwrap_or(""),
        load_before[0],
        load_after[0],
        if cfg.quick { "quick run" } else { "full run" }
    );
    if let Some(svg_path) = &svg_path {
        std::fs::write(svg_path, report::svg(&res, &subtitle))?;
    }
    if let (Some(md), Some(svg_path)) = (&args.update_md, &svg_path) {
        let text = std::fs::read_to_string(md)?;
        let md_dir = md
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()?;
        let svg_abs = svg_path.canonicalize()?;
        let chart = svg_abs
            .strip_prefix(&md_dir)
            .unwrap_or(&svg_abs)
            .display()
            .to_string();
        let section = report::markdown(&meta, &table, &targets, &chart, &command);
        let new = report::splice(&text, &section)
            .ok_or_else(|| anyhow!("{} has no {} marker", md.display(), report::MD_START))?;
        std::fs::write(md, new)?;
    }

    println!("{table}");
    println!("{}", report::targets_text(&targets));
    let clean = report::all_clean(&res);
    for f in &res.failures {
        println!("FAILED: {f}");
    }
    if let Some(f) = &res.fairness {
        for e in &f.checks.first_errors {
            println!("FAILED: fairness bystanders: {e}");
        }
    }
    for c in &res.cells {
        for s in &c.servers {
            for e in &s.checks.first_errors {
                println!(
                    "FAILED: {} rooms of {} {} B: {e}",
                    s.proto, c.room_size, c.payload
                );
            }
        }
    }
    println!(
        "results: {}{}; load average {:.2} → {:.2}; {}",
        out.display(),
        svg_path
            .as_ref()
            .map_or(String::new(), |p| format!(" and {}", p.display())),
        load_before[0],
        load_after[0],
        if clean {
            "no loss, no reordering, no failure"
        } else {
            "FAILURES (see above)"
        }
    );
    println!("{}", serde_json::to_string(&doc)?);
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
    }
}
