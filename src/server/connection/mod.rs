//! One established connection, from the accepted socket to its last byte: the handshake
//! ([`handshake`](mod@handshake)), then the driver's read loop through the frame pipeline ([`driver`]),
//! beside a writer task ([`writer`](super::writer)) fed by the client's bounded queue, then
//! the farewell and the lingering close ([`closing`]).
//!
//! This module ties them together and holds the guards that keep the room, the directory
//! and the hooks right however a connection ends, cancellation included. With
//! `resume_window`, a drop may instead hold the seat ([`seats`]): the guards then move into
//! the held seat, and end it when it expires, or move on to the connection that resumes it.

mod closing;
mod driver;
mod handoff;
mod handshake;
mod hold;
pub(crate) mod seats;
#[cfg(test)]
mod tests;

pub(crate) use closing::{reject, rejection};
pub(crate) use driver::MAX_READ_RESERVE;
#[cfg(feature = "redis")]
pub(crate) use handoff::hand_off;
pub(crate) use hold::end_held;

use crate::auth::Identity;
use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, SharedHandler};
use crate::outbox::{outbox_to, DirectWrite, Inbox};
use crate::pipeline::hooks::HooksLayer;
use crate::pipeline::router::RoomRouter;
use crate::pipeline::{recover, CoreService, FrameLayer};
use crate::protocol::FrameReader;
use crate::server::writer::write_loop;
use crate::server::writer::Ending;
use crate::server::Shared;
use crate::session::Session;
use bytes::BytesMut;
use closing::linger;
use driver::{Driver, MIN_READ_RESERVE};
use ghost_sync_layers::{
    AuthLayer, ClientRateLimitLayer, IdleTimeoutLayer, PayloadLimitLayer, RoomNamePolicyLayer,
};
use handshake::{handshake, Admitted};
use hold::hold;
use seats::Held;
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
    let span = tracing::info_span!("connection", client_id = tracing::field::Empty, %peer);
    async move {
        let frames = FrameReader::for_payload(shared.config.max_payload);
        let mut buf = BytesMut::new();
        let config = &shared.config;
        // In a block of its own: what the handshake and the start of the connection need
        // is not kept in the connection's future for its whole life.
        let (session, mut guards, farewell_tx, mut writer_task) = {
            let (admitted, fresh_id) = {
                let fresh_id = Uuid::new_v4();
                // Boxed, as every path an idle connection is not on: its future stays small.
                let answer = Box::pin(handshake(
                    &shared,
                    &mut reader,
                    &mut writer,
                    &mut buf,
                    &frames,
                    fresh_id,
                    peer,
                ))
                .await;
                match answer {
                    Some(admitted) => (admitted, fresh_id),
                    None => return,
                }
            };

            // Whatever happens next, the seat's guards end it once (the client leaves its
            // room, then the directory, and `on_disconnect` fires), even if the task is
            // cancelled; unless a hold takes them over.
            let (session, queue, guards, resumed) = match admitted {
                Admitted::Fresh(identity, token) => {
                    let (session, queue) = new_session(&shared, fresh_id, peer, identity, direct);
                    if let Some(cluster) = shared.cluster() {
                        cluster.client_connected(&session, token.as_ref());
                    }
                    shared.counters.connected();
                    let guards = SeatGuards::new(&shared, &handler, &session);
                    (session, queue, guards, None)
                }
                Admitted::Resumed(
                    Held {
                        session: old,
                        mut guards,
                    },
                    token,
                ) => {
                    let session = Arc::new(Session::resumed_from(&old, peer));
                    // Listed as the new connection from now on (same id, so it replaces the
                    // old).
                    shared.directory.insert(Arc::clone(&session));
                    guards.leave.session = Arc::clone(&session);
                    // After the Welcome the handshake wrote: the frames queued meanwhile,
                    // then `Resumed`.
                    let (queue, missed) = session.outbox.attach(direct);
                    if let Some(cluster) = shared.cluster() {
                        cluster.token_changed(session.client_id, &token);
                    }
                    (session, queue, guards, Some(missed))
                }
                Admitted::Moved(moved, token, identity) => {
                    let (session, queue) =
                        new_session(&shared, moved.client_id, peer, identity, direct);
                    // In its room without a word to anyone: it never left.
                    let room = moved.room.as_deref().and_then(|id| shared.registry.get(id));
                    if let Some(room) = room {
                        room.adopt(session.member());
                        session.set_room(room);
                    }
                    if let Some(cluster) = shared.cluster() {
                        cluster.moved_in(&session, &moved, &token);
                    }
                    session.outbox.adopt(moved.frames, moved.missed);
                    shared.counters.connected();
                    let guards = SeatGuards::new(&shared, &handler, &session);
                    (session, queue, guards, Some(moved.missed))
                }
            };
            // The handshake checked the credentials (or the relay is open).
            session.set_authenticated();
            let client_id = session.client_id;
            tracing::Span::current().record("client_id", tracing::field::display(client_id));
            let (farewell_tx, farewell_rx) = oneshot::channel();
            let writer_task = shared.tasks.spawn(
                write_loop(
                    writer,
                    queue,
                    farewell_rx,
                    Arc::clone(&shared),
                    Arc::clone(&session),
                )
                .instrument(tracing::Span::current()),
            );
            match resumed {
                Some(missed) => {
                    tracing::debug!(missed, "resumed");
                    guarded("on_resume", || handler.on_resume(client_id, missed));
                }
                None => tracing::debug!("connected"),
            }
            (session, guards, farewell_tx, writer_task)
        };
        let client_id = session.client_id;

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
        let reason = driver.run().await;
        // What the end needs of the driver; the rest of it (the stack) goes now.
        let Driver {
            mut reader,
            mut buf,
            ..
        } = driver;
        // The end of a connection, boxed: its states are not part of every idle
        // connection's future.
        let ending = Box::pin(async move {
            tracing::debug!(?reason, "disconnecting");
            if let Some(seats) = shared.seats.as_ref().filter(|_| {
                reason.holds_seat() && !session.has_said_bye() && !shared.shutdown.is_cancelled()
            }) {
                drop((reader, buf));
                // Boxed in a statement of its own: the hold's future is then not a temporary of
                // the await's statement, whose room the connection's future would keep.
                let holding = Box::pin(hold(
                    seats,
                    &shared,
                    &handler,
                    session,
                    guards,
                    reason,
                    farewell_tx,
                    writer_task,
                ));
                holding.await;
                return;
            }
            if let Some(seats) = &shared.seats {
                // Its token is refused from now on, with this reason.
                seats.end(client_id, &reason);
            }
            // Unlisted before the farewell goes out: once the client reads why it was
            // disconnected, the handle no longer finds it (kick, send_to, client_info).
            shared.directory.remove(client_id);
            if reason == DisconnectReason::ServerShutdown {
                session.leave_room_quietly(&*handler, &shared.counters);
            }
            // Leaves the room (if still in one): PlayerLeft to the others, on_leave once.
            guards.leave_now();
            let farewell = reason.farewell();
            guards.farewell.set_reason(reason);
            let mut said_goodbye = farewell.is_some();
            // Without a farewell, dropping the sender still ends the writer after the queued frames.
            match farewell {
                // A writer gone on a write error cannot say goodbye (one that gave up on a stalled
                // socket is waiting for this farewell).
                Some(frame) => said_goodbye = farewell_tx.send(Ending::Close(frame)).is_ok(),
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
                Box::pin(shared.with_patience(linger(&mut reader, &mut buf))).await;
            }
            drop(guards);
        });
        ending.await;
    }
    .instrument(span)
    .await
}

