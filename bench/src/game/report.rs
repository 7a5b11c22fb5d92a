//! The game-load scenario's outputs besides the tables ([`super::table`]): the medians over
//! the rounds, the per-cell verdicts (PASS/MISS), the JSON document and the generated
//! Markdown section of `BENCHMARKS.md`.
//!
//! Targets, per cell, from the medians (each figure its own median over the rounds):
//! ghost-sync's server CPU per delivery at most 0.5× redis's and 0.35× nats's, and its p99
//! at most the better peer's. A CPU verdict where a server did not keep up with the offered
//! load says so: it then compares work on a backlog, not on the tick load.

use super::syscalls::Source;
use super::{Cell, GameConfig, GameResults, GameRun};
use crate::cluster::report::median;
use crate::proto::Proto;
use crate::scenarios::round;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Start marker of the generated section in `BENCHMARKS.md`.
pub const MD_START: &str = "<!-- bench:game:start -->";
/// End marker of the generated section.
pub const MD_END: &str = "<!-- bench:game:end -->";

/// ghost-sync's CPU per delivery may be at most this share of redis's.
pub const CPU_VS_REDIS: f64 = 0.5;
/// ghost-sync's CPU per delivery may be at most this share of nats's.
pub const CPU_VS_NATS: f64 = 0.35;

/// Above this 1-minute load average at the start, the section is marked preliminary.
const QUIET_LOAD: f64 = 1.0;

/// One server in one cell, over its rounds: each figure the median of the runs that have
/// it, the checks summed.
#[derive(Clone, Debug, Default)]
pub struct Med {
    /// Runs of this server in this cell.
    pub runs: usize,
    /// Of those, runs that measured.
    pub measured: usize,
    /// Of those, runs that did not keep up with the offered load.
    pub not_kept_up: usize,
    /// What fell short, run by run (`#round: ...`).
    pub shortfalls: Vec<String>,
    /// Messages published per second.
    pub msgs_per_s: Option<f64>,
    /// Deliveries per second.
    pub deliveries_per_s: Option<f64>,
    /// Deliveries over the offered ones.
    pub delivered_share: Option<f64>,
    /// The server's CPU, % of one core.
    pub cpu_pct: Option<f64>,
    /// The machine's busy CPU, % of one core (so up to cores × 100).
    pub machine_pct: Option<f64>,
    /// Server CPU-seconds per million deliveries.
    pub cpu_per_m: Option<f64>,
    /// System calls per delivery, from the runs of `syscalls_source`.
    pub syscalls_per_delivery: Option<f64>,
    /// Where those counts came from: perf if any run had it, else `/proc/PID/io`.
    pub syscalls_source: Option<Source>,
    /// Latency percentiles, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile, µs.
    pub p999_us: Option<f64>,
    /// Largest, µs.
    pub max_us: Option<f64>,
    /// The paced publisher's largest lag behind schedule, ms.
    pub lag_ms: Option<f64>,
    /// Times the paced publisher found a window full.
    pub stalls: Option<f64>,
    /// Lost deliveries, all rounds.
    pub lost: u64,
    /// Duplicated or reordered deliveries, all rounds.
    pub stale: u64,
    /// Unexpected disconnects, all rounds.
    pub disconnects: u64,
    /// Other failures, all rounds.
    pub errors: u64,
}

/// The per-run figures that have medians.
pub(super) fn cpu_pct(r: &GameRun) -> Option<f64> {
    let f = r.figures.as_ref()?;
    Some(100.0 * f.server_cpu_s? / f.secs.max(1e-9))
}

pub(super) fn machine_pct(r: &GameRun) -> Option<f64> {
    let f = r.figures.as_ref()?;
    Some(100.0 * r.machine_cpu?.0 / f.secs.max(1e-9))
}

fn lat(r: &GameRun, pick: fn(&crate::scenarios::Latency) -> f64) -> Option<f64> {
    r.figures.as_ref()?.latency.as_ref().map(pick)
}

