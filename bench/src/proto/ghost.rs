//! The ghost-sync wire protocol, written from `PROTOCOL.md` alone (no library code): a frame
//! is a big-endian `u32` body length, then the body: a one-byte tag and its fields
//! (little-endian integers, `u64`-prefixed byte strings, 16-byte UUIDs).

use super::Event;

/// Protocol version sent in `Hello`.
pub const VERSION: u16 = 2;

/// The largest body the load generator accepts: the relay's 16 MiB payload cap plus the
/// protocol's frame overhead.
pub const MAX_BODY: usize = 16 * 1024 * 1024 + 64;

fn frame(out: &mut Vec<u8>, body_len: usize) {
    // Bodies the harness builds are far below 4 GiB.
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
}

/// Appends `Hello { version: 2, credentials: [], resume: [] }`.
pub fn hello(out: &mut Vec<u8>) {
    frame(out, 19);
    out.push(0);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
}

/// Appends `Join { room_id, data: [] }`.
pub fn join(out: &mut Vec<u8>, room: &str) {
    frame(out, 17 + room.len());
    out.push(1);
    out.extend_from_slice(&(room.len() as u64).to_le_bytes());
    out.extend_from_slice(room.as_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
}

/// Appends `Broadcast { data }`.
pub fn broadcast(out: &mut Vec<u8>, data: &[u8]) {
    frame(out, 9 + data.len());
    out.push(3);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
}

/// Appends `Pong` (the answer to the relay's `Ping`).
pub fn pong(out: &mut Vec<u8>) {
    frame(out, 1);
    out.push(5);
}

/// Reads the `u64`-prefixed string at `at` in `body`, lossily, for reasons in messages.
fn text(body: &[u8], at: usize) -> String {
    let Some(len) = body.get(at..at + 8) else {
        return String::from("<truncated>");
    };
    let mut raw = [0u8; 8];
    raw.copy_from_slice(len);
    let n = u64::from_le_bytes(raw) as usize;
    match body.get(at + 8..(at + 8).saturating_add(n)) {
        Some(s) => String::from_utf8_lossy(s).into_owned(),
        None => String::from("<truncated>"),
    }
}

/// The number of ids in a `Members` body: `0b | room_id | ids | more`.
fn members(body: &[u8]) -> Result<u32, String> {
    let u64_at = |at: usize| {
        body.get(at..at + 8).map(|b| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            u64::from_le_bytes(raw)
        })
    };
    let bad = || format!("malformed Members frame of {} bytes", body.len());
    let room = u64_at(1).ok_or_else(bad)? as usize;
    let at = 9usize.checked_add(room).ok_or_else(bad)?;
    let ids = u64_at(at).ok_or_else(bad)? as usize;
    // Exactly the ids and the one `more` byte are left.
    if ids % 16 != 0 || at.checked_add(8 + ids + 1) != Some(body.len()) {
        return Err(bad());
    }
    Ok((ids / 16) as u32)
}

