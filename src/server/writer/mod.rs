//! The writer task: drains one client's bounded write queue into its socket in batches.
//!
//! One write syscall per frame caps a relay at a few hundred thousand frames per second per
//! core; instead every wake-up takes all queued frames (one swap) and writes them with as
//! few calls as it can:
//! - a lone frame is written straight from its shared `Bytes`: no copy, one call;
//! - small frames are copied into one buffer and written together;
//! - large frames are written from their own `Bytes` with vectored writes, without a copy.
//!
//! - `mod.rs`: the loop, and how a connection's writing ends (a farewell, a hold, a client
//!   that stopped reading);
//! - `batcher.rs`: a batch of frames into few write calls;
//! - `stall.rs`: telling a client that stopped reading from one that reads slowly.

mod batcher;
mod stall;
#[cfg(test)]
mod tests;

use batcher::Batcher;
pub(crate) use batcher::COPY_BUFFER_MAX;
use stall::{until_stalled, Counted};

use super::Shared;
use crate::disconnect::DisconnectReason;
use crate::outbox::Inbox;
use crate::session::Session;
use bytes::Bytes;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

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
