//! [`ClientReceiver`]: the receiving half of a client. It reads the relay's frames, answers its
//! pings, turns the rest into events, and, with a [`ReconnectPolicy`](super::ReconnectPolicy),
//! takes the seat back when the connection drops.

use super::connection::{frame_error, Connection, Link, Opened};
use super::reconnect::resume;
use crate::error::SyncError;
use crate::event::ServerEvent;
use crate::protocol::{Decoded, DisconnectCode, EventDecoder, FrameReader, MAX_REASON_LEN};
use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// `ClientFrame::Pong`, encoded: length 1, tag 5.
const PONG_FRAME: &[u8] = &[0, 0, 0, 1, 5];

/// The receiving half of a [`Client`](super::Client), from
/// [`Client::split`](super::Client::split). It answers the relay's pings itself, so keep
/// calling [`recv`](ClientReceiver::recv) even if the other half is idle.
#[derive(Debug)]
pub struct ClientReceiver {
    link: Arc<Link>,
    conn: Arc<Connection>,
    /// Bytes read but not yet decoded (at most one partial frame after `recv` returns).
    read_buf: BytesMut,
    frames: FrameReader,
    /// The connection ended (the relay said goodbye or closed).
    closed: bool,
    /// How it ended, kept until `recv` has returned it (so that a `recv` cancelled while
    /// closing our side, or while resuming, cannot lose it); `None` inside: a clean end.
    ended: Option<Ended>,
    /// No frame for this long means the link is gone (twice the relay's ping interval):
    /// only watched when the client may resume.
    silence: Duration,
    /// Frames to events; gathers a member list split over several frames.
    events: EventDecoder,
}

/// How a connection ended, for `recv` to return (or to resume from).
#[derive(Debug)]
struct Ended {
    /// The error to return; `None`: `Ok(None)`, a clean end.
    error: Option<SyncError>,
    /// The relay may hold the seat: a drop without a goodbye, or a goodbye that holds it.
    resumable: bool,
}

impl ClientReceiver {
    pub(super) fn new(
        link: Arc<Link>,
        opened_buf: BytesMut,
        max_payload: usize,
        ping: Duration,
    ) -> Self {
        Self {
            conn: link.conn(),
            link,
            read_buf: opened_buf,
            // Reasons may be longer than a tiny max_payload; they are clipped to this.
            frames: FrameReader::for_payload(max_payload.max(MAX_REASON_LEN)),
            closed: false,
            ended: None,
            silence: ping.saturating_mul(2).max(Duration::from_millis(100)),
            events: EventDecoder::new(),
        }
    }

    /// The id the relay gave this client (the same after a resume).
    pub fn client_id(&self) -> Uuid {
        self.link.client_id
    }

    /// See [`Client::recv`](super::Client::recv).
    pub async fn recv(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        loop {
            if let Some(ended) = self.ended.take() {
                if ended.resumable && self.link.can_resume() {
                    self.link.reconnecting.store(true, Ordering::Release);
                    self.conn.abandoned.store(true, Ordering::Release);
                    // Kept while resuming: a cancelled `recv` finds it again.
                    let resumable = Ended {
                        error: ended.error,
                        resumable: true,
                    };
                    self.ended = Some(resumable);
                    let outcome = resume(&self.link).await;
                    let ended = self.ended.take().unwrap_or(Ended {
                        error: None,
                        resumable: false,
                    });
                    self.link.reconnecting.store(false, Ordering::Release);
                    match outcome {
                        Ok(opened) => {
                            self.resumed(opened);
                            continue;
                        }
                        Err(Some(refused)) => {
                            self.link.end_seat();
                            return Err(refused);
                        }
                        Err(None) => {
                            self.link.end_seat();
                            return ended.error.map_or(Ok(None), Err);
                        }
                    }
                }
                self.link.end_seat();
                return ended.error.map_or(Ok(None), Err);
            }
            if self.closed {
                return Ok(None);
            }
            if let Some(event) = self.read_event().await? {
                return Ok(Some(event));
            }
        }
    }

