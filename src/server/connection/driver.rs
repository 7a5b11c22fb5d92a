//! The driver: one loop per connection that reads the client's frames and runs each through
//! the frame pipeline, while watching shutdown, the session's end, the idle deadline and the
//! ping timer.
//!
//! Reading is cancel-safe: partial frames stay in a `BytesMut` that outlives the `select!`.
//! At the end of each batch the driver writes the frames it relayed into the recipients'
//! sockets, without waiting ([`outbox`](crate::outbox)); whatever would wait is left to each
//! client's writer task ([`writer`](crate::server::writer)), so a slow socket never blocks
//! this loop or any other client.

use crate::disconnect::DisconnectReason;
use crate::handler::{ServerHandler, SharedHandler};
use crate::outbox::Refused;
use crate::pipeline::{ClientMessage, FrameRequest, Reply, ReplyKind};
use crate::protocol::{
    decode_frame, member_ids, ClientFrame, FrameError, FrameReader, HEADER_LEN, MAX_DIRECT_TARGETS,
};
use crate::server::Shared;
use crate::session::{report_backpressure, Session};
use crate::stats::Counters;
use bytes::{Bytes, BytesMut};
use ghost_sync_layers::BoxError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tower::{Service, ServiceExt};

/// Spare room in the read buffer before a read, at first: a quiet client's frames are small.
pub(super) const MIN_READ_RESERVE: usize = 256;
/// The most spare room a read buffer grows to, for a client sending in bursts: each read that
/// fills the buffer doubles the room, up to this.
pub(crate) const MAX_READ_RESERVE: usize = 64 * 1024;
/// Most bytes read, at a ping tick, looking for a pong already sent: a client further behind
/// than this is not keeping up anyway.
const CATCH_UP_LIMIT: usize = 1024 * 1024;

/// The read side of one established connection.
pub(super) struct Driver<'a, R, S> {
    pub(super) shared: &'a Shared,
    pub(super) handler: &'a SharedHandler,
    pub(super) session: &'a Arc<Session>,
    pub(super) stack: S,
    pub(super) reader: R,
    /// Bytes read and not yet dispatched; outlives every `select!`, so reads are cancel-safe.
    pub(super) buf: BytesMut,
    /// Spare room to make before the next read (see `read_some`).
    pub(super) reserve: usize,
    pub(super) frames: FrameReader,
}

impl<R, S> Driver<'_, R, S>
where
    R: AsyncRead + Unpin,
    S: Service<FrameRequest, Response = Reply, Error = BoxError>,
{
    /// Serves frames until the connection must end, and says why.
    pub(super) async fn run(&mut self) -> DisconnectReason {
        let config = &self.shared.config;
        let idle = self.session.activity.deadline(config.idle_timeout);
        tokio::pin!(idle);
        let mut ping = interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        // A stalled runtime must not turn into a burst of pings and a false ping timeout.
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The last ping could not even be queued: the client is not draining its socket.
        let mut ping_deferred = false;
        loop {
            if let Some(reason) = Box::pin(self.pump()).await {
                return reason;
            }
            if self.buf.is_empty() {
                // Every frame read is dispatched: until the next read, the connection holds
                // no read buffer (the frames' payloads keep what they still need of it).
                self.buf = BytesMut::new();
            }
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => return DisconnectReason::ServerShutdown,
                _ = self.session.ended() => return self.session.end_reason(),
                _ = &mut idle => return DisconnectReason::IdleTimeout,
                _ = ping.tick() => {
                    if Counters::SAMPLES_QUEUE_DEPTH {
                        self.shared.counters.queue_depth(self.session.outbox.depth());
                    }
                    if self.buf.is_empty() {
                        // Nothing is pending: until its next frame, the connection holds no
                        // read buffer (see `read_some`), and starts small again.
                        self.buf = BytesMut::new();
                        self.reserve = MIN_READ_RESERVE;
                        self.session.release_pending();
                        self.session.outbox.shrink();
                    }
                    if let Some(reason) = Box::pin(self.ping(&mut ping_deferred)).await {
                        return reason;
                    }
                }
                read = read_some(&mut self.reader, &mut self.buf, &mut self.reserve) => {
                    if let Some(reason) = self.after_read(read) {
                        return reason;
                    }
                }
            }
        }
    }

    /// Every complete frame already read goes through the pipeline. A user layer may hold a
    /// frame back (a rate limit waiting for its next period), so shutdown is watched too.
    async fn pump(&mut self) -> Option<DisconnectReason> {
        // A copy of the `&Shared`, so the select can borrow it beside `self`'s other fields.
        let shared = self.shared;
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => Some(DisconnectReason::ServerShutdown),
            _ = self.session.ended() => Some(self.session.end_reason()),
            reason = dispatch(
                &mut self.stack,
                self.session,
                &**self.handler,
                &shared.counters,
                &self.frames,
                &mut self.buf,
            ) => reason,
        }
    }

    fn after_read(&self, read: std::io::Result<usize>) -> Option<DisconnectReason> {
        match read {
            Ok(0) if self.buf.is_empty() => Some(DisconnectReason::ClientClosed),
            Ok(0) => Some(DisconnectReason::Transport(
                "closed in the middle of a frame".into(),
            )),
            Ok(_) => None,
            Err(err) => Some(DisconnectReason::Transport(err.to_string())),
        }
    }

    /// Reads and dispatches whatever the client has already sent, without waiting for more,
    /// until a pong turns up or [`CATCH_UP_LIMIT`] bytes were read.
    async fn catch_up(&mut self) -> Option<DisconnectReason> {
        let mut budget = CATCH_UP_LIMIT;
        loop {
            if let Some(reason) = self.pump().await {
                return Some(reason);
            }
            if !self.session.awaiting_pong() || budget == 0 {
                return None;
            }
            if self.buf.capacity() - self.buf.len() < self.reserve {
                self.buf.reserve(self.reserve);
            }
            let before = self.buf.len();
            // Polled once: ready only if bytes are already waiting.
            let waiting = tokio::time::timeout(
                Duration::ZERO,
                tokio::task::unconstrained(self.reader.read_buf(&mut self.buf)),
            )
            .await;
            let Ok(read) = waiting else {
                return None;
            };
            if let Some(reason) = self.after_read(read) {
                return Some(reason);
            }
            budget = budget.saturating_sub(self.buf.len() - before);
        }
    }

    /// The ping tick: judge the previous ping, then send the next.
    async fn ping(&mut self, deferred: &mut bool) -> Option<DisconnectReason> {
        if self.session.awaiting_pong() {
            // The loop may have been busy (a user layer holding a frame back) while the pong
            // arrived: take in what the client already sent before judging it.
            if let Some(reason) = self.catch_up().await {
                return Some(reason);
            }
            if self.session.awaiting_pong() {
                return Some(DisconnectReason::PingTimeout);
            }
        }
        match self.session.outbox.try_send(Bytes::from_static(PING_FRAME)) {
            Ok(()) => {
                self.session.ping_sent();
                *deferred = false;
            }
            // One full queue at a tick is a burst; two in a row, a whole ping interval
            // apart, is a client that does not drain its socket.
            Err(Refused::Full) if *deferred => return Some(DisconnectReason::SlowConsumer),
            Err(Refused::Full) => *deferred = true,
            Err(Refused::Closed) => {
                return Some(DisconnectReason::Transport("writer closed".into()))
            }
        }
        None
    }
}

