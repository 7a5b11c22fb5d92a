//! The client's mapping of what a relay says (or does) to `SyncError`, against a scripted
//! fake relay speaking raw frames.

use ghost_sync::protocol::{
    encode, ClientFrame, DisconnectCode, RejectCode, ServerFrame, PROTOCOL_VERSION,
};
use ghost_sync::{Client, SyncError, Uuid};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fake relay that reads the client's hello, then plays `script` on the socket.
async fn fake<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let hello = encode(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials: &[],
            resume: &[],
        });
        let mut got = vec![0; hello.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, hello);
        script(stream).await;
    });
    addr
}

/// Whether an error is the expected one.
type Expect = fn(&SyncError) -> bool;

fn welcome(version: u16) -> bytes::Bytes {
    encode(&ServerFrame::Welcome {
        client_id: Uuid::from_u128(1),
        version,
        max_payload: 1024,
        ping_interval_ms: 1000,
        resume_token: &[],
    })
}

async fn recv_error(addr: SocketAddr) -> SyncError {
    let mut client = Client::connect(addr).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), client.recv())
        .await
        .expect("timed out")
        .unwrap_err()
}

#[tokio::test]
async fn each_disconnect_code_becomes_its_error() {
    let cases: [(DisconnectCode, Expect); 7] = [
        (DisconnectCode::IdleTimeout, |e| {
            matches!(e, SyncError::IdleTimeout)
        }),
        (DisconnectCode::PingTimeout, |e| {
            matches!(e, SyncError::PingTimeout)
        }),
        (DisconnectCode::PayloadTooLarge, |e| {
            matches!(e, SyncError::PayloadTooLarge)
        }),
        (
            DisconnectCode::Protocol,
            |e| matches!(e, SyncError::Protocol(m) if m == "why"),
        ),
        (
            DisconnectCode::Kicked,
            |e| matches!(e, SyncError::Kicked(m) if m == "why"),
        ),
        (DisconnectCode::ServerShutdown, |e| {
            matches!(e, SyncError::ConnectionClosed)
        }),
        (
            DisconnectCode::Internal,
            |e| matches!(e, SyncError::Disconnected(m) if m == "why"),
        ),
    ];
    for (code, expected) in cases {
        let addr = fake(move |mut s| async move {
            s.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
            let bye = encode(&ServerFrame::Disconnect {
                code: code as u8,
                message: "why",
            });
            s.write_all(&bye).await.unwrap();
        })
        .await;
        let err = recv_error(addr).await;
        assert!(expected(&err), "{code:?} became {err:?}");
    }
}

#[tokio::test]
async fn each_reject_code_becomes_its_error() {
    let cases: [(RejectCode, Expect); 5] = [
        (RejectCode::ServerFull, |e| {
            matches!(e, SyncError::ServerFull)
        }),
        (
            RejectCode::ConnectRejected,
            |e| matches!(e, SyncError::ConnectRejected(m) if m == "no"),
        ),
        (
            RejectCode::AuthFailed,
            |e| matches!(e, SyncError::AuthFailed(m) if m == "no"),
        ),
        (
            RejectCode::UnsupportedVersion,
            |e| matches!(e, SyncError::Protocol(m) if m == "no"),
        ),
        (RejectCode::ShuttingDown, |e| {
            matches!(e, SyncError::ConnectionClosed)
        }),
    ];
    for (code, expected) in cases {
        let addr = fake(move |mut s| async move {
            let no = encode(&ServerFrame::Rejected {
                code: code as u8,
                message: "no",
            });
            s.write_all(&no).await.unwrap();
        })
        .await;
        let err = Client::connect(addr).await.unwrap_err();
        assert!(expected(&err), "{code:?} became {err:?}");
    }
}

#[tokio::test]
async fn a_welcome_of_another_version_is_a_protocol_error() {
    let addr = fake(|mut s| async move {
        s.write_all(&welcome(PROTOCOL_VERSION + 1)).await.unwrap();
    })
    .await;
    assert!(matches!(
        Client::connect(addr).await,
        Err(SyncError::Protocol(_))
    ));
}

#[tokio::test]
async fn garbage_from_the_relay_is_a_protocol_error() {
    let addr = fake(|mut s| async move {
        s.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        s.write_all(&[0, 0, 0, 2, 0xEE, 0xEE]).await.unwrap();
    })
    .await;
    assert!(matches!(recv_error(addr).await, SyncError::Protocol(_)));
}

