//! The bytes a reader must refuse (or keep waiting on), as the test builds them: each vector
//! of `reject.txt` by name, with what the real reader and decoder must make of it.

use crate::table::DEFAULT_MAX_BODY;
use ghost_sync::protocol::{FRAME_OVERHEAD, MAX_REASON_LEN};

/// What a reader must do with a reject vector's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The length prefix is over the limit: refused before any body byte is read.
    TooLarge,
    /// One whole frame that does not decode, with the codec's words.
    Malformed(&'static str),
    /// Not a whole frame yet: the reader keeps the bytes and waits for more.
    Incomplete,
}

/// A vector of bytes a reader refuses (or waits on).
pub struct Reject {
    pub name: &'static str,
    pub meaning: &'static str,
    /// Who sent the bytes: `client` or `server`.
    pub direction: &'static str,
    /// The largest body the reader accepts.
    pub limit: usize,
    /// The bytes in groups, one `hex:` line each, for the reader's eye.
    pub hex: &'static [&'static str],
    pub refusal: Refusal,
}

/// Every reject vector.
pub fn reject() -> Vec<Reject> {
    use Refusal::*;
    let relay = DEFAULT_MAX_BODY;
    let r = |name, meaning, direction, hex, refusal| Reject {
        name,
        meaning,
        direction,
        limit: relay,
        hex,
        refusal,
    };
    vec![
        r(
            "empty_frame",
            "A length prefix of 0: every frame holds at least a tag",
            "client",
            &["00000000"],
            Malformed("malformed frame: a frame of 0 bytes: every frame holds at least a message tag"),
        ),
        r(
            "client_unknown_tag",
            "A client frame with tag 0x2a, which names no client message",
            "client",
            &["00000001", "2a"],
            Malformed("malformed frame: unknown client message tag 0x2a"),
        ),
        r(
            "client_server_only_tag",
            "A client frame with tag 0x0b, which is Members in the server's tag space only",
            "client",
            &["00000001", "0b"],
            Malformed("malformed frame: unknown client message tag 0x0b"),
        ),
        r(
            "server_unknown_tag",
            "A server frame with tag 0x11, one past the last server message of version 2",
            "server",
            &["00000001", "11"],
            Malformed("malformed frame: unknown relay message tag 0x11"),
        ),
        r(
            "leave_trailing_byte",
            "A Leave with one byte after it: bytes left over after the message",
            "client",
            &["00000002", "02", "00"],
            Malformed(
                "malformed frame: bytes left over after a Leave: the body of 2 bytes is longer than its fields",
            ),
        ),
        r(
            "welcome_trailing_byte",
            "A Welcome (body 35 bytes) with a 36th byte",
            "server",
            &[
                "00000024",
                "00",
                "00112233445566778899aabbccddeeff",
                "0200",
                "00000100",
                "c8320000",
                "0000000000000000",
                "00",
            ],
            Malformed(
                "malformed frame: bytes left over after a Welcome: the body of 36 bytes is longer than its fields",
            ),
        ),
        r(
            "hello_version_1",
            "A version 1 Hello (tag, version 1, credentials; no resume field): it does not decode as version 2, so the relay reads the version first and answers Rejected code 3 UnsupportedVersion",
            "client",
            &["0000000b", "00", "0100", "0000000000000000"],
            Malformed(
                "malformed frame: a Hello (tag 0x00) cut short: a body of 11 bytes is too short for its fields, or a length prefix in it runs past its end",
            ),
        ),
        r(
            "hello_cut_short",
            "A Hello whose body ends in the middle of its version",
            "client",
            &["00000002", "00", "01"],
            Malformed(
                "malformed frame: a Hello (tag 0x00) cut short: a body of 2 bytes is too short for its fields, or a length prefix in it runs past its end",
            ),
        ),
        r(
            "broadcast_length_past_end",
            "A Broadcast whose data length (9) runs past the end of the body (1 byte left)",
            "client",
            &["0000000a", "03", "0900000000000000", "01"],
            Malformed(
                "malformed frame: a Broadcast (tag 0x03) cut short: a body of 10 bytes is too short for its fields, or a length prefix in it runs past its end",
            ),
        ),
        r(
            "broadcast_length_u64_max",
            "A Broadcast whose data length is 2^64 - 1: a decoder must not trust it, nor reserve memory for it",
            "client",
            &["00000009", "03", "ffffffffffffffff"],
            Malformed(
                "malformed frame: a Broadcast (tag 0x03) cut short: a body of 9 bytes is too short for its fields, or a length prefix in it runs past its end",
            ),
        ),
        r(
            "join_without_data",
            "A Join that ends after its room id: the data field (at least its 8-byte length) is missing",
            "client",
            &["0000000e", "01", "0500000000000000", "6c6f626279"],
            Malformed(
                "malformed frame: a Join (tag 0x01) cut short: a body of 14 bytes is too short for its fields, or a length prefix in it runs past its end",
            ),
        ),
        r(
            "join_room_invalid_utf8",
            "A Join whose room id is \"lobby\" with its first byte 0xff, which is never UTF-8",
            "client",
            &[
                "00000016",
                "01",
                "0500000000000000",
                "ff6f626279",
                "0000000000000000",
            ],
            Malformed("malformed frame: the room id of a Join is not valid UTF-8"),
        ),
        r(
            "join_room_utf8_surrogate",
            "A Join whose room id is ed a0 80, a UTF-16 surrogate (U+D800) in UTF-8 form: not valid UTF-8 (CESU-8 / WTF-8 decoders accept it)",
            "client",
            &[
                "00000014",
                "01",
                "0300000000000000",
                "eda080",
                "0000000000000000",
            ],
            Malformed("malformed frame: the room id of a Join is not valid UTF-8"),
        ),
        r(
            "join_room_overlong_utf8",
            "A Join whose room id is c0 80, an overlong NUL (Java's modified UTF-8): not valid UTF-8",
            "client",
            &[
                "00000013",
                "01",
                "0200000000000000",
                "c080",
                "0000000000000000",
            ],
            Malformed("malformed frame: the room id of a Join is not valid UTF-8"),
        ),
        r(
            "error_message_invalid_utf8",
            "An Error whose message is the lone byte 0xff",
            "server",
            &["0000000a", "07", "0100000000000000", "ff"],
            Malformed("malformed frame: the message of an Error is not valid UTF-8"),
        ),
        r(
            "members_more_is_2",
            "A Members frame whose more flag is 2: a bool is 0 or 1, nothing else",
            "server",
            &[
                "00000017",
                "0b",
                "0500000000000000",
                "6c6f626279",
                "0000000000000000",
                "02",
            ],
            Malformed("malformed frame: a flag of a Members is 2, not 0 or 1"),
        ),
        r(
            "prefix_over_limit",
            "A length prefix of 65601, one over the relay's default limit (max_payload 65536 + 64): refused from the 4 prefix bytes alone",
            "client",
            &["00010041"],
            TooLarge,
        ),
        r(
            "prefix_u32_max",
            "A length prefix of 2^32 - 1: refused from the prefix alone, nothing reserved",
            "client",
            &["ffffffff"],
            TooLarge,
        ),
        r(
            "prefix_at_limit_waits",
            "A length prefix of exactly 65600, the default limit: accepted, so the reader waits for the 65600 body bytes",
            "client",
            &["00010040"],
            Incomplete,
        ),
        r(
            "prefix_cut_short_waits",
            "Three bytes of a length prefix: the reader waits for the fourth",
            "client",
            &["000000"],
            Incomplete,
        ),
        r(
            "body_cut_short_waits",
            "A Hello (body 11 bytes) of which 3 body bytes have arrived: the reader waits (if the stream ends here, the connection broke mid-frame)",
            "client",
            &["0000000b", "00", "0100"],
            Incomplete,
        ),
        Reject {
            name: "client_limit_before_welcome",
            meaning: "A relay frame announcing 1089 bytes to a client that has no Welcome yet: its limit is MAX_REASON_LEN + 64 = 1088",
            direction: "server",
            limit: MAX_REASON_LEN + FRAME_OVERHEAD,
            hex: &["00000441"],
            refusal: TooLarge,
        },
    ]
}
