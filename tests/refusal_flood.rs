//! A flood of refused connections costs the relay a bounded number of sockets: at most 64
//! refusals linger (reading until the client closes, so that it surely reads its
//! `Rejected`); past that, the relay writes the refusal if the socket takes it and closes at
//! once.
//!
//! This file holds one test, so that its process's open-file count belongs to it alone.

mod common;

use common::*;
use ghost_sync::protocol::{decode_frame, FrameReader, RejectCode, ServerFrame};
use ghost_sync::{Client, Server};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The relay's cap on refusals lingering at once (`MAX_LINGERING_REFUSALS`).
const LINGER_CAP: usize = 64;

/// Open file descriptors of this process: the relay's sockets and the test's together.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Reads what the relay says to a refused connection, until it closes its side.
async fn refusal(stream: &mut TcpStream) -> Vec<u8> {
    let mut said = Vec::new();
    within("the relay to close its side", stream.read_to_end(&mut said))
        .await
        .unwrap();
    said
}

#[tokio::test]
async fn a_flood_of_refused_connections_lingers_on_at_most_64_sockets() {
    let (handle, addr) = start(Server::builder().max_clients(1)).await;
    let seated = Client::connect(addr).await.unwrap();
    let before = open_fds();
    assert!(before > 0, "/proc/self/fd is readable");

    const FLOOD: usize = LINGER_CAP + 36;
    let mut refused = Vec::new();
    for n in 0..FLOOD {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let said = refusal(&mut stream).await;
        let mut said = bytes::BytesMut::from(&said[..]);
        match FrameReader::for_payload(1024)
            .next_frame(&mut said)
            .unwrap()
        {
            Some(body) => match decode_frame::<ServerFrame<'_>>(&body).unwrap() {
                ServerFrame::Rejected { code, .. } => {
                    assert_eq!(code, RejectCode::ServerFull as u8)
                }
                other => panic!("expected Rejected, got {other:?}"),
            },
            // Beyond the cap the refusal is best effort (written only if the new socket
            // takes it at once); within it, it is always said.
            None => assert!(n >= LINGER_CAP, "refusal {n} closed without a word"),
        }
        // Kept open: a refusal that lingers waits for this end to close.
        refused.push(stream);
    }
    // The flood took a few milliseconds, well within the 2 s a refusal may linger: every
    // lingering refusal still holds its socket, and there are at most 64 of them.
    let during = open_fds();
    assert!(
        during <= before + FLOOD + LINGER_CAP,
        "{} relay sockets for {FLOOD} refused connections (at most {LINGER_CAP} may linger)",
        during.saturating_sub(before + FLOOD)
    );

    // Once the clients close, the lingering refusals end too: nothing leaks.
    drop(refused);
    within("every refused socket to be closed", async {
        while open_fds() > before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(handle.client_count(), 1);
    drop(seated);
}
