//! Shared helpers for the integration tests: start a relay on a free loopback port, wait for
//! events with generous timeouts, record hook calls, and speak raw frames.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use ghost_sync::pipeline::FrameLayer;
use ghost_sync::protocol::{decode_frame, encode, ClientFrame, FrameReader, ServerFrame};
use ghost_sync::{
    Client, DisconnectReason, ServerEvent, ServerHandle, ServerHandler, SyncError, Uuid,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Long enough for a loaded 2-core CI machine; only reached when a test is failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Runs a server on 127.0.0.1 with a free port.
pub async fn start<L>(builder: ghost_sync::ServerBuilder<L>) -> (ServerHandle, SocketAddr)
where
    L: FrameLayer,
{
    let handle = builder.bind("127.0.0.1:0").build().run().await.unwrap();
    let addr = handle.local_addr().unwrap();
    (handle, addr)
}

/// Waits for an operation, failing the test instead of hanging.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The next event; fails on an error, a closed connection or a timeout.
pub async fn next_event(client: &mut Client) -> ServerEvent {
    match within("an event", client.recv()).await {
        Ok(Some(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The error `recv` ends with (skipping events).
pub async fn next_error(client: &mut Client) -> SyncError {
    loop {
        match within("an error", client.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("connection closed without an error"),
            Err(err) => return err,
        }
    }
}

/// Connects and joins `room`, returning the client after its `Joined` and member list.
pub async fn joined(addr: SocketAddr, room: &str) -> Client {
    let mut client = Client::connect(addr).await.unwrap();
    client.join(room).await.unwrap();
    expect_joined(&mut client, room).await;
    client
}

/// Consumes the `Joined` and `Members` events of a join into `room`; returns the members.
pub async fn expect_joined(client: &mut Client, room: &str) -> Vec<Uuid> {
    match next_event(client).await {
        ServerEvent::Joined { client_id, room_id } => {
            assert_eq!(client_id, client.client_id());
            assert_eq!(room_id, room);
        }
        other => panic!("expected Joined, got {other:?}"),
    }
    match next_event(client).await {
        ServerEvent::Members {
            room_id,
            client_ids,
        } => {
            assert_eq!(room_id, room);
            client_ids
        }
        other => panic!("expected Members, got {other:?}"),
    }
}

/// Joins `room` with a new client and consumes the `PlayerJoined` every earlier member gets.
pub async fn join_all(addr: SocketAddr, room: &str, n: usize) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..n {
        let newcomer = joined(addr, room).await;
        for other in clients.iter_mut() {
            assert_eq!(
                next_event(other).await,
                ServerEvent::PlayerJoined {
                    client_id: newcomer.client_id()
                }
            );
        }
        clients.push(newcomer);
    }
    clients
}

/// A hook call, as recorded by [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Connect(SocketAddr),
    Join(Uuid, String),
    Leave(Uuid, String),
    Broadcast(Uuid, String, Vec<u8>),
    Backpressure(Uuid, String),
    RoomCreate(String),
    RoomDelete(String),
    Disconnect(Uuid, DisconnectReason),
}

/// A handler that allows everything and reports every hook call on a channel. Made with a
/// handle (`reentrant`), it also calls back into the handle from every hook, as a real
/// handler may.
pub struct Recorder {
    tx: mpsc::UnboundedSender<Hook>,
    handle: Option<ServerHandle>,
}

impl Recorder {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Hook>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, handle: None }, rx)
    }

    /// For `ServerBuilder::handler_with`.
    pub fn reentrant() -> (
        impl FnOnce(ServerHandle) -> Recorder + Send + 'static,
        mpsc::UnboundedReceiver<Hook>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let make = move |handle| Self {
            tx,
            handle: Some(handle),
        };
        (make, rx)
    }

    fn record(&self, hook: Hook, room_id: &str) {
        if let Some(handle) = &self.handle {
            let _ = handle.room_client_count(room_id);
            let _ = handle.room_members(room_id);
            let _ = handle.get_room_meta(room_id, "k");
            let _ = handle.set_room_meta(room_id, "k", "v");
            let _ = handle.room_ids();
        }
        let _ = self.tx.send(hook);
    }
}

