//! The game-load scenario's text tables: one row per run, one row per (cell, server) with
//! the medians over the rounds, what each column counts, and the runs that did not keep up.

use super::report::{cpu_pct, machine_pct, medians, Med};
use super::syscalls::Source;
use super::{GameConfig, GameResults, GameRun};
use std::fmt::Write as _;

/// Column widths; a `|` goes before the columns listed in `BARS`; the first two are left
/// aligned.
const WIDTHS: [usize; 20] = [14, 10, 7, 7, 8, 5, 4, 5, 6, 7, 6, 6, 6, 6, 6, 5, 4, 4, 5, 4];
const BARS: [usize; 5] = [2, 6, 10, 14, 17];

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

fn si(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

/// Milliseconds from microseconds, with fewer decimals as they grow.
fn ms(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(u) if u >= 100_000.0 => format!("{:.0}", u / 1e3),
        Some(u) if u >= 10_000.0 => format!("{:.1}", u / 1e3),
        Some(u) => format!("{:.2}", u / 1e3),
    }
}

fn num(x: Option<f64>, d: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.d$}"))
}

/// System calls per delivery; `r` marks a file read/write-only count, `n/a` a run that could
/// not count (`measured`), `-` one that measured nothing.
fn sys(v: Option<f64>, source: Option<Source>, measured: bool) -> String {
    match (v, source) {
        (Some(v), Some(Source::ProcIo)) => format!("{v:.2}r"),
        (Some(v), _) => format!("{v:.2}"),
        (None, _) if measured => "n/a".into(),
        (None, _) => "-".into(),
    }
}

fn header(s: &mut String) {
    let words = |w: &[&str]| w.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    line(
        s,
        &words(&[
            "cell", "server", "offered", "msg/s", "deliv/s", "del%", "CPU%", "mach%", "CPUs/M",
            "sys/del", "p50", "p99", "p99.9", "max", "lag", "stall", "kept", "lost", "stale",
            "disc",
        ]),
    );
    line(
        s,
        &words(&[
            "", "", "msg/s", "", "", "", "", "", "deliv", "", "ms", "ms", "ms", "ms", "ms", "", "",
            "", "", "",
        ]),
    );
}

fn run_row(s: &mut String, r: &GameRun) {
    let f = r.figures.as_ref();
    let l = f.and_then(|f| f.latency.as_ref());
    let k = r.keep_up();
    let counted = |n: u64| f.map_or("-".into(), |_| n.to_string());
    line(
        s,
        &[
            format!("{} #{}", r.cell.label(), r.round),
            r.server.name().to_owned(),
            si(Some(r.cell.msgs_per_s())),
            si(f.map(|f| f.msgs_per_s)),
            si(f.map(|f| f.deliveries_per_s)),
            num(k.as_ref().map(|k| 100.0 * k.delivered_share), 1),
            num(cpu_pct(r), 0),
            num(machine_pct(r), 0),
            num(r.cpu_per_m(), 2),
            sys(r.syscalls_per_delivery(), r.syscalls.source, f.is_some()),
            ms(l.map(|l| l.p50_us)),
            ms(l.map(|l| l.p99_us)),
            ms(l.map(|l| l.p999_us)),
            ms(l.map(|l| l.max_us)),
            num(f.map(|f| f.pub_lag_max_ms), 1),
            counted(f.map_or(0, |f| f.window_stalls)),
            k.map_or("-".into(), |k| if k.ok() { "yes" } else { "NO" }.into()),
            counted(r.checks.lost),
            counted(r.checks.stale),
            counted(r.checks.disconnects),
        ],
    );
}

fn med_row(s: &mut String, label: &str, server: &str, offered: f64, m: &Med) {
    line(
        s,
        &[
            label.to_owned(),
            server.to_owned(),
            si(Some(offered)),
            si(m.msgs_per_s),
            si(m.deliveries_per_s),
            num(m.delivered_share.map(|x| 100.0 * x), 1),
            num(m.cpu_pct, 0),
            num(m.machine_pct, 0),
            num(m.cpu_per_m, 2),
            sys(m.syscalls_per_delivery, m.syscalls_source, m.measured > 0),
            ms(m.p50_us),
            ms(m.p99_us),
            ms(m.p999_us),
            ms(m.max_us),
            num(m.lag_ms, 1),
            num(m.stalls, 0),
            format!("{}/{}", m.measured - m.not_kept_up, m.measured),
            m.lost.to_string(),
            m.stale.to_string(),
            m.disconnects.to_string(),
        ],
    );
}

