//! Faults on demand: a connection severed without a goodbye, a client that stops reading, and
//! one that reads at a trickle. Each acts on the real socket, so the relay sees exactly what
//! it would see from such a peer.

use super::client::TestClient;
use super::wire::Received;
use crate::protocol::{decode_frame, ClientFrame, ServerFrame};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

impl TestClient {
    /// Kills the connection without a goodbye: no `Leave`, no FIN, but a TCP reset
    /// (`SO_LINGER` 0, then close), as when a process dies with data in flight. The relay
    /// sees a transport error (or, when the reset races its read of an empty socket, a plain
    /// close); either way the client leaves its room once.
    pub fn sever(self) {
        let who = self.who();
        if let Err(err) = socket2::SockRef::from(&self.wire.stream).set_linger(Some(Duration::ZERO))
        {
            panic!("{who}: cannot set SO_LINGER to sever the connection: {err}");
        }
        drop(self);
    }

    /// Stops reading for good (until [`Stalled::resume`]): the socket stays open, the relay's
    /// frames pile up in the kernel buffers and then in the relay's queue for this client, and
    /// its pings go unanswered, as with a peer whose machine froze. Build the client with a
    /// small [`receive_buffer`](super::TestClientBuilder::receive_buffer) for the relay to
    /// notice within a few KiB.
    #[must_use = "dropping the Stalled closes the connection at once"]
    pub fn stop_reading(self) -> Stalled {
        Stalled { client: self }
    }

    /// Reads on a background task at about `bytes_per_sec`, in small paced chunks, answering
    /// pings as it goes: a client behind a slow link. The frames it reads wait for the test
    /// in the client (at most the rate times the time it ran); [`SlowReader::stop`] gives the
    /// client back, and every expectation then sees them in order.
    #[must_use = "dropping the SlowReader stops it and closes the connection"]
    pub fn slow_reader(self, bytes_per_sec: u64) -> SlowReader {
        let id = self.id;
        let name = self.name.clone();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(trickle(
            self,
            bytes_per_sec.max(1),
            Arc::clone(&bytes_read),
            stopped,
        ));
        SlowReader {
            id,
            name,
            bytes_read,
            stop,
            task,
        }
    }
}

/// A client that stopped reading: from [`TestClient::stop_reading`]. Dropping it closes the
/// connection.
#[derive(Debug)]
pub struct Stalled {
    client: TestClient,
}

impl Stalled {
    /// The id the relay gave the client.
    pub fn client_id(&self) -> Uuid {
        self.client.id
    }

    /// Sends a frame while not reading (a client that talks but never listens).
    pub async fn send_frame(&mut self, frame: &ClientFrame<'_>) {
        self.client.send_frame(frame).await;
    }

    /// Reads again: whatever the relay managed to send meanwhile comes first.
    pub fn resume(self) -> TestClient {
        self.client
    }

    /// Kills the connection with a reset; see [`TestClient::sever`].
    pub fn sever(self) {
        self.client.sever();
    }
}

/// A client reading at a trickle on a background task: from [`TestClient::slow_reader`].
/// Dropping it stops the reading and closes the connection.
#[derive(Debug)]
pub struct SlowReader {
    id: Uuid,
    name: String,
    bytes_read: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<TestClient>,
}

impl SlowReader {
    /// The id the relay gave the client.
    pub fn client_id(&self) -> Uuid {
        self.id
    }

    /// Bytes read from the socket so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Stops the trickle and gives the client back, with what it read still to be expected.
    pub async fn stop(self) -> TestClient {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(client) => client,
            Err(err) => panic!("{}: the slow reader's task failed: {err}", self.name),
        }
    }
}

/// The slow reader's loop: a chunk, then the pause that brings the rate down to
/// `bytes_per_sec` (the pauses are the fault itself).
async fn trickle(
    mut client: TestClient,
    bytes_per_sec: u64,
    bytes_read: Arc<AtomicU64>,
    mut stopped: oneshot::Receiver<()>,
) -> TestClient {
    // About ten reads a second, each no larger than 16 KiB.
    let chunk = (bytes_per_sec / 10).clamp(1, 16 * 1024) as usize;
    let mut scratch = vec![0u8; chunk];
    loop {
        if client.wire.ended.is_some() {
            return client;
        }
        let n = tokio::select! {
            _ = &mut stopped => return client,
            read = client.wire.stream.read(&mut scratch) => match read {
                Ok(0) => {
                    client.wire.ended = Some(Received::Closed);
                    0
                }
                Ok(n) => n,
                Err(err) => {
                    client.wire.ended = Some(Received::Reset(err.to_string()));
                    0
                }
            },
        };
        bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        client.wire.buf.extend_from_slice(&scratch[..n]);
        split_frames(&mut client).await;
        let pause = Duration::from_secs_f64(n as f64 / bytes_per_sec as f64);
        tokio::select! {
            _ = &mut stopped => return client,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Moves the complete frames read so far to the client's pending queue, answering pings.
async fn split_frames(client: &mut TestClient) {
    loop {
        let wire = &mut client.wire;
        match wire.frames.next_frame(&mut wire.buf) {
            Ok(Some(body)) => {
                if matches!(
                    decode_frame::<ServerFrame<'_>>(&body),
                    Ok(ServerFrame::Ping)
                ) {
                    let _ = wire.send(&ClientFrame::Pong).await;
                } else {
                    wire.pending.push_back(body);
                }
            }
            Ok(None) => return,
            Err(err) => {
                wire.buf.clear();
                wire.ended = Some(Received::Invalid(err.to_string()));
                return;
            }
        }
    }
}
