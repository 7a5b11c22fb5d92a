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

/// The most bytes an index takes per frame its queue holds (`channel_capacity`): the table
/// grows only while every entry is live, and live entries are at most the queued frames, so
/// its capacity stays under twice `channel_capacity` and its buckets (a power of two, 8/7 of
/// the capacity) under four times, each an entry of 32 bytes and a control byte.
pub(crate) const MAX_INDEX_BYTES_PER_FRAME: usize = 4 * 33;

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

/// Coalescing as the queue does it ([`Outbox::push_keyed`](super::Outbox::push_keyed)).
#[cfg(test)]
mod queue_tests {
    use crate::outbox::alloc_count::allocations_in;
    use crate::outbox::notice::dropped_notice;
    use crate::outbox::{outbox, Inbox, Pending, Refused};
    use crate::room::{Member, Room, RoomOptions};
    use crate::sync::lock;
    use bytes::Bytes;
    use uuid::Uuid;

    const A: Uuid = Uuid::from_u128(1);
    const B: Uuid = Uuid::from_u128(2);

    fn frame(name: &'static str) -> Bytes {
        Bytes::from_static(name.as_bytes())
    }

    #[test]
    fn a_full_queue_replaces_the_older_value_in_its_place() {
        let (tx, mut rx) = outbox(3, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        tx.push(frame("x")).unwrap();
        tx.push_keyed(frame("b1"), B, 7).unwrap();
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Ok(false));
        assert_eq!(tx.push_keyed(frame("a3"), A, 7), Ok(false));
        assert_eq!(tx.push_keyed(frame("b2"), B, 7), Ok(false));
        assert_eq!(rx.take_now(), vec![frame("a3"), frame("x"), frame("b2")]);
    }

    #[test]
    fn distinct_keys_keep_the_order_they_first_came_in() {
        let (tx, mut rx) = outbox(3, 1 << 20);
        for (name, key) in [("k1", 1), ("k2", 2), ("k3", 3)] {
            tx.push_keyed(frame(name), A, key).unwrap();
        }
        for (name, key) in [("k3'", 3), ("k1'", 1), ("k2'", 2), ("k1''", 1)] {
            tx.push_keyed(frame(name), A, key).unwrap();
        }
        assert_eq!(
            rx.take_now(),
            vec![frame("k1''"), frame("k2'"), frame("k3'")]
        );
    }

