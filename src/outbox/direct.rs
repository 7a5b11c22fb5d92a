//! Direct writes: the task that queued frames for a client writes them to its socket itself,
//! without waking the client's writer task (see the [module's doc](super)).
//!
//! A direct write is one non-blocking vectored write of the whole queue, made under the
//! queue's lock (so no other write can come between, and nothing is copied). Whatever the
//! socket does not take at once goes to the writer task, which then owns the socket until
//! the queue is empty again.

use super::{Outbox, Queue, Refused};
use crate::sync::lock;
use bytes::Bytes;
use std::io::{self, IoSlice};
use uuid::Uuid;

/// Longest queue a direct write takes on: a longer one is a burst, which the writer task
/// batches into fewer, larger writes (and tokio passes at most 64 slices per call anyway).
const MAX_DIRECT_FRAMES: usize = 64;

/// A socket that other tasks than its writer can write without waiting.
pub(crate) trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Writes what the socket takes at once; `WouldBlock` if it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl Outbox {
    /// Writes the queued frames now if nobody else is writing them: at once if the socket
    /// takes them all; otherwise the writer task is woken to write the rest.
    pub(crate) fn flush(&self) {
        flush(&self.queue, true);
    }

    /// Leaves the queued frames to the writer task, waking it if nobody else is writing
    /// them: for a relay that is behind, where the writer, by the time it runs, takes what
    /// several publishers queued meanwhile in one write.
    pub(crate) fn wake_writer(&self) {
        flush(&self.queue, false);
    }
}

fn flush(queue: &Queue, write_now: bool) {
    let mut guard = lock(&queue.state);
    let state = &mut *guard;
    if state.owned || state.closed || state.frames.is_empty() {
        return;
    }
    let direct = match &state.direct {
        Some(direct) if write_now && state.frames.len() <= MAX_DIRECT_FRAMES => direct,
        _ => {
            drop(guard);
            queue.ready.notify_one();
            return;
        }
    };
    let frames = &state.frames;
    let mut slices = [IoSlice::new(&[]); MAX_DIRECT_FRAMES];
    slices[0] = IoSlice::new(&frames[0][state.head_sent..]);
    for (slot, frame) in slices[1..].iter_mut().zip(&frames[1..]) {
        *slot = IoSlice::new(frame);
    }
    let queued: usize = frames.iter().map(Bytes::len).sum();
    // An error is nothing taken: `WouldBlock`, or a broken socket, which the writer and the
    // reader will find too.
    let written = direct
        .try_write_vectored(&slices[..frames.len()])
        .unwrap_or_default();
    let head_sent = state.head_sent;
    if head_sent + written == queued {
        let whole = frames.len();
        state.bytes = state.bytes.saturating_sub(queued);
        state.frames.clear();
        state.advanced(whole);
        state.head_sent = 0;
        // Counted once the lock is released: a metrics recorder is the application's code.
        drop(guard);
        queue.counters.sent(whole as u64, queued as u64);
        return;
    }
    // Cut short: drop the frames written whole, remember where the next one stopped, and
    // hand the rest to the writer task.
    let mut done = head_sent + written;
    let mut whole = 0;
    let mut whole_bytes = 0;
    for frame in &state.frames {
        if done < frame.len() {
            break;
        }
        done -= frame.len();
        whole += 1;
        whole_bytes += frame.len();
    }
    state.frames.drain(..whole);
    state.advanced(whole);
    state.head_sent = done;
    state.bytes = state.bytes.saturating_sub(whole_bytes);
    drop(guard);
    queue.counters.sent(whole as u64, whole_bytes as u64);
    queue.ready.notify_one();
}

/// The queues a task filled during its current batch and must flush at its end: each
/// client's frames of a whole batch then leave in one write.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(super) queues: Vec<Outbox>,
}

impl Pending {
    /// Queues `frame` on `outbox`, to be written by [`flush`](Pending::flush).
    pub(crate) fn push(&mut self, outbox: &Outbox, frame: Bytes) -> Result<(), Refused> {
        if outbox.push(frame)? {
            self.queues.push(outbox.clone());
        }
        Ok(())
    }

    /// Queues `frame`, the latest value of `sender`'s `key`, on `outbox` (replacing an older
    /// value if the queue is full: [`Outbox::push_keyed`]), to be written by
    /// [`flush`](Pending::flush).
    pub(crate) fn push_keyed(
        &mut self,
        outbox: &Outbox,
        frame: Bytes,
        sender: Uuid,
        key: u32,
    ) -> Result<(), Refused> {
        if outbox.push_keyed(frame, sender, key)? {
            self.queues.push(outbox.clone());
        }
        Ok(())
    }