/// The medians of `server` in `cell`; `None` if it was not run there.
pub fn medians(res: &GameResults, cell: &Cell, server: Proto) -> Option<Med> {
    let runs: Vec<&GameRun> = res
        .runs
        .iter()
        .filter(|r| r.cell == *cell && r.server == server)
        .collect();
    if runs.is_empty() {
        return None;
    }
    let m =
        |f: &dyn Fn(&GameRun) -> Option<f64>| median(runs.iter().filter_map(|r| f(r)).collect());
    let mut med = Med {
        runs: runs.len(),
        msgs_per_s: m(&|r| r.figures.as_ref().map(|f| f.msgs_per_s)),
        deliveries_per_s: m(&|r| r.figures.as_ref().map(|f| f.deliveries_per_s)),
        delivered_share: m(&|r| r.keep_up().map(|k| k.delivered_share)),
        cpu_pct: m(&cpu_pct),
        machine_pct: m(&machine_pct),
        cpu_per_m: m(&GameRun::cpu_per_m),
        p50_us: m(&|r| lat(r, |l| l.p50_us)),
        p99_us: m(&|r| lat(r, |l| l.p99_us)),
        p999_us: m(&|r| lat(r, |l| l.p999_us)),
        max_us: m(&|r| lat(r, |l| l.max_us)),
        lag_ms: m(&|r| r.figures.as_ref().map(|f| f.pub_lag_max_ms)),
        stalls: m(&|r| r.figures.as_ref().map(|f| f.window_stalls as f64)),
        ..Med::default()
    };
    // Counts of different kinds do not mix: perf's if any run has one.
    med.syscalls_source = [Source::Perf, Source::ProcIo].into_iter().find(|&s| {
        runs.iter()
            .any(|r| r.syscalls.source == Some(s) && r.syscalls_per_delivery().is_some())
    });
    med.syscalls_per_delivery = med.syscalls_source.and_then(|s| {
        m(&|r| {
            (r.syscalls.source == Some(s))
                .then(|| r.syscalls_per_delivery())
                .flatten()
        })
    });
    for r in &runs {
        med.lost += r.checks.lost;
        med.stale += r.checks.stale;
        med.disconnects += r.checks.disconnects;
        med.errors += r.checks.errors;
        if let Some(k) = r.keep_up() {
            med.measured += 1;
            if !k.ok() {
                med.not_kept_up += 1;
                med.shortfalls
                    .push(format!("#{}: {}", r.round, k.shortfalls.join(", ")));
            }
        }
    }
    Some(med)
}

/// One target in one cell, evaluated.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The cell (`16x8 @30Hz`).
    pub cell: String,
    /// What is required.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` PASS, `Some(false)` MISS, `None` not measured.
    pub pass: Option<bool>,
    /// What qualifies the verdict (a server that did not keep up).
    pub note: Option<String>,
}

