//! Rooms across several relays (feature `redis`): [`RedisOptions`], given to
//! [`ServerBuilder::redis`](crate::ServerBuilder::redis), and [`ClusterHandle`], the exact
//! calls of [`ServerHandle::cluster`](crate::ServerHandle::cluster).
//!
//! Inside: `backplane.rs`, the seam to a broker; this module, `join.rs`, `moving.rs`,
//! `room_state.rs` and `handle.rs`, the relay's side of it (what the router, the sessions
//! and the handle call); `dispatcher/`,
//! which applies what the broker says to the local mirror of the cluster's rooms and
//! clients; `redis/`, the Redis backplane.
//!
//! The handle stays synchronous: it reads the mirror, which follows the broker's feed one
//! pub/sub hop behind, and its writes apply here at once and reach the broker through a
//! bounded queue. CLUSTER.md tells the whole design, its guarantees and its failure modes.

pub(crate) mod backplane;
mod bus_message;
mod dispatcher;
mod handle;
mod join;
mod moving;
mod redis;
mod room_state;

pub use self::redis::RedisOptions;
pub use handle::ClusterHandle;
pub(crate) use join::JoinFailure;
pub(crate) use moving::MovedSeat;

use self::redis::LinkCounters;
use crate::directory::ClientInfo;
use crate::room::Room;
use crate::server::Shared;
use crate::session::Session;
use crate::sync::lock;
use backplane::{Answer, Backplane, BrokerError, ClientRecord, Op};
use bus_message::Control;
use bytes::Bytes;
use join::PendingJoin;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use uuid::Uuid;

/// A client on another relay, as this relay's mirror knows it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteClient {
    pub(crate) record: ClientRecord,
    pub(crate) room: Option<Arc<str>>,
}

/// The relay's side of the backplane.
pub(crate) struct Cluster {
    backplane: Box<dyn Backplane>,
    /// This relay's name, as the registry knows it.
    pub(crate) relay: Arc<str>,
    /// This run of the relay: tells its own bus messages from the others'.
    pub(crate) origin: u64,
    pending: Mutex<HashMap<Uuid, PendingJoin>>,
    /// Members this relay has in each room: its bus is subscribed while it is not zero.
    listeners: Mutex<HashMap<Arc<str>, usize>>,
    /// Clients on the other relays.
    pub(crate) remote_clients: RwLock<HashMap<Uuid, RemoteClient>>,
    pub(crate) counters: ClusterCounters,
    link: Arc<LinkCounters>,
    /// Claims this relay sent for seats on other relays, waiting for their answer: the
    /// room, the frames and the missed count, or why not.
    moves: Mutex<HashMap<Uuid, ClaimAnswer>>,
    /// Changes of room state made here, not yet read back on the feed (see `room_state.rs`).
    unechoed: Mutex<room_state::Unechoed>,
}

type ClaimAnswer = oneshot::Sender<Result<(String, Bytes, u32), String>>;

/// What the cluster counts for `stats()`.
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Frames the broker lost on the way here (gaps in a sender relay's sequence), and
    /// feed messages missed (each one forces a resync).
    pub(crate) lost: AtomicU64,
    pub(crate) resyncs: AtomicU64,
}

