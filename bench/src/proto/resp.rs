//! RESP (the Redis protocol), versions 2 and 3, as far as pub/sub needs: `PUBLISH` and
//! `SUBSCRIBE` commands, and a parser for every reply type, with a fast path for the
//! `message` push that carries a delivery.

use super::{find_crlf, parse_int, Event};
use std::ops::Range;

/// Longest header line (type byte to `\r\n`) accepted before the input is called malformed.
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of aggregates accepted.
const MAX_DEPTH: usize = 8;

fn bulk(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// Appends a command as a RESP array of bulk strings.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        bulk(out, a);
    }
}

/// Appends `PUBLISH room payload`.
pub fn publish(out: &mut Vec<u8>, room: &str, payload: &[u8]) {
    command(out, &[b"PUBLISH", room.as_bytes(), payload]);
}

/// One parsed RESP value; strings are ranges of the buffer.
#[derive(Debug)]
enum Value {
    Simple(Range<usize>),
    Error(Range<usize>),
    Int(i64),
    Bulk(Range<usize>),
    Aggregate(Vec<Value>),
    Map,
    Null,
    Other,
}

/// Parses the value starting at `pos`: the value and the index just past it.
fn value(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP nesting too deep".to_owned());
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = find_crlf(buf, pos + 1) else {
        if buf.len() - pos > MAX_LINE {
            return Err("RESP header line too long".to_owned());
        }
        return Ok(None);
    };
    let line = pos + 1..cr;
    let next = cr + 2;
    let int = || {
        parse_int(&buf[line.clone()]).ok_or_else(|| {
            format!(
                "bad RESP length {:?}",
                String::from_utf8_lossy(&buf[line.clone()])
            )
        })
    };
    Ok(Some(match kind {
        b'+' => (Value::Simple(line), next),
        b'-' => (Value::Error(line), next),
        b':' => (Value::Int(int()?), next),
        b'_' => (Value::Null, next),
        b'#' | b',' | b'(' => (Value::Other, next),
        b'$' | b'=' | b'!' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Null, next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("RESP bulk string without its \\r\\n".to_owned());
            }
            let v = if kind == b'!' {
                Value::Error(next..end)
            } else {
                Value::Bulk(next..end)
            };
            (v, end + 2)
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Null, next)));
            }
            let count = if matches!(kind, b'%' | b'|') {
                2 * n as usize
            } else {
                n as usize
            };
            let mut items = Vec::with_capacity(count.min(16));
            let mut at = next;
            for _ in 0..count {
                match value(buf, at, depth + 1)? {
                    Some((v, end)) => {
                        items.push(v);
                        at = end;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute precedes the value it describes: return that value instead.
                return value(buf, at, depth + 1);
            }
            let v = if kind == b'%' {
                Value::Map
            } else {
                Value::Aggregate(items)
            };
            (v, at)
        }
        other => return Err(format!("unknown RESP type byte {other:#04x}")),
    }))
}

/// Parses one bulk string `$n\r\n...\r\n` at `pos` (fast path helper).
fn fast_bulk(buf: &[u8], pos: usize) -> Result<Option<(Range<usize>, usize)>, String> {
    match value(buf, pos, MAX_DEPTH)? {
        Some((Value::Bulk(r), end)) => Ok(Some((r, end))),
        Some(_) => Err("expected a bulk string in a message".to_owned()),
        None => Ok(None),
    }
}

