//! [`TestClient`]: a client for tests that does its own handshake over a raw socket, sends any
//! frame (well-formed or not), and panics with a readable message when an expectation fails.

use super::names::Names;
use super::wire::{Received, Wire};
use super::DEFAULT_TIMEOUT;
use crate::protocol::decode_frame;
use crate::protocol::{ClientFrame, RejectCode, ServerFrame, PROTOCOL_VERSION};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use uuid::Uuid;

/// How many of the frames a client consumed are kept, to show in a failure message.
pub(super) const HISTORY: usize = 6;

/// A connection to a relay under test.
///
/// Sending methods write at once and panic if the socket fails
/// ([`try_send_frame`](TestClient::try_send_frame) and
/// [`try_send_raw`](TestClient::try_send_raw) return the error instead). They check nothing the relay should check: a test can send a payload over
/// `max_payload` or bytes that are not a frame at all.
///
/// A write the relay takes no byte of for the client's timeout fails (the relay is not
/// reading), rather than waiting for ever.
///
/// While waiting in an expectation the client answers the relay's pings with pongs, so a long
/// test is not disconnected for a ping timeout; between expectations it reads nothing (the
/// relay's pings wait in the socket, and an unanswered one ends the connection at the next
/// ping tick). Dropping it reads what is waiting, then closes the connection with a FIN and
/// no `Leave` frame, as a client that quits does (bytes that arrive in between would still
/// turn the close into a reset); [`sever`](TestClient::sever) resets it on purpose.
pub struct TestClient {
    pub(super) wire: Wire,
    pub(super) id: Uuid,
    pub(super) max_payload: usize,
    pub(super) name: String,
    pub(super) names: Names,
    pub(super) timeout: Duration,
    /// The last frames consumed, for failure messages.
    pub(super) history: VecDeque<Received>,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Options for a [`TestClient`]: from [`TestClient::builder`] or
/// [`TestRelay::client_builder`](super::TestRelay::client_builder).
#[derive(Debug, Clone)]
pub struct TestClientBuilder {
    addr: SocketAddr,
    name: Option<String>,
    token: Bytes,
    receive_buffer: Option<u32>,
    timeout: Duration,
    names: Names,
}

impl TestClientBuilder {
    pub(super) fn new(addr: SocketAddr, names: Names) -> Self {
        Self {
            addr,
            name: None,
            token: Bytes::new(),
            receive_buffer: None,
            timeout: DEFAULT_TIMEOUT,
            names,
        }
    }

    /// The name failure messages call the client by ("alice"); by default "client N" for a
    /// relay's clients in the order they were made, "client" otherwise.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The credentials the handshake sends; none by default.
    pub fn token(mut self, token: impl AsRef<[u8]>) -> Self {
        self.token = Bytes::copy_from_slice(token.as_ref());
        self
    }

    /// The socket's receive buffer (`SO_RCVBUF`), set before connecting so that the TCP
    /// window stays that small: with 4096, a client that
    /// [stops reading](TestClient::stop_reading) stalls the relay's writes to it after a few
    /// KiB instead of the megabytes a default window absorbs.
    pub fn receive_buffer(mut self, bytes: u32) -> Self {
        self.receive_buffer = Some(bytes);
        self
    }

    /// How long each expectation waits; [`DEFAULT_TIMEOUT`] by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| "client".to_owned())
    }

    async fn tcp(&self) -> TcpStream {
        let label = self.label();
        let addr = self.addr;
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .unwrap_or_else(|err| panic!("{label}: cannot open a socket: {err}"));
        if let Some(bytes) = self.receive_buffer {
            socket
                .set_recv_buffer_size(bytes)
                .unwrap_or_else(|err| panic!("{label}: cannot set the receive buffer: {err}"));
        }
        let stream = tokio::time::timeout(self.timeout, socket.connect(addr))
            .await
            .unwrap_or_else(|_| {
                panic!("{label}: connecting to {addr} took over {:?}", self.timeout)
            })
            .unwrap_or_else(|err| panic!("{label}: cannot connect to {addr}: {err}"));
        let _ = stream.set_nodelay(true);
        stream
    }

