//! The vector files: writing them from the table, and reading them back the way a port in
//! another language would (blocks of `key: value` lines; `tests/vectors/README.md`).

use crate::fields::{Field, Value};

/// A frame that decodes: `hex` is its whole wire form, length prefix included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Good {
    pub name: String,
    pub meaning: String,
    pub message: String,
    pub fields: Vec<Field>,
    pub hex: Vec<u8>,
}

/// Bytes a reader must refuse, or must keep waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub name: String,
    pub meaning: String,
    /// `client` (the relay reads them) or `server` (a client reads them).
    pub direction: String,
    /// The largest frame body the reader accepts.
    pub limit: usize,
    pub hex: Vec<u8>,
    /// `too_large`, `malformed` or `incomplete`.
    pub error: String,
    /// The Rust codec's words, as the relay sends them in `Disconnect` or `Rejected`.
    pub reason: Option<String>,
}

/// Bytes per `hex:` line where a byte group is longer.
const LINE_BYTES: usize = 16;

fn hex_lines(out: &mut String, bytes: &[u8]) {
    for line in bytes.chunks(LINE_BYTES) {
        let spaced: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("hex: {}\n", spaced.join(" ")));
    }
}

/// `bytes` as `hex:` lines, one per group of `groups` (the group sizes add up to its length).
fn grouped(out: &mut String, bytes: &[u8], groups: &[usize]) {
    assert_eq!(
        groups.iter().sum::<usize>(),
        bytes.len(),
        "the byte groups cover the frame exactly"
    );
    let mut rest = bytes;
    for &len in groups {
        let (group, tail) = rest.split_at(len);
        hex_lines(out, group);
        rest = tail;
    }
}

fn single_line(key: &str, value: &str) -> String {
    assert!(!value.contains('\n'), "{key} {value:?} must be one line");
    format!("{key}: {value}\n")
}

/// The text of a file of good vectors.
pub fn write_good(header: &str, vectors: &[Good]) -> String {
    let mut out = header.to_owned();
    for vector in vectors {
        out.push('\n');
        out.push_str(&single_line("name", &vector.name));
        out.push_str(&single_line("meaning", &vector.meaning));
        out.push_str(&single_line("message", &vector.message));
        let mut groups = vec![4, 1];
        for field in &vector.fields {
            let value = field.value.text();
            let line = format!("{} {} {}", field.name, field.value.type_name(), value);
            out.push_str(&single_line("field", line.trim_end()));
            groups.extend(field.value.wire_groups());
        }
        groups.retain(|&len| len > 0);
        grouped(&mut out, &vector.hex, &groups);
    }
    out
}

/// The text of the file of refused bytes.
pub fn write_bad(header: &str, vectors: &[(Bad, Vec<usize>)]) -> String {
    let mut out = header.to_owned();
    for (vector, groups) in vectors {
        out.push('\n');
        out.push_str(&single_line("name", &vector.name));
        out.push_str(&single_line("meaning", &vector.meaning));
        out.push_str(&single_line("direction", &vector.direction));
        out.push_str(&single_line("limit", &vector.limit.to_string()));
        grouped(&mut out, &vector.hex, groups);
        out.push_str(&single_line("error", &vector.error));
        if let Some(reason) = &vector.reason {
            out.push_str(&single_line("reason", reason));
        }
    }
    out
}

/// One block of a file: its `key: value` lines in order, and the line it starts on.
struct Block {
    line: usize,
    entries: Vec<(String, String)>,
}

