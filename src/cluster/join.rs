//! A join on a relay that shares its rooms: the broker gives the seat (counting the members
//! of every relay), and the member is added here when the feed confirms it, in the feed's
//! order, so that the member list it gets and the presence after it never miss or repeat
//! anyone. A join that fails, or whose client goes away meanwhile, gives back all it took.

use super::backplane::{BrokerError, Op, Seat};
use super::{answer, Cluster};
use crate::protocol::{encode, ServerFrame};
use crate::room::{Dropped, JoinRefused, Member, Room};
use crate::server::Shared;
use crate::sync::lock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How long a seated join waits for the feed to confirm it.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a join through the broker failed.
#[derive(Debug)]
pub(crate) enum JoinFailure {
    Full,
    NoRoom,
    Broker(String),
}

/// A join the broker seated, waiting for its event on the feed: the dispatcher adds the
/// member when that event comes, in the feed's order, so that the member list it gets and
/// the presence events after it never miss or repeat anyone.
pub(super) struct PendingJoin {
    room: Arc<Room>,
    member: Member,
    done: oneshot::Sender<Result<Dropped, JoinRefused>>,
}

/// A join under way; dropped before it finished (failed, or given up on by its caller), it
/// gives back whatever the join took: the broker's seat, the room's subscription, and the
/// local membership if the feed's confirmation came meanwhile.
struct JoinAttempt<'a> {
    cluster: &'a Cluster,
    room: Arc<Room>,
    client: Uuid,
    done: oneshot::Receiver<Result<Dropped, JoinRefused>>,
    finished: bool,
}

impl Drop for JoinAttempt<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let still_pending = lock(&self.cluster.pending).remove(&self.client).is_some();
        if !still_pending && matches!(self.done.try_recv(), Ok(Ok(_))) {
            let left = encode(&ServerFrame::PlayerLeft {
                client_id: self.client,
            });
            self.room.leave(self.client, &left);
        }
        // A seat the broker gave (or is about to give) goes back; harmless if there is none.
        self.cluster.left(&self.room, self.client);
    }
}

impl Cluster {
    /// Joins `member` to `room` through the broker, which checks the capacity across every
    /// relay. Leaves `room` subscribed if it worked; undoes everything otherwise, also when
    /// the caller gives up on it (the client went away).
    pub(crate) async fn join(
        &self,
        room: Arc<Room>,
        member: Member,
    ) -> Result<Dropped, JoinFailure> {
        let client = member.id;
        self.listen(room.id());
        let (seat_tx, seat_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        lock(&self.pending).insert(
            client,
            PendingJoin {
                room: Arc::clone(&room),
                member,
                done: done_tx,
            },
        );
        let mut attempt = JoinAttempt {
            cluster: self,
            room: Arc::clone(&room),
            client,
            done: done_rx,
            finished: false,
        };
        let asked = self.submit(Op::Join {
            room: Arc::clone(room.id()),
            client,
            answer: seat_tx,
        });
        let seat = if asked {
            answer(seat_rx).await
        } else {
            Err(BrokerError("the broker is unavailable".into()))
        };
        match seat {
            Ok(Seat::Taken) => {}
            Ok(Seat::Full) => return Err(JoinFailure::Full),
            Ok(Seat::NoRoom) => return Err(JoinFailure::NoRoom),
            Err(err) => return Err(JoinFailure::Broker(err.0)),
        }
        match tokio::time::timeout(JOIN_TIMEOUT, &mut attempt.done).await {
            Ok(Ok(Ok(dropped))) => {
                attempt.finished = true;
                Ok(dropped)
            }
            Ok(Ok(Err(JoinRefused::Deleted))) => Err(JoinFailure::NoRoom),
            Ok(Ok(Err(JoinRefused::Full))) => Err(JoinFailure::Full),
            _ => Err(JoinFailure::Broker(
                "the broker's confirmation did not come in time".into(),
            )),
        }
    }

    /// The dispatcher's half of a join: the feed confirmed it.
    pub(super) fn complete_join(
        &self,
        shared: &Shared,
        room: &str,
        client: Uuid,
    ) -> Option<(Arc<Room>, Dropped)> {
        let announce = encode(&ServerFrame::PlayerJoined { client_id: client });
        // Held while the member is added and told: a join given up on meanwhile (see
        // `JoinAttempt`) then either finds it still pending or finds its result.
        let mut pending = lock(&self.pending);
        // Seated in this room: a confirmation of an earlier join is not this one's.
        if pending.get(&client).is_none_or(|p| &**p.room.id() != room) {
            return None;
        }
        let pending = pending.remove(&client)?;
        let result = pending
            .room
            .join_seated(pending.member, &announce, shared.config.max_payload);
        let added = result.as_ref().ok().cloned();
        // The receiver lives as long as its `JoinAttempt`, which looks for this result.
        let _ = pending.done.send(result);
        added.map(|dropped| (pending.room, dropped))
    }
}