    /// Sends the `Hello` and reads the answer.
    async fn hello(&self) -> (Wire, Result<(Uuid, usize), (u8, String)>) {
        let label = self.label();
        let mut wire = Wire::new(self.tcp().await);
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: &self.token,
            resume: &[],
        };
        if let Err(err) = wire.send(&hello).await {
            panic!("{label}: sending the Hello failed: {err}");
        }
        let body = match tokio::time::timeout(self.timeout, wire.next_body()).await {
            Err(_) => panic!(
                "{label}: the relay did not answer the Hello within {:?}",
                self.timeout
            ),
            Ok(Err(end)) => panic!("{label}: no answer to the Hello: {end:?}"),
            Ok(Ok(body)) => body,
        };
        let answer = match decode_frame::<ServerFrame<'_>>(&body) {
            Ok(ServerFrame::Welcome {
                client_id,
                max_payload,
                ..
            }) => Ok((client_id, max_payload as usize)),
            Ok(ServerFrame::Rejected { code, message }) => Err((code, message.to_owned())),
            other => panic!("{label}: expected a Welcome or a Rejected, got {other:?}"),
        };
        (wire, answer)
    }

    /// Connects and completes the handshake; panics if the relay refuses it.
    pub async fn connect(self) -> TestClient {
        let label = self.label();
        let (mut wire, answer) = self.hello().await;
        let (id, max_payload) = answer.unwrap_or_else(|(code, message)| {
            panic!(
                "{label}: the relay refused the handshake: {} ({message:?})",
                reject_name(code)
            )
        });
        wire.set_max_payload(max_payload);
        wire.write_patience = self.timeout;
        self.names.insert(id, &label);
        TestClient {
            wire,
            id,
            max_payload,
            name: label,
            names: self.names,
            timeout: self.timeout,
            history: VecDeque::new(),
        }
    }

    /// Connects and expects the relay to refuse the handshake with `code`; returns the reason
    /// it gave. Panics if it welcomes the client or refuses with another code.
    pub async fn expect_rejected(self, code: RejectCode) -> String {
        let label = self.label();
        match self.hello().await.1 {
            Ok((id, _)) => panic!(
                "{label}: expected the handshake to be refused with {code:?}, but the relay \
                 welcomed the client as {id}"
            ),
            Err((got, message)) if got == code as u8 => message,
            Err((got, message)) => panic!(
                "{label}: expected the handshake to be refused with {code:?}, got {} \
                 ({message:?})",
                reject_name(got)
            ),
        }
    }
}

/// A reject code's name, or its number if it is unknown.
fn reject_name(code: u8) -> String {
    match RejectCode::from_u8(code) {
        Some(code) => format!("{code:?}"),
        None => format!("unknown reject code {code}"),
    }
}

impl TestClient {
    /// Options for a client of the relay at `addr` (usually
    /// [`TestRelay::client_builder`](super::TestRelay::client_builder) instead).
    pub fn builder(addr: SocketAddr) -> TestClientBuilder {
        TestClientBuilder::new(addr, Names::default())
    }

    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.id
    }

    /// The name failure messages call this client by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest payload the relay said it accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// This client with expectations waiting `timeout` each.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.set_timeout(timeout);
        self
    }

    /// Makes expectations (and a write the relay does not take) wait `timeout` each from now
    /// on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.wire.write_patience = timeout;
        self.timeout = timeout;
    }

    /// How long each expectation waits.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks to join `room` (nothing is awaited: see [`expect_joined`](Self::expect_joined)).
    pub async fn join(&mut self, room: &str) {
        self.join_with(room, &[]).await;
    }

    /// Asks to join `room` with bytes for the server's join hook (a password).
    pub async fn join_with(&mut self, room: &str, data: &[u8]) {
        self.send_frame(&ClientFrame::Join {
            room_id: room,
            data,
        })
        .await;
    }

    /// Leaves the current room (see [`expect_left`](Self::expect_left)).
    pub async fn leave(&mut self) {
        self.send_frame(&ClientFrame::Leave).await;
    }

    /// Broadcasts `data` to the room; the length is not checked against `max_payload`.
    pub async fn broadcast(&mut self, data: impl AsRef<[u8]>) {
        self.send_frame(&ClientFrame::Broadcast {
            data: data.as_ref(),
        })
        .await;
    }

    /// Sends a keepalive ping; its pong is skipped by every expectation but
    /// [`expect_round_trip`](Self::expect_round_trip).
    pub async fn ping(&mut self) {
        self.send_frame(&ClientFrame::Ping).await;
    }

    /// Sends any client frame; panics if the socket fails.
    pub async fn send_frame(&mut self, frame: &ClientFrame<'_>) {
        if let Err(err) = self.try_send_frame(frame).await {
            panic!("{}: sending {frame:?} failed: {err}", self.who());
        }
    }

    /// Sends any client frame; returns the socket's error (for a test that keeps sending
    /// while the relay may already be closing the connection).
    pub async fn try_send_frame(&mut self, frame: &ClientFrame<'_>) -> io::Result<()> {
        self.wire.send(frame).await
    }

    /// Writes raw bytes (hostile input: half a frame, a lying length prefix); panics if the
    /// socket fails.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(err) = self.try_send_raw(bytes).await {
            panic!(
                "{}: writing {} raw bytes failed: {err}",
                self.who(),
                bytes.len()
            );
        }
    }

    /// Writes raw bytes; returns the socket's error.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.send_raw(bytes).await
    }

    /// "name [short id]", for messages.
    pub(super) fn who(&self) -> String {
        self.names.who(self.id)
    }
}
