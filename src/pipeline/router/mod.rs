//! [`RoomRouter`]: the innermost service, which carries out a request against the room registry.
//!
//! It is synchronous (its future is ready at once): joins, leaves and broadcasts are a few
//! map and queue operations, and fan-out never waits for a slow member. The one exception is
//! a join on a relay that shares its rooms through a broker: the broker gives the seat, so
//! that join waits for its answer (a boxed future, off the hot path).

mod direct;
mod keyed;
mod state;

use super::{ClientMessage, FrameRequest, Reply};
use crate::cluster::{Cluster, JoinFailure};
use crate::handler::SharedHandler;
use crate::protocol::{encode, ServerFrame};
use crate::room::{JoinRefused, Room};
use crate::server::Shared;
use crate::session::{report_backpressure, Session};
use crate::stats::JoinRefusal;
use bytes::Bytes;
use ghost_sync_layers::BoxError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use uuid::Uuid;

/// The innermost frame service: carries out joins, leaves and broadcasts.
#[derive(Clone)]
pub struct RoomRouter {
    shared: Arc<Shared>,
    handler: SharedHandler,
}

impl RoomRouter {
    pub(crate) fn new(shared: Arc<Shared>, handler: SharedHandler) -> Self {
        Self { shared, handler }
    }

    fn route(&self, req: FrameRequest) -> RouterFuture {
        let session = req.session();
        let reply = match req.message() {
            ClientMessage::Join { room_id, .. } => {
                return self.join(session, room_id, req.target());
            }
            ClientMessage::Leave => match session.leave_room(&*self.handler, &self.shared.counters)
            {
                Some(room) => Reply::frames(encode(&ServerFrame::Left { room_id: room.id() })),
                None => Reply::error("not in a room"),
            },
            ClientMessage::Broadcast { data } => self.broadcast(session, data),
            ClientMessage::Direct { targets, data } => self.direct(session, targets, data),
            ClientMessage::Keyed { key, data } => self.keyed(session, *key, data),
            ClientMessage::SetState { key, value } => self.set_state(session, key, value),
        };
        RouterFuture::ready(reply)
    }

    fn join(
        &self,
        session: &Arc<Session>,
        room_id: &str,
        target: Option<&Arc<Room>>,
    ) -> RouterFuture {
        match self.prepare_join(session, room_id, target) {
            Ok(room) => match self.shared.cluster() {
                Some(cluster) => self.join_cluster(Arc::clone(cluster), Arc::clone(session), room),
                None => RouterFuture::ready(self.join_here(session, room)),
            },
            Err(reply) => RouterFuture::ready(reply),
        }
    }

    /// The checks before a join, and the leave of the current room: the room to join, or
    /// the reply if there is nothing to join.
    fn prepare_join(
        &self,
        session: &Session,
        room_id: &str,
        target: Option<&Arc<Room>>,
    ) -> Result<Arc<Room>, Reply> {
        let room = match target {
            Some(room) => Some(Arc::clone(room)),
            None => self.shared.registry.get(room_id),
        };
        let counters = &self.shared.counters;
        let Some(room) = room else {
            counters.join_refused(JoinRefusal::NotFound);
            return Err(Reply::error(format!("room not found: {room_id}")));
        };
        if session
            .current_room()
            .is_some_and(|current| Arc::ptr_eq(&current, &room))
        {
            // The same answer as a first join, so that a client waiting for the member list
            // after `Joined` never waits in vain.
            let max_payload = self.shared.config.max_payload;
            if room.rejoin(&session.member(), max_payload) {
                let counters = &self.shared.counters;
                report_backpressure(&*self.handler, counters, &[session.client_id], room.id());
            }
            return Err(Reply::none());
        }
        // A room deleted while this join waited for admission: refuse before leaving the
        // current room, so that a refused join changes nothing.
        if room.is_deleted() {
            counters.join_refused(JoinRefusal::NotFound);
            return Err(Reply::error(format!("room not found: {room_id}")));
        }
        // Likewise a full room (checked again, atomically, by the join itself).
        if room
            .options()
            .max_clients
            .is_some_and(|max| room.len() >= max)
        {
            counters.join_refused(JoinRefusal::Full);
            return Err(Reply::error(format!("room full: {room_id}")));
        }
        session.leave_room(&*self.handler, &self.shared.counters);
        Ok(room)
    }