/// A new session for `client_id` and its queue, listed in the directory.
fn new_session(
    shared: &Shared,
    client_id: Uuid,
    peer: SocketAddr,
    identity: Option<Identity>,
    direct: Option<Arc<dyn DirectWrite>>,
) -> (Arc<Session>, Inbox) {
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
    shared.directory.insert(Arc::clone(&session));
    (session, queue)
}

/// What ends a seat when dropped: it leaves its room, then the directory, then
/// `on_disconnect` fires (fields drop in order).
pub(crate) struct SeatGuards {
    leave: LeaveOnDrop,
    farewell: DisconnectOnDrop,
}

impl SeatGuards {
    fn new(shared: &Arc<Shared>, handler: &SharedHandler, session: &Arc<Session>) -> Self {
        Self {
            leave: LeaveOnDrop {
                session: Arc::clone(session),
                handler: Arc::clone(handler),
                shared: Arc::clone(shared),
            },
            farewell: DisconnectOnDrop(Some(Farewell {
                shared: Arc::clone(shared),
                handler: Arc::clone(handler),
                client_id: session.client_id,
                reason: DisconnectReason::ServerShutdown,
            })),
        }
    }

    /// Ends the seat here for a client that moved to another relay: nothing is left to
    /// leave, and `on_disconnect` fires with [`DisconnectReason::Replaced`], but the client
    /// stays in the cluster's registry, as that relay's.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn moved_away(self) {
        let Self {
            leave,
            mut farewell,
        } = self;
        drop(leave);
        farewell.set_reason(DisconnectReason::Replaced);
        farewell.moved_away();
    }

    /// Leaves the room now (before the farewell), rather than when dropped.
    fn leave_now(&self) {
        self.leave
            .session
            .leave_room(&*self.leave.handler, &self.leave.shared.counters);
    }
}

/// Takes a client out of the directory, counts its disconnect and fires `on_disconnect`,
/// however its connection ends (cancellation included), exactly once. (An `Option`, empty
/// once it ran, rather than a flag: it costs no byte in every connection's future.)
struct DisconnectOnDrop(Option<Farewell>);

/// What [`DisconnectOnDrop`] needs to end a client.
struct Farewell {
    shared: Arc<Shared>,
    handler: SharedHandler,
    client_id: Uuid,
    reason: DisconnectReason,
}

impl DisconnectOnDrop {
    /// The reason `on_disconnect` will be given.
    fn set_reason(&mut self, reason: DisconnectReason) {
        if let Some(farewell) = &mut self.0 {
            farewell.reason = reason;
        }
    }

    /// Ends the client here now, for a seat that moved to another relay: the registry keeps
    /// the client, as that relay's.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn moved_away(mut self) {
        if let Some(farewell) = self.0.take() {
            farewell.run(false);
        }
    }
}

impl Drop for DisconnectOnDrop {
    fn drop(&mut self) {
        if let Some(farewell) = self.0.take() {
            farewell.run(true);
        }
    }
}

impl Farewell {
    /// `gone`: the client leaves the cluster's registry too (it did not move).
    fn run(self, gone: bool) {
        if let Some(seats) = &self.shared.seats {
            // A cancelled connection's seat: its token ends with it.
            seats.end(self.client_id, &self.reason);
        }
        self.shared.directory.remove(self.client_id);
        if let Some(cluster) = self.shared.cluster().filter(|_| gone) {
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
