//! The delivery checker: each receiver keeps, per publisher of its room, the next sequence
//! number it expects. A message with that number is in order; a higher one means the ones in
//! between were lost; a lower one is a duplicate or a reordering. At the end, whatever a
//! publisher sent beyond what a receiver saw is lost too.

/// What one delivery tells about the stream from its publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The expected next message.
    InOrder,
    /// A later message: `missing` messages from `first_missing` on never arrived before it.
    Gap {
        /// The first sequence number skipped.
        first_missing: u32,
        /// How many were skipped.
        missing: u32,
    },
    /// An earlier sequence number than expected: duplicated or reordered.
    Stale,
}

/// Per-receiver order and loss bookkeeping for the publishers of one room.
#[derive(Debug, Clone)]
pub struct SeqChecker {
    next: Vec<u32>,
    /// Messages in order (counting the one that ends a gap).
    pub received: u64,
    /// Messages known lost so far (gaps, then [`finish`](SeqChecker::finish)).
    pub lost: u64,
    /// Messages that came with an old sequence number.
    pub stale: u64,
}

impl SeqChecker {
    /// A checker for a room with `publishers` publisher slots (indexed from 0).
    pub fn new(publishers: usize) -> Self {
        Self {
            next: vec![0; publishers],
            received: 0,
            lost: 0,
            stale: 0,
        }
    }

    /// Records message `seq` from `publisher`; `None` if the publisher index is out of range.
    pub fn observe(&mut self, publisher: usize, seq: u32) -> Option<Outcome> {
        let next = self.next.get_mut(publisher)?;
        let outcome = if seq == *next {
            Outcome::InOrder
        } else if seq > *next {
            let gap = Outcome::Gap {
                first_missing: *next,
                missing: seq - *next,
            };
            self.lost += u64::from(seq - *next);
            gap
        } else {
            self.stale += 1;
            return Some(Outcome::Stale);
        };
        *next = seq.wrapping_add(1);
        self.received += 1;
        Some(outcome)
    }

    /// The next sequence number expected from `publisher`.
    pub fn expected(&self, publisher: usize) -> u32 {
        self.next.get(publisher).copied().unwrap_or(0)
    }

    /// Ends the run: `sent(p)` is how many messages publisher `p` sent. Messages never seen
    /// are added to [`lost`](SeqChecker::lost); returns how many that was.
    pub fn finish(&mut self, sent: impl Fn(usize) -> u32) -> u64 {
        let mut trailing = 0;
        for (p, &next) in self.next.iter().enumerate() {
            trailing += u64::from(sent(p).saturating_sub(next));
        }
        self.lost += trailing;
        trailing
    }

    /// True if nothing was lost, duplicated or reordered.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.stale == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_streams_are_clean() {
        let mut c = SeqChecker::new(3);
        for seq in 0..100 {
            for p in 0..3 {
                assert_eq!(c.observe(p, seq), Some(Outcome::InOrder));
            }
        }
        assert_eq!(c.finish(|_| 100), 0);
        assert!(c.clean());
        assert_eq!(c.received, 300);
    }

    #[test]
    fn detects_a_gap() {
        let mut c = SeqChecker::new(2);
        c.observe(0, 0);
        c.observe(0, 1);
        assert_eq!(
            c.observe(0, 5),
            Some(Outcome::Gap {
                first_missing: 2,
                missing: 3
            })
        );
        assert_eq!(c.lost, 3);
        assert!(!c.clean());
        // The stream goes on from after the gap.
        assert_eq!(c.observe(0, 6), Some(Outcome::InOrder));
    }

    #[test]
    fn detects_duplicates_and_reordering() {
        let mut c = SeqChecker::new(1);
        c.observe(0, 0);
        c.observe(0, 1);
        assert_eq!(c.observe(0, 1), Some(Outcome::Stale));
        assert_eq!(c.observe(0, 0), Some(Outcome::Stale));
        assert_eq!(c.stale, 2);
        assert!(!c.clean());
        // Reordered: 3 before 2 is a gap of one, then 2 is stale.
        let mut r = SeqChecker::new(1);
        r.observe(0, 0);
        r.observe(0, 1);
        assert!(matches!(
            r.observe(0, 3),
            Some(Outcome::Gap { missing: 1, .. })
        ));
        assert_eq!(r.observe(0, 2), Some(Outcome::Stale));
        assert!(!r.clean());
    }

    #[test]
    fn detects_trailing_loss_per_publisher() {
        let mut c = SeqChecker::new(3);
        for seq in 0..10 {
            c.observe(0, seq);
            c.observe(2, seq);
        }
        c.observe(1, 0);
        // Publisher 0 sent 10 (all seen), 1 sent 4 (3 lost), 2 sent 12 (2 lost).
        let sent = [10, 4, 12];
        assert_eq!(c.finish(|p| sent[p]), 5);
        assert_eq!(c.lost, 5);
        assert!(!c.clean());
    }

    #[test]
    fn unknown_publishers_are_reported() {
        let mut c = SeqChecker::new(2);
        assert_eq!(c.observe(2, 0), None);
    }
}
