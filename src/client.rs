//! [`Client`]: connect to a relay, join a room, broadcast, and receive events; or split it into
//! a [`ClientSender`] and a [`ClientReceiver`] for two tasks.
//!
//! Every method is cancel-safe. Outgoing frames go whole into a buffer shared by both halves
//! (so a pong from the receiver never lands inside a frame of the sender) that outlives each
//! call: a cancelled send leaves its unsent tail there, and the next call (or `recv`) finishes
//! it. Incoming partial frames stay in the read buffer likewise. So `recv()` can sit in
//! `tokio::select!` or under a timeout without losing or corrupting a frame.
//!
//! The socket is shared, not split, and written only with non-blocking `try_write` under a
//! short lock that is never held across an `.await`.

use crate::error::SyncError;
use crate::event::ServerEvent;
use crate::protocol::{
    decode_frame, encode_into, ClientFrame, Decoded, EventDecoder, FrameError, FrameReader,
    RejectCode, ServerFrame, MAX_DIRECT_TARGETS, MAX_REASON_LEN, MAX_STATE_KEY_LEN,
    PROTOCOL_VERSION,
};
use crate::sync::lock;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpStream, ToSocketAddrs};
use uuid::Uuid;

/// `ClientFrame::Pong`, encoded: length 1, tag 5.
const PONG_FRAME: &[u8] = &[0, 0, 0, 1, 5];

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
    sender: ClientSender,
    receiver: ClientReceiver,
}

/// Options for a connection: [`Client::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), ghost_sync::SyncError> {
/// let client = ghost_sync::Client::builder()
///     .token("v1.616c696365.1767225600.9f2c...")
///     .connect("127.0.0.1:7777")
///     .await?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    token: Bytes,
}

impl ClientBuilder {
    /// The credentials to send in the handshake, for a relay that checks them (a signed
    /// token minted by the game backend, say). None by default.
    pub fn token(mut self, token: impl AsRef<[u8]>) -> Self {
        self.token = Bytes::copy_from_slice(token.as_ref());
        self
    }

    /// Connects and completes the handshake; see [`Client::connect`].
    pub async fn connect(self, addr: impl ToSocketAddrs) -> Result<Client, SyncError> {
        Client::handshake(addr, &self.token).await
    }
}

/// The sending half of a [`Client`], from [`Client::split`]. Clones share the connection;
/// frames from several clones never interleave inside one another.
#[derive(Debug, Clone)]
pub struct ClientSender {
    conn: Arc<Connection>,
    max_payload: usize,
}

/// The receiving half of a [`Client`], from [`Client::split`]. It answers the relay's pings
/// itself, so keep calling [`recv`](ClientReceiver::recv) even if the other half is idle.
#[derive(Debug)]
pub struct ClientReceiver {
    conn: Arc<Connection>,
    /// Bytes read but not yet decoded (at most one partial frame after `recv` returns).
    read_buf: BytesMut,
    frames: FrameReader,
    /// The relay said goodbye or closed: every further `recv` returns `Ok(None)`.
    closed: bool,
    /// The relay's goodbye, kept until `recv` has returned it (so that a `recv` cancelled
    /// while closing our side cannot lose it).
    goodbye: Option<SyncError>,
    /// Frames to events; gathers a member list split over several frames.
    events: EventDecoder,
}

/// The socket and the outgoing buffer both halves share.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Whole frames queued for the relay and not yet written.
    out: Mutex<BytesMut>,
    client_id: Uuid,
    /// The relay said goodbye or closed: sending is pointless.
    closed: AtomicBool,
}

impl Connection {
    fn queue(&self, frame: &[u8]) {
        lock(&self.out).extend_from_slice(frame);
    }

    fn has_pending(&self) -> bool {
        !lock(&self.out).is_empty()
    }