#[tokio::test]
async fn a_relay_vanishing_without_goodbye_is_a_connection_reset() {
    let addr = fake(|s| async move {
        let mut s = s;
        s.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        // Half a frame, then an abortive close (RST).
        s.write_all(&[0, 0, 0, 9, 6]).await.unwrap();
        s.set_zero_linger().unwrap();
        drop(s);
    })
    .await;
    assert!(matches!(recv_error(addr).await, SyncError::ConnectionReset));
}

#[tokio::test]
async fn a_clean_close_without_goodbye_reads_as_the_end() {
    let addr = fake(|mut s| async move {
        s.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        s.shutdown().await.unwrap();
    })
    .await;
    let mut client = Client::connect(addr).await.unwrap();
    assert!(matches!(client.recv().await, Ok(None)));
    assert!(matches!(client.recv().await, Ok(None)));
}

/// A frame over the client's limit cannot be skipped (its bytes would be read as frames):
/// the client reports it once, then ends as a closed connection, instead of failing every
/// later `recv` on the same bytes.
#[tokio::test]
async fn a_frame_over_the_limit_is_reported_once_then_the_client_is_closed() {
    let addr = fake(|mut stream| async move {
        stream.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        // 1024 + 64 is the most this client takes from a relay of max_payload 1024.
        stream.write_all(&5000u32.to_be_bytes()).await.unwrap();
        stream.write_all(&[0; 64]).await.unwrap();
        // Hold the socket open: the client must end by itself.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let mut client = Client::connect(addr).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), client.recv()).await;
    assert!(
        matches!(first, Ok(Err(SyncError::PayloadTooLarge))),
        "{first:?}"
    );
    let then = tokio::time::timeout(Duration::from_secs(20), client.recv()).await;
    assert!(matches!(then, Ok(Ok(None))), "{then:?}");
}

fn members(room_id: &str, more: bool) -> bytes::Bytes {
    encode(&ServerFrame::Members {
        room_id,
        client_ids: Uuid::from_u128(7).as_bytes(),
        more,
    })
}

fn joined(room_id: &str) -> bytes::Bytes {
    encode(&ServerFrame::Joined {
        client_id: Uuid::from_u128(1),
        room_id,
    })
}

/// A relay that gives up on a client mid-list (a slow consumer, section 9 of PROTOCOL.md)
/// ends the list with its `Disconnect`: the client reports the reason, not a broken list.
#[tokio::test]
async fn a_disconnect_that_cuts_a_member_list_short_is_still_its_reason() {
    let addr = fake(|mut stream| async move {
        stream.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        stream.write_all(&joined("r")).await.unwrap();
        stream.write_all(&members("r", true)).await.unwrap();
        let bye = encode(&ServerFrame::Disconnect {
            code: DisconnectCode::SlowConsumer as u8,
            message: "slow consumer",
        });
        stream.write_all(&bye).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let mut client = Client::connect(addr).await.unwrap();
    assert!(matches!(
        client.recv().await,
        Ok(Some(ghost_sync::ServerEvent::Joined { .. }))
    ));
    let next = tokio::time::timeout(Duration::from_secs(20), client.recv()).await;
    assert!(matches!(next, Ok(Err(SyncError::SlowConsumer))), "{next:?}");
}

/// A list broken by another frame is reported once; the next list reads as usual.
#[tokio::test]
async fn a_broken_member_list_is_reported_once_and_the_next_one_reads() {
    let addr = fake(|mut stream| async move {
        stream.write_all(&welcome(PROTOCOL_VERSION)).await.unwrap();
        stream.write_all(&members("r", true)).await.unwrap();
        stream
            .write_all(&encode(&ServerFrame::Error { message: "x" }))
            .await
            .unwrap();
        stream.write_all(&joined("q")).await.unwrap();
        stream.write_all(&members("q", false)).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let mut client = Client::connect(addr).await.unwrap();
    let broken = client.recv().await;
    assert!(matches!(broken, Err(SyncError::Protocol(_))), "{broken:?}");
    assert!(matches!(
        client.recv().await,
        Ok(Some(ghost_sync::ServerEvent::Joined { .. }))
    ));
    match client.recv().await {
        Ok(Some(ghost_sync::ServerEvent::Members {
            room_id,
            client_ids,
        })) => {
            assert_eq!(room_id, "q");
            assert_eq!(client_ids, vec![Uuid::from_u128(7)]);
        }
        other => panic!("expected the member list of q, got {other:?}"),
    }
}
