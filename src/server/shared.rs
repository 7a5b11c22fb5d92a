//! The state one server shares between its accept loop, its connections and its handles.

use super::config::Config;
use crate::auth::Validator;
use crate::directory::Directory;
use crate::handler::{ServerHandler, SharedHandler};
use crate::registry::Registry;
use crate::stats::Counters;
use std::net::SocketAddr;
use std::sync::{OnceLock, Weak};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Server-wide state.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    /// Every connected client, for the handle's control surface.
    pub(crate) directory: Directory,
    pub(crate) counters: Counters,
    pub(crate) config: Config,
    /// Checks each handshake's credentials; `None`: the relay is open.
    pub(crate) validator: Option<Validator>,
    /// The handler, for the handle's room hooks. Weak: a handler made by `handler_with`
    /// holds a handle, and so this state; a strong reference here would be a cycle that
    /// keeps both alive forever. The server itself (before `run`) and then its tasks hold the
    /// strong references, so the handler lives exactly as long as the server serves.
    handler: OnceLock<Weak<dyn ServerHandler>>,
    /// Cancelled by `shutdown()`; every task of the server watches it.
    pub(crate) shutdown: CancellationToken,
    /// Every task of the server, so that `shutdown()` can wait for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) local_addr: OnceLock<SocketAddr>,
}

impl Shared {
    pub(crate) fn new(config: Config, validator: Option<Validator>) -> Self {
        Self {
            registry: Registry::default(),
            directory: Directory::default(),
            counters: Counters::default(),
            config,
            validator,
            handler: OnceLock::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            local_addr: OnceLock::new(),
        }
    }

    pub(crate) fn set_handler(&self, handler: &SharedHandler) {
        // Only `build()` sets it, once.
        let _ = self.handler.set(std::sync::Arc::downgrade(handler));
    }

    /// The handler, unless the server has stopped (or was dropped without running).
    pub(crate) fn handler(&self) -> Option<SharedHandler> {
        self.handler.get().and_then(Weak::upgrade)
    }
}
