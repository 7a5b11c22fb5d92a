//! The state one server shares between its accept loop, its connections and its handles.

use super::config::Config;
use crate::handler::{NoopHandler, ServerHandler};
use crate::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Server-wide state.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) config: Config,
    /// Set once by `build()`: a handler made by `handler_with` needs a handle, and so this
    /// state, before it exists.
    handler: OnceLock<Arc<dyn ServerHandler>>,
    /// Cancelled by `shutdown()`; every task of the server watches it.
    pub(crate) shutdown: CancellationToken,
    /// Every task of the server, so that `shutdown()` can wait for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) local_addr: OnceLock<SocketAddr>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            registry: Registry::default(),
            config,
            handler: OnceLock::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            local_addr: OnceLock::new(),
        }
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn ServerHandler>) {
        // Only `build()` sets it, once.
        let _ = self.handler.set(handler);
    }

    pub(crate) fn handler(&self) -> &dyn ServerHandler {
        match self.handler.get() {
            Some(handler) => handler.as_ref(),
            None => &NoopHandler,
        }
    }
}
