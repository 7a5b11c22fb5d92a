//! A message as the vector files spell it: its name and its fields in wire order, each with
//! its wire type and value. The matches here are exhaustive, without a wildcard, so that a new
//! `ClientFrame` or `ServerFrame` variant does not compile until it is described here (and the
//! coverage test then asks for a vector of it).

use ghost_sync::protocol::{ClientFrame, ServerFrame};
use ghost_sync::Uuid;

/// One field's value, by the wire type of PROTOCOL.md section 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U8(u8),
    U16(u16),
    U32(u32),
    Bool(bool),
    Uuid(Uuid),
    Bytes(Vec<u8>),
    Str(String),
}

/// A named field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

fn field(name: &str, value: Value) -> Field {
    Field {
        name: name.to_owned(),
        value,
    }
}

fn bytes(data: &[u8]) -> Value {
    Value::Bytes(data.to_vec())
}

fn text(text: &str) -> Value {
    Value::Str(text.to_owned())
}

/// The message name and fields of a client frame.
pub fn client(frame: &ClientFrame<'_>) -> (&'static str, Vec<Field>) {
    match *frame {
        ClientFrame::Hello {
            version,
            credentials,
            resume,
        } => (
            "Hello",
            vec![
                field("version", Value::U16(version)),
                field("credentials", bytes(credentials)),
                field("resume", bytes(resume)),
            ],
        ),
        ClientFrame::Join { room_id, data } => (
            "Join",
            vec![field("room_id", text(room_id)), field("data", bytes(data))],
        ),
        ClientFrame::Leave => ("Leave", vec![]),
        ClientFrame::Broadcast { data } => ("Broadcast", vec![field("data", bytes(data))]),
        ClientFrame::Ping => ("Ping", vec![]),
        ClientFrame::Pong => ("Pong", vec![]),
        ClientFrame::Direct { targets, data } => (
            "Direct",
            vec![field("targets", bytes(targets)), field("data", bytes(data))],
        ),
        ClientFrame::Keyed { key, data } => (
            "Keyed",
            vec![field("key", Value::U32(key)), field("data", bytes(data))],
        ),
        ClientFrame::SetState { key, value } => (
            "SetState",
            vec![field("key", text(key)), field("value", bytes(value))],
        ),
        ClientFrame::Bye => ("Bye", vec![]),
    }
}

/// The message name and fields of a server frame.
pub fn server(frame: &ServerFrame<'_>) -> (&'static str, Vec<Field>) {
    match *frame {
        ServerFrame::Welcome {
            client_id,
            version,
            max_payload,
            ping_interval_ms,
            resume_token,
        } => (
            "Welcome",
            vec![
                field("client_id", Value::Uuid(client_id)),
                field("version", Value::U16(version)),
                field("max_payload", Value::U32(max_payload)),
                field("ping_interval_ms", Value::U32(ping_interval_ms)),
                field("resume_token", bytes(resume_token)),
            ],
        ),
        ServerFrame::Rejected { code, message } => (
            "Rejected",
            vec![
                field("code", Value::U8(code)),
                field("message", text(message)),
            ],
        ),
        ServerFrame::Joined { client_id, room_id } => (
            "Joined",
            vec![
                field("client_id", Value::Uuid(client_id)),
                field("room_id", text(room_id)),
            ],
        ),
        ServerFrame::Left { room_id } => ("Left", vec![field("room_id", text(room_id))]),
        ServerFrame::PlayerJoined { client_id } => (
            "PlayerJoined",
            vec![field("client_id", Value::Uuid(client_id))],
        ),
        ServerFrame::PlayerLeft { client_id } => (
            "PlayerLeft",
            vec![field("client_id", Value::Uuid(client_id))],
        ),
        ServerFrame::Broadcast { sender_id, data } => (
            "Broadcast",
            vec![
                field("sender_id", Value::Uuid(sender_id)),
                field("data", bytes(data)),
            ],
        ),
        ServerFrame::Error { message } => ("Error", vec![field("message", text(message))]),
        ServerFrame::Ping => ("Ping", vec![]),
        ServerFrame::Pong => ("Pong", vec![]),
        ServerFrame::Disconnect { code, message } => (
            "Disconnect",
            vec![
                field("code", Value::U8(code)),
                field("message", text(message)),
            ],
        ),
        ServerFrame::Members {
            room_id,
            client_ids,
            more,
        } => (
            "Members",
            vec![
                field("room_id", text(room_id)),
                field("client_ids", bytes(client_ids)),
                field("more", Value::Bool(more)),
            ],
        ),
        ServerFrame::Direct { sender_id, data } => (
            "Direct",
            vec![
                field("sender_id", Value::Uuid(sender_id)),
                field("data", bytes(data)),
            ],
        ),
        ServerFrame::Keyed {
            sender_id,
            key,
            data,
        } => (
            "Keyed",
            vec![
                field("sender_id", Value::Uuid(sender_id)),
                field("key", Value::U32(key)),
                field("data", bytes(data)),
            ],
        ),
        ServerFrame::State { owner, key, value } => (
            "State",
            vec![
                field("owner", Value::Uuid(owner)),
                field("key", text(key)),
                field("value", bytes(value)),
            ],
        ),
        ServerFrame::Dropped { count } => ("Dropped", vec![field("count", Value::U32(count))]),
        ServerFrame::Resumed { missed } => ("Resumed", vec![field("missed", Value::U32(missed))]),
    }
}

