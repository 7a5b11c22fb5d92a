//! Without the `redis` feature there is no backplane. This type, which has no values,
//! stands in for the real `Cluster` so that the relay's call sites need no `cfg`: none of
//! its methods can ever run.

use crate::directory::ClientInfo;
use crate::room::{Dropped, Member, Room};
use crate::session::Session;
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// No backplane: never constructed.
#[derive(Debug)]
pub(crate) enum Cluster {}

/// A seat another relay handed over (never, here).
#[derive(Debug)]
pub(crate) struct MovedSeat {
    pub(crate) client_id: Uuid,
    pub(crate) room: Option<Arc<str>>,
    pub(crate) frames: Bytes,
    pub(crate) missed: u32,
}

/// Why a join through the broker failed (never, here).
#[allow(dead_code)]
pub(crate) enum JoinFailure {
    Full,
    NoRoom,
    Broker(String),
}

impl Cluster {
    pub(crate) fn publish(&self, _: &Room, _: &Bytes) {
        match *self {}
    }

    pub(crate) async fn join(&self, _: Arc<Room>, _: Member) -> Result<Dropped, JoinFailure> {
        match *self {}
    }

    pub(crate) fn left(&self, _: &Arc<Room>, _: Uuid) {
        match *self {}
    }

    pub(crate) fn set_state(
        &self,
        _: &Room,
        _: Uuid,
        _: &str,
        _: &[u8],
        _: impl FnOnce() -> Result<Option<Dropped>, crate::room::StateRefused>,
    ) -> Result<Option<Dropped>, crate::room::StateRefused> {
        match *self {}
    }

    pub(crate) fn client_connected(&self, _: &Session, _: Option<&crate::server::Token>) {
        match *self {}
    }

    pub(crate) async fn claim_elsewhere(
        &self,
        _: &[u8],
        _: &Option<crate::auth::Identity>,
    ) -> Result<MovedSeat, String> {
        match *self {}
    }

    pub(crate) fn handed_off(&self, _: &Room) {
        match *self {}
    }

    pub(crate) fn moved_in(&self, _: &Session, _: &MovedSeat, _: &crate::server::Token) {
        match *self {}
    }

    pub(crate) fn token_changed(&self, _: Uuid, _: &crate::server::Token) {
        match *self {}
    }

    pub(crate) fn client_disconnected(&self, _: Uuid) {
        match *self {}
    }

    pub(crate) fn room_created(&self, _: &str, _: Option<usize>, _: Option<()>) {
        match *self {}
    }

    pub(crate) fn room_deleted(&self, _: &str, _: Option<()>) {
        match *self {}
    }

    pub(crate) fn meta_set(&self, _: &str, _: &str, _: &str) {
        match *self {}
    }

    pub(crate) fn kick(&self, _: Uuid, _: &str) -> bool {
        match *self {}
    }

    pub(crate) fn send_to(&self, _: Uuid, _: Bytes) -> bool {
        match *self {}
    }

    pub(crate) fn remote_info(&self, _: Uuid) -> Option<ClientInfo> {
        match *self {}
    }

    pub(crate) fn remote_infos(&self) -> Vec<ClientInfo> {
        match *self {}
    }

    pub(crate) fn remote_count(&self) -> usize {
        match *self {}
    }

    pub(crate) fn stats(&self) -> [u64; 5] {
        match *self {}
    }
}
