//! The member list a joiner receives: split over as many `Members` frames as it takes for
//! each to fit the frame limit every client accepts, however large the room and however
//! small `max_payload`.

use super::codec::{encode_into, FRAME_OVERHEAD, MAX_REASON_LEN};
use super::message::ServerFrame;
use bytes::BytesMut;
use uuid::Uuid;

/// A `Members` body without its ids: the tag, the two length prefixes and the `more` flag.
const MEMBERS_FIXED_LEN: usize = 1 + 8 + 8 + 1;

/// The most member ids one `Members` frame carries for a room id of `room_id_len` bytes, on
/// a relay with this `max_payload`: as many as fit a body of
/// `max(max_payload, MAX_REASON_LEN) + FRAME_OVERHEAD` bytes, the limit every client applies
/// to the relay's frames. At least 2 for any room a client can join (its id is at most
/// `max_payload` bytes), and never 0.
pub fn members_per_frame(room_id_len: usize, max_payload: usize) -> usize {
    let max_body = max_payload.max(MAX_REASON_LEN) + FRAME_OVERHEAD;
    (max_body.saturating_sub(MEMBERS_FIXED_LEN + room_id_len) / 16).max(1)
}

/// Appends the member list `ids` of `room_id` to `out`, as `Members` frames of at most
/// [`members_per_frame`] ids each, every frame but the last with `more = true`. An empty
/// list is one frame with no ids.
pub fn encode_members(room_id: &str, ids: &[Uuid], max_payload: usize, out: &mut BytesMut) {
    let per_frame = members_per_frame(room_id.len(), max_payload);
    let frames = ids.len().div_ceil(per_frame).max(1);
    out.reserve(frames * (4 + MEMBERS_FIXED_LEN + room_id.len()) + ids.len() * 16);
    let mut chunk = Vec::with_capacity(per_frame.min(ids.len()) * 16);
    let mut parts = ids.chunks(per_frame);
    for i in 0..frames {
        // The one frame of an empty list has no part.
        let part = parts.next().unwrap_or_default();
        chunk.clear();
        for id in part {
            chunk.extend_from_slice(id.as_bytes());
        }
        encode_into(
            &ServerFrame::Members {
                room_id,
                client_ids: &chunk,
                more: i + 1 < frames,
            },
            out,
        );
    }
}

/// Splits the `client_ids` of a [`ServerFrame::Members`] into ids; a trailing partial id
/// (which a well-behaved relay never sends) is ignored.
pub fn member_ids(client_ids: &[u8]) -> impl Iterator<Item = Uuid> + '_ {
    client_ids.chunks_exact(16).map(|chunk| {
        let mut id = [0; 16];
        id.copy_from_slice(chunk);
        Uuid::from_bytes(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_frame, FrameReader};

    /// Decodes every frame of `out` with the limit a client uses for this `max_payload`.
    fn frames(out: BytesMut, max_payload: usize) -> Vec<(String, Vec<Uuid>, bool)> {
        let reader = FrameReader::for_payload(max_payload.max(MAX_REASON_LEN));
        let mut buf = out;
        let mut seen = Vec::new();
        while let Some(body) = reader
            .next_frame(&mut buf)
            .expect("within the client's limit")
        {
            match decode_frame::<ServerFrame<'_>>(&body).expect("a Members frame") {
                ServerFrame::Members {
                    room_id,
                    client_ids,
                    more,
                } => seen.push((room_id.to_owned(), member_ids(client_ids).collect(), more)),
                other => panic!("not a Members frame: {other:?}"),
            }
        }
        assert!(buf.is_empty(), "only whole frames");
        seen
    }

    #[test]
    fn an_empty_room_is_one_frame_without_ids() {
        let mut out = BytesMut::new();
        encode_members("lobby", &[], 1024, &mut out);
        assert_eq!(frames(out, 1024), vec![("lobby".to_owned(), vec![], false)]);
    }

    #[test]
    fn a_big_room_is_split_into_frames_a_tiny_limit_accepts_in_order() {
        // A 1-byte max_payload and a room id as long as the Join limit lets any be.
        for (room_id, max_payload) in [("r".to_owned(), 1), ("r".repeat(1024), 1024)] {
            let ids: Vec<Uuid> = (0..5000u128).map(Uuid::from_u128).collect();
            let mut out = BytesMut::new();
            encode_members(&room_id, &ids, max_payload, &mut out);
            let seen = frames(out, max_payload);
            let per_frame = members_per_frame(room_id.len(), max_payload);
            assert!(per_frame >= 2);
            assert_eq!(seen.len(), 5000usize.div_ceil(per_frame));
            let (last, rest) = seen.split_last().unwrap();
            assert!(
                !last.2 && rest.iter().all(|frame| frame.2),
                "more on all but the last"
            );
            assert!(seen.iter().all(|frame| frame.0 == room_id));
            let all: Vec<Uuid> = seen.into_iter().flat_map(|frame| frame.1).collect();
            assert_eq!(all, ids);
        }
    }

    #[test]
    fn a_full_frame_is_exactly_at_the_limit() {
        let per_frame = members_per_frame(5, 1024);
        let mut out = BytesMut::new();
        let ids: Vec<Uuid> = (0..per_frame as u128).map(Uuid::from_u128).collect();
        encode_members("lobby", &ids, 1024, &mut out);
        let body = out.len() - 4;
        assert!(body <= 1024 + FRAME_OVERHEAD);
        assert!(
            body + 16 > 1024 + FRAME_OVERHEAD,
            "one more id would not fit"
        );
    }
}
