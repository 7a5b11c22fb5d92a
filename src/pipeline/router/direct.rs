//! Direct sends: a frame for some members of the sender's room only.
//!
//! The frame is encoded once and shared by its recipients, as a broadcast's is. The targets
//! are checked and the frame queued under one read lock of the room's members, so the send
//! is all or nothing against the membership of one moment: a target that leaves meanwhile
//! either gets it before its `PlayerLeft`, or the send is refused. A target that is a member
//! on another relay of a cluster gets the same frame through the broker, as a message to the
//! relay that holds it (the handle's `send_to` path): one message per such target.

use super::{room_to_send_to, RoomRouter};
use crate::outbox::{Pending, Refused};
use crate::pipeline::Reply;
use crate::protocol::{encode, ServerFrame};
use crate::room::{Dropped, Member, Room};
use crate::session::{report_backpressure, Session};
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// Why a direct send reached nobody: this target is not a member of the room.
struct NotInRoom(Uuid);

/// Where a direct send went: who here did not get it (a full queue), and the targets on
/// other relays, for the broker.
struct Sent {
    dropped: Dropped,
    remote: Vec<Uuid>,
}

impl RoomRouter {
    pub(super) fn direct(&self, session: &Session, targets: &[Uuid], data: &Bytes) -> Reply {
        let room = match room_to_send_to(session) {
            Ok(room) => room,
            Err(reply) => return reply,
        };
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
            Ok(Sent { dropped, remote }) => {
                if let Some(cluster) = self.shared.cluster() {
                    for target in remote {
                        // `false`: that relay let go of the member since: nobody to tell.
                        cluster.send_to(target, frame.clone());
                    }
                }
                report_backpressure(&*self.handler, &self.shared.counters, &dropped, room.id());
                Reply::relayed(Arc::clone(room.id()))
            }
            Err(NotInRoom(id)) => Reply::error(format!("not in the room: {id}")),
        }
    }
}

/// Queues `frame` for every member here named in `targets` but `from`, once each, and lists
/// the targets that are members on other relays, if every target is a member; else queues
/// nothing and names the first target that is not.
fn fan_out(
    room: &Room,
    members: &[Member],
    from: Uuid,
    targets: &[Uuid],
    frame: &Bytes,
    pending: &mut Pending,
) -> Result<Sent, NotInRoom> {
    // One sorted copy per send (at most 256 ids): each member is then looked up in it, which
    // also names every target once however often the client listed it.
    let mut wanted = targets.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let named = |id: &Uuid| wanted.binary_search(id).is_ok();
    let mut remote = Vec::new();
    // Members are distinct: as many of them named as distinct targets means all are here.
    if members.iter().filter(|m| named(&m.id)).count() < wanted.len() {
        // The rarer path: the others must be members on other relays, else it is refused,
        // naming the first missing target in the client's own order.
        for &id in targets {
            if members.iter().any(|m| m.id == id) || remote.contains(&id) {
                continue;
            }
            if !room.is_remote(id) {
                return Err(NotInRoom(id));
            }
            remote.push(id);
        }
    }
    let mut dropped = Dropped::new();
    for member in members.iter().filter(|m| m.id != from && named(&m.id)) {
        // A closed queue means that member is already disconnecting: nothing to report.
        if let Err(Refused::Full) = pending.push(&member.outbox, frame.clone()) {
            dropped.push(member.id);
        }
    }
    Ok(Sent { dropped, remote })
}
