//! The live progress line: once a second, one line on stderr rewritten in place (elapsed
//! time, phase, clients connected, deliveries per second, p99 so far, disconnects). Only
//! started when stderr is a terminal; the report goes to stdout either way.

use super::traffic::Live;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Rewrites the line every second until `stop` turns true, then clears it.
pub(crate) fn spawn(
    live: Arc<Live>,
    clients: usize,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await;
        let (mut last_at, mut last_count) = (started, 0u64);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = ticks.tick() => {}
            }
            let now = Instant::now();
            let count = live.deliveries.load(Ordering::Relaxed);
            let rate = (count - last_count) as f64 / (now - last_at).as_secs_f64().max(1e-3);
            (last_at, last_count) = (now, count);
            let p99 = live.p99_us().map_or_else(
                || "-".to_owned(),
                |us| format!("{:.3} ms", us as f64 / 1000.0),
            );
            let line = format!(
                "\r{:>6.1}s {:<10} connected {}/{}  {:.0} deliveries/s  p99 {}  disconnects {}\x1b[K",
                (now - started).as_secs_f64(),
                live.phase().name(),
                live.connected.load(Ordering::Relaxed),
                clients,
                rate,
                p99,
                live.disconnects.load(Ordering::Relaxed),
            );
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
        let _ = std::io::stderr().write_all(b"\r\x1b[K");
    })
}
