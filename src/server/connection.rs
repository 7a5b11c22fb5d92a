//! The connection driver: handshake, then one loop that reads frames through the frame
//! pipeline while watching shutdown, the idle deadline and the ping timer.
//!
//! Reading is cancel-safe: partial frames stay in a `BytesMut` that outlives the `select!`.
//! Writing happens on a separate task ([`writer`](super::writer)) fed by the client's bounded
//! queue, so a slow socket never blocks this loop or any other client.

use super::disconnect::DisconnectReason;
use super::writer::{write_loop, FAREWELL_TIMEOUT};
use super::Shared;
use crate::pipeline::hooks::{Hooks, HooksLayer};
use crate::pipeline::router::RoomRouter;
use crate::pipeline::{recover, ClientMessage, FrameRequest, Reply, ReplyKind};
use crate::protocol::{
    decode_frame, encode, ClientFrame, FrameError, FrameReader, RejectCode, ServerFrame,
    PROTOCOL_VERSION,
};
use crate::session::{report_backpressure, Session};
use bytes::{Bytes, BytesMut};
use ghost_sync_layers::{AuthLayer, BoxError, IdleTimeoutLayer, PayloadLimitLayer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;
use uuid::Uuid;

/// The innermost part of the frame stack, under the user's layers: the hooks around the router.
pub type CoreService = Hooks<RoomRouter>;

/// Longest wait for a new connection's `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Spare room kept in the read buffer before each read.
const READ_RESERVE: usize = 4 * 1024;

/// Serves one admitted connection until it ends, whatever the reason.
pub(crate) async fn serve<R, W, L>(
    shared: Arc<Shared>,
    layer: Arc<L>,
    reader: R,
    writer: W,
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
    drive(shared, layer, reader, writer, peer, client_id)
        .instrument(span)
        .await
}

async fn drive<R, W, L>(
    shared: Arc<Shared>,
    layer: Arc<L>,
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    client_id: Uuid,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    L: Layer<CoreService>,
    L::Service: Service<FrameRequest, Response = Reply> + Send + 'static,
    <L::Service as Service<FrameRequest>>::Error: Into<BoxError>,
    <L::Service as Service<FrameRequest>>::Future: Send,
{
    let config = &shared.config;
    let frames = FrameReader::for_payload(config.max_payload);
    let mut buf = BytesMut::new();

    // Handshake: the first frame must be a Hello of our version.
    let hello = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut reader, &mut buf, &frames)) => hello,
    };
    let refusal = match hello {
        Err(_) => Some((RejectCode::Protocol, "no hello in time".to_owned())),
        Ok(Err(None)) => return,
        Ok(Err(Some(err))) => Some((RejectCode::Protocol, err.to_string())),
        Ok(Ok(body)) => match decode_frame::<ClientFrame<'_>>(&body) {
            Ok(ClientFrame::Hello { version, .. }) if version == PROTOCOL_VERSION => None,
            Ok(ClientFrame::Hello { version, .. }) => Some((
                RejectCode::UnsupportedVersion,
                format!("protocol version {version} not supported; this relay speaks {PROTOCOL_VERSION}"),
            )),
            Ok(_) => Some((RejectCode::Protocol, "the first frame must be a hello".to_owned())),
            Err(err) => Some((RejectCode::Protocol, err.to_string())),
        },
    };
    if let Some((code, message)) = refusal {
        tracing::debug!(?code, message, "handshake refused");
        reject(&mut reader, &mut writer, code, &message).await;
        return;
    }
    let welcome = encode(&ServerFrame::Welcome {
        client_id,
        version: PROTOCOL_VERSION,
        max_payload: config.max_payload as u32,
    });
    if writer.write_all(&welcome).await.is_err() {
        return;
    }

    let (outbox, queue) = mpsc::channel(config.channel_capacity);
    let session = Arc::new(Session::new(client_id, peer, outbox));
    // No credentials are checked yet: the relay is open, so the handshake authenticates.
    session.set_authenticated();
    let (farewell_tx, farewell_rx) = oneshot::channel();
    let writer_task = shared.tasks.spawn(write_loop(writer, queue, farewell_rx));
    let guard = LeaveOnDrop {
        session: Arc::clone(&session),
        shared: Arc::clone(&shared),
    };
    tracing::debug!("connected");

    let core = HooksLayer::new(Arc::clone(&shared)).layer(RoomRouter::new(Arc::clone(&shared)));
    let mut stack = ServiceBuilder::new()
        .map_result(recover)
        .layer(PayloadLimitLayer::new(config.max_payload))
        .layer(IdleTimeoutLayer::new())
        .layer(AuthLayer::new())
        .service(layer.layer(core));

    let idle = session.activity.deadline(config.idle_timeout);
    tokio::pin!(idle);
    let mut ping = interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    // A stalled runtime must not turn into a burst of pings and a false ping timeout.
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let reason = loop {
        // Every complete frame already read goes through the pipeline first.
        if let Some(reason) = dispatch(&mut stack, &session, &shared, &frames, &mut buf).await {
            break reason;
        }
        if buf.capacity() - buf.len() < READ_RESERVE {
            buf.reserve(READ_RESERVE);
        }
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => break DisconnectReason::ServerShutdown,
            _ = &mut idle => break DisconnectReason::IdleTimeout,
            _ = ping.tick() => {
                if session.ping_sent() {
                    break DisconnectReason::PingTimeout;
                }
                // A full queue drops the ping; the client then misses the next deadline,
                // which is the right outcome for a client that does not drain its socket.
                let _ = session.outbox.try_send(Bytes::from_static(PING_FRAME));
            }
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) if buf.is_empty() => break DisconnectReason::ClientClosed,
                Ok(0) => break DisconnectReason::Transport("closed in the middle of a frame".into()),
                Ok(_) => {}
                Err(err) => break DisconnectReason::Transport(err.to_string()),
            },
        }
    };

    tracing::debug!(?reason, "disconnecting");
    drop(guard); // leaves the room: PlayerLeft to the others, on_leave once
    let farewell = reason.farewell();
    let said_goodbye = farewell.is_some();
    // Without a farewell, dropping the sender still ends the writer after the queued frames.
    match farewell {
        Some(frame) => drop(farewell_tx.send(frame)),
        None => drop(farewell_tx),
    }
    let _ = writer_task.await;
    if said_goodbye {
        // Read until the client closes, so that its unread bytes do not turn our close into a
        // reset that could destroy the farewell before the client reads it.
        linger(&mut reader, &mut buf).await;
    }
}

