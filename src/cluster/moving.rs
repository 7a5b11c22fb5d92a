//! A held seat that moves to another relay: a client resumes on relay B with a token relay
//! A issued (a load balancer sent the reconnect elsewhere).
//!
//! 1. Every token's **lookup** (its first 8 bytes, in hex) is in the registry, naming the
//!    client; the registry names its relay. The whole token never is: the holding relay
//!    checks the other half, so a copy of the registry resumes nobody.
//! 2. B finds the seat's relay ([`Op::FindSeat`]) and sends it a claim with the token and
//!    the client's user id (`b'R'`, see [`bus_message`](super::bus_message)).
//! 3. A claims the seat in its own table, with the same rules as a local resume (single
//!    use, same user; a live connection is taken over), detaches it, moves the member to
//!    its room's remote list without telling anyone, and answers with the frames queued for
//!    it and the count it missed (`b'F'`), or why not (`b'N'`).
//! 4. B adopts the member in the room without telling anyone, queues the frames, then
//!    `Resumed`, and writes the move to the registry ([`Op::MoveIn`]), whose `V` event every
//!    relay applies to its mirror.
//!
//! Frames published to the room while the seat is between relays are lost uncounted, so
//! `missed` is a lower bound (CLUSTER.md).

use super::backplane::{BrokerError, Op};
use super::bus_message::Control;
use super::{answer, Cluster};
use crate::auth::Identity;
use crate::room::Room;
use crate::server::{hand_off, Shared, Token};
use crate::session::Session;
use crate::sync::{lock, write};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How long a claim waits for the holding relay's answer (a takeover of a live connection
/// included).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(8);

/// A seat another relay handed over.
#[derive(Debug)]
pub(crate) struct MovedSeat {
    pub(crate) client_id: Uuid,
    pub(crate) from: Arc<str>,
    pub(crate) room: Option<Arc<str>>,
    /// The frames queued for the client at the old relay, whole, one after the other.
    pub(crate) frames: Bytes,
    pub(crate) missed: u32,
}

/// What names a token in the registry: its first half, in hex.
pub(crate) fn lookup(token: &[u8]) -> String {
    token.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    /// Claims the seat `token` names on the relay that holds it, for a client identified
    /// as `identity`. `Err`: the reason the client reads.
    pub(crate) async fn claim_elsewhere(
        &self,
        token: &[u8],
        identity: &Option<Identity>,
    ) -> Result<MovedSeat, String> {
        let token: Token = token
            .try_into()
            .map_err(|_| "unknown resume token".to_owned())?;
        let (tx, rx) = oneshot::channel();
        let asked = self.submit(Op::FindSeat {
            lookup: lookup(&token),
            answer: tx,
        });
        let found = if asked {
            answer(rx).await
        } else {
            Err(BrokerError("the broker is unavailable".into()))
        };
        let (client_id, from) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return Err("unknown resume token".to_owned()),
            Err(err) => return Err(format!("resume token not checked: {err}")),
        };
        if from == self.relay {
            // Listed here by the registry, gone from this relay's own table.
            return Err("unknown resume token".to_owned());
        }
        let (tx, rx) = oneshot::channel();
        // One claim per client at a time: a second one finds the first's answer gone and
        // is refused, as a second use of a token is.
        if let Some(earlier) = lock(&self.moves).insert(client_id, tx) {
            drop(earlier);
        }
        let claim = Control::Claim {
            client: client_id,
            token,
            to: self.relay.to_string(),
            user_id: identity.as_ref().map(|id| id.user_id().to_owned()),
        };
        self.submit(Op::Control {
            relay: Arc::clone(&from),
            message: claim.encode(),
        });
        let answered = tokio::time::timeout(CLAIM_TIMEOUT, rx).await;
        lock(&self.moves).remove(&client_id);
        match answered {
            Ok(Ok(Ok((room, frames, missed)))) => Ok(MovedSeat {
                client_id,
                from,
                room: (!room.is_empty()).then(|| Arc::from(room)),
                frames,
                missed,
            }),
            Ok(Ok(Err(why))) => Err(why),
            Ok(Err(_)) => Err("resume token already used".to_owned()),
            Err(_) => Err("the relay holding the seat did not answer".to_owned()),
        }
    }

    /// The holding relay's answer to a claim this relay sent.
    pub(super) fn claim_answered(
        &self,
        client: Uuid,
        result: Result<(String, Bytes, u32), String>,
    ) {
        if let Some(waiting) = lock(&self.moves).remove(&client) {
            let _ = waiting.send(result);
        }
    }

    /// A claim from relay `to` for a seat here: handed over (on a task of its own, as a
    /// takeover waits for the old connection to let go), or refused, and answered.
    pub(super) fn serve_claim(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        client: Uuid,
        token: Token,
        to: String,
        user_id: Option<String>,
    ) {
        let cluster = Arc::clone(self);
        let shared_ = Arc::clone(shared);
        shared.tasks.spawn(async move {
            let identity = user_id.map(Identity::new);
            let answer = match hand_off(&shared_, client, &token, &identity).await {
                Ok(handed) => Control::Handed {
                    client,
                    missed: handed.missed,
                    room: handed
                        .room
                        .as_ref()
                        .map_or_else(String::new, |room| room.id().to_string()),
                    frames: handed.frames,
                },
                Err(reason) => Control::Refused { client, reason },
            };
            let handed = matches!(answer, Control::Handed { .. });
            let sent = cluster.submit(Op::Control {
                relay: Arc::from(to),
                message: answer.encode(),
            });
            if handed && !sent {
                // Let go of here, and not told there: the claimer refuses the resume when
                // its wait runs out.
                tracing::warn!(%client, "a seat handed over could not reach its new relay");
            }
        });
    }

    /// A seat handed to another relay left `room` here without leaving it for the others:
    /// its bus is no longer needed for it.
    pub(crate) fn handed_off(&self, room: &Room) {
        self.unlisten(room.id());
    }

    /// A seat another relay handed over is this relay's now: its room's bus is received
    /// here, the mirror forgets it as remote, and the registry learns of the move (and of the
    /// client's new token).
    pub(crate) fn moved_in(&self, session: &Session, moved: &MovedSeat, token: &Token) {
        if let Some(room) = &moved.room {
            self.listen(room);
        }
        write(&self.remote_clients).remove(&session.client_id);
        self.submit(Op::MoveIn {
            client: session.client_id,
            from: Arc::clone(&moved.from),
            record: self.record_of(session),
            room: moved.room.clone(),
            lookup: lookup(token),
        });
    }

    /// A resume here gave the client a new token.
    pub(crate) fn token_changed(&self, client: Uuid, token: &Token) {
        self.submit(Op::SetResume {
            client,
            lookup: lookup(token),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_is_the_first_half_of_the_token_in_hex() {
        let token: Token = [0xab, 1, 2, 3, 4, 5, 6, 0xff, 9, 9, 9, 9, 9, 9, 9, 9];
        assert_eq!(lookup(&token), "ab010203040506ff");
    }
}
