//! The accept loop: TCP connections from the bound listener, each through the
//! [`entry`](super::entry) (admission, then its own task).

use super::entry::Entry;
use crate::pipeline::FrameLayer;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop<L: FrameLayer>(listener: TcpListener, entry: Arc<Entry<L>>) {
    let shared = Arc::clone(&entry.shared);
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Admission never waits; it runs here, in accept order, so that a burst past the
        // limit refuses exactly the connections that came last.
        match entry.admit(peer).await {
            Ok(permits) => {
                shared
                    .tasks
                    .spawn(entry.tcp_connection(stream, peer, permits));
            }
            Err(err) => {
                if let Some(refusal) = entry.tcp_refusal(stream, peer, err) {
                    shared.tasks.spawn(refusal);
                }
            }
        }
    }
}
