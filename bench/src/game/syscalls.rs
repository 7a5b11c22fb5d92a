//! System calls of a server process during a measurement.
//!
//! First choice: `perf stat -e raw_syscalls:sys_enter -p PID -x, -- sleep SECS`, started
//! beside the measured phase; its CSV line on stderr gives every system call the process's
//! threads entered. Where perf is missing or fails (no permission, no tracepoint, nothing
//! counted), the fallback is the difference of `syscr` + `syscw` in `/proc/PID/io` over the
//! same stretch, which counts only the file read/write calls (`read`, `readv`, `write`,
//! `writev`, ...), not the socket calls (`recv`, `recvfrom`, `send`, `sendto`, `sendmsg`,
//! ...) nor `epoll_wait` or `futex`, and says so. That count does not compare servers: the
//! relay's Rust standard library reads and writes sockets with `recv` and `send`, while
//! redis and nats use `read` and `write`. If neither works there is no figure: never an
//! estimate.
//!
//! The tracepoint counter makes each of the server's system calls a little dearer while it is
//! attached; that cost falls on every server alike, in proportion to its system calls.

use crate::sys;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The tracepoint perf counts: entry into any system call.
pub const PERF_EVENT: &str = "raw_syscalls:sys_enter";

/// Extra time perf may take beyond its `sleep` before it is given up.
const PERF_GRACE: Duration = Duration::from_secs(10);

/// Where a system-call count came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `perf stat -e raw_syscalls:sys_enter`: every system call.
    Perf,
    /// `syscr` + `syscw` of `/proc/PID/io`: file read/write calls only (`read`, `write`,
    /// `readv`, `writev`, ...; not `recv`, `send` and the other socket calls).
    ProcIo,
}

impl Source {
    /// The key in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Source::Perf => "perf raw_syscalls:sys_enter",
            Source::ProcIo => "/proc/PID/io syscr+syscw",
        }
    }

    /// What the count covers, in words.
    pub fn covers(self) -> &'static str {
        match self {
            Source::Perf => "every system call (perf stat -e raw_syscalls:sys_enter)",
            Source::ProcIo => {
                "file read/write calls only, not send/recv (/proc/PID/io syscr + syscw; perf \
                 unavailable): not comparable between servers"
            }
        }
    }
}

/// The system calls of one server process over a measured stretch, or why there is no count.
#[derive(Clone, Debug, Default)]
pub struct SyscallCount {
    /// Where `count` came from (`None`: no count).
    pub source: Option<Source>,
    /// System calls counted.
    pub count: Option<u64>,
    /// Seconds the count covers.
    pub window_s: f64,
    /// Why perf gave no count, if it did not.
    pub perf_error: Option<String>,
    /// Why `/proc/PID/io` gave no count, if it was needed and did not.
    pub io_error: Option<String>,
}

impl SyscallCount {
    /// System calls per delivery, given the deliveries per second of the same stretch.
    pub fn per_delivery(&self, deliveries_per_s: f64) -> Option<f64> {
        per_delivery(self.count?, self.window_s, deliveries_per_s)
    }

    /// The JSON form.
    pub fn json(&self, deliveries_per_s: Option<f64>) -> Value {
        json!({
            "source": self.source.map(Source::key),
            "covers": self.source.map(Source::covers),
            "count": self.count,
            "window_s": crate::scenarios::round(self.window_s, 3),
            "per_s": self.count.filter(|_| self.window_s > 0.0).map(|c| (c as f64 / self.window_s).round()),
            "per_delivery": deliveries_per_s
                .and_then(|d| self.per_delivery(d))
                .map(|x| crate::scenarios::round(x, 4)),
            "perf_error": self.perf_error,
            "io_error": self.io_error,
        })
    }
}

/// `count` system calls over `window_s` seconds, per delivery at `deliveries_per_s`; `None`
/// when either rate is not positive.
pub fn per_delivery(count: u64, window_s: f64, deliveries_per_s: f64) -> Option<f64> {
    (window_s > 0.0 && deliveries_per_s > 0.0).then(|| count as f64 / window_s / deliveries_per_s)
}

/// The count of [`PERF_EVENT`] in what `perf stat -x,` wrote to stderr, or why there is none.
pub fn parse_perf_csv(stderr: &str) -> Result<u64, String> {
    for line in stderr.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        // value, unit, event, running time, share of time counted, ...
        let Some(event) = fields.get(2) else {
            continue;
        };
        // A modifier may follow the name (`raw_syscalls:sys_enter:u`).
        if !event.starts_with(PERF_EVENT) {
            continue;
        }
        let value = fields[0];
        return value.parse::<u64>().map_err(|_| {
            if value.starts_with('<') {
                format!("perf reported {value} for {PERF_EVENT}")
            } else {
                format!("perf's count {value:?} is not a number")
            }
        });
    }
    let first = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(nothing)");
    Err(format!("no {PERF_EVENT} line in perf's output: {first}"))
}

