//! The way into the relay for one connection, whatever carries it: admission (the connection
//! limit, the per-IP limit, `on_connect`), then the connection's own task, or a `Rejected`
//! handshake. The accept loop ([`listener`](super::listener)) and
//! [`Relay::serve_connection`](super::Relay::serve_connection) both come in here.
//!
//! Admission is a tower stack at connection scope. It never waits: a full server or a
//! refusing hook answers with a `Rejected` handshake at once. Its permits are held for the
//! connection's whole life.

use super::connection::{reject, rejection, serve};
use super::socket::SharedWriteHalf;
use super::Shared;
use crate::handler::SharedHandler;
use crate::pipeline::connect_hook::ConnectHookLayer;
use crate::pipeline::FrameLayer;
use crate::protocol::RejectCode;
use ghost_sync_layers::{
    AdmissionPermit, BoxError, ConnectionLimitExceeded, ConnectionLimitLayer, IpPermit,
    PerIpLimitLayer,
};
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// Refused connections that may linger at once (each up to a few seconds) so that the client
/// surely reads its `Rejected` frame; past this, refusals are best effort.
pub(crate) const MAX_LINGERING_REFUSALS: usize = 64;

/// How long a refusal past the lingering ones may take to write, on a transport that has no
/// non-blocking write.
const QUICK_REFUSAL: Duration = Duration::from_millis(50);

/// The admission stack; its clones share the limits.
type Admission = BoxCloneSyncService<SocketAddr, Permits, BoxError>;

/// What an admitted connection holds until it is fully closed.
type Permits = (AdmissionPermit, IpPermit);

/// Everything a connection needs to enter: shared by the accept loop and every
/// `serve_connection` caller.
pub(crate) struct Entry<L> {
    pub(crate) shared: Arc<Shared>,
    handler: SharedHandler,
    layer: Arc<L>,
    admission: Admission,
    refusals: Arc<Semaphore>,
}

impl<L: FrameLayer> Entry<L> {
    pub(crate) fn new(shared: Arc<Shared>, handler: SharedHandler, layer: L) -> Self {
        // Without a per-IP limit, a limit no address can reach: one stack type either way.
        let per_ip = shared.config.max_connections_per_ip.unwrap_or(usize::MAX);
        let admission = ServiceBuilder::new()
            .layer(ConnectionLimitLayer::new(shared.config.max_clients))
            .layer(PerIpLimitLayer::new(per_ip))
            .layer(ConnectHookLayer::new(Arc::clone(&handler)))
            .service(service_fn(|peer: SocketAddr| async move {
                Ok::<_, Infallible>(peer)
            }))
            .map_response(|admitted| {
                let (admitted, permit) = admitted.into_parts();
                let (_, ip_permit) = admitted.into_parts();
                (permit, ip_permit)
            });
        Self {
            shared,
            handler,
            layer: Arc::new(layer),
            admission: BoxCloneSyncService::new(admission),
            refusals: Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS)),
        }
    }

    /// Runs admission for a connection from `peer`.
    pub(crate) async fn admit(&self, peer: SocketAddr) -> Result<Permits, BoxError> {
        self.admission.clone().oneshot(peer).await
    }

    /// The task of an accepted TCP connection that admission let in: until it is fully
    /// closed.
    pub(crate) fn tcp_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permits: Permits,
    ) -> impl Future<Output = ()> + Send + 'static {
        // Frames are batched, so Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let (shared, handler, layer) = self.parts();
        async move {
            let (reader, writer) = stream.into_split();
            let writer = SharedWriteHalf::new(writer);
            let direct = Some(writer.direct());
            serve(shared, handler, layer, reader, (writer, direct), peer).await;
            // The slots free only once the connection is fully closed.
            drop(permits);
        }
    }

    /// Refuses an accepted TCP connection: a `Rejected` frame with the reason, and a
    /// lingering close (the task returned) so that the client reads it; past
    /// [`MAX_LINGERING_REFUSALS`], one non-blocking write and no task.
    pub(crate) fn tcp_refusal(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        err: BoxError,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let code = reject_code(&err);
        tracing::debug!(%peer, error = %err, "connection refused");
        self.shared.counters.refused(code);
        match Arc::clone(&self.refusals).try_acquire_owned() {
            Ok(permit) => Some(async move {
                let (mut reader, mut writer) = stream.split();
                reject(&mut reader, &mut writer, code, &err.to_string()).await;
                drop(permit);
            }),
            Err(_) => {
                // A flood of refused connections must not become a flood of tasks and open
                // sockets: best effort, and close at once.
                let _ = stream.try_write(&rejection(code, &err.to_string()));
                None
            }
        }
    }

    /// Admits and serves a connection over any transport, on a task of the server.
    pub(crate) fn serve_io<IO>(self: &Arc<Self>, io: IO, peer: SocketAddr) -> JoinHandle<()>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        if self.shared.shutdown.is_cancelled() {
            // Shut down: the connection is closed unanswered, as the listener's would be.
            drop(io);
            return self.shared.tasks.spawn(async {});
        }
        // A TCP stream handed in by the caller still gets the listener's fast write path.
        let mut io = Some(io);
        if let Some(tcp) = (&mut io as &mut dyn Any).downcast_mut::<Option<TcpStream>>() {
            if let Some(stream) = tcp.take() {
                let entry = Arc::clone(self);
                return self.shared.tasks.spawn(async move {
                    match entry.admit(peer).await {
                        Ok(permits) => entry.tcp_connection(stream, peer, permits).await,
                        Err(err) => {
                            if let Some(refusal) = entry.tcp_refusal(stream, peer, err) {
                                refusal.await;
                            }
                        }
                    }
                });
            }
        }
        let entry = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            let Some(io) = io else { return };
            let (mut reader, mut writer) = tokio::io::split(io);
            match entry.admit(peer).await {
                Ok(permits) => {
                    let (shared, handler, layer) = entry.parts();
                    drop(entry);
                    serve(shared, handler, layer, reader, (writer, None), peer).await;
                    drop(permits);
                }
                Err(err) => {
                    let code = reject_code(&err);
                    tracing::debug!(%peer, error = %err, "connection refused");
                    entry.shared.counters.refused(code);
                    let Ok(_lingering) = Arc::clone(&entry.refusals).try_acquire_owned() else {
                        // As on TCP: past the lingering refusals, one quick attempt only.
                        let frame = rejection(code, &err.to_string());
                        let _ = tokio::time::timeout(QUICK_REFUSAL, async {
                            writer.write_all(&frame).await?;
                            // A buffering transport (TLS) sends only on flush or close.
                            writer.shutdown().await
                        })
                        .await;
                        return;
                    };
                    reject(&mut reader, &mut writer, code, &err.to_string()).await;
                }
            }
        })
    }

    fn parts(&self) -> (Arc<Shared>, SharedHandler, Arc<L>) {
        (
            Arc::clone(&self.shared),
            Arc::clone(&self.handler),
            Arc::clone(&self.layer),
        )
    }
}

/// The code a refused client reads.
fn reject_code(err: &BoxError) -> RejectCode {
    if err.is::<ConnectionLimitExceeded>() {
        RejectCode::ServerFull
    } else {
        RejectCode::ConnectRejected
    }
}