impl Cluster {
    /// Connects to the broker, starts the link and the dispatcher, and returns once this
    /// relay's mirror holds the cluster's rooms.
    pub(crate) async fn start(
        shared: &Arc<Shared>,
        options: &RedisOptions,
    ) -> Result<Arc<Self>, String> {
        let relay: Arc<str> = Arc::from(options.name());
        let origin = rand_u64();
        let connected = self::redis::connect(
            options,
            shared.config.max_payload,
            Arc::clone(&relay),
            origin,
            shared.shutdown.clone(),
            &shared.tasks,
        )
        .await?;
        let link = Arc::clone(&connected.backplane.counters);
        let cluster = Arc::new(Self {
            backplane: Box::new(connected.backplane),
            relay,
            origin,
            pending: Mutex::new(HashMap::new()),
            listeners: Mutex::new(HashMap::new()),
            remote_clients: RwLock::new(HashMap::new()),
            counters: ClusterCounters::default(),
            link,
            moves: Mutex::new(HashMap::new()),
            unechoed: Mutex::new(HashMap::new()),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        shared.tasks.spawn(dispatcher::run(
            Arc::clone(shared),
            Arc::clone(&cluster),
            connected.inbound,
            connected.inflow,
            connected.resync,
            ready_tx,
        ));
        // Connected already (or `connect` failed above, within its 5 s): loading the
        // cluster's state is given longer, as a busy broker or machine may take a while.
        match tokio::time::timeout(STATE_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(cluster),
            Ok(Ok(Err(err))) => Err(err),
            _ => Err("the broker did not send this relay the cluster's state in time".into()),
        }
    }

    fn submit(&self, op: Op) -> bool {
        self.backplane.submit(op)
    }

    /// Relays an encoded `Broadcast` frame to the room's members on other relays: one
    /// publish for all of them.
    pub(crate) fn publish(&self, room: &Room, frame: &Bytes) {
        if self.submit(Op::Publish {
            room: Arc::clone(room.id()),
            seq: room.next_published(),
            frame: frame.clone(),
        }) {
            self.counters.published.fetch_add(1, Relaxed);
        }
    }

    /// A member of this relay left `room` (its local leave is done).
    pub(crate) fn left(&self, room: &Arc<Room>, client: Uuid) {
        self.submit(Op::Leave {
            room: Arc::clone(room.id()),
            client,
        });
        self.unlisten(room.id());
    }

    fn listen(&self, room: &Arc<str>) {
        let mut listeners = lock(&self.listeners);
        let count = listeners.entry(Arc::clone(room)).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.submit(Op::Subscribe(Arc::clone(room)));
        }
    }

    fn unlisten(&self, room: &Arc<str>) {
        let mut listeners = lock(&self.listeners);
        if let Some(count) = listeners.get_mut(room) {
            *count -= 1;
            if *count == 0 {
                listeners.remove(room);
                self.submit(Op::Unsubscribe(Arc::clone(room)));
            }
        }
    }

    /// A client connected here; `token`: its resume token, if the relay holds seats.
    pub(crate) fn client_connected(&self, session: &Session, token: Option<&crate::server::Token>) {
        self.submit(Op::ClientConnected {
            client: session.client_id,
            record: self.record_of(session),
            resume: token.map(|token| moving::lookup(token)),
        });
    }

    pub(crate) fn client_disconnected(&self, client: Uuid) {
        self.submit(Op::ClientDisconnected { client });
    }

    fn record_of(&self, session: &Session) -> ClientRecord {
        ClientRecord {
            relay: Arc::clone(&self.relay),
            addr: session.peer,
            connected_ms: millis(session.connected_at),
            user_id: session.identity.as_ref().map(|id| Arc::from(id.user_id())),
        }
    }

    pub(crate) fn room_created(
        &self,
        room: &str,
        max_clients: Option<usize>,
        answer: Option<Answer<bool>>,
    ) {
        self.submit(Op::CreateRoom {
            room: Arc::from(room),
            max_clients,
            answer,
        });
    }

    pub(crate) fn room_deleted(&self, room: &str, answer: Option<Answer<bool>>) {
        self.submit(Op::DeleteRoom {
            room: Arc::from(room),
            answer,
        });
    }

    pub(crate) fn meta_set(&self, room: &str, key: &str, value: &str) {
        self.submit(Op::SetMeta {
            room: Arc::from(room),
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }

    /// Asks the relay that holds `client` to kick it; `false` if no relay holds it.
    pub(crate) fn kick(&self, client: Uuid, reason: &str) -> bool {
        self.control(
            client,
            Control::Kick {
                client,
                reason: reason.to_owned(),
            },
        )
    }

    /// Asks the relay that holds `client` to queue `frame` for it; `false` if no relay holds it.
    pub(crate) fn send_to(&self, client: Uuid, frame: Bytes) -> bool {
        self.control(client, Control::Send { client, frame })
    }

    fn control(&self, client: Uuid, control: Control) -> bool {
        let Some(relay) = self.remote_client(client).map(|c| c.record.relay) else {
            return false;
        };
        self.submit(Op::Control {
            relay,
            message: control.encode(),
        });
        true
    }

    fn remote_client(&self, client: Uuid) -> Option<RemoteClient> {
        crate::sync::read(&self.remote_clients)
            .get(&client)
            .cloned()
    }

    /// What the mirror knows of a client on another relay.
    pub(crate) fn remote_info(&self, client: Uuid) -> Option<ClientInfo> {
        self.remote_client(client).map(|c| c.info(client))
    }

    pub(crate) fn remote_infos(&self) -> Vec<ClientInfo> {
        crate::sync::read(&self.remote_clients)
            .iter()
            .map(|(&id, client)| client.info(id))
            .collect()
    }

    pub(crate) fn remote_count(&self) -> usize {
        crate::sync::read(&self.remote_clients).len()
    }

    /// `stats()`'s cluster counters: published, received, dropped, lost, broker disconnects.
    pub(crate) fn stats(&self) -> [u64; 5] {
        [
            self.counters.published.load(Relaxed),
            self.counters.received.load(Relaxed),
            self.link.publish_dropped.load(Relaxed),
            self.counters.lost.load(Relaxed) + self.link.inbound_dropped.load(Relaxed),
            self.link.disconnects.load(Relaxed),
        ]
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    pub(crate) fn info(&self, id: Uuid) -> ClientInfo {
        ClientInfo {
            id,
            addr: self.record.addr,
            identity: self.record.user_id.as_deref().map(crate::Identity::new),
            room: self.room.as_deref().map(str::to_owned),
            connected_since: UNIX_EPOCH + Duration::from_millis(self.record.connected_ms),
            // Not known here: it is the other relay's.
            queue_depth: 0,
        }
    }
}

/// How long a request to the broker waits for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a restore or a snapshot (the whole registry) may take to come back.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's answer to a request, or why there is none.
async fn answer<T>(rx: oneshot::Receiver<Result<T, BrokerError>>) -> Result<T, BrokerError> {
    answer_within(ANSWER_TIMEOUT, rx).await
}

/// [`answer`], waiting up to `patience`.
async fn answer_within<T>(
    patience: Duration,
    rx: oneshot::Receiver<Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(patience, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(BrokerError("the broker is unavailable".into())),
        Err(_) => Err(BrokerError("the broker did not answer in time".into())),
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random id for this run of the relay (no `rand` dependency: a v4 UUID is random).
fn rand_u64() -> u64 {
    Uuid::new_v4().as_u64_pair().0
}
