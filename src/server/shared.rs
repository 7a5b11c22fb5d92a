//! The state one server shares between its accept loop, its connections and its handles.

use super::config::Config;
use super::connection::seats::Seats;
use crate::auth::Validator;
use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::handler::{ServerHandler, SharedHandler};
use crate::outbox::{Flusher, Pending};
use crate::registry::Registry;
use crate::stats::Counters;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Server-wide state.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    /// Every connected client, for the handle's control surface.
    pub(crate) directory: Directory,
    pub(crate) counters: Arc<Counters>,
    pub(crate) config: Config,
    /// Checks each handshake's credentials; `None`: the relay is open.
    pub(crate) validator: Option<Validator>,
    /// The handler, for the handle's room hooks. Weak: a handler made by `handler_with`
    /// holds a handle, and so this state; a strong reference here would be a cycle that
    /// keeps both alive forever. The server itself (before `run` or `start`), then the entry
    /// connections come in through (held by the accept loop, or until shutdown after
    /// `start`, and by every `Relay`) and the connections' tasks hold the strong references.
    handler: OnceLock<Weak<dyn ServerHandler>>,
    /// Cancelled by `shutdown()`; every task of the server watches it.
    pub(crate) shutdown: CancellationToken,
    /// Set by `drain(timeout)`: how long connections may take to flush and say goodbye
    /// (instead of the usual couple of seconds).
    pub(crate) drain_grace: OnceLock<Duration>,
    /// Cancelled when a drain's time ran out: every connection closes at once.
    pub(crate) abort: CancellationToken,
    /// Every task of the server, so that `shutdown()` can wait for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) local_addr: OnceLock<SocketAddr>,
    /// Writes the relayed frames once per window, with `flush_interval`; `None`: each batch
    /// writes its own at its end.
    pub(crate) flusher: Option<Arc<Flusher>>,
    /// The backplane, once `run()` connected it; unset: this relay is alone.
    pub(crate) cluster: OnceLock<std::sync::Arc<Cluster>>,
    /// The seats held across drops; `None`: `resume_window` is off.
    pub(crate) seats: Option<Seats>,
}

impl Shared {
    pub(crate) fn new(config: Config, validator: Option<Validator>) -> Self {
        let flusher = config
            .flush_interval
            .map(|every| Arc::new(Flusher::new(every)));
        let seats = config
            .resume_window
            .map(|window| Seats::new(window, config.held_seats(), config.max_clients));
        Self {
            seats,
            flusher,
            // With the `metrics` feature, these register their series with the recorder
            // installed now.
            #[cfg(feature = "metrics")]
            registry: Registry::with_room_labels(config.metrics_room_labels),
            #[cfg(not(feature = "metrics"))]
            registry: Registry::default(),
            directory: Directory::default(),
            counters: Arc::new(Counters::registered(config.has_broker())),
            config,
            validator,
            handler: OnceLock::new(),
            shutdown: CancellationToken::new(),
            drain_grace: OnceLock::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
            local_addr: OnceLock::new(),
            cluster: OnceLock::new(),
        }
    }

    pub(crate) fn set_handler(&self, handler: &SharedHandler) {
        // Only `build()` sets it, once.
        let _ = self.handler.set(std::sync::Arc::downgrade(handler));
    }

    /// How long a closing connection may take to write its last frames and farewell, and to
    /// wait for the client to close: a drain's whole timeout, or [`FAREWELL_TIMEOUT`].
    ///
    /// [`FAREWELL_TIMEOUT`]: super::writer::FAREWELL_TIMEOUT
    pub(crate) fn farewell_patience(&self) -> Duration {
        self.drain_grace
            .get()
            .copied()
            .unwrap_or(super::writer::FAREWELL_TIMEOUT)
    }

    /// Writes the queues `pending` filled: now, or at the end of the flush window.
    pub(crate) fn flush(&self, pending: &mut Pending) {
        match &self.flusher {
            Some(flusher) => flusher.hand(pending),
            None => pending.flush(),
        }
    }

    /// Runs `work` for at most [`farewell_patience`](Shared::farewell_patience), and not past
    /// the end of a drain; `None` if it was cut short.
    pub(crate) async fn with_patience<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            _ = self.abort.cancelled() => None,
            done = tokio::time::timeout(self.farewell_patience(), work) => done.ok(),
        }
    }

    /// The backplane, if this relay shares its rooms with others.
    pub(crate) fn cluster(&self) -> Option<&std::sync::Arc<Cluster>> {
        self.cluster.get()
    }

    /// The handler, unless the server has stopped and nothing holds it any more (or the
    /// server was dropped without running).
    pub(crate) fn handler(&self) -> Option<SharedHandler> {
        self.handler.get().and_then(Weak::upgrade)
    }
}
