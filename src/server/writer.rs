//! The writer task: drains one client's bounded write queue into its socket in batches.
//!
//! One write syscall per frame caps a relay at a few hundred thousand frames per second per
//! core; instead every wake-up takes all queued frames (`recv_many`), copies small ones into
//! one buffer and writes it with a single call. Large frames are written straight from their
//! shared `Bytes`, without the copy.

use bytes::Bytes;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Frames taken from the queue per wake-up.
const MAX_BATCH: usize = 256;
/// Frames at least this long skip the copy into the batch buffer.
const LARGE_FRAME: usize = 8 * 1024;
/// The batch buffer is written out once it holds this much.
const FLUSH_AT: usize = 64 * 1024;
/// How long the last frames and the farewell may take to reach a client that does not read:
/// past this the connection is closed without them.
pub(crate) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes queued frames until the queue closes or `farewell` resolves. On farewell it writes
/// whatever is still queued, then the farewell frame, then shuts the socket's write side.
pub(crate) async fn write_loop<W>(
    mut io: W,
    mut queue: mpsc::Receiver<Bytes>,
    mut farewell: oneshot::Receiver<Bytes>,
) where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            biased;
            last = &mut farewell => {
                queue.close();
                while let Ok(frame) = queue.try_recv() {
                    batch.push(frame);
                }
                batch.extend(last.ok());
                let finish = async {
                    write_batch(&mut io, &mut batch, &mut buf).await?;
                    io.shutdown().await
                };
                let _ = tokio::time::timeout(FAREWELL_TIMEOUT, finish).await;
                return;
            }
            n = queue.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                if let Err(err) = write_batch(&mut io, &mut batch, &mut buf).await {
                    // The reader side sees the same broken socket and ends the connection.
                    tracing::debug!(error = %err, "write failed");
                    return;
                }
            }
        }
    }
}

async fn write_batch<W>(
    io: &mut W,
    batch: &mut Vec<Bytes>,
    buf: &mut Vec<u8>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    for frame in batch.drain(..) {
        if frame.len() >= LARGE_FRAME {
            if !buf.is_empty() {
                io.write_all(buf).await?;
                buf.clear();
            }
            io.write_all(&frame).await?;
        } else {
            buf.extend_from_slice(&frame);
            if buf.len() >= FLUSH_AT {
                io.write_all(buf).await?;
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        io.write_all(buf).await?;
        buf.clear();
    }
    // An idle connection keeps no large buffer around.
    if buf.capacity() > FLUSH_AT + LARGE_FRAME {
        *buf = Vec::new();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Records every write call.
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
        let mut buf = Vec::new();
        write_batch(&mut io, &mut batch, &mut buf).await.unwrap();
        assert_eq!(io.writes.len(), 1);
        assert_eq!(io.writes[0].len(), 1000);
    }

    #[tokio::test]
    async fn the_farewell_follows_the_queued_frames() {
        let (tx, rx) = mpsc::channel(8);
        let (bye_tx, bye_rx) = oneshot::channel();
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        bye_tx.send(Bytes::from_static(b"bye")).unwrap();
        let mut io = Recorder::default();
        write_loop(&mut io, rx, bye_rx).await;
        assert_eq!(io.writes.concat(), b"abbye");
    }
}
