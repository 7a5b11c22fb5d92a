//! Golden wire vectors: `tests/vectors/` holds every message of both directions as the exact
//! bytes of one frame, and bytes a reader must refuse, so that a port to another language can
//! check itself against the same bytes. These tests hold the Rust codec to them both ways
//! (decode the bytes into the expected value, encode the value into the bytes), keyed by name,
//! so that no vector can be added, changed or dropped silently.
//!
//! The files are generated from `table.rs` and `rejects.rs` by the real encoder and then committed: they are
//! the golden truth, and the tests only read them. After an intended change of the wire
//! format (or of the table), rewrite them with
//! `GHOST_SYNC_WRITE_VECTORS=1 cargo test -p ghost-sync --test wire_vectors` and review the diff.

mod doc_examples;
mod fields;
mod format;
mod generate;
mod rejects;
mod table;

use bytes::BytesMut;
use format::{Bad, Good};
use generate::{bad, generated, good_client, good_server};
use ghost_sync::protocol::{
    decode_frame, encode, encode_members, ClientFrame, DisconnectCode, FrameError, FrameReader,
    RejectCode, ServerFrame, WireMessage, FRAME_OVERHEAD, MAX_REASON_LEN,
};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

const CLIENT_FILE: &str = "client.txt";
const SERVER_FILE: &str = "server.txt";
const REJECT_FILE: &str = "reject.txt";
const JSON_FILE: &str = "vectors.json";

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(file: &str) -> String {
    let path = vectors_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The limit the relay applies to client vectors: its default one.
const RELAY_LIMIT: usize = table::DEFAULT_MAX_BODY;
/// The limit a client applies to server vectors before any `Welcome` (and with any
/// `max_payload` up to `MAX_REASON_LEN`): the smallest a client uses, so that a port's reader
/// reads every server vector whatever its configuration.
const CLIENT_LIMIT: usize = MAX_REASON_LEN + FRAME_OVERHEAD;

/// The one frame body of `bytes`, split off by the real frame reader with this limit.
fn body_of(name: &str, bytes: &[u8], limit: usize) -> bytes::Bytes {
    let mut buf = BytesMut::from(bytes);
    let body = FrameReader::new(limit)
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{name}: the frame reader refused it: {e}"))
        .unwrap_or_else(|| panic!("{name}: not a whole frame"));
    assert!(buf.is_empty(), "{name}: bytes after the frame");
    body
}

/// What the real reader and decoder make of a reject vector's bytes, in the file's words.
fn refuse(vector: &Bad) -> (String, Option<String>) {
    let mut buf = BytesMut::from(&vector.hex[..]);
    let body = match FrameReader::new(vector.limit).next_frame(&mut buf) {
        Err(err @ FrameError::TooLarge { .. }) => {
            return ("too_large".into(), Some(err.to_string()))
        }
        Err(err) => panic!("{}: the reader itself said {err}", vector.name),
        Ok(None) => {
            assert_eq!(
                buf.len(),
                vector.hex.len(),
                "{}: nothing taken",
                vector.name
            );
            return ("incomplete".into(), None);
        }
        Ok(Some(body)) => body,
    };
    assert!(
        buf.is_empty(),
        "{}: one frame, nothing after it",
        vector.name
    );
    let decoded = match vector.direction.as_str() {
        "client" => decode_frame::<ClientFrame<'_>>(&body).map(|f| format!("{f:?}")),
        "server" => decode_frame::<ServerFrame<'_>>(&body).map(|f| format!("{f:?}")),
        other => panic!("{}: direction {other:?}", vector.name),
    };
    match decoded {
        Err(err @ FrameError::Malformed(_)) => ("malformed".into(), Some(err.to_string())),
        Err(err) => panic!("{}: decoding said {err}", vector.name),
        Ok(frame) => panic!("{}: must be refused, but decoded as {frame}", vector.name),
    }
}

/// Fails unless the names of a file and of the table are the same, each once.
fn same_names<'a>(file: &str, in_file: impl Iterator<Item = &'a str>, in_table: &[&str]) {
    let mut seen = BTreeSet::new();
    for name in in_file {
        assert!(seen.insert(name), "{file}: vector {name} twice");
    }
    let table: BTreeSet<&str> = in_table.iter().copied().collect();
    assert_eq!(
        table.len(),
        in_table.len(),
        "{file}: a name twice in the table"
    );
    let missing: Vec<_> = table.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{file}: vectors without a file block: {missing:?}; blocks without a Rust value: {extra:?}"
    );
}

