//! A room's state: the small key-value store that members (and the server) set, that every
//! joiner receives after its member list, and that forgets a member's entries when it leaves.
//!
//! The store is bounded by [`StateLimits`] (entries, and bytes of keys plus values), so a
//! client can never grow a room past what the relay was configured for: the relay copies
//! each value out of the client's frame (a slice would pin the whole read buffer it came in)
//! and counts exactly what it keeps. Entries stay in the order they were first set, which is
//! the order a joiner gets them in. Lookups scan the entries: a room holds a few hundred at
//! most by default, where a scan beats hashing, and a relay configured for many more pays
//! for them in linear time per set, not in memory.
//!
//! A [`Room`] holds the store behind its own lock and creates it on the
//! first set, so that a room without state pays one pointer for it.

use super::{relay, Dropped, Room};
use crate::error::SyncError;
use crate::outbox::Pending;
use crate::protocol::{encode_into, ServerFrame, MAX_STATE_KEY_LEN};
use crate::sync::{lock, read};
use bytes::{Bytes, BytesMut};
use uuid::Uuid;

/// One entry of a room's state, as
/// [`ServerHandle::room_state`](crate::ServerHandle::room_state) lists it.
///
/// ```
/// use bytes::Bytes;
/// use ghost_sync::{RoomStateEntry, SERVER_ID};
///
/// let map = RoomStateEntry {
///     key: "map".into(),
///     owner: SERVER_ID,
///     value: Bytes::from_static(b"dust"),
/// };
/// assert_eq!(map.owner, SERVER_ID);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStateEntry {
    /// The entry's key (1 to 255 bytes).
    pub key: String,
    /// Who set it last: a member's id, or [`SERVER_ID`](crate::SERVER_ID) for the server.
    pub owner: Uuid,
    /// Its value (never empty: an empty value deletes the entry).
    pub value: Bytes,
}

/// The bounds of one room's state (`ServerBuilder::room_state_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateLimits {
    /// Most entries at once.
    pub(crate) max_keys: usize,
    /// Most bytes of keys and values together.
    pub(crate) max_bytes: usize,
}

/// Bytes a `State` frame adds to its key and value: the length prefix, the tag, the owner
/// and the two length fields.
pub(crate) const STATE_FRAME_OVERHEAD: usize = 4 + 1 + 16 + 8 + 8;

impl StateLimits {
    /// The most bytes a joiner's snapshot of a full room state can take in its queue.
    pub(crate) fn snapshot_bound(&self) -> usize {
        self.max_keys
            .saturating_mul(STATE_FRAME_OVERHEAD)
            .saturating_add(self.max_bytes)
    }
}

/// Why a set was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateRefused {
    /// The key is empty or too long; what is wrong with it.
    Key(&'static str),
    /// The room holds this many entries already.
    Keys(usize),
    /// The entry would take the room's state past this many bytes.
    Bytes(usize),
}

impl StateRefused {
    /// The text a client gets, as PROTOCOL.md gives it.
    pub(crate) fn message(&self, room_id: &str) -> String {
        match self {
            Self::Key(why) => format!("invalid state key: {why}"),
            Self::Keys(_) | Self::Bytes(_) => {
                format!("room state full: {}", self.bound(room_id))
            }
        }
    }

    /// The error of a handle's call: the same text, as [`SyncError`]'s variants tell it.
    pub(crate) fn into_error(self, room_id: &str) -> SyncError {
        match self {
            Self::Key(_) => SyncError::InvalidRequest(self.message(room_id)),
            Self::Keys(_) | Self::Bytes(_) => SyncError::RoomStateFull(self.bound(room_id)),
        }
    }

    /// Which bound a full state is at: `"<room_id>: 256 keys"`.
    fn bound(&self, room_id: &str) -> String {
        match self {
            Self::Keys(max) => format!("{room_id}: {max} keys"),
            Self::Bytes(max) => format!("{room_id}: {max} bytes"),
            Self::Key(why) => format!("{room_id}: {why}"),
        }
    }
}

/// Checks that `key` is 1 to [`MAX_STATE_KEY_LEN`] bytes.
pub(crate) fn check_key(key: &str) -> Result<(), StateRefused> {
    if key.is_empty() {
        return Err(StateRefused::Key("empty"));
    }
    if key.len() > MAX_STATE_KEY_LEN {
        return Err(StateRefused::Key("longer than 255 bytes"));
    }
    Ok(())
}

