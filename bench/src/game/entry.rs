//! What `--game` (and the full run, unless `--no-game`) does around the measurement: build
//! the relay, run the rounds, print the tables, the verdicts and one JSON line, write
//! `bench/results/game.json` (`game-quick.json` with `--quick`, or `--game-out`) and, with
//! `--update-md`, rewrite only this scenario's generated section of `BENCHMARKS.md`.

use super::{report, table, GameConfig, Shape};
use crate::proto::Proto;
use crate::{servers, sys};
use anyhow::{anyhow, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The command line's say in the game-load scenario.
#[derive(Clone, Debug, Default)]
pub struct GameArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--relay PATH` (default: build `examples/relay.rs`).
    pub relay: Option<PathBuf>,
    /// `--servers LIST` (default: all three).
    pub servers: Option<Vec<Proto>>,
    /// `--game-clients N`: N/8 rooms of 8 and N/128 rooms of 64 (see [`Shape::for_clients`]).
    pub clients: Option<usize>,
    /// `--game-rates L`: tick rates, Hz.
    pub rates: Option<Vec<f64>>,
    /// `--game-rounds N`.
    pub rounds: Option<usize>,
    /// `--game-secs S`: seconds measured per run.
    pub secs: Option<u64>,
    /// `--game-out FILE` (default `bench/results/game.json`, `game-quick.json` with `--quick`).
    pub out: Option<PathBuf>,
    /// `--update-md FILE`.
    pub update_md: Option<PathBuf>,
    /// The workspace root.
    pub root: PathBuf,
    /// When the scenario started, `YYYY-MM-DD HH:MM` UTC.
    pub started_utc: String,
}

/// The command that ran this, as typed (`cargo run ... -- ARGS`).
fn command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        "cargo run --release -p ghost-sync-bench".to_owned()
    } else {
        format!(
            "cargo run --release -p ghost-sync-bench -- {}",
            args.join(" ")
        )
    }
}

/// Runs the scenario and writes its results; returns true if nothing was lost, reordered
/// or failed (a run that did not keep up, or a missed target, is a finding, not a failure).
pub async fn run_game(args: GameArgs) -> Result<bool> {
    let t0 = Instant::now();
    let relay = match &args.relay {
        Some(p) => p.clone(),
        None => servers::build_relay()?,
    };
    let mut cfg = GameConfig::new(args.quick, relay, args.root.join("target/bench-logs"));
    if let Some(s) = &args.servers {
        cfg.servers = s.clone();
    }
    if let Some(n) = args.clients {
        cfg.shapes = Shape::for_clients(n).to_vec();
    }
    if let Some(r) = &args.rates {
        cfg.rates = r.clone();
    }
    if let Some(n) = args.rounds {
        cfg.rounds = n.max(1);
    }
    if let Some(s) = args.secs {
        cfg.measure = Duration::from_secs(s.max(1));
    }
    let load_before = sys::loadavg();
    let res = super::run(&cfg).await;
    let load_after = sys::loadavg();
    let command = command();
    let mut versions = serde_json::Map::new();
    for &p in &cfg.servers {
        versions.insert(
            p.name().to_owned(),
            json!(servers::peer_version(p).unwrap_or_else(|e| format!("{e:#}"))),
        );
    }
    versions.insert(
        "rustc".into(),
        json!(sys::command_line_output("rustc", &["--version"]).unwrap_or_default()),
    );
    let meta = json!({
        "started_utc": args.started_utc,
        "duration_s": crate::scenarios::round(t0.elapsed().as_secs_f64(), 1),
        "load_before": load_before,
        "load_after": load_after,
        "machine": sys::machine(),
        "versions": versions,
        "commit": sys::command_line_output("git", &["-C", &args.root.to_string_lossy(), "rev-parse", "--short", "HEAD"]),
        "command": command,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
    });
    let verdicts = report::verdicts(&cfg, &res);
    let doc = report::to_json(&cfg, &res, meta.clone(), &verdicts);
    let runs = table::runs(&cfg, &res);
    let medians = table::medians_table(&cfg, &res);
    let out = args.out.clone().unwrap_or_else(|| {
        args.root.join(if cfg.quick {
            "bench/results/game-quick.json"
        } else {
            "bench/results/game.json"
        })
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(md) = &args.update_md {
        update_md(md, &report::markdown(&meta, &medians, &verdicts, &command))?;
    }
    println!("{runs}");
    println!("{medians}");
    for v in &verdicts {
        println!(
            "{:<4}  {}: {}: {}{}",
            v.verdict(),
            v.cell,
            v.target,
            v.measured,
            v.note
                .as_ref()
                .map_or(String::new(), |n| format!(" [note: {n}]"))
        );
    }
    for r in &res.runs {
        for e in &r.checks.first_errors {
            println!(
                "FAILED: game, {} on {} #{}: {e}",
                r.cell.label(),
                r.server,
                r.round
            );
        }
    }
    let clean = report::clean(&res);
    println!(
        "game results: {}; load average {:.2} → {:.2}; {}",
        out.display(),
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

fn update_md(md: &Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(md)?;
    let new = report::splice(&text, section)
        .ok_or_else(|| anyhow!("{} has no {} marker", md.display(), report::MD_START))?;
    std::fs::write(md, new)?;
    Ok(())
}
