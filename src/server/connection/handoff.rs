//! A seat of this relay handed to another relay of the cluster, which a client resumed on
//! (see `cluster/moving.rs`): claimed here by the rules of a local resume, then let go of
//! without a word to the room, since nobody left it.

use super::seats::{Claim, Held, Token};
use crate::auth::Identity;
use crate::disconnect::DisconnectReason;
use crate::room::Room;
use crate::server::Shared;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a takeover for another relay waits for the live connection to let go.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// The most queued bytes a seat takes along to another relay, in one broker message; past
/// it they count as missed. Redis cuts off a subscriber sent 32 MB at once, or 8 MB for a
/// minute (`client-output-buffer-limit pubsub`), and the default queue is 1 MiB.
const MAX_HANDED_BYTES: usize = 4 << 20;

/// A seat handed over: its room here (a remote member of it now), and its queue.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct HandedOff {
    pub(crate) room: Option<Arc<Room>>,
    /// The frames queued for the client, whole, one after the other.
    pub(crate) frames: Bytes,
    pub(crate) missed: u32,
}

/// Hands the seat of `client` to another relay, for a client that presented `token` there
/// and was identified as `identity`. `Err`: the reason that client reads.
///
/// The seat ends here without `PlayerLeft` or `on_leave` (its member moves to the room's
/// remote list, its state entries stay); `on_disconnect` fires with
/// [`DisconnectReason::Replaced`], since this relay no longer serves the client.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) async fn hand_off(
    shared: &Arc<Shared>,
    client: Uuid,
    token: &Token,
    identity: &Option<Identity>,
) -> Result<HandedOff, String> {
    let Some(seats) = &shared.seats else {
        return Err("resume is off on the relay holding the seat".to_owned());
    };
    let (claimed, _, claim) = seats.claim(token, identity)?;
    if claimed != client {
        // Two tokens share a lookup (a 1 in 2^64 chance): this one's seat is not that one.
        seats.moved(claimed);
        return Err(super::seats::UNKNOWN_TOKEN.to_owned());
    }
    let held = match claim {
        Claim::Held(held) => held,
        Claim::Live(taken) => {
            // Its connection is still open (half open, likely): it closes, and the seat
            // comes once it let go, as for a local takeover.
            if let Some(old) = shared.directory.get(client) {
                old.end_with(DisconnectReason::Replaced);
            }
            match tokio::time::timeout(TAKEOVER_TIMEOUT, taken).await {
                Ok(Ok(held)) => held,
                Ok(Err(_)) => return Err(seats.refusal(token)),
                Err(_) => {
                    return Err(
                        "seat still held by a connection that did not close in time".to_owned()
                    )
                }
            }
        }
    };
    seats.moved(client);
    Ok(let_go(shared, held))
}

/// The seat leaves this relay: its queue is handed off, its member becomes a remote one,
/// and its guards run with nothing left to leave.
fn let_go(shared: &Shared, held: Held) -> HandedOff {
    let Held { session, guards } = held;
    let (frames, missed) = session.outbox.hand_off(MAX_HANDED_BYTES);
    let room = session.take_room();
    if let Some(room) = &room {
        room.hand_off(session.client_id);
        if let Some(cluster) = shared.cluster() {
            cluster.handed_off(room);
        }
    }
    guards.moved_away();
    HandedOff {
        room,
        frames,
        missed,
    }
}
