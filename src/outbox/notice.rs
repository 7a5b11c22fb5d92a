//! The missed-frame notice (issue 14): after frames for a client were dropped because its
//! queue was full, the next frame it is delivered comes behind a `Dropped { count }` frame,
//! so that a client can tell "nothing happened" from "I missed something".
//!
//! The notice is queued as a frame of its own, under the same lock as the frame it precedes
//! (see `Queue::enqueue_after_drops`). Counts up to [`STATIC_NOTICES`] are served from a
//! static table, so that the usual notice (a few frames missed) costs no allocation.

use bytes::Bytes;

/// Length of a `Dropped` frame on the wire: the 4-byte length prefix, the tag, a `u32`.
pub(super) const NOTICE_LEN: usize = 9;

/// Counts whose notice is a static buffer rather than an allocation.
const STATIC_NOTICES: usize = 64;

/// The notices for counts 1 to [`STATIC_NOTICES`], in order.
static NOTICES: [[u8; NOTICE_LEN]; STATIC_NOTICES] = notices();

/// `Dropped { count }` as PROTOCOL.md §5 defines it (server message tag 15): the big-endian
/// length prefix (5), the tag, then `count` little-endian.
// Written by hand so that the table is built at compile time; a test holds it to the
// protocol's encoder.
const fn encode(count: u32) -> [u8; NOTICE_LEN] {
    let c = count.to_le_bytes();
    [0, 0, 0, 5, 0x0f, c[0], c[1], c[2], c[3]]
}

const fn notices() -> [[u8; NOTICE_LEN]; STATIC_NOTICES] {
    let mut table = [[0; NOTICE_LEN]; STATIC_NOTICES];
    let mut i = 0;
    while i < STATIC_NOTICES {
        table[i] = encode(i as u32 + 1);
        i += 1;
    }
    table
}