impl Verdict {
    /// `PASS`, `MISS` or `n/a`.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

/// Why a comparison involving `server` measures a backlog, if it does.
fn backlog(server: Proto, m: &Med) -> Option<String> {
    (m.not_kept_up > 0).then(|| {
        format!(
            "{server} did not keep up in {} of {} runs ({})",
            m.not_kept_up,
            m.measured,
            m.shortfalls.join("; ")
        )
    })
}

/// The three verdicts of one cell, from the medians of each server (`None`: not run).
pub fn cell_verdicts(
    cell: &str,
    ghost: Option<&Med>,
    redis: Option<&Med>,
    nats: Option<&Med>,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (peer, factor, pm) in [
        (Proto::Redis, CPU_VS_REDIS, redis),
        (Proto::Nats, CPU_VS_NATS, nats),
    ] {
        let v = ghost
            .and_then(|g| g.cpu_per_m)
            .zip(pm.and_then(|p| p.cpu_per_m));
        let notes: Vec<String> = [(Proto::Ghost, ghost), (peer, pm)]
            .into_iter()
            .filter_map(|(s, m)| backlog(s, m?))
            .collect();
        out.push(Verdict {
            cell: cell.to_owned(),
            target: format!("ghost-sync's server CPU per delivery ≤ {factor}× {peer}'s"),
            measured: v.map_or_else(
                || not_measured(ghost, pm, peer),
                |(g, p)| {
                    format!(
                        "{:.2}× ({g:.2} vs {p:.2} CPU-s per million deliveries)",
                        g / p
                    )
                },
            ),
            pass: v.map(|(g, p)| g <= factor * p),
            note: (!notes.is_empty()).then(|| {
                format!(
                    "{}: the ratio compares work on a backlog, not on the tick load",
                    notes.join("; ")
                )
            }),
        });
    }
    let g = ghost.and_then(|g| g.p99_us);
    let best = [(Proto::Redis, redis), (Proto::Nats, nats)]
        .into_iter()
        .filter_map(|(p, m)| Some((m?.p99_us?, p)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let v = g.zip(best);
    out.push(Verdict {
        cell: cell.to_owned(),
        target: "ghost-sync's p99 ≤ the better peer's p99".to_owned(),
        measured: v.map_or_else(
            || "not measured".to_owned(),
            |(g, (b, p))| format!("{:.2}× ({:.2} ms vs {p} {:.2} ms)", g / b, g / 1e3, b / 1e3),
        ),
        pass: v.map(|(g, (b, _))| g <= b),
        note: None,
    });
    out
}

fn not_measured(ghost: Option<&Med>, peer_med: Option<&Med>, peer: Proto) -> String {
    match (ghost, peer_med) {
        (None, _) => "not measured (ghost-sync not run)".to_owned(),
        (_, None) => format!("not measured ({peer} not run)"),
        _ => "not measured".to_owned(),
    }
}

/// Every cell's verdicts.
pub fn verdicts(cfg: &GameConfig, res: &GameResults) -> Vec<Verdict> {
    cfg.cells()
        .iter()
        .flat_map(|c| {
            let m = |p| medians(res, c, p);
            cell_verdicts(
                &c.label(),
                m(Proto::Ghost).as_ref(),
                m(Proto::Redis).as_ref(),
                m(Proto::Nats).as_ref(),
            )
        })
        .collect()
}

/// Nothing lost, reordered or failed in any run.
pub fn clean(res: &GameResults) -> bool {
    res.runs.iter().all(|r| r.checks.clean())
}

fn opt(v: Option<f64>, d: i32) -> Value {
    v.map_or(Value::Null, |x| json!(round(x, d)))
}

fn run_json(r: &GameRun) -> Value {
    let k = r.keep_up();
    let secs = r.figures.as_ref().map(|f| f.secs);
    let dps = r.figures.as_ref().map(|f| f.deliveries_per_s);
    json!({
        "cell": r.cell.key(),
        "rooms": r.cell.shape.rooms,
        "room_size": r.cell.shape.room_size,
        "hz": r.cell.hz,
        "server": r.server.name(),
        "round": r.round,
        "window": r.cell.window(),
        "receivers_per_message": super::receivers_per_message(r.server, r.cell.shape.room_size),
        "offered_msgs_per_s": r.cell.msgs_per_s(),
        "offered_deliveries_per_s": r.cell.deliveries_per_s(r.server),
        "offered_deliveries": secs.map(|s| (r.cell.deliveries_per_s(r.server) * s).round()),
        "deliveries": r.figures.as_ref().map(|_| r.deliveries),
        "published": r.figures.as_ref().map(|_| r.published),
        "fixed_rate": r.figures.as_ref().map(crate::scenarios::Figures::json),
        "server_cpu_s_per_m_deliveries": opt(r.cpu_per_m(), 3),
        "delivered_share": opt(k.as_ref().map(|k| k.delivered_share), 4),
        "published_share": opt(k.as_ref().map(|k| k.published_share), 4),
        "kept_up": k.as_ref().map(super::KeepUp::ok),
        "shortfalls": k.map(|k| k.shortfalls).unwrap_or_default(),
        "syscalls": r.syscalls.json(dps),
        "machine_cpu_s": r.machine_cpu.map(|(busy, steal)| json!({"busy": round(busy, 3), "steal": round(steal, 3)})),
        "load_before": r.load.0,
        "load_after": r.load.1,
        "presence_ms": opt(r.presence_ms, 1),
        "checks": r.checks.json(),
    })
}

fn med_json(cell: &Cell, server: Proto, m: &Med) -> Value {
    json!({
        "cell": cell.key(),
        "server": server.name(),
        "runs": m.runs,
        "measured": m.measured,
        "not_kept_up": m.not_kept_up,
        "shortfalls": m.shortfalls,
        "offered_msgs_per_s": cell.msgs_per_s(),
        "msgs_per_s": opt(m.msgs_per_s, 1),
        "deliveries_per_s": opt(m.deliveries_per_s, 0),
        "delivered_share": opt(m.delivered_share, 4),
        "server_cpu_pct": opt(m.cpu_pct, 1),
        "machine_cpu_pct": opt(m.machine_pct, 1),
        "server_cpu_s_per_m_deliveries": opt(m.cpu_per_m, 3),
        "syscalls_per_delivery": opt(m.syscalls_per_delivery, 4),
        "syscalls_source": m.syscalls_source.map(Source::key),
        "latency_us": {
            "p50": opt(m.p50_us, 1), "p99": opt(m.p99_us, 1),
            "p999": opt(m.p999_us, 1), "max": opt(m.max_us, 1),
        },
        "pub_lag_max_ms": opt(m.lag_ms, 3),
        "window_stalls": opt(m.stalls, 1),
        "lost": m.lost, "stale": m.stale, "disconnects": m.disconnects, "errors": m.errors,
    })
}

/// The JSON document: every run, the medians, the verdicts.
pub fn to_json(cfg: &GameConfig, res: &GameResults, meta: Value, verdicts: &[Verdict]) -> Value {
    let medians_json: Vec<Value> = cfg
        .cells()
        .iter()
        .flat_map(|c| {
            cfg.servers
                .iter()
                .filter_map(|&p| medians(res, c, p).map(|m| med_json(c, p, &m)))
                .collect::<Vec<_>>()
        })
        .collect();
    json!({
        "meta": meta,
        "config": {
            "quick": cfg.quick,
            "servers": cfg.servers.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "shapes": cfg.shapes.iter().map(|s| json!({"rooms": s.rooms, "room_size": s.room_size})).collect::<Vec<_>>(),
            "rates_hz": cfg.rates,
            "payload": cfg.payload,
            "publishers": "all",
            "warmup_s": cfg.warmup.as_secs_f64(),
            "measure_s": cfg.measure.as_secs_f64(),
            "rounds": cfg.rounds,
            "keep_up_shortfall": super::SHORTFALL,
            "targets": {
                "cpu_per_delivery_vs_redis": CPU_VS_REDIS,
                "cpu_per_delivery_vs_nats": CPU_VS_NATS,
                "p99_vs_better_peer": 1.0,
            },
        },
        "runs": res.runs.iter().map(run_json).collect::<Vec<_>>(),
        "medians": medians_json,
        "verdicts": verdicts.iter().map(|v| json!({
            "cell": v.cell, "target": v.target, "measured": v.measured,
            "verdict": v.verdict(), "note": v.note,
        })).collect::<Vec<_>>(),
        "clean": clean(res),
    })
}

/// The generated section: when and where, the verdicts, the median table.
pub fn markdown(meta: &Value, table: &str, verdicts: &[Verdict], command: &str) -> String {
    let mut s = String::new();
    let load = |k: &str| crate::report::load_text(meta, k);
    let _ = writeln!(s, "{}  ", crate::report::run_line(meta, command));
    let _ = writeln!(s, "{}  ", crate::report::machine_line(meta));
    let versions = meta["versions"].as_object();
    let servers: Vec<String> = ["ghost-sync", "redis", "nats"]
        .iter()
        .filter_map(|&k| {
            let v = versions?.get(k)?.as_str()?;
            Some(if k == "ghost-sync" {
                format!("{v} (`examples/relay.rs`)")
            } else {
                v.to_owned()
            })
        })
        .collect();
    let _ = writeln!(
        s,
        "Servers: {}; built with {}.\n",
        servers.join("; "),
        meta["versions"]["rustc"].as_str().unwrap_or("?")
    );
    if meta["load_before"][0].as_f64().unwrap_or(0.0) > QUIET_LOAD {
        let _ = writeln!(
            s,
            "**Preliminary: machine not quiet** (load average {} at the start, above {QUIET_LOAD:.1}); \
             re-run on a quiet machine for final figures.\n",
            load("load_before")
        );
    }
    s.push_str("| cell | verdict | target | measured | note |\n|---|---|---|---|---|\n");
    for v in verdicts {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            v.cell,
            v.verdict(),
            v.target,
            v.measured,
            v.note.as_deref().unwrap_or("")
        );
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
    use super::super::table;
    use super::*;

    fn med(cpu_per_m: f64, p99_us: f64) -> Med {
        Med {
            runs: 3,
            measured: 3,
            cpu_per_m: Some(cpu_per_m),
            p99_us: Some(p99_us),
            ..Med::default()
        }
    }

    fn run(cell: Cell, server: Proto, round: usize, cpu_s: f64, p99_us: f64) -> GameRun {
        let secs = 10.0;
        let deliveries = (cell.deliveries_per_s(server) * secs) as u64;
        GameRun {
            cell,
            server,
            round,
            figures: Some(crate::scenarios::Figures {
                secs,
                deliveries_per_s: deliveries as f64 / secs,
                msgs_per_s: cell.msgs_per_s(),
                server_cpu_s: Some(cpu_s),
                harness_cpu_s: 1.0,
                per_cpu_s: Some(deliveries as f64 / cpu_s),
                latency: Some(crate::scenarios::Latency {
                    samples: deliveries,
                    p50_us: p99_us / 4.0,
                    p99_us,
                    p999_us: p99_us * 2.0,
                    max_us: p99_us * 3.0,
                }),
                pub_lag_max_ms: 1.0,
                window_stalls: 0,
            }),
            deliveries,
            published: (cell.msgs_per_s() * secs) as u64,
            syscalls: super::super::syscalls::SyscallCount {
                source: Some(Source::Perf),
                count: Some(deliveries * 2),
                window_s: secs,
                ..Default::default()
            },
            machine_cpu: Some((12.0, 0.0)),
            load: ([0.1; 3], [0.2; 3]),
            presence_ms: None,
            checks: crate::scenarios::Checks::default(),
        }
    }

    #[test]
    fn medians_over_rounds() {
        let cfg = GameConfig::new(false, Default::default(), Default::default());
        let c = cfg.cells()[0];
        let mut res = GameResults::default();
        for (round, cpu, p99) in [(1, 3.0, 900.0), (2, 1.0, 2000.0), (3, 2.0, 1000.0)] {
            res.runs.push(run(c, Proto::Ghost, round, cpu, p99));
            res.runs.push(run(c, Proto::Redis, round, 3.0 * cpu, 800.0));
        }
        // One round of redis behind: a third of its messages.
        let last = res.runs.last_mut().unwrap();
        last.deliveries /= 3;
        let g = medians(&res, &c, Proto::Ghost).unwrap();
        assert_eq!((g.runs, g.measured, g.not_kept_up), (3, 3, 0));
        // 2 CPU-s over 10 s of 16×8×30×7 deliveries a second.
        let want = 2.0 / (3840.0 * 7.0 * 10.0) * 1e6;
        assert!((g.cpu_per_m.unwrap() - want).abs() < 1e-9);
        assert_eq!(g.p99_us, Some(1000.0));
        assert_eq!(g.syscalls_per_delivery, Some(2.0));
        assert_eq!(g.syscalls_source, Some(Source::Perf));
        assert_eq!(g.machine_pct, Some(120.0));
        let r = medians(&res, &c, Proto::Redis).unwrap();
        assert_eq!(r.not_kept_up, 1);
        assert!(
            r.shortfalls[0].starts_with("#3: delivered 33.3 %"),
            "{:?}",
            r.shortfalls
        );
        assert!(medians(&res, &c, Proto::Nats).is_none());
        let v = verdicts(&cfg, &res);
        assert_eq!(v[0].cell, c.label());
        assert!(v[0]
            .note
            .as_deref()
            .unwrap()
            .contains("redis did not keep up in 1 of 3"));
        assert!(table::medians_table(&cfg, &res).contains("did not keep up"));
        assert!(table::runs(&cfg, &res).contains(" NO "));
        let doc = to_json(&cfg, &res, json!({}), &v);
        assert_eq!(doc["runs"].as_array().unwrap().len(), 6);
        assert_eq!(doc["runs"][5]["kept_up"], json!(false));
        assert_eq!(doc["medians"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn verdicts_from_medians() {
        let g = med(10.0, 900.0);
        let v = cell_verdicts(
            "c",
            Some(&g),
            Some(&med(20.0, 1000.0)),
            Some(&med(40.0, 800.0)),
        );
        assert_eq!(v.len(), 3);
        // 10 ≤ 0.5 × 20: PASS; 10 ≤ 0.35 × 40 = 14: PASS; 900 µs against nats's 800: MISS.
        assert_eq!(v[0].pass, Some(true));
        assert_eq!(v[1].pass, Some(true));
        assert_eq!(v[2].pass, Some(false));
        assert!(v[2].measured.contains("nats"), "{}", v[2].measured);
        assert!(v.iter().all(|v| v.note.is_none()));
        let v = cell_verdicts(
            "c",
            Some(&g),
            Some(&med(19.0, 1000.0)),
            Some(&med(28.0, 950.0)),
        );
        assert_eq!(v[0].pass, Some(false));
        assert_eq!(v[1].pass, Some(false));
        assert_eq!(v[2].pass, Some(true));
        assert!(v[0].measured.starts_with("0.53×"), "{}", v[0].measured);
    }

    #[test]
    fn a_server_not_run_or_not_keeping_up() {
        let g = med(10.0, 900.0);
        let v = cell_verdicts("c", Some(&g), None, None);
        assert!(v.iter().all(|v| v.pass.is_none()));
        assert!(v[0].measured.contains("redis not run"));
        let v = cell_verdicts("c", None, None, None);
        assert!(v[1].measured.contains("ghost-sync not run"));
        let mut slow = med(30.0, 5000.0);
        slow.not_kept_up = 2;
        slow.shortfalls = vec!["#1: delivered 90.0 %".into(), "#3: x".into()];
        let v = cell_verdicts("c", Some(&g), Some(&slow), Some(&med(40.0, 800.0)));
        let note = v[0].note.as_deref().unwrap();
        assert!(
            note.contains("redis did not keep up in 2 of 3 runs"),
            "{note}"
        );
        assert!(note.contains("backlog"), "{note}");
        assert!(v[1].note.is_none());
        // Still computed from the medians.
        assert_eq!(v[0].pass, Some(true));
    }

    #[test]
    fn empty_results() {
        let res = GameResults::default();
        let cfg = GameConfig::new(true, Default::default(), Default::default());
        assert!(clean(&res));
        assert!(medians(&res, &cfg.cells()[0], Proto::Ghost).is_none());
        let v = verdicts(&cfg, &res);
        assert_eq!(v.len(), 12);
        assert!(v.iter().all(|v| v.pass.is_none()));
        let doc = to_json(&cfg, &res, json!({}), &v);
        assert_eq!(doc["runs"].as_array().unwrap().len(), 0);
        let md = markdown(&json!({"load_before": [1.5, 1.0, 1.0]}), "t\n", &v, "cmd");
        assert!(md.contains("Preliminary: machine not quiet"));
        assert!(!markdown(&json!({"load_before": [0.5]}), "", &v, "cmd").contains("Preliminary"));
    }

    #[test]
    fn splices_between_markers() {
        let doc = format!("a\n{MD_START}\nold\n{MD_END}\nb\n");
        assert_eq!(
            splice(&doc, "new\n").unwrap(),
            format!("a\n{MD_START}\nnew\n{MD_END}\nb\n")
        );
        assert!(splice("no markers", "x").is_none());
    }
}
