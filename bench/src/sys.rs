//! Readings from `/proc` and a few system calls: a process's CPU time, RSS and read/write
//! system calls, the kernel's TCP and slab memory, the load average, the machine's
//! description, and the open-files limit.

use anyhow::{anyhow, Context, Result};
use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU time of process `pid` (all its threads, living and exited), in seconds,
/// from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 (index 0), utime field 14 (index 11), stime 15 (index 12).
    let utime: u64 = fields.get(11).ok_or_else(|| anyhow!("no utime"))?.parse()?;
    let stime: u64 = fields.get(12).ok_or_else(|| anyhow!("no stime"))?.parse()?;
    Ok((utime + stime) as f64 / clock_ticks())
}

/// The read- and write-family system calls process `pid` has made so far (all its threads,
/// living and exited): `syscr` + `syscw` of `/proc/<pid>/io`. Only the calls that go through
/// the kernel's file read/write path count there (`read`, `readv`, `pread64`, `write`,
/// `writev`, ...): not the socket calls `recv`, `recvfrom`, `recvmsg`, `send`, `sendto`,
/// `sendmsg`, nor `epoll_wait`, `futex` and the like. So two servers moving the same data,
/// one with `read`/`write` and one with `recv`/`send`, get very different counts.
pub fn io_syscalls(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    parse_io_syscalls(&text).ok_or_else(|| anyhow!("no syscr/syscw in /proc/{pid}/io"))
}

/// `syscr` + `syscw` of a `/proc/<pid>/io` text; `None` if either is missing.
pub fn parse_io_syscalls(text: &str) -> Option<u64> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    Some(field("syscr")? + field("syscw")?)
}

/// The whole machine's CPU time so far, in seconds summed over its cores: busy (user, nice,
/// system, irq, softirq) and stolen by the hypervisor, from the first line of `/proc/stat`.
/// Busy time beyond the processes under test is other work sharing the machine.
pub fn machine_cpu_seconds() -> Result<(f64, f64)> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal ...
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Ok((busy as f64 / clock_ticks(), at(7) as f64 / clock_ticks()))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, ...), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{field} in /proc/{pid}/status"))?;
            return Ok(kb * 1024);
        }
    }
    Err(anyhow!("no {field} in /proc/{pid}/status"))
}

/// Resident set size of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The kernel's TCP memory: sockets in use and buffer memory in bytes (`/proc/net/sockstat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SockStat {
    /// TCP sockets in use (both ends of a loopback connection count).
    pub tcp_inuse: u64,
    /// Memory the kernel holds for TCP socket buffers, in bytes.
    pub tcp_mem_bytes: u64,
}

/// Reads `/proc/net/sockstat`.
pub fn sockstat() -> Result<SockStat> {
    let text = fs::read_to_string("/proc/net/sockstat")?;
    let mut s = SockStat::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("TCP:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            for pair in words.chunks(2) {
                if let [k, v] = pair {
                    let v: u64 = v.parse().unwrap_or(0);
                    match *k {
                        "inuse" => s.tcp_inuse = v,
                        "mem" => s.tcp_mem_bytes = v * page_size(),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(s)
}

/// Total bytes in the kernel's slab caches (`/proc/slabinfo`, objects × object size), or
/// `None` where it cannot be read (it needs root).
pub fn slab_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/slabinfo").ok()?;
    let mut total = 0u64;
    for line in text.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // name active_objs num_objs objsize ...
        if let (Some(num), Some(size)) = (f.get(2), f.get(3)) {
            total += num.parse::<u64>().ok()? * size.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// The memory page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [f64::NAN; 3];
    for (slot, word) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = word.parse().unwrap_or(f64::NAN);
    }
    out
}

/// Raises this process's soft open-files limit to its hard limit; returns the new limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// Asks for 1 ns timer slack on the calling thread, so that its sleeps end on time (the
/// default 50 µs would show up as latency of the paced publisher).
pub fn precise_timers() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// A one-line description of the machine: CPU model, cores, memory, kernel.
pub fn machine() -> serde_json::Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    serde_json::json!({
        "cpu": model,
        "cores": cores,
        "mem_gib": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
    })
}

/// The first line a command prints (for versions), or `None` if it cannot run.
pub fn command_line_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        // Burn a little CPU so that the reading is plausible.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(fd_count(pid).unwrap() >= 3);
        assert!(sockstat().is_ok());
        assert!(loadavg()[0] >= 0.0);
        let (busy, steal) = machine_cpu_seconds().unwrap();
        assert!(busy > 0.0 && steal >= 0.0);
        // Reading /proc/self/stat above was a read system call.
        assert!(io_syscalls(pid).unwrap() > 0);
    }

    #[test]
    fn parses_proc_io() {
        let text = "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 3\nread_bytes: 0\n";
        assert_eq!(parse_io_syscalls(text), Some(13));
        assert_eq!(parse_io_syscalls("syscr: 10\n"), None);
        assert_eq!(parse_io_syscalls(""), None);
    }
}