    /// Coalescing is for a full queue only: with room, every value is delivered.
    #[test]
    fn a_queue_with_room_takes_every_value() {
        let (tx, mut rx) = outbox(4, 1 << 20);
        assert_eq!(tx.push_keyed(frame("a1"), A, 7), Ok(true));
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Ok(false));
        assert_eq!(rx.take_now(), vec![frame("a1"), frame("a2")]);
    }

    #[test]
    fn a_key_with_no_older_value_queued_is_dropped_and_counted() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        tx.push(frame("x")).unwrap();
        // Another key, another sender's same key: nothing to replace.
        assert_eq!(tx.push_keyed(frame("a8"), A, 8), Err(Refused::Full));
        assert_eq!(tx.push_keyed(frame("b7"), B, 7), Err(Refused::Full));
        rx.take_now();
        tx.push(frame("y")).unwrap();
        assert_eq!(rx.take_now(), vec![dropped_notice(2), frame("y")]);
    }

    #[test]
    fn a_replacement_is_not_a_drop() {
        let (tx, mut rx) = outbox(1, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Ok(false));
        assert_eq!(lock(&rx.queue.state).dropped, 0);
        assert_eq!(rx.take_now(), vec![frame("a2")]);
        tx.push(frame("y")).unwrap();
        assert_eq!(rx.take_now(), vec![frame("y")], "no notice");
    }

    /// Once the writer took a frame it may be on the wire: a newer value is queued behind
    /// it, or dropped if there is no room, never put in a place that is no longer its own.
    #[test]
    fn a_value_the_writer_took_is_not_replaced() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        assert_eq!(rx.take_now(), vec![frame("a1")]);
        tx.push(frame("x")).unwrap();
        tx.push(frame("y")).unwrap();
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Err(Refused::Full));
        assert_eq!(rx.take_now(), vec![frame("x"), frame("y")]);
    }

    /// An entry left behind by a frame gone from the front (here taken one by one, as a
    /// direct write cut short leaves the queue) names a sequence number below the front:
    /// it must not replace whatever frame now sits where that one did.
    #[test]
    fn a_stale_entry_replaces_nothing() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        tx.push(frame("x")).unwrap();
        assert_eq!(rx.try_recv(), Some(frame("a1")));
        tx.push(frame("y")).unwrap();
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Err(Refused::Full));
        assert_eq!(rx.take_now(), vec![frame("x"), frame("y")]);
        // A frame of the key queued after the front moved is found where it is.
        tx.push(frame("z")).unwrap();
        assert_eq!(rx.try_recv(), Some(dropped_notice(1)));
        tx.push_keyed(frame("a3"), A, 7).unwrap();
        assert_eq!(tx.push_keyed(frame("a4"), A, 7), Ok(false));
        assert_eq!(rx.take_now(), vec![frame("z"), frame("a4")]);
    }

    #[test]
    fn a_replacement_moves_the_byte_count_by_the_difference() {
        let (tx, mut rx) = outbox(100, 10);
        tx.push_keyed(Bytes::from_static(&[1; 4]), A, 1).unwrap();
        tx.push_keyed(Bytes::from_static(&[2; 4]), A, 2).unwrap();
        assert_eq!(tx.push(Bytes::from_static(&[3; 3])), Err(Refused::Full));
        // Full in bytes: replaced, shorter.
        assert_eq!(tx.push_keyed(Bytes::from_static(&[4; 2]), A, 1), Ok(false));
        assert_eq!(lock(&rx.queue.state).bytes, 6);
        // Longer, past the limit: refused (6 - 2 + 7 = 11).
        assert_eq!(
            tx.push_keyed(Bytes::from_static(&[5; 7]), A, 1),
            Err(Refused::Full)
        );
        assert_eq!(lock(&rx.queue.state).bytes, 6);
        // Longer, up to the limit: the queue is not full in frames, so it goes behind the
        // notice owed if there is room, which there is not (6 + 9 + 6): it replaces.
        assert_eq!(tx.push_keyed(Bytes::from_static(&[6; 6]), A, 1), Ok(false));
        assert_eq!(lock(&rx.queue.state).bytes, 10);
        let batch = rx.take_now();
        assert_eq!(
            batch,
            vec![Bytes::from_static(&[6; 6]), Bytes::from_static(&[2; 4])]
        );
        rx.written(batch.iter().map(Bytes::len).sum());
        assert_eq!(lock(&rx.queue.state).bytes, 0);
    }

    #[test]
    fn a_closed_queue_refuses_keyed_frames_and_counts_nothing() {
        let (tx, mut rx) = outbox(1, 1 << 20);
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        rx.close_into(&mut Vec::new());
        assert_eq!(tx.push_keyed(frame("a2"), A, 7), Err(Refused::Closed));
        assert_eq!(lock(&rx.queue.state).dropped, 0);
    }

    #[test]
    fn the_index_exists_only_for_keyed_frames_and_goes_with_an_idle_queue() {
        let (tx, mut rx) = outbox(4, 1 << 20);
        tx.push(frame("x")).unwrap();
        assert!(lock(&rx.queue.state).keyed.is_none());
        tx.push_keyed(frame("a1"), A, 7).unwrap();
        assert!(lock(&rx.queue.state).keyed.is_some());
        tx.shrink();
        assert!(lock(&rx.queue.state).keyed.is_some(), "frames are queued");
        rx.take_now();
        tx.shrink();
        assert!(lock(&rx.queue.state).keyed.is_none());
    }

    /// The cost the design promises: once the index exists, replacing into a full queue of
    /// 1 024 frames allocates nothing (and, by construction, scans nothing).
    #[test]
    fn replacements_into_a_full_queue_allocate_nothing() {
        const DEPTH: u32 = 1024;
        let (tx, mut rx) = outbox(DEPTH as usize, 1 << 20);
        let value = frame("value");
        for key in 0..DEPTH {
            tx.push_keyed(value.clone(), A, key).unwrap();
        }
        let (replaced, allocations) = allocations_in(|| {
            (0..10_000u32)
                .filter(|i| tx.push_keyed(value.clone(), A, (i * 7) % DEPTH) == Ok(false))
                .count()
        });
        assert_eq!(replaced, 10_000);
        assert_eq!(allocations, 0);
        assert_eq!(rx.take_now().len(), DEPTH as usize);
    }

    fn member(n: u128, capacity: usize) -> (Member, Inbox) {
        let (outbox, inbox) = outbox(capacity, 1 << 20);
        let id = Uuid::from_u128(n);
        (Member { id, outbox }, inbox)
    }

    /// Through a room's fan-out (`Room::broadcast_keyed`), member by member.
    #[test]
    fn a_keyed_broadcast_replaces_the_older_value_for_a_member_whose_queue_is_full() {
        let room = Room::new("r", RoomOptions::default());
        let (a, _ra) = member(1, 8);
        let (b, mut rb) = member(2, 2);
        let (c, mut rc) = member(3, 8);
        let from = Uuid::from_u128(1);
        for m in [a, b, c] {
            room.join(m, &Bytes::new(), 1024).unwrap();
        }
        while rb.try_recv().is_some() {}
        while rc.try_recv().is_some() {}
        let mut pending = Pending::default();
        let (v1, v2, other) = (
            Bytes::from_static(b"v1"),
            Bytes::from_static(b"v2"),
            Bytes::from_static(b"other"),
        );
        room.broadcast_keyed(from, 7, &v1, &mut pending);
        room.broadcast(from, &Bytes::from_static(b"x"), &mut pending);
        // b is full now: its v1 is replaced, not v2 dropped.
        let (recipients, dropped) = room.broadcast_keyed(from, 7, &v2, &mut pending);
        assert_eq!((recipients, dropped), (2, vec![]));
        // A key b has no older value of: dropped for b alone.
        let (_, dropped) = room.broadcast_keyed(from, 8, &other, &mut pending);
        assert_eq!(dropped, vec![Uuid::from_u128(2)]);
        assert_eq!(rb.take_now(), vec![&b"v2"[..], b"x"]);
        assert_eq!(rc.take_now(), vec![&b"v1"[..], b"x", b"v2", b"other"]);
    }
}
