//! The test client's connection: a raw socket speaking the public codec, so that every fault
//! the kit injects happens to a real TCP connection. It answers the relay's pings and turns
//! frames into [`Received`] values with the client's own [`EventDecoder`], so that it reads
//! the relay exactly as a [`Client`](crate::Client) does.

use super::DEFAULT_TIMEOUT;
use crate::event::ServerEvent;
use crate::protocol::{
    encode_into, ClientFrame, Decoded, EventDecoder, EventError, FrameReader, Goodbye,
    MAX_REASON_LEN,
};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What a test client received: an event, keepalive, the relay's goodbye, or the end.
///
/// The relay's pings never show up here: the client answers them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// An event, as [`Client::recv`](crate::Client::recv) would return it (a member list
    /// split over several frames comes as one [`ServerEvent::Members`]).
    Event(ServerEvent),
    /// The answer to this client's [`ping`](super::TestClient::ping).
    Pong,
    /// The relay's last frame: why it is closing the connection.
    Disconnect {
        /// A [`DisconnectCode`](crate::protocol::DisconnectCode) value.
        code: u8,
        /// The reason's text.
        message: String,
    },
    /// The relay closed the connection (end of stream).
    Closed,
    /// The connection broke (a reset, a broken pipe): the error's text.
    Reset(String),
    /// The relay sent something this kit cannot follow (a frame that does not decode, a
    /// second `Welcome`, a member list broken by another frame): a bug in the relay, and
    /// always a failure.
    Invalid(String),
}

impl Received {
    /// True for the two ways a stream ends: [`Closed`](Received::Closed) and
    /// [`Reset`](Received::Reset).
    pub fn is_end(&self) -> bool {
        matches!(self, Self::Closed | Self::Reset(_))
    }
}

/// A raw connection with its buffers.
#[derive(Debug)]
pub(super) struct Wire {
    pub(super) stream: TcpStream,
    /// Bytes read and not yet split into frames.
    pub(super) buf: BytesMut,
    pub(super) frames: FrameReader,
    /// Frame bodies a slow reader's task split off and has not handed out yet.
    pub(super) pending: VecDeque<Bytes>,
    /// How the stream ended, once it did: every later read returns it again.
    pub(super) ended: Option<Received>,
    /// Bytes queued for the relay and not yet written (a cancelled write keeps its tail).
    out: BytesMut,
    /// Frames to events, as the client decodes them; gathers split member lists.
    events: EventDecoder,
    /// How long a write may wait for the relay to take a byte before it fails.
    pub(super) write_patience: Duration,
}

/// Reads what is waiting before the socket closes: closing a TCP socket with unread bytes
/// sends a reset, which the relay would see as a transport error rather than a close.
impl Drop for Wire {
    fn drop(&mut self) {
        let mut scratch = [0u8; 4096];
        while let Ok(n) = self.stream.try_read(&mut scratch) {
            if n == 0 {
                break;
            }
        }
    }
}

