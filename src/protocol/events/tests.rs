//! Unit tests of [`EventDecoder`](super::EventDecoder): member lists over several frames,
//! their refusals, keepalive and goodbyes, zero-copy broadcast data.

use super::*;
use crate::protocol::{encode, encode_members, FrameReader, HEADER_LEN};
use bytes::BytesMut;

/// The body of `frame`, as a `FrameReader` hands it out.
fn body(frame: &ServerFrame<'_>) -> Bytes {
    encode(frame).slice(HEADER_LEN..)
}

/// Whether an error is the expected one.
type Expect = fn(&SyncError) -> bool;

fn ids(n: u128) -> Vec<Uuid> {
    (1..=n).map(Uuid::from_u128).collect()
}

fn members(room_id: &str, ids: &[Uuid], more: bool) -> Bytes {
    let raw: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
    body(&ServerFrame::Members {
        room_id,
        client_ids: &raw,
        more,
    })
}

#[test]
fn a_split_member_list_comes_as_one_event_on_its_last_frame() {
    let all = ids(5000);
    let mut out = BytesMut::new();
    // A 1-byte max_payload splits the list over many frames.
    encode_members("lobby", &all, 1, &mut out);
    let reader = FrameReader::for_payload(crate::protocol::MAX_REASON_LEN);
    let mut events = EventDecoder::new();
    let mut decoded = Vec::new();
    let mut frames = 0;
    while let Some(body) = reader.next_frame(&mut out).unwrap() {
        frames += 1;
        decoded.push(events.decode(&body).unwrap());
    }
    assert!(frames > 2, "the list was split");
    let (last, rest) = decoded.split_last().unwrap();
    assert!(rest.iter().all(Option::is_none), "{rest:?}");
    assert_eq!(
        last,
        &Some(Decoded::Event(ServerEvent::Members {
            room_id: "lobby".to_owned(),
            client_ids: all,
        }))
    );
}

#[test]
fn an_empty_room_is_an_empty_list() {
    let mut events = EventDecoder::new();
    assert_eq!(
        events.decode(&members("r", &[], false)).unwrap(),
        Some(Decoded::Event(ServerEvent::Members {
            room_id: "r".to_owned(),
            client_ids: vec![],
        }))
    );
}

#[test]
fn a_list_going_on_with_another_room_is_refused_and_the_next_list_reads() {
    let mut events = EventDecoder::new();
    assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
    let err = events.decode(&members("q", &ids(1), false)).unwrap_err();
    assert_eq!(
        err,
        EventError::MemberListRoom {
            room_id: "r".to_owned(),
            next_room_id: "q".to_owned()
        }
    );
    assert!(matches!(
        SyncError::from(err),
        SyncError::Protocol(why) if why == "the member list of r went on with the room q"
    ));
    assert_eq!(
        events.decode(&members("q", &ids(1), false)).unwrap(),
        Some(Decoded::Event(ServerEvent::Members {
            room_id: "q".to_owned(),
            client_ids: ids(1),
        }))
    );
}

#[test]
fn a_list_cut_by_another_frame_is_refused_and_that_frame_dropped() {
    // Any frame but a Disconnect, keepalive included.
    for cut in [
        body(&ServerFrame::Error { message: "x" }),
        body(&ServerFrame::Ping),
        body(&ServerFrame::Joined {
            client_id: Uuid::from_u128(9),
            room_id: "r",
        }),
    ] {
        let mut events = EventDecoder::new();
        assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
        let err = events.decode(&cut).unwrap_err();
        assert_eq!(
            err,
            EventError::MemberListCut {
                room_id: "r".to_owned()
            }
        );
        assert!(matches!(
            SyncError::from(err),
            SyncError::Protocol(why) if why == "the member list of r was cut short by another frame"
        ));
        // Given up: a last frame alone is a list of its own.
        assert_eq!(
            events.decode(&members("r", &ids(1), false)).unwrap(),
            Some(Decoded::Event(ServerEvent::Members {
                room_id: "r".to_owned(),
                client_ids: ids(1),
            }))
        );
    }
}

#[test]
fn a_disconnect_in_the_middle_of_a_list_drops_the_list() {
    let mut events = EventDecoder::new();
    assert_eq!(events.decode(&members("r", &ids(2), true)).unwrap(), None);
    let bye = body(&ServerFrame::Disconnect {
        code: DisconnectCode::SlowConsumer as u8,
        message: "slow",
    });
    assert_eq!(
        events.decode(&bye).unwrap(),
        Some(Decoded::Disconnect(Goodbye {
            code: DisconnectCode::SlowConsumer as u8,
            message: "slow".to_owned(),
        }))
    );
    assert_eq!(
        events.decode(&members("q", &[], false)).unwrap(),
        Some(Decoded::Event(ServerEvent::Members {
            room_id: "q".to_owned(),
            client_ids: vec![],
        }))
    );
}

