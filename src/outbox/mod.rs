//! A client's write queue: bounded in frames (`channel_capacity`) and in bytes
//! (`max_queued_bytes`), so that a client that stops reading can pin only a known amount of
//! memory. The [`Outbox`] is the sending end (held by the client's session and by every room
//! it is in), the [`Inbox`] the writer task's end.
//!
//! It is a `Vec` under a short lock rather than a channel, for the hot path and for memory:
//! - a push is one uncontended lock and a `Vec::push`;
//! - an idle client's queue holds no allocation at all (a channel preallocates slots).
//!
//! **Who writes.** At a game's tick rate a client's queue holds a frame or two at a time, and
//! waking its writer task for each would cost a wake-up (often a cross-core one) per delivery
//! on top of the system call. So the task that queued the frames writes them itself, once
//! per batch, with a non-blocking write ([`direct`]): a publisher at the end of each batch of
//! frames it read, the handle and the backplane as they send. The writer task is woken only
//! when the socket would block, the write was partial, the queue is long, or the relay is
//! behind (a publisher's batch held several frames): then its batching, one write for what
//! several publishers queued meanwhile, pays. While it owns the socket (`owned`), the others
//! only queue, so frames keep their order. This is how Redis (`beforeSleep`) and nats-server
//! (its per-read flush of pending clients) write.
//!
//! Bytes count from the moment a frame is queued until it has been written, so the queue and
//! the batch being written together stay within the byte limit. A frame shared by many
//! recipients counts once per recipient: an over-estimate, never an under-estimate.

mod direct;
mod flusher;
mod handover;

pub(crate) use direct::{DirectWrite, Pending};
pub(crate) use flusher::Flusher;

use crate::stats::Counters;
use crate::sync::lock;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds `channel_capacity` frames or `max_queued_bytes` bytes: the frame is
    /// dropped for this client (backpressure).
    Full,
    /// The client is disconnecting: nothing to report.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    frames: Vec<Bytes>,
    /// How much of the first frame a direct write already wrote (it was cut short): the
    /// writer task resumes there.
    head_sent: usize,
    /// Bytes queued or being written.
    bytes: usize,
    /// The writer task has taken frames and is writing them: nobody else may write.
    owned: bool,
    closed: bool,
    /// The socket, for writes from the tasks that queue frames; `None` for transports that
    /// only the writer task can write (and once the queue is closed).
    direct: Option<Arc<dyn DirectWrite>>,
    /// The client's seat is held for a resume (see [`handover`]): frames queue, nobody
    /// writes them until a new connection attaches.
    held: bool,
    /// Frames refused `Full` since the hold began: the `missed` of the resume.
    dropped: u32,
    /// Frames the writer task took and has not yet reported written: lost if its socket
    /// dies under them.
    in_flight: u32,
}

#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    /// Wakes the writer when the queue needs it (see the module's doc).
    ready: Notify,
    max_frames: usize,
    max_bytes: usize,
    /// Where direct writes count the frames and bytes they wrote.
    counters: Arc<Counters>,
}

/// The sending end of a client's write queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
}

/// The writer task's end of a client's write queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

/// A queue of at most `frames` frames and `bytes` bytes, written by its writer task alone.
#[cfg(test)]
pub(crate) fn outbox(frames: usize, bytes: usize) -> (Outbox, Inbox) {
    outbox_to(frames, bytes, None, Arc::default())
}

/// A queue of at most `frames` frames and `bytes` bytes, which the tasks that queue frames
/// write to `direct` themselves while the writer task does not own it; they count what they
/// wrote in `counters`.
pub(crate) fn outbox_to(
    frames: usize,
    bytes: usize,
    direct: Option<Arc<dyn DirectWrite>>,
    counters: Arc<Counters>,
) -> (Outbox, Inbox) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            direct,
            ..State::default()
        }),
        ready: Notify::new(),
        max_frames: frames,
        max_bytes: bytes,
        counters,
    });
    (
        Outbox {
            queue: Arc::clone(&queue),
        },
        Inbox { queue },
    )
}

impl Outbox {
    /// Queues `frame` and sends it on its way without waiting: written at once if the socket
    /// takes it, else left to the writer task.
    pub(crate) fn try_send(&self, frame: Bytes) -> Result<(), Refused> {
        if self.push(frame)? {
            self.flush();
        }
        Ok(())
    }

    /// Queues `frame` without writing it. `Ok(true)`: the queue was idle, and the caller
    /// must [`flush`](Outbox::flush) it (soon: at the end of its batch); `Ok(false)`: someone
    /// else already will (the task that queued the frame before, or the writer task).
    pub(crate) fn push(&self, frame: Bytes) -> Result<bool, Refused> {
        let mut state = lock(&self.queue.state);
        if state.closed {
            return Err(Refused::Closed);
        }
        // An empty queue takes any frame, so one frame larger than the byte limit cannot
        // wedge a client (the limit is kept above the largest frame anyway).
        let over_bytes = state.bytes > 0 && state.bytes + frame.len() > self.queue.max_bytes;
        if state.frames.len() >= self.queue.max_frames || over_bytes {
            state.dropped = state.dropped.saturating_add(1);
            return Err(Refused::Full);
        }
        state.bytes += frame.len();
        state.frames.push(frame);
        Ok(state.frames.len() == 1 && !state.owned)
    }

