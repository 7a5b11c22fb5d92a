//! [`RoomRouter`]: the innermost service, which carries out a request against the room registry.
//!
//! It is synchronous (its future is always ready): joins, leaves and broadcasts are a few map
//! and queue operations, and fan-out never waits for a slow member.

use super::{ClientMessage, FrameRequest, Reply};
use crate::handler::SharedHandler;
use crate::protocol::{encode, ServerFrame};
use crate::room::{JoinRefused, Room};
use crate::server::Shared;
use crate::session::{report_backpressure, Session};
use bytes::Bytes;
use ghost_sync_layers::BoxError;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

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

    fn route(&self, req: FrameRequest) -> Reply {
        let session = req.session();
        match req.message() {
            ClientMessage::Join { room_id, .. } => self.join(session, room_id, req.target()),
            ClientMessage::Leave => match session.leave_room(&*self.handler, &self.shared.counters)
            {
                Some(room) => Reply::frame(encode(&ServerFrame::Left { room_id: room.id() })),
                None => Reply::error("not in a room"),
            },
            ClientMessage::Broadcast { data } => self.broadcast(session, data),
        }
    }

    fn join(&self, session: &Session, room_id: &str, target: Option<&Arc<Room>>) -> Reply {
        let room = match target {
            Some(room) => Some(Arc::clone(room)),
            None => self.shared.registry.get(room_id),
        };
        let Some(room) = room else {
            return Reply::error(format!("room not found: {room_id}"));
        };
        let client_id = session.client_id;
        let max_payload = self.shared.config.max_payload;
        if session
            .current_room()
            .is_some_and(|current| Arc::ptr_eq(&current, &room))
        {
            // The same answer as a first join, so that a client waiting for the member list
            // after `Joined` never waits in vain.
            return Reply::frame(room.rejoin(client_id, max_payload));
        }
        // A room deleted while this join waited for admission: refuse before leaving the
        // current room, so that a refused join changes nothing.
        if room.is_deleted() {
            return Reply::error(format!("room not found: {room_id}"));
        }
        // Likewise a full room (checked again, atomically, by the join itself).
        if room
            .options()
            .max_clients
            .is_some_and(|max| room.len() >= max)
        {
            return Reply::error(format!("room full: {room_id}"));
        }
        let handler = &*self.handler;
        let counters = &self.shared.counters;
        session.leave_room(handler, counters);
        let announce = encode(&ServerFrame::PlayerJoined { client_id });
        match room.join(session.member(), &announce, max_payload) {
            Ok(dropped) => {
                session.set_room(Arc::clone(&room));
                report_backpressure(handler, counters, &dropped, room.id());
                Reply::none()
            }
            Err(JoinRefused::Deleted) => Reply::error(format!("room not found: {room_id}")),
            Err(JoinRefused::Full) => Reply::error(format!("room full: {room_id}")),
        }
    }

    fn broadcast(&self, session: &Session, data: &Bytes) -> Reply {
        let Some(room) = session.current_room() else {
            return Reply::error("not in a room");
        };
        if room.is_deleted() {
            return Reply::error(format!("room deleted: {}", room.id()));
        }
        // Encoded once; every recipient shares this buffer.
        let frame = encode(&ServerFrame::Broadcast {
            sender_id: session.client_id,
            data,
        });
        let dropped = room.broadcast(session.client_id, &frame);
        report_backpressure(&*self.handler, &self.shared.counters, &dropped, room.id());
        Reply::relayed(Arc::clone(room.id()))
    }
}

impl Service<FrameRequest> for RoomRouter {
    type Response = Reply;
    type Error = BoxError;
    type Future = Ready<Result<Reply, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: FrameRequest) -> Self::Future {
        ready(Ok(self.route(req)))
    }
}
