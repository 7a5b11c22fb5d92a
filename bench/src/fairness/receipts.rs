//! [`Receipts`]: what the receiving bystander has seen, and how each delivery counts: timed
//! if it belongs to the measured stretch, late past [`LATE_NS`], checked for order and loss.

use super::bystander::LATE_NS;
use crate::check::{Outcome, SeqChecker};
use crate::load::new_histogram;
use crate::payload::Header;
use hdrhistogram::Histogram;
use std::ops::Range;

/// What the bystanders' receiver has seen.
pub(super) struct Receipts {
    pub(super) checker: SeqChecker,
    /// Sequence numbers of the phase being measured.
    pub(super) measured: Range<u32>,
    pub(super) hist: Histogram<u64>,
    /// Messages of `measured` received.
    pub(super) received: u64,
    /// Of those, slower than [`LATE_NS`].
    pub(super) late: u64,
    pub(super) disconnects: u64,
    pub(super) error_count: u64,
    pub(super) errors: Vec<String>,
}

impl Receipts {
    /// Nothing seen yet, and no stretch being measured.
    pub(super) fn new() -> Receipts {
        Receipts {
            checker: SeqChecker::new(1),
            measured: 0..0,
            hist: new_histogram(),
            received: 0,
            late: 0,
            disconnects: 0,
            error_count: 0,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }

    pub(super) fn delivery(&mut self, h: Header, now: u64) {
        if h.publisher != 0 {
            self.error(format!(
                "a bystander got a message from publisher {}",
                h.publisher
            ));
            return;
        }
        if let Some(Outcome::Stale) | None = self.checker.observe(0, h.seq) {
            return;
        }
        if self.measured.contains(&h.seq) {
            let latency = now.saturating_sub(h.sent_ns);
            self.hist.saturating_record(latency.max(1));
            self.received += 1;
            self.late += u64::from(latency > LATE_NS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_time_only_the_measured_stretch_and_count_late_ones() {
        let mut r = Receipts {
            measured: 2..4,
            ..Receipts::new()
        };
        let at = |seq, sent_ns| Header {
            publisher: 0,
            seq,
            sent_ns,
        };
        let now = 10 * LATE_NS;
        r.delivery(at(0, now - 1), now);
        r.delivery(at(1, now - 1), now);
        r.delivery(at(2, now - 1_000), now);
        r.delivery(at(2, now - 1_000), now); // a duplicate: not timed again
        r.delivery(at(3, now - 2 * LATE_NS), now);
        r.delivery(at(4, now - 5 * LATE_NS), now);
        assert_eq!((r.received, r.late, r.hist.len()), (2, 1, 2));
        assert_eq!(r.checker.stale, 1);
        r.delivery(at(0, 0), now);
        r.delivery(
            Header {
                publisher: 9,
                ..at(5, 0)
            },
            now,
        );
        assert_eq!((r.checker.stale, r.error_count), (2, 1));
    }
}