impl ServerHandler for Recorder {
    fn on_connect(&self, addr: SocketAddr) -> bool {
        self.record(Hook::Connect(addr), "");
        true
    }
    fn on_join(&self, client_id: Uuid, room_id: &str, _addr: SocketAddr) -> bool {
        self.record(Hook::Join(client_id, room_id.to_owned()), room_id);
        true
    }
    fn on_leave(&self, client_id: Uuid, room_id: &str) {
        self.record(Hook::Leave(client_id, room_id.to_owned()), room_id);
    }
    fn on_broadcast(&self, client_id: Uuid, room_id: &str, data: &[u8]) {
        let hook = Hook::Broadcast(client_id, room_id.to_owned(), data.to_vec());
        self.record(hook, room_id);
    }
    fn on_backpressure(&self, client_id: Uuid, room_id: &str) {
        self.record(Hook::Backpressure(client_id, room_id.to_owned()), room_id);
    }
    fn on_disconnect(&self, client_id: Uuid, reason: &DisconnectReason) {
        self.record(Hook::Disconnect(client_id, reason.clone()), "");
    }
    fn on_room_create(&self, room_id: &str) {
        self.record(Hook::RoomCreate(room_id.to_owned()), room_id);
    }
    fn on_room_delete(&self, room_id: &str) {
        self.record(Hook::RoomDelete(room_id.to_owned()), room_id);
    }
}

/// Waits for the first recorded hook call that `pick` accepts, skipping the others.
pub async fn wait_hook(
    rx: &mut mpsc::UnboundedReceiver<Hook>,
    pick: impl Fn(&Hook) -> bool,
) -> Hook {
    within("a hook call", async {
        loop {
            let hook = rx.recv().await.expect("handler dropped");
            if pick(&hook) {
                return hook;
            }
        }
    })
    .await
}

/// A client that speaks raw frames, for protocol-level tests.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    frames: FrameReader,
}

/// An owned copy of a server frame, easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Welcome {
        client_id: Uuid,
        max_payload: u32,
        ping_interval_ms: u32,
        resume_token: Vec<u8>,
    },
    Rejected {
        code: u8,
        message: String,
    },
    Joined {
        room_id: String,
    },
    Members {
        room_id: String,
        client_ids: Vec<Uuid>,
        more: bool,
    },
    Left {
        room_id: String,
    },
    PlayerJoined(Uuid),
    PlayerLeft(Uuid),
    Broadcast {
        sender_id: Uuid,
        data: Vec<u8>,
    },
    Error(String),
    Direct {
        sender_id: Uuid,
        data: Vec<u8>,
    },
    Keyed {
        sender_id: Uuid,
        key: u32,
        data: Vec<u8>,
    },
    State {
        owner: Uuid,
        key: String,
        value: Vec<u8>,
    },
    Dropped(u32),
    Resumed(u32),
    Ping,
    Pong,
    Disconnect {
        code: u8,
        message: String,
    },
}

