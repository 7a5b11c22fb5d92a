//! The connection driver: handshake, then one loop that reads frames through the frame
//! pipeline while watching shutdown, the idle deadline and the ping timer.
//!
//! Reading is cancel-safe: partial frames stay in a `BytesMut` that outlives the `select!`.
//! Writing happens on a separate task ([`writer`](super::writer)) fed by the client's bounded
//! queue, so a slow socket never blocks this loop or any other client.

use super::writer::{write_loop, FAREWELL_TIMEOUT};
use super::Shared;
use crate::auth::{Credentials, Identity, Validator};
use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, ServerHandler, SharedHandler};
use crate::outbox::{outbox, Refused};
use crate::pipeline::hooks::{Hooks, HooksLayer};
use crate::pipeline::router::RoomRouter;
use crate::pipeline::{recover, ClientMessage, FrameRequest, Reply, ReplyKind};
use crate::protocol::{
    clip_reason, decode_frame, encode, ClientFrame, FrameError, FrameReader, RejectCode,
    ServerFrame, HEADER_LEN, PROTOCOL_VERSION,
};
use crate::session::{report_backpressure, Session};
use crate::stats::Counters;
use bytes::{Bytes, BytesMut};
use ghost_sync_layers::{
    AuthLayer, BoxError, ClientRateLimitLayer, IdleTimeoutLayer, PayloadLimitLayer,
    RoomNamePolicyLayer,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;
use uuid::Uuid;

/// The innermost part of the frame stack, under the user's layers: the hooks around the router.
pub type CoreService = Hooks<RoomRouter>;

/// Longest wait for a new connection's `Hello` (or `idle_timeout`, if shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Spare room in the read buffer before a read, at first: a quiet client's frames are small.
const MIN_READ_RESERVE: usize = 256;
/// The most spare room a read buffer grows to, for a client sending in bursts: each read that
/// fills the buffer doubles the room, up to this.
pub(crate) const MAX_READ_RESERVE: usize = 64 * 1024;
/// Most bytes read, at a ping tick, looking for a pong already sent: a client further behind
/// than this is not keeping up anyway.
const CATCH_UP_LIMIT: usize = 1024 * 1024;

/// Serves one admitted connection until it ends, whatever the reason.
pub(crate) async fn serve<R, W, L>(
    shared: Arc<Shared>,
    handler: SharedHandler,
    layer: Arc<L>,
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    L: Layer<CoreService>,
    L::Service: Service<FrameRequest, Response = Reply> + Send + 'static,
    <L::Service as Service<FrameRequest>>::Error: Into<BoxError>,
    <L::Service as Service<FrameRequest>>::Future: Send,
{
    let client_id = Uuid::new_v4();
    let span = tracing::info_span!("connection", %client_id, %peer);
    async move {
        let frames = FrameReader::for_payload(shared.config.max_payload);
        let mut buf = BytesMut::new();
        let Some(identity) = handshake(
            &shared,
            &mut reader,
            &mut writer,
            &mut buf,
            &frames,
            client_id,
            peer,
        )
        .await
        else {
            return;
        };
        let config = &shared.config;
        let (outbox, queue) = outbox(config.channel_capacity, config.max_queued_bytes);
        let session = Arc::new(Session::new(client_id, peer, identity, outbox));
        // The handshake checked the credentials (or the relay is open).
        session.set_authenticated();
        shared.directory.insert(Arc::clone(&session));
        shared
            .counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        // Whatever happens next, the client leaves the directory and `on_disconnect` fires
        // once: this guard is dropped last, even if the task is cancelled.
        let mut farewell_guard = DisconnectOnDrop {
            shared: Arc::clone(&shared),
            handler: Arc::clone(&handler),
            client_id,
            reason: DisconnectReason::ServerShutdown,
        };
        let (farewell_tx, farewell_rx) = oneshot::channel();
        let mut writer_task = shared.tasks.spawn(
            write_loop(
                writer,
                queue,
                farewell_rx,
                Arc::clone(&shared),
                Arc::clone(&session),
            )
            .instrument(tracing::Span::current()),
        );
        tracing::debug!("connected");

        let core = HooksLayer::new(Arc::clone(&shared), Arc::clone(&handler))
            .layer(RoomRouter::new(Arc::clone(&shared), Arc::clone(&handler)));
        let stack = ServiceBuilder::new()
            .map_result(recover)
            .layer(PayloadLimitLayer::new(config.max_payload))
            .layer(IdleTimeoutLayer::new())
            .layer(AuthLayer::new())
            // Optional layers are present either way, as no-ops when off: one stack type,
            // and no `Either` (whose error and future types trip the compiler's `Send`
            // check of this task).
            .layer(
                config
                    .rate_limit
                    .unwrap_or(ClientRateLimitLayer::unlimited()),
            )
            .layer(config.room_names.unwrap_or(RoomNamePolicyLayer::any()))
            .service(layer.layer(core));
        let mut driver = Driver {
            shared: &shared,
            handler: &handler,
            session: &session,
            stack,
            reader,
            buf,
            reserve: MIN_READ_RESERVE,
            frames,
        };
        let guard = LeaveOnDrop {
            session: Arc::clone(&session),
            handler: Arc::clone(&handler),
            shared: Arc::clone(&shared),
        };
        let reason = driver.run().await;

        tracing::debug!(?reason, "disconnecting");
        // Unlisted before the farewell goes out: once the client reads why it was
        // disconnected, the handle no longer finds it (kick, send_to, client_info).
        shared.directory.remove(client_id);
        if reason == DisconnectReason::ServerShutdown {
            session.leave_room_quietly(&*handler, &shared.counters);
        }
        drop(guard); // leaves the room (if still in one): PlayerLeft to the others, on_leave once
        let farewell = reason.farewell();
        farewell_guard.reason = reason;
        let mut said_goodbye = farewell.is_some();
        // Without a farewell, dropping the sender still ends the writer after the queued frames.
        match farewell {
            // A writer that already gave up (a stalled socket) cannot say goodbye.
            Some(frame) => said_goodbye = farewell_tx.send(frame).is_ok(),
            None => drop(farewell_tx),
        }
        // A writer stuck on a client that does not read must not pin this connection (and
        // its slot, and `shutdown()`) forever.
        if shared.with_patience(&mut writer_task).await.is_none() {
            writer_task.abort();
            // The farewell never left: no point waiting for the client to answer it.
            said_goodbye = false;
        }
        if said_goodbye {
            // Read until the client closes, so that its unread bytes do not turn our close
            // into a reset that could destroy the farewell before the client reads it.
            shared
                .with_patience(linger(&mut driver.reader, &mut driver.buf))
                .await;
        }
        drop(farewell_guard);
    }
    .instrument(span)
    .await
}

/// Takes a client out of the directory, counts its disconnect and fires `on_disconnect`,
/// however its connection ends (cancellation included), exactly once.
struct DisconnectOnDrop {
    shared: Arc<Shared>,
    handler: SharedHandler,
    client_id: Uuid,
    reason: DisconnectReason,
}

impl Drop for DisconnectOnDrop {
    fn drop(&mut self) {
        self.shared.directory.remove(self.client_id);
        self.shared.counters.disconnected(self.reason.kind());
        guarded("on_disconnect", || {
            self.handler.on_disconnect(self.client_id, &self.reason)
        });
    }
}

/// Reads the client's `Hello`, checks its credentials, and answers `Welcome`, or refuses
/// with a reason. `Some(identity)` when the connection may proceed (`Some(None)` on an open
/// relay).
async fn handshake<R, W>(
    shared: &Shared,
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    frames: &FrameReader,
    client_id: Uuid,
    peer: SocketAddr,
) -> Option<Option<Identity>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT.min(config.idle_timeout);
    let hello = tokio::select! {
        _ = shared.shutdown.cancelled() => {
            reject(reader, writer, RejectCode::ShuttingDown, "server shutting down").await;
            return None;
        }
        hello = tokio::time::timeout_at(deadline, read_frame(reader, buf, frames)) => hello,
    };
    let mut token = Bytes::new();
    let refusal = match hello {
        Err(_) => Some((RejectCode::Protocol, "no hello in time".to_owned())),
        Ok(Err(None)) => return None,
        Ok(Err(Some(err))) => Some((RejectCode::Protocol, err.to_string())),
        Ok(Ok(body)) => match decode_frame::<ClientFrame<'_>>(&body) {
            Ok(ClientFrame::Hello {
                version,
                credentials,
            }) if version == PROTOCOL_VERSION => {
                token = body.slice_ref(credentials);
                None
            }
            Ok(ClientFrame::Hello { version, .. }) => Some((
                RejectCode::UnsupportedVersion,
                format!(
                    "protocol version {version} not supported; this relay speaks {PROTOCOL_VERSION}"
                ),
            )),
            Ok(_) => Some((
                RejectCode::Protocol,
                "the first frame must be a hello".to_owned(),
            )),
            Err(err) => Some((RejectCode::Protocol, err.to_string())),
        },
    };
    let (identity, refusal) = match (refusal, &shared.validator) {
        (Some(refusal), _) => (None, Some(refusal)),
        (None, None) => (None, None),
        (None, Some(validator)) => {
            match authenticate(shared, validator.clone(), token, peer, deadline).await {
                Ok(identity) => (Some(identity), None),
                Err(why) => (None, Some((RejectCode::AuthFailed, why))),
            }
        }
    };
    if let Some((code, message)) = refusal {
        tracing::debug!(?code, message, "handshake refused");
        reject(reader, writer, code, &message).await;
        return None;
    }
    let welcome = encode(&ServerFrame::Welcome {
        client_id,
        version: PROTOCOL_VERSION,
        max_payload: config.max_payload as u32,
    });
    writer.write_all(&welcome).await.ok()?;
    Some(identity)
}

