//! The vectors as Rust values: the source the files were generated from, and what the test
//! holds each vector of the files to, by name. Every value is fixed (ids, payloads, texts),
//! so the files never change unless the wire format does.

use ghost_sync::protocol::{ClientFrame, ServerFrame, FRAME_OVERHEAD, MAX_REASON_LEN};
use ghost_sync::Uuid;

/// The id of the worked examples of PROTOCOL.md.
pub const ID: Uuid = Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);
/// A second id, its bytes the first's reversed.
pub const OTHER: Uuid = Uuid::from_u128(0xffee_ddcc_bbaa_9988_7766_5544_3322_1100);

/// The resume token of the vectors: the bytes 00 to 0f.
pub const RESUME_TOKEN: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The relay's default `max_payload`.
pub const DEFAULT_MAX_PAYLOAD: u32 = 65_536;
/// The relay's frame limit with the default `max_payload`.
pub const DEFAULT_MAX_BODY: usize = DEFAULT_MAX_PAYLOAD as usize + FRAME_OVERHEAD;

/// The `max_payload` of the split member list below (any value up to `MAX_REASON_LEN` gives
/// a client the same frame limit, `MAX_REASON_LEN + FRAME_OVERHEAD`).
pub const SPLIT_MAX_PAYLOAD: usize = MAX_REASON_LEN;
/// Members in the split list: one more than a frame holds for "lobby" at that limit.
pub const SPLIT_MEMBERS: u128 = 67;

