//! What the connection does with each message Redis pushes (RESP3): it is parsed on the
//! connection's own task and handed to the dispatcher through a bounded queue. When that
//! queue is full the message is dropped and counted, so a relay that falls behind can never
//! make the broker's messages pile up in its memory.

use super::events::parse_event;
use super::{into_bytes, LinkCounters};
use crate::cluster::backplane::{Inbound, Inflow};
use redis::{PushInfo, PushKind};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// What the connection does with each message Redis pushes: parse it and queue it for the
/// dispatcher without waiting (a full queue drops it, and counts it), or, for a room's
/// frame with nothing queued before it, fan it out at once.
pub(super) fn push_sender(
    inbound: mpsc::Sender<Inbound>,
    inflow: Arc<Inflow>,
    lost: Arc<Notify>,
    counters: Arc<LinkCounters>,
    feed: String,
    control: String,
    room_prefix: String,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        let message = match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    return Ok(());
                };
                let (Some(channel), Some(payload)) = (into_bytes(channel), into_bytes(payload))
                else {
                    return Ok(());
                };
                if channel[..] == *feed.as_bytes() {
                    match parse_event(&payload) {
                        Some((seq, event)) => Inbound::State { seq, event },
                        None => {
                            tracing::warn!("unreadable feed message from the broker");
                            return Ok(());
                        }
                    }
                } else if channel[..] == *control.as_bytes() {
                    Inbound::Control(payload)
                } else if channel.starts_with(room_prefix.as_bytes()) {
                    if inflow.queued.load(Ordering::Acquire) == 0 {
                        if let Some(sink) = inflow.sink.get() {
                            sink.deliver(&channel[room_prefix.len()..], payload);
                            return Ok(());
                        }
                    }
                    Inbound::Room {
                        room: channel.slice(room_prefix.len()..),
                        message: payload,
                    }
                } else {
                    return Ok(());
                }
            }
            PushKind::Disconnection => {
                lost.notify_one();
                return Ok(());
            }
            _ => return Ok(()),
        };
        inflow.queued.fetch_add(1, Ordering::AcqRel);
        if inbound.try_send(message).is_err() {
            inflow.queued.fetch_sub(1, Ordering::AcqRel);
            counters.inbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
