//! A busy load generator on demand (`--hog N`): N OS threads of the bench process that do
//! nothing but spin on the CPU, so that the generator takes a core or more and the server
//! under test no longer has a core to itself.
//!
//! The threads run at normal priority and check a stop flag every few microseconds; a
//! [`Hog`] stops and joins them when it is stopped or dropped, so none outlives it. With
//! `N = 0` no thread is started at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Spins between two looks at the stop flag: about a microsecond of work.
const SPINS_PER_CHECK: u32 = 1024;

/// Busy-spinning threads, running until [`stop`](Hog::stop) or drop.
#[derive(Debug)]
pub struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hog {
    /// Starts `n` spinning threads (none for 0). A thread that cannot be spawned is left out
    /// (and said on stderr), so the count may be lower than asked: see [`threads`](Hog::threads).
    pub fn start(n: usize) -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let flag = Arc::clone(&stop);
            match std::thread::Builder::new()
                .name(format!("bench-hog-{i}"))
                .spawn(move || spin(&flag))
            {
                Ok(t) => threads.push(t),
                Err(e) => eprintln!("warning: hog thread {i} not started: {e}"),
            }
        }
        Hog { stop, threads }
    }

    /// Threads spinning.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Stops every thread and waits for each to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Pure CPU work until `stop` is set.
fn spin(stop: &AtomicBool) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Acquire) {
        for _ in 0..SPINS_PER_CHECK {
            // A linear congruential step: cheap, and nothing the compiler can fold away.
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
        }
        std::hint::black_box(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_starts_nothing() {
        let h = Hog::start(0);
        assert_eq!(h.threads(), 0);
        h.stop();
    }

    #[test]
    fn threads_stop_when_stopped_or_dropped() {
        let h = Hog::start(2);
        assert_eq!(h.threads(), 2);
        h.stop();
        let flag = {
            let h = Hog::start(1);
            Arc::clone(&h.stop)
        };
        // Dropped: the flag is set and the thread was joined.
        assert!(flag.load(Ordering::Acquire));
        assert_eq!(Arc::strong_count(&flag), 1);
    }
}
