//! What `--cluster` (and the full run, unless `--no-cluster`) does around the measurement:
//! build the two relay binaries, run the rounds, print the table and the targets, write
//! `bench/results/cluster.json` (`cluster-quick.json` with `--quick`) and, if asked,
//! rewrite the generated section of `BENCHMARKS.md`.

use super::{report, table, ClusterConfig};
use crate::{servers, sys};
use anyhow::{anyhow, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The command line's say in the cluster scenario.
#[derive(Clone, Debug, Default)]
pub struct ClusterArgs {
    /// `--quick`.
    pub quick: bool,
    /// `--relay PATH`: the single relay's binary (default: build `examples/relay.rs`).
    pub relay: Option<PathBuf>,
    /// `--cluster-relay PATH`: a relay built with `--features redis` (default: build it).
    pub cluster_relay: Option<PathBuf>,
    /// `--cluster-out FILE` (default `bench/results/cluster.json`).
    pub out: Option<PathBuf>,
    /// `--update-md FILE`.
    pub update_md: Option<PathBuf>,
    /// `--cluster-rounds N`.
    pub rounds: Option<usize>,
    /// `--cluster-secs S`: seconds measured per run.
    pub secs: Option<u64>,
    /// `--cluster-rate R`: messages per second per member.
    pub rate: Option<f64>,
    /// The workspace root.
    pub root: PathBuf,
    /// When the whole run started, `YYYY-MM-DD HH:MM` UTC.
    pub started_utc: String,
}

/// Builds the relay (with `features`), then copies it beside itself under `name`: each
/// feature set is linked to the same `examples/relay`, so the next build would replace it.
fn build_copy(features: &[&str], name: &str) -> Result<PathBuf> {
    let built = servers::build_relay_with(features)?;
    let copy = built.with_file_name(name);
    std::fs::copy(&built, &copy)
        .with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}

/// Runs the scenario and writes its results; returns true if nothing was lost, reordered
/// or failed.
pub async fn run_cluster(args: ClusterArgs) -> Result<bool> {
    let t0 = Instant::now();
    let relay = match &args.relay {
        Some(p) => p.clone(),
        None => build_copy(&[], "relay-plain")?,
    };
    let cluster_relay = match &args.cluster_relay {
        Some(p) => Ok(p.clone()),
        None => build_copy(&["redis"], "relay-redis")
            .map_err(|e| format!("no relay built with --features redis: {e:#}")),
    };
    let mut cfg = ClusterConfig::new(
        args.quick,
        relay,
        cluster_relay,
        args.root.join("target/bench-logs"),
    );
    if let Some(n) = args.rounds {
        cfg.rounds = n.max(1);
    }
    if let Some(s) = args.secs {
        cfg.measure = std::time::Duration::from_secs(s.max(1));
    }
    if let Some(r) = args.rate {
        cfg.rate_per_member = r;
    }
    let load_before = sys::loadavg();
    let res = super::run(&cfg).await;
    let load_after = sys::loadavg();
    let command = format!(
        "cargo run --release -p ghost-sync-bench -- --cluster{}",
        if cfg.quick { " --quick" } else { "" }
    );
    let meta = json!({
        "started_utc": args.started_utc,
        "duration_s": crate::scenarios::round(t0.elapsed().as_secs_f64(), 1),
        "load_before": load_before,
        "load_after": load_after,
        "machine": sys::machine(),
        "versions": {
            "ghost-sync": format!("ghost-sync {}", env!("CARGO_PKG_VERSION")),
            "redis": servers::peer_version(crate::proto::Proto::Redis).unwrap_or_default(),
            "rustc": sys::command_line_output("rustc", &["--version"]).unwrap_or_default(),
        },
        "commit": sys::command_line_output("git", &["-C", &args.root.to_string_lossy(), "rev-parse", "--short", "HEAD"]),
        "command": command,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
    });
    let targets = report::targets(&res);
    let doc = report::to_json(&cfg, &res, meta.clone(), &targets);
    let table = table::table(&cfg, &res);
    let out = args.out.clone().unwrap_or_else(|| {
        args.root.join(if cfg.quick {
            "bench/results/cluster-quick.json"
        } else {
            "bench/results/cluster.json"
        })
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(md) = &args.update_md {
        update_md(md, &report::markdown(&meta, &table, &targets, &command))?;
    }
    println!("{table}");
    println!("{}", crate::report::targets_text(&targets));
    for r in &res.runs {
        for e in &r.checks.first_errors {
            println!("FAILED: cluster, {} #{}: {e}", r.setup.label(), r.round);
        }
    }
    for (s, why) in &res.skipped {
        println!("FAILED: cluster, {} not run: {why}", s.label());
    }
    let clean = report::clean(&res);
    println!(
        "cluster results: {}; {}",
        out.display(),
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
