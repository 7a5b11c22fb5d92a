//! Names for client ids, so that a failure message reads "a broadcast from bob" rather than
//! a bare UUID, and short descriptions of what a client received.

use super::wire::Received;
use crate::event::ServerEvent;
use crate::protocol::DisconnectCode;
use crate::server::SERVER_ID;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The names of the clients of one relay (or of one standalone client), shared by all of
/// them. It holds one entry per client a test made.
#[derive(Debug, Clone, Default)]
pub(super) struct Names(Arc<Mutex<HashMap<Uuid, String>>>);

impl Names {
    pub(super) fn insert(&self, id: Uuid, name: &str) {
        lock(&self.0).insert(id, name.to_owned());
    }

    /// "bob [9f1c2e3d]" for a known id, the server for `SERVER_ID`, else the full id.
    pub(super) fn who(&self, id: Uuid) -> String {
        if id == SERVER_ID {
            return "the server".to_owned();
        }
        match lock(&self.0).get(&id) {
            Some(name) => {
                let short = id.simple().to_string();
                format!("{name} [{}]", &short[..8])
            }
            None => id.to_string(),
        }
    }

    /// A one-line description of what was received, payloads cut short.
    pub(super) fn describe(&self, received: &Received) -> String {
        match received {
            Received::Event(event) => self.describe_event(event),
            Received::Pong => "Pong".to_owned(),
            Received::Disconnect { code, message } => {
                let name = DisconnectCode::from_u8(*code)
                    .map(|code| format!("{code:?}"))
                    .unwrap_or_else(|| format!("unknown code {code}"));
                format!("Disconnect({name}, {message:?})")
            }
            Received::Closed => "the end of the stream (the relay closed)".to_owned(),
            Received::Reset(why) => format!("a broken connection ({why})"),
            Received::Invalid(why) => format!("an invalid frame ({why})"),
        }
    }

    /// A one-line description of an event.
    pub(super) fn describe_event(&self, event: &ServerEvent) -> String {
        match event {
            ServerEvent::Joined { client_id, room_id } => {
                format!("Joined({room_id:?} as {})", self.who(*client_id))
            }
            ServerEvent::Left { room_id } => format!("Left({room_id:?})"),
            ServerEvent::Members {
                room_id,
                client_ids,
            } => {
                let mut shown: Vec<String> =
                    client_ids.iter().take(6).map(|&id| self.who(id)).collect();
                if client_ids.len() > shown.len() {
                    shown.push(format!("and {} more", client_ids.len() - shown.len()));
                }
                format!("Members({room_id:?}: [{}])", shown.join(", "))
            }
            ServerEvent::PlayerJoined { client_id } => {
                format!("PlayerJoined({})", self.who(*client_id))
            }
            ServerEvent::PlayerLeft { client_id } => {
                format!("PlayerLeft({})", self.who(*client_id))
            }
            ServerEvent::Broadcast { sender_id, data } => format!(
                "Broadcast from {}: {}",
                self.who(*sender_id),
                describe_bytes(data)
            ),
            ServerEvent::Direct { sender_id, data } => format!(
                "Direct from {}: {}",
                self.who(*sender_id),
                describe_bytes(data)
            ),
            ServerEvent::Keyed {
                sender_id,
                key,
                data,
            } => format!(
                "Keyed({key}) from {}: {}",
                self.who(*sender_id),
                describe_bytes(data)
            ),
            ServerEvent::State { owner, key, value } => format!(
                "State({key:?}) set by {}: {}",
                self.who(*owner),
                describe_bytes(value)
            ),
            ServerEvent::Dropped { count } => format!("Dropped({count})"),
            ServerEvent::Resumed { missed } => format!("Resumed({missed})"),
            ServerEvent::Error(message) => format!("Error({message:?})"),
        }
    }
}

/// "6 bytes b\"attack\"", the first 32 bytes at most.
pub(super) fn describe_bytes(data: &[u8]) -> String {
    let shown = &data[..data.len().min(32)];
    let more = if data.len() > shown.len() { "…" } else { "" };
    format!("{} bytes b\"{}\"{more}", data.len(), shown.escape_ascii())
}
