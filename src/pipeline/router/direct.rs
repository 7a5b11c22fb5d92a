//! Direct sends: a frame for some members of the sender's room only.
//!
//! The frame is encoded once and shared by its recipients, as a broadcast's is. The targets
//! are checked and the frame queued under one read lock of the room's members, so the send
//! is all or nothing against the membership of one moment: a target that leaves meanwhile
//! either gets it before its `PlayerLeft`, or the send is refused.

use super::RoomRouter;
use crate::outbox::{Pending, Refused};
use crate::pipeline::Reply;
use crate::protocol::{encode, ServerFrame};
use crate::room::{Dropped, Member, Room};
use crate::session::{report_backpressure, Session};
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// Why a direct send reached nobody.
enum Refusal {
    /// This target is not a member of the room.
    NotInRoom(Uuid),
    /// This target is a member on another relay, which direct sends do not reach.
    NotHere(Uuid),
}

impl RoomRouter {
    pub(super) fn direct(&self, session: &Session, targets: &[Uuid], data: &Bytes) -> Reply {
        let Some(room) = session.current_room() else {
            return Reply::error("not in a room");
        };
        if room.is_deleted() {
            return Reply::error(format!("room deleted: {}", room.id()));
        }
        let frame = encode(&ServerFrame::Direct {
            sender_id: session.client_id,
            data,
        });
        // Written by the driver at the end of its batch of frames, as a broadcast is.
        let mut pending = session.pending();
        let sent = room.with_members(|members| {
            fan_out(
                &room,
                members,
                session.client_id,
                targets,
                &frame,
                &mut pending,
            )
        });
        drop(pending);
        match sent {
            Ok(dropped) => {
                report_backpressure(&*self.handler, &self.shared.counters, &dropped, room.id());
                Reply::relayed(Arc::clone(room.id()))
            }
            Err(Refusal::NotInRoom(id)) => Reply::error(format!("not in the room: {id}")),
            Err(Refusal::NotHere(id)) => Reply::error(format!("not on this relay: {id}")),
        }
    }
}

/// Queues `frame` for every member named in `targets` but `from`, once each, if every
/// target is one of `members`; else queues nothing and names the first target that is not.
fn fan_out(
    room: &Room,
    members: &[Member],
    from: Uuid,
    targets: &[Uuid],
    frame: &Bytes,
    pending: &mut Pending,
) -> Result<Dropped, Refusal> {
    // One sorted copy per send (at most 256 ids): each member is then looked up in it, which
    // also names every target once however often the client listed it.
    let mut wanted = targets.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let named = |id: &Uuid| wanted.binary_search(id).is_ok();
    // Members are distinct: as many of them named as distinct targets means all are here.
    if members.iter().filter(|m| named(&m.id)).count() < wanted.len() {
        // The rare path: find the first missing target in the client's own order.
        let missing = targets
            .iter()
            .copied()
            .find(|id| !members.iter().any(|m| m.id == *id))
            .unwrap_or_default();
        return Err(if room.is_remote(missing) {
            Refusal::NotHere(missing)
        } else {
            Refusal::NotInRoom(missing)
        });
    }
    let mut dropped = Dropped::new();
    for member in members.iter().filter(|m| m.id != from && named(&m.id)) {
        // A closed queue means that member is already disconnecting: nothing to report.
        if let Err(Refused::Full) = pending.push(&member.outbox, frame.clone()) {
            dropped.push(member.id);
        }
    }
    Ok(dropped)
}
