//! The client's side of one TCP connection, shared by the sender and the receiver (the socket
//! and the buffer of whole frames waiting to be written), the handshake that opens one, and
//! the [`Link`] both halves hold: the current connection, which a resume replaces, and what a
//! resume needs to know.

use super::reconnect::ReconnectPolicy;
use crate::error::SyncError;
use crate::protocol::{
    decode_frame, encode_into, ClientFrame, FrameError, FrameReader, RejectCode, ServerFrame,
    MAX_REASON_LEN, PROTOCOL_VERSION,
};
use crate::sync::lock;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use uuid::Uuid;

/// `ClientFrame::Bye`, encoded: length 1, tag 9.
const BYE_FRAME: &[u8] = &[0, 0, 0, 1, 9];

/// The socket and the outgoing buffer both halves share.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    /// Whole frames queued for the relay and not yet written.
    out: Mutex<BytesMut>,
    /// The relay said goodbye or closed, or this client did: sending is pointless.
    pub(super) closed: AtomicBool,
    /// Given up on for a resume: dropping it must not say goodbye, or a relay that still
    /// reads it would end the seat the resume takes back.
    pub(super) abandoned: AtomicBool,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            out: Mutex::new(BytesMut::new()),
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }

    pub(super) fn queue(&self, frame: &[u8]) {
        lock(&self.out).extend_from_slice(frame);
    }

    pub(super) fn has_pending(&self) -> bool {
        !lock(&self.out).is_empty()
    }

    pub(super) fn clear_pending(&self) {
        lock(&self.out).clear();
    }

    /// Writes what the socket takes now, without waiting; `true` once nothing is left.
    pub(super) fn try_flush(&self) -> io::Result<bool> {
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

    /// Encodes `frame` straight into the write buffer (one copy of the payload), then
    /// writes until nothing is queued.
    pub(super) async fn send(&self, frame: &ClientFrame<'_>) -> Result<(), SyncError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SyncError::ConnectionClosed);
        }
        encode_into(frame, &mut lock(&self.out));
        self.flush().await
    }

    /// Closes our write side, so the relay sees our end at once.
    pub(super) fn close_write(&self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

impl Drop for Connection {
    /// A client dropped while connected says goodbye if the socket takes it at once, so that
    /// a relay holding seats ends this one now rather than after its resume window. Only
    /// between two frames: a goodbye inside a half-written frame would corrupt it.
    fn drop(&mut self) {
        let quiet = self.closed.load(Ordering::Acquire) || self.abandoned.load(Ordering::Acquire);
        if !quiet && lock(&self.out).is_empty() {
            let _ = self.stream.try_write(BYE_FRAME);
        }
    }
}

/// What the relay's `Welcome` said.
#[derive(Debug)]
pub(super) struct Welcome {
    pub(super) client_id: Uuid,
    pub(super) max_payload: usize,
    pub(super) ping_interval: Duration,
    pub(super) resume_token: Bytes,
}

/// A connection the relay welcomed, and the bytes it read past the `Welcome`.
pub(super) struct Opened {
    pub(super) conn: Connection,
    pub(super) welcome: Welcome,
    pub(super) read_buf: BytesMut,
}

/// Connects to `addr` and says `Hello` with `credentials` (and `resume`, to take a held seat
/// back); the relay's refusal becomes its error.
pub(super) async fn open(
    addr: SocketAddr,
    credentials: &[u8],
    resume: &[u8],
) -> Result<Opened, SyncError> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let conn = Connection::new(stream);
    conn.send(&ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        credentials,
        resume,
    })
    .await?;
    let mut read_buf = BytesMut::with_capacity(8 * 1024);
    // Until the welcome tells the relay's limit, accept handshake-sized frames.
    let body = read_frame(
        &conn,
        &mut read_buf,
        FrameReader::for_payload(MAX_REASON_LEN),
    )
    .await?;
    let welcome = match decode_frame::<ServerFrame<'_>>(&body).map_err(protocol)? {
        ServerFrame::Welcome {
            client_id,
            version,
            max_payload,
            ping_interval_ms,
            resume_token,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(SyncError::Protocol(format!(
                    "the relay speaks protocol version {version}, this client {PROTOCOL_VERSION}"
                )));
            }
            Welcome {
                client_id,
                max_payload: max_payload as usize,
                ping_interval: Duration::from_millis(u64::from(ping_interval_ms)),
                resume_token: body.slice_ref(resume_token),
            }
        }
        ServerFrame::Rejected { code, message } => {
            // A refused handshake is over: no goodbye on drop.
            conn.closed.store(true, Ordering::Release);
            return Err(refusal(code, message));
        }
        other => {
            return Err(SyncError::Protocol(format!(
                "expected a welcome, got {other:?}"
            )))
        }
    };
    Ok(Opened {
        conn,
        welcome,
        read_buf,
    })
}

