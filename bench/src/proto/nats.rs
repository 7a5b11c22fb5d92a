//! The NATS client protocol (text): `CONNECT` with verbose, pedantic and echo off, `SUB`,
//! `PUB`, `PING`/`PONG`, and a parser for `INFO`, `MSG`, `PING`, `PONG`, `+OK` and `-ERR`.

use super::{find_crlf, parse_int, Event};

/// Longest control line accepted before the input is called malformed.
const MAX_LINE: usize = 64 * 1024;

/// Appends the `CONNECT` the harness uses: no `+OK` per command, no strict subject checks,
/// and no copy of a connection's own messages.
pub fn connect(out: &mut Vec<u8>) {
    out.extend_from_slice(
        br#"CONNECT {"verbose":false,"pedantic":false,"echo":false,"lang":"rust","version":"0.1.0","protocol":1}"#,
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends `SUB subject sid`.
pub fn sub(out: &mut Vec<u8>, subject: &str, sid: u32) {
    out.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
}

/// Appends `PING`.
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// Appends `PUB subject n` and the payload.
pub fn publish(out: &mut Vec<u8>, subject: &str, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Parses the next server message at the start of `buf` (see [`super::parse`]).
pub fn parse(buf: &[u8]) -> Result<Option<(Event, usize)>, String> {
    let Some(cr) = find_crlf(buf, 0) else {
        if buf.len() > MAX_LINE {
            return Err("NATS control line too long".to_owned());
        }
        return Ok(None);
    };
    let line = &buf[..cr];
    let next = cr + 2;
    if let Some(rest) = line.strip_prefix(b"MSG ") {
        // MSG <subject> <sid> [reply-to] <#bytes>
        let mut count = 0;
        let mut last: &[u8] = &[];
        for field in rest.split(|&b| b == b' ' || b == b'\t') {
            if !field.is_empty() {
                count += 1;
                last = field;
            }
        }
        if !(3..=4).contains(&count) {
            return Err(format!("bad MSG line {:?}", String::from_utf8_lossy(line)));
        }
        let n = parse_int(last)
            .filter(|&n| n >= 0)
            .ok_or_else(|| format!("bad MSG size in {:?}", String::from_utf8_lossy(line)))?
            as usize;
        let end = next + n;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("MSG payload without its \\r\\n".to_owned());
        }
        return Ok(Some((Event::Deliver(next..end), end + 2)));
    }
    let event = if line == b"PING" {
        Event::Ping
    } else if line == b"PONG" {
        Event::Pong
    } else if line == b"+OK" {
        Event::Ignore
    } else if line.starts_with(b"INFO ") || line == b"INFO" {
        Event::Hello
    } else if line.starts_with(b"-ERR") {
        Event::Fail(String::from_utf8_lossy(line).into_owned())
    } else {
        return Err(format!(
            "unexpected NATS line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ));
    };
    Ok(Some((event, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let mut v = Vec::new();
        sub(&mut v, "room-3", 1);
        publish(&mut v, "room-3", b"hi");
        ping(&mut v);
        assert_eq!(v, b"SUB room-3 1\r\nPUB room-3 2\r\nhi\r\nPING\r\n");
        v.clear();
        connect(&mut v);
        let s = String::from_utf8(v).unwrap();
        assert!(s.contains(r#""verbose":false"#) && s.contains(r#""echo":false"#));
        assert!(s.contains(r#""pedantic":false"#) && s.ends_with("}\r\n"));
    }

    #[test]
    fn parses_server_traffic_at_every_cut() {
        let stream: &[u8] = b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n\
            MSG room-3 1 5\r\nab\r\nc\r\nMSG room-3 1 _INBOX.x 0\r\n\r\nPING\r\n+OK\r\n-ERR 'Slow Consumer'\r\n";
        let expect = |events: &[Event]| {
            assert_eq!(events.len(), 7);
            assert_eq!(events[0], Event::Hello);
            assert_eq!(events[1], Event::Pong);
            assert_eq!(events[4], Event::Ping);
            assert_eq!(events[5], Event::Ignore);
            assert_eq!(events[6], Event::Fail("-ERR 'Slow Consumer'".into()));
        };
        let mut at = 0;
        let mut events = Vec::new();
        while let Some((e, n)) = parse(&stream[at..]).unwrap() {
            if let Event::Deliver(r) = &e {
                let payload = &stream[at + r.start..at + r.end];
                assert!(payload == b"ab\r\nc" || payload.is_empty());
            }
            events.push(e);
            at += n;
        }
        assert_eq!(at, stream.len());
        expect(&events);
        for cut in 0..stream.len() {
            let mut at = 0;
            let mut n = 0;
            while let Some((_, used)) = parse(&stream[at..cut]).unwrap() {
                at += used;
                n += 1;
            }
            while let Some((_, used)) = parse(&stream[at..]).unwrap() {
                at += used;
                n += 1;
            }
            assert_eq!(n, 7, "cut {cut}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"HELLO\r\n").is_err());
        assert!(parse(b"MSG a 1 x\r\n").is_err());
        assert!(parse(b"MSG a 1 2\r\nabc\r\n").is_err());
    }
}