fn title(cfg: &GameConfig) -> String {
    format!(
        "game load: every member publishing {} B at {} Hz; {}; {} s measured per run after {} s \
         of warm-up, {} round{}",
        cfg.payload,
        cfg.rates
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        cfg.shapes
            .iter()
            .map(|s| format!(
                "{} room{} of {}",
                s.rooms,
                if s.rooms == 1 { "" } else { "s" },
                s.room_size
            ))
            .collect::<Vec<_>>()
            .join(", "),
        cfg.measure.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" }
    )
}

/// One row per run, in the order they ran.
pub fn runs(cfg: &GameConfig, res: &GameResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} (every run)", title(cfg));
    header(&mut s);
    for r in &res.runs {
        run_row(&mut s, r);
    }
    s
}

/// One row per cell and server: the medians over the rounds (checks summed), then what
/// each column counts and the runs that did not keep up.
pub fn medians_table(cfg: &GameConfig, res: &GameResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (median of the rounds, each figure its own median)",
        title(cfg)
    );
    header(&mut s);
    let mut short = Vec::new();
    for c in cfg.cells() {
        for &p in &cfg.servers {
            if let Some(m) = medians(res, &c, p) {
                med_row(&mut s, &c.label(), p.name(), c.msgs_per_s(), &m);
                for why in &m.shortfalls {
                    short.push(format!("{} {p} {why}", c.label()));
                }
            }
        }
    }
    let _ = write!(s, "{}", legend());
    if !short.is_empty() {
        let _ = writeln!(
            s,
            "did not keep up (measuring a backlog, not the tick load):"
        );
        for w in short {
            let _ = writeln!(s, "  {w}");
        }
    }
    s
}

fn legend() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "offered: members × Hz; msg/s, deliv/s: achieved; del%: deliveries of the offered ones \
         (members × Hz × receivers × s;\n  receivers: N−1, redis N with its echo, counted as \
         deliveries)\n\
         CPU%: the server process, of one core; mach%: the whole machine's busy time (of \
         {} %); CPUs/M: server CPU-s per million deliveries\n\
         sys/del: the server's system calls per delivery (perf stat -e raw_syscalls:sys_enter \
         -p PID); r: perf unavailable, file read/write calls only\n  (/proc/PID/io \
         syscr+syscw: read, write, readv, writev; not recv or send, which the relay uses: not \
         comparable between servers); n/a: neither could count\n\
         p50-max: latency from each message's scheduled send time; lag: the paced publisher's \
         largest delay behind schedule; stall: times it found a window full\n\
         kept: delivered ≥ {:.0} % of the offered deliveries, published ≥ {:.0} % of the \
         offered messages, no window full, nothing sent over {} ticks late\n  (medians: runs \
         that kept up of those measured); lost, stale, disc: summed over the rounds\n",
        cores * 100,
        100.0 * (1.0 - super::SHORTFALL),
        100.0 * (1.0 - super::SHORTFALL),
        super::LAG_TICKS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ms(Some(1234.0)), "1.23");
        assert_eq!(ms(Some(12_345.0)), "12.3");
        assert_eq!(ms(Some(123_456.0)), "123");
        assert_eq!(ms(None), "-");
        assert_eq!(sys(Some(1.234), Some(Source::Perf), true), "1.23");
        assert_eq!(sys(Some(1.234), Some(Source::ProcIo), true), "1.23r");
        assert_eq!(sys(None, None, true), "n/a");
        assert_eq!(sys(None, None, false), "-");
        assert_eq!(si(Some(26_880.0)), "26.9k");
    }

    #[test]
    fn empty_tables_render() {
        let cfg = GameConfig::new(true, Default::default(), Default::default());
        let res = GameResults::default();
        assert!(runs(&cfg, &res).contains("sys/del"));
        let m = medians_table(&cfg, &res);
        assert!(m.contains("16 rooms of 8, 1 room of 64"), "{m}");
        assert!(!m.contains("did not keep up"));
    }
}
