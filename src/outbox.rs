//! A client's write queue: bounded in frames (`channel_capacity`) and in bytes
//! (`max_queued_bytes`), so that a client that stops reading can pin only a known amount of
//! memory. The [`Outbox`] is the sending end (held by the client's session and by every room
//! it is in), the [`Inbox`] the writer task's end.
//!
//! Bytes count from the moment a frame is queued until the writer has written it, so the
//! queue and the batch being written together stay within the byte limit. A frame shared by
//! many recipients counts once per recipient: an over-estimate, never an under-estimate.

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds `channel_capacity` frames or `max_queued_bytes` bytes: the frame is
    /// dropped for this client (backpressure).
    Full,
    /// The client is disconnecting: nothing to report.
    Closed,
}

#[derive(Debug)]
struct Budget {
    queued: AtomicUsize,
    limit: usize,
}

/// The sending end of a client's write queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    frames: mpsc::Sender<Bytes>,
    budget: Arc<Budget>,
}

/// The writer task's end of a client's write queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    frames: mpsc::Receiver<Bytes>,
    budget: Arc<Budget>,
}

/// A queue of at most `frames` frames and `bytes` bytes.
pub(crate) fn outbox(frames: usize, bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(frames);
    let budget = Arc::new(Budget {
        queued: AtomicUsize::new(0),
        limit: bytes,
    });
    (
        Outbox {
            frames: tx,
            budget: Arc::clone(&budget),
        },
        Inbox { frames: rx, budget },
    )
}

impl Outbox {
    /// Queues `frame` without waiting.
    pub(crate) fn try_send(&self, frame: Bytes) -> Result<(), Refused> {
        let len = frame.len();
        let before = self.budget.queued.fetch_add(len, Relaxed);
        // An empty queue takes any frame, so one frame larger than the limit cannot wedge a
        // client (the limit is kept above the largest frame anyway).
        if before > 0 && before + len > self.budget.limit {
            self.budget.queued.fetch_sub(len, Relaxed);
            return Err(Refused::Full);
        }
        match self.frames.try_send(frame) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.budget.queued.fetch_sub(len, Relaxed);
                Err(match err {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Closed(_) => Refused::Closed,
                })
            }
        }
    }

    /// Frames waiting to be written.
    pub(crate) fn depth(&self) -> usize {
        self.frames.max_capacity() - self.frames.capacity()
    }
}

impl Inbox {
    /// Waits for frames and moves up to `limit` of them into `batch`; 0 once every
    /// [`Outbox`] is gone.
    pub(crate) async fn recv_many(&mut self, batch: &mut Vec<Bytes>, limit: usize) -> usize {
        self.frames.recv_many(batch, limit).await
    }

    /// Stops accepting frames; those already queued can still be taken.
    pub(crate) fn close(&mut self) {
        self.frames.close();
    }

    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        self.frames.try_recv().ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn max_capacity(&self) -> usize {
        self.frames.max_capacity()
    }

    /// `bytes` taken from the queue were written (or given up): they no longer count.
    pub(crate) fn written(&self, bytes: usize) {
        self.budget.queued.fetch_sub(bytes, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_limit_refuses_what_would_overflow_it_and_frees_what_was_written() {
        let (tx, mut rx) = outbox(100, 10);
        assert_eq!(tx.try_send(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(
            tx.try_send(Bytes::from_static(b"12345")),
            Err(Refused::Full)
        );
        assert_eq!(tx.try_send(Bytes::from_static(b"1234")), Ok(()));
        let first = rx.try_recv().unwrap();
        // Taken but not yet written: still counted.
        assert_eq!(tx.try_send(Bytes::from_static(b"1")), Err(Refused::Full));
        rx.written(first.len());
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
    fn a_closed_queue_refuses_without_counting() {
        let (tx, rx) = outbox(2, 10);
        drop(rx);
        assert_eq!(
            tx.try_send(Bytes::from_static(b"abc")),
            Err(Refused::Closed)
        );
        assert_eq!(tx.budget.queued.load(Relaxed), 0);
    }
}
