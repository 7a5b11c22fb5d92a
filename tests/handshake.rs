//! The handshake: welcome, and every way a connection is refused.

mod common;

use common::*;
use ghost_sync::protocol::{ClientFrame, RejectCode};
use ghost_sync::{Client, Server, ServerHandler, SyncError};
use std::net::SocketAddr;

#[tokio::test]
async fn connect_returns_after_the_welcome_with_an_id() {
    let (_handle, addr) = start(Server::builder()).await;
    let a = Client::connect(addr).await.unwrap();
    let b = Client::connect(addr).await.unwrap();
    assert!(!a.client_id().is_nil());
    assert_ne!(a.client_id(), b.client_id());
    assert_eq!(a.max_payload(), 64 * 1024);
}

struct NoOne;

impl ServerHandler for NoOne {
    fn on_connect(&self, _addr: SocketAddr) -> bool {
        false
    }
}

#[tokio::test]
async fn on_connect_saying_no_refuses_with_a_reason() {
    let (_handle, addr) = start(Server::builder().handler(NoOne)).await;
    match Client::connect(addr).await {
        Err(SyncError::ConnectRejected(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected ConnectRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_server_refuses_and_frees_a_slot_when_a_client_leaves() {
    let (_handle, addr) = start(Server::builder().max_clients(2)).await;
    let a = Client::connect(addr).await.unwrap();
    let _b = Client::connect(addr).await.unwrap();
    assert!(matches!(
        Client::connect(addr).await,
        Err(SyncError::ServerFull)
    ));
    drop(a);
    // The slot frees once the relay has seen the close; poll until it has.
    within("a free slot", async {
        loop {
            match Client::connect(addr).await {
                Ok(client) => return client,
                Err(SyncError::ServerFull) => tokio::task::yield_now().await,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_a_hello_is_refused() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Join {
        room_id: "lobby",
        data: &[],
    })
    .await;
    match raw.recv().await {
        Some(Frame::Rejected { code, .. }) => assert_eq!(code, RejectCode::Protocol as u8),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn another_protocol_version_is_refused() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Hello {
        version: 999,
        credentials: &[],
        resume: &[],
    })
    .await;
    match raw.recv().await {
        Some(Frame::Rejected { code, message }) => {
            assert_eq!(code, RejectCode::UnsupportedVersion as u8);
            assert!(message.contains("999"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hello_after_the_handshake_is_a_protocol_error() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    raw.send(&ClientFrame::Hello {
        version: 1,
        credentials: &[],
        resume: &[],
    })
    .await;
    assert!(matches!(
        raw.recv_skipping_pings().await,
        Some(Frame::Disconnect { code: 3, .. })
    ));
}

#[tokio::test]
async fn garbage_after_the_handshake_disconnects_with_a_protocol_error() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::greeted(addr).await;
    raw.send_bytes(&[0, 0, 0, 3, 0xEE, 0xEE, 0xEE]).await;
    match raw.recv_skipping_pings().await {
        Some(Frame::Disconnect { code, message }) => {
            assert_eq!(code, 3);
            assert!(!message.is_empty());
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

#[test]
fn the_client_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Client>();
    assert_send::<ghost_sync::ServerHandle>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<ghost_sync::ServerHandle>();
}
