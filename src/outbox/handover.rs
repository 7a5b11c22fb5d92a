//! Handing a client's queue from one connection to the next, for a seat held across a drop
//! (`resume_window`): [`detach`](Outbox::detach) when the old connection goes,
//! [`settle`](Outbox::settle) once its writer is gone, [`attach`](Outbox::attach) on the new
//! connection, or [`close`](Outbox::close) when the seat ends instead.
//!
//! Rooms keep the same [`Outbox`] throughout, so frames for the client go on queuing within
//! the budgets while nobody writes them, and what the budgets refuse is counted: the
//! `missed` of the `Resumed` frame that closes the queued frames on the new connection.

use super::{DirectWrite, Inbox, Outbox};
use crate::protocol::{encode, ServerFrame};
use crate::sync::lock;
use bytes::Bytes;
use std::sync::Arc;

impl Outbox {
    /// The connection is gone but the seat is held: nobody writes the queue from now on (the
    /// old writer's `take` waits, direct writes stop), and a frame a direct write cut short
    /// is sent again whole on the next connection, which is a new stream.
    pub(crate) fn detach(&self) {
        let mut state = lock(&self.queue.state);
        state.held = true;
        state.owned = true;
        state.direct = None;
        state.head_sent = 0;
        // Refusals before the hold that no `Dropped` notice told yet roll into `missed`: the
        // client never learnt of them.
    }

    /// The old writer has ended (or was aborted): the batch it took and did not finish is
    /// lost with its socket, so it counts as missed, and the byte count is made exact again
    /// from what is queued (an aborted batch never reported its bytes written).
    pub(crate) fn settle(&self) {
        let mut state = lock(&self.queue.state);
        let lost = std::mem::take(&mut state.in_flight);
        state.dropped = state.dropped.saturating_add(lost);
        state.bytes = state.frames.iter().map(Bytes::len).sum();
    }

    /// The seat resumes on a new connection, whose `Welcome` is already written: the frames
    /// queued meanwhile, then `Resumed { missed }` (queued past the budgets, since it must
    /// come after all of them), go to `direct` or to the new writer task, which takes them
    /// from the returned [`Inbox`]. Returns it with `missed`.
    pub(crate) fn attach(&self, direct: Option<Arc<dyn DirectWrite>>) -> (Inbox, u32) {
        let missed = {
            let mut state = lock(&self.queue.state);
            let missed = std::mem::take(&mut state.dropped);
            let resumed = encode(&ServerFrame::Resumed { missed });
            state.bytes += resumed.len();
            state.frames.push(resumed);
            state.held = false;
            state.owned = false;
            state.direct = direct;
            missed
        };
        // Written now if the socket takes it, else left to the new writer task.
        self.flush();
        let inbox = Inbox {
            queue: Arc::clone(&self.queue),
        };
        (inbox, missed)
    }

    /// The held seat moves to another relay (after [`settle`](Outbox::settle)): the queue
    /// refuses frames from now on, and gives up those it held, whole, one after the other,
    /// with the count of those refused, for the relay that resumes the seat. Past
    /// `max_bytes` it gives up none, and counts them all as missed: one message on the
    /// broker carries them, and Redis cuts off a subscriber sent too much at once.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn hand_off(&self, max_bytes: usize) -> (Bytes, u32) {
        let (frames, missed) = {
            let mut state = lock(&self.queue.state);
            state.closed = true;
            state.direct = None;
            state.bytes = 0;
            let n = state.frames.len();
            state.advanced(n);
            let frames = std::mem::take(&mut state.frames);
            (frames, std::mem::take(&mut state.dropped))
        };
        let total: usize = frames.iter().map(Bytes::len).sum();
        if total > max_bytes {
            let lost = u32::try_from(frames.len()).unwrap_or(u32::MAX);
            return (Bytes::new(), missed.saturating_add(lost));
        }
        let mut out = bytes::BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
        for frame in &frames {
            out.extend_from_slice(frame);
        }
        (out.freeze(), missed)
    }

    /// A new queue takes over a seat another relay handed over, before its writer starts:
    /// the frames queued there (one entry), then `Resumed { missed }`, past the budgets,
    /// as [`attach`](Outbox::attach) queues them (the old relay's budgets bounded them).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn adopt(&self, frames: Bytes, missed: u32) {
        {
            let mut state = lock(&self.queue.state);
            let resumed = encode(&ServerFrame::Resumed { missed });
            state.bytes += frames.len() + resumed.len();
            if !frames.is_empty() {
                state.frames.push(frames);
            }
            state.frames.push(resumed);
        }
        self.flush();
    }

    /// The held seat ends: the queue refuses frames and lets go of those it held.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        state.direct = None;
        state.frames = Vec::new();
        state.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{outbox, Refused};
    use super::*;

    #[tokio::test]
    async fn a_held_queue_keeps_its_frames_counts_refusals_and_ends_with_resumed() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        let mut batch = Vec::new();
        rx.take(&mut batch).await;
        // The writer took "a", then its socket died under it.
        tx.detach();
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        tx.try_send(Bytes::from_static(b"c")).unwrap();
        assert_eq!(tx.try_send(Bytes::from_static(b"d")), Err(Refused::Full));
        // The old writer cannot take what the next connection is owed.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(10), {
            let mut more = Vec::new();
            async move { rx.take(&mut more).await }
        })
        .await;
        assert!(waited.is_err());
        tx.settle();
        let (mut inbox, missed) = tx.attach(None);
        // "a" lost in flight, "d" refused.
        assert_eq!(missed, 2);
        let mut batch = Vec::new();
        inbox.take(&mut batch).await;
        let resumed = encode(&ServerFrame::Resumed { missed: 2 });
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"b"), Bytes::from_static(b"c"), resumed]
        );
    }

    #[tokio::test]
    async fn a_handed_off_queue_gives_its_frames_whole_and_the_next_queue_ends_them_with_resumed() {
        let (tx, _rx) = outbox(2, 1 << 20);
        tx.detach();
        tx.try_send(Bytes::from_static(b"ab")).unwrap();
        tx.try_send(Bytes::from_static(b"c")).unwrap();
        assert_eq!(tx.try_send(Bytes::from_static(b"d")), Err(Refused::Full));
        tx.settle();
        let (frames, missed) = tx.hand_off(3);
        assert_eq!((&frames[..], missed), (&b"abc"[..], 1));
        assert_eq!(tx.try_send(Bytes::from_static(b"e")), Err(Refused::Closed));

        let (next, mut inbox) = outbox(2, 1 << 20);
        next.adopt(frames, missed);
        let mut batch = Vec::new();
        inbox.take(&mut batch).await;
        let resumed = encode(&ServerFrame::Resumed { missed: 1 });
        assert_eq!(batch, vec![Bytes::from_static(b"abc"), resumed]);
    }

    #[test]
    fn a_queue_too_large_to_hand_off_counts_its_frames_as_missed() {
        let (tx, _rx) = outbox(4, 1 << 20);
        tx.detach();
        tx.try_send(Bytes::from_static(b"ab")).unwrap();
        tx.try_send(Bytes::from_static(b"cd")).unwrap();
        let (frames, missed) = tx.hand_off(3);
        assert_eq!((frames.len(), missed), (0, 2));
    }

    #[test]
    fn a_closed_held_queue_refuses_and_frees() {
        let (tx, _rx) = outbox(2, 1 << 20);
        tx.detach();
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        tx.close();
        assert_eq!(tx.depth(), 0);
        assert_eq!(tx.try_send(Bytes::from_static(b"c")), Err(Refused::Closed));
    }
}