/// Parses the next reply or push at the start of `buf` (see [`super::parse`]).
pub fn parse(buf: &[u8]) -> Result<Option<(Event, usize)>, String> {
    const MSG2: &[u8] = b"*3\r\n$7\r\nmessage\r\n";
    const MSG3: &[u8] = b">3\r\n$7\r\nmessage\r\n";
    if buf.starts_with(MSG2) || buf.starts_with(MSG3) {
        let Some((_channel, at)) = fast_bulk(buf, MSG2.len())? else {
            return Ok(None);
        };
        let Some((payload, end)) = fast_bulk(buf, at)? else {
            return Ok(None);
        };
        return Ok(Some((Event::Deliver(payload), end)));
    }
    let Some((v, end)) = value(buf, 0, 0)? else {
        return Ok(None);
    };
    let text = |r: &Range<usize>| String::from_utf8_lossy(&buf[r.clone()]).into_owned();
    let event = match &v {
        Value::Simple(r) if buf[r.clone()].eq_ignore_ascii_case(b"PONG") => Event::Pong,
        Value::Simple(_) | Value::Map | Value::Null | Value::Other => Event::Ignore,
        Value::Error(r) => Event::Fail(text(r)),
        Value::Int(n) => Event::PubAck(*n),
        Value::Bulk(_) => Event::Ignore,
        Value::Aggregate(items) => match items.first() {
            Some(Value::Bulk(kind)) => match &buf[kind.clone()] {
                b"message" => match items.get(2) {
                    Some(Value::Bulk(payload)) if items.len() == 3 => {
                        Event::Deliver(payload.clone())
                    }
                    _ => return Err("malformed message push".to_owned()),
                },
                b"subscribe" => Event::Subscribed,
                b"pong" => Event::Pong,
                _ => Event::Ignore,
            },
            _ => Event::Ignore,
        },
    };
    Ok(Some((event, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Vec<Event> {
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((e, n)) = parse(&buf[at..]).unwrap() {
            out.push(match e {
                Event::Deliver(r) => Event::Deliver(r.start + at..r.end + at),
                e => e,
            });
            at += n;
        }
        assert_eq!(at, buf.len(), "left over");
        out
    }

    #[test]
    fn encodes_publish() {
        let mut v = Vec::new();
        publish(&mut v, "room-1", b"hello");
        assert_eq!(v, b"*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom-1\r\n$5\r\nhello\r\n");
    }

    #[test]
    fn parses_pubsub_traffic_at_every_cut() {
        let stream: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$6\r\nroom-1\r\n:1\r\n\
            *3\r\n$7\r\nmessage\r\n$6\r\nroom-1\r\n$5\r\nhe\r\nl\r\n\
            >3\r\n$7\r\nmessage\r\n$6\r\nroom-1\r\n$0\r\n\r\n\
            :7\r\n+PONG\r\n-ERR wrong\r\n\
            %1\r\n$6\r\nserver\r\n$5\r\nredis\r\n\
            *2\r\n$4\r\npong\r\n$0\r\n\r\n";
        let events = all(stream);
        assert_eq!(events.len(), 8);
        assert_eq!(events[0], Event::Subscribed);
        let Event::Deliver(r) = &events[1] else {
            panic!()
        };
        assert_eq!(&stream[r.clone()], b"he\r\nl");
        let Event::Deliver(r) = &events[2] else {
            panic!()
        };
        assert!(r.is_empty());
        assert_eq!(events[3], Event::PubAck(7));
        assert_eq!(events[4], Event::Pong);
        assert_eq!(events[5], Event::Fail("ERR wrong".into()));
        assert_eq!(events[6], Event::Ignore);
        assert_eq!(events[7], Event::Pong);
        // Every strict prefix that ends inside the first message is incomplete.
        let first = parse(stream).unwrap().unwrap().1;
        assert_eq!(first, 35);
        for cut in 0..first {
            assert_eq!(parse(&stream[..cut]), Ok(None), "cut {cut}");
        }
        // And the whole stream parses identically when split anywhere.
        for cut in 0..stream.len() {
            let mut at = 0;
            let mut n = 0;
            while let Some((_, used)) = parse(&stream[at..cut]).unwrap() {
                at += used;
                n += 1;
            }
            n += all(&stream[at..]).len();
            assert_eq!(n, 8, "cut {cut}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b"$3\r\nabcd\r\n").is_err());
        assert!(parse(b"*1x\r\n").is_err());
    }
}