/// Checks a file of good vectors against the table both ways: each block's bytes decode to
/// the table's value (and its `message` / `field` lines describe that value), and the value
/// encodes to exactly the block's bytes.
fn check_good<T>(
    file: &str,
    limit: usize,
    table: &[(&'static str, &'static str, T)],
    decodes_to: impl Fn(&[u8], &T) -> Result<(), String>,
    describe: impl Fn(&str, &str, &T) -> Good,
) {
    let vectors = format::read_good(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let names: Vec<&str> = table.iter().map(|(name, _, _)| *name).collect();
    same_names(file, vectors.iter().map(|v| v.name.as_str()), &names);
    let by_name: HashMap<&str, _> = table.iter().map(|(n, m, v)| (*n, (*m, v))).collect();
    for vector in &vectors {
        let name = vector.name.as_str();
        let (meaning, value) = by_name[name];
        let body = body_of(name, &vector.hex, limit);
        if let Err(why) = decodes_to(&body, value) {
            panic!("{file} {name}: {why}");
        }
        let expected = describe(name, meaning, value);
        assert_eq!(
            vector.hex, expected.hex,
            "{file} {name}: the value encodes to other bytes"
        );
        assert_eq!(
            (&vector.message, &vector.fields),
            (&expected.message, &expected.fields),
            "{file} {name}: message and field lines"
        );
        assert_eq!(vector.meaning, meaning, "{file} {name}: meaning");
    }
}

#[test]
fn every_client_vector_decodes_to_its_value_and_its_value_encodes_to_its_bytes() {
    check_good(
        CLIENT_FILE,
        RELAY_LIMIT,
        &table::client(),
        |body, value| match decode_frame::<ClientFrame<'_>>(body) {
            Ok(decoded) if decoded == *value => Ok(()),
            Ok(decoded) => Err(format!("decodes to {decoded:?}, not {value:?}")),
            Err(err) => Err(err.to_string()),
        },
        good_client,
    );
}

#[test]
fn every_server_vector_decodes_to_its_value_and_its_value_encodes_to_its_bytes() {
    check_good(
        SERVER_FILE,
        CLIENT_LIMIT,
        &table::server(),
        |body, value| match decode_frame::<ServerFrame<'_>>(body) {
            Ok(decoded) if decoded == *value => Ok(()),
            Ok(decoded) => Err(format!("decodes to {decoded:?}, not {value:?}")),
            Err(err) => Err(err.to_string()),
        },
        good_server,
    );
}

#[test]
fn every_reject_vector_is_refused_the_way_its_file_says() {
    let vectors = format::read_bad(&read(REJECT_FILE)).unwrap_or_else(|e| panic!("{e}"));
    let table = rejects::reject();
    let names: Vec<&str> = table.iter().map(|r| r.name).collect();
    same_names(REJECT_FILE, vectors.iter().map(|v| v.name.as_str()), &names);
    for vector in &vectors {
        let (error, reason) = refuse(vector);
        assert_eq!(
            (error.as_str(), reason.as_deref()),
            (vector.error.as_str(), vector.reason.as_deref()),
            "{REJECT_FILE} {}: what the codec does with it",
            vector.name
        );
        // And the block is the table's vector, so the table cannot drift from the file.
        let (expected, _) = bad(table.iter().find(|r| r.name == vector.name).expect("named"));
        assert_eq!(
            vector, &expected,
            "{REJECT_FILE} {}: the block",
            vector.name
        );
    }
}

/// The tags a message enum knows, from the decoder's own table of names.
fn known_tags<T: WireMessage>() -> BTreeSet<u8> {
    (0..=u8::MAX)
        .filter(|&tag| T::name(tag).is_some())
        .collect()
}