impl RawClient {
    /// Connects without saying anything.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap())
    }

    /// Speaks raw frames over an already connected stream.
    pub fn over(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            frames: FrameReader::for_payload(16 * 1024 * 1024),
        }
    }

    /// Connects with a tiny receive buffer, so that a client that does not read stops the
    /// relay's writes to it quickly, then completes the handshake and joins `room`.
    pub async fn tiny_window_joined(addr: SocketAddr, room: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut raw = Self::over(socket.connect(addr).await.unwrap());
        raw.send(&ClientFrame::Hello {
            version: ghost_sync::protocol::PROTOCOL_VERSION,
            credentials: &[],
            resume: &[],
        })
        .await;
        assert!(matches!(raw.recv().await, Some(Frame::Welcome { .. })));
        raw.send(&ClientFrame::Join {
            room_id: room,
            data: &[],
        })
        .await;
        assert!(matches!(raw.recv().await, Some(Frame::Joined { .. })));
        raw
    }

    /// Connects and completes the handshake.
    pub async fn greeted(addr: SocketAddr) -> Self {
        let mut raw = Self::connect(addr).await;
        raw.send(&ClientFrame::Hello {
            version: ghost_sync::protocol::PROTOCOL_VERSION,
            credentials: &[],
            resume: &[],
        })
        .await;
        match raw.recv().await {
            Some(Frame::Welcome { .. }) => raw,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Connects, completes the handshake and joins `room`.
    pub async fn joined(addr: SocketAddr, room: &str) -> Self {
        let mut raw = Self::greeted(addr).await;
        raw.send(&ClientFrame::Join {
            room_id: room,
            data: &[],
        })
        .await;
        assert_eq!(
            raw.recv().await,
            Some(Frame::Joined {
                room_id: room.into()
            })
        );
        // The list may take several frames; the last says so.
        loop {
            match raw.recv().await {
                Some(Frame::Members {
                    room_id,
                    more: true,
                    ..
                }) if room_id == room => continue,
                Some(Frame::Members { room_id, .. }) if room_id == room => return raw,
                other => panic!("expected the member list, got {other:?}"),
            }
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.send_bytes(&encode(frame)).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` once the relay closed the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        within("a frame", async {
            loop {
                if let Some(body) = self.frames.next_frame(&mut self.buf).unwrap() {
                    return Some(owned(&body));
                }
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Skips frames until one that is not keepalive.
    pub async fn recv_skipping_pings(&mut self) -> Option<Frame> {
        self.recv_skipping(|f| matches!(f, Frame::Ping | Frame::Pong))
            .await
    }

    /// Skips the frames `skip` accepts and returns the next one.
    pub async fn recv_skipping(&mut self, skip: impl Fn(&Frame) -> bool) -> Option<Frame> {
        loop {
            match self.recv().await {
                Some(frame) if skip(&frame) => continue,
                other => return other,
            }
        }
    }
}

fn owned(body: &Bytes) -> Frame {
    match decode_frame::<ServerFrame<'_>>(body).unwrap() {
        ServerFrame::Welcome {
            client_id,
            max_payload,
            ping_interval_ms,
            resume_token,
            ..
        } => Frame::Welcome {
            client_id,
            max_payload,
            ping_interval_ms,
            resume_token: resume_token.to_vec(),
        },
        ServerFrame::Rejected { code, message } => Frame::Rejected {
            code,
            message: message.to_owned(),
        },
        ServerFrame::Joined { room_id, .. } => Frame::Joined {
            room_id: room_id.to_owned(),
        },
        ServerFrame::Members {
            room_id,
            client_ids,
            more,
        } => Frame::Members {
            room_id: room_id.to_owned(),
            client_ids: ghost_sync::protocol::member_ids(client_ids).collect(),
            more,
        },
        ServerFrame::Left { room_id } => Frame::Left {
            room_id: room_id.to_owned(),
        },
        ServerFrame::PlayerJoined { client_id } => Frame::PlayerJoined(client_id),
        ServerFrame::PlayerLeft { client_id } => Frame::PlayerLeft(client_id),
        ServerFrame::Broadcast { sender_id, data } => Frame::Broadcast {
            sender_id,
            data: data.to_vec(),
        },
        ServerFrame::Error { message } => Frame::Error(message.to_owned()),
        ServerFrame::Direct { sender_id, data } => Frame::Direct {
            sender_id,
            data: data.to_vec(),
        },
        ServerFrame::Keyed {
            sender_id,
            key,
            data,
        } => Frame::Keyed {
            sender_id,
            key,
            data: data.to_vec(),
        },
        ServerFrame::State { owner, key, value } => Frame::State {
            owner,
            key: key.to_owned(),
            value: value.to_vec(),
        },
        ServerFrame::Dropped { count } => Frame::Dropped(count),
        ServerFrame::Resumed { missed } => Frame::Resumed(missed),
        ServerFrame::Ping => Frame::Ping,
        ServerFrame::Pong => Frame::Pong,
        ServerFrame::Disconnect { code, message } => Frame::Disconnect {
            code,
            message: message.to_owned(),
        },
    }
}
