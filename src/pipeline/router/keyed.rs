//! Latest-state broadcasts: a frame that may replace the sender's older one of the same key
//! in a slow member's queue.

use super::RoomRouter;
use crate::pipeline::Reply;
use crate::session::Session;
use bytes::Bytes;

impl RoomRouter {
    pub(super) fn keyed(&self, session: &Session, key: u32, data: &Bytes) -> Reply {
        let _ = (session, key, data);
        Reply::error("not supported by this relay yet")
    }
}