    /// Goes on over the new connection of a resume: a fresh decoder (a member list cut by the
    /// drop is given up), the relay's frames from its `Welcome` on.
    fn resumed(&mut self, opened: Opened) {
        let Opened {
            conn,
            welcome,
            read_buf,
        } = opened;
        self.link.replace(conn, welcome.resume_token.clone());
        self.conn = self.link.conn();
        self.read_buf = read_buf;
        self.frames = FrameReader::for_payload(welcome.max_payload.max(MAX_REASON_LEN));
        self.silence = welcome
            .ping_interval
            .saturating_mul(2)
            .max(Duration::from_millis(100));
        self.events = EventDecoder::new();
        self.closed = false;
    }

    /// Reads until an event; `Ok(None)` when the connection ended (how is in `self.ended`).
    async fn read_event(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        loop {
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
                        self.link.end_seat();
                        self.conn.close_write();
                        return Err(frame_error(err));
                    }
                };
                match self.handle(&body) {
                    Ok(Some(event)) => return Ok(Some(event)),
                    Ok(None) => {}
                    Err(err) => return Err(err),
                }
                if self.closed {
                    // The relay said goodbye: close our side at once, so that it need not
                    // wait for us to drop the client.
                    self.conn.close_write();
                    return Ok(None);
                }
            }
            if self.read_buf.capacity() - self.read_buf.len() < 1024 {
                self.read_buf.reserve(8 * 1024);
            }
            match self.wait_readable().await {
                Ok(true) => {}
                Ok(false) => {
                    // Silent for too long: the link is gone, whatever the socket says.
                    self.end(Some(SyncError::ConnectionReset), true);
                    return Ok(None);
                }
                Err(err) => {
                    self.end(Some(err), true);
                    return Ok(None);
                }
            }
            match self.conn.stream.try_read_buf(&mut self.read_buf) {
                Ok(0) if self.read_buf.is_empty() => {
                    self.end(None, true);
                    return Ok(None);
                }
                Ok(0) => {
                    self.end(Some(SyncError::ConnectionReset), true);
                    return Ok(None);
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => {
                    self.end(Some(SyncError::from_connection_io(err)), true);
                    return Ok(None);
                }
            }
        }
    }

    /// Waits until the socket has bytes (writing queued pongs meanwhile); `Ok(false)` when
    /// nothing came for `silence`, watched only when the client may resume.
    async fn wait_readable(&mut self) -> Result<bool, SyncError> {
        let watch = self.link.can_resume();
        let silence = self.silence;
        let conn = Arc::clone(&self.conn);
        let wait = async move {
            loop {
                let stream = &conn.stream;
                if conn.has_pending() {
                    // Pongs (or the tail of a cancelled send) wait to go out: write them as
                    // the socket allows, while still reading.
                    tokio::select! {
                        ready = stream.readable() => {
                            return ready.map_err(SyncError::from_connection_io);
                        }
                        ready = stream.writable() => {
                            if ready.is_err() || conn.try_flush().is_err() {
                                // What is flushed here can be given up: the read side tells
                                // why the connection failed (often a goodbye still unread).
                                conn.clear_pending();
                            }
                        }
                    }
                } else {
                    return stream
                        .readable()
                        .await
                        .map_err(SyncError::from_connection_io);
                }
            }
        };
        if !watch {
            return wait.await.map(|()| true);
        }
        match tokio::time::timeout(silence, wait).await {
            Ok(ready) => ready.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// The connection ended: `error` (or a clean end), which a resume may undo.
    fn end(&mut self, error: Option<SyncError>, resumable: bool) {
        self.close();
        self.ended = Some(Ended { error, resumable });
    }

    fn close(&mut self) {
        self.closed = true;
        self.conn.closed.store(true, Ordering::Release);
    }

    /// Handles one frame: keepalive is answered and hidden, a disconnect becomes how the
    /// connection ended.
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
                // These end the connection, not the seat: a relay holding seats keeps it.
                let resumable = matches!(
                    goodbye.kind(),
                    Some(
                        DisconnectCode::IdleTimeout
                            | DisconnectCode::PingTimeout
                            | DisconnectCode::SlowConsumer
                    )
                );
                self.end(Some(goodbye.into()), resumable);
                Ok(None)
            }
        }
    }
}
