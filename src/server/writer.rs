//! The writer task: drains one client's bounded write queue into its socket in batches.
//!
//! One write syscall per frame caps a relay at a few hundred thousand frames per second per
//! core; instead every wake-up takes all queued frames (one swap) and writes them with as
//! few calls as it can:
//! - a lone frame is written straight from its shared `Bytes`: no copy, one call;
//! - small frames are copied into one buffer and written together;
//! - large frames are written from their own `Bytes` with vectored writes, without a copy.

use super::Shared;
use crate::disconnect::DisconnectReason;
use crate::outbox::Inbox;
use crate::protocol::HEADER_LEN;
use crate::session::Session;
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

/// A batch is the whole queue, at most `channel_capacity` frames, so a client whose socket is
/// stuck holds at most twice that many frames (a full queue plus the batch being written),
/// and never more bytes than `max_queued_bytes` (see `outbox.rs`).
/// Frames at least this long are not copied: copying costs more than an extra iovec.
const LARGE_FRAME: usize = 4 * 1024;
/// The copy buffer is written out once it holds this much.
const FLUSH_AT: usize = 64 * 1024;
/// The copy buffer's largest size: flushed at [`FLUSH_AT`], after at most one more small frame.
pub(crate) const COPY_BUFFER_MAX: usize = FLUSH_AT + LARGE_FRAME;
/// Large frames per vectored write (tokio passes at most 64 slices per call).
const MAX_PIECES: usize = 64;
/// How long the last frames and the farewell may take to reach a client that does not read:
/// past this the connection is closed without them.
pub(crate) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection's writer ends, as its driver decides.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The seat ends: whatever is still queued, then this frame, then a FIN.
    Close(Bytes),
    /// The seat is held for a resume: the queued frames stay for the next connection, so
    /// only the farewell (if any) goes, then a FIN.
    Hold(Option<Bytes>),
}

/// Writes queued frames until the queue closes or `farewell` resolves. On farewell it writes
/// whatever is still queued (unless the seat is held, see [`Ending`]), then the farewell
/// frame, then shuts the socket's write side. A dropped sender is a farewell without a frame.
///
/// A batch that takes longer than `write_timeout` to write means the client stopped reading:
/// the writer ends the session as a slow consumer, drops the frames still queued, and within
/// the farewell's patience finishes the frame under way and sends the farewell
/// (`Disconnect(SlowConsumer)`), then shuts the socket's write side.
pub(crate) async fn write_loop<W>(
    io: W,
    queue: Inbox,
    farewell: oneshot::Receiver<Ending>,
    shared: Arc<Shared>,
    session: Arc<Session>,
) where
    W: AsyncWrite + Unpin,
{
    let mut w = Writer {
        io,
        queue,
        farewell,
        shared,
        session,
        batch: Vec::new(),
        out: Batcher::default(),
    };
    loop {
        // Waiting is all an idle connection's writer does, so only the waiting is inline in
        // this future: the writing is boxed while it lasts (direct writes leave this task
        // little of it), and every connection's writer stays a few hundred bytes.
        tokio::select! {
            biased;
            last = &mut w.farewell => {
                // The ending moves into the boxed future: nothing of it waits in this one.
                Box::pin(w.end(last.ok())).await;
                return;
            }
            head_sent = w.queue.take(&mut w.batch) => {
                if !Box::pin(w.write_taken(head_sent)).await {
                    return;
                }
            }
        }
    }
}

/// The writer task's state.
struct Writer<W> {
    io: W,
    queue: Inbox,
    farewell: oneshot::Receiver<Ending>,
    shared: Arc<Shared>,
    session: Arc<Session>,
    batch: Vec<Bytes>,
    out: Batcher,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// The connection ends: whatever is still queued, then the farewell, then a FIN.
    async fn say_goodbye(&mut self, last: Option<Bytes>) {
        let head_sent = self.queue.close_into(&mut self.batch);
        self.out.resume(&mut self.batch, head_sent);
        self.batch.extend(last);
        let finish = async {
            self.out.write(&mut self.io, &mut self.batch).await?;
            self.io.shutdown().await
        };
        self.shared.with_patience(finish).await;
    }