    /// Lets go of the queue's spare allocation, for a client gone idle (direct writes keep
    /// it between frames, for the next ones).
    pub(crate) fn shrink(&self) {
        self.queue.shrink();
    }

    /// Frames waiting to be written.
    pub(crate) fn depth(&self) -> usize {
        lock(&self.queue.state).frames.len()
    }
}

impl Inbox {
    /// Waits until the queue is handed over, then takes the socket and moves every queued
    /// frame into `batch` (which must be empty; its allocation is reused as the queue's next
    /// one). Returns how much of the first frame was already written.
    ///
    /// The writer owns the socket from then until a `take` finds the queue empty.
    pub(crate) async fn take(&mut self, batch: &mut Vec<Bytes>) -> usize {
        loop {
            {
                let mut state = lock(&self.queue.state);
                if state.held {
                    // Held for a resume: the frames wait for the next connection's writer.
                } else if !state.frames.is_empty() {
                    std::mem::swap(&mut state.frames, batch);
                    state.owned = true;
                    state.in_flight = u32::try_from(batch.len()).unwrap_or(u32::MAX);
                    return std::mem::take(&mut state.head_sent);
                } else {
                    state.owned = false;
                }
            }
            // A push between the check and this wait stores a permit: no wake-up is lost.
            self.queue.ready.notified().await;
        }
    }

    /// Refuses further frames and moves those already queued into `batch`; returns how much
    /// of the first of them was already written. Nobody else writes the socket after this.
    pub(crate) fn close_into(&mut self, batch: &mut Vec<Bytes>) -> usize {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        state.owned = true;
        state.direct = None;
        batch.append(&mut state.frames);
        std::mem::take(&mut state.head_sent)
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.queue.state).frames.is_empty()
    }

    /// `bytes` taken from the queue were written (or given up): they no longer count.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = lock(&self.queue.state);
        state.bytes = state.bytes.saturating_sub(bytes);
        state.in_flight = 0;
    }

    /// Takes the oldest queued frame, if any (for tests of what was queued).
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let mut state = lock(&self.queue.state);
        if state.frames.is_empty() {
            return None;
        }
        Some(state.frames.remove(0))
    }

    /// Lets go of the queue's spare allocation, for a client gone idle.
    pub(crate) fn shrink(&self) {
        self.queue.shrink();
    }
}

impl Queue {
    fn shrink(&self) {
        let mut state = lock(&self.state);
        if state.frames.is_empty() {
            state.frames = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_now(rx: &mut Inbox) -> Vec<Bytes> {
        let mut batch = Vec::new();
        let mut state = lock(&rx.queue.state);
        std::mem::swap(&mut state.frames, &mut batch);
        batch
    }

    #[test]
    fn the_byte_limit_refuses_what_would_overflow_it_and_frees_what_was_written() {
        let (tx, mut rx) = outbox(100, 10);
        assert_eq!(tx.try_send(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(
            tx.try_send(Bytes::from_static(b"12345")),
            Err(Refused::Full)
        );
        assert_eq!(tx.try_send(Bytes::from_static(b"1234")), Ok(()));
        let batch = take_now(&mut rx);
        // Taken but not yet written: still counted.
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Err(Refused::Full));
        rx.written(batch.iter().map(Bytes::len).sum());
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Ok(()));
    }

    #[test]
    fn an_empty_queue_takes_one_frame_larger_than_the_limit() {
        let (tx, _rx) = outbox(100, 4);
        assert_eq!(tx.try_send(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Err(Refused::Full));
    }

    #[test]
    fn the_frame_limit_still_holds() {
        let (tx, _rx) = outbox(2, 1 << 20);
        assert_eq!(tx.try_send(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"c")), Err(Refused::Full));
    }

    #[test]
    fn a_closed_queue_refuses_and_hands_over_what_it_held() {
        let (tx, mut rx) = outbox(4, 10);
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        let mut rest = Vec::new();
        rx.close_into(&mut rest);
        assert_eq!(rest, vec![Bytes::from_static(b"a")]);
        assert_eq!(tx.try_send(Bytes::from_static(b"b")), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn the_writer_takes_everything_queued_in_order_and_wakes_for_more() {
        let (tx, mut rx) = outbox(8, 1 << 20);
        for frame in [&b"1"[..], b"2", b"3"] {
            tx.try_send(Bytes::copy_from_slice(frame)).unwrap();
        }
        let mut batch = Vec::new();
        rx.take(&mut batch).await;
        assert_eq!(batch, vec![&b"1"[..], b"2", b"3"]);
        batch.clear();
        let waiting = tokio::spawn(async move {
            rx.take(&mut batch).await;
            batch
        });
        tokio::task::yield_now().await;
        tx.try_send(Bytes::from_static(b"4")).unwrap();
        assert_eq!(waiting.await.unwrap(), vec![&b"4"[..]]);
    }
}