    /// Writes what the socket takes now, without waiting; `true` once nothing is left.
    fn try_flush(&self) -> io::Result<bool> {
        let mut out = lock(&self.out);
        while !out.is_empty() {
            match self.stream.try_write(&out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => out.advance(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Writes until nothing is queued. Cancel-safe: what is unsent stays queued.
    async fn flush(&self) -> Result<(), SyncError> {
        while !self.try_flush().map_err(SyncError::from_connection_io)? {
            self.stream
                .writable()
                .await
                .map_err(SyncError::from_connection_io)?;
        }
        Ok(())
    }

    /// Queues `frame` and writes until nothing is queued.
    /// Encodes `frame` straight into the write buffer (one copy of the payload), then
    /// writes until nothing is queued.
    async fn send(&self, frame: &ClientFrame<'_>) -> Result<(), SyncError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SyncError::ConnectionClosed);
        }
        encode_into(frame, &mut lock(&self.out));
        self.flush().await
    }

    /// Closes our write side, so the relay sees our end at once.
    fn close_write(&self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

impl Client {
    /// Connects and completes the handshake; returns once the relay welcomed the client.
    ///
    /// Fails with [`SyncError::ServerFull`], [`SyncError::ConnectRejected`] or
    /// [`SyncError::AuthFailed`] when the relay refuses, with the reason it gave.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, SyncError> {
        Self::handshake(addr, &[]).await
    }

    /// Options for a connection, such as a token for a relay that checks credentials.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    async fn handshake(addr: impl ToSocketAddrs, token: &[u8]) -> Result<Self, SyncError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Connection {
            stream,
            out: Mutex::new(BytesMut::new()),
            client_id: Uuid::nil(),
            closed: AtomicBool::new(false),
        });
        let mut receiver = ClientReceiver {
            conn: Arc::clone(&conn),
            read_buf: BytesMut::with_capacity(8 * 1024),
            // Until the welcome tells the relay's limit, accept handshake-sized frames.
            frames: FrameReader::for_payload(MAX_REASON_LEN),
            closed: false,
            goodbye: None,
            events: EventDecoder::new(),
        };
        conn.send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: token,
            resume: &[],
        })
        .await?;
        let body = receiver.read_frame().await?;
        match decode_frame::<ServerFrame<'_>>(&body).map_err(protocol)? {
            ServerFrame::Welcome {
                client_id,
                version,
                max_payload,
                ..
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(SyncError::Protocol(format!(
                        "the relay speaks protocol version {version}, this client {PROTOCOL_VERSION}"
                    )));
                }
                drop(conn);
                let mut conn = receiver.conn;
                // Nothing else holds the connection yet.
                if let Some(conn) = Arc::get_mut(&mut conn) {
                    conn.client_id = client_id;
                }
                let max_payload = max_payload as usize;
                let receiver = ClientReceiver {
                    conn: Arc::clone(&conn),
                    read_buf: receiver.read_buf,
                    // Reasons may be longer than a tiny max_payload; they are clipped to this.
                    frames: FrameReader::for_payload(max_payload.max(MAX_REASON_LEN)),
                    closed: false,
                    goodbye: None,
                    events: EventDecoder::new(),
                };
                Ok(Self {
                    sender: ClientSender { conn, max_payload },
                    receiver,
                })
            }
            ServerFrame::Rejected { code, message } => Err(match RejectCode::from_u8(code) {
                Some(RejectCode::ServerFull) => SyncError::ServerFull,
                Some(RejectCode::AuthFailed) => SyncError::AuthFailed(message.to_owned()),
                Some(RejectCode::ConnectRejected) => SyncError::ConnectRejected(message.to_owned()),
                Some(RejectCode::ShuttingDown) => SyncError::ConnectionClosed,
                Some(
                    RejectCode::UnsupportedVersion
                    | RejectCode::Protocol
                    | RejectCode::ResumeFailed,
                )
                | None => SyncError::Protocol(message.to_owned()),
            }),
            other => Err(SyncError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.sender.client_id()
    }

    /// The largest payload the relay accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.sender.max_payload
    }

    /// Asks to join `room_id` (leaving the current room). The answer comes through
    /// [`recv`](Client::recv): [`ServerEvent::Joined`] then [`ServerEvent::Members`], or
    /// [`ServerEvent::Error`].
    pub async fn join(&mut self, room_id: &str) -> Result<(), SyncError> {
        self.sender.join(room_id).await
    }

    /// [`join`](Client::join) with bytes for the server's join hook (a password, a loadout).
    pub async fn join_with(&mut self, room_id: &str, data: &[u8]) -> Result<(), SyncError> {
        self.sender.join_with(room_id, data).await
    }

    /// Leaves the current room; [`ServerEvent::Left`] confirms it.
    pub async fn leave(&mut self) -> Result<(), SyncError> {
        self.sender.leave().await
    }

    /// Sends `data` to every other member of the current room.
    ///
    /// Fails with [`SyncError::PayloadTooLarge`] without sending if `data` is longer than
    /// the relay's `max_payload`.
    pub async fn broadcast(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.sender.broadcast(data).await
    }

    /// Sends `data` to the members `targets` of the current room only; they receive it as
    /// [`ServerEvent::Direct`]. The relay refuses the whole send with an
    /// [`ServerEvent::Error`] if one of them is not in the room.
    ///
    /// Fails with [`SyncError::PayloadTooLarge`] without sending if the targets (16 bytes
    /// each) and `data` together are longer than the relay's `max_payload`, and with
    /// [`SyncError::InvalidRequest`] for an empty list or one of more than
    /// [`MAX_DIRECT_TARGETS`] ids.
    pub async fn send_to(&mut self, targets: &[Uuid], data: &[u8]) -> Result<(), SyncError> {
        self.sender.send_to(targets, data).await
    }

    /// Sends `data` to every other member of the current room as the latest state of `key`
    /// (an entity's position, say): they receive it as [`ServerEvent::Keyed`]. For a member
    /// that falls behind, the relay replaces this client's older frame of the same key still
    /// queued for it, rather than dropping the new one.
    pub async fn broadcast_keyed(&mut self, key: u32, data: &[u8]) -> Result<(), SyncError> {
        self.sender.broadcast_keyed(key, data).await
    }

    /// Sets the entry `key` of the current room's state to `value`, or deletes it if `value`
    /// is empty. The other members receive it as [`ServerEvent::State`], and so does every
    /// later joiner, after its member list. The entry goes when this client leaves the room.
    pub async fn set_state(&mut self, key: &str, value: &[u8]) -> Result<(), SyncError> {
        self.sender.set_state(key, value).await
    }

    /// Sends a keepalive ping. It counts as activity for the relay's idle timeout; the pong
    /// is consumed by [`recv`](Client::recv).
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.sender.ping().await
    }

    /// Says goodbye and closes the connection: the relay ends this client's seat at once
    /// (dropping the client closes it too, without the goodbye).
    pub async fn close(mut self) -> Result<(), SyncError> {
        self.sender.close().await
    }

    /// Waits for the next event. Answers the relay's pings and hides keepalive traffic.
    ///
    /// Returns `Ok(None)` once the connection is closed cleanly, and the relay's reason as an
    /// error when it disconnected this client ([`SyncError::IdleTimeout`],
    /// [`SyncError::PingTimeout`], [`SyncError::Kicked`], [`SyncError::ConnectionClosed`] on
    /// server shutdown, ...). Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        self.receiver.recv().await
    }

    /// Splits the client into a sender and a receiver, so one task can send while another
    /// receives.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ghost_sync::SyncError> {
    /// let client = ghost_sync::Client::connect("127.0.0.1:7777").await?;
    /// let (mut tx, mut rx) = client.split();
    /// tokio::spawn(async move {
    ///     while let Ok(Some(event)) = rx.recv().await {
    ///         println!("{event:?}");
    ///     }
    /// });
    /// tx.join("lobby").await?;
    /// tx.broadcast(b"hi").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(self) -> (ClientSender, ClientReceiver) {
        (self.sender, self.receiver)
    }
}