/// Reads what the client sent. A buffer without capacity (every frame read so far was
/// dispatched) reads into this thread's scratch buffer, and keeps only what arrived: a
/// connection between two frames, idle or not, then holds no read buffer. Cancel-safe:
/// nothing is taken from the socket unless it lands in `buf`.
///
/// `reserve` adapts the buffer to the client: a read that fills the spare room doubles it
/// (up to [`MAX_READ_RESERVE`]), so a bursty sender is read in few calls while a quiet one
/// keeps a few hundred bytes.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    reserve: &mut usize,
) -> std::io::Result<usize> {
    if buf.capacity() == 0 {
        return std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut read = ReadBuf::new(scratch);
                ready!(Pin::new(&mut *reader).poll_read(cx, &mut read))?;
                buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            })
        })
        .await;
    }
    if buf.capacity() - buf.len() < *reserve {
        buf.reserve(*reserve);
    }
    let room = buf.capacity() - buf.len();
    let n = reader.read_buf(buf).await?;
    if n == room {
        *reserve = (*reserve * 2).min(MAX_READ_RESERVE);
    }
    Ok(n)
}

/// Size of each worker thread's scratch read buffer: the most a connection without a read
/// buffer takes from its socket in one read.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    /// Where connections without a read buffer read (see `read_some`).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// `ServerFrame::Ping`, encoded: length 1, tag 8.
pub(super) const PING_FRAME: &[u8] = &[0, 0, 0, 1, 8];
/// `ServerFrame::Pong`, encoded: length 1, tag 9.
pub(super) const PONG_FRAME: &[u8] = &[0, 0, 0, 1, 9];

