//! Turning a batch of frames into few write calls: small frames copied together, large ones
//! written from their own buffers, vectored; and where a write cut short stopped.

use crate::protocol::HEADER_LEN;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

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

/// Reusable buffers for turning a batch of frames into few write calls.
///
/// What has been written is kept here, not in a write future, so that a write cut short by
/// the deadline leaves behind exactly where it stopped: the writer can then finish the frame
/// under way ([`unfinished_frame`](Batcher::unfinished_frame)) before its farewell.
#[derive(Default)]
pub(super) struct Batcher {
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
    pub(super) fn resume(&mut self, batch: &mut Vec<Bytes>, sent: usize) {
        if sent > 0 && !batch.is_empty() {
            self.lone = batch.remove(0);
            self.lone_sent = sent;
        }
    }

    /// Writes every frame of `batch` (and empties it), in order.
    pub(super) async fn write<W>(
        &mut self,
        io: &mut W,
        batch: &mut Vec<Bytes>,
    ) -> std::io::Result<()>
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
    pub(super) async fn finish_lone<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> std::io::Result<()> {
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

    pub(super) async fn flush_copied<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> std::io::Result<()> {
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

    pub(super) async fn flush_pieces<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> std::io::Result<()> {
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
    pub(super) fn advance_pieces(&mut self, mut n: usize) {
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
    pub(super) fn unfinished_frame(&self) -> Bytes {
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
    pub(super) fn release(&mut self) {
        *self = Self::default();
    }
}

/// In `frames` (whole frames back to back), the range from `sent` to the end of the frame
/// that `sent` falls in; empty if `sent` is a frame boundary.
pub(super) fn frame_rest(frames: &[u8], sent: usize) -> std::ops::Range<usize> {
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
