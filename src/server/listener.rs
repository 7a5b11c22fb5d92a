//! The accept loop and the admission stack that every new connection passes first.
//!
//! Admission is a tower stack at connection scope: the connection limit and the per-IP limit
//! (permits held for the connection's whole life), then `on_connect`. It never waits: a full server or a
//! refusing hook answers with a `Rejected` handshake at once.

use super::connection::{reject, rejection, serve, CoreService};
use super::socket::SharedWriteHalf;
use super::Shared;
use crate::handler::SharedHandler;
use crate::pipeline::connect_hook::ConnectHookLayer;
use crate::pipeline::{FrameRequest, Reply};
use crate::protocol::RejectCode;
use ghost_sync_layers::{BoxError, ConnectionLimitExceeded, ConnectionLimitLayer, PerIpLimitLayer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

/// Refused connections that may linger at once (each up to a few seconds) so that the client
/// surely reads its `Rejected` frame; past this, refusals are best effort.
pub(crate) const MAX_LINGERING_REFUSALS: usize = 64;

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop<L>(
    listener: TcpListener,
    shared: Arc<Shared>,
    handler: SharedHandler,
    layer: Arc<L>,
) where
    L: Layer<CoreService> + Send + Sync + 'static,
    L::Service: Service<FrameRequest, Response = Reply> + Send + 'static,
    <L::Service as Service<FrameRequest>>::Error: Into<BoxError>,
    <L::Service as Service<FrameRequest>>::Future: Send,
{
    // Without a per-IP limit, a limit no address can reach: one stack type either way.
    let per_ip = shared.config.max_connections_per_ip.unwrap_or(usize::MAX);
    let mut admission = ServiceBuilder::new()
        .layer(ConnectionLimitLayer::new(shared.config.max_clients))
        .layer(PerIpLimitLayer::new(per_ip))
        .layer(ConnectHookLayer::new(Arc::clone(&handler)))
        .service(service_fn(|peer: SocketAddr| async move {
            Ok::<_, Infallible>(peer)
        }));
    let refusals = Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS));
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Frames are batched by the writer, so Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let admitted = match admission.ready().await {
            Ok(service) => service.call(peer).await,
            Err(err) => Err(err),
        };
        match admitted {
            Ok(admitted) => {
                let (admitted, permit) = admitted.into_parts();
                let (_, ip_permit) = admitted.into_parts();
                let shared = Arc::clone(&shared);
                let handler = Arc::clone(&handler);
                let layer = Arc::clone(&layer);
                shared.clone().tasks.spawn(async move {
                    let (reader, writer) = stream.into_split();
                    let writer = SharedWriteHalf::new(writer);
                    let direct = Some(writer.direct());
                    serve(shared, handler, layer, reader, (writer, direct), peer).await;
                    // The slots free only once the connection is fully closed.
                    drop(ip_permit);
                    drop(permit);
                });
            }
            Err(err) => {
                let code = if err.is::<ConnectionLimitExceeded>() {
                    RejectCode::ServerFull
                } else {
                    RejectCode::ConnectRejected
                };
                tracing::debug!(%peer, error = %err, "connection refused");
                shared.counters.refused(code);
                match Arc::clone(&refusals).try_acquire_owned() {
                    Ok(permit) => {
                        shared.tasks.spawn(async move {
                            let (mut reader, mut writer) = stream.split();
                            reject(&mut reader, &mut writer, code, &err.to_string()).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        // A flood of refused connections must not become a flood of tasks
                        // and open sockets: best effort, and close at once.
                        let _ = stream.try_write(&rejection(code, &err.to_string()));
                    }
                }
            }
        }
    }
}
