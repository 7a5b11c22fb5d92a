//! The hold path (`resume_window`): a connection that dropped leaves its seat to a waiting
//! resume or parks it in the seat table, and a timer per held seat ends it when its window
//! runs out (or at shutdown).

use super::seats::{Held, Hold, Seats};
use super::SeatGuards;
use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, SharedHandler};
use crate::server::writer::Ending;
use crate::server::Shared;
use crate::session::Session;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The connection dropped and the seat is held (`resume_window`): the queue stays with the
/// seat, the writer sends only the farewell, and the seat goes to a resume waiting for it,
/// or is parked until one comes or its window runs out. The client stays listed and in its
/// room; its connection slot frees when this returns.
#[allow(clippy::too_many_arguments)]
pub(super) async fn hold(
    seats: &Seats,
    shared: &Arc<Shared>,
    handler: &SharedHandler,
    session: Arc<Session>,
    mut guards: SeatGuards,
    reason: DisconnectReason,
    farewell_tx: oneshot::Sender<Ending>,
    mut writer_task: tokio::task::JoinHandle<()>,
) {
    let client_id = session.client_id;
    session.outbox.detach();
    let _ = farewell_tx.send(Ending::Hold(reason.farewell()));
    if Box::pin(shared.with_patience(&mut writer_task))
        .await
        .is_none()
    {
        writer_task.abort();
        let _ = writer_task.await;
    }
    session.outbox.settle();
    // A takeover is told before the seat moves, so that `on_resume` never comes first.
    let told = reason == DisconnectReason::Replaced;
    if told {
        guarded("on_drop", || handler.on_drop(client_id, &reason));
    }
    guards.farewell.set_reason(reason.clone());
    match seats.hold(client_id, Held { session, guards }) {
        Hold::Parked(hold, stop) => {
            tracing::debug!(?reason, "seat held");
            shared
                .tasks
                .spawn(expire(Arc::clone(shared), client_id, hold, stop));
        }
        Hold::HandedOver => {}
        Hold::Refused(held) => {
            tracing::debug!(?reason, "seat not held: too many held seats");
            end_held(held, None, false);
            return;
        }
    }
    if !told {
        guarded("on_drop", || handler.on_drop(client_id, &reason));
    }
}

/// A held seat's timer: it ends the seat when the window runs out (with the reason of the
/// drop), or at shutdown, unless a resume or a kick stopped it first.
async fn expire(shared: Arc<Shared>, client_id: Uuid, hold: u64, stop: CancellationToken) {
    let Some(seats) = &shared.seats else { return };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = shared.shutdown.cancelled() => {
            let reason = DisconnectReason::ServerShutdown;
            if let Some(held) = seats.end(client_id, &reason) {
                end_held(held, Some(reason), true);
            }
        }
        _ = tokio::time::sleep(seats.window) => {
            if let Some(held) = seats.expire(client_id, hold) {
                tracing::debug!(%client_id, "held seat expired");
                end_held(held, None, false);
            }
        }
    }
}

/// Ends a held seat: its queue is dropped, then its guards run (`PlayerLeft`, unless
/// `quietly`, `on_leave`, then `on_disconnect` with `reason`, or the drop's).
pub(crate) fn end_held(held: Held, reason: Option<DisconnectReason>, quietly: bool) {
    let Held {
        session,
        mut guards,
    } = held;
    session.outbox.close();
    if quietly {
        session.leave_room_quietly(&*guards.leave.handler, &guards.leave.shared.counters);
    }
    if let Some(reason) = reason {
        guards.farewell.set_reason(reason);
    }
    drop(guards);
}
