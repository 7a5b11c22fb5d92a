//! The cluster scenario's text table: one row per run, the medians over the rounds, the
//! cluster's CPU split per process, and what each column counts.

use super::report::{median, per_cpu};
use super::{ClusterConfig, ClusterResults, Setup, SetupRun};
use std::fmt::Write as _;

fn servers_of(cfg: &ClusterConfig, s: Setup) -> String {
    match s {
        Setup::Single => "1 relay".into(),
        Setup::Redis => "redis-server".into(),
        Setup::Cluster => format!("{} relays + redis", cfg.relays),
    }
}

fn ms(us: Option<f64>) -> String {
    us.map_or("-".into(), |u| format!("{:.2}", u / 1e3))
}

fn si(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

/// Column widths of the table; a `|` goes before the columns listed in `BARS`.
const WIDTHS: [usize; 17] = [17, 16, 8, 10, 4, 4, 5, 4, 6, 6, 6, 6, 6, 6, 8, 4, 5];
const BARS: [usize; 5] = [2, 8, 12, 14, 15];

fn line(s: &mut String, cells: &[String]) {
    for (i, (c, w)) in cells.iter().zip(WIDTHS).enumerate() {
        if BARS.contains(&i) {
            s.push_str("| ");
        }
        if i < 2 {
            let _ = write!(s, "{c:<w$} ");
        } else {
            let _ = write!(s, "{c:>w$} ");
        }
    }
    let trimmed = s.trim_end().len();
    s.truncate(trimmed);
    s.push('\n');
}

fn row(s: &mut String, cfg: &ClusterConfig, label: &str, setup: Setup, r: RowFigures) {
    let pct = |x: Option<f64>| x.map_or("-".into(), |c| format!("{c:.0}"));
    line(
        s,
        &[
            label.to_owned(),
            servers_of(cfg, setup),
            si(r.rate),
            si(r.per_cpu),
            pct(r.cpu_pct),
            pct(r.gen_pct),
            pct(r.machine_pct),
            pct(r.steal_pct),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.lag),
            ms(r.cross_p99),
            ms(r.cross_max),
            pct(r.presence_ms),
            r.lost.map_or("-".into(), |l| l.to_string()),
            r.stale.map_or("-".into(), |l| l.to_string()),
        ],
    );
}

#[derive(Default)]
struct RowFigures {
    rate: Option<f64>,
    per_cpu: Option<f64>,
    cpu_pct: Option<f64>,
    gen_pct: Option<f64>,
    machine_pct: Option<f64>,
    steal_pct: Option<f64>,
    lag: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
    cross_p99: Option<f64>,
    cross_max: Option<f64>,
    presence_ms: Option<f64>,
    lost: Option<u64>,
    stale: Option<u64>,
}

fn figures_of(r: &SetupRun) -> RowFigures {
    let f = r.figures.as_ref();
    let l = f.and_then(|f| f.latency.as_ref());
    RowFigures {
        rate: f.map(|f| f.deliveries_per_s),
        per_cpu: per_cpu(r),
        cpu_pct: f.and_then(|f| f.server_cpu_s.map(|c| 100.0 * c / f.secs.max(1e-9))),
        gen_pct: f.map(|f| 100.0 * f.harness_cpu_s / f.secs.max(1e-9)),
        machine_pct: f
            .zip(r.machine_cpu)
            .map(|(f, (busy, _))| 100.0 * busy / f.secs.max(1e-9)),
        steal_pct: f
            .zip(r.machine_cpu)
            .map(|(f, (_, steal))| 100.0 * steal / f.secs.max(1e-9)),
        lag: f.map(|f| f.pub_lag_max_ms * 1e3),
        p50: l.map(|l| l.p50_us),
        p99: l.map(|l| l.p99_us),
        max: l.map(|l| l.max_us),
        cross_p99: r.cross.as_ref().map(|l| l.p99_us),
        cross_max: r.cross.as_ref().map(|l| l.max_us),
        presence_ms: r.presence_ms,
        // A run that failed before its measurement has nothing to show as zero.
        lost: f.map(|_| r.checks.lost),
        stale: f.map(|_| r.checks.stale),
    }
}

