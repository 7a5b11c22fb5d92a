//! [`Server`]: a built relay, and how it starts: [`run`](Server::run) on its own TCP listener,
//! or [`start`](Server::start) for connections its owner accepts.

use super::entry::Entry;
use super::handle::ServerHandle;
use super::listener::accept_loop;
use super::relay::Relay;
use super::Shared;
use crate::error::SyncError;
use crate::handler::SharedHandler;
use crate::pipeline::FrameLayer;
use std::fmt;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::layer::util::Identity;

/// A relay server, ready to [`run`](Server::run).
pub struct Server<L = Identity> {
    pub(super) shared: Arc<Shared>,
    /// The strong reference that keeps the handler alive until `run` or `start` hands it to
    /// the entry that connections come in through (the shared state only holds a weak one).
    handler: SharedHandler,
    layer: L,
}

impl<L> Server<L> {
    pub(super) fn new(shared: Arc<Shared>, handler: SharedHandler, layer: L) -> Self {
        Self {
            shared,
            handler,
            layer,
        }
    }
}

impl<L> fmt::Debug for Server<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<L> Server<L> {
    /// The most memory, in bytes, this server's connections can hold at once whatever
    /// clients do, from its options: `max_clients × (largest frame + 64 KiB read reserve +
    /// max_queued_bytes + 68 KiB write copy buffer + channel_capacity × 64 B of queue slots +
    /// 16 KiB bookkeeping + 64 B room entry) + 64 lingering refusals × 8 KiB`, plus, with
    /// [`resume_window`](super::ServerBuilder::resume_window), `max_held_seats ×
    /// (max_queued_bytes + channel_capacity × 32 B + 2 KiB)` for the held seats' queues.
    /// Rooms' metadata, which only the application sets, comes on top. RELIABILITY.md
    /// explains each term.
    pub fn memory_bound(&self) -> u64 {
        self.shared.config.memory_bound()
    }

    /// A handle to this server, usable before [`run`](Server::run) (for example to create
    /// rooms first).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Binds the listen address, starts serving in the background and returns a handle.
    /// With a broker (`ServerBuilder::redis`, feature `redis`), it first connects to it and
    /// loads the cluster's rooms, so the handle it returns already sees them.
    ///
    /// Fails with [`SyncError::Bind`] if the address cannot be bound, and with
    /// [`SyncError::Broker`] if the broker cannot be reached within 5 s.
    pub async fn run(self) -> Result<ServerHandle, SyncError>
    where
        L: FrameLayer,
    {
        self.connect_broker().await?;
        let listener = match TcpListener::bind(self.shared.config.bind.as_str()).await {
            Ok(listener) => listener,
            Err(err) => {
                // Stops the broker's tasks, if it started them.
                self.shared.shutdown.cancel();
                return Err(SyncError::Bind(err));
            }
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(err) => {
                self.shared.shutdown.cancel();
                return Err(SyncError::Bind(err));
            }
        };
        let _ = self.shared.local_addr.set(addr);
        tracing::info!(%addr, "listening");
        let entry = self.launch();
        let handle = ServerHandle {
            shared: Arc::clone(&entry.shared),
        };
        let tasks = entry.shared.tasks.clone();
        tasks.spawn(accept_loop(listener, entry));
        Ok(handle)
    }

    /// Starts the relay without a listener: it serves the connections you hand to
    /// [`Relay::serve_connection`], over any transport (Unix sockets, TLS, in-memory
    /// streams). [`bind`](super::ServerBuilder::bind) is not used, and
    /// [`ServerHandle::local_addr`] is `None`. With a broker, it first connects to it, as
    /// [`run`](Server::run) does. It serves until [`ServerHandle::shutdown`], as `run` does,
    /// even once every `Relay` is dropped.
    ///
    /// Fails with [`SyncError::Broker`] if the broker cannot be reached within 5 s.
    pub async fn start(self) -> Result<Relay<L>, SyncError>
    where
        L: FrameLayer,
    {
        self.connect_broker().await?;
        let entry = self.launch();
        // The entry (and the handler in it) lives until shutdown, as the accept loop keeps
        // it under `run`: dropping every `Relay` must not silence the handle's hooks.
        let keep = Arc::clone(&entry);
        let stop = entry.shared.shutdown.clone();
        entry.shared.tasks.spawn(async move {
            stop.cancelled().await;
            drop(keep);
        });
        Ok(Relay::new(entry))
    }

    /// With a broker configured, connects to it and loads the cluster's rooms.
    async fn connect_broker(&self) -> Result<(), SyncError> {
        #[cfg(feature = "redis")]
        if let Some(options) = &self.shared.config.redis {
            match crate::cluster::Cluster::start(&self.shared, options).await {
                Ok(cluster) => {
                    let _ = self.shared.cluster.set(cluster);
                }
                Err(err) => {
                    // Stops the link and dispatcher tasks it may have started.
                    self.shared.shutdown.cancel();
                    return Err(SyncError::Broker(err));
                }
            }
        }
        Ok(())
    }

    /// Starts the background tasks (the flush window, the stats log) and opens the entry
    /// that connections come in through.
    fn launch(self) -> Arc<Entry<L>>
    where
        L: FrameLayer,
    {
        if let Some(flusher) = self.shared.flusher.clone() {
            let stop = self.shared.shutdown.clone();
            self.shared
                .tasks
                .spawn(async move { flusher.run(stop).await });
        }
        if let Some(every) = self.shared.config.stats_interval {
            self.shared
                .tasks
                .spawn(super::handle::report_stats(self.handle(), every));
        }
        Arc::new(Entry::new(self.shared, self.handler, self.layer))
    }
}
