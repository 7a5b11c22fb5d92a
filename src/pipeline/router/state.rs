//! Room state: the entries a member sets, relayed to the others and kept for later joiners.

use super::{room_to_send_to, RoomRouter};
use crate::pipeline::Reply;
use crate::protocol::{encode, ServerFrame};
use crate::room::check_key;
use crate::session::{report_backpressure, Session};
use bytes::Bytes;
use std::sync::Arc;

impl RoomRouter {
    pub(super) fn set_state(&self, session: &Session, key: &str, value: &Bytes) -> Reply {
        // The key first: a bad request is refused as such wherever the client is.
        if let Err(refused) = check_key(key) {
            return Reply::error(refused.message(""));
        }
        let room = match room_to_send_to(session) {
            Ok(room) => room,
            Err(reply) => return reply,
        };
        let owner = session.client_id;
        // Encoded once, outside the room's locks; every other member shares it.
        let frame = encode(&ServerFrame::State { owner, key, value });
        let limits = self.shared.config.room_state;
        let mut pending = session.pending();
        let mut apply = || room.set_state(owner, key, value, &frame, limits, &mut pending);
        // In a cluster the broker keeps it too, and every other relay gets it.
        let set = match self.shared.cluster() {
            Some(cluster) => cluster.set_state(&room, owner, key, value, apply),
            None => apply(),
        };
        drop(pending);
        match set {
            Ok(Some(dropped)) => {
                report_backpressure(&*self.handler, &self.shared.counters, &dropped, room.id());
                Reply::relayed(Arc::clone(room.id()))
            }
            Ok(None) => Reply::none(),
            Err(refused) => Reply::error(refused.message(room.id())),
        }
    }
}
