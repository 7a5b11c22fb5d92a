//! With a backplane: the members of a room on other relays (ids only: their frames reach
//! them through the broker), and what tells this room from a later one of the same id.

use super::fanout::{followed_by, relay_now};
use super::state::RoomState;
use super::{Dropped, Room};
use crate::sync::{lock, read, write};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;
use uuid::Uuid;

impl Room {
    /// Whether `id` is a member on another relay.
    pub(crate) fn is_remote(&self, id: Uuid) -> bool {
        self.has_remote() && read(&self.remote).contains(&id)
    }

    /// Records a member on another relay and tells the members here with `announce` (an
    /// encoded `PlayerJoined`); `None` if it was already known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add_remote(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        // The local members' lock first, as everywhere: a confirmation built under it reads
        // the remote list too.
        let members = read(&self.members);
        let mut remote = write(&self.remote);
        if remote.contains(&id) {
            return None;
        }
        remote.push(id);
        self.remote_len.store(remote.len(), Ordering::Release);
        drop(remote);
        Some(relay_now(members, id, announce))
    }

    /// Forgets a member on another relay, deletes the state entries it owns here, and tells
    /// the members here with `announce` (an encoded `PlayerLeft`) followed by an empty
    /// `State` per deleted entry; `None` if it was not known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remove_remote(&self, id: Uuid, announce: &Bytes) -> Option<Dropped> {
        let members = read(&self.members);
        let mut remote = write(&self.remote);
        let at = remote.iter().position(|&m| m == id)?;
        remote.swap_remove(at);
        self.remote_len.store(remote.len(), Ordering::Release);
        drop(remote);
        // The entries it set, as this relay's copy of the state holds them, go with it, as
        // on its own relay.
        let mut deleted = BytesMut::new();
        RoomState::remove_owned(&mut lock(&self.state), id, &mut deleted);
        Some(relay_now(members, id, &followed_by(announce, deleted)))
    }

    /// Records a member on another relay without telling anyone: a seat that moved there
    /// (see `cluster/moving.rs`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add_remote_quietly(&self, id: Uuid) {
        let members = read(&self.members);
        if members.iter().any(|m| m.id == id) {
            return;
        }
        let mut remote = write(&self.remote);
        if !remote.contains(&id) {
            remote.push(id);
            self.remote_len.store(remote.len(), Ordering::Release);
        }
    }

    /// A member here whose seat moves to another relay: a remote member from now on, with
    /// its state entries; nobody is told, as nobody left. `false`: it was not a member here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn hand_off(&self, id: Uuid) -> bool {
        let mut members = write(&self.members);
        let Some(at) = members.iter().position(|m| m.id == id) else {
            return false;
        };
        members.swap_remove(at);
        let mut remote = write(&self.remote);
        if !remote.contains(&id) {
            remote.push(id);
            self.remote_len.store(remote.len(), Ordering::Release);
        }
        true
    }

    /// A seat another relay handed over: its member is here from now on, without a word
    /// to anyone (it never left), and with no confirmation for it (it has the room's
    /// members and state already).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn adopt(&self, member: super::Member) {
        let mut members = write(&self.members);
        let mut remote = write(&self.remote);
        if let Some(at) = remote.iter().position(|&m| m == member.id) {
            remote.swap_remove(at);
            self.remote_len.store(remote.len(), Ordering::Release);
        }
        drop(remote);
        if !members.iter().any(|m| m.id == member.id) {
            members.push(member);
        }
    }

    /// Ids of the members on other relays.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remote_ids(&self) -> Vec<Uuid> {
        read(&self.remote).clone()
    }

    /// Members on other relays.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn remote_len(&self) -> usize {
        self.remote_len.load(Ordering::Acquire)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Release);
    }

    /// The sequence number of the next frame this relay publishes to the room.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn next_published(&self) -> u64 {
        self.published.fetch_add(1, Ordering::Relaxed) + 1
    }
}