/// The encoded `Dropped { count }` frame (PROTOCOL.md §5).
pub(super) fn dropped_notice(count: u32) -> Bytes {
    match NOTICES.get((count as usize).wrapping_sub(1)) {
        Some(notice) => Bytes::from_static(notice),
        None => Bytes::copy_from_slice(&encode(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::alloc_count::allocations_in;

    #[test]
    fn the_notice_is_the_dropped_frame_of_protocol_v2() {
        assert_eq!(&dropped_notice(3)[..], &[0, 0, 0, 5, 0x0f, 3, 0, 0, 0][..]);
        assert_eq!(
            &dropped_notice(u32::MAX)[..],
            &[0, 0, 0, 5, 0x0f, 0xff, 0xff, 0xff, 0xff][..]
        );
        // The table and the encoder agree, at the table's edges and past it.
        for count in [1u32, 2, 63, 64, 65, 1000, 0x0102_0304] {
            let mut expected = vec![0, 0, 0, 5, 0x0f];
            expected.extend_from_slice(&count.to_le_bytes());
            assert_eq!(&dropped_notice(count)[..], &expected[..], "count {count}");
        }
    }

    #[test]
    fn the_notice_is_what_the_protocol_encodes() {
        for count in [1u32, 64, 65, u32::MAX] {
            let encoded = crate::protocol::encode(&crate::protocol::ServerFrame::Dropped { count });
            assert_eq!(dropped_notice(count), encoded, "count {count}");
        }
    }

    #[test]
    fn a_notice_for_a_few_frames_allocates_nothing() {
        let (notices, allocations) = allocations_in(|| {
            (1..=STATIC_NOTICES as u32)
                .map(dropped_notice)
                .map(|notice| notice.len())
                .sum::<usize>()
        });
        assert_eq!(notices, STATIC_NOTICES * NOTICE_LEN);
        assert_eq!(allocations, 0);
    }
}

/// The notice as the queue sends it.
#[cfg(test)]
mod queue_tests {
    use super::dropped_notice;
    use crate::outbox::{outbox, Refused};
    use crate::sync::lock;
    use bytes::Bytes;

    fn frame(name: &'static str) -> Bytes {
        Bytes::from_static(name.as_bytes())
    }

    #[test]
    fn the_next_frame_after_drops_comes_behind_one_notice_of_how_many() {
        let (tx, mut rx) = outbox(4, 1 << 20);
        for name in ["a", "b", "c", "d"] {
            tx.push(frame(name)).unwrap();
        }
        for name in ["e", "f", "g"] {
            assert_eq!(tx.push(frame(name)), Err(Refused::Full));
        }
        assert_eq!(
            rx.take_now(),
            vec![frame("a"), frame("b"), frame("c"), frame("d")]
        );
        tx.push(frame("h")).unwrap();
        tx.push(frame("i")).unwrap();
        // Once per episode: "i" comes with no notice of its own.
        assert_eq!(
            rx.take_now(),
            vec![dropped_notice(3), frame("h"), frame("i")]
        );
    }

    #[test]
    fn a_second_episode_gets_a_second_notice_of_its_own_drops() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        for episode in [2u32, 5] {
            tx.try_send(frame("x")).unwrap();
            tx.try_send(frame("y")).unwrap();
            for _ in 0..episode {
                assert_eq!(tx.try_send(frame("z")), Err(Refused::Full));
            }
            rx.take_now();
            tx.try_send(frame("next")).unwrap();
            assert_eq!(rx.take_now(), vec![dropped_notice(episode), frame("next")]);
        }
    }

    #[test]
    fn without_drops_there_is_no_notice() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        for _ in 0..3 {
            tx.push(frame("x")).unwrap();
            tx.push(frame("y")).unwrap();
            assert_eq!(rx.take_now(), vec![frame("x"), frame("y")]);
        }
    }

    /// The notice takes a slot of its own, except in an empty queue: a queue of one frame
    /// would otherwise never have room for both, and never deliver again.
    #[test]
    fn a_queue_of_one_frame_still_delivers_after_a_drop() {
        let (tx, mut rx) = outbox(1, 1 << 20);
        tx.push(frame("a")).unwrap();
        assert_eq!(tx.push(frame("b")), Err(Refused::Full));
        assert_eq!(rx.take_now(), vec![frame("a")]);
        assert_eq!(tx.push(frame("c")), Ok(false)); // the writer still owns the socket
        assert_eq!(rx.take_now(), vec![dropped_notice(1), frame("c")]);
    }

    /// Room for the frame but not for the notice too: the frame is refused, and counted.
    #[test]
    fn room_for_one_of_the_two_refuses_the_frame_and_counts_it() {
        let (tx, mut rx) = outbox(3, 1 << 20);
        for name in ["a", "b", "c"] {
            tx.push(frame(name)).unwrap();
        }
        assert_eq!(tx.push(frame("d")), Err(Refused::Full));
        rx.try_recv().unwrap();
        assert_eq!(
            tx.push(frame("e")),
            Err(Refused::Full),
            "one slot, two frames"
        );
        rx.try_recv().unwrap();
        tx.push(frame("f")).unwrap();
        assert_eq!(
            rx.take_now(),
            vec![frame("c"), dropped_notice(2), frame("f")]
        );
    }

    #[test]
    fn the_notice_needs_room_in_bytes_too_and_counts_against_them() {
        let (tx, mut rx) = outbox(100, 20);
        tx.push(Bytes::from_static(&[1; 10])).unwrap();
        assert_eq!(tx.push(Bytes::from_static(&[2; 11])), Err(Refused::Full));
        // 5 bytes fit alone (15), not behind a notice (24).
        assert_eq!(tx.push(Bytes::from_static(&[3; 5])), Err(Refused::Full));
        tx.push(Bytes::from_static(&[4; 1])).unwrap();
        assert_eq!(lock(&rx.queue.state).bytes, 10 + 9 + 1);
        let batch = rx.take_now();
        assert_eq!(batch[1], dropped_notice(2));
        rx.written(batch.iter().map(Bytes::len).sum());
        assert_eq!(lock(&rx.queue.state).bytes, 0);
    }

    #[test]
    fn a_closed_queue_counts_nothing() {
        let (tx, mut rx) = outbox(1, 1 << 20);
        rx.close_into(&mut Vec::new());
        assert_eq!(tx.push(frame("a")), Err(Refused::Closed));
        assert_eq!(tx.try_send(frame("b")), Err(Refused::Closed));
        assert_eq!(lock(&rx.queue.state).dropped, 0);
    }

    #[test]
    fn the_count_saturates() {
        let (tx, mut rx) = outbox(1, 1 << 20);
        tx.push(frame("a")).unwrap();
        lock(&rx.queue.state).dropped = u32::MAX - 1;
        assert_eq!(tx.push(frame("b")), Err(Refused::Full));
        assert_eq!(tx.push(frame("c")), Err(Refused::Full));
        rx.take_now();
        tx.push(frame("d")).unwrap();
        assert_eq!(rx.take_now(), vec![dropped_notice(u32::MAX), frame("d")]);
    }
}
