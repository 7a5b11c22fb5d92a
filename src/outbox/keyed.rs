//! The index of a client's queued keyed frames ("latest state", issue 14): for each
//! (sender, key), which queued frame holds its newest value, so that a full queue replaces
//! that frame in place instead of dropping the newer value.
//!
//! Why an index and not a scan: a full queue holds up to `channel_capacity` frames (1 024 by
//! default), and a slow client in a busy room is replaced into once per keyed frame relayed
//! to it, while the relaying task holds the room's lock. A lookup here costs the same at any
//! depth.
//!
//! Entries name frames by their absolute sequence number in the queue (`State::front` is
//! that of the first queued frame), not by position, so frames leaving the front (taken by
//! the writer, written directly) need no update here: an entry below the front is stale and
//! ignored. A queue that empties (the writer took it all, a direct write wrote it all)
//! clears the index, which leaves few stale entries in practice; should they pile up
//! anyway, they are purged whenever the table is full, before it could grow. It then grows
//! only if more than half of it is live, and live entries are at most the queued frames, so
//! it stays under four times `channel_capacity` entries (some 130 KiB at the default 1 024,
//! for a client with a thousand distinct keys queued at once); usually it holds about the
//! number of distinct keys queued. It starts small and exists only for a client that is
//! sent keyed frames.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use uuid::Uuid;

/// Entries the index is first allocated with (fewer if the queue holds fewer frames): a few
/// senders' latest state each, without sizing every keyed client's index for a full queue.
const INITIAL_ENTRIES: usize = 16;

/// Which value a keyed frame carries: its sender's `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    sender: Uuid,
    key: u32,
}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Three words, rather than `Uuid`'s byte-slice hashing.
        let (high, low) = self.sender.as_u64_pair();
        state.write_u64(high);
        state.write_u64(low);
        state.write_u32(self.key);
    }
}

/// A small multiply-rotate hash (as rustc's FxHash) with a final mix, so that keys that
/// differ only in their high bits (as counters and flags do) still spread over the table's
/// low bits. The keys are chosen by clients, but the table is bounded (see the module's
/// doc), so a client crafting collisions slows only its own sender's lookups, by a bounded
/// factor.
#[derive(Debug, Default)]
struct SlotHasher(u64);

impl SlotHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Unused by `Slot`; correct for anything else.
        for &byte in bytes {
            self.mix(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn finish(&self) -> u64 {
        // murmur3's finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Where the newest queued value of each (sender, key) is: its frame's sequence number.
#[derive(Debug)]
pub(super) struct KeyIndex {
    seqs: HashMap<Slot, u64, BuildHasherDefault<SlotHasher>>,
}

impl KeyIndex {
    /// An index for a queue of at most `max_frames` frames.
    pub(super) fn new(max_frames: usize) -> Box<Self> {
        Box::new(Self {
            seqs: HashMap::with_capacity_and_hasher(
                max_frames.clamp(1, INITIAL_ENTRIES),
                BuildHasherDefault::default(),
            ),
        })
    }

    /// The sequence number of the frame recorded for `sender`'s `key`, if any; it may be
    /// stale (below the queue's front).
    pub(super) fn get(&self, sender: Uuid, key: u32) -> Option<u64> {
        self.seqs.get(&Slot { sender, key }).copied()
    }

    /// Records that frame `seq` holds `sender`'s newest `key`; `front` is the sequence number
    /// of the first queued frame (entries below it are stale).
    pub(super) fn record(&mut self, sender: Uuid, key: u32, seq: u64, front: u64) {
        let slot = Slot { sender, key };
        if let Some(known) = self.seqs.get_mut(&slot) {
            *known = seq;
            return;
        }
        // Full: the insert could grow the table, which stale entries must not make it do.
        if self.seqs.len() >= self.seqs.capacity() {
            self.purge(front);
        }
        self.seqs.insert(slot, seq);
    }

    /// Drops the stale entries.
    #[cold]
    fn purge(&mut self, front: u64) {
        self.seqs.retain(|_, seq| *seq >= front);
    }

    /// Forgets every entry (the queue is empty), keeping the table's allocation.
    pub(super) fn clear(&mut self) {
        if !self.seqs.is_empty() {
            self.seqs.clear();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.seqs.len()
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.seqs.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::alloc_count::allocations_in;

    fn sender(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_newest_record_of_a_key_wins_and_keys_are_per_sender() {
        let mut index = KeyIndex::new(8);
        index.record(sender(1), 7, 10, 0);
        index.record(sender(2), 7, 11, 0);
        index.record(sender(1), 7, 12, 0);
        assert_eq!(index.get(sender(1), 7), Some(12));
        assert_eq!(index.get(sender(2), 7), Some(11));
        assert_eq!(index.get(sender(1), 8), None);
        assert_eq!(index.len(), 2);
    }

    /// Stale entries (below the front) are purged rather than grown over; live ones stay.
    #[test]
    fn stale_entries_are_purged_before_the_table_grows() {
        let mut index = KeyIndex::new(16);
        // A long-lived queue: each key's frame has left the front before the next comes.
        let ((), allocations) = allocations_in(|| {
            for seq in 0..10_000u64 {
                index.record(sender(1), seq as u32, seq, seq);
            }
        });
        assert_eq!(allocations, 0, "the table grew");
        assert!(index.len() < 32, "{} entries", index.len());
        assert_eq!(index.get(sender(1), 9_999), Some(9_999));
    }

    /// However keys come and go, the table stays within its bound: live entries are at most
    /// the queued frames, here 64.
    #[test]
    fn the_table_stays_bounded_by_the_queue_not_by_the_keys_seen() {
        let max_frames = 64;
        let mut index = KeyIndex::new(max_frames);
        let mut front = 0;
        for seq in 0..100_000u64 {
            // A full queue of distinct keys, its front moving one frame per push.
            front = front.max(seq.saturating_sub(max_frames as u64 - 1));
            index.record(sender(u128::from(seq % 3)), seq as u32, seq, front);
        }
        assert!(index.capacity() < 4 * max_frames, "{}", index.capacity());
    }

    #[test]
    fn keys_differing_in_high_bits_spread_over_the_table() {
        // With a plain multiply hash these would share their low bits, so one bucket.
        let mut buckets = std::collections::HashSet::new();
        for i in 0..256u32 {
            let mut h = SlotHasher::default();
            Slot {
                sender: sender(1),
                key: i << 24,
            }
            .hash(&mut h);
            buckets.insert(h.finish() & 1023);
        }
        assert!(buckets.len() > 200, "{} buckets", buckets.len());
    }
}
