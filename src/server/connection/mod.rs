//! One established connection, from the accepted socket to its last byte: the handshake
//! ([`handshake`](mod@handshake)), then the driver's read loop through the frame pipeline ([`driver`]),
//! beside a writer task ([`writer`](super::writer)) fed by the client's bounded queue, then
//! the farewell and the lingering close ([`closing`]).
//!
//! This module ties them together and holds the guards that keep the room, the directory
//! and the hooks right however a connection ends, cancellation included.

mod closing;
mod driver;
mod handshake;
#[cfg(test)]
mod tests;

pub(crate) use closing::{reject, rejection};
pub(crate) use driver::MAX_READ_RESERVE;

use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, SharedHandler};
use crate::outbox::{outbox_to, DirectWrite};
use crate::pipeline::hooks::HooksLayer;
use crate::pipeline::router::RoomRouter;
use crate::pipeline::{recover, CoreService, FrameLayer};
use crate::protocol::FrameReader;
use crate::server::writer::write_loop;
use crate::server::Shared;
use crate::session::Session;
use bytes::BytesMut;
use closing::linger;
use driver::{Driver, MIN_READ_RESERVE};
use ghost_sync_layers::{
    AuthLayer, ClientRateLimitLayer, IdleTimeoutLayer, PayloadLimitLayer, RoomNamePolicyLayer,
};
use handshake::handshake;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tower::{Layer, ServiceBuilder};
use tracing::Instrument;
use uuid::Uuid;

/// Serves one admitted connection until it ends, whatever the reason. `direct`, if the
/// transport allows it, lets other tasks write `writer`'s socket (see [`outbox`](crate::outbox)).
pub(crate) async fn serve<R, W, L>(
    shared: Arc<Shared>,
    handler: SharedHandler,
    layer: Arc<L>,
    mut reader: R,
    (mut writer, direct): (W, Option<Arc<dyn DirectWrite>>),
    peer: SocketAddr,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    L: FrameLayer,
{
    let client_id = Uuid::new_v4();
    let span = tracing::info_span!("connection", %client_id, %peer);
    async move {
        let frames = FrameReader::for_payload(shared.config.max_payload);
        let mut buf = BytesMut::new();
        // Boxed, as every path an idle connection is not on: its future stays small.
        let Some(identity) = Box::pin(handshake(
            &shared,
            &mut reader,
            &mut writer,
            &mut buf,
            &frames,
            client_id,
            peer,
        ))
        .await
        else {
            return;
        };
        let config = &shared.config;
        let (outbox, queue) = outbox_to(
            config.channel_capacity,
            config.max_queued_bytes,
            direct,
            Arc::clone(&shared.counters),
        );
        let session = Arc::new(
            Session::new(client_id, peer, identity, outbox)
                .with_cluster(shared.cluster().cloned())
                .with_flusher(shared.flusher.clone()),
        );
        // The handshake checked the credentials (or the relay is open).
        session.set_authenticated();
        shared.directory.insert(Arc::clone(&session));
        if let Some(cluster) = shared.cluster() {
            cluster.client_connected(&session);
        }
        shared.counters.connected();
        // Whatever happens next, the client leaves the directory and `on_disconnect` fires
        // once: this guard is dropped last, even if the task is cancelled.
        let mut farewell_guard = DisconnectOnDrop {
            shared: Arc::clone(&shared),
            handler: Arc::clone(&handler),
            client_id,
            reason: DisconnectReason::ServerShutdown,
        };
        let (farewell_tx, farewell_rx) = oneshot::channel();
        let mut writer_task = shared.tasks.spawn(
            write_loop(
                writer,
                queue,
                farewell_rx,
                Arc::clone(&shared),
                Arc::clone(&session),
            )
            .instrument(tracing::Span::current()),
        );
        tracing::debug!("connected");

        let core = CoreService::new(
            HooksLayer::new(Arc::clone(&shared), Arc::clone(&handler))
                .layer(RoomRouter::new(Arc::clone(&shared), Arc::clone(&handler))),
        );
        let stack = ServiceBuilder::new()
            .map_result(recover)
            .layer(PayloadLimitLayer::new(config.max_payload))
            .layer(IdleTimeoutLayer::new())
            .layer(AuthLayer::new())
            // Optional layers are present either way, as no-ops when off: one stack type,
            // and no `Either` (whose error and future types trip the compiler's `Send`
            // check of this task).
            .layer(
                config
                    .rate_limit
                    .unwrap_or(ClientRateLimitLayer::unlimited()),
            )
            .layer(config.room_names.unwrap_or(RoomNamePolicyLayer::any()))
            .service(layer.layer(core));
        let mut driver = Driver {
            shared: &shared,
            handler: &handler,
            session: &session,
            stack,
            reader,
            buf,
            reserve: MIN_READ_RESERVE,
            frames,
        };
        let guard = LeaveOnDrop {
            session: Arc::clone(&session),
            handler: Arc::clone(&handler),
            shared: Arc::clone(&shared),
        };
        let reason = driver.run().await;

        tracing::debug!(?reason, "disconnecting");
        // Unlisted before the farewell goes out: once the client reads why it was
        // disconnected, the handle no longer finds it (kick, send_to, client_info).
        shared.directory.remove(client_id);
        if reason == DisconnectReason::ServerShutdown {
            session.leave_room_quietly(&*handler, &shared.counters);
        }
        drop(guard); // leaves the room (if still in one): PlayerLeft to the others, on_leave once
        let farewell = reason.farewell();
        farewell_guard.reason = reason;
        let mut said_goodbye = farewell.is_some();
        // Without a farewell, dropping the sender still ends the writer after the queued frames.
        match farewell {
            // A writer gone on a write error cannot say goodbye (one that gave up on a stalled
            // socket is waiting for this farewell).
            Some(frame) => said_goodbye = farewell_tx.send(frame).is_ok(),
            None => drop(farewell_tx),
        }
        // A writer stuck on a client that does not read must not pin this connection (and
        // its slot, and `shutdown()`) forever.
        if Box::pin(shared.with_patience(&mut writer_task))
            .await
            .is_none()
        {
            writer_task.abort();
            // The farewell never left: no point waiting for the client to answer it.
            said_goodbye = false;
        }
        if said_goodbye {
            // Read until the client closes, so that its unread bytes do not turn our close
            // into a reset that could destroy the farewell before the client reads it.
            Box::pin(shared.with_patience(linger(&mut driver.reader, &mut driver.buf))).await;
        }
        drop(farewell_guard);
    }
    .instrument(span)
    .await
}

/// Takes a client out of the directory, counts its disconnect and fires `on_disconnect`,
/// however its connection ends (cancellation included), exactly once.
struct DisconnectOnDrop {
    shared: Arc<Shared>,
    handler: SharedHandler,
    client_id: Uuid,
    reason: DisconnectReason,
}

impl Drop for DisconnectOnDrop {
    fn drop(&mut self) {
        self.shared.directory.remove(self.client_id);
        if let Some(cluster) = self.shared.cluster() {
            cluster.client_disconnected(self.client_id);
        }
        self.shared.counters.disconnected(self.reason.kind());
        guarded("on_disconnect", || {
            self.handler.on_disconnect(self.client_id, &self.reason)
        });
    }
}

/// Leaves the session's room however the driver ends, cancellation included.
struct LeaveOnDrop {
    session: Arc<Session>,
    handler: SharedHandler,
    shared: Arc<Shared>,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.session
            .leave_room(&*self.handler, &self.shared.counters);
    }
}
