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
//!
//! **When frames are dropped** (issue 14). A frame refused for a full queue is counted, and
//! the next frame the queue takes comes behind a `Dropped { count }` notice ([`notice`]), so
//! the client knows it missed some. A keyed frame (the latest state of its sender's key:
//! [`Outbox::push_keyed`]) that finds the queue full replaces, in place, the older value of
//! the same key still queued, rather than being dropped ([`keyed`]).

#[cfg(test)]
mod alloc_count;
mod direct;
mod flusher;
mod handover;
mod keyed;
mod notice;

pub(crate) use direct::{DirectWrite, Pending};
pub(crate) use flusher::Flusher;
pub(crate) use keyed::MAX_INDEX_BYTES_PER_FRAME;

use crate::stats::Counters;
use crate::sync::lock;
use bytes::Bytes;
use keyed::KeyIndex;
use notice::{dropped_notice, NOTICE_LEN};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use uuid::Uuid;

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
    /// Frames refused for a full queue since the last `Dropped` notice: the next frame
    /// queued goes behind a notice of them.
    dropped: u32,
    /// The sequence number of `frames[0]`: every frame queued has one, counting from 0, so
    /// that the keyed index can tell a frame still queued from one gone (see [`keyed`]).
    front: u64,
    /// Where the queued keyed frames are; allocated for the first one.
    keyed: Option<Box<KeyIndex>>,
    /// The client's seat is held for a resume (see [`handover`]): frames queue, nobody
    /// writes them until a new connection attaches, and the frames refused meanwhile are
    /// told by the resume's `Resumed { missed }`, not by a `Dropped` notice.
    held: bool,
    /// Frames the writer task took and has not yet reported written: lost if its socket
    /// dies under them.
    in_flight: u32,
}

impl State {
    /// `n` frames were removed from the front of the queue (taken or written).
    fn advanced(&mut self, n: usize) {
        self.front += n as u64;
        if self.frames.is_empty() {
            if let Some(index) = &mut self.keyed {
                index.clear();
            }
        }
    }
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
    ///
    /// After frames were refused for a full queue, the frame goes behind a `Dropped` notice
    /// of how many (see the module's doc).
    pub(crate) fn push(&self, frame: Bytes) -> Result<bool, Refused> {
        let mut state = lock(&self.queue.state);
        if state.closed {
            return Err(Refused::Closed);
        }
        match self.queue.enqueue(&mut state, frame) {
            Ok(idle) => Ok(idle),
            Err(_) => Err(state.refused()),
        }
    }

    /// Queues `frame`, which carries the latest value of `sender`'s `key`, as
    /// [`push`](Outbox::push) does, except that a full queue does not drop it if it still
    /// holds an older value of the same key: the new frame replaces that one where it is
    /// (`Ok(false)`: the queue is busy). The older value is replaced only while nothing of it
    /// was written: not once the writer has taken it, nor if a direct write began it.
    pub(crate) fn push_keyed(&self, frame: Bytes, sender: Uuid, key: u32) -> Result<bool, Refused> {
        let mut guard = lock(&self.queue.state);
        let state = &mut *guard;
        if state.closed {
            return Err(Refused::Closed);
        }
        match self.queue.enqueue(state, frame) {
            Ok(idle) => {
                let max_frames = self.queue.max_frames;
                let seq = state.front + state.frames.len() as u64 - 1;
                state
                    .keyed
                    .get_or_insert_with(|| KeyIndex::new(max_frames))
                    .record(sender, key, seq, state.front);
                Ok(idle)
            }
            Err(frame) => {
                if self.queue.replace(state, frame, sender, key) {
                    Ok(false)
                } else {
                    Err(state.refused())
                }
            }
        }
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
            if let Some(head_sent) = self.try_take(batch) {
                return head_sent;
            }
            // A push between the check and this wait stores a permit: no wake-up is lost.
            self.queue.ready.notified().await;
        }
    }

    /// [`take`](Inbox::take) if frames are queued; `None` (and the socket handed back) if not.
    fn try_take(&mut self, batch: &mut Vec<Bytes>) -> Option<usize> {
        let mut state = lock(&self.queue.state);
        if state.held {
            // Held for a resume: the frames wait for the next connection's writer.
            return None;
        }
        if state.frames.is_empty() {
            state.owned = false;
            return None;
        }
        std::mem::swap(&mut state.frames, batch);
        state.advanced(batch.len());
        state.owned = true;
        state.in_flight = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        Some(std::mem::take(&mut state.head_sent))
    }

    /// Refuses further frames and moves those already queued into `batch`; returns how much
    /// of the first of them was already written. Nobody else writes the socket after this.
    pub(crate) fn close_into(&mut self, batch: &mut Vec<Bytes>) -> usize {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        state.owned = true;
        state.direct = None;
        let n = state.frames.len();
        batch.append(&mut state.frames);
        state.advanced(n);
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
        let frame = state.frames.remove(0);
        state.advanced(1);
        Some(frame)
    }

    /// Takes every queued frame as the writer does, without waiting (for tests).
    #[cfg(test)]
    pub(crate) fn take_now(&mut self) -> Vec<Bytes> {
        let mut batch = Vec::new();
        self.try_take(&mut batch);
        batch
    }

    /// Lets go of the queue's spare allocation, for a client gone idle.
    pub(crate) fn shrink(&self) {
        self.queue.shrink();
    }
}