impl Block {
    fn one(&self, key: &str) -> Result<String, String> {
        let mut found = self.entries.iter().filter(|(k, _)| k == key);
        match (found.next(), found.next()) {
            (Some((_, value)), None) => Ok(value.clone()),
            (None, _) => Err(format!("block at line {}: no {key}", self.line)),
            (Some(_), Some(_)) => Err(format!("block at line {}: {key} twice", self.line)),
        }
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn hex(&self) -> Result<Vec<u8>, String> {
        let hex: String = self.all("hex").collect();
        crate::fields::unhex(&hex).map_err(|e| format!("block at line {}: {e}", self.line))
    }

    fn only(&self, keys: &[&str]) -> Result<(), String> {
        match self
            .entries
            .iter()
            .find(|(k, _)| !keys.contains(&k.as_str()))
        {
            Some((key, _)) => Err(format!("block at line {}: unknown key {key}", self.line)),
            None => Ok(()),
        }
    }
}

/// Splits a file into blocks: `#` lines are comments, blank lines end a block.
fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            blocks.extend(current.take());
            continue;
        }
        let (key, value) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|key| (key, "")))
            .ok_or_else(|| format!("line {}: not `key: value`: {line:?}", index + 1))?;
        current
            .get_or_insert_with(|| Block {
                line: index + 1,
                entries: Vec::new(),
            })
            .entries
            .push((key.to_owned(), value.to_owned()));
    }
    blocks.extend(current);
    Ok(blocks)
}

/// Reads a file of good vectors.
pub fn read_good(text: &str) -> Result<Vec<Good>, String> {
    blocks(text)?
        .iter()
        .map(|block| {
            block.only(&["name", "meaning", "message", "field", "hex"])?;
            let fields = block
                .all("field")
                .map(|line| {
                    let mut parts = line.splitn(3, ' ');
                    let (Some(name), Some(type_name)) = (parts.next(), parts.next()) else {
                        return Err(format!("block at line {}: field {line:?}", block.line));
                    };
                    let value = Value::parse(type_name, parts.next().unwrap_or(""))?;
                    Ok(Field {
                        name: name.to_owned(),
                        value,
                    })
                })
                .collect::<Result<_, String>>()?;
            Ok(Good {
                name: block.one("name")?,
                meaning: block.one("meaning")?,
                message: block.one("message")?,
                fields,
                hex: block.hex()?,
            })
        })
        .collect()
}

/// Reads the file of refused bytes.
pub fn read_bad(text: &str) -> Result<Vec<Bad>, String> {
    blocks(text)?
        .iter()
        .map(|block| {
            block.only(&[
                "name",
                "meaning",
                "direction",
                "limit",
                "hex",
                "error",
                "reason",
            ])?;
            let reason = match block.all("reason").count() {
                0 => None,
                _ => Some(block.one("reason")?),
            };
            Ok(Bad {
                name: block.one("name")?,
                meaning: block.one("meaning")?,
                direction: block.one("direction")?,
                limit: block
                    .one("limit")?
                    .parse()
                    .map_err(|e| format!("block at line {}: limit: {e}", block.line))?,
                hex: block.hex()?,
                error: block.one("error")?,
                reason,
            })
        })
        .collect()
}

fn good_json(vector: &Good) -> serde_json::Value {
    let fields: Vec<serde_json::Value> = vector
        .fields
        .iter()
        .map(|field| {
            serde_json::json!({
                "name": field.name,
                "type": field.value.type_name(),
                "value": field.value.json(),
            })
        })
        .collect();
    serde_json::json!({
        "name": vector.name,
        "meaning": vector.meaning,
        "message": vector.message,
        "fields": fields,
        "hex": crate::fields::hex(&vector.hex).replace(' ', ""),
    })
}

fn bad_json(vector: &Bad) -> serde_json::Value {
    serde_json::json!({
        "name": vector.name,
        "meaning": vector.meaning,
        "direction": vector.direction,
        "limit": vector.limit,
        "hex": crate::fields::hex(&vector.hex).replace(' ', ""),
        "error": vector.error,
        "reason": vector.reason,
    })
}

/// The JSON twin of the three text files.
pub fn write_json(client: &[Good], server: &[Good], reject: &[Bad]) -> String {
    let value = serde_json::json!({
        "protocol_version": ghost_sync::protocol::PROTOCOL_VERSION,
        "about": "ghost-sync wire vectors; the same vectors as client.txt, server.txt and \
                  reject.txt in this directory; README.md explains them",
        "client": client.iter().map(good_json).collect::<Vec<_>>(),
        "server": server.iter().map(good_json).collect::<Vec<_>>(),
        "reject": reject.iter().map(bad_json).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&value).expect("JSON values always serialise");
    text.push('\n');
    text
}