    /// The driver decided how the connection ends (`None`: its sender was dropped, a
    /// farewell without a frame).
    async fn end(&mut self, ending: Option<Ending>) {
        match ending {
            Some(Ending::Hold(last)) => self.hand_over(last).await,
            Some(Ending::Close(last)) => self.say_goodbye(Some(last)).await,
            None => self.say_goodbye(None).await,
        }
    }

    /// The seat is held: the queue is left as it is for the next connection (its frames
    /// are not this socket's any more), and only the farewell goes, then a FIN.
    async fn hand_over(&mut self, last: Option<Bytes>) {
        let io = &mut self.io;
        let finish = async {
            if let Some(last) = last {
                io.write_all(&last).await?;
            }
            io.shutdown().await
        };
        self.shared.with_patience(finish).await;
    }

    /// Writes the batch just taken; `false`: the writer is done (the socket broke, or the
    /// client stopped reading and was told so).
    async fn write_taken(&mut self, head_sent: usize) -> bool {
        let n = self.batch.len();
        let bytes: usize = self.batch.iter().map(Bytes::len).sum();
        self.out.resume(&mut self.batch, head_sent);
        let written = AtomicU64::new(0);
        let mut counted = Counted {
            io: &mut self.io,
            written: &written,
        };
        let write = self.out.write(&mut counted, &mut self.batch);
        match until_stalled(write, &written, self.shared.config.write_timeout).await {
            Ok(Ok(())) => self.queue.written(bytes),
            Ok(Err(err)) => {
                // The reader side sees the same broken socket and ends the connection.
                tracing::debug!(error = %err, "write failed");
                return false;
            }
            Err(_) => {
                self.give_up().await;
                return false;
            }
        }
        self.shared.counters.sent(n as u64, bytes as u64);
        if n == 1 && self.queue.is_empty() {
            // A lone frame (a ping, say) with nothing behind it: the client is quiet, so its
            // buffers go back to the allocator until the next burst.
            self.out.release();
            self.batch = Vec::new();
            self.queue.shrink();
        }
        true
    }

    /// The client stopped reading for a whole `write_timeout`: a slow consumer.
    async fn give_up(&mut self) {
        tracing::debug!("write deadline passed: slow consumer");
        // The queued frames are given up, but not the frame under way: cut short, it would
        // leave the client a stream it cannot parse, and the reason unreadable behind it.
        let rest = self.out.unfinished_frame();
        self.out.release();
        self.session.end_with(DisconnectReason::SlowConsumer);
        // The driver answers the end with its farewell, `Disconnect(SlowConsumer)`; it (or
        // its dropped sender) comes at once.
        let last = match (&mut self.farewell).await {
            // Held: the queued frames wait for the next connection (the batch given up here
            // counts as missed, see `Outbox::settle`).
            Ok(Ending::Hold(last)) => last,
            ending => {
                // The writer owned the socket: nothing was written behind its back.
                let _ = self.queue.close_into(&mut self.batch);
                self.batch.clear();
                match ending {
                    Ok(Ending::Close(last)) => Some(last),
                    _ => None,
                }
            }
        };
        let io = &mut self.io;
        let finish = async {
            io.write_all(&rest).await?;
            if let Some(last) = last {
                io.write_all(&last).await?;
            }
            io.shutdown().await
        };
        // A client that still does not read within the patience is closed without its
        // reason: nothing more can be done for it.
        self.shared.with_patience(finish).await;
    }
}

