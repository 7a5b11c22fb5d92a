//! The seam between the relay and a broker: what the relay asks of it ([`Op`]) and what it
//! hears back ([`Inbound`]), in terms of rooms and clients, never of a broker's commands.
//!
//! A backplane carries two kinds of traffic:
//! - a **message bus**: frames published to a room's channel (received by the relays that
//!   subscribed to it, because they hold members of it) and to one relay's control channel;
//! - an **atomic registry**: rooms, their metadata, members, capacity and relay leases, each
//!   change applied atomically and announced to every relay, in one global order, as a
//!   [`StateEvent`].
//!
//! The Redis backplane does both over one connection. A NATS bus could take over
//! `Publish`, `Control`, `Subscribe` and `Unsubscribe` while Redis keeps the registry: the
//! relay's side ([`Cluster`](super::Cluster)) would not change.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Why the broker could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerError(pub(crate) String);

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer to an [`Op`] that wants one.
pub(crate) type Answer<T> = oneshot::Sender<Result<T, BrokerError>>;

/// What the broker said about a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seat {
    /// The member is in; its [`StateEvent::Joined`] follows on the feed.
    Taken,
    /// The room holds `max_clients` members across every relay.
    Full,
    /// The room does not exist (any more).
    NoRoom,
}

/// A client as the other relays see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientRecord {
    pub(crate) relay: Arc<str>,
    pub(crate) addr: std::net::SocketAddr,
    /// Milliseconds since the Unix epoch.
    pub(crate) connected_ms: u64,
    pub(crate) user_id: Option<Arc<str>>,
}

/// One room of a [`Snapshot`] or of a relay's [`LocalState`].
#[derive(Debug, Clone, Default)]
pub(crate) struct RoomRecord {
    pub(crate) id: String,
    pub(crate) generation: u64,
    pub(crate) max_clients: Option<usize>,
    pub(crate) meta: Vec<(String, String)>,
    /// Member → the relay it is on (empty in a `LocalState`).
    pub(crate) members: Vec<(Uuid, Arc<str>)>,
    /// The room's state, in first-set order.
    pub(crate) state: Vec<crate::room::RoomStateEntry>,
}

/// The whole registry at one point of the feed's order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The sequence number of the last state event included.
    pub(crate) seq: u64,
    pub(crate) rooms: Vec<RoomRecord>,
    pub(crate) clients: Vec<(Uuid, ClientRecord)>,
}

/// What one relay holds, to be written back after the broker lost it (a restart) or
/// declared this relay dead (a partition): its rooms as it knows them, and its own clients
/// with their rooms.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalState {
    /// The registry's epoch as this relay last saw it (`None` before its first restore):
    /// a different one means the broker lost its data, and the rooms must be written back.
    pub(crate) epoch: Option<String>,
    /// This run of the relay: the state entries it writes back are its own.
    pub(crate) origin: u64,
    pub(crate) rooms: Vec<RoomRecord>,
    pub(crate) clients: Vec<(Uuid, ClientRecord, Option<String>)>,
}

/// What a restore found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restored {
    /// The registry's epoch now.
    pub(crate) epoch: String,
    /// Clients of this relay whose room filled up while it was cut off.
    pub(crate) full: Vec<Uuid>,
}