#[derive(Debug)]
struct Entry {
    key: Box<str>,
    owner: Uuid,
    value: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        self.key.len() + self.value.len()
    }

    fn encode_into(&self, value: &[u8], out: &mut BytesMut) {
        encode_into(
            &ServerFrame::State {
                owner: self.owner,
                key: &self.key,
                value,
            },
            out,
        );
    }
}

/// A room's entries, in first-set order, and the bytes they hold.
#[derive(Debug, Default)]
pub(crate) struct RoomState {
    entries: Vec<Entry>,
    bytes: usize,
}

impl RoomState {
    /// Sets `key` to `value` for `owner` in `slot` (creating the store if need be, dropping
    /// it once empty); an empty `value` deletes. `Ok(false)`: nothing changed (a delete of a
    /// missing key), so nothing is to be relayed. On an error nothing changed either.
    pub(crate) fn set(
        slot: &mut Option<Box<RoomState>>,
        owner: Uuid,
        key: &str,
        value: &[u8],
        limits: StateLimits,
    ) -> Result<bool, StateRefused> {
        check_key(key)?;
        if value.is_empty() {
            let Some(state) = slot.as_deref_mut() else {
                return Ok(false);
            };
            let removed = state.delete(key);
            if state.entries.is_empty() {
                *slot = None;
            }
            return Ok(removed);
        }
        slot.get_or_insert_with(Box::default)
            .put(owner, key, value, limits)?;
        Ok(true)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| &*e.key == key)
    }

    fn delete(&mut self, key: &str) -> bool {
        let Some(at) = self.position(key) else {
            return false;
        };
        // `remove`, not `swap_remove`: the others keep their first-set order.
        let entry = self.entries.remove(at);
        self.bytes -= entry.size();
        true
    }

    fn put(
        &mut self,
        owner: Uuid,
        key: &str,
        value: &[u8],
        limits: StateLimits,
    ) -> Result<(), StateRefused> {
        match self.position(key) {
            Some(at) => {
                let entry = &mut self.entries[at];
                let bytes = self.bytes - entry.value.len() + value.len();
                if bytes > limits.max_bytes {
                    return Err(StateRefused::Bytes(limits.max_bytes));
                }
                // The last setter owns it: its leave deletes it.
                entry.owner = owner;
                entry.value = Bytes::copy_from_slice(value);
                self.bytes = bytes;
            }
            None => {
                if self.entries.len() >= limits.max_keys {
                    return Err(StateRefused::Keys(limits.max_keys));
                }
                let bytes = self.bytes + key.len() + value.len();
                if bytes > limits.max_bytes {
                    return Err(StateRefused::Bytes(limits.max_bytes));
                }
                self.entries.push(Entry {
                    key: Box::from(key),
                    owner,
                    value: Bytes::copy_from_slice(value),
                });
                self.bytes = bytes;
            }
        }
        Ok(())
    }

    /// Appends one encoded `State` per entry, in first-set order: a joiner's snapshot.
    pub(crate) fn encode_into(&self, out: &mut BytesMut) {
        out.reserve(self.bytes + self.entries.len() * STATE_FRAME_OVERHEAD);
        for entry in &self.entries {
            entry.encode_into(&entry.value, out);
        }
    }

    /// Deletes the entries `owner` set last from `slot` (dropping the store once empty), and
    /// appends a `State` with an empty value for each to `out`; how many there were.
    pub(crate) fn remove_owned(
        slot: &mut Option<Box<RoomState>>,
        owner: Uuid,
        out: &mut BytesMut,
    ) -> usize {
        let Some(state) = slot.as_deref_mut() else {
            return 0;
        };
        let mut removed = 0;
        let mut bytes = state.bytes;
        state.entries.retain(|entry| {
            if entry.owner != owner {
                return true;
            }
            entry.encode_into(&[], out);
            bytes -= entry.size();
            removed += 1;
            false
        });
        state.bytes = bytes;
        if state.entries.is_empty() {
            *slot = None;
        }
        removed
    }

    /// Every entry, in first-set order.
    pub(crate) fn entries(&self) -> Vec<RoomStateEntry> {
        self.entries
            .iter()
            .map(|e| RoomStateEntry {
                key: e.key.to_string(),
                owner: e.owner,
                value: e.value.clone(),
            })
            .collect()
    }
}

