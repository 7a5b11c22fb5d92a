//! Protocol version 2's handshake and goodbye, over loopback: the version read before the rest
//! of the `Hello`, the resume field on a relay that holds no seats, the `Welcome`'s new fields,
//! `Bye`, and the framing rule of a `Direct`'s targets.

mod common;

use common::{start, within, Frame, RawClient};
use ghost_sync::protocol::{encode, ClientFrame, RejectCode};
use ghost_sync::{Server, Uuid};
use std::time::Duration;

#[tokio::test]
async fn a_version_1_hello_is_refused_with_the_version_the_relay_speaks() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    // Version 1's Hello: tag 0, version 1, empty credentials, and no resume field, so it does
    // not decode as a version 2 Hello; the relay must read its version first.
    raw.send_bytes(&[0, 0, 0, 11, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .await;
    match raw.recv().await {
        Some(Frame::Rejected { code, message }) => {
            assert_eq!(code, RejectCode::UnsupportedVersion as u8, "{message}");
            assert_eq!(
                message,
                "protocol version 1 not supported; this relay speaks 2"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_resume_token_is_refused_by_a_relay_that_holds_no_seats() {
    let (_handle, addr) = start(Server::builder()).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Hello {
        version: 2,
        credentials: &[],
        resume: &[7; 16],
    })
    .await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Rejected {
            code: RejectCode::ResumeFailed as u8,
            message: "resume is off on this relay".to_owned(),
        })
    );
}

#[tokio::test]
async fn the_welcome_carries_the_ping_interval_and_no_token_without_seats() {
    let (_handle, addr) = start(Server::builder().ping_interval(Duration::from_millis(1500))).await;
    let mut raw = RawClient::connect(addr).await;
    raw.send(&ClientFrame::Hello {
        version: 2,
        credentials: &[],
        resume: &[],
    })
    .await;
    match raw.recv().await {
        Some(Frame::Welcome {
            ping_interval_ms,
            resume_token,
            ..
        }) => {
            assert_eq!(ping_interval_ms, 1500);
            assert!(resume_token.is_empty());
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn bye_ends_the_session_at_once_and_nothing_after_it_is_read() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("lobby").unwrap();
    let mut stays = RawClient::joined(addr, "lobby").await;
    let mut leaves = RawClient::joined(addr, "lobby").await;
    let leaver = match stays.recv_skipping_pings().await {
        Some(Frame::PlayerJoined(id)) => id,
        other => panic!("expected the second member's arrival, got {other:?}"),
    };
    // The Bye and a broadcast in one write: the relay stops reading at the Bye.
    let mut bytes = encode(&ClientFrame::Bye).to_vec();
    bytes.extend_from_slice(&encode(&ClientFrame::Broadcast { data: b"late" }));
    leaves.send_bytes(&bytes).await;
    assert_eq!(
        stays.recv_skipping_pings().await,
        Some(Frame::PlayerLeft(leaver))
    );
    // The relay says nothing more to the leaver and closes.
    assert_eq!(leaves.recv_skipping_pings().await, None);
    // The broadcast after the Bye never reached the room: the next frame is the server's.
    handle.broadcast_to_room("lobby", b"after").unwrap();
    assert_eq!(
        stays.recv_skipping_pings().await,
        Some(Frame::Broadcast {
            sender_id: Uuid::nil(),
            data: b"after".to_vec()
        })
    );
}

#[tokio::test]
async fn a_direct_whose_targets_are_not_whole_ids_is_a_protocol_error() {
    let (handle, addr) = start(Server::builder()).await;
    handle.create_room("lobby").unwrap();
    let targets: [(&[u8], usize); 3] = [(&[1; 20], 20), (&[], 0), (&[1; 16 * 257], 16 * 257)];
    for (targets, len) in targets {
        let mut raw = RawClient::joined(addr, "lobby").await;
        raw.send(&ClientFrame::Direct {
            targets,
            data: b"x",
        })
        .await;
        let expected = format!(
            "malformed frame: the targets of a Direct are 1 to 256 ids of 16 bytes each, not \
             {len} bytes"
        );
        match within("the disconnect", raw.recv_skipping_pings()).await {
            Some(Frame::Disconnect { code: 3, message }) => assert_eq!(message, expected),
            other => panic!("expected a protocol disconnect, got {other:?}"),
        }
    }
}
