//! Room state: the entries a member sets, relayed to the others and kept for later joiners.

use super::RoomRouter;
use crate::pipeline::Reply;
use crate::session::Session;
use bytes::Bytes;

impl RoomRouter {
    pub(super) fn set_state(&self, session: &Session, key: &str, value: &Bytes) -> Reply {
        let _ = (session, key, value);
        Reply::error("not supported by this relay yet")
    }
}
