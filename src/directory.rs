//! The client directory: every connected client by id, for the handle's control surface
//! (`kick`, `send_to`, `clients`, `client_info`), and [`ClientInfo`], what it tells.
//!
//! A client is listed from the end of its handshake until its seat ends: its connection fully
//! torn down, or, for a seat held for a resume, the hold's end. The map never holds more
//! entries than `max_clients` plus `max_held_seats`.

use crate::auth::Identity;
use crate::session::Session;
use crate::sync::{read, write};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use uuid::Uuid;

/// All connected clients.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    clients: RwLock<HashMap<Uuid, Arc<Session>>>,
}

impl Directory {
    pub(crate) fn insert(&self, session: Arc<Session>) {
        write(&self.clients).insert(session.client_id, session);
    }

    pub(crate) fn remove(&self, client_id: Uuid) {
        write(&self.clients).remove(&client_id);
    }

    pub(crate) fn get(&self, client_id: Uuid) -> Option<Arc<Session>> {
        read(&self.clients).get(&client_id).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.clients).len()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        read(&self.clients).values().cloned().collect()
    }
}

/// What the relay knows about one connected client, from
/// [`ServerHandle::client_info`](crate::ServerHandle::client_info) and
/// [`ServerHandle::clients`](crate::ServerHandle::clients).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The id the relay gave the client.
    pub id: Uuid,
    /// Its address.
    pub addr: SocketAddr,
    /// Who its validator said it is; `None` on an open relay.
    pub identity: Option<Identity>,
    /// The room it is in, if any.
    pub room: Option<String>,
    /// When its handshake completed.
    pub connected_since: SystemTime,
    /// Frames waiting in its write queue (at most `channel_capacity`).
    pub queue_depth: usize,
}

impl ClientInfo {
    pub(crate) fn of(session: &Session) -> Self {
        Self {
            id: session.client_id,
            addr: session.peer,
            identity: session.identity.clone(),
            room: session.current_room().map(|room| room.id().to_string()),
            connected_since: session.connected_at,
            queue_depth: session.queue_depth(),
        }
    }
}
