//! The link's ops as Redis commands: each registry change is one Lua script, a control
//! message one `PUBLISH`, and an op that comes while the broker is away fails fast.

use super::{broken, Link};
use crate::cluster::backplane::{
    Answer, BrokerError, ClientRecord, LocalState, Op, Restored, Seat,
};
use crate::cluster::redis::events::{capacity_field, parse_snapshot};
use crate::cluster::redis::{room_channel, scripts, LEASE_TTL};
use redis::{RedisError, Value};
use std::sync::atomic::Ordering;

impl Link {
    /// An op that arrived while the broker is away: traffic is dropped and counted, answers
    /// say so, and subscriptions are remembered for the reconnection.
    pub(super) fn fail(&mut self, op: Op) {
        fn unavailable<T>() -> Result<T, BrokerError> {
            Err(BrokerError("the broker is unavailable".into()))
        }
        match op {
            // (Frames never come here: the backplane hands them to the connection.)
            Op::Publish { .. } => {
                self.shared
                    .counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Op::Control { message, .. } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(message.len(), Ordering::AcqRel);
                self.shared
                    .counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Op::Subscribe(room) => {
                self.subscribed.insert(room);
            }
            Op::Unsubscribe(room) => {
                self.subscribed.remove(&room);
            }
            Op::CreateRoom { answer, .. } => {
                // Written back by the restore that follows the reconnection.
                if let Some(answer) = answer {
                    let _ = answer.send(unavailable());
                }
            }
            Op::DeleteRoom { room, answer } => {
                if answer.is_none() {
                    tracing::warn!(room_id = %room, "the broker is away: this delete is undone when it comes back");
                }
                if let Some(answer) = answer {
                    let _ = answer.send(unavailable());
                }
            }
            Op::Join { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::CountMembers { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::Restore { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            Op::Snapshot { answer } => {
                let _ = answer.send(unavailable());
            }
            // Clients and memberships are written back by the restore that follows the
            // reconnection; metadata is not (the broker's copy, if it kept one, wins).
            Op::SetMeta { room, key, .. } => {
                tracing::warn!(room_id = %room, key, "the broker is away: metadata change not shared");
            }
            // Like a frame: the other relays miss it, and learn the room's state from the
            // snapshot their resync loads once the broker is back.
            Op::SetState { key, value, .. } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(key.len() + value.len(), Ordering::AcqRel);
                self.shared
                    .counters
                    .publish_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Op::FindSeat { answer, .. } => {
                let _ = answer.send(unavailable());
            }
            // The client is this relay's (the resume completed), but the other relays go on
            // thinking it is the old one's until the restore that follows the reconnection.
            Op::MoveIn { client, .. } => {
                tracing::warn!(%client, "the broker is away: the seat's move not shared");
            }
            Op::Leave { .. }
            | Op::ClientConnected { .. }
            | Op::ClientDisconnected { .. }
            | Op::SetResume { .. } => {}
        }
    }

    pub(super) async fn execute(&mut self, op: Op) {
        if matches!(op, Op::Publish { .. }) {
            return self.fail(op);
        }
        let Some(conn) = self.conn.as_mut() else {
            return self.fail(op);
        };
        let prefix = self.prefix.as_str();
        let relay = &*self.relay;
        let result: Result<(), RedisError> = match op {
            Op::Subscribe(room) => {
                let done = conn.subscribe(room_channel(prefix, &room)).await;
                self.subscribed.insert(room);
                done
            }
            Op::Unsubscribe(room) => {
                let done = conn.unsubscribe(room_channel(prefix, &room)).await;
                self.subscribed.remove(&room);
                done
            }
            Op::CreateRoom {
                room,
                max_clients,
                answer,
            } => {
                let run = scripts::CREATE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .arg(capacity_field(max_clients))
                    .invoke_async::<u64>(conn)
                    .await;
                if answer.is_none() && matches!(run, Ok(0)) {
                    // The handle's create said yes before the broker knew of another's.
                    tracing::warn!(
                        room_id = %room,
                        "room created on another relay at the same time: the broker keeps that one"
                    );
                }
                answer_with(answer, run.as_ref().map(|&generation| generation != 0));
                run.map(drop)
            }
            Op::DeleteRoom { room, answer } => {
                let run = scripts::DELETE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .invoke_async::<u64>(conn)
                    .await;
                answer_with(answer, run.as_ref().map(|&n| n == 1));
                run.map(drop)
            }
            Op::SetMeta { room, key, value } => scripts::SET_META
                .prepare_invoke()
                .arg(prefix)
                .arg(&*room)
                .arg(key)
                .arg(value)
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::SetState {
                room,
                origin,
                owner,
                key,
                value,
            } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(key.len() + value.len(), Ordering::AcqRel);
                scripts::SET_STATE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .arg(origin)
                    .arg(owner.to_string())
                    .arg(key)
                    .arg(&value[..])
                    .invoke_async::<u64>(conn)
                    .await
                    .map(drop)
            }
            Op::Join {
                room,
                client,
                answer,
            } => {
                let run = scripts::JOIN
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(relay)
                    .arg(client.to_string())
                    .arg(&*room)
                    .invoke_async::<String>(conn)
                    .await;
                let seat = match run.as_deref() {
                    Ok("ok") => Ok(Seat::Taken),
                    Ok("full") => Ok(Seat::Full),
                    Ok("missing") => Ok(Seat::NoRoom),
                    Ok(_) => {
                        // This relay's lease is gone: it must write its state back first.
                        self.shared.resync.notify_one();
                        Err(BrokerError("the relay is resyncing with the broker".into()))
                    }
                    Err(err) => Err(BrokerError(err.to_string())),
                };
                let _ = answer.send(seat);
                run.map(drop)
            }
            Op::Leave { room, client } => scripts::LEAVE
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .arg(&*room)
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::ClientConnected {
                client,
                record,
                resume,
            } => scripts::HELLO
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .arg(record.encode())
                .arg(resume.unwrap_or_default())
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::SetResume { client, lookup } => scripts::TOKEN
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .arg(lookup)
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::FindSeat { lookup, answer } => {
                let run = scripts::FIND
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(lookup)
                    .invoke_async::<Option<(String, Vec<u8>)>>(conn)
                    .await;
                let _ = answer.send(match &run {
                    Ok(Some((client, record))) => Ok(uuid::Uuid::parse_str(client)
                        .ok()
                        .zip(ClientRecord::decode(record))
                        .map(|(client, record)| (client, record.relay))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(BrokerError(e.to_string())),
                });
                run.map(drop)
            }
            Op::MoveIn {
                client,
                from,
                record,
                room,
                lookup,
            } => {
                let run = scripts::MOVE
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(relay)
                    .arg(&*from)
                    .arg(client.to_string())
                    .arg(record.encode())
                    .arg(room.as_deref().unwrap_or(""))
                    .arg(lookup)
                    .invoke_async::<u64>(conn)
                    .await;
                if matches!(run, Ok(0)) {
                    // No lease: the resync that follows writes this relay's clients back.
                    self.shared.resync.notify_one();
                }
                run.map(drop)
            }
            Op::ClientDisconnected { client } => scripts::BYE
                .prepare_invoke()
                .arg(prefix)
                .arg(relay)
                .arg(client.to_string())
                .invoke_async::<u64>(conn)
                .await
                .map(drop),
            Op::CountMembers { room, answer } => {
                let run = scripts::COUNT
                    .prepare_invoke()
                    .arg(prefix)
                    .arg(&*room)
                    .invoke_async::<i64>(conn)
                    .await;
                let _ = answer.send(
                    run.as_ref()
                        .map(|&n| usize::try_from(n).ok())
                        .map_err(|e| BrokerError(e.to_string())),
                );
                run.map(drop)
            }
            Op::Restore { state, answer } => {
                let mut invocation = scripts::RESTORE.prepare_invoke();
                restore_args(&mut invocation, prefix, relay, &self.incarnation, &state);
                let run = invocation.invoke_async::<(String, Vec<String>)>(conn).await;
                let _ = answer.send(
                    run.as_ref()
                        .map(|(epoch, full)| Restored {
                            epoch: epoch.clone(),
                            full: full
                                .iter()
                                .filter_map(|c| uuid::Uuid::parse_str(c).ok())
                                .collect(),
                        })
                        .map_err(|e| BrokerError(e.to_string())),
                );
                run.map(drop)
            }
            Op::Snapshot { answer } => {
                let run = scripts::SNAPSHOT
                    .prepare_invoke()
                    .arg(prefix)
                    .invoke_async::<Value>(conn)
                    .await;
                let _ = answer.send(match &run {
                    Ok(value) => parse_snapshot(value).ok_or_else(|| {
                        BrokerError("the broker sent a snapshot this relay cannot read".into())
                    }),
                    Err(e) => Err(BrokerError(e.to_string())),
                });
                run.map(drop)
            }
            Op::Control { relay, message } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(message.len(), Ordering::AcqRel);
                let channel = format!("{prefix}:ctl:{relay}");
                let sent = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(&message[..])
                    .query_async::<()>(conn)
                    .await;
                if sent.is_err() {
                    self.shared
                        .counters
                        .publish_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
                sent
            }
            Op::Publish { .. } => Ok(()),
        };
        if let Err(err) = result {
            if broken(&err) {
                self.down(&err.to_string());
            } else {
                tracing::error!(%err, "the broker refused a registry change");
            }
        }
    }
}

fn answer_with(answer: Option<Answer<bool>>, result: Result<bool, &RedisError>) {
    if let Some(answer) = answer {
        let _ = answer.send(result.map_err(|e| BrokerError(e.to_string())));
    }
}

fn restore_args(
    invocation: &mut redis::ScriptInvocation<'_>,
    prefix: &str,
    relay: &str,
    incarnation: &str,
    state: &LocalState,
) {
    invocation
        .arg(prefix)
        .arg(relay)
        .arg(incarnation)
        .arg(LEASE_TTL.as_millis() as u64)
        .arg(state.epoch.as_deref().unwrap_or(""))
        .arg(state.origin)
        .arg(state.rooms.len());
    for room in &state.rooms {
        invocation
            .arg(&room.id)
            .arg(room.generation)
            .arg(capacity_field(room.max_clients))
            .arg(room.meta.len());
        for (key, value) in &room.meta {
            invocation.arg(key).arg(value);
        }
        invocation.arg(room.state.len());
        for entry in &room.state {
            invocation
                .arg(&entry.key)
                .arg(entry.owner.to_string())
                .arg(&entry.value[..]);
        }
    }
    for (client, record, room) in &state.clients {
        invocation
            .arg(client.to_string())
            .arg(record.encode())
            .arg(room.as_deref().unwrap_or(""));
    }
}