impl Room {
    /// Sets the state entry `key` to `value` for `owner` (the nil id for the server; an
    /// empty value deletes) and queues `frame`, its encoded `State`, for every member but
    /// `owner`. `Ok(None)`: nothing changed (a delete of a missing key), nothing queued.
    pub(crate) fn set_state(
        &self,
        owner: Uuid,
        key: &str,
        value: &[u8],
        frame: &Bytes,
        limits: StateLimits,
        pending: &mut Pending,
    ) -> Result<Option<Dropped>, StateRefused> {
        let members = read(&self.members);
        // Held while queueing too: two sets of one key reach every member in the order
        // they were applied, so the members end with the value the room keeps.
        let mut state = lock(&self.state);
        if !RoomState::set(&mut state, owner, key, value, limits)? {
            return Ok(None);
        }
        Ok(Some(relay(&members, owner, frame, pending)))
    }

    /// Every entry of the room's state, in first-set order.
    pub(crate) fn state_entries(&self) -> Vec<RoomStateEntry> {
        lock(&self.state)
            .as_deref()
            .map_or_else(Vec::new, RoomState::entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_frame, FrameReader};

    const LIMITS: StateLimits = StateLimits {
        max_keys: 2,
        max_bytes: 10,
    };

    fn decoded(mut buf: BytesMut) -> Vec<(Uuid, String, Vec<u8>)> {
        let frames = FrameReader::for_payload(1024);
        let mut out = Vec::new();
        while let Some(frame) = frames.next_frame(&mut buf).unwrap() {
            match decode_frame::<ServerFrame<'_>>(&frame).unwrap() {
                ServerFrame::State { owner, key, value } => {
                    out.push((owner, key.to_owned(), value.to_vec()))
                }
                other => panic!("not a State: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn bytes_are_counted_exactly_and_an_emptied_store_is_dropped() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut slot = None;
        assert_eq!(RoomState::set(&mut slot, a, "k", b"1234", LIMITS), Ok(true));
        assert_eq!(RoomState::set(&mut slot, b, "j", b"1234", LIMITS), Ok(true));
        // 1 + 4 + 1 + 4 = 10: one byte more is over.
        assert_eq!(
            RoomState::set(&mut slot, a, "k", b"12345", LIMITS),
            Err(StateRefused::Bytes(10))
        );
        assert_eq!(
            RoomState::set(&mut slot, a, "x", b"1", LIMITS),
            Err(StateRefused::Keys(2))
        );
        // A smaller value fits, and the old one's bytes are given back.
        assert_eq!(RoomState::set(&mut slot, a, "k", b"1", LIMITS), Ok(true));
        assert_eq!(slot.as_ref().unwrap().bytes, 7);
        let mut out = BytesMut::new();
        assert_eq!(RoomState::remove_owned(&mut slot, a, &mut out), 1);
        assert_eq!(decoded(out), vec![(a, "k".to_owned(), vec![])]);
        assert_eq!(RoomState::set(&mut slot, b, "j", b"", LIMITS), Ok(true));
        assert!(slot.is_none(), "an empty store is not kept");
        assert_eq!(RoomState::set(&mut slot, b, "j", b"", LIMITS), Ok(false));
    }

    #[test]
    fn an_overwrite_keeps_the_first_set_position() {
        let a = Uuid::from_u128(1);
        let mut slot = None;
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
            RoomState::set(&mut slot, a, key, value.as_bytes(), LIMITS).unwrap();
        }
        let mut out = BytesMut::new();
        slot.unwrap().encode_into(&mut out);
        assert_eq!(
            decoded(out),
            vec![
                (a, "a".to_owned(), b"3".to_vec()),
                (a, "b".to_owned(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn keys_are_checked_before_anything_else() {
        let mut slot = None;
        let long = "k".repeat(256);
        assert_eq!(
            RoomState::set(&mut slot, Uuid::nil(), "", b"", LIMITS),
            Err(StateRefused::Key("empty"))
        );
        assert_eq!(
            RoomState::set(&mut slot, Uuid::nil(), &long, b"v", LIMITS),
            Err(StateRefused::Key("longer than 255 bytes"))
        );
        assert_eq!(
            StateRefused::Key("empty").message("r"),
            "invalid state key: empty"
        );
    }
}
