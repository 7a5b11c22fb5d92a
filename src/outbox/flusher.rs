//! The flush window (`ServerBuilder::flush_interval`, off by default): instead of writing
//! the queues it filled at the end of each batch, a relaying task hands them to the
//! server's [`Flusher`], which writes every queue handed to it once per window. A client
//! that receives from many publishers then gets all that arrived within a window in one
//! write: fewer system calls (and wake-ups of the client), for at most one window of delay.
//!
//! Order is kept as without the window: a queue is handed over only by the task that found
//! it idle (see [`Outbox::push`]), and everything written still goes out under the queue's
//! lock. Replies, pings and the handle's sends are not delayed.

use super::{Outbox, Pending};
use crate::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Queues flushed per unit of the flushing task's cooperative budget: a window with many
/// queues to write does not hold its worker away from the connections.
const FLUSHES_PER_BUDGET_UNIT: usize = 16;

/// Most queues waiting for the end of a window. A queue is handed over once per time it goes
/// from idle to busy, so a window holds about one entry per client; a client whose queue
/// keeps being emptied by its own replies could be handed over again within the window, and
/// past this bound the queues are written at once instead of waiting.
const MAX_HANDED: usize = 65_536;

/// Writes the queues handed to it once per window.
#[derive(Debug)]
pub(crate) struct Flusher {
    every: Duration,
    /// The queues to write at the end of the window (at most [`MAX_HANDED`]).
    queues: Mutex<Vec<Outbox>>,
    /// Set once the server stops: queues are then written at once.
    stopped: AtomicBool,
}

impl Flusher {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            queues: Mutex::default(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Takes the queues `pending` filled, to write at the end of the window.
    pub(crate) fn hand(&self, pending: &mut Pending) {
        if pending.queues.is_empty() {
            return;
        }
        if self.stopped.load(Ordering::Acquire) {
            pending.flush();
            return;
        }
        let mut queues = lock(&self.queues);
        if queues.len() + pending.queues.len() > MAX_HANDED {
            drop(queues);
            pending.flush();
            return;
        }
        queues.append(&mut pending.queues);
    }

    /// Writes the queues handed over, every window, until `stop` is cancelled.
    pub(crate) async fn run(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::new();
        loop {
            let stopping = tokio::select! {
                biased;
                _ = stop.cancelled() => true,
                _ = tick.tick() => false,
            };
            if stopping {
                self.stopped.store(true, Ordering::Release);
            }
            std::mem::swap(&mut *lock(&self.queues), &mut batch);
            for (i, outbox) in batch.drain(..).enumerate() {
                if i % FLUSHES_PER_BUDGET_UNIT == 0 {
                    tokio::task::coop::consume_budget().await;
                }
                outbox.flush();
            }
            if stopping {
                // A hand-over that raced the flag is written too.
                std::mem::swap(&mut *lock(&self.queues), &mut batch);
                batch.drain(..).for_each(|outbox| outbox.flush());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{outbox_to, DirectWrite};
    use super::*;
    use bytes::Bytes;
    use std::io::{self, IoSlice};
    use std::sync::Arc;

    #[derive(Debug, Default)]
    struct Sink(Mutex<Vec<Vec<u8>>>);

    impl DirectWrite for Sink {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            lock(&self.0).push(all);
            Ok(n)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_arrives_within_a_window_leaves_in_one_write_at_its_end() {
        let sink = Arc::new(Sink::default());
        let direct: Arc<dyn DirectWrite> = Arc::clone(&sink) as Arc<dyn DirectWrite>;
        let (tx, _rx) = outbox_to(64, 1 << 20, Some(direct), Arc::default());
        let flusher = Arc::new(Flusher::new(Duration::from_millis(2)));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (flusher, stop) = (Arc::clone(&flusher), stop.clone());
            async move { flusher.run(stop).await }
        });
        // The interval's first tick is at once: let it pass.
        tokio::time::sleep(Duration::from_micros(100)).await;
        // Two publishers' batches within the window.
        for frame in [&b"one"[..], b"two"] {
            let mut pending = Pending::default();
            pending.push(&tx, Bytes::copy_from_slice(frame)).unwrap();
            flusher.hand(&mut pending);
        }
        assert!(lock(&sink.0).is_empty(), "nothing before the window ends");
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert_eq!(*lock(&sink.0), vec![b"onetwo".to_vec()]);
        // Once stopped, what is handed over is written at once.
        stop.cancel();
        task.await.unwrap();
        let mut pending = Pending::default();
        pending.push(&tx, Bytes::from_static(b"three")).unwrap();
        flusher.hand(&mut pending);
        assert_eq!(lock(&sink.0).last().unwrap(), b"three");
    }
}