/// Runs the validator on a client's token, within the handshake's deadline; the error is the
/// reason the client reads.
async fn authenticate(
    shared: &Shared,
    validator: Validator,
    token: Bytes,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Identity, String> {
    let check = validator.oneshot(Credentials { token, peer });
    tokio::select! {
        _ = shared.shutdown.cancelled() => Err("server shutting down".to_owned()),
        checked = tokio::time::timeout_at(deadline, check) => match checked {
            Ok(Ok(identity)) => Ok(identity),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("credentials not checked in time".to_owned()),
        },
    }
}

/// The read side of one established connection.
struct Driver<'a, R, S> {
    shared: &'a Shared,
    handler: &'a SharedHandler,
    session: &'a Arc<Session>,
    stack: S,
    reader: R,
    /// Bytes read and not yet dispatched; outlives every `select!`, so reads are cancel-safe.
    buf: BytesMut,
    /// Spare room to make before the next read (see `read_some`).
    reserve: usize,
    frames: FrameReader,
}

impl<R, S> Driver<'_, R, S>
where
    R: AsyncRead + Unpin,
    S: Service<FrameRequest, Response = Reply, Error = BoxError>,
{
    /// Serves frames until the connection must end, and says why.
    async fn run(&mut self) -> DisconnectReason {
        let config = &self.shared.config;
        let idle = self.session.activity.deadline(config.idle_timeout);
        tokio::pin!(idle);
        let mut ping = interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        // A stalled runtime must not turn into a burst of pings and a false ping timeout.
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The last ping could not even be queued: the client is not draining its socket.
        let mut ping_deferred = false;
        loop {
            if let Some(reason) = self.pump().await {
                return reason;
            }
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => return DisconnectReason::ServerShutdown,
                _ = self.session.ended() => return self.session.end_reason(),
                _ = &mut idle => return DisconnectReason::IdleTimeout,
                _ = ping.tick() => {
                    if self.buf.is_empty() {
                        // Nothing is pending: until its next frame, the connection holds no
                        // read buffer (see `read_some`), and starts small again.
                        self.buf = BytesMut::new();
                        self.reserve = MIN_READ_RESERVE;
                    }
                    if let Some(reason) = self.ping(&mut ping_deferred).await {
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

/// Reads what the client sent. A buffer without capacity (a connection gone quiet) reads
/// into a few bytes on the stack first, and only allocates once something arrived: idle
/// connections, the vast majority on a big relay, then cost no read buffer. Cancel-safe:
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
        // Enough for the usual wake-up of a quiet client: a pong, a small frame.
        let mut first = [0u8; 64];
        let n = reader.read(&mut first).await?;
        if n > 0 {
            buf.reserve(*reserve);
            buf.extend_from_slice(&first[..n]);
        }
        return Ok(n);
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

/// `ServerFrame::Ping`, encoded: length 1, tag 8.
const PING_FRAME: &[u8] = &[0, 0, 0, 1, 8];
/// `ServerFrame::Pong`, encoded: length 1, tag 9.
const PONG_FRAME: &[u8] = &[0, 0, 0, 1, 9];

/// Leaves the session's room however the driver ends, cancellation included.
struct LeaveOnDrop {
    session: Arc<Session>,
    handler: SharedHandler,
    shared: Arc<Shared>,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.session
            .leave_room(&*self.handler, &self.shared.counters);
    }
}

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
        frames: 0,
        bytes: 0,
    };
    loop {
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
        match reply.kind {
            ReplyKind::Nothing | ReplyKind::Relayed { .. } => {}
            ReplyKind::Frame(frame) => {
                if let Err(Refused::Full) = session.outbox.try_send(frame) {
                    let room = session.current_room();
                    let room_id = room.as_ref().map_or("", |r| r.id());
                    report_backpressure(handler, counters, &[session.client_id], room_id);
                }
            }
            ReplyKind::Disconnect(reason) => return Some(reason),
        }
    }
}

/// Frames and bytes received during one dispatch, added to the server's counters once, when
/// it ends (however it ends), rather than once per frame.
struct Tally<'a> {
    counters: &'a Counters,
    frames: u64,
    bytes: u64,
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        Counters::add(&self.counters.frames_in, self.frames);
        Counters::add(&self.counters.bytes_in, self.bytes);
    }
}

