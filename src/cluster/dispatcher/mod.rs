//! The dispatcher task: applies what the broker says, one message at a time and in the
//! broker's order, to this relay's rooms and to its mirror of the cluster.
//!
//! - A state event (a room created or deleted, metadata, a room-state entry, a join, a
//!   leave, a client that connected or went) updates the mirror; a join or leave of another
//!   relay's client becomes `PlayerJoined` / `PlayerLeft` for the members here, and another
//!   relay's room-state change a `State` (see `cluster/room_state.rs`).
//! - A room frame from another relay is fanned out to the members here as it came: one
//!   shared buffer, no re-encoding.
//! - A control message kicks or writes to a client of this relay.
//! - A resync (after a (re)connection, a missed feed message, or a lost lease) writes this
//!   relay's state back to the broker and reloads the mirror from a snapshot, telling the
//!   members here whoever came or went meanwhile.
//!
//! [`resync`] does the last.
//!
//! It yields to the runtime between messages, so a flood from the broker never holds a
//! worker away from the connections.

mod frames;
mod resync;

use super::backplane::{FrameSink, Inbound, Inflow, StateEvent};
use super::bus_message::Control;
use super::{Cluster, RemoteClient};
use crate::outbox::Refused;
use crate::protocol::{encode, ServerFrame};
use crate::room::{Room, RoomOptions, RoomStateEntry};
use crate::server::Shared;
use crate::session::report_backpressure;
use crate::sync::write;
use bytes::Bytes;
use frames::RoomFrames;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

struct Dispatcher {
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    /// The feed's sequence number applied last.
    seq: u64,
    /// Where room frames go (this task's queued ones; the others go there directly).
    frames: Arc<RoomFrames>,
    resync: Arc<Notify>,
    ready: Option<oneshot::Sender<Result<(), String>>>,
    /// The registry's epoch at the last restore.
    epoch: Option<String>,
    /// The last resync failed; another is due.
    retrying: bool,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut inbound: mpsc::Receiver<Inbound>,
    inflow: Arc<Inflow>,
    resync: Arc<Notify>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let shutdown = shared.shutdown.clone();
    let frames = Arc::new(RoomFrames::new(Arc::clone(&shared), Arc::clone(&cluster)));
    let sink: Arc<dyn FrameSink> = Arc::clone(&frames) as Arc<dyn FrameSink>;
    let _ = inflow.sink.set(sink);
    let mut d = Dispatcher {
        shared,
        cluster,
        seq: 0,
        frames: Arc::clone(&frames),
        resync: Arc::clone(&resync),
        ready: Some(ready),
        epoch: None,
        retrying: false,
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = resync.notified() => d.resync().await,
            message = inbound.recv() => match message {
                Some(message) => {
                    d.handle(message);
                    // Applied: a frame that comes next may skip the queue if it is empty.
                    inflow.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                }
                None => return,
            },
        }
        tokio::task::coop::consume_budget().await;
    }
}

impl Dispatcher {
    fn handle(&mut self, message: Inbound) {
        match message {
            Inbound::State { seq, event } => {
                if seq <= self.seq {
                    return; // In the snapshot already.
                }
                if seq != self.seq + 1 {
                    // Feed messages were lost: what they said is only in a snapshot now.
                    self.cluster
                        .counters
                        .lost
                        .fetch_add(seq - self.seq - 1, Relaxed);
                    tracing::warn!(
                        missed = seq - self.seq - 1,
                        "missed feed messages: resyncing"
                    );
                    self.resync.notify_one();
                }
                self.seq = seq;
                self.apply(event);
            }
            Inbound::Room { room, message } => self.frames.deliver(&room, message),
            Inbound::Control(message) => self.control(message),
        }
    }

    fn announce(&self, room: &Room, dropped: &[Uuid]) {
        if let Some(handler) = self.shared.handler() {
            report_backpressure(&*handler, &self.shared.counters, dropped, room.id());
        } else {
            self.shared.counters.dropped(dropped.len() as u64);
        }
    }

    /// The live room with this id, if it is the one of `generation` (or not yet told its
    /// generation).
    fn room(&self, id: &str, generation: u64) -> Option<Arc<Room>> {
        let room = self.shared.registry.get(id)?;
        (room.generation() == 0 || room.generation() == generation).then_some(room)
    }

    /// The room of `id` as the broker knows it: created if missing, replaced if the one
    /// here is an older room of the same id.
    fn mirror_room(&self, id: &str, generation: u64, max_clients: Option<usize>) -> Arc<Room> {
        let options = RoomOptions { max_clients };
        let (mut room, created) = self.shared.registry.get_or_create(id, options.clone());
        if !created && room.generation() != 0 && room.generation() != generation {
            self.shared.registry.delete_this(&room);
            room = self.shared.registry.get_or_create(id, options).0;
        }
        room.set_generation(generation);
        room
    }