impl ClientSender {
    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.conn.client_id
    }

    /// The largest payload the relay accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// See [`Client::join`].
    pub async fn join(&mut self, room_id: &str) -> Result<(), SyncError> {
        self.join_with(room_id, &[]).await
    }

    /// See [`Client::join_with`].
    pub async fn join_with(&mut self, room_id: &str, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(room_id.len() + data.len())?;
        self.conn.send(&ClientFrame::Join { room_id, data }).await
    }

    /// See [`Client::leave`].
    pub async fn leave(&mut self) -> Result<(), SyncError> {
        self.conn.send(&ClientFrame::Leave).await
    }

    /// See [`Client::broadcast`].
    pub async fn broadcast(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(data.len())?;
        self.conn.send(&ClientFrame::Broadcast { data }).await
    }

    /// See [`Client::send_to`].
    pub async fn send_to(&mut self, targets: &[Uuid], data: &[u8]) -> Result<(), SyncError> {
        if targets.is_empty() || targets.len() > MAX_DIRECT_TARGETS {
            return Err(SyncError::InvalidRequest(format!(
                "a direct send names 1 to {MAX_DIRECT_TARGETS} members, not {}",
                targets.len()
            )));
        }
        self.check_payload(targets.len() * 16 + data.len())?;
        let ids: Vec<u8> = targets.iter().flat_map(|id| *id.as_bytes()).collect();
        self.conn
            .send(&ClientFrame::Direct {
                targets: &ids,
                data,
            })
            .await
    }

    /// See [`Client::broadcast_keyed`].
    pub async fn broadcast_keyed(&mut self, key: u32, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(data.len())?;
        self.conn.send(&ClientFrame::Keyed { key, data }).await
    }

    /// See [`Client::set_state`].
    pub async fn set_state(&mut self, key: &str, value: &[u8]) -> Result<(), SyncError> {
        if key.is_empty() || key.len() > MAX_STATE_KEY_LEN {
            return Err(SyncError::InvalidRequest(format!(
                "a room-state key is 1 to {MAX_STATE_KEY_LEN} bytes, not {}",
                key.len()
            )));
        }
        self.check_payload(key.len() + value.len())?;
        self.conn.send(&ClientFrame::SetState { key, value }).await
    }

    /// See [`Client::ping`].
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.conn.send(&ClientFrame::Ping).await
    }

    /// See [`Client::close`].
    pub async fn close(&mut self) -> Result<(), SyncError> {
        let said = self.conn.send(&ClientFrame::Bye).await;
        self.conn.close_write();
        said
    }

    fn check_payload(&self, len: usize) -> Result<(), SyncError> {
        if len > self.max_payload {
            return Err(SyncError::PayloadTooLarge);
        }
        Ok(())
    }
}

