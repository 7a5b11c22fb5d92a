//! Unit tests of a room: fan-out, capacity, the member list of a joiner.

use super::*;
use crate::protocol::{decode_frame, FrameReader};

fn member(n: u128, capacity: usize) -> (Member, crate::outbox::Inbox) {
    let (tx, rx) = crate::outbox::outbox(capacity, 1 << 20);
    (
        Member {
            id: Uuid::from_u128(n),
            outbox: tx,
        },
        rx,
    )
}

#[test]
fn a_broadcast_shares_one_buffer_and_skips_the_sender() {
    let room = Room::new("r", RoomOptions::default());
    let (a, mut ra) = member(1, 4);
    let (b, mut rb) = member(2, 4);
    room.join(a, &Bytes::new(), 1024).unwrap();
    room.join(b, &Bytes::new(), 1024).unwrap();
    while ra.try_recv().is_some() {} // a's Joined and Members, then b's PlayerJoined
    while rb.try_recv().is_some() {} // b's Joined and Members
    let frame = Bytes::from_static(b"frame");
    let (recipients, dropped) = room.broadcast(Uuid::from_u128(1), &frame, &mut Pending::default());
    assert_eq!((recipients, dropped.is_empty()), (1, true));
    let got = rb.try_recv().unwrap();
    assert_eq!(got.as_ptr(), frame.as_ptr(), "same buffer, not a copy");
    assert!(
        ra.try_recv().is_none(),
        "the sender does not get its own frame"
    );
}

#[test]
fn a_full_queue_drops_for_that_member_only() {
    let room = Room::new("r", RoomOptions::default());
    let (a, _ra) = member(1, 1);
    let (b, mut rb) = member(2, 8);
    let (c, _rc) = member(3, 8);
    room.join(a, &Bytes::new(), 1024).unwrap();
    room.join(b, &Bytes::new(), 1024).unwrap();
    room.join(c, &Bytes::new(), 1024).unwrap();
    // a's single slot already holds its Joined.
    let (_, dropped) = room.broadcast(
        Uuid::from_u128(3),
        &Bytes::from_static(b"x"),
        &mut Pending::default(),
    );
    assert_eq!(dropped, vec![Uuid::from_u128(1)]);
    while rb.try_recv().is_some() {}
}

#[test]
fn a_full_room_refuses_joins_and_counts_stay_exact() {
    let room = Room::new(
        "r",
        RoomOptions {
            max_clients: Some(2),
        },
    );
    let (a, _ra) = member(1, 8);
    let (b, _rb) = member(2, 8);
    let (c, _rc) = member(3, 8);
    room.join(a, &Bytes::new(), 1024).unwrap();
    room.join(b, &Bytes::new(), 1024).unwrap();
    assert_eq!(room.join(c, &Bytes::new(), 1024), Err(JoinRefused::Full));
    assert_eq!(room.len(), 2);
}

#[test]
fn a_joiner_is_told_who_is_already_there() {
    let room = Room::new("r", RoomOptions::default());
    let (a, _ra) = member(1, 8);
    let (b, mut rb) = member(2, 8);
    room.join(a, &Bytes::new(), 1024).unwrap();
    room.join(b, &Bytes::new(), 1024).unwrap();
    // One queue entry: b's Joined, then the list right behind it.
    let mut confirmation = BytesMut::from(&rb.try_recv().unwrap()[..]);
    assert!(rb.try_recv().is_none());
    let frames = FrameReader::for_payload(1024);
    let joined = frames.next_frame(&mut confirmation).unwrap().unwrap();
    assert!(matches!(
        decode_frame::<ServerFrame<'_>>(&joined).unwrap(),
        ServerFrame::Joined { client_id, room_id: "r" } if client_id == Uuid::from_u128(2)
    ));
    let list = frames.next_frame(&mut confirmation).unwrap().unwrap();
    assert!(confirmation.is_empty());
    match decode_frame::<ServerFrame<'_>>(&list).unwrap() {
        ServerFrame::Members {
            room_id,
            client_ids,
            more,
        } => {
            assert_eq!(room_id, "r");
            assert!(!more);
            let ids: Vec<_> = crate::protocol::member_ids(client_ids).collect();
            assert_eq!(ids, vec![Uuid::from_u128(1)]);
        }
        other => panic!("expected the member list, got {other:?}"),
    }
}

#[test]
fn a_deleted_room_refuses_joins() {
    let room = Room::new("r", RoomOptions::default());
    room.mark_deleted();
    let (a, _ra) = member(1, 1);
    assert_eq!(room.join(a, &Bytes::new(), 1024), Err(JoinRefused::Deleted));
    assert_eq!(room.len(), 0);
}