/// A room name as long as the default room-name policy allows (64 bytes).
pub const LONGEST_ROOM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A room name with 2- and 4-byte UTF-8 characters: 6 characters, 7 UTF-16 units, 10 bytes.
pub const UTF8_ROOM: &str = "café-🎮";

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn leak_bytes(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// The member ids 1..=`to` (`00000000-0000-0000-0000-0000000000nn`), concatenated.
pub fn member_ids(from: u128, to: u128) -> Vec<u8> {
    (from..=to)
        .flat_map(|n| *Uuid::from_u128(n).as_bytes())
        .collect()
}

/// An error text longer than `MAX_REASON_LEN` (a refusal quoting a huge room id) before the
/// relay clips it; the vector `error_clipped` holds what `clip_reason` makes of it.
pub fn long_reason() -> String {
    format!("room not found: {}", "x".repeat(2 * MAX_REASON_LEN))
}

/// A long error text whose `MAX_REASON_LEN`th byte falls inside a 2-byte character; the
/// vector `error_clipped_at_char_boundary` holds it clipped, 1 023 bytes.
pub fn long_reason_split_char() -> String {
    format!("room not found: x{}", "é".repeat(MAX_REASON_LEN))
}

/// Every client vector: name, meaning, value.
pub fn client() -> Vec<(&'static str, &'static str, ClientFrame<'static>)> {
    use ClientFrame::*;
    vec![
        (
            "hello",
            "Hello, protocol version 2, no credentials, no resume token (PROTOCOL.md section 10)",
            Hello {
                version: 2,
                credentials: b"",
                resume: b"",
            },
        ),
        (
            "hello_with_token",
            "Hello, version 2, with the credentials \"token-1234\" (opaque bytes, no terminator)",
            Hello {
                version: 2,
                credentials: b"token-1234",
                resume: b"",
            },
        ),
        (
            "hello_resume",
            "Hello, version 2, presenting the 16-byte resume token 00 01 .. 0f of an earlier Welcome; a relay that holds no seats answers Rejected code 6 ResumeFailed",
            Hello {
                version: 2,
                credentials: b"",
                resume: RESUME_TOKEN,
            },
        ),
        (
            "hello_version_3",
            "Hello from a version 3 client: the relay reads the version (body bytes 1..3) first and answers Rejected code 3 UnsupportedVersion",
            Hello {
                version: 3,
                credentials: b"",
                resume: b"",
            },
        ),
        (
            "join_lobby",
            "Join the room \"lobby\" with no data (PROTOCOL.md section 10)",
            Join {
                room_id: "lobby",
                data: b"",
            },
        ),
        (
            "join_lobby_with_data",
            "Join \"lobby\" with the data bytes \"pw=\" 00 ff (opaque to the protocol, shown to the join hook)",
            Join {
                room_id: "lobby",
                data: b"pw=\x00\xff",
            },
        ),
        (
            "join_longest_room",
            "Join a room whose name is 64 bytes, the longest the default room-name policy allows",
            Join {
                room_id: LONGEST_ROOM,
                data: b"",
            },
        ),
        (
            "join_utf8_room",
            "Join \"café-🎮\": the length counts UTF-8 bytes (10), not characters (6) or UTF-16 units (7)",
            Join {
                room_id: UTF8_ROOM,
                data: b"",
            },
        ),
        (
            "join_empty_room",
            "Join the room \"\": it decodes; the default policy answers Error(\"invalid room name: empty\")",
            Join {
                room_id: "",
                data: b"",
            },
        ),
        ("leave", "Leave the current room", Leave),
        (
            "broadcast_hi",
            "Broadcast the 2 bytes \"hi\" to the room (PROTOCOL.md section 10)",
            Broadcast { data: b"hi" },
        ),
        (
            "broadcast_empty",
            "Broadcast no bytes at all: a valid message, relayed as an empty Broadcast",
            Broadcast { data: b"" },
        ),
        (
            "broadcast_binary",
            "Broadcast the bytes 00 01 7f 80 ff: data is raw bytes, not text",
            Broadcast {
                data: b"\x00\x01\x7f\x80\xff",
            },
        ),
        (
            "ping",
            "Ping: the client asks for a Pong (server tag 9)",
            Ping,
        ),
        ("pong", "Pong: the answer to the relay's Ping", Pong),
        (
            "direct_one",
            "Direct \"hi\" to one member, 00112233-4455-6677-8899-aabbccddeeff: targets are 16-byte ids, concatenated",
            Direct {
                targets: ID.as_bytes(),
                data: b"hi",
            },
        ),
        (
            "direct_two",
            "Direct \"hi\" to two members: 32 bytes of targets",
            Direct {
                targets: leak_bytes([*ID.as_bytes(), *OTHER.as_bytes()].concat()),
                data: b"hi",
            },
        ),
        (
            "keyed",
            "Keyed: the latest state of key 7 is \"hi\" (PROTOCOL.md section 10)",
            Keyed { key: 7, data: b"hi" },
        ),
        (
            "set_state",
            "SetState: the room-state entry \"map\" is \"dust\"",
            SetState {
                key: "map",
                value: b"dust",
            },
        ),
        (
            "set_state_delete",
            "SetState with an empty value: delete the entry \"map\"",
            SetState {
                key: "map",
                value: b"",
            },
        ),
        (
            "bye",
            "Bye: the client is leaving for good (PROTOCOL.md section 10)",
            Bye,
        ),
    ]
}

/// Every server vector: name, meaning, value.
pub fn server() -> Vec<(&'static str, &'static str, ServerFrame<'static>)> {
    use ServerFrame::*;
    let split_first = leak_bytes(member_ids(1, SPLIT_MEMBERS - 1));
    let split_last = leak_bytes(member_ids(SPLIT_MEMBERS, SPLIT_MEMBERS));
    let clipped = leak(ghost_sync::protocol::clip_reason(&long_reason()).to_owned());
    let clipped_split =
        leak(ghost_sync::protocol::clip_reason(&long_reason_split_char()).to_owned());
    let rejected = |code, message| Rejected { code, message };
    let disconnect = |code, message| Disconnect { code, message };
    vec![
        (
            "welcome",
            "Welcome: client id 00112233-4455-6677-8899-aabbccddeeff, version 2, the default max_payload 65536, the default ping interval 13000 ms, no resume token",
            Welcome {
                client_id: ID,
                version: 2,
                max_payload: DEFAULT_MAX_PAYLOAD,
                ping_interval_ms: 13_000,
                resume_token: b"",
            },
        ),
        (
            "welcome_largest_payload",
            "Welcome with the largest max_payload a relay may announce, 16 MiB (16777216)",
            Welcome {
                client_id: OTHER,
                version: 2,
                max_payload: 16 * 1024 * 1024,
                ping_interval_ms: 13_000,
                resume_token: b"",
            },
        ),
        (
            "welcome_with_resume_token",
            "Welcome from a relay that holds seats: ping interval 1000 ms, and the 16-byte resume token 00 01 .. 0f",
            Welcome {
                client_id: ID,
                version: 2,
                max_payload: DEFAULT_MAX_PAYLOAD,
                ping_interval_ms: 1_000,
                resume_token: RESUME_TOKEN,
            },
        ),
        (
            "rejected_server_full",
            "Rejected, code 0 ServerFull (PROTOCOL.md section 10)",
            rejected(0, "connection limit of 128 reached"),
        ),
        (
            "rejected_connect_rejected",
            "Rejected, code 1 ConnectRejected: the application's on_connect hook refused",
            rejected(1, "connection rejected by the server"),
        ),
        (
            "rejected_auth_failed",
            "Rejected, code 2 AuthFailed, with the validator's reason",
            rejected(2, "token expired"),
        ),
        (
            "rejected_unsupported_version",
            "Rejected, code 3 UnsupportedVersion: the answer to hello_version_3, and to a version 1 Hello (reject vector hello_version_1)",
            rejected(3, "protocol version 3 not supported; this relay speaks 2"),
        ),
        (
            "rejected_protocol",
            "Rejected, code 4 Protocol: no Hello within the handshake deadline",
            rejected(4, "no hello in time"),
        ),
        (
            "rejected_shutting_down",
            "Rejected, code 5 ShuttingDown",
            rejected(5, "server shutting down"),
        ),
        (
            "rejected_resume_failed",
            "Rejected, code 6 ResumeFailed: the answer to hello_resume from a relay that holds no seats",
            rejected(6, "resume is off on this relay"),
        ),
        (
            "rejected_resume_expired",
            "Rejected, code 6 ResumeFailed: the seat the token named was held longer than resume_window and has ended",
            rejected(6, "resume token expired"),
        ),
        (
            "rejected_unknown_code",
            "Rejected with code 200, unknown to version 2: it decodes; a client treats it as a protocol error",
            rejected(200, "a reason from a newer relay"),
        ),
        (
            "joined_lobby",
            "Joined \"lobby\"; client_id is the receiver's own id (PROTOCOL.md section 10)",
            Joined {
                client_id: ID,
                room_id: "lobby",
            },
        ),
        (
            "joined_utf8_room",
            "Joined \"café-🎮\" (10 bytes of UTF-8)",
            Joined {
                client_id: ID,
                room_id: UTF8_ROOM,
            },
        ),
        (
            "members_empty",
            "Members of \"lobby\" right after the Joined: nobody else, the whole list (an empty room is one frame)",
            Members {
                room_id: "lobby",
                client_ids: b"",
                more: false,
            },
        ),
        (
            "members_one",
            "Members of \"lobby\": one other member, 00112233-4455-6677-8899-aabbccddeeff, the whole list (PROTOCOL.md section 10)",
            Members {
                room_id: "lobby",
                client_ids: ID.as_bytes(),
                more: false,
            },
        ),
        (
            "members_two",
            "Members of \"lobby\": two other members, the whole list",
            Members {
                room_id: "lobby",
                client_ids: leak_bytes([*ID.as_bytes(), *OTHER.as_bytes()].concat()),
                more: false,
            },
        ),
        (
            "members_split_first",
            "First frame of a 67-member list of \"lobby\" from a relay with max_payload <= 1024: 66 ids (00000000-0000-0000-0000-000000000001 to ...42), the most a frame holds, and more = true",
            Members {
                room_id: "lobby",
                client_ids: split_first,
                more: true,
            },
        ),
        (
            "members_split_last",
            "Second and last frame of that list: the 67th id (...43), more = false",
            Members {
                room_id: "lobby",
                client_ids: split_last,
                more: false,
            },
        ),
        (
            "left_lobby",
            "Left \"lobby\": the answer to Leave (PROTOCOL.md section 10)",
            Left { room_id: "lobby" },
        ),
        (
            "player_joined",
            "PlayerJoined: 00112233-4455-6677-8899-aabbccddeeff joined the receiver's room (PROTOCOL.md section 10)",
            PlayerJoined { client_id: ID },
        ),
        (
            "player_left",
            "PlayerLeft: 00112233-4455-6677-8899-aabbccddeeff left the receiver's room (PROTOCOL.md section 10)",
            PlayerLeft { client_id: ID },
        ),
        (
            "broadcast_hi",
            "Broadcast \"hi\" from 00112233-4455-6677-8899-aabbccddeeff (PROTOCOL.md section 10)",
            Broadcast {
                sender_id: ID,
                data: b"hi",
            },
        ),
        (
            "broadcast_empty",
            "Broadcast of no bytes from ffeeddcc-bbaa-9988-7766-554433221100",
            Broadcast {
                sender_id: OTHER,
                data: b"",
            },
        ),
        (
            "broadcast_from_server",
            "Broadcast \"tick\" whose sender is the nil id: sent by the server itself",
            Broadcast {
                sender_id: Uuid::nil(),
                data: b"tick",
            },
        ),
        (
            "error_not_in_a_room",
            "Error \"not in a room\": the answer to Leave or Broadcast outside a room",
            Error {
                message: "not in a room",
            },
        ),
        (
            "error_room_not_found",
            "Error \"room not found: lobby\" (PROTOCOL.md section 10)",
            Error {
                message: "room not found: lobby",
            },
        ),
        (
            "error_clipped",
            "Error of exactly 1024 bytes, MAX_REASON_LEN: \"room not found: \" and 1008 \"x\", a longer text clipped by the relay",
            Error { message: clipped },
        ),
        (
            "error_clipped_at_char_boundary",
            "Error clipped to 1023 bytes: \"room not found: x\" and 503 \"é\"; byte 1024 would split an \"é\", so the relay cuts before it",
            Error {
                message: clipped_split,
            },
        ),
        (
            "ping",
            "Ping: the client must answer Pong (client tag 5) before the relay's next ping tick",
            Ping,
        ),
        ("pong", "Pong: the answer to the client's Ping", Pong),
        (
            "disconnect_idle_timeout",
            "Disconnect, code 0 IdleTimeout (PROTOCOL.md section 10)",
            disconnect(0, "idle timeout"),
        ),
        (
            "disconnect_ping_timeout",
            "Disconnect, code 1 PingTimeout",
            disconnect(1, "ping timeout"),
        ),
        (
            "disconnect_payload_too_large",
            "Disconnect, code 2 PayloadTooLarge: the answer to reject vector prefix_over_limit after the handshake",
            disconnect(2, "frame of 65601 bytes exceeds the limit of 65600 bytes"),
        ),
        (
            "disconnect_protocol",
            "Disconnect, code 3 Protocol: the answer to reject vector client_unknown_tag",
            disconnect(3, "malformed frame: unknown client message tag 0x2a"),
        ),
        (
            "disconnect_kicked",
            "Disconnect, code 4 Kicked, with the reason the server owner gave",
            disconnect(4, "cheating"),
        ),
        (
            "disconnect_server_shutdown",
            "Disconnect, code 5 ServerShutdown (PROTOCOL.md section 10)",
            disconnect(5, "server shutting down"),
        ),
        (
            "disconnect_internal",
            "Disconnect, code 6 Internal: the client's pipeline failed inside the relay",
            disconnect(6, "the server's on_join hook failed"),
        ),
        (
            "disconnect_slow_consumer",
            "Disconnect, code 7 SlowConsumer",
            disconnect(7, "slow consumer"),
        ),
        (
            "disconnect_policy",
            "Disconnect, code 8 Policy: a policy layer ended the session",
            disconnect(8, "disconnected: rate limit exceeded 10 times"),
        ),
        (
            "disconnect_replaced",
            "Disconnect, code 9 Replaced: the seat was resumed on another connection, which took it over",
            disconnect(9, "resumed on another connection"),
        ),
        (
            "disconnect_unknown_code",
            "Disconnect with code 200, unknown to version 2: it decodes; a client reports it as a disconnection with this message",
            disconnect(200, "a reason from a newer relay"),
        ),
        (
            "direct",
            "Direct \"hi\" from 00112233-4455-6677-8899-aabbccddeeff, to the receiver alone or to a list that includes it",
            Direct {
                sender_id: ID,
                data: b"hi",
            },
        ),
        (
            "direct_from_server",
            "Direct \"tick\" whose sender is the nil id: sent by the server itself",
            Direct {
                sender_id: Uuid::nil(),
                data: b"tick",
            },
        ),
        (
            "keyed",
            "Keyed: the latest state of key 7 from 00112233-4455-6677-8899-aabbccddeeff is \"hi\"",
            Keyed {
                sender_id: ID,
                key: 7,
                data: b"hi",
            },
        ),
        (
            "state",
            "State: the room-state entry \"map\" is \"dust\", set by 00112233-4455-6677-8899-aabbccddeeff",
            State {
                owner: ID,
                key: "map",
                value: b"dust",
            },
        ),
        (
            "state_from_server",
            "State: the entry \"round\" is \"3\", set by the server (nil owner)",
            State {
                owner: Uuid::nil(),
                key: "round",
                value: b"3",
            },
        ),
        (
            "state_deleted",
            "State with an empty value: the entry \"map\" was deleted",
            State {
                owner: ID,
                key: "map",
                value: b"",
            },
        ),
        (
            "dropped",
            "Dropped: 6 frames for the receiver were dropped since the last notice (PROTOCOL.md section 10)",
            Dropped { count: 6 },
        ),
        (
            "dropped_saturated",
            "Dropped with the count saturated at 4294967295 (u32::MAX): at least that many",
            Dropped { count: u32::MAX },
        ),
        (
            "resumed",
            "Resumed, missed 0: every frame queued during the hold came before it (PROTOCOL.md section 10)",
            Resumed { missed: 0 },
        ),
        (
            "resumed_missed",
            "Resumed, missed 5: the hold lost 5 frames to the queue's budgets",
            Resumed { missed: 5 },
        ),
    ]
}
