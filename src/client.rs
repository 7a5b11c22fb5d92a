//! [`Client`]: connect to a relay, join a room, broadcast, and receive events.
//!
//! Every method is cancel-safe. Outgoing bytes go through a buffer that outlives each call: a
//! cancelled send leaves its unsent tail there, and the next call (or `recv`) finishes it.
//! Incoming partial frames stay in the read buffer likewise. So `recv()` can sit in
//! `tokio::select!` or under a timeout without losing or corrupting a frame.

use crate::error::SyncError;
use crate::event::ServerEvent;
use crate::protocol::{
    decode_frame, encode, ClientFrame, DisconnectCode, FrameError, FrameReader, RejectCode,
    ServerFrame, MAX_REASON_LEN, PROTOCOL_VERSION,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use uuid::Uuid;

/// A connection to a ghost-sync relay (`Send`).
///
/// ```no_run
/// use ghost_sync::{Client, ServerEvent};
///
/// # async fn demo() -> Result<(), ghost_sync::SyncError> {
/// let mut client = Client::connect("127.0.0.1:7777").await?;
/// client.join("lobby").await?;
/// while let Some(event) = client.recv().await? {
///     if let ServerEvent::Joined { .. } = event {
///         client.broadcast(b"hello room").await?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Bytes read but not yet decoded (at most one partial frame after `recv` returns).
    read_buf: BytesMut,
    /// Bytes queued for the relay and not yet written.
    write_buf: BytesMut,
    frames: FrameReader,
    client_id: Uuid,
    max_payload: usize,
    /// The relay said goodbye or closed: every further `recv` returns `Ok(None)`.
    closed: bool,
    /// The relay's goodbye, kept until `recv` has returned it (so that a `recv` cancelled
    /// while closing our side cannot lose it).
    goodbye: Option<SyncError>,
}