/// Hex of `data`, a space after every 16 bytes (so a list of ids reads one id per word).
pub fn hex(data: &[u8]) -> String {
    let words: Vec<String> = data
        .chunks(16)
        .map(|word| word.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    words.join(" ")
}

/// The bytes of whitespace-insensitive hex.
pub fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| format!("not hex: {text:?}"))?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("not hex: {pair:?}"))
        })
        .collect()
}

impl Value {
    /// The wire type's name in the files.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::U16(_) => "u16",
            Self::U32(_) => "u32",
            Self::Bool(_) => "bool",
            Self::Uuid(_) => "uuid",
            Self::Bytes(_) => "bytes",
            Self::Str(_) => "string",
        }
    }

    /// The value as the text files write it (strings as JSON string literals).
    pub fn text(&self) -> String {
        match self {
            Self::U8(v) => v.to_string(),
            Self::U16(v) => v.to_string(),
            Self::U32(v) => v.to_string(),
            Self::Bool(v) => v.to_string(),
            Self::Uuid(v) => v.hyphenated().to_string(),
            Self::Bytes(v) => hex(v),
            Self::Str(v) => serde_json::to_string(v).expect("a string always serialises"),
        }
    }

    /// Reads a value of the wire type `type_name` back from its text.
    pub fn parse(type_name: &str, text: &str) -> Result<Self, String> {
        let bad = |what: &dyn std::fmt::Display| format!("bad {type_name} {text:?}: {what}");
        Ok(match type_name {
            "u8" => Self::U8(text.parse().map_err(|e| bad(&e))?),
            "u16" => Self::U16(text.parse().map_err(|e| bad(&e))?),
            "u32" => Self::U32(text.parse().map_err(|e| bad(&e))?),
            "bool" => Self::Bool(text.parse().map_err(|e| bad(&e))?),
            "uuid" => Self::Uuid(Uuid::parse_str(text).map_err(|e| bad(&e))?),
            "bytes" => Self::Bytes(unhex(text)?),
            "string" => Self::Str(serde_json::from_str(text).map_err(|e| bad(&e))?),
            other => return Err(format!("unknown type {other:?}")),
        })
    }

    /// The value in the JSON twin: numbers, booleans, strings; ids hyphenated, bytes as hex.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Self::U8(v) => (*v).into(),
            Self::U16(v) => (*v).into(),
            Self::U32(v) => (*v).into(),
            Self::Bool(v) => (*v).into(),
            Self::Uuid(v) => v.hyphenated().to_string().into(),
            Self::Bytes(v) => hex(v).replace(' ', "").into(),
            Self::Str(v) => v.as_str().into(),
        }
    }

    /// How the value is laid out on the wire: the sizes of its byte groups (a length prefix,
    /// then the bytes it counts, for `bytes` and `string`).
    pub fn wire_groups(&self) -> Vec<usize> {
        match self {
            Self::U8(_) | Self::Bool(_) => vec![1],
            Self::U16(_) => vec![2],
            Self::U32(_) => vec![4],
            Self::Uuid(_) => vec![16],
            Self::Bytes(v) => vec![8, v.len()],
            Self::Str(v) => vec![8, v.len()],
        }
    }
}