#[test]
fn every_message_of_both_directions_and_every_code_has_a_vector() {
    // `fields::client` / `fields::server` match without a wildcard: a new variant does not
    // compile until it is described there. This catches a described variant without a vector.
    let client_tags: BTreeSet<u8> = table::client()
        .iter()
        .map(|(_, _, frame)| encode(frame)[4])
        .collect();
    assert_eq!(client_tags, known_tags::<ClientFrame<'_>>());
    let server = table::server();
    let server_tags: BTreeSet<u8> = server.iter().map(|(_, _, f)| encode(f)[4]).collect();
    assert_eq!(server_tags, known_tags::<ServerFrame<'_>>());

    let mut rejected = BTreeSet::new();
    let mut disconnects = BTreeSet::new();
    for (_, _, frame) in &server {
        match *frame {
            ServerFrame::Rejected { code, .. } => rejected.insert(code),
            ServerFrame::Disconnect { code, .. } => disconnects.insert(code),
            _ => false,
        };
    }
    for code in 0..=u8::MAX {
        if RejectCode::from_u8(code).is_some() {
            assert!(
                rejected.contains(&code),
                "no Rejected vector of code {code}"
            );
        }
        if DisconnectCode::from_u8(code).is_some() {
            assert!(
                disconnects.contains(&code),
                "no Disconnect vector of code {code}"
            );
        }
    }
    assert!(
        rejected.iter().any(|&c| RejectCode::from_u8(c).is_none())
            && disconnects
                .iter()
                .any(|&c| DisconnectCode::from_u8(c).is_none()),
        "a vector of an unknown code of each kind"
    );
}

#[test]
fn a_long_member_list_is_split_exactly_as_the_two_split_vectors() {
    let ids: Vec<ghost_sync::Uuid> = (1..=table::SPLIT_MEMBERS)
        .map(ghost_sync::Uuid::from_u128)
        .collect();
    let mut out = BytesMut::new();
    encode_members("lobby", &ids, table::SPLIT_MAX_PAYLOAD, &mut out);
    let vectors = format::read_good(&read(SERVER_FILE)).expect("server vectors");
    let hex = |name: &str| {
        vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .hex
            .clone()
    };
    let expected = [hex("members_split_first"), hex("members_split_last")].concat();
    assert_eq!(&out[..], &expected[..]);
}

#[test]
fn the_clipped_error_vectors_are_what_the_relay_makes_of_a_long_reason() {
    let clipped = ghost_sync::protocol::clip_reason;
    let (long, split) = (table::long_reason(), table::long_reason_split_char());
    let message = |name: &str| match table::server()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, frame)| frame)
    {
        Some(ServerFrame::Error { message }) => message,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(message("error_clipped"), clipped(&long));
    assert_eq!(message("error_clipped").len(), 1024);
    assert_eq!(message("error_clipped_at_char_boundary"), clipped(&split));
    assert_eq!(message("error_clipped_at_char_boundary").len(), 1023);
}

#[test]
fn the_files_are_exactly_what_the_table_generates() {
    let write = std::env::var_os("GHOST_SYNC_WRITE_VECTORS").is_some_and(|v| v == "1");
    for (file, text) in generated() {
        let path = vectors_dir().join(file);
        if write {
            // Write then rename, so that the tests reading the files meanwhile see either
            // version whole.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &text).expect("write the vectors");
            std::fs::rename(&tmp, &path).expect("replace the vectors");
            continue;
        }
        assert!(
            read(file) == text,
            "{} is not what tests/wire_vectors/ generates (hand-edited, or the table \
             changed); if the change is intended, rewrite the files with \
             GHOST_SYNC_WRITE_VECTORS=1 and review the diff",
            path.display()
        );
    }
}

#[test]
fn the_json_twin_holds_the_same_vectors_as_the_text_files() {
    // The generator writes both from the same records; this reads them back independently.
    let json: serde_json::Value = serde_json::from_str(&read(JSON_FILE)).expect("valid JSON");
    for (key, file) in [("client", CLIENT_FILE), ("server", SERVER_FILE)] {
        let text = format::read_good(&read(file)).expect("text vectors");
        let listed = json[key].as_array().expect("an array");
        assert_eq!(listed.len(), text.len(), "{key}: as many vectors");
        for (entry, vector) in listed.iter().zip(&text) {
            assert_eq!(entry["name"], vector.name.as_str());
            assert_eq!(entry["meaning"], vector.meaning.as_str());
            assert_eq!(entry["message"], vector.message.as_str());
            let hex = fields::unhex(entry["hex"].as_str().expect("hex")).expect("hex");
            assert_eq!(hex, vector.hex, "{key} {}", vector.name);
            let fields = entry["fields"].as_array().expect("fields");
            assert_eq!(fields.len(), vector.fields.len());
            for (field, expected) in fields.iter().zip(&vector.fields) {
                assert_eq!(field["name"], expected.name.as_str());
                assert_eq!(field["type"], expected.value.type_name());
                assert_eq!(field["value"], expected.value.json());
            }
        }
    }
    let text = format::read_bad(&read(REJECT_FILE)).expect("reject vectors");
    let listed = json["reject"].as_array().expect("an array");
    assert_eq!(listed.len(), text.len());
    for (entry, vector) in listed.iter().zip(&text) {
        assert_eq!(entry["name"], vector.name.as_str());
        let hex = fields::unhex(entry["hex"].as_str().expect("hex")).expect("hex");
        assert_eq!(hex, vector.hex, "reject {}", vector.name);
        assert_eq!(entry["limit"], vector.limit);
        assert_eq!(entry["error"], vector.error.as_str());
        assert_eq!(entry["reason"].as_str(), vector.reason.as_deref());
    }
}

#[test]
fn every_worked_example_of_protocol_md_is_a_vector() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md"))
        .expect("PROTOCOL.md");
    let mut vectors = format::read_good(&read(CLIENT_FILE)).expect("client vectors");
    vectors.extend(format::read_good(&read(SERVER_FILE)).expect("server vectors"));
    let examples = doc_examples::frames(&doc);
    assert!(examples.len() >= 10, "found the examples: {examples:?}");
    for example in examples {
        assert!(
            vectors.iter().any(|v| v.hex == example),
            "PROTOCOL.md shows {} , which is no vector's bytes",
            fields::hex(&example)
        );
    }
}