impl State {
    /// A frame was refused for a full queue: counted for the next notice.
    fn refused(&mut self) -> Refused {
        self.dropped = self.dropped.saturating_add(1);
        Refused::Full
    }
}

impl Queue {
    /// Appends `frame` if the limits allow (behind the notice owed, if any); whether the
    /// queue was idle, or the frame back if the queue is full. The caller checked `closed`.
    #[inline]
    fn enqueue(&self, state: &mut State, frame: Bytes) -> Result<bool, Bytes> {
        // The one test the notice costs a queue that dropped nothing. A held seat's drops are
        // told by its `Resumed` instead.
        if state.dropped > 0 && !state.held {
            return self.enqueue_after_drops(state, frame);
        }
        // An empty queue takes any frame, so one frame larger than the byte limit cannot
        // wedge a client (the limit is kept above the largest frame anyway).
        let over_bytes = state.bytes > 0 && state.bytes + frame.len() > self.max_bytes;
        if state.frames.len() >= self.max_frames || over_bytes {
            return Err(frame);
        }
        state.bytes += frame.len();
        state.frames.push(frame);
        Ok(state.frames.len() == 1 && !state.owned)
    }

    /// [`enqueue`](Queue::enqueue) after drops: the notice and the frame together, or
    /// neither (the frame is then one more dropped). They need room for both, except in an
    /// empty queue, which takes both whatever the limits, so that a queue of one frame still
    /// delivers after a drop.
    #[cold]
    fn enqueue_after_drops(&self, state: &mut State, frame: Bytes) -> Result<bool, Bytes> {
        let both = NOTICE_LEN + frame.len();
        let room_for_frames = state.frames.is_empty() || state.frames.len() + 2 <= self.max_frames;
        let room_for_bytes = state.bytes == 0 || state.bytes + both <= self.max_bytes;
        if !(room_for_frames && room_for_bytes) {
            return Err(frame);
        }
        let idle = state.frames.is_empty() && !state.owned;
        state
            .frames
            .push(dropped_notice(std::mem::take(&mut state.dropped)));
        state.frames.push(frame);
        state.bytes += both;
        Ok(idle)
    }

    /// Puts `frame` in the place of the older value of `sender`'s `key`, if it is still
    /// queued, untouched, and the bytes allow; whether it did.
    fn replace(&self, state: &mut State, frame: Bytes, sender: Uuid, key: u32) -> bool {
        let Some(seq) = state
            .keyed
            .as_ref()
            .and_then(|index| index.get(sender, key))
        else {
            return false;
        };
        // Below the front: taken by the writer or written.
        let Some(at) = seq
            .checked_sub(state.front)
            .and_then(|at| usize::try_from(at).ok())
        else {
            return false;
        };
        // Partly written: the rest of it must follow what went out.
        if at == 0 && state.head_sent > 0 {
            return false;
        }
        let Some(old) = state.frames.get_mut(at) else {
            return false;
        };
        let bytes = state.bytes.saturating_sub(old.len()) + frame.len();
        if frame.len() > old.len() && bytes > self.max_bytes {
            return false;
        }
        state.bytes = bytes;
        *old = frame;
        true
    }

    fn shrink(&self) {
        let mut state = lock(&self.state);
        if state.frames.is_empty() {
            state.frames = Vec::new();
            state.keyed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_limit_refuses_what_would_overflow_it_and_frees_what_was_written() {
        let (tx, mut rx) = outbox(100, 10);
        assert_eq!(tx.try_send(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"1234")), Ok(()));
        let batch = rx.take_now();
        // Taken but not yet written: still counted.
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Err(Refused::Full));
        rx.written(batch.iter().map(Bytes::len).sum());
        // Freed: the frame fits, with the notice of the one refused.
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Ok(()));
        assert_eq!(tx.try_send(Bytes::from_static(b"12")), Err(Refused::Full));
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