impl Wire {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            // Until the welcome tells the relay's limit, accept handshake-sized frames.
            frames: FrameReader::for_payload(MAX_REASON_LEN),
            pending: VecDeque::new(),
            ended: None,
            out: BytesMut::new(),
            events: EventDecoder::new(),
            write_patience: DEFAULT_TIMEOUT,
        }
    }

    /// Accepts frames carrying up to `max_payload` bytes (and reasons, clipped to
    /// `MAX_REASON_LEN`, whatever the limit).
    pub(super) fn set_max_payload(&mut self, max_payload: usize) {
        self.frames = FrameReader::for_payload(max_payload.max(MAX_REASON_LEN));
    }

    /// Encodes `frame` and writes it (and anything left from before).
    pub(super) async fn send(&mut self, frame: &ClientFrame<'_>) -> io::Result<()> {
        encode_into(frame, &mut self.out);
        self.flush().await
    }

    /// Writes raw bytes, framed or not.
    pub(super) async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.flush().await
    }

    /// Writes until nothing is queued; cancel-safe (the unsent tail stays queued).
    async fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.advance(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    match tokio::time::timeout(self.write_patience, self.stream.writable()).await {
                        Ok(ready) => ready?,
                        Err(_) => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "the relay took no byte for {:?}: it is not reading",
                                    self.write_patience
                                ),
                            ))
                        }
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// The next complete frame body, or how the stream ended.
    pub(super) async fn next_body(&mut self) -> Result<Bytes, Received> {
        loop {
            if let Some(body) = self.pending.pop_front() {
                return Ok(body);
            }
            match self.frames.next_frame(&mut self.buf) {
                Ok(Some(body)) => return Ok(body),
                Ok(None) => {}
                Err(err) => {
                    // Past a frame it cannot take the stream cannot be followed.
                    self.buf.clear();
                    self.ended = Some(Received::Invalid(err.to_string()));
                }
            }
            if let Some(end) = &self.ended {
                return Err(end.clone());
            }
            self.buf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => self.ended = Some(Received::Closed),
                Ok(_) => {}
                Err(err) => self.ended = Some(Received::Reset(err.to_string())),
            }
        }
    }

    /// The next thing received after the handshake; answers pings on the way.
    pub(super) async fn next_received(&mut self) -> Received {
        loop {
            let body = match self.next_body().await {
                Ok(body) => body,
                Err(end) => return end,
            };
            if let Some(received) = self.interpret(&body).await {
                return received;
            }
        }
    }

    /// What a frame body means; `None` for a frame handled here (a ping, part of a list).
    async fn interpret(&mut self, body: &Bytes) -> Option<Received> {
        match self.events.decode(body) {
            Ok(Some(Decoded::Event(event))) => Some(Received::Event(event)),
            Ok(Some(Decoded::Ping)) => {
                // A relay that is gone shows up on the next read; nothing to do here.
                let _ = self.send(&ClientFrame::Pong).await;
                None
            }
            Ok(Some(Decoded::Pong)) => Some(Received::Pong),
            Ok(Some(Decoded::Disconnect(Goodbye { code, message }))) => {
                Some(Received::Disconnect { code, message })
            }
            Ok(None) => None,
            Err(err) => Some(Received::Invalid(invalid(err))),
        }
    }
}

/// The words of a [`Received::Invalid`]; the kit's own where it had its own before.
fn invalid(err: EventError) -> String {
    match err {
        EventError::Handshake(frame) => format!("a handshake frame after the handshake: {frame:?}"),
        EventError::MemberListTooLong { max } => format!("a member list of more than {max} ids"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, ServerFrame};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use uuid::Uuid;

    /// A wire reading `frames` from a real loopback socket, then the end of the stream.
    async fn wire_reading(frames: Vec<Bytes>) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for frame in frames {
                stream.write_all(&frame).await.unwrap();
            }
        });
        let wire = Wire::new(TcpStream::connect(addr).await.unwrap());
        relay.await.unwrap();
        wire
    }

    fn members(room_id: &str, more: bool) -> Bytes {
        encode(&ServerFrame::Members {
            room_id,
            client_ids: Uuid::from_u128(7).as_bytes(),
            more,
        })
    }

    #[tokio::test]
    async fn a_broken_member_list_is_invalid_as_the_client_refuses_it() {
        let mut wire = wire_reading(vec![
            members("r", true),
            encode(&ServerFrame::Error { message: "x" }),
            members("q", false),
        ])
        .await;
        assert_eq!(
            wire.next_received().await,
            Received::Invalid("the member list of r was cut short by another frame".to_owned())
        );
        assert_eq!(
            wire.next_received().await,
            Received::Event(ServerEvent::Members {
                room_id: "q".to_owned(),
                client_ids: vec![Uuid::from_u128(7)],
            })
        );
        assert_eq!(wire.next_received().await, Received::Closed);
    }

    #[tokio::test]
    async fn a_split_list_a_goodbye_and_a_late_welcome_read_as_before() {
        let welcome = ServerFrame::Welcome {
            client_id: Uuid::nil(),
            version: 1,
            max_payload: 1024,
            ping_interval_ms: 1000,
            resume_token: &[],
        };
        let mut wire = wire_reading(vec![
            members("r", true),
            members("r", false),
            encode(&ServerFrame::Pong),
            encode(&welcome),
            encode(&ServerFrame::Disconnect {
                code: 4,
                message: "bye",
            }),
        ])
        .await;
        assert_eq!(
            wire.next_received().await,
            Received::Event(ServerEvent::Members {
                room_id: "r".to_owned(),
                client_ids: vec![Uuid::from_u128(7); 2],
            })
        );
        assert_eq!(wire.next_received().await, Received::Pong);
        assert_eq!(
            wire.next_received().await,
            Received::Invalid(format!(
                "a handshake frame after the handshake: {welcome:?}"
            ))
        );
        assert_eq!(
            wire.next_received().await,
            Received::Disconnect {
                code: 4,
                message: "bye".to_owned()
            }
        );
    }
}
