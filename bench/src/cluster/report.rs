//! The cluster scenario's outputs besides the table ([`super::table`]): the two targets
//! (PASS/MISS), the JSON document and the generated Markdown section of `BENCHMARKS.md`.
//!
//! With several rounds, the targets compare medians over the rounds (each figure its own
//! median), so that one noisy run on the shared machine does not decide a verdict alone.

use super::{ClusterConfig, ClusterResults, Setup, SetupRun};
use crate::report::Target;
use crate::scenarios::round;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Start marker of the generated section in `BENCHMARKS.md`.
pub const MD_START: &str = "<!-- bench:cluster:start -->";
/// End marker of the generated section.
pub const MD_END: &str = "<!-- bench:cluster:end -->";

/// Slack the cross-relay p99 may have over the single relay's p99.
const P99_SLACK_US: f64 = 1000.0;
/// Share of the single relay's deliveries per CPU-second the cluster must keep.
const CPU_SHARE: f64 = 0.5;

/// The median of the finite values of `v`.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median over `setup`'s rounds of one figure.
fn med(res: &ClusterResults, setup: Setup, f: impl Fn(&SetupRun) -> Option<f64>) -> Option<f64> {
    median(
        res.runs
            .iter()
            .filter(|r| r.setup == setup)
            .filter_map(f)
            .collect(),
    )
}

/// A run's deliveries per CPU-second of all its servers.
pub(super) fn per_cpu(r: &SetupRun) -> Option<f64> {
    r.figures.as_ref().and_then(|f| f.per_cpu_s)
}

fn p99(r: &SetupRun) -> Option<f64> {
    r.figures
        .as_ref()
        .and_then(|f| f.latency.as_ref())
        .map(|l| l.p99_us)
}

fn cross_p99(r: &SetupRun) -> Option<f64> {
    r.cross.as_ref().map(|l| l.p99_us)
}

/// The two targets, and that nothing was lost or reordered.
pub fn targets(res: &ClusterResults) -> Vec<Target> {
    let mut out = Vec::new();
    let single = med(res, Setup::Single, p99);
    let cross = med(res, Setup::Cluster, cross_p99);
    let v = cross.zip(single);
    out.push(Target {
        name: "cross-relay p99 at the fixed rate ≤ single relay's p99 + 1 ms".into(),
        measured: v.map_or("not measured".into(), |(c, s)| {
            format!(
                "{:.2} ms vs {:.2} ms + 1 ms ({:+.2} ms)",
                c / 1e3,
                s / 1e3,
                (c - s) / 1e3
            )
        }),
        pass: v.map(|(c, s)| c <= s + P99_SLACK_US),
    });
    let v = med(res, Setup::Cluster, per_cpu).zip(med(res, Setup::Single, per_cpu));
    out.push(Target {
        name: "cluster deliveries per CPU-second (3 relays + redis) ≥ 0.5× single relay's".into(),
        measured: v.map_or("not measured".into(), |(c, s)| {
            format!("{:.2}× ({:.0} vs {:.0})", c / s, c, s)
        }),
        pass: v.map(|(c, s)| c >= CPU_SHARE * s),
    });
    let (lost, stale): (u64, u64) = res
        .runs
        .iter()
        .fold((0, 0), |(l, s), r| (l + r.checks.lost, s + r.checks.stale));
    out.push(Target {
        name: "no delivery lost or reordered at the fixed rate (every setup)".into(),
        measured: format!("lost {lost}, reordered or duplicated {stale}"),
        pass: (!res.runs.is_empty()).then_some(lost == 0 && stale == 0),
    });
    out
}

/// Nothing lost, reordered or failed, and every setup run.
pub fn clean(res: &ClusterResults) -> bool {
    res.skipped.is_empty() && res.runs.iter().all(|r| r.checks.clean())
}