    fn apply(&mut self, event: StateEvent) {
        match event {
            StateEvent::RoomCreated {
                room,
                generation,
                max_clients,
            } => {
                self.mirror_room(&room, generation, max_clients);
            }
            StateEvent::RoomDeleted { room, generation } => match self.shared.registry.get(&room) {
                Some(local) if local.generation() != generation => {}
                local => {
                    if let Some(local) = local {
                        self.shared.registry.delete_this(&local);
                    }
                    self.cluster.room_deleted_on_broker(&room);
                }
            },
            StateEvent::MetaSet {
                room,
                generation,
                key,
                value,
            } => {
                if let Some(room) = self.room(&room, generation) {
                    room.set_meta(&key, value);
                }
            }
            StateEvent::StateSet {
                room,
                generation,
                origin,
                owner,
                key,
                value,
            } => {
                let Some(room) = self.room(&room, generation) else {
                    return;
                };
                let entry = RoomStateEntry { key, owner, value };
                if let Some(dropped) = self.cluster.state_read(&self.shared, &room, origin, &entry)
                {
                    self.announce(&room, &dropped);
                }
            }
            StateEvent::Joined {
                room,
                generation,
                client,
                relay,
            } => {
                if let Some(remote) = write(&self.cluster.remote_clients).get_mut(&client) {
                    remote.room = Some(Arc::from(room.as_str()));
                }
                if *relay == *self.cluster.relay {
                    if let Some((room, dropped)) =
                        self.cluster.complete_join(&self.shared, &room, client)
                    {
                        self.announce(&room, &dropped);
                    }
                    return;
                }
                let Some(room) = self.room(&room, generation) else {
                    return;
                };
                let announce = encode(&ServerFrame::PlayerJoined { client_id: client });
                if let Some(dropped) = room.add_remote(client, &announce) {
                    self.announce(&room, &dropped);
                }
            }
            StateEvent::Left { room, client } => {
                if let Some(remote) = write(&self.cluster.remote_clients).get_mut(&client) {
                    if remote.room.as_deref() == Some(room.as_str()) {
                        remote.room = None;
                    }
                }
                let Some(room) = self.shared.registry.get(&room) else {
                    return;
                };
                let announce = encode(&ServerFrame::PlayerLeft { client_id: client });
                if let Some(dropped) = room.remove_remote(client, &announce) {
                    self.announce(&room, &dropped);
                }
            }
            StateEvent::ClientConnected { client, record } => {
                if record.relay != self.cluster.relay {
                    write(&self.cluster.remote_clients)
                        .insert(client, RemoteClient { record, room: None });
                }
            }
            StateEvent::ClientDisconnected { client } => {
                write(&self.cluster.remote_clients).remove(&client);
            }
            StateEvent::Moved {
                client,
                room,
                record,
            } => {
                // The new relay adopted it already; the others only learn where it is.
                if record.relay == self.cluster.relay {
                    return;
                }
                let in_room = room.as_deref().and_then(|id| self.shared.registry.get(id));
                write(&self.cluster.remote_clients).insert(
                    client,
                    RemoteClient {
                        record,
                        room: room.map(|r| Arc::from(r.as_str())),
                    },
                );
                if let Some(room) = in_room {
                    room.add_remote_quietly(client);
                }
            }
        }
    }

    fn control(&self, message: Bytes) {
        match Control::decode(&message) {
            Some(Control::Kick { client, reason }) => {
                if let Some(session) = self.shared.directory.get(client) {
                    session.end_with(crate::DisconnectReason::Kicked(reason));
                }
            }
            Some(Control::Send { client, frame }) => {
                let Some(session) = self.shared.directory.get(client) else {
                    return;
                };
                if let Err(Refused::Full) = session.outbox.try_send(frame) {
                    let room = session.current_room();
                    let room_id = room.as_ref().map_or("", |r| r.id());
                    if let Some(handler) = self.shared.handler() {
                        report_backpressure(&*handler, &self.shared.counters, &[client], room_id);
                    }
                }
            }
            Some(Control::Claim {
                client,
                token,
                to,
                user_id,
            }) => self
                .cluster
                .serve_claim(&self.shared, client, token, to, user_id),
            Some(Control::Handed {
                client,
                missed,
                room,
                frames,
            }) => self
                .cluster
                .claim_answered(client, Ok((room, frames, missed))),
            Some(Control::Refused { client, reason }) => {
                self.cluster.claim_answered(client, Err(reason));
            }
            None => tracing::warn!("unreadable control message from the broker"),
        }
    }
}