/// Runs every complete frame in `buf` through the pipeline; `Some` ends the connection.
async fn dispatch<S>(
    stack: &mut S,
    session: &Arc<Session>,
    handler: &dyn ServerHandler,
    counters: &Counters,
    frames: &FrameReader,
    buf: &mut BytesMut,
) -> Option<DisconnectReason>
where
    S: Service<FrameRequest, Response = Reply, Error = BoxError>,
{
    let mut tally = Tally {
        counters,
        session,
        frames: 0,
        bytes: 0,
    };
    loop {
        if tally.frames > 0 && tally.frames % FLUSH_EVERY == 0 {
            // A long batch does not keep the others waiting for its end.
            session.flush(true);
        }
        // One connection's backlog must not hold a worker away from the others: each frame
        // spends a unit of tokio's cooperative budget (128 a task poll, shared with the
        // socket reads), and once it is spent the task yields before it takes the next
        // frame, which waits in `buf` meanwhile.
        let mut budget = std::pin::pin!(tokio::task::coop::consume_budget());
        std::future::poll_fn(|cx| {
            let polled = budget.as_mut().poll(cx);
            if polled.is_pending() {
                // About to yield: what this batch relayed so far leaves first.
                session.flush(true);
            }
            polled
        })
        .await;
        let body = match frames.next_frame(buf) {
            Ok(Some(body)) => {
                tally.frames += 1;
                tally.bytes += (HEADER_LEN + body.len()) as u64;
                body
            }
            Ok(None) => return None,
            Err(err @ FrameError::TooLarge { .. }) => {
                return Some(DisconnectReason::PayloadTooLarge(err.to_string()))
            }
            Err(err) => return Some(DisconnectReason::Protocol(err.to_string())),
        };
        let message = match to_message(&body) {
            Ok(Incoming::Request(message)) => message,
            Ok(Incoming::Ping) => {
                session.activity.touch();
                // Dropped with a full queue, like any frame for a client that does not read.
                let _ = session.outbox.try_send(Bytes::from_static(PONG_FRAME));
                continue;
            }
            Ok(Incoming::Pong) => {
                session.activity.touch();
                session.pong_received();
                continue;
            }
            // The client said it is leaving: whatever it sent after that is not read.
            Ok(Incoming::Bye) => {
                // A close after `Bye` ends the seat; one without it may hold it.
                session.said_bye();
                return Some(DisconnectReason::ClientClosed);
            }
            Err(reason) => return Some(reason),
        };
        let request = FrameRequest::new(Arc::clone(session), message);
        let reply = match stack.ready().await {
            Ok(service) => service.call(request).await,
            Err(err) => Err(err),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => return Some(DisconnectReason::Internal(err.to_string())),
        };
        if let ReplyKind::Disconnect(reason) = reply.kind {
            return Some(reason);
        }
        if let Some(frames) = reply.into_frames() {
            if let Err(Refused::Full) = session.outbox.try_send(frames) {
                let room = session.current_room();
                let room_id = room.as_ref().map_or("", |r| r.id());
                report_backpressure(handler, counters, &[session.client_id], room_id);
            }
        }
    }
}

/// Frames relayed between two writes of the recipients' queues, in a long batch.
const FLUSH_EVERY: u64 = 64;

/// Frames and bytes received during one dispatch, added to the server's counters once, when
/// it ends (however it ends), rather than once per frame; and the end of the batch, when the
/// frames it relayed are written, each recipient's in one write.
struct Tally<'a> {
    counters: &'a Counters,
    session: &'a Session,
    frames: u64,
    bytes: u64,
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.session.flush(self.frames > 1);
        self.counters.received(self.frames, self.bytes);
    }
}

/// A decoded frame: keepalive and goodbye, handled by the driver, or a request for the
/// pipeline.
enum Incoming {
    Ping,
    Pong,
    Bye,
    Request(ClientMessage),
}

/// The ids a `Direct` frame names: 1 to [`MAX_DIRECT_TARGETS`] of them, 16 bytes each.
fn direct_targets(targets: &[u8]) -> Result<Vec<uuid::Uuid>, DisconnectReason> {
    let count = targets.len() / 16;
    if targets.len() % 16 != 0 || count == 0 || count > MAX_DIRECT_TARGETS {
        return Err(DisconnectReason::Protocol(format!(
            "malformed frame: the targets of a Direct are 1 to {MAX_DIRECT_TARGETS} ids of 16 \
             bytes each, not {} bytes",
            targets.len()
        )));
    }
    Ok(member_ids(targets).collect())
}

/// Decodes a frame body; a request's payload stays a slice of the frame.
fn to_message(body: &Bytes) -> Result<Incoming, DisconnectReason> {
    let frame = decode_frame::<ClientFrame<'_>>(body)
        .map_err(|err| DisconnectReason::Protocol(err.to_string()))?;
    Ok(match frame {
        ClientFrame::Join { room_id, data } => Incoming::Request(ClientMessage::Join {
            room_id: room_id.to_owned(),
            data: body.slice_ref(data),
        }),
        ClientFrame::Leave => Incoming::Request(ClientMessage::Leave),
        ClientFrame::Broadcast { data } => Incoming::Request(ClientMessage::Broadcast {
            data: body.slice_ref(data),
        }),
        ClientFrame::Direct { targets, data } => Incoming::Request(ClientMessage::Direct {
            targets: direct_targets(targets)?,
            data: body.slice_ref(data),
        }),
        ClientFrame::Keyed { key, data } => Incoming::Request(ClientMessage::Keyed {
            key,
            data: body.slice_ref(data),
        }),
        ClientFrame::SetState { key, value } => Incoming::Request(ClientMessage::SetState {
            key: key.to_owned(),
            value: body.slice_ref(value),
        }),
        ClientFrame::Bye => Incoming::Bye,
        ClientFrame::Ping => Incoming::Ping,
        ClientFrame::Pong => Incoming::Pong,
        ClientFrame::Hello { .. } => {
            return Err(DisconnectReason::Protocol(
                "hello after the handshake".to_owned(),
            ))
        }
    })
}