/// Counting under way: perf attached to the process, and the `/proc/PID/io` reading of the
/// start.
pub struct Counter {
    pid: u32,
    secs: Duration,
    perf: Result<Child, String>,
    io0: Result<u64, String>,
    t0: Instant,
}

impl Counter {
    /// Starts counting the system calls of `pid` for `secs`.
    pub fn start(pid: u32, secs: Duration) -> Counter {
        let io0 = sys::io_syscalls(pid).map_err(|e| format!("{e:#}"));
        let t0 = Instant::now();
        let perf = Command::new("perf")
            .args([
                "stat",
                "-e",
                PERF_EVENT,
                "-p",
                &pid.to_string(),
                "-x,",
                "--",
            ])
            .arg("sleep")
            .arg(format!("{:.3}", secs.as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("perf could not be started: {e}"));
        Counter {
            pid,
            secs,
            perf,
            io0,
            t0,
        }
    }

    /// Waits for the end of the stretch and returns the count: perf's, else the fallback's.
    pub async fn finish(self) -> SyscallCount {
        let perf = match self.perf {
            Ok(child) => {
                match tokio::time::timeout(self.secs + PERF_GRACE, child.wait_with_output()).await {
                    Ok(Ok(out)) => {
                        let err = String::from_utf8_lossy(&out.stderr);
                        match parse_perf_csv(&err) {
                            Ok(n) if out.status.success() => Ok(n),
                            Ok(_) => Err(format!("perf exited with {}", out.status)),
                            Err(e) if out.status.success() => Err(e),
                            Err(e) => Err(format!("perf exited with {}: {e}", out.status)),
                        }
                    }
                    Ok(Err(e)) => Err(format!("waiting for perf: {e}")),
                    // Dropping the child kills it.
                    Err(_) => Err("perf did not finish in time".to_owned()),
                }
            }
            Err(e) => Err(e),
        };
        match perf {
            Ok(n) => SyscallCount {
                source: Some(Source::Perf),
                count: Some(n),
                window_s: self.secs.as_secs_f64(),
                ..SyscallCount::default()
            },
            Err(perf_error) => {
                // A perf that failed at once must not shorten the fallback's stretch.
                tokio::time::sleep_until((self.t0 + self.secs).into()).await;
                let io1 = sys::io_syscalls(self.pid).map_err(|e| format!("{e:#}"));
                let window_s = self.t0.elapsed().as_secs_f64();
                match (self.io0, io1) {
                    (Ok(a), Ok(b)) => SyscallCount {
                        source: Some(Source::ProcIo),
                        count: Some(b.saturating_sub(a)),
                        window_s,
                        perf_error: Some(perf_error),
                        io_error: None,
                    },
                    (Err(e), _) | (_, Err(e)) => SyscallCount {
                        source: None,
                        count: None,
                        window_s,
                        perf_error: Some(perf_error),
                        io_error: Some(e),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_csv() {
        let out = "1234567,,raw_syscalls:sys_enter,5003456789,100.00,,\n";
        assert_eq!(parse_perf_csv(out), Ok(1_234_567));
        // Blank lines, comments and other events around it.
        let out = "\n# started on ...\n\n  42,,raw_syscalls:sys_enter:u,1000,100.00,0.042,M/sec\n";
        assert_eq!(parse_perf_csv(out), Ok(42));
        let out = "301.36,msec,task-clock,301364210,100.00,1.000,CPUs utilized\n\
                   637388,,raw_syscalls:sys_enter,301364210,100.00,2.115,M/sec\n";
        assert_eq!(parse_perf_csv(out), Ok(637_388));
    }

    #[test]
    fn perf_failures_are_errors_not_figures() {
        let e = parse_perf_csv("<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n").unwrap_err();
        assert!(e.contains("<not counted>"), "{e}");
        let e = parse_perf_csv("<not supported>,,raw_syscalls:sys_enter,0,0.00,,\n").unwrap_err();
        assert!(e.contains("<not supported>"), "{e}");
        let e = parse_perf_csv("event syntax error: 'raw_syscalls:sys_enter'\n").unwrap_err();
        assert!(e.contains("event syntax error"), "{e}");
        assert!(parse_perf_csv("").is_err());
        assert!(parse_perf_csv("12x,,raw_syscalls:sys_enter,1,100.00,,").is_err());
    }

    #[test]
    fn per_delivery_needs_both_rates() {
        assert_eq!(per_delivery(3000, 2.0, 500.0), Some(3.0));
        assert_eq!(per_delivery(3000, 0.0, 500.0), None);
        assert_eq!(per_delivery(3000, 2.0, 0.0), None);
        let none = SyscallCount::default();
        assert_eq!(none.per_delivery(100.0), None);
        let c = SyscallCount {
            source: Some(Source::ProcIo),
            count: Some(100),
            window_s: 1.0,
            ..SyscallCount::default()
        };
        assert_eq!(c.per_delivery(50.0), Some(2.0));
        assert_eq!(c.json(Some(50.0))["per_delivery"], json!(2.0));
    }
}