#[test]
fn a_malformed_frame_leaves_a_list_under_way_alone() {
    let mut events = EventDecoder::new();
    assert_eq!(events.decode(&members("r", &ids(1), true)).unwrap(), None);
    let err = events
        .decode(&Bytes::from_static(&[0xEE, 0xEE]))
        .unwrap_err();
    assert!(matches!(
        err,
        EventError::Malformed(FrameError::Malformed(_))
    ));
    assert!(matches!(
        SyncError::from(err),
        SyncError::Protocol(why) if why == "malformed frame: unknown relay message tag 0xee"
    ));
    assert_eq!(
        events
            .decode(&members("r", &[Uuid::from_u128(2)], false))
            .unwrap(),
        Some(Decoded::Event(ServerEvent::Members {
            room_id: "r".to_owned(),
            client_ids: ids(2),
        }))
    );
}

#[test]
fn a_list_past_the_limit_is_refused() {
    let mut events = EventDecoder::new();
    let chunk = vec![0u8; 16 * (EventDecoder::MAX_MEMBER_LIST / 2)];
    let part = body(&ServerFrame::Members {
        room_id: "r",
        client_ids: &chunk,
        more: true,
    });
    assert_eq!(events.decode(&part).unwrap(), None);
    assert_eq!(events.decode(&part).unwrap(), None);
    let one = members("r", &ids(1), false);
    let err = events.decode(&one).unwrap_err();
    assert_eq!(
        err,
        EventError::MemberListTooLong {
            max: EventDecoder::MAX_MEMBER_LIST
        }
    );
    assert_eq!(err.to_string(), "a member list longer than 1048576 ids");
    // Given up and reported once.
    assert!(events.decode(&one).unwrap().is_some());
}

#[test]
fn keepalive_and_goodbye_are_for_the_caller() {
    let mut events = EventDecoder::new();
    assert_eq!(
        events.decode(&body(&ServerFrame::Ping)).unwrap(),
        Some(Decoded::Ping)
    );
    assert_eq!(
        events.decode(&body(&ServerFrame::Pong)).unwrap(),
        Some(Decoded::Pong)
    );
    let cases: [(DisconnectCode, Expect); 4] = [
        (DisconnectCode::IdleTimeout, |e| {
            matches!(e, SyncError::IdleTimeout)
        }),
        (
            DisconnectCode::Kicked,
            |e| matches!(e, SyncError::Kicked(why) if why == "bye"),
        ),
        (DisconnectCode::ServerShutdown, |e| {
            matches!(e, SyncError::ConnectionClosed)
        }),
        (
            DisconnectCode::Policy,
            |e| matches!(e, SyncError::Disconnected(why) if why == "bye"),
        ),
    ];
    for (code, expected) in cases {
        let Some(Decoded::Disconnect(goodbye)) = events
            .decode(&body(&ServerFrame::Disconnect {
                code: code as u8,
                message: "bye",
            }))
            .unwrap()
        else {
            panic!("not a goodbye");
        };
        assert_eq!(goodbye.kind(), Some(code));
        let err = SyncError::from(goodbye);
        assert!(expected(&err), "{code:?} became {err:?}");
    }
    let unknown = Goodbye {
        code: 200,
        message: "new".to_owned(),
    };
    assert_eq!(unknown.kind(), None);
    assert!(matches!(SyncError::from(unknown), SyncError::Disconnected(why) if why == "new"));
}

#[test]
fn handshake_frames_after_the_handshake_are_refused() {
    let mut events = EventDecoder::new();
    let err = events
        .decode(&body(&ServerFrame::Welcome {
            client_id: Uuid::nil(),
            version: 1,
            max_payload: 1024,
            ping_interval_ms: 1000,
            resume_token: &[],
        }))
        .unwrap_err();
    assert!(matches!(
        &err,
        EventError::Handshake(HandshakeFrame::Welcome {
            version: 1,
            max_payload: 1024,
            ..
        })
    ));
    // The text the client gave before: the frame as `ServerFrame` prints it.
    let welcome = ServerFrame::Welcome {
        client_id: Uuid::nil(),
        version: 1,
        max_payload: 1024,
        ping_interval_ms: 1000,
        resume_token: &[],
    };
    assert_eq!(
        err.to_string(),
        format!("unexpected handshake frame {welcome:?}")
    );
    let rejected = ServerFrame::Rejected {
        code: 2,
        message: "no",
    };
    let err = events.decode(&body(&rejected)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("unexpected handshake frame {rejected:?}")
    );
}

#[test]
fn broadcast_data_is_a_slice_of_the_body() {
    let payload = [7u8; 300];
    let frame = body(&ServerFrame::Broadcast {
        sender_id: Uuid::from_u128(3),
        data: &payload,
    });
    let mut events = EventDecoder::new();
    let Some(Decoded::Event(ServerEvent::Broadcast { sender_id, data })) =
        events.decode(&frame).unwrap()
    else {
        panic!("not a broadcast");
    };
    assert_eq!(sender_id, Uuid::from_u128(3));
    assert_eq!(&data[..], &payload[..]);
    // The same memory: the payload ends the body.
    let body_range = frame.as_ptr_range();
    let data_range = data.as_ptr_range();
    assert_eq!(data_range.end, body_range.end);
    assert_eq!(
        data_range.start as usize,
        body_range.end as usize - payload.len()
    );
}