/// Parses the next relay frame at the start of `buf` (see [`super::parse`]).
pub fn parse(buf: &[u8]) -> Result<Option<(Event, usize)>, String> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len == 0 {
        return Err("empty frame".to_owned());
    }
    if len > MAX_BODY {
        return Err(format!("frame of {len} bytes over the limit"));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let event = match body[0] {
        // Version 2's Welcome: 35 bytes, then a resume token of 0 or 16.
        0 if len == 35 || len == 51 => Event::Hello,
        1 => Event::Closed(format!(
            "rejected (code {}): {}",
            body.get(1).copied().unwrap_or(255),
            text(body, 2)
        )),
        2 => Event::Subscribed,
        3 => Event::Ignore,
        4 => Event::Peers(1),
        5 => Event::PeerLeft,
        6 => {
            if len < 25 {
                return Err(format!("broadcast frame of {len} bytes"));
            }
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&body[17..25]);
            let n = u64::from_le_bytes(raw);
            if n != (len - 25) as u64 {
                return Err(format!("broadcast of {n} bytes in a {len}-byte frame"));
            }
            Event::Deliver(4 + 25..4 + len)
        }
        7 => Event::Fail(text(body, 1)),
        8 => Event::Ping,
        9 => Event::Pong,
        10 => Event::Closed(format!(
            "disconnected (code {}): {}",
            body.get(1).copied().unwrap_or(255),
            text(body, 2)
        )),
        // One frame of the member list that follows `Joined`: count its 16-byte ids.
        11 => Event::Peers(members(body)?),
        tag => return Err(format!("unknown tag {tag} (frame of {len} bytes)")),
    };
    Ok(Some((event, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn encodes_protocol_md_examples() {
        let mut v = Vec::new();
        hello(&mut v);
        assert_eq!(
            v,
            hex("00 00 00 13 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
        );
        v.clear();
        join(&mut v, "lobby");
        assert_eq!(
            v,
            hex("00 00 00 16 01 05 00 00 00 00 00 00 00 6c 6f 62 62 79 00 00 00 00 00 00 00 00")
        );
        v.clear();
        broadcast(&mut v, b"hi");
        assert_eq!(v, hex("00 00 00 0b 03 02 00 00 00 00 00 00 00 68 69"));
        v.clear();
        pong(&mut v);
        assert_eq!(v, hex("00 00 00 01 05"));
    }

    #[test]
    fn parses_protocol_md_examples_byte_by_byte() {
        let broadcast = hex(
            "00 00 00 1b 06 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff \
             02 00 00 00 00 00 00 00 68 69",
        );
        for cut in 0..broadcast.len() {
            assert_eq!(parse(&broadcast[..cut]), Ok(None));
        }
        let (event, used) = parse(&broadcast).unwrap().unwrap();
        assert_eq!(used, broadcast.len());
        let Event::Deliver(range) = event else {
            panic!("{event:?}")
        };
        assert_eq!(&broadcast[range], b"hi");

        let welcome = hex(
            "00 00 00 23 00 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 02 00 00 00 01 00 \
                 c8 32 00 00 00 00 00 00 00 00 00 00",
        );
        assert_eq!(parse(&welcome), Ok(Some((Event::Hello, welcome.len()))));
        let joined = hex(
            "00 00 00 1e 02 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff \
             05 00 00 00 00 00 00 00 6c 6f 62 62 79",
        );
        assert_eq!(parse(&joined), Ok(Some((Event::Subscribed, joined.len()))));
        assert_eq!(parse(&hex("00 00 00 01 08")), Ok(Some((Event::Ping, 5))));
        let idle =
            hex("00 00 00 16 0a 00 0c 00 00 00 00 00 00 00 69 64 6c 65 20 74 69 6d 65 6f 75 74");
        assert_eq!(
            parse(&idle),
            Ok(Some((
                Event::Closed("disconnected (code 0): idle timeout".into()),
                idle.len()
            )))
        );
    }

    #[test]
    fn counts_presence_from_protocol_md_examples() {
        let members = hex("00 00 00 27 0b 05 00 00 00 00 00 00 00 6c 6f 62 62 79 \
             10 00 00 00 00 00 00 00 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 00");
        assert_eq!(parse(&members), Ok(Some((Event::Peers(1), members.len()))));
        let empty =
            hex("00 00 00 17 0b 05 00 00 00 00 00 00 00 6c 6f 62 62 79 00 00 00 00 00 00 00 00 00");
        assert_eq!(parse(&empty), Ok(Some((Event::Peers(0), empty.len()))));
        let joined = hex("00 00 00 11 04 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff");
        assert_eq!(parse(&joined), Ok(Some((Event::Peers(1), joined.len()))));
        // An id list that is not a whole number of ids, or that runs past the frame.
        let mut bad = members.clone();
        bad[18] = 0x0f;
        assert!(parse(&bad).is_err());
        bad[18] = 0x20;
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn rejects_malformed_frames() {
        assert!(parse(&hex("00 00 00 00")).is_err());
        assert!(parse(&hex("00 00 00 01 63")).is_err());
        assert!(parse(&hex("ff ff ff ff")).is_err());
        // A broadcast whose data length disagrees with the frame length.
        let mut bad = hex(
            "00 00 00 1b 06 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff \
             09 00 00 00 00 00 00 00 68 69",
        );
        assert!(parse(&bad).is_err());
        bad[3] = 0x05;
        assert!(parse(&bad).is_err());
    }
}
