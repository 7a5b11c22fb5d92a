//! The dispatcher's resync: after a (re)connection, a missed feed message or a lost lease,
//! it writes this relay's state back to the broker, then reloads the mirror from a snapshot
//! and tells the members here whoever came or went meanwhile.

use super::Dispatcher;
use crate::cluster::backplane::{BrokerError, LocalState, Op, RoomRecord, Snapshot};
use crate::cluster::RemoteClient;
use crate::cluster::{answer_within, STATE_TIMEOUT};
use crate::protocol::{encode, ServerFrame};
use crate::sync::write;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

impl Dispatcher {
    /// Writes this relay's state back, then reloads the mirror. Retried shortly if the
    /// broker does not answer.
    pub(super) async fn resync(&mut self) {
        self.cluster.counters.resyncs.fetch_add(1, Relaxed);
        match self.try_resync().await {
            Ok(()) => {
                if self.retrying {
                    tracing::info!("resynced with the broker");
                }
                self.retrying = false;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Err(err) => {
                // Once per outage, not once per retry.
                if !self.retrying {
                    tracing::warn!(%err, "resync with the broker failed: retrying every 500 ms");
                }
                self.retrying = true;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(format!("the broker refused this relay: {err}")));
                    return;
                }
                let resync = Arc::clone(&self.resync);
                let shutdown = self.shared.shutdown.clone();
                self.shared.tasks.spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => resync.notify_one(),
                    }
                });
            }
        }
    }

    async fn try_resync(&mut self) -> Result<(), BrokerError> {
        let (tx, rx) = oneshot::channel();
        self.cluster.submit(Op::Restore {
            state: self.local_state(),
            answer: tx,
        });
        let restored = answer_within(STATE_TIMEOUT, rx).await?;
        self.epoch = Some(restored.epoch);
        for client in restored.full {
            if let Some(session) = self.shared.directory.get(client) {
                session.end_with(crate::DisconnectReason::Kicked(
                    "the room filled up while this relay was cut off from the broker".into(),
                ));
            }
        }
        let (tx, rx) = oneshot::channel();
        self.cluster.submit(Op::Snapshot { answer: tx });
        let snapshot = answer_within(STATE_TIMEOUT, rx).await?;
        self.apply_snapshot(snapshot);
        Ok(())
    }

    fn local_state(&self) -> LocalState {
        let rooms = self
            .shared
            .registry
            .all()
            .iter()
            .map(|room| RoomRecord {
                id: room.id().to_string(),
                generation: room.generation(),
                max_clients: room.options().max_clients,
                meta: room.meta_all(),
                members: Vec::new(),
                state: room.state_entries(),
            })
            .collect();
        let clients = self
            .shared
            .directory
            .all()
            .iter()
            .map(|session| {
                let room = session
                    .current_room()
                    .filter(|room| !room.is_deleted())
                    .map(|room| room.id().to_string());
                (session.client_id, self.cluster.record_of(session), room)
            })
            .collect();
        LocalState {
            epoch: self.epoch.clone(),
            origin: self.cluster.origin,
            rooms,
            clients,
        }
    }

    /// Makes the mirror the snapshot, telling the members here who came and went.
    fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let me = &*self.cluster.relay;
        let mut live = HashSet::new();
        let mut rooms_of = HashMap::new();
        // What reached the broker is in the snapshot; what did not never will.
        self.cluster.forget_unechoed();
        for record in snapshot.rooms {
            let room = self.mirror_room(&record.id, record.generation, record.max_clients);
            for (key, value) in record.meta {
                room.set_meta(&key, value);
            }
            let dropped = self
                .cluster
                .state_reloaded(&self.shared, &room, record.state);
            if !dropped.is_empty() {
                self.announce(&room, &dropped);
            }
            let mut wanted = HashSet::new();
            for (client, relay) in &record.members {
                rooms_of.insert(*client, Arc::clone(room.id()));
                if **relay == *me {
                    // A join of ours the snapshot already holds: its feed event is skipped.
                    if let Some((room, dropped)) =
                        self.cluster
                            .complete_join(&self.shared, &record.id, *client)
                    {
                        self.announce(&room, &dropped);
                    }
                } else {
                    wanted.insert(*client);
                }
            }
            let have: HashSet<Uuid> = room.remote_ids().into_iter().collect();
            for &client in wanted.difference(&have) {
                let announce = encode(&ServerFrame::PlayerJoined { client_id: client });
                if let Some(dropped) = room.add_remote(client, &announce) {
                    self.announce(&room, &dropped);
                }
            }
            for &client in have.difference(&wanted) {
                let announce = encode(&ServerFrame::PlayerLeft { client_id: client });
                if let Some(dropped) = room.remove_remote(client, &announce) {
                    self.announce(&room, &dropped);
                }
            }
            live.insert(Arc::clone(room.id()));
        }
        for room in self.shared.registry.all() {
            // A room created here but not yet written to the broker has no generation.
            if room.generation() != 0 && !live.contains(room.id()) {
                self.shared.registry.delete_this(&room);
            }
        }
        let clients = snapshot
            .clients
            .into_iter()
            .filter(|(_, record)| *record.relay != *me)
            .map(|(client, record)| {
                let room = rooms_of.get(&client).cloned();
                (client, RemoteClient { record, room })
            })
            .collect();
        *write(&self.cluster.remote_clients) = clients;
        self.seq = snapshot.seq;
    }
}