/// `ServerFrame::Ping`, encoded: length 1, tag 8.
const PING_FRAME: &[u8] = &[0, 0, 0, 1, 8];

/// Leaves the session's room however the driver ends, cancellation included.
struct LeaveOnDrop {
    session: Arc<Session>,
    shared: Arc<Shared>,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.session.leave_room(self.shared.handler());
    }
}

/// Runs every complete frame in `buf` through the pipeline; `Some` ends the connection.
async fn dispatch<S>(
    stack: &mut S,
    session: &Arc<Session>,
    shared: &Shared,
    frames: &FrameReader,
    buf: &mut BytesMut,
) -> Option<DisconnectReason>
where
    S: Service<FrameRequest, Response = Reply, Error = BoxError>,
{
    loop {
        let body = match frames.next_frame(buf) {
            Ok(Some(body)) => body,
            Ok(None) => return None,
            Err(err @ FrameError::TooLarge { .. }) => {
                return Some(DisconnectReason::PayloadTooLarge(err.to_string()))
            }
            Err(err) => return Some(DisconnectReason::Protocol(err.to_string())),
        };
        let message = match to_message(&body) {
            Ok(message) => message,
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
                if let Err(TrySendError::Full(_)) = session.outbox.try_send(frame) {
                    let room = session.current_room();
                    let room_id = room.as_ref().map_or("", |r| r.id());
                    report_backpressure(shared.handler(), &[session.client_id], room_id);
                }
            }
            ReplyKind::Disconnect(reason) => return Some(reason),
        }
    }
}

/// Decodes a frame body into an owned request; the payload stays a slice of the frame.
fn to_message(body: &Bytes) -> Result<ClientMessage, DisconnectReason> {
    let frame = decode_frame::<ClientFrame<'_>>(body)
        .map_err(|err| DisconnectReason::Protocol(err.to_string()))?;
    Ok(match frame {
        ClientFrame::Join { room_id } => ClientMessage::Join {
            room_id: room_id.to_owned(),
        },
        ClientFrame::Leave => ClientMessage::Leave,
        ClientFrame::Broadcast { data } => ClientMessage::Broadcast {
            data: body.slice_ref(data),
        },
        ClientFrame::Ping => ClientMessage::Ping,
        ClientFrame::Pong => ClientMessage::Pong,
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

/// Refuses a connection: the `Rejected` frame, then a lingering close.
pub(crate) async fn reject<R, W>(reader: &mut R, writer: &mut W, code: RejectCode, message: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = encode(&ServerFrame::Rejected {
        code: code as u8,
        message,
    });
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