/// A decoded frame: keepalive, handled by the driver, or a request for the pipeline.
enum Incoming {
    Ping,
    Pong,
    Request(ClientMessage),
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
        ClientFrame::Ping => Incoming::Ping,
        ClientFrame::Pong => Incoming::Pong,
        ClientFrame::Hello { .. } => {
            return Err(DisconnectReason::Protocol(
                "hello after the handshake".to_owned(),
            ))
        }
    })
}

/// Reads until one complete frame is in `buf`. `Err(None)`: the peer left first.
async fn read_frame<R>(
    reader: &mut R,
    buf: &mut BytesMut,
    frames: &FrameReader,
) -> Result<Bytes, Option<FrameError>>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Some(body) = frames.next_frame(buf).map_err(Some)? {
            return Ok(body);
        }
        buf.reserve(512);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}

/// The `Rejected` frame for a refusal.
pub(crate) fn rejection(code: RejectCode, message: &str) -> Bytes {
    encode(&ServerFrame::Rejected {
        code: code as u8,
        message: clip_reason(message),
    })
}

/// Refuses a connection: the `Rejected` frame, then a lingering close.
pub(crate) async fn reject<R, W>(reader: &mut R, writer: &mut W, code: RejectCode, message: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = rejection(code, message);
    let sent = tokio::time::timeout(FAREWELL_TIMEOUT, async {
        writer.write_all(&frame).await?;
        writer.shutdown().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        linger(reader, &mut BytesMut::new()).await;
    }
}

/// Discards what the peer still sends until it closes, for at most [`FAREWELL_TIMEOUT`] and
/// a bounded number of bytes.
async fn linger<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut) {
    const MAX_DISCARD: usize = 256 * 1024;
    let discard = async {
        let mut total = 0;
        loop {
            buf.clear();
            buf.reserve(4096);
            match reader.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    total += n;
                    if total > MAX_DISCARD {
                        return;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, discard).await;
}

/// The liveness rules, driven over an in-memory stream with paused time, so that hours of
/// pings run in milliseconds and every deadline is exact.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_keepalive_frames_are_the_encoded_ones() {
        assert_eq!(&encode(&ServerFrame::Ping)[..], PING_FRAME);
        assert_eq!(&encode(&ServerFrame::Pong)[..], PONG_FRAME);
    }
}

