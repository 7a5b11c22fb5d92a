//! Turning [`Results`] into the outputs: the text table, the targets (PASS/MISS), the JSON
//! document (printed as one line and written to a file), the SVG chart and the Markdown
//! section of `BENCHMARKS.md`.

use crate::load::PubMode;
use crate::proto::Proto;
use crate::scenarios::{round, Cell, Config, Fairness, Figures, Results};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One target of the issue, evaluated.
#[derive(Clone, Debug)]
pub struct Target {
    /// What is required.
    pub name: String,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` PASS, `Some(false)` MISS, `None` not measured.
    pub pass: Option<bool>,
}

impl Target {
    /// `PASS`, `MISS` or `n/a`.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

fn cell(res: &Results, room: usize, payload: usize, mode: PubMode) -> Option<&Cell> {
    res.cells
        .iter()
        .find(|c| c.room_size == room && c.payload == payload && c.mode == mode)
}

fn fig(
    c: &Cell,
    p: Proto,
    pick: fn(&crate::scenarios::ServerCell) -> &Option<Figures>,
) -> Option<&Figures> {
    c.server(p).and_then(|s| pick(s).as_ref())
}

/// Evaluates the issue's targets.
pub fn targets(cfg: &Config, res: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    for room in [8, 64] {
        let c = cell(res, room, 256, PubMode::One);
        let per = |p| {
            c.and_then(|c| fig(c, p, |s| &s.sat))
                .and_then(|f| f.per_cpu_s)
        };
        let g = per(Proto::Ghost);
        for (peer, factor) in [(Proto::Nats, 2.0), (Proto::Redis, 2.0)] {
            let v = g.zip(per(peer));
            out.push(Target {
                name: format!(
                    "deliveries/CPU-s, rooms of {room}, 256 B, one publisher: ≥{factor}× {peer}"
                ),
                measured: v.map_or("not measured".into(), |(g, p)| {
                    format!("{:.2}× ({:.0} vs {:.0})", g / p, g, p)
                }),
                pass: v.map(|(g, p)| g >= factor * p),
            });
        }
    }
    for room in [8, 64] {
        // CPU per delivery at the fixed rate: the inverse of deliveries per CPU-second.
        let c = cell(res, room, 256, PubMode::One);
        let per = |p| {
            c.and_then(|c| fig(c, p, |s| &s.lat))
                .and_then(|f| f.per_cpu_s)
        };
        let v = per(Proto::Ghost).zip(per(Proto::Redis));
        out.push(Target {
            name: format!(
                "CPU per delivery at the fixed rate, rooms of {room}, 256 B, one publisher: ≤0.6× redis"
            ),
            measured: v.map_or("not measured".into(), |(g, r)| {
                format!("{:.2}× ({:.2} vs {:.2} µs)", r / g, 1e6 / g, 1e6 / r)
            }),
            pass: v.map(|(g, r)| r / g <= 0.6),
        });
    }
    for room in [8, 64] {
        let c = cell(res, room, 256, PubMode::One);
        let lat = |p| {
            c.and_then(|c| fig(c, p, |s| &s.lat))
                .and_then(|f| f.latency.clone())
        };
        let g = lat(Proto::Ghost);
        let best = |f: fn(&crate::scenarios::Latency) -> f64| {
            [Proto::Redis, Proto::Nats]
                .into_iter()
                .filter_map(|p| lat(p).map(|l| (f(&l), p)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let v = g.as_ref().map(|l| l.p99_us).zip(best(|l| l.p99_us));
        out.push(Target {
            name: format!("p99 at the fixed rate, rooms of {room}: ≤0.7× the better peer's"),
            measured: v.map_or("not measured".into(), |(g, (b, p))| {
                format!("{:.2}× ({:.0} µs vs {p} {:.0} µs)", g / b, g, b)
            }),
            pass: v.map(|(g, (b, _))| g <= 0.7 * b),
        });
        let v = g.as_ref().map(|l| l.p999_us).zip(best(|l| l.p999_us));
        out.push(Target {
            name: format!("p99.9 at the fixed rate, rooms of {room}: ≤ the better peer's"),
            measured: v.map_or("not measured".into(), |(g, (b, p))| {
                format!("{:.2}× ({:.0} µs vs {p} {:.0} µs)", g / b, g, b)
            }),
            pass: v.map(|(g, (b, _))| g <= b),
        });
    }
    let m = res.memory.iter().find(|m| m.proto == Proto::Ghost);
    out.push(Target {
        name: format!(
            "server user-space memory per idle joined connection at {}: ≤2 KiB",
            cfg.mem_connections
        ),
        measured: m.map_or("not measured".into(), |m| {
            format!(
                "{:.0} B at {} connections{}",
                m.per_conn,
                m.connections,
                if m.connections < 10_000 {
                    " (fewer than the target's 10,000)"
                } else {
                    ""
                }
            )
        }),
        pass: m.map(|m| m.per_conn <= 2048.0 && m.checks.clean()),
    });
    let s = res.scale.as_ref();
    let want = cfg.scale_clients / cfg.scale_room_size.max(1) * cfg.scale_room_size.max(1);
    let hold = cfg.scale_hold.as_secs_f64();
    out.push(Target {
        name: format!(
            "{want} joined clients held {hold:.0} s, light traffic, no disconnect, no loss"
        ),
        measured: s.map_or("not measured".into(), |s| {
            format!(
                "{} joined, held {:.0} s, min relay fds {}, lost {}, disconnects {}, errors {}",
                s.joined,
                s.held_s,
                s.min_server_fds,
                s.checks.lost,
                s.checks.disconnects,
                s.checks.errors
            )
        }),
        pass: s.map(|s| {
            s.joined >= want && s.held_s >= hold && s.min_server_fds >= want && s.checks.clean()
        }),
    });
    let sl = res.slow.iter().find(|s| s.proto == Proto::Ghost);
    let p99 = |f: &Figures| f.latency.as_ref().map(|l| l.p99_us);
    let v = sl.and_then(|s| p99(&s.before).zip(p99(&s.after)));
    out.push(Target {
        name: "slow consumer in a room of 64: the others' p99 rises ≤10%".into(),
        measured: v.map_or("not measured".into(), |(a, b)| {
            format!("{:+.1}% ({a:.0} → {b:.0} µs)", (b / a - 1.0) * 100.0)
        }),
        pass: v.map(|(a, b)| b <= 1.10 * a),
    });
    out.push(Target {
        name: "slow consumer: the publisher never stalls".into(),
        measured: sl.map_or("not measured".into(), |s| {
            format!(
                "publish lag max {:.2} → {:.2} ms, window stalls {}, others lost {}",
                s.before.pub_lag_max_ms,
                s.after.pub_lag_max_ms,
                s.after.window_stalls,
                s.checks.lost
            )
        }),
        pass: sl.map(|s| {
            s.after.pub_lag_max_ms <= (2.0 * s.before.pub_lag_max_ms).max(10.0)
                && s.after.window_stalls == 0
                && s.checks.clean()
        }),
    });
    if cfg.quick {
        for t in &mut out {
            t.name.push_str(" [quick run]");
        }
    }
    out
}

fn opt(v: Option<f64>, d: i32) -> Value {
    v.map_or(Value::Null, |x| json!(round(x, d)))
}

/// The JSON document with every figure.
pub fn to_json(cfg: &Config, res: &Results, meta: Value, targets: &[Target]) -> Value {
    let cells: Vec<Value> = res
        .cells
        .iter()
        .map(|c| {
            json!({
                "room_size": c.room_size, "payload": c.payload, "publishers": c.mode.name(),
                "rooms": c.rooms, "connections": c.rooms * c.room_size,
                "latency_rate_msgs_per_s": opt(c.lat_rate, 1),
                "servers": c.servers.iter().map(|s| json!({
                    "server": s.proto.name(),
                    "saturation_window": s.sat.as_ref().map(Figures::json),
                    "saturation_window_1": s.sat1.as_ref().map(Figures::json),
                    "fixed_rate": s.lat.as_ref().map(Figures::json),
                    "checks": s.checks.json(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let memory: Vec<Value> = res
        .memory
        .iter()
        .map(|m| {
            json!({
                "server": m.proto.name(), "connections": m.connections,
                "rss_before": m.rss_before, "rss_after": m.rss_after,
                "user_bytes_per_conn": m.per_conn.round(),
                "kernel_bytes_per_conn_both_ends": m.kernel_per_conn.map(f64::round),
                "tcp_buffer_bytes_per_conn": m.sock_buf_per_conn.round(),
                "checks": m.checks.json(),
            })
        })
        .collect();
    let scale = res.scale.as_ref().map(|s| {
        json!({
            "clients": s.clients, "joined": s.joined, "workers": s.workers,
            "held_s": round(s.held_s, 1), "min_server_fds": s.min_server_fds,
            "server_rss": s.server_rss, "server_cpu_s": round(s.server_cpu_s, 2),
            "workers_cpu_s": round(s.workers_cpu_s, 2),
            "deliveries": s.deliveries, "p99_us": round(s.p99_us, 1), "max_us": round(s.max_us, 1),
            "checks": s.checks.json(),
        })
    });
    let slow: Vec<Value> = res
        .slow
        .iter()
        .map(|s| {
            json!({
                "server": s.proto.name(), "rate_msgs_per_s": round(s.rate, 1),
                "before": s.before.json(), "after": s.after.json(),
                "slow_member_lost": s.slow_member_lost,
                "slow_member_disconnected": s.slow_member_disconnected,
                "checks": s.checks.json(),
            })
        })
        .collect();
    json!({
        "harness": "ghost-sync-bench",
        "mode": if cfg.quick { "quick" } else { "full" },
        "meta": meta,
        "settings": {
            "connections_per_cell": cfg.connections,
            "saturation_window": cfg.sat_window,
            "latency_window_bound": cfg.lat_window,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "saturation_s": cfg.sat_measure.as_secs_f64(),
            "latency_s": cfg.lat_measure.as_secs_f64(),
            "relay_options": "library defaults except max_clients = 20000",
        },
        "matrix": cells,
        "memory": memory,
        "scale": scale,
        "slow_consumer": slow,
        "fairness": res.fairness.as_ref().map(|f| json!({
            "relay_worker_threads": f.worker_threads,
            "bystander_rate_msgs_per_s": round(f.rate, 1),
            "bystander_payload": f.payload,
            "baseline": f.baseline.json("baseline"),
            "flood": f.flood.json("flood"),
            "checks": f.checks.json(),
        })),
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "measured": t.measured, "verdict": t.verdict(),
        })).collect::<Vec<_>>(),
        "failures": res.failures,
        "clean": all_clean(res),
    })
}

/// True if no run lost, reordered or failed anything (the slow member's drops excepted).
pub fn all_clean(res: &Results) -> bool {
    res.failures.is_empty()
        && res
            .cells
            .iter()
            .all(|c| c.servers.iter().all(|s| s.checks.clean()))
        && res.memory.iter().all(|m| m.checks.clean())
        && res.scale.as_ref().is_none_or(|s| s.checks.clean())
        && res.slow.iter().all(|s| s.checks.clean())
        && res.fairness.as_ref().is_none_or(|f| f.checks.clean())
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

/// The text table (also used, fenced, in the Markdown).
pub fn table(res: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<10} | {:>8} {:>9} {:>5} | {:>8} {:>8} | {:>6} {:>6} {:>6} {:>6} | {:>5}",
        "cell",
        "server",
        "deliv/s",
        "deliv/CPUs",
        "CPU%",
        "W1 msg/s",
        "rate",
        "p50",
        "p99",
        "p99.9",
        "max",
        "loss"
    );
    let _ = writeln!(
        s,
        "{:<16} {:<10} | {:>8} {:>9} {:>5} | {:>8} {:>8} | {:>6} {:>6} {:>6} {:>6} | {:>5}",
        "", "", "(W=64)", "(W=64)", "", "", "msg/s", "ms", "ms", "ms", "ms", ""
    );
    for c in &res.cells {
        let name = format!(
            "{}x{} {}B {}",
            c.rooms,
            c.room_size,
            c.payload,
            c.mode.name()
        );
        for sc in &c.servers {
            let sat = sc.sat.as_ref();
            let lat = sc.lat.as_ref().and_then(|f| f.latency.as_ref());
            let cpu = sat.and_then(|f| f.server_cpu_s.map(|c| 100.0 * c / f.secs));
            let loss = sc.checks.lost + sc.checks.stale;
            let _ = writeln!(
                s,
                "{:<16} {:<10} | {:>8} {:>9} {:>5} | {:>8} {:>8} | {:>6} {:>6} {:>6} {:>6} | {:>5}{}",
                name,
                sc.proto.name(),
                sat.map_or("-".into(), |f| human(f.deliveries_per_s)),
                sat.and_then(|f| f.per_cpu_s).map_or("-".into(), human),
                cpu.map_or("-".into(), |c| format!("{c:.0}")),
                sc.sat1.as_ref().map_or("-".into(), |f| human(f.msgs_per_s)),
                c.lat_rate.map_or("-".into(), human),
                lat.map_or("-".into(), |l| ms(l.p50_us)),
                lat.map_or("-".into(), |l| ms(l.p99_us)),
                lat.map_or("-".into(), |l| ms(l.p999_us)),
                lat.map_or("-".into(), |l| ms(l.max_us)),
                loss,
                if sc.checks.clean() { "" } else { "  FAILED" },
            );
        }
    }
    if !res.memory.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<10} {:>7} {:>10} {:>10} {:>13} {:>15} {:>12}",
            "memory",
            "conns",
            "RSS before",
            "RSS after",
            "user B/conn",
            "kernel B/conn*",
            "TCP buf B/c"
        );
        for m in &res.memory {
            let _ = writeln!(
                s,
                "{:<10} {:>7} {:>9.1}M {:>9.1}M {:>13.0} {:>15} {:>12.0}",
                m.proto.name(),
                m.connections,
                m.rss_before as f64 / 1048576.0,
                m.rss_after as f64 / 1048576.0,
                m.per_conn,
                m.kernel_per_conn.map_or("-".into(), |k| format!("{k:.0}")),
                m.sock_buf_per_conn
            );
        }
        let _ = writeln!(
            s,
            "* kernel: slab + TCP buffer deltas, whole machine, both ends of each loopback connection"
        );
    }
    if !res.slow.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<10} {:>8} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>9} {:>6}",
            "slow cons.",
            "msg/s",
            "p99 ms",
            "p99.9 ms",
            "pub lag",
            "p99 ms",
            "p99.9 ms",
            "pub lag",
            "slow lost",
            "kicked"
        );
        for sl in &res.slow {
            let l = |f: &Figures| f.latency.clone();
            let (a, b) = (l(&sl.before), l(&sl.after));
            let _ = writeln!(
                s,
                "{:<10} {:>8.0} | {:>8} {:>8} {:>8.2}m | {:>8} {:>8} {:>8.2}m | {:>9} {:>6}{}",
                sl.proto.name(),
                sl.rate,
                a.as_ref().map_or("-".into(), |l| ms(l.p99_us)),
                a.as_ref().map_or("-".into(), |l| ms(l.p999_us)),
                sl.before.pub_lag_max_ms,
                b.as_ref().map_or("-".into(), |l| ms(l.p99_us)),
                b.as_ref().map_or("-".into(), |l| ms(l.p999_us)),
                sl.after.pub_lag_max_ms,
                sl.slow_member_lost,
                if sl.slow_member_disconnected {
                    "yes"
                } else {
                    "no"
                },
                if sl.checks.clean() { "" } else { "  FAILED" },
            );
        }
        let _ = writeln!(
            s,
            "(left: everyone reading; right: one member stopped reading)"
        );
    }
    if let Some(f) = &res.fairness {
        fairness_table(&mut s, f);
    }
    if let Some(sc) = &res.scale {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "scale: {} of {} clients joined ({} workers), held {:.0} s, min relay fds {}, relay RSS {:.0} MiB, relay CPU {:.1} s, load generator CPU {:.1} s, {} deliveries, p99 {} ms, max {} ms, lost {}, disconnects {}, errors {}",
            sc.joined, sc.clients, sc.workers, sc.held_s, sc.min_server_fds,
            sc.server_rss as f64 / 1048576.0, sc.server_cpu_s, sc.workers_cpu_s, sc.deliveries, ms(sc.p99_us),
            ms(sc.max_us), sc.checks.lost, sc.checks.disconnects, sc.checks.errors
        );
    }
    s
}

/// The fairness test's lines of the table.
fn fairness_table(s: &mut String, f: &Fairness) {
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "fairness: a bystander pair in room-1 ({:.0} msg/s, {} B), flooders in room-0 writing {} B broadcasts back to back; relay RELAY_WORKER_THREADS={}",
        f.rate, f.payload, crate::fairness::FLOOD_FRAME, f.worker_threads
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} | {:>7} {:>7} {:>8} {:>7} | {:>7} {:>6} {:>6} | {:>12} {:>9} | {:>9} {:>7}",
        "phase",
        "flooders",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        ">100 ms",
        "sent",
        "recv",
        "flood frames",
        "frames/s",
        "relay CPU",
        "pub lag"
    );
    for (name, p) in [("baseline", &f.baseline), ("flood", &f.flood)] {
        let l = p.latency.as_ref();
        let flood = p.flood.as_ref();
        let _ = writeln!(
            s,
            "{:<10} {:>8} | {:>7} {:>7} {:>8} {:>7} | {:>7} {:>6} {:>6} | {:>12} {:>9} | {:>8} {:>6.1}m{}",
            name,
            p.flooders,
            l.map_or("-".into(), |l| ms(l.p50_us)),
            l.map_or("-".into(), |l| ms(l.p99_us)),
            l.map_or("-".into(), |l| ms(l.p999_us)),
            l.map_or("-".into(), |l| ms(l.max_us)),
            p.late,
            p.sent,
            p.received,
            flood.map_or("-".into(), |f| f.frames_sent.to_string()),
            flood.map_or("-".into(), |f| human(f.frames_sent as f64 / f.secs.max(1e-9))),
            p.server_cpu_pct.map_or("-".into(), |c| format!("{c:.0}%")),
            p.sender_lag_max_ms,
            if p.sent == p.received { "" } else { "  (missing)" },
        );
    }
    if let Some(fl) = &f.flood.flood {
        let _ = writeln!(
            s,
            "flooders: {} pings answered, {} closed by the relay{}, {:.1} MiB read from it{}{}",
            fl.pongs,
            fl.closed_by_relay,
            if fl.disconnect_codes.is_empty() {
                String::new()
            } else {
                format!(" (Disconnect codes {:?})", fl.disconnect_codes)
            },
            fl.bytes_received as f64 / 1048576.0,
            if fl.errors.is_empty() { "" } else { "; " },
            fl.errors.join("; ")
        );
    }
    if !f.checks.clean() {
        let _ = writeln!(
            s,
            "bystanders FAILED: lost {}, stale {}, disconnects {}, errors {}: {}",
            f.checks.lost,
            f.checks.stale,
            f.checks.disconnects,
            f.checks.errors,
            f.checks.first_errors.join("; ")
        );
    }
}

/// The targets as text lines.
pub fn targets_text(targets: &[Target]) -> String {
    let mut s = String::new();
    for t in targets {
        let _ = writeln!(s, "{:<4}  {}: {}", t.verdict(), t.name, t.measured);
    }
    s
}

/// Bar groups of a chart panel: a label, then one optional value per server.
type Groups = Vec<(String, Vec<(Proto, Option<f64>)>)>;

const COLORS: [(Proto, &str); 3] = [
    (Proto::Ghost, "#2f6fb3"),
    (Proto::Redis, "#c8463d"),
    (Proto::Nats, "#2e9e5b"),
];

/// One grouped-bar panel of the chart.
fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    groups: &Groups,
    label: fn(f64) -> String,
    log: bool,
) {
    let (w, h, top, bottom) = (440.0, 300.0, 50.0, 40.0);
    let plot_h = h - top - bottom;
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().filter_map(|(_, x)| *x))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    // On a log scale the axis starts at half the smallest value, so every bar shows.
    let lo = groups
        .iter()
        .flat_map(|(_, v)| v.iter().filter_map(|(_, x)| *x))
        .filter(|&x| x > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(max)
        / 2.0;
    let scale = |v: f64| {
        if log {
            ((v.max(lo) / lo).ln() / (max / lo).ln()).clamp(0.0, 1.0)
        } else {
            v / max
        }
    };
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="14" font-weight="bold" text-anchor="middle">{title}</text>"#,
        x0 + w / 2.0
    );
    let base_y = top + plot_h;
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{base_y}" x2="{}" y2="{base_y}" stroke="#444"/>"##,
        x0 + w
    );
    let group_w = w / groups.len().max(1) as f64;
    for (gi, (name, bars)) in groups.iter().enumerate() {
        let gx = x0 + gi as f64 * group_w;
        let bar_w = (group_w - 16.0) / bars.len().max(1) as f64;
        for (bi, (proto, v)) in bars.iter().enumerate() {
            let color = COLORS
                .iter()
                .find(|(p, _)| p == proto)
                .map_or("#888", |(_, c)| c);
            let bx = gx + 8.0 + bi as f64 * bar_w;
            match v {
                Some(v) => {
                    let bh = plot_h * scale(*v);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{bx:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
                        base_y - bh,
                        bar_w - 2.0,
                        proto.name(),
                        label(*v)
                    );
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                        bx + bar_w / 2.0 - 1.0,
                        base_y - bh - 3.0,
                        label(*v)
                    );
                }
                None => {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">n/a</text>"#,
                        bx + bar_w / 2.0 - 1.0,
                        base_y - 3.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{name}</text>"#,
            gx + group_w / 2.0,
            base_y + 16.0
        );
    }
}

/// The chart: deliveries per server CPU-second (window 64) and p99 at the fixed rate, for
/// the one-publisher, 256-byte cells, ghost-sync against both peers.
pub fn svg(res: &Results, subtitle: &str) -> String {
    let cells: Vec<&Cell> = res
        .cells
        .iter()
        .filter(|c| c.payload == 256 && c.mode == PubMode::One)
        .collect();
    let groups = |pick: fn(&Figures) -> Option<f64>, lat: bool| -> Groups {
        cells
            .iter()
            .map(|c| {
                let bars = c
                    .servers
                    .iter()
                    .map(|s| {
                        let f = if lat { s.lat.as_ref() } else { s.sat.as_ref() };
                        (s.proto, f.and_then(pick))
                    })
                    .collect();
                (format!("rooms of {}", c.room_size), bars)
            })
            .collect()
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="340" viewBox="0 0 960 340" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="960" height="340" fill="white"/>"#);
    panel(
        &mut s,
        30.0,
        "deliveries per server CPU-second (256 B, W=64)",
        &groups(|f| f.per_cpu_s, false),
        human,
        false,
    );
    panel(
        &mut s,
        500.0,
        "p99 at the fixed rate, ms, log scale (lower is better)",
        &groups(|f| f.latency.as_ref().map(|l| l.p99_us / 1000.0), true),
        |v| format!("{v:.2}"),
        true,
    );
    for (i, (p, c)) in COLORS.iter().enumerate() {
        let x = 330.0 + i as f64 * 110.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="312" width="12" height="12" fill="{c}"/><text x="{}" y="322" font-size="12">{}</text>"#,
            x + 16.0,
            p.name()
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="950" y="336" font-size="9" text-anchor="end" fill="#666">{subtitle}</text>"##
    );
    s.push_str("</svg>\n");
    s
}

/// A run's load averages (1/5/15 min) under `key` of its JSON meta, as `a / b / c`.
pub fn load_text(meta: &Value, key: &str) -> String {
    meta[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_f64().map_or("?".into(), |v| format!("{v:.2}")))
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default()
}

/// The generated sections' first line: the command, when, which commit, how long.
pub fn run_line(meta: &Value, command: &str) -> String {
    format!(
        "Run: `{command}`, {} UTC, commit `{}`, took {:.0} s.",
        meta["started_utc"].as_str().unwrap_or("?"),
        meta["commit"].as_str().unwrap_or("?"),
        meta["duration_s"].as_f64().unwrap_or(0.0)
    )
}

/// The generated sections' machine line, with the load before and after.
pub fn machine_line(meta: &Value) -> String {
    let m = &meta["machine"];
    format!(
        "Machine: {}, {} cores, {} GiB, Linux {}. Load average (1/5/15 min) before: {}, after: {}.",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["mem_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        load_text(meta, "load_before"),
        load_text(meta, "load_after")
    )
}

/// The Markdown results section of `BENCHMARKS.md`.
pub fn markdown(
    meta: &Value,
    table: &str,
    targets: &[Target],
    chart: &str,
    command: &str,
) -> String {
    let mut s = String::new();
    let load = |k: &str| load_text(meta, k);
    let busy = meta["load_before"][0].as_f64().unwrap_or(0.0) > 0.5
        || meta["load_after"][0].as_f64().unwrap_or(0.0) > 2.5;
    let _ = writeln!(s, "{}\n", run_line(meta, command));
    if busy {
        let _ = writeln!(
            s,
            "**Preliminary:** the machine was not quiet (load average before {}, after {}: \
             other jobs shared the two cores); re-run on a quiet machine for final figures.\n",
            load("load_before"),
            load("load_after")
        );
    }
    let _ = writeln!(s, "{}  ", machine_line(meta));
    let _ = writeln!(
        s,
        "Servers: {}; {}; {}; built with {}.  ",
        meta["versions"]["ghost-sync"].as_str().unwrap_or("?"),
        meta["versions"]["redis"].as_str().unwrap_or("?"),
        meta["versions"]["nats"].as_str().unwrap_or("?"),
        meta["versions"]["rustc"].as_str().unwrap_or("?")
    );
    let _ = writeln!(s, "{}\n", generator_line(meta["hog"].as_u64().unwrap_or(0)));
    let _ = writeln!(s, "![deliveries per CPU-second and p99]({chart})\n");
    s.push_str("Targets:\n\n| verdict | target | measured |\n|---|---|---|\n");
    for t in targets {
        let _ = writeln!(s, "| {} | {} | {} |", t.verdict(), t.name, t.measured);
    }
    let _ = writeln!(s, "\nAll figures:\n\n```text\n{table}```");
    s
}

/// How the matrix's load generator ran, for the section header: with `--hog N`, N threads
/// of the bench process spun through the saturation runs.
fn generator_line(hog: u64) -> String {
    if hog == 0 {
        "Load generator: the harness alone, no busy threads (`--hog 0`).".to_owned()
    } else {
        format!(
            "Load generator: with {hog} busy-spinning thread{} in the bench process through every \
             saturation run, warm-up to drain (`--hog {hog}`): the servers shared the cores \
             with a busier generator; the latency runs had none.",
            if hog == 1 { "" } else { "s" }
        )
    }
}

/// Markers around the generated section of `BENCHMARKS.md`.
pub const MD_START: &str = "<!-- bench:results:start -->";
/// See [`MD_START`].
pub const MD_END: &str = "<!-- bench:results:end -->";

/// Replaces the text between the markers of `doc` with `section`.
pub fn splice(doc: &str, section: &str) -> Option<String> {
    let a = doc.find(MD_START)? + MD_START.len();
    let b = doc.find(MD_END)?;
    (a <= b).then(|| format!("{}\n{}\n{}", &doc[..a], section.trim_end(), &doc[b..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_markers() {
        let doc = format!("intro\n{MD_START}\nold\n{MD_END}\nend\n");
        let out = splice(&doc, "new").unwrap();
        assert_eq!(out, format!("intro\n{MD_START}\nnew\n{MD_END}\nend\n"));
        assert!(splice("no markers", "x").is_none());
    }

    #[test]
    fn an_empty_result_still_renders() {
        let res = Results::default();
        let s = svg(&res, "x");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(table(&res).contains("deliv/s"));
        assert!(all_clean(&res));
    }

    #[test]
    fn the_header_names_the_generator() {
        assert!(generator_line(0).contains("`--hog 0`"));
        assert!(generator_line(1).contains("1 busy-spinning thread in"));
        assert!(generator_line(3).contains("3 busy-spinning threads"));
        let meta = json!({"hog": 2});
        assert!(markdown(&meta, "", &[], "c.svg", "cmd").contains("`--hog 2`"));
    }
}