fn run_json(r: &SetupRun) -> Value {
    json!({
        "setup": r.setup.key(),
        "round": r.round,
        "fixed_rate": r.figures.as_ref().map(crate::scenarios::Figures::json),
        "cross_relay_latency_us": r.cross.as_ref().map(crate::scenarios::Latency::json),
        "same_relay_latency_us": r.same.as_ref().map(crate::scenarios::Latency::json),
        "server_cpu_s": r.cpu_each.iter().map(|(n, c)| (n.clone(), json!(round(*c, 3)))).collect::<serde_json::Map<_, _>>(),
        "presence_ms": r.presence_ms.map(|p| round(p, 1)),
        "machine_cpu_s": r.machine_cpu.map(|(busy, steal)| json!({"busy": round(busy, 3), "steal": round(steal, 3)})),
        "checks": r.checks.json(),
    })
}

/// The JSON document.
pub fn to_json(
    cfg: &ClusterConfig,
    res: &ClusterResults,
    meta: Value,
    targets: &[Target],
) -> Value {
    let medians: serde_json::Map<String, Value> = Setup::ALL
        .iter()
        .map(|&s| {
            (
                s.key().to_owned(),
                json!({
                    "deliveries_per_cpu_s": med(res, s, per_cpu).map(f64::round),
                    "p99_us": med(res, s, p99).map(|v| round(v, 1)),
                    "cross_relay_p99_us": med(res, s, cross_p99).map(|v| round(v, 1)),
                }),
            )
        })
        .collect();
    json!({
        "meta": meta,
        "config": {
            "quick": cfg.quick,
            "relays": cfg.relays,
            "rooms": cfg.rooms,
            "room_size": cfg.room_size,
            "connections": cfg.rooms * cfg.room_size,
            "payload": cfg.payload,
            "msgs_per_s_per_member": cfg.rate_per_member,
            "msgs_per_s": cfg.total_rate(),
            "warmup_s": cfg.warmup.as_secs_f64(),
            "measure_s": cfg.measure.as_secs_f64(),
            "rounds": cfg.rounds,
            "window": cfg.window,
        },
        "runs": res.runs.iter().map(run_json).collect::<Vec<_>>(),
        "medians": medians,
        "skipped": res.skipped.iter().map(|(s, why)| json!({"setup": s.key(), "why": why})).collect::<Vec<_>>(),
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "measured": t.measured, "pass": t.pass,
        })).collect::<Vec<_>>(),
        "clean": clean(res),
    })
}

/// The generated section: when and where, the targets, the table.
pub fn markdown(meta: &Value, table: &str, targets: &[Target], command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}  ", crate::report::run_line(meta, command));
    let _ = writeln!(s, "{}  ", crate::report::machine_line(meta));
    let _ = writeln!(
        s,
        "Servers: ghost-sync {} (`examples/relay.rs`; the cluster's built with `--features redis`); {}.\n",
        env!("CARGO_PKG_VERSION"),
        meta["versions"]["redis"].as_str().unwrap_or("?"),
    );
    if meta["load_before"][0].as_f64().unwrap_or(0.0) > 0.5 {
        s.push_str(
            "**Preliminary:** the machine was not quiet at the start (load average above 0.5).\n\n",
        );
    }
    s.push_str("| verdict | target | measured |\n|---|---|---|\n");
    for t in targets {
        let _ = writeln!(s, "| {} | {} | {} |", t.verdict(), t.name, t.measured);
    }
    let _ = writeln!(s, "\n```text\n{table}```");
    s
}

/// Replaces the generated section of `doc` (between [`MD_START`] and [`MD_END`]).
pub fn splice(doc: &str, section: &str) -> Option<String> {
    let a = doc.find(MD_START)? + MD_START.len();
    let b = doc.find(MD_END)?;
    (a <= b).then(|| format!("{}\n{}\n{}", &doc[..a], section.trim_end(), &doc[b..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
    }

    #[test]
    fn nothing_measured_is_not_a_pass() {
        let res = ClusterResults::default();
        assert!(targets(&res).iter().all(|t| t.pass.is_none()));
        let doc = format!("a\n{MD_START}\nold\n{MD_END}\nb\n");
        assert_eq!(
            splice(&doc, "new").unwrap(),
            format!("a\n{MD_START}\nnew\n{MD_END}\nb\n")
        );
    }
}