/// The text table: one row per run, then the medians (with several rounds) and the
/// cluster's CPU split per process.
pub fn table(cfg: &ClusterConfig, res: &ClusterResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "cluster: {} rooms of {}, every member publishing {} B at {} msg/s ({:.0} msg/s in all), \
         {} s measured per run, {} round{}",
        cfg.rooms,
        cfg.room_size,
        cfg.payload,
        cfg.rate_per_member,
        cfg.total_rate(),
        cfg.measure.as_secs(),
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" }
    );
    let words = |w: &[&str]| w.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    line(
        &mut s,
        &words(&[
            "setup",
            "servers",
            "deliv/s",
            "deliv/CPUs",
            "CPU%",
            "gen%",
            "mach%",
            "stl%",
            "p50",
            "p99",
            "max",
            "lag",
            "x p99",
            "x max",
            "presence",
            "lost",
            "stale",
        ]),
    );
    line(
        &mut s,
        &words(&[
            "",
            "",
            "",
            "(all srv)",
            "",
            "",
            "",
            "",
            "ms",
            "ms",
            "ms",
            "ms",
            "ms",
            "ms",
            "ms",
            "",
            "",
        ]),
    );
    for r in &res.runs {
        let label = format!("{} #{}", r.setup.label(), r.round);
        row(&mut s, cfg, &label, r.setup, figures_of(r));
    }
    if cfg.rounds > 1 {
        for setup in Setup::ALL {
            let m = |f: fn(&RowFigures) -> Option<f64>| {
                median(
                    res.runs
                        .iter()
                        .filter(|r| r.setup == setup)
                        .filter_map(|r| f(&figures_of(r)))
                        .collect(),
                )
            };
            let fig = RowFigures {
                rate: m(|f| f.rate),
                per_cpu: m(|f| f.per_cpu),
                cpu_pct: m(|f| f.cpu_pct),
                gen_pct: m(|f| f.gen_pct),
                machine_pct: m(|f| f.machine_pct),
                steal_pct: m(|f| f.steal_pct),
                lag: m(|f| f.lag),
                p50: m(|f| f.p50),
                p99: m(|f| f.p99),
                max: m(|f| f.max),
                cross_p99: m(|f| f.cross_p99),
                cross_max: m(|f| f.cross_max),
                presence_ms: m(|f| f.presence_ms),
                ..RowFigures::default()
            };
            row(&mut s, cfg, &format!("{} med", setup.label()), setup, fig);
        }
    }
    for r in res
        .runs
        .iter()
        .filter(|r| r.setup == Setup::Cluster && !r.cpu_each.is_empty())
    {
        let secs = r.figures.as_ref().map_or(1.0, |f| f.secs.max(1e-9));
        let parts: Vec<String> = r
            .cpu_each
            .iter()
            .map(|(n, c)| format!("{n} {:.0}%", 100.0 * c / secs))
            .collect();
        let same = r.same.as_ref().map_or(String::new(), |l| {
            format!(
                "; same-relay p99 {:.2} ms, max {:.2} ms",
                l.p99_us / 1e3,
                l.max_us / 1e3
            )
        });
        let _ = writeln!(
            s,
            "cluster #{} CPU per process: {}{same}",
            r.round,
            parts.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "CPU%: every server process of the setup together; gen%: the load generator\n\
         mach%: the whole machine's busy time (of 200 % on 2 cores; above CPU% + gen%: other \
         work); stl%: time the hypervisor gave the machine's cores to others\n\
         lag: the paced publisher's largest delay behind its schedule (the load generator's own \
         stall, which is in the latency too)\n\
         x p99, x max: deliveries between members on different relays\n\
         presence: from the last join confirmed to every member knowing its room's {} others\n\
         redis: each member also gets its own messages back (no echo suppression), counted as \
         deliveries",
        cfg.room_size - 1
    );
    for (setup, why) in &res.skipped {
        let _ = writeln!(s, "{} not run: {why}", setup.label());
    }
    s
}
