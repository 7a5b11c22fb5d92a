//! Latest-state broadcasts: a frame that may replace the sender's older one of the same key
//! in a slow member's queue (the write queue does the replacing, see `outbox::keyed`).

use super::RoomRouter;
use crate::pipeline::Reply;
use crate::protocol::{encode, ServerFrame};
use crate::session::{report_backpressure, Session};
use bytes::Bytes;
use std::sync::Arc;

impl RoomRouter {
    /// Relays `data` as the latest state of `key` to the rest of the sender's room, like a
    /// broadcast otherwise: encoded once, written at the end of the driver's batch.
    pub(super) fn keyed(&self, session: &Session, key: u32, data: &Bytes) -> Reply {
        let Some(room) = session.current_room() else {
            return Reply::error("not in a room");
        };
        if room.is_deleted() {
            return Reply::error(format!("room deleted: {}", room.id()));
        }
        let frame = encode(&ServerFrame::Keyed {
            sender_id: session.client_id,
            key,
            data,
        });
        let mut pending = session.pending();
        let (recipients, dropped) =
            room.broadcast_keyed(session.client_id, key, &frame, &mut pending);
        drop(pending);
        room.fanned_out(recipients);
        // Members on other relays get it through the broker as any frame: their relay queues
        // it without replacing (PROTOCOL.md section 7).
        if room.has_remote() {
            if let Some(cluster) = self.shared.cluster() {
                cluster.publish(&room, &frame);
            }
        }
        report_backpressure(&*self.handler, &self.shared.counters, &dropped, room.id());
        Reply::relayed(Arc::clone(room.id()))
    }
}