#[cfg(test)]
mod liveness_tests {
    use super::*;
    use crate::protocol::{DisconnectCode, ServerFrame};
    use crate::server::config::Config;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
    use tower::layer::util::Identity;

    struct Peer {
        reader: ReadHalf<DuplexStream>,
        writer: WriteHalf<DuplexStream>,
        buf: BytesMut,
        frames: FrameReader,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Ping,
        Pong,
        Disconnect(u8),
        Other,
        Closed,
    }

    impl Peer {
        async fn send(&mut self, frame: &ClientFrame<'_>) {
            self.writer.write_all(&encode(frame)).await.unwrap();
        }

        async fn next(&mut self) -> Seen {
            loop {
                if let Some(body) = self.frames.next_frame(&mut self.buf).unwrap() {
                    return match decode_frame::<ServerFrame<'_>>(&body).unwrap() {
                        ServerFrame::Ping => Seen::Ping,
                        ServerFrame::Pong => Seen::Pong,
                        ServerFrame::Disconnect { code, .. } => Seen::Disconnect(code),
                        _ => Seen::Other,
                    };
                }
                self.buf.reserve(1024);
                if self.reader.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return Seen::Closed;
                }
            }
        }
    }

    async fn connect(ping_interval: Duration, idle_timeout: Duration) -> Peer {
        let config = Config {
            ping_interval,
            idle_timeout,
            ..Config::default()
        };
        connect_to(&Arc::new(Shared::new(config, None)), 64 * 1024).await
    }

    /// A client of `shared` whose socket holds at most `socket_bytes` unread bytes.
    async fn connect_to(shared: &Arc<Shared>, socket_bytes: usize) -> Peer {
        let (ours, theirs) = tokio::io::duplex(socket_bytes);
        let (reader, writer) = tokio::io::split(theirs);
        let peer_addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let handler: SharedHandler = Arc::new(crate::handler::NoopHandler);
        tokio::spawn(serve(
            Arc::clone(shared),
            handler,
            Arc::new(Identity::new()),
            reader,
            writer,
            peer_addr,
        ));
        let (reader, writer) = tokio::io::split(ours);
        let mut peer = Peer {
            reader,
            writer,
            buf: BytesMut::new(),
            frames: FrameReader::for_payload(1024),
        };
        peer.send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: &[],
        })
        .await;
        assert_eq!(peer.next().await, Seen::Other, "welcome");
        peer
    }

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_answers_pings_stays_connected_indefinitely_with_the_defaults() {
        let mut peer = connect(secs(13), secs(31)).await;
        let start = Instant::now();
        for _ in 0..300 {
            assert_eq!(peer.next().await, Seen::Ping);
            peer.send(&ClientFrame::Pong).await;
        }
        assert!(
            start.elapsed() >= secs(300 * 13),
            "an hour of virtual time went by"
        );
        peer.send(&ClientFrame::Ping).await;
        assert_eq!(peer.next().await, Seen::Pong, "still connected");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pong_counts_as_activity_for_the_idle_timeout() {
        // Without the pongs resetting it, a 15 s idle timeout would fire before the 2nd ping.
        let mut peer = connect(secs(10), secs(15)).await;
        for _ in 0..50 {
            assert_eq!(peer.next().await, Seen::Ping);
            peer.send(&ClientFrame::Pong).await;
        }
        peer.send(&ClientFrame::Ping).await;
        assert_eq!(peer.next().await, Seen::Pong);
    }

    #[tokio::test(start_paused = true)]
    async fn any_frame_resets_the_idle_timeout_and_silence_ends_it() {
        let mut peer = connect(secs(3600), secs(15)).await;
        let start = Instant::now();
        for _ in 0..20 {
            tokio::time::sleep(secs(10)).await;
            peer.send(&ClientFrame::Ping).await;
            assert_eq!(peer.next().await, Seen::Pong);
        }
        let silent_from = Instant::now();
        assert_eq!(
            peer.next().await,
            Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
        );
        assert!(silent_from.elapsed() >= secs(15));
        assert!(start.elapsed() >= secs(215));
        assert_eq!(peer.next().await, Seen::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_ping_ends_the_connection_at_the_next_tick() {
        let mut peer = connect(secs(13), secs(31)).await;
        let start = Instant::now();
        assert_eq!(peer.next().await, Seen::Ping);
        assert_eq!(
            peer.next().await,
            Seen::Disconnect(DisconnectCode::PingTimeout as u8)
        );
        assert_eq!(start.elapsed(), secs(26));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_fires_on_its_own_when_it_comes_before_the_ping_deadline() {
        // ping_interval < idle_timeout, yet idle (31 s) comes before the ping deadline (40 s).
        let mut peer = connect(secs(20), secs(31)).await;
        let start = Instant::now();
        assert_eq!(peer.next().await, Seen::Ping);
        assert_eq!(
            peer.next().await,
            Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
        );
        assert_eq!(start.elapsed(), secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_fires_when_pings_are_rarer_than_it() {
        let mut peer = connect(secs(60), secs(31)).await;
        assert_eq!(
            peer.next().await,
            Seen::Disconnect(DisconnectCode::IdleTimeout as u8)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn broadcasts_without_pongs_still_end_in_a_ping_timeout() {
        let mut peer = connect(secs(10), secs(3600)).await;
        let outcome = loop {
            tokio::time::sleep(secs(1)).await;
            peer.send(&ClientFrame::Leave).await;
            match peer.next().await {
                Seen::Other | Seen::Ping => continue,
                other => break other,
            }
        };
        assert_eq!(outcome, Seen::Disconnect(DisconnectCode::PingTimeout as u8));
    }

    #[tokio::test(start_paused = true)]
    async fn one_tick_with_a_full_queue_is_a_burst_not_a_timeout() {
        let config = Config {
            ping_interval: secs(10),
            idle_timeout: secs(3600),
            channel_capacity: 2,
            // Only the ping rule is under test here, not the write deadline.
            write_timeout: secs(3600),
            ..Config::default()
        };
        let shared = Arc::new(Shared::new(config, None));
        shared
            .registry
            .create("r", crate::room::RoomOptions::default());
        // `slow` has a tiny socket, joins, and stops reading for a while.
        let mut slow = connect_to(&shared, 64).await;
        slow.send(&ClientFrame::Join {
            room_id: "r",
            data: &[],
        })
        .await;
        assert_eq!(slow.next().await, Seen::Other, "joined");
        let mut loud = connect_to(&shared, 64 * 1024).await;
        loud.send(&ClientFrame::Join {
            room_id: "r",
            data: &[],
        })
        .await;
        assert_eq!(loud.next().await, Seen::Other, "joined");
        // A burst: more than slow's socket and its 2-frame queue hold. The pauses let slow's
        // writer take what is queued and block on the full socket, so the queue fills behind.
        for _ in 0..10 {
            loud.send(&ClientFrame::Broadcast { data: &[1; 100] }).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first tick (10 s) finds slow's queue full and skips its ping; then slow drains.
        tokio::time::sleep(secs(15)).await;
        // At the second tick (20 s) the queue has room: a ping, which slow answers.
        loop {
            match slow.next().await {
                Seen::Other => continue,
                Seen::Ping => break,
                other => panic!("slow was disconnected: {other:?}"),
            }
        }
        slow.send(&ClientFrame::Pong).await;
        slow.send(&ClientFrame::Ping).await;
        // (loud, which never answers pings, may leave meanwhile: skip its PlayerLeft.)
        loop {
            match slow.next().await {
                Seen::Other => continue,
                seen => {
                    assert_eq!(seen, Seen::Pong, "still connected");
                    break;
                }
            }
        }
    }
}