/// Runs `write` until it ends, or until a whole `window` passes in which `written` did not
/// move: `Err(())` then. A client that reads slowly but steadily is never cut off; one that
/// stopped reading is, between one and two windows after the last byte it took. (The
/// window's timer is armed only if the write does not finish at once.)
async fn until_stalled<F: Future>(
    write: F,
    written: &AtomicU64,
    window: Duration,
) -> Result<F::Output, ()> {
    tokio::pin!(write);
    let mut seen = 0;
    loop {
        match tokio::time::timeout(window, &mut write).await {
            Ok(done) => return Ok(done),
            Err(_) => {
                let now = written.load(Ordering::Relaxed);
                if now == seen {
                    return Err(());
                }
                seen = now;
            }
        }
    }
}

/// A socket that counts the bytes it takes, for [`until_stalled`] to watch.
struct Counted<'a, W> {
    io: &'a mut W,
    written: &'a AtomicU64,
}

impl<W> Counted<'_, W> {
    fn count(&self, done: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = done {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut *self.io).poll_write(cx, buf);
        self.count(&done);
        done
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut *self.io).poll_write_vectored(cx, bufs);
        self.count(&done);
        done
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

/// Reusable buffers for turning a batch of frames into few write calls.
///
/// What has been written is kept here, not in a write future, so that a write cut short by
/// the deadline leaves behind exactly where it stopped: the writer can then finish the frame
/// under way ([`unfinished_frame`](Batcher::unfinished_frame)) before its farewell.
#[derive(Default)]
struct Batcher {
    /// Small frames, copied back to back.
    copied: Vec<u8>,
    /// How much of `copied` has been written.
    copied_sent: usize,
    /// Large frames waiting for one vectored write; each starts a frame.
    pieces: VecDeque<Bytes>,
    /// How much of the front piece has been written.
    front_sent: usize,
    /// A batch's only frame, written from its shared buffer: no copy, and no allocation
    /// for a quiet connection's ping.
    lone: Bytes,
    /// How much of `lone` has been written.
    lone_sent: usize,
}

impl Batcher {
    /// The first frame of `batch` was already written up to `sent` (by a direct write cut
    /// short): the next [`write`](Batcher::write) starts with the rest of it.
    fn resume(&mut self, batch: &mut Vec<Bytes>, sent: usize) {
        if sent > 0 && !batch.is_empty() {
            self.lone = batch.remove(0);
            self.lone_sent = sent;
        }
    }