    fn join_here(&self, session: &Session, room: Arc<Room>) -> Reply {
        let client_id = session.client_id;
        let max_payload = self.shared.config.max_payload;
        let announce = encode(&ServerFrame::PlayerJoined { client_id });
        let counters = &self.shared.counters;
        match room.join(session.member(), &announce, max_payload) {
            Ok(dropped) => {
                session.set_room(Arc::clone(&room));
                counters.joined();
                report_backpressure(&*self.handler, counters, &dropped, room.id());
                Reply::none()
            }
            Err(JoinRefused::Deleted) => {
                counters.join_refused(JoinRefusal::NotFound);
                Reply::error(format!("room not found: {}", room.id()))
            }
            Err(JoinRefused::Full) => {
                counters.join_refused(JoinRefusal::Full);
                Reply::error(format!("room full: {}", room.id()))
            }
        }
    }

    /// A join the broker seats: it counts the members of every relay, so capacity holds
    /// across the cluster.
    fn join_cluster(
        &self,
        cluster: Arc<Cluster>,
        session: Arc<Session>,
        room: Arc<Room>,
    ) -> RouterFuture {
        let shared = Arc::clone(&self.shared);
        let handler = Arc::clone(&self.handler);
        RouterFuture::boxed(Box::pin(async move {
            let id = Arc::clone(room.id());
            let counters = &shared.counters;
            match cluster.join(Arc::clone(&room), session.member()).await {
                Ok(dropped) => {
                    session.set_room(room);
                    counters.joined();
                    report_backpressure(&*handler, counters, &dropped, &id);
                    Ok(Reply::none())
                }
                Err(JoinFailure::NoRoom) => {
                    counters.join_refused(JoinRefusal::NotFound);
                    Ok(Reply::error(format!("room not found: {id}")))
                }
                Err(JoinFailure::Full) => {
                    counters.join_refused(JoinRefusal::Full);
                    Ok(Reply::error(format!("room full: {id}")))
                }
                Err(JoinFailure::Broker(why)) => {
                    counters.join_refused(JoinRefusal::Broker);
                    tracing::warn!(room_id = %id, why, "join failed at the broker");
                    Ok(Reply::error(format!(
                        "join failed: {id}: the broker did not answer"
                    )))
                }
            }
        }))
    }

    fn broadcast(&self, session: &Session, data: &Bytes) -> Reply {
        let room = match room_to_send_to(session) {
            Ok(room) => room,
            Err(reply) => return reply,
        };
        // Encoded once; every recipient shares this buffer.
        let frame = encode(&ServerFrame::Broadcast {
            sender_id: session.client_id,
            data,
        });
        // Written by the driver at the end of its batch of frames (`Session::flush`).
        let mut pending = session.pending();
        let (recipients, dropped) = room.broadcast(session.client_id, &frame, &mut pending);
        drop(pending);
        self.relayed(&room, &frame, recipients, &dropped)
    }

    /// After a frame was queued for the members here: its fan-out recorded, the members on
    /// other relays reached, the full queues reported, and the answer.
    fn relayed(
        &self,
        room: &Arc<Room>,
        frame: &Bytes,
        recipients: usize,
        dropped: &[Uuid],
    ) -> Reply {
        // The application's recorder runs under no lock of ours.
        room.fanned_out(recipients);
        self.publish(room, frame);
        report_backpressure(&*self.handler, &self.shared.counters, dropped, room.id());
        Reply::relayed(Arc::clone(room.id()))
    }

    /// Members on other relays get `frame` through the broker: one publish for all of them,
    /// and none at all while the room's members are all here.
    fn publish(&self, room: &Arc<Room>, frame: &Bytes) {
        if room.has_remote() {
            if let Some(cluster) = self.shared.cluster() {
                cluster.publish(room, frame);
            }
        }
    }
}

/// The room a client's frame goes to: the one it is in, unless it is in none or the room was
/// deleted since (the answer, then).
fn room_to_send_to(session: &Session) -> Result<Arc<Room>, Reply> {
    let Some(room) = session.current_room() else {
        return Err(Reply::error("not in a room"));
    };
    if room.is_deleted() {
        return Err(Reply::error(format!("room deleted: {}", room.id())));
    }
    Ok(room)
}

impl Service<FrameRequest> for RoomRouter {
    type Response = Reply;
    type Error = BoxError;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: FrameRequest) -> Self::Future {
        self.route(req)
    }
}

type BoxedReply = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

/// The response future of [`RoomRouter`]: ready at once, except for a join that waits for
/// a broker.
pub struct RouterFuture(Inner);

enum Inner {
    Ready(Option<Reply>),
    Boxed(BoxedReply),
}

impl RouterFuture {
    fn ready(reply: Reply) -> Self {
        Self(Inner::Ready(Some(reply)))
    }

    fn boxed(future: BoxedReply) -> Self {
        Self(Inner::Boxed(future))
    }
}

impl Future for RouterFuture {
    type Output = Result<Reply, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // Polled once: a second poll after completion is a caller's bug, answered
            // with an error rather than a panic.
            Inner::Ready(reply) => {
                Poll::Ready(reply.take().ok_or_else(|| "polled after completion".into()))
            }
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}
