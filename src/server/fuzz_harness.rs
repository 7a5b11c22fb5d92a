//! A door into the connection driver for the fuzz targets in `fuzz/`, and nothing else:
//! compiled only under `cfg(fuzzing)` (which cargo-fuzz sets), so it is never part of the
//! published API.
//!
//! The accept loop hands each TCP connection to [`serve`]; the fuzzer hands it in-memory
//! streams instead, so that millions of arbitrary frame sequences go through the very same
//! handshake, frame pipeline, room router and writer without a socket or a listener.

use super::connection::serve;
use super::{ServerHandle, Shared};
use crate::handler::SharedHandler;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::DuplexStream;
use tower::layer::util::Identity;

/// Serves in-memory connections with a server's options, handler and default stack.
#[doc(hidden)]
pub struct FuzzHarness {
    pub(super) shared: Arc<Shared>,
    pub(super) handler: SharedHandler,
}

impl FuzzHarness {
    /// A handle to the server behind this harness (rooms, kicks, stats, shutdown).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves `stream` as an admitted connection from `peer`, on a task of the server (so
    /// that `shutdown()` waits for it). Admission (limits, `on_connect`) is skipped.
    pub fn serve(&self, stream: DuplexStream, peer: SocketAddr) {
        let shared = Arc::clone(&self.shared);
        let handler = Arc::clone(&self.handler);
        let (reader, writer) = tokio::io::split(stream);
        self.shared.tasks.spawn(serve(
            shared,
            handler,
            Arc::new(Identity::new()),
            reader,
            (writer, None),
            peer,
        ));
    }
}