impl ClientReceiver {
    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.conn.client_id
    }

    /// See [`Client::recv`].
    pub async fn recv(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        loop {
            if let Some(goodbye) = self.goodbye.take() {
                return Err(goodbye);
            }
            loop {
                let body = match self.frames.next_frame(&mut self.read_buf) {
                    Ok(Some(body)) => body,
                    Ok(None) => break,
                    Err(err) => {
                        // Past a frame it cannot take, the stream cannot be followed any
                        // more: report it once, then end like a closed connection rather
                        // than fail every later call on the same bytes.
                        self.read_buf.clear();
                        self.close();
                        self.conn.close_write();
                        return Err(frame(err));
                    }
                };
                match self.handle(&body) {
                    Ok(Some(event)) => return Ok(Some(event)),
                    Ok(None) => {}
                    Err(err) if self.closed => {
                        // The relay said goodbye: close our side at once, so that it need not
                        // wait for us to drop the client. The loop's top returns the reason.
                        self.goodbye = Some(err);
                        self.conn.close_write();
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
            let stream = &self.conn.stream;
            if self.conn.has_pending() {
                // Pongs (or the tail of a cancelled send) wait to go out: write them as the
                // socket allows, while still reading.
                tokio::select! {
                    ready = stream.readable() => ready.map_err(SyncError::from_connection_io)?,
                    ready = stream.writable() => {
                        if ready.is_err() || self.conn.try_flush().is_err() {
                            // What is flushed here can be given up: the read side tells why
                            // the connection failed (often a goodbye frame still unread).
                            lock(&self.conn.out).clear();
                        }
                        continue;
                    }
                }
            } else {
                stream
                    .readable()
                    .await
                    .map_err(SyncError::from_connection_io)?;
            }
            match stream.try_read_buf(&mut self.read_buf) {
                Ok(0) if self.read_buf.is_empty() => {
                    self.close();
                    return Ok(None);
                }
                Ok(0) => {
                    self.close();
                    return Err(SyncError::ConnectionReset);
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(SyncError::from_connection_io(err)),
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.conn.closed.store(true, Ordering::Release);
    }

    /// Handles one frame: keepalive is answered and hidden, a disconnect becomes its error.
    fn handle(&mut self, body: &Bytes) -> Result<Option<ServerEvent>, SyncError> {
        match self.events.decode(body)? {
            Some(Decoded::Event(event)) => Ok(Some(event)),
            Some(Decoded::Ping) => {
                self.conn.queue(PONG_FRAME);
                Ok(None)
            }
            // Part of a member list, or the answer to our ping.
            None | Some(Decoded::Pong) => Ok(None),
            Some(Decoded::Disconnect(goodbye)) => {
                self.close();
                Err(goodbye.into())
            }
        }
    }

    /// Reads one whole frame during the handshake.
    async fn read_frame(&mut self) -> Result<Bytes, SyncError> {
        loop {
            if let Some(body) = self.frames.next_frame(&mut self.read_buf).map_err(frame)? {
                return Ok(body);
            }
            let stream = &self.conn.stream;
            stream
                .readable()
                .await
                .map_err(SyncError::from_connection_io)?;
            match stream.try_read_buf(&mut self.read_buf) {
                Ok(0) => return Err(SyncError::ConnectionClosed),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(SyncError::from_connection_io(err)),
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
