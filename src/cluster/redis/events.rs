//! Reading what the scripts write: feed events, client records and snapshots, whose fields
//! are `<len>:<bytes>` one after the other (see [`scripts`](super::scripts)).

use crate::cluster::backplane::{ClientRecord, RoomRecord, Snapshot, StateEvent};
use crate::room::RoomStateEntry;
use bytes::Bytes;
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Splits `<len>:<bytes>` fields; `None` if the bytes are not made of whole fields.
fn fields(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let colon = bytes.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&bytes[..colon]).ok()?.parse().ok()?;
        let rest = &bytes[colon + 1..];
        if rest.len() < len {
            return None;
        }
        out.push(&rest[..len]);
        bytes = &rest[len..];
    }
    Some(out)
}

/// One `<len>:<bytes>` field.
pub(crate) fn field(value: &str) -> String {
    format!("{}:{value}", value.len())
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

fn number<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn uuid(bytes: &[u8]) -> Option<Uuid> {
    Uuid::try_parse_ascii(bytes).ok()
}

fn capacity(bytes: &[u8]) -> Option<Option<usize>> {
    if bytes.is_empty() {
        Some(None)
    } else {
        number(bytes).map(Some)
    }
}

/// The `max` field of a room: its capacity, or empty for none.
pub(crate) fn capacity_field(max_clients: Option<usize>) -> String {
    max_clients.map(|n| n.to_string()).unwrap_or_default()
}

impl ClientRecord {
    /// How the registry stores it: relay, address, connection time, user id (or empty) and
    /// whether there is one.
    pub(crate) fn encode(&self) -> String {
        let user = self.user_id.as_deref().unwrap_or("");
        [
            field(&self.relay),
            field(&self.addr.to_string()),
            field(&self.connected_ms.to_string()),
            field(user),
            field(if self.user_id.is_some() { "1" } else { "0" }),
        ]
        .concat()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let f = fields(bytes)?;
        let [relay, addr, ms, user, has_user] = f.as_slice() else {
            return None;
        };
        Some(Self {
            relay: Arc::from(text(relay)?),
            addr: text(addr)?.parse().ok()?,
            connected_ms: number(ms)?,
            user_id: (*has_user == b"1")
                .then(|| text(user).map(Arc::from))
                .flatten(),
        })
    }
}

/// A feed message: its sequence number and event; `None` if it is not one.
pub(crate) fn parse_event(bytes: &[u8]) -> Option<(u64, StateEvent)> {
    let f = fields(bytes)?;
    let (seq, kind, args) = match f.as_slice() {
        [seq, kind, args @ ..] => (number(seq)?, *kind, args),
        _ => return None,
    };
    let event = match (kind, args) {
        (b"C", [room, generation, max]) => StateEvent::RoomCreated {
            room: text(room)?,
            generation: number(generation)?,
            max_clients: capacity(max)?,
        },
        (b"D", [room, generation]) => StateEvent::RoomDeleted {
            room: text(room)?,
            generation: number(generation)?,
        },
        (b"M", [room, generation, key, value]) => StateEvent::MetaSet {
            room: text(room)?,
            generation: number(generation)?,
            key: text(key)?,
            value: text(value)?,
        },
        (b"S", [room, generation, origin, owner, key, value]) => StateEvent::StateSet {
            room: text(room)?,
            generation: number(generation)?,
            origin: number(origin)?,
            owner: uuid(owner)?,
            key: text(key)?,
            value: Bytes::copy_from_slice(value),
        },
        (b"J", [room, generation, client, relay]) => StateEvent::Joined {
            room: text(room)?,
            generation: number(generation)?,
            client: uuid(client)?,
            relay: text(relay)?,
        },
        (b"L", [room, client]) => StateEvent::Left {
            room: text(room)?,
            client: uuid(client)?,
        },
        (b"A", [client, record]) => StateEvent::ClientConnected {
            client: uuid(client)?,
            record: ClientRecord::decode(record)?,
        },
        (b"Z", [client]) => StateEvent::ClientDisconnected {
            client: uuid(client)?,
        },
        (b"V", [client, room, record]) => StateEvent::Moved {
            client: uuid(client)?,
            room: Some(text(room)?).filter(|r| !r.is_empty()),
            record: ClientRecord::decode(record)?,
        },
        _ => return None,
    };
    Some((seq, event))
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn pairs(value: &Value) -> Option<Vec<(&[u8], &[u8])>> {
    array(value)?
        .chunks(2)
        .map(|pair| match pair {
            [k, v] => Some((bytes_of(k)?, bytes_of(v)?)),
            _ => None,
        })
        .collect()
}

/// A room's state as the scripts keep it (key → owner's 36-byte id and the value; key →
/// the feed number of its first set), in first-set order.
fn state_entries(state: &Value, order: &Value) -> Option<Vec<RoomStateEntry>> {
    let order: HashMap<&[u8], u64> = pairs(order)?
        .into_iter()
        .map(|(key, at)| Some((key, number(at)?)))
        .collect::<Option<_>>()?;
    let mut entries = pairs(state)?
        .into_iter()
        .map(|(key, stored)| {
            let (owner, value) = stored.split_at_checked(36)?;
            let entry = RoomStateEntry {
                key: text(key)?,
                owner: uuid(owner)?,
                value: Bytes::copy_from_slice(value),
            };
            Some((order.get(key).copied().unwrap_or(u64::MAX), entry))
        })
        .collect::<Option<Vec<_>>>()?;
    entries.sort_by_key(|(at, _)| *at);
    Some(entries.into_iter().map(|(_, entry)| entry).collect())
}

/// The SNAPSHOT script's answer.
pub(crate) fn parse_snapshot(value: &Value) -> Option<Snapshot> {
    let [seq, rooms, clients] = array(value)? else {
        return None;
    };
    let seq = number(bytes_of(seq)?)?;
    let rooms = array(rooms)?
        .iter()
        .map(|room| {
            let [id, generation, max, meta, members, state, order] = array(room)? else {
                return None;
            };
            Some(RoomRecord {
                id: text(bytes_of(id)?)?,
                generation: number(bytes_of(generation)?)?,
                max_clients: capacity(bytes_of(max)?)?,
                meta: pairs(meta)?
                    .into_iter()
                    .map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect::<Option<_>>()?,
                members: pairs(members)?
                    .into_iter()
                    .map(|(c, r)| Some((uuid(c)?, Arc::from(text(r)?))))
                    .collect::<Option<_>>()?,
                state: state_entries(state, order)?,
            })
        })
        .collect::<Option<_>>()?;
    let clients = pairs(clients)?
        .into_iter()
        .map(|(c, record)| Some((uuid(c)?, ClientRecord::decode(record)?)))
        .collect::<Option<_>>()?;
    Some(Snapshot {
        seq,
        rooms,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_what_the_scripts_write() {
        let client = Uuid::from_u128(3);
        let msg = format!(
            "{}{}{}{}{}{}",
            field("42"),
            field("J"),
            field("room:with:colons"),
            field("7"),
            field(&client.to_string()),
            field("relay-a")
        );
        assert_eq!(
            parse_event(msg.as_bytes()),
            Some((
                42,
                StateEvent::Joined {
                    room: "room:with:colons".into(),
                    generation: 7,
                    client,
                    relay: "relay-a".into(),
                }
            ))
        );
        assert_eq!(parse_event(b"2:42"), None);
        assert_eq!(parse_event(b"9:truncated"), None);
    }

    #[test]
    fn a_client_record_round_trips() {
        for user_id in [None, Some(Arc::from("")), Some(Arc::from("ana"))] {
            let record = ClientRecord {
                relay: Arc::from("r1"),
                addr: "127.0.0.1:9".parse().unwrap(),
                connected_ms: 17,
                user_id,
            };
            assert_eq!(
                ClientRecord::decode(record.encode().as_bytes()),
                Some(record)
            );
        }
    }
}
