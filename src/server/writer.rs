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
use crate::session::Session;
use crate::stats::Counters;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
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

/// Writes queued frames until the queue closes or `farewell` resolves. On farewell it writes
/// whatever is still queued, then the farewell frame, then shuts the socket's write side.
///
/// A batch that takes longer than `write_timeout` to write means the client stopped reading:
/// the writer gives up and ends the session as a slow consumer.
pub(crate) async fn write_loop<W>(
    mut io: W,
    mut queue: Inbox,
    mut farewell: oneshot::Receiver<Bytes>,
    shared: Arc<Shared>,
    session: Arc<Session>,
) where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    let mut out = Batcher::default();
    loop {
        tokio::select! {
            biased;
            last = &mut farewell => {
                queue.close_into(&mut batch);
                batch.extend(last.ok());
                let finish = async {
                    out.write(&mut io, &mut batch).await?;
                    io.shutdown().await
                };
                shared.with_patience(finish).await;
                return;
            }
            () = queue.take(&mut batch) => {
                let n = batch.len();
                let bytes: usize = batch.iter().map(Bytes::len).sum();
                // The deadline's timer is only armed if the write does not finish at once.
                let write = out.write(&mut io, &mut batch);
                match tokio::time::timeout(shared.config.write_timeout, write).await {
                    Ok(Ok(())) => queue.written(bytes),
                    Ok(Err(err)) => {
                        // The reader side sees the same broken socket and ends the connection.
                        tracing::debug!(error = %err, "write failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("write deadline passed: slow consumer");
                        session.end_with(DisconnectReason::SlowConsumer);
                        return;
                    }
                }
                Counters::add(&shared.counters.frames_out, n as u64);
                Counters::add(&shared.counters.bytes_out, bytes as u64);
                if n == 1 && queue.is_empty() {
                    // A lone frame (a ping, say) with nothing behind it: the client is
                    // quiet, so its buffers go back to the allocator until the next burst.
                    out.release();
                    batch = Vec::new();
                    queue.shrink();
                }
            }
        }
    }
}

/// Reusable buffers for turning a batch of frames into few write calls.
#[derive(Default)]
struct Batcher {
    /// Small frames, copied back to back.
    copied: Vec<u8>,
    /// Large frames waiting for one vectored write.
    pieces: VecDeque<Bytes>,
}

impl Batcher {
    /// Writes every frame of `batch` (and empties it), in order.
    async fn write<W>(&mut self, io: &mut W, batch: &mut Vec<Bytes>) -> std::io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        if let [frame] = batch.as_slice() {
            io.write_all(frame).await?;
            batch.clear();
            return Ok(());
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

    async fn flush_copied<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        if !self.copied.is_empty() {
            io.write_all(&self.copied).await?;
            self.copied.clear();
        }
        Ok(())
    }

    async fn flush_pieces<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        if !self.pieces.is_empty() {
            io.write_all_buf(&mut Pieces(&mut self.pieces)).await?;
        }
        Ok(())
    }

    /// Releases a large copy buffer once the connection has nothing queued.
    fn release(&mut self) {
        self.copied = Vec::new();
        self.pieces = VecDeque::new();
    }
}

/// A queue of frames seen as one `Buf`, so that tokio writes them with vectored I/O.
struct Pieces<'a>(&'a mut VecDeque<Bytes>);

impl Buf for Pieces<'_> {
    fn remaining(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    fn chunk(&self) -> &[u8] {
        self.0.front().map_or(&[], |b| &b[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.0.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.0.pop_front();
        }
    }

    fn chunks_vectored<'b>(&'b self, dst: &mut [IoSlice<'b>]) -> usize {
        let mut n = 0;
        for (slot, piece) in dst.iter_mut().zip(self.0.iter()) {
            *slot = IoSlice::new(piece);
            n += 1;
        }
        n
    }
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
        bye_tx.send(Bytes::from_static(b"bye")).unwrap();
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

    #[tokio::test(start_paused = true)]
    async fn a_write_stuck_past_the_deadline_ends_the_session_as_a_slow_consumer() {
        let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
        let (_bye_tx, bye_rx) = oneshot::channel();
        tx.try_send(Bytes::from_static(b"never written")).unwrap();
        let config = crate::server::config::Config {
            write_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let shared = Arc::new(Shared::new(config, None));
        let session = session(tx);
        let started = tokio::time::Instant::now();
        write_loop(Stuck, rx, bye_rx, shared, Arc::clone(&session)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(session.end_reason(), DisconnectReason::SlowConsumer);
    }
}