    /// Writes every frame of `batch` (and empties it), in order.
    async fn write<W>(&mut self, io: &mut W, batch: &mut Vec<Bytes>) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        self.finish_lone(io).await?;
        if let [frame] = batch.as_mut_slice() {
            self.lone = std::mem::take(frame);
            batch.clear();
            return self.finish_lone(io).await;
        }
        for frame in batch.drain(..) {
            if frame.len() >= LARGE_FRAME {
                self.flush_copied(io).await?;
                self.pieces.push_back(frame);
                if self.pieces.len() == MAX_PIECES {
                    self.flush_pieces(io).await?;
                }
            } else {
                self.flush_pieces(io).await?;
                self.copied.extend_from_slice(&frame);
                if self.copied.len() >= FLUSH_AT {
                    self.flush_copied(io).await?;
                }
            }
        }
        // At most one of the two holds anything: each push flushed the other.
        self.flush_copied(io).await?;
        self.flush_pieces(io).await
    }

    /// Writes the rest of `lone`, if any.
    async fn finish_lone<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        if self.lone.is_empty() {
            return Ok(());
        }
        while self.lone_sent < self.lone.len() {
            // One call at a time (cancel-safe), so that `lone_sent` is always exact.
            let n = io.write(&self.lone[self.lone_sent..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.lone_sent += n;
        }
        self.lone = Bytes::new();
        self.lone_sent = 0;
        Ok(())
    }

    async fn flush_copied<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        while self.copied_sent < self.copied.len() {
            // One call at a time (cancel-safe), so that `copied_sent` is always exact.
            let n = io.write(&self.copied[self.copied_sent..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.copied_sent += n;
        }
        self.copied.clear();
        self.copied_sent = 0;
        Ok(())
    }

    async fn flush_pieces<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        while let Some(front) = self.pieces.front() {
            let mut slices = [IoSlice::new(&[]); MAX_PIECES];
            slices[0] = IoSlice::new(&front[self.front_sent..]);
            let mut used = 1;
            for (slot, piece) in slices[1..].iter_mut().zip(self.pieces.iter().skip(1)) {
                *slot = IoSlice::new(piece);
                used += 1;
            }
            let n = io.write_vectored(&slices[..used]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.advance_pieces(n);
        }
        Ok(())
    }

    /// Marks `n` more bytes of the pieces as written, dropping the pieces that are done.
    fn advance_pieces(&mut self, mut n: usize) {
        while let Some(front) = self.pieces.front() {
            let left = front.len() - self.front_sent;
            if n < left {
                self.front_sent += n;
                return;
            }
            n -= left;
            self.pieces.pop_front();
            self.front_sent = 0;
        }
    }

    /// The rest of the frame whose first bytes were written when a write was cut short
    /// (empty if the cut fell between two frames), so that the client, should it read again,
    /// can still parse what follows.
    fn unfinished_frame(&self) -> Bytes {
        if self.lone_sent > 0 {
            return self.lone.slice(frame_rest(&self.lone, self.lone_sent));
        }
        if self.copied_sent > 0 {
            let rest = frame_rest(&self.copied, self.copied_sent);
            return Bytes::copy_from_slice(&self.copied[rest]);
        }
        match self.pieces.front() {
            Some(front) if self.front_sent > 0 => front.slice(frame_rest(front, self.front_sent)),
            _ => Bytes::new(),
        }
    }

    /// Releases a large copy buffer once the connection has nothing queued.
    fn release(&mut self) {
        *self = Self::default();
    }
}

/// In `frames` (whole frames back to back), the range from `sent` to the end of the frame
/// that `sent` falls in; empty if `sent` is a frame boundary.
fn frame_rest(frames: &[u8], sent: usize) -> std::ops::Range<usize> {
    let mut start = 0;
    while start < sent {
        let Some(header) = frames.get(start..start + HEADER_LEN) else {
            break;
        };
        let mut len = [0; HEADER_LEN];
        len.copy_from_slice(header);
        let end = start + HEADER_LEN + u32::from_be_bytes(len) as usize;
        if end > sent {
            return sent..end.min(frames.len());
        }
        start = end;
    }
    sent..sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Records every write call, vectored ones as one call.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_small_frames_go_out_in_one_write() {
        let mut io = Recorder::default();
        let mut batch: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 10])).collect();
        Batcher::default().write(&mut io, &mut batch).await.unwrap();
        assert_eq!(io.writes.len(), 1);
        assert_eq!(io.writes[0].len(), 1000);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn large_frames_go_out_in_one_vectored_write_in_order() {
        let mut io = Recorder::default();
        let frames: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 5000])).collect();
        let mut batch = frames.clone();
        batch.insert(5, Bytes::from_static(b"small"));
        Batcher::default().write(&mut io, &mut batch).await.unwrap();
        // Five large, one small (copied), five large: three calls.
        assert_eq!(io.writes.len(), 3);
        let mut expected = frames[..5].concat();
        expected.extend_from_slice(b"small");
        expected.extend_from_slice(&frames[5..].concat());
        assert_eq!(io.writes.concat(), expected);
    }

    #[tokio::test]
    async fn a_frame_begun_by_a_direct_write_is_finished_first_and_only_its_rest() {
        let mut io = Recorder::default();
        let mut batch = vec![Bytes::from_static(b"defgh"), Bytes::from_static(b"ij")];
        let mut out = Batcher::default();
        out.resume(&mut batch, 2);
        out.write(&mut io, &mut batch).await.unwrap();
        assert_eq!(io.writes.concat(), b"fghij");
    }

    fn session(outbox: crate::outbox::Outbox) -> Arc<Session> {
        let peer = "127.0.0.1:1".parse().unwrap();
        Arc::new(Session::new(uuid::Uuid::nil(), peer, None, outbox))
    }

    #[tokio::test]
    async fn the_farewell_follows_the_queued_frames() {
        let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
        let (bye_tx, bye_rx) = oneshot::channel();
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        bye_tx
            .send(Ending::Close(Bytes::from_static(b"bye")))
            .unwrap();
        let mut io = Recorder::default();
        let shared = Arc::new(Shared::new(Default::default(), None));
        write_loop(&mut io, rx, bye_rx, shared, session(tx)).await;
        assert_eq!(io.writes.concat(), b"abbye");
    }

    /// A socket that never takes a byte: a client that stopped reading, its buffers full.
    struct Stuck;

    impl AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    fn slow_shared() -> Arc<Shared> {
        let config = crate::server::config::Config {
            write_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        Arc::new(Shared::new(config, None))
    }

    /// Plays the driver's part: once the session ended, hands the writer its farewell.
    fn farewell_on_end(
        session: &Arc<Session>,
        bye: oneshot::Sender<Ending>,
        then: impl FnOnce() + Send + 'static,
    ) {
        let session = Arc::clone(session);
        tokio::spawn(async move {
            session.ended().await;
            then();
            let _ = bye.send(Ending::Close(Bytes::from_static(b"bye")));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_stuck_past_the_deadline_ends_the_session_as_a_slow_consumer() {
        let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
        let (bye_tx, bye_rx) = oneshot::channel();
        tx.try_send(Bytes::from_static(b"never written")).unwrap();
        let session = session(tx);
        farewell_on_end(&session, bye_tx, || {});
        let started = tokio::time::Instant::now();
        write_loop(Stuck, rx, bye_rx, slow_shared(), Arc::clone(&session)).await;
        // The deadline, then the farewell's patience: the socket never took a byte.
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10) + FAREWELL_TIMEOUT
        );
        assert_eq!(session.end_reason(), DisconnectReason::SlowConsumer);
    }

    /// A socket that takes `limit` bytes, then nothing until the limit is lifted.
    #[derive(Clone, Default)]
    struct Valve {
        taken: Arc<std::sync::Mutex<Vec<u8>>>,
        limit: Arc<std::sync::Mutex<(usize, Option<std::task::Waker>)>>,
    }

    impl Valve {
        fn new(limit: usize) -> Self {
            let valve = Self::default();
            valve.limit.lock().unwrap().0 = limit;
            valve
        }

        fn open(&self) {
            let mut limit = self.limit.lock().unwrap();
            limit.0 = usize::MAX;
            if let Some(waker) = limit.1.take() {
                waker.wake();
            }
        }
    }

    impl AsyncWrite for Valve {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let mut limit = self.limit.lock().unwrap();
            let mut taken = self.taken.lock().unwrap();
            let room = limit.0.saturating_sub(taken.len()).min(buf.len());
            if room == 0 {
                limit.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            taken.extend_from_slice(&buf[..room]);
            Poll::Ready(Ok(room))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame(fill: u8, len: usize) -> Bytes {
        crate::protocol::encode(&crate::protocol::ServerFrame::Error {
            message: &String::from_utf8(vec![fill; len]).unwrap(),
        })
    }

    /// Queues `frames`, lets the socket take `cut` bytes and stall past the deadline, then
    /// read again once the session ended: what it got in all.
    async fn stall_then_read_again(frames: &[Bytes], cut: usize) -> Vec<u8> {
        let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
        let (bye_tx, bye_rx) = oneshot::channel();
        for f in frames {
            tx.try_send(f.clone()).unwrap();
        }
        let valve = Valve::new(cut);
        let session = session(tx);
        let reopen = valve.clone();
        farewell_on_end(&session, bye_tx, move || reopen.open());
        let shared = slow_shared();
        write_loop(valve.clone(), rx, bye_rx, shared, Arc::clone(&session)).await;
        assert_eq!(session.end_reason(), DisconnectReason::SlowConsumer);
        let taken = valve.taken.lock().unwrap().clone();
        taken
    }

    /// A client stalls in the middle of a frame, and reads again after the deadline: it gets
    /// the rest of that frame and the farewell, never a cut frame; what was queued behind is
    /// given up.
    #[tokio::test(start_paused = true)]
    async fn a_stall_mid_frame_ends_with_that_frame_whole_then_the_farewell() {
        for (small, cut) in [(100, 150), (5000, 7000), (5000, 3)] {
            let frames = [frame(b'a', small), frame(b'b', small), frame(b'c', small)];
            // Whole frames up to the one the cut fell in, then the farewell.
            let whole = (cut - 1) / frames[0].len() + 1;
            let mut expected = frames[..whole].concat();
            expected.extend_from_slice(b"bye");
            let taken = stall_then_read_again(&frames, cut).await;
            assert_eq!(taken, expected, "{small} cut at {cut}");
        }
    }

    /// A socket that takes one byte a second: a client reading slowly, but reading.
    struct Trickle {
        taken: Vec<u8>,
        next: Pin<Box<tokio::time::Sleep>>,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            std::task::ready!(self.next.as_mut().poll(cx));
            let at = self.next.deadline() + Duration::from_secs(1);
            self.next.as_mut().reset(at);
            self.taken.push(buf[0]);
            Poll::Ready(Ok(1))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// `write_timeout` is about a socket that stops taking bytes, not a slow one: a batch that
    /// takes far longer than the deadline to trickle out is written whole.
    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_not_a_slow_consumer() {
        let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
        let (bye_tx, bye_rx) = oneshot::channel();
        let frames = [frame(b'a', 20), frame(b'b', 20)];
        for f in &frames {
            tx.try_send(f.clone()).unwrap();
        }
        let session = session(tx);
        let mut io = Trickle {
            taken: Vec::new(),
            next: Box::pin(tokio::time::sleep(Duration::ZERO)),
        };
        let started = tokio::time::Instant::now();
        let writer = write_loop(&mut io, rx, bye_rx, slow_shared(), Arc::clone(&session));
        let whole = frames.concat();
        tokio::select! {
            () = writer => panic!("the writer gave up: {:?}", session.end_reason()),
            () = tokio::time::sleep(Duration::from_secs(whole.len() as u64 + 5)) => {}
        }
        // Far past the 10 s deadline, every byte went out and the session lives on.
        assert!(started.elapsed() > Duration::from_secs(10 * 5));
        assert_eq!(io.taken, whole);
        drop(bye_tx);
    }

    /// The same stall as above, inside a batch's only frame (written from its own buffer).
    #[tokio::test(start_paused = true)]
    async fn a_stall_inside_a_lone_frame_ends_with_that_frame_whole_then_the_farewell() {
        let lone = frame(b'a', 100);
        let mut expected = lone.to_vec();
        expected.extend_from_slice(b"bye");
        assert_eq!(stall_then_read_again(&[lone], 40).await, expected);
    }

    #[test]
    fn the_rest_of_a_frame_runs_to_its_end_and_is_empty_at_a_boundary() {
        let frames = [frame(b'a', 10), frame(b'b', 20)].concat();
        let first = 4 + 9 + 10;
        assert_eq!(frame_rest(&frames, 0), 0..0);
        assert_eq!(frame_rest(&frames, 2), 2..first);
        assert_eq!(frame_rest(&frames, first), first..first);
        assert_eq!(frame_rest(&frames, first + 1), first + 1..frames.len());
    }
}