/// The error for a refused handshake.
fn refusal(code: u8, message: &str) -> SyncError {
    match RejectCode::from_u8(code) {
        Some(RejectCode::ServerFull) => SyncError::ServerFull,
        Some(RejectCode::AuthFailed) => SyncError::AuthFailed(message.to_owned()),
        Some(RejectCode::ConnectRejected) => SyncError::ConnectRejected(message.to_owned()),
        Some(RejectCode::ShuttingDown) => SyncError::ConnectionClosed,
        Some(RejectCode::ResumeFailed) => SyncError::ResumeFailed(message.to_owned()),
        Some(RejectCode::UnsupportedVersion | RejectCode::Protocol) | None => {
            SyncError::Protocol(message.to_owned())
        }
    }
}

/// Reads one whole frame during the handshake.
async fn read_frame(
    conn: &Connection,
    read_buf: &mut BytesMut,
    frames: FrameReader,
) -> Result<Bytes, SyncError> {
    loop {
        if let Some(body) = frames.next_frame(read_buf).map_err(frame_error)? {
            return Ok(body);
        }
        conn.stream
            .readable()
            .await
            .map_err(SyncError::from_connection_io)?;
        match conn.stream.try_read_buf(read_buf) {
            Ok(0) => return Err(SyncError::ConnectionClosed),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(SyncError::from_connection_io(err)),
        }
    }
}

pub(super) fn protocol(err: FrameError) -> SyncError {
    SyncError::Protocol(err.to_string())
}

pub(super) fn frame_error(err: FrameError) -> SyncError {
    match err {
        FrameError::TooLarge { .. } => SyncError::PayloadTooLarge,
        FrameError::Malformed(why) => SyncError::Protocol(why),
    }
}

/// What both halves of a client share: the current connection, which a resume replaces, and
/// what a resume needs (where, who, and the seat's latest token).
#[derive(Debug)]
pub(super) struct Link {
    current: Mutex<Arc<Connection>>,
    pub(super) addr: SocketAddr,
    pub(super) credentials: Bytes,
    pub(super) client_id: Uuid,
    pub(super) policy: Option<ReconnectPolicy>,
    /// The token of the latest `Welcome` (empty: the relay holds no seats).
    token: Mutex<Bytes>,
    /// The receiver is taking the seat back: sends fail with `Reconnecting` meanwhile.
    pub(super) reconnecting: AtomicBool,
    /// The seat is over (a goodbye that ends it, a refused resume, `close`): no resume.
    over: AtomicBool,
}

impl Link {
    pub(super) fn new(
        conn: Connection,
        addr: SocketAddr,
        credentials: Bytes,
        welcome: &Welcome,
        policy: Option<ReconnectPolicy>,
    ) -> Self {
        Self {
            current: Mutex::new(Arc::new(conn)),
            addr,
            credentials,
            client_id: welcome.client_id,
            policy,
            token: Mutex::new(welcome.resume_token.clone()),
            reconnecting: AtomicBool::new(false),
            over: AtomicBool::new(false),
        }
    }

    /// The current connection.
    pub(super) fn conn(&self) -> Arc<Connection> {
        Arc::clone(&lock(&self.current))
    }

    /// Whether a dropped connection may be resumed: a policy, and a seat the relay holds.
    pub(super) fn can_resume(&self) -> bool {
        self.policy.is_some() && !self.over.load(Ordering::Acquire) && !lock(&self.token).is_empty()
    }

    /// The seat is over: no resume from now on.
    pub(super) fn end_seat(&self) {
        self.over.store(true, Ordering::Release);
    }

    pub(super) fn token(&self) -> Bytes {
        lock(&self.token).clone()
    }

    /// A resume succeeded: `conn` is the connection from now on, `token` the next resume's.
    pub(super) fn replace(&self, conn: Connection, token: Bytes) {
        let old = std::mem::replace(&mut *lock(&self.current), Arc::new(conn));
        old.abandoned.store(true, Ordering::Release);
        *lock(&self.token) = token;
    }
}