impl Client {
    /// Connects and completes the handshake; returns once the relay welcomed the client.
    ///
    /// Fails with [`SyncError::ServerFull`], [`SyncError::ConnectRejected`] or
    /// [`SyncError::AuthFailed`] when the relay refuses, with the reason it gave.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, SyncError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let mut client = Self {
            stream,
            read_buf: BytesMut::with_capacity(8 * 1024),
            write_buf: BytesMut::new(),
            // Until the welcome tells the relay's limit, accept handshake-sized frames.
            frames: FrameReader::for_payload(MAX_REASON_LEN),
            client_id: Uuid::nil(),
            max_payload: 0,
            closed: false,
            goodbye: None,
        };
        client
            .send(&encode(&ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                credentials: &[],
            }))
            .await?;
        let body = client.read_frame().await?;
        match decode_frame::<ServerFrame<'_>>(&body).map_err(protocol)? {
            ServerFrame::Welcome {
                client_id,
                version,
                max_payload,
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(SyncError::Protocol(format!(
                        "the relay speaks protocol version {version}, this client {PROTOCOL_VERSION}"
                    )));
                }
                client.client_id = client_id;
                client.max_payload = max_payload as usize;
                // Reasons may be longer than a tiny max_payload; they are clipped to this.
                client.frames = FrameReader::for_payload(client.max_payload.max(MAX_REASON_LEN));
                Ok(client)
            }
            ServerFrame::Rejected { code, message } => Err(match RejectCode::from_u8(code) {
                Some(RejectCode::ServerFull) => SyncError::ServerFull,
                Some(RejectCode::AuthFailed) => SyncError::AuthFailed(message.to_owned()),
                Some(RejectCode::ConnectRejected) => SyncError::ConnectRejected(message.to_owned()),
                Some(RejectCode::ShuttingDown) => SyncError::ConnectionClosed,
                Some(RejectCode::UnsupportedVersion | RejectCode::Protocol) | None => {
                    SyncError::Protocol(message.to_owned())
                }
            }),
            other => Err(SyncError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.client_id
    }

    /// The largest payload the relay accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Asks to join `room_id` (leaving the current room). The answer comes through
    /// [`recv`](Client::recv): [`ServerEvent::Joined`] or [`ServerEvent::Error`].
    pub async fn join(&mut self, room_id: &str) -> Result<(), SyncError> {
        self.check_payload(room_id.len())?;
        self.send(&encode(&ClientFrame::Join { room_id })).await
    }

    /// Leaves the current room; [`ServerEvent::Left`] confirms it.
    pub async fn leave(&mut self) -> Result<(), SyncError> {
        self.send(&encode(&ClientFrame::Leave)).await
    }

    /// Sends `data` to every other member of the current room.
    ///
    /// Fails with [`SyncError::PayloadTooLarge`] without sending if `data` is longer than
    /// the relay's `max_payload`.
    pub async fn broadcast(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(data.len())?;
        self.send(&encode(&ClientFrame::Broadcast { data })).await
    }

    /// Sends a keepalive ping. It counts as activity for the relay's idle timeout; the pong
    /// is consumed by [`recv`](Client::recv).
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.send(&encode(&ClientFrame::Ping)).await
    }

    /// Waits for the next event. Answers the relay's pings and hides keepalive traffic.
    ///
    /// Returns `Ok(None)` once the connection is closed cleanly, and the relay's reason as an
    /// error when it disconnected this client ([`SyncError::IdleTimeout`],
    /// [`SyncError::PingTimeout`], [`SyncError::ConnectionClosed`] on server shutdown, ...).
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        loop {
            if let Some(goodbye) = self.goodbye.take() {
                return Err(goodbye);
            }
            while let Some(body) = self.frames.next_frame(&mut self.read_buf).map_err(frame)? {
                match self.handle(&body) {
                    Ok(Some(event)) => return Ok(Some(event)),
                    Ok(None) => {}
                    Err(err) if self.closed => {
                        // The relay said goodbye: close our side at once, so that it need not
                        // wait for us to drop the client. The loop's top returns the reason.
                        self.goodbye = Some(err);
                        let _ = self.stream.shutdown().await;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
            if self.goodbye.is_some() {
                continue;
            }
            if self.closed {
                return Ok(None);
            }
            if self.read_buf.capacity() - self.read_buf.len() < 1024 {
                self.read_buf.reserve(8 * 1024);
            }
            let (mut reader, mut writer) = self.stream.split();
            let read = if self.write_buf.is_empty() {
                reader.read_buf(&mut self.read_buf).await
            } else {
                tokio::select! {
                    read = reader.read_buf(&mut self.read_buf) => read,
                    written = writer.write_buf(&mut self.write_buf) => {
                        if written.is_err() {
                            // What is flushed here (pongs, the tail of a cancelled send) can
                            // be given up: the read side tells why the connection failed
                            // (often a goodbye frame still unread).
                            self.write_buf.clear();
                        }
                        continue;
                    }
                }
            };
            match read.map_err(SyncError::from_connection_io)? {
                0 if self.read_buf.is_empty() => {
                    self.closed = true;
                    return Ok(None);
                }
                0 => {
                    self.closed = true;
                    return Err(SyncError::ConnectionReset);
                }
                _ => {}
            }
        }
    }

    /// Handles one frame: keepalive is answered and hidden, a disconnect becomes its error.
    fn handle(&mut self, body: &Bytes) -> Result<Option<ServerEvent>, SyncError> {
        let event = match decode_frame::<ServerFrame<'_>>(body).map_err(protocol)? {
            ServerFrame::Ping => {
                self.write_buf
                    .extend_from_slice(&encode(&ClientFrame::Pong));
                return Ok(None);
            }
            ServerFrame::Pong => return Ok(None),
            ServerFrame::Joined { client_id, room_id } => ServerEvent::Joined {
                client_id,
                room_id: room_id.to_owned(),
            },
            ServerFrame::Left { room_id } => ServerEvent::Left {
                room_id: room_id.to_owned(),
            },
            ServerFrame::PlayerJoined { client_id } => ServerEvent::PlayerJoined { client_id },
            ServerFrame::PlayerLeft { client_id } => ServerEvent::PlayerLeft { client_id },
            ServerFrame::Broadcast { sender_id, data } => ServerEvent::Broadcast {
                sender_id,
                data: body.slice_ref(data),
            },
            ServerFrame::Error { message } => ServerEvent::Error(message.to_owned()),
            ServerFrame::Disconnect { code, message } => {
                self.closed = true;
                return Err(match DisconnectCode::from_u8(code) {
                    Some(DisconnectCode::IdleTimeout) => SyncError::IdleTimeout,
                    Some(DisconnectCode::PingTimeout) => SyncError::PingTimeout,
                    Some(DisconnectCode::PayloadTooLarge) => SyncError::PayloadTooLarge,
                    Some(DisconnectCode::Protocol) => SyncError::Protocol(message.to_owned()),
                    Some(DisconnectCode::Kicked) => SyncError::Kicked(message.to_owned()),
                    Some(DisconnectCode::ServerShutdown) => SyncError::ConnectionClosed,
                    Some(DisconnectCode::Internal) | None => {
                        SyncError::Disconnected(message.to_owned())
                    }
                });
            }
            other @ (ServerFrame::Welcome { .. } | ServerFrame::Rejected { .. }) => {
                return Err(SyncError::Protocol(format!(
                    "unexpected handshake frame {other:?}"
                )))
            }
        };
        Ok(Some(event))
    }

    fn check_payload(&self, len: usize) -> Result<(), SyncError> {
        if len > self.max_payload {
            return Err(SyncError::PayloadTooLarge);
        }
        Ok(())
    }

    /// Queues `frame` and writes until nothing is queued. Cancel-safe: unsent bytes stay
    /// queued for the next call.
    async fn send(&mut self, frame: &[u8]) -> Result<(), SyncError> {
        if self.closed {
            return Err(SyncError::ConnectionClosed);
        }
        self.write_buf.extend_from_slice(frame);
        while !self.write_buf.is_empty() {
            self.stream
                .write_buf(&mut self.write_buf)
                .await
                .map_err(SyncError::from_connection_io)?;
        }
        Ok(())
    }

    /// Reads one whole frame during the handshake.
    async fn read_frame(&mut self) -> Result<Bytes, SyncError> {
        loop {
            if let Some(body) = self.frames.next_frame(&mut self.read_buf).map_err(frame)? {
                return Ok(body);
            }
            let n = self
                .stream
                .read_buf(&mut self.read_buf)
                .await
                .map_err(SyncError::from_connection_io)?;
            if n == 0 {
                return Err(SyncError::ConnectionClosed);
            }
        }
    }
}

fn protocol(err: FrameError) -> SyncError {
    SyncError::Protocol(err.to_string())
}

fn frame(err: FrameError) -> SyncError {
    match err {
        FrameError::TooLarge { .. } => SyncError::PayloadTooLarge,
        FrameError::Malformed(why) => SyncError::Protocol(why),
    }
}