/// A request to the backplane. None waits: it is queued, and the ones with an [`Answer`]
/// answer later.
#[derive(Debug)]
pub(crate) enum Op {
    /// An encoded `Broadcast` frame for a room's members on other relays, this relay's
    /// `seq`-th in the room (the backplane adds its origin, see
    /// [`bus_message`](super::bus_message)). Shared, not copied: the same `Bytes` the
    /// members here got.
    Publish {
        room: Arc<str>,
        seq: u64,
        frame: Bytes,
    },
    /// A control message for one relay.
    Control {
        relay: Arc<str>,
        message: Bytes,
    },
    /// Start receiving a room's bus; queued before the join that needs it.
    Subscribe(Arc<str>),
    Unsubscribe(Arc<str>),
    /// Create a room; answers `false` if the id is taken.
    CreateRoom {
        room: Arc<str>,
        max_clients: Option<usize>,
        answer: Option<Answer<bool>>,
    },
    /// Delete a room; answers `false` if there was none.
    DeleteRoom {
        room: Arc<str>,
        answer: Option<Answer<bool>>,
    },
    SetMeta {
        room: Arc<str>,
        key: String,
        value: String,
    },
    /// A change of a room's state made here (an empty `value` deletes), applied here
    /// already: the broker keeps it and every other relay applies it in the feed's order.
    /// Traffic, as far as the queue goes: dropped (and counted) while the broker is away.
    SetState {
        room: Arc<str>,
        origin: u64,
        owner: Uuid,
        key: String,
        value: Bytes,
    },
    /// Take a seat for a client of this relay.
    Join {
        room: Arc<str>,
        client: Uuid,
        answer: Answer<Seat>,
    },
    Leave {
        room: Arc<str>,
        client: Uuid,
    },
    /// `resume`: the lookup of the client's resume token (see `cluster/moving.rs`), if the
    /// relay holds seats.
    ClientConnected {
        client: Uuid,
        record: ClientRecord,
        resume: Option<String>,
    },
    ClientDisconnected {
        client: Uuid,
    },
    /// The client's resume token changed (a resume here gave it a new one).
    SetResume {
        client: Uuid,
        lookup: String,
    },
    /// Which client a resume token's lookup names, and the relay holding it.
    FindSeat {
        lookup: String,
        answer: Answer<Option<(Uuid, Arc<str>)>>,
    },
    /// A seat that relay `from` handed over is this relay's now: the client, its new record,
    /// its room, and the lookup of its new token.
    MoveIn {
        client: Uuid,
        from: Arc<str>,
        record: ClientRecord,
        room: Option<Arc<str>>,
        lookup: String,
    },
    /// The exact number of members of a room across every relay; `None`: no such room.
    CountMembers {
        room: Arc<str>,
        answer: Answer<Option<usize>>,
    },
    /// Write this relay's state back.
    Restore {
        state: LocalState,
        answer: Answer<Restored>,
    },
    Snapshot {
        answer: Answer<Snapshot>,
    },
}

/// One change of the registry, in the feed's global order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateEvent {
    RoomCreated {
        room: String,
        generation: u64,
        max_clients: Option<usize>,
    },
    RoomDeleted {
        room: String,
        generation: u64,
    },
    MetaSet {
        room: String,
        generation: u64,
        key: String,
        value: String,
    },
    /// A room's state entry set (or deleted: an empty `value`) on the relay run `origin`.
    StateSet {
        room: String,
        generation: u64,
        origin: u64,
        owner: Uuid,
        key: String,
        value: Bytes,
    },
    Joined {
        room: String,
        generation: u64,
        client: Uuid,
        relay: String,
    },
    Left {
        room: String,
        client: Uuid,
    },
    ClientConnected {
        client: Uuid,
        record: ClientRecord,
    },
    ClientDisconnected {
        client: Uuid,
    },
    /// A client's seat moved to the relay of `record`, in `room`: nobody left or joined.
    Moved {
        client: Uuid,
        room: Option<String>,
        record: ClientRecord,
    },
}

/// What a relay hears from the backplane.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A registry change, numbered in the feed's order.
    State { seq: u64, event: StateEvent },
    /// A bus message on a room's channel.
    Room { room: Bytes, message: Bytes },
    /// A control message for this relay.
    Control(Bytes),
}

/// Where a backplane hands a room's frame that nothing queued precedes: straight to the
/// members here, on the broker connection's own task, which saves a task hop (and a thread
/// wake-up) per message on the busiest path of a cluster.
pub(crate) trait FrameSink: Send + Sync + 'static {
    /// Fans out a room message (see [`bus_message`](super::bus_message)) to the members
    /// here; never waits.
    fn deliver(&self, room: &[u8], message: Bytes);
}

/// The flow from a backplane into the relay: messages queued for the dispatcher and not yet
/// applied, and the sink that frames may take instead when none is. A frame never overtakes
/// what came before it (a join, say, whose `PlayerJoined` must reach the members first).
#[derive(Default)]
pub(crate) struct Inflow {
    pub(crate) queued: std::sync::atomic::AtomicUsize,
    pub(crate) sink: std::sync::OnceLock<Arc<dyn FrameSink>>,
}

/// A broker connection, as the relay uses it.
pub(crate) trait Backplane: Send + Sync + 'static {
    /// Queues `op`; `false` if it was dropped (the queue is full, or the broker is away),
    /// in which case an `Answer` it carried is dropped too.
    fn submit(&self, op: Op) -> bool;
}
