//! `Server::start` and `Relay::serve_connection`: connections over any transport (in-memory
//! streams, Unix sockets, a TCP stream accepted by the caller) pass admission, the handshake
//! and the whole frame pipeline, user layers included.

mod common;

use bytes::BytesMut;
use common::PATIENCE;
use ghost_sync::layers::BoxError;
use ghost_sync::protocol::{
    decode_frame, encode, ClientFrame, FrameReader, RejectCode, ServerFrame, PROTOCOL_VERSION,
};
use ghost_sync::{ClientMessage, FrameRequest, Server, ServerEvent, Uuid};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tower::filter::FilterLayer;

/// What a test needs of a server frame.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Welcome(Uuid),
    Rejected(u8, String),
    Joined(String),
    Members,
    PlayerJoined(Uuid),
    Broadcast(Uuid, Vec<u8>),
    Error(String),
    Disconnect(u8),
    Other,
}

/// Raw frames over any stream.
struct Wire<S> {
    stream: S,
    buf: BytesMut,
    frames: FrameReader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            frames: FrameReader::for_payload(1 << 20),
        }
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.stream.write_all(&encode(frame)).await.unwrap();
    }

    /// The next frame, or `None` at the end of the stream.
    async fn recv(&mut self) -> Option<Seen> {
        let read = async {
            loop {
                if let Some(body) = self.frames.next_frame(&mut self.buf).unwrap() {
                    return Some(match decode_frame::<ServerFrame<'_>>(&body).unwrap() {
                        ServerFrame::Welcome { client_id, .. } => Seen::Welcome(client_id),
                        ServerFrame::Rejected { code, message } => {
                            Seen::Rejected(code, message.to_owned())
                        }
                        ServerFrame::Joined { room_id, .. } => Seen::Joined(room_id.to_owned()),
                        ServerFrame::Members { .. } => Seen::Members,
                        ServerFrame::PlayerJoined { client_id } => Seen::PlayerJoined(client_id),
                        ServerFrame::Broadcast { sender_id, data } => {
                            Seen::Broadcast(sender_id, data.to_vec())
                        }
                        ServerFrame::Error { message } => Seen::Error(message.to_owned()),
                        ServerFrame::Disconnect { code, .. } => Seen::Disconnect(code),
                        _ => Seen::Other,
                    });
                }
                self.buf.reserve(4096);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Says hello and returns the client id the relay gave.
    async fn greet(&mut self) -> Uuid {
        self.send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: &[],
            resume: &[],
        })
        .await;
        match self.recv().await {
            Some(Seen::Welcome(id)) => id,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    async fn join(&mut self, room: &str) {
        self.send(&ClientFrame::Join {
            room_id: room,
            data: &[],
        })
        .await;
        assert_eq!(self.recv().await, Some(Seen::Joined(room.into())));
        assert_eq!(self.recv().await, Some(Seen::Members));
    }
}

fn local() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

#[tokio::test]
async fn in_memory_connections_join_and_relay() {
    let relay = Server::builder().build().start().await.unwrap();
    let handle = relay.handle();
    assert_eq!(handle.local_addr(), None, "start binds nothing");
    handle.create_room("lobby").unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    let mut alice = Wire::new(ours);
    let alice_id = alice.greet().await;
    alice.join("lobby").await;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    let mut bob = Wire::new(ours);
    bob.greet().await;
    bob.join("lobby").await;
    assert!(matches!(alice.recv().await, Some(Seen::PlayerJoined(_))));
    alice.send(&ClientFrame::Broadcast { data: b"hi" }).await;
    assert_eq!(
        bob.recv().await,
        Some(Seen::Broadcast(alice_id, b"hi".to_vec()))
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn admission_applies_to_served_connections() {
    let relay = Server::builder()
        .max_clients(1)
        .build()
        .start()
        .await
        .unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let _first = relay.serve_connection(theirs, local());
    let mut first = Wire::new(ours);
    first.greet().await;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    let mut second = Wire::new(ours);
    match second.recv().await {
        Some(Seen::Rejected(code, _)) => assert_eq!(code, RejectCode::ServerFull as u8),
        other => panic!("expected a refusal, got {other:?}"),
    }
    relay.handle().shutdown().await;
}

#[tokio::test]
async fn on_connect_sees_the_peer_given_to_serve_connection() {
    struct OnlyFrom(SocketAddr);
    impl ghost_sync::ServerHandler for OnlyFrom {
        fn on_connect(&self, addr: SocketAddr) -> bool {
            addr == self.0
        }
    }
    let allowed: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let relay = Server::builder()
        .handler(OnlyFrom(allowed))
        .build()
        .start()
        .await
        .unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, allowed);
    Wire::new(ours).greet().await;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    match Wire::new(ours).recv().await {
        Some(Seen::Rejected(code, _)) => assert_eq!(code, RejectCode::ConnectRejected as u8),
        other => panic!("expected a refusal, got {other:?}"),
    }
    relay.handle().shutdown().await;
}

#[tokio::test]
async fn user_layers_see_frames_of_served_connections() {
    let refuse_leave = |req: FrameRequest| -> Result<FrameRequest, BoxError> {
        match req.message() {
            ClientMessage::Leave => Err("stay a while".into()),
            _ => Ok(req),
        }
    };
    let relay = Server::builder()
        .layer(FilterLayer::new(refuse_leave))
        .build()
        .start()
        .await
        .unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    let mut wire = Wire::new(ours);
    wire.greet().await;
    wire.send(&ClientFrame::Leave).await;
    assert_eq!(wire.recv().await, Some(Seen::Error("stay a while".into())));
    relay.handle().shutdown().await;
}

#[tokio::test]
async fn the_connection_s_handle_completes_when_it_ends_and_shutdown_says_goodbye() {
    let relay = Server::builder().build().start().await.unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let served = relay.serve_connection(theirs, local());
    let mut wire = Wire::new(ours);
    wire.greet().await;
    let handle = relay.handle();
    let shutdown = tokio::spawn(async move { handle.shutdown().await });
    // Shutdown's farewell, then the end of the stream.
    assert!(matches!(wire.recv().await, Some(Seen::Disconnect(_))));
    drop(wire);
    tokio::time::timeout(PATIENCE, served)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .unwrap()
        .unwrap();
    // After shutdown, a connection is closed unanswered.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    relay.serve_connection(theirs, local());
    assert_eq!(Wire::new(ours).recv().await, None);
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_clients_share_a_room() {
    let dir = std::env::temp_dir().join(format!("ghost-sync-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let relay = Server::builder().build().start().await.unwrap();
    relay.handle().create_room("lobby").unwrap();
    let accepting = relay.clone();
    let acceptor = tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            accepting.serve_connection(stream, local());
        }
    });
    let mut alice = Wire::new(tokio::net::UnixStream::connect(&path).await.unwrap());
    let alice_id = alice.greet().await;
    alice.join("lobby").await;
    let mut bob = Wire::new(tokio::net::UnixStream::connect(&path).await.unwrap());
    bob.greet().await;
    bob.join("lobby").await;
    alice
        .send(&ClientFrame::Broadcast { data: b"over unix" })
        .await;
    assert_eq!(
        bob.recv().await,
        Some(Seen::Broadcast(alice_id, b"over unix".to_vec()))
    );
    acceptor.await.unwrap();
    relay.handle().shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tcp_stream_accepted_by_the_caller_serves_the_library_s_client() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = Server::builder().build().start().await.unwrap();
    relay.handle().create_room("lobby").unwrap();
    let accepting = relay.clone();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (stream, peer) = listener.accept().await.unwrap();
            accepting.serve_connection(stream, peer);
        }
    });
    let mut alice = common::joined(addr, "lobby").await;
    let mut bob = common::joined(addr, "lobby").await;
    assert!(matches!(
        common::next_event(&mut alice).await,
        ServerEvent::PlayerJoined { .. }
    ));
    bob.broadcast(b"tcp").await.unwrap();
    match common::next_event(&mut alice).await {
        ServerEvent::Broadcast { data, .. } => assert_eq!(&data[..], b"tcp"),
        other => panic!("unexpected {other:?}"),
    }
    relay.handle().shutdown().await;
}

#[tokio::test]
async fn the_handle_of_a_tcp_stream_completes_only_when_the_connection_ends() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = Server::builder().build().start().await.unwrap();
    let client = tokio::spawn(async move { ghost_sync::Client::connect(addr).await.unwrap() });
    let (stream, peer) = listener.accept().await.unwrap();
    let served = relay.serve_connection(stream, peer);
    let client = client.await.unwrap();
    // Welcomed, so the connection is being served: its task cannot have ended.
    assert!(
        !served.is_finished(),
        "the handle ended with the connection still open"
    );
    drop(client);
    tokio::time::timeout(PATIENCE, served)
        .await
        .unwrap()
        .unwrap();
    relay.handle().shutdown().await;
}

#[tokio::test]
async fn the_handler_outlives_the_relay_value_until_shutdown() {
    let (recorder, mut hooks) = common::Recorder::new();
    let relay = Server::builder()
        .handler(recorder)
        .build()
        .start()
        .await
        .unwrap();
    let handle = relay.handle();
    drop(relay);
    handle.create_room("later").unwrap();
    common::wait_hook(&mut hooks, |h| {
        *h == common::Hook::RoomCreate("later".into())
    })
    .await;
    handle.shutdown().await;
}
