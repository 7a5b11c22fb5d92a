//! Direct sends: a frame for some members of the sender's room only.

use super::RoomRouter;
use crate::pipeline::Reply;
use crate::session::Session;
use bytes::Bytes;

impl RoomRouter {
    pub(super) fn direct(&self, session: &Session, targets: &[uuid::Uuid], data: &Bytes) -> Reply {
        let _ = (session, targets, data);
        Reply::error("not supported by this relay yet")
    }
}
