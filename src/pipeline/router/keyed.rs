//! Latest-state broadcasts: a frame that may replace the sender's older one of the same key
//! in a slow member's queue (the write queue does the replacing, see `outbox::keyed`).

use super::{room_to_send_to, RoomRouter};
use crate::pipeline::Reply;
use crate::protocol::{encode, ServerFrame};
use crate::session::Session;
use bytes::Bytes;

impl RoomRouter {
    /// Relays `data` as the latest state of `key` to the rest of the sender's room, like a
    /// broadcast otherwise: encoded once, written at the end of the driver's batch.
    pub(super) fn keyed(&self, session: &Session, key: u32, data: &Bytes) -> Reply {
        let room = match room_to_send_to(session) {
            Ok(room) => room,
            Err(reply) => return reply,
        };
        let frame = encode(&ServerFrame::Keyed {
            sender_id: session.client_id,
            key,
            data,
        });
        let mut pending = session.pending();
        let (recipients, dropped) =
            room.broadcast_keyed(session.client_id, key, &frame, &mut pending);
        drop(pending);
        // Members on other relays get it through the broker; their relay replaces too.
        self.relayed(&room, &frame, recipients, &dropped)
    }
}