    /// Writes every queue filled since the last flush.
    pub(crate) fn flush(&mut self) {
        for outbox in self.queues.drain(..) {
            outbox.flush();
        }
    }

    /// Leaves every queue filled since the last flush to its writer task (see
    /// [`Outbox::wake_writer`]).
    pub(crate) fn wake_writers(&mut self) {
        for outbox in self.queues.drain(..) {
            outbox.wake_writer();
        }
    }

    /// No queue waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Lets go of the list's allocation, for a task gone quiet.
    pub(crate) fn release(&mut self) {
        if self.queues.is_empty() {
            self.queues = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{outbox_to, Inbox};
    use super::*;
    use crate::stats::Counters;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A socket that records each write call and takes at most `room` bytes in all.
    #[derive(Debug)]
    struct Sink {
        writes: Mutex<Vec<Vec<u8>>>,
        room: Mutex<usize>,
    }

    impl Sink {
        fn new(room: usize) -> Arc<Sink> {
            Arc::new(Sink {
                writes: Mutex::default(),
                room: Mutex::new(room),
            })
        }
        fn writes(&self) -> Vec<Vec<u8>> {
            lock(&self.writes).clone()
        }
    }

    impl DirectWrite for Sink {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = lock(&self.room);
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(*room);
            *room -= n;
            lock(&self.writes).push(all[..n].to_vec());
            Ok(n)
        }
    }

    fn queue(sink: &Arc<Sink>) -> (Outbox, Inbox, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let direct: Arc<dyn DirectWrite> = Arc::clone(sink) as Arc<dyn DirectWrite>;
        let (tx, rx) = outbox_to(1024, 1 << 20, Some(direct), Arc::clone(&counters));
        (tx, rx, counters)
    }

    /// Whether the writer task was woken (a stored permit completes at once).
    async fn writer_woken(rx: &Inbox) -> bool {
        tokio::time::timeout(Duration::from_millis(1), rx.queue.ready.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_batch_leaves_in_one_write_without_waking_the_writer() {
        let sink = Sink::new(usize::MAX);
        let (tx, rx, counters) = queue(&sink);
        let mut pending = Pending::default();
        for frame in [&b"one"[..], b"two", b"three"] {
            pending.push(&tx, Bytes::copy_from_slice(frame)).unwrap();
        }
        assert!(
            sink.writes().is_empty(),
            "nothing is written before the flush"
        );
        pending.flush();
        assert_eq!(sink.writes(), vec![b"onetwothree".to_vec()]);
        assert!(rx.is_empty());
        assert!(!writer_woken(&rx).await);
        assert_eq!(counters.snapshot(0, 0).frames_out, 3);
        // Written: the bytes no longer count against the limit.
        assert_eq!(lock(&rx.queue.state).bytes, 0);
    }

    #[tokio::test]
    async fn a_write_cut_short_goes_to_the_writer_which_resumes_at_the_byte() {
        let sink = Sink::new(5);
        let (tx, mut rx, _) = queue(&sink);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        tx.try_send(Bytes::from_static(b"defgh")).unwrap();
        // "abc" went at once; then 2 of "defgh" filled the socket.
        assert_eq!(sink.writes(), vec![b"abc".to_vec(), b"de".to_vec()]);
        assert!(writer_woken(&rx).await);
        // Queued behind the cut: only queued, never written ahead of the rest.
        tx.try_send(Bytes::from_static(b"ij")).unwrap();
        let mut batch = Vec::new();
        let sent = rx.take(&mut batch).await;
        assert_eq!(sent, 2);
        assert_eq!(batch, vec![&b"defgh"[..], b"ij"]);
        // The writer owns the socket now: a flush writes nothing.
        *lock(&sink.room) = usize::MAX;
        tx.try_send(Bytes::from_static(b"k")).unwrap();
        assert_eq!(sink.writes().len(), 2);
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_leaves_everything_to_the_writer() {
        let sink = Sink::new(0);
        let (tx, mut rx, _) = queue(&sink);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        assert!(writer_woken(&rx).await);
        let mut batch = Vec::new();
        assert_eq!(rx.take(&mut batch).await, 0);
        assert_eq!(batch, vec![&b"abc"[..]]);
    }

    #[tokio::test]
    async fn a_relay_that_is_behind_leaves_the_writing_to_the_writer_task() {
        let sink = Sink::new(usize::MAX);
        let (tx, mut rx, _) = queue(&sink);
        let mut pending = Pending::default();
        pending.push(&tx, Bytes::from_static(b"x")).unwrap();
        pending.wake_writers();
        assert!(sink.writes().is_empty());
        assert!(writer_woken(&rx).await);
        let mut batch = Vec::new();
        rx.take(&mut batch).await;
        assert_eq!(batch, vec![&b"x"[..]]);
    }

    #[tokio::test]
    async fn a_long_queue_is_left_to_the_writer_task_batching() {
        let sink = Sink::new(usize::MAX);
        let (tx, rx, _) = queue(&sink);
        let mut pending = Pending::default();
        for _ in 0..=MAX_DIRECT_FRAMES {
            pending.push(&tx, Bytes::from_static(b"x")).unwrap();
        }
        pending.flush();
        assert!(sink.writes().is_empty());
        assert!(writer_woken(&rx).await);
    }

    #[tokio::test]
    async fn after_drops_the_next_direct_write_begins_with_the_notice() {
        let sink = Sink::new(usize::MAX);
        let direct: Arc<dyn DirectWrite> = Arc::clone(&sink) as Arc<dyn DirectWrite>;
        let (tx, _rx) = outbox_to(2, 1 << 20, Some(direct), Arc::default());
        let mut pending = Pending::default();
        pending.push(&tx, Bytes::from_static(b"a")).unwrap();
        pending.push(&tx, Bytes::from_static(b"b")).unwrap();
        assert_eq!(
            pending.push(&tx, Bytes::from_static(b"c")),
            Err(Refused::Full)
        );
        pending.flush();
        pending.push(&tx, Bytes::from_static(b"d")).unwrap();
        pending.flush();
        let mut second = super::super::notice::dropped_notice(1).to_vec();
        second.push(b'd');
        assert_eq!(sink.writes(), vec![b"ab".to_vec(), second]);
    }

    /// A frame a direct write began must be finished as it began: a newer value of its key
    /// does not replace it.
    #[tokio::test]
    async fn a_keyed_frame_partly_written_is_not_replaced() {
        let sink = Sink::new(3);
        let direct: Arc<dyn DirectWrite> = Arc::clone(&sink) as Arc<dyn DirectWrite>;
        let (tx, mut rx) = outbox_to(1, 1 << 20, Some(direct), Arc::default());
        let mut pending = Pending::default();
        let sender = Uuid::from_u128(1);
        pending
            .push_keyed(&tx, Bytes::from_static(b"abcdef"), sender, 7)
            .unwrap();
        pending.flush();
        assert_eq!(sink.writes(), vec![b"abc".to_vec()]);
        assert_eq!(
            pending.push_keyed(&tx, Bytes::from_static(b"ABCDEF"), sender, 7),
            Err(Refused::Full)
        );
        let mut batch = Vec::new();
        assert_eq!(rx.take(&mut batch).await, 3);
        assert_eq!(batch, vec![&b"abcdef"[..]]);
    }

    /// A direct write cut short drains frames from the front without emptying the queue:
    /// the index must then tell the frames gone from those still there.
    #[tokio::test]
    async fn after_a_direct_write_the_index_finds_what_is_left_and_only_that() {
        let sink = Sink::new(5);
        let direct: Arc<dyn DirectWrite> = Arc::clone(&sink) as Arc<dyn DirectWrite>;
        let (tx, mut rx) = outbox_to(3, 1 << 20, Some(direct), Arc::default());
        let mut pending = Pending::default();
        let sender = Uuid::from_u128(1);
        for (frame, key) in [(&b"abc"[..], 1), (b"de", 2), (b"fgh", 3)] {
            pending
                .push_keyed(&tx, Bytes::from_static(frame), sender, key)
                .unwrap();
        }
        pending.flush();
        // "abc" and "de" went whole; "fgh" is left, untouched.
        assert_eq!(sink.writes(), vec![b"abcde".to_vec()]);
        pending.push(&tx, Bytes::from_static(b"x")).unwrap();
        pending.push(&tx, Bytes::from_static(b"y")).unwrap();
        // Key 1's frame is gone: nothing to replace, whatever sits where it was.
        assert_eq!(
            pending.push_keyed(&tx, Bytes::from_static(b"ABC"), sender, 1),
            Err(Refused::Full)
        );
        pending
            .push_keyed(&tx, Bytes::from_static(b"FGH"), sender, 3)
            .unwrap();
        let mut batch = Vec::new();
        assert_eq!(rx.take(&mut batch).await, 0);
        assert_eq!(batch, vec![&b"FGH"[..], b"x", b"y"]);
    }

    #[tokio::test]
    async fn a_closed_queue_is_never_written_directly() {
        let sink = Sink::new(usize::MAX);
        let (tx, mut rx, _) = queue(&sink);
        let mut pending = Pending::default();
        pending.push(&tx, Bytes::from_static(b"x")).unwrap();
        let mut rest = Vec::new();
        assert_eq!(rx.close_into(&mut rest), 0);
        pending.flush();
        assert!(sink.writes().is_empty());
        assert_eq!(rest, vec![&b"x"[..]]);
    }
}
