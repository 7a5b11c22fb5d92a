//! The three wire protocols the load generator speaks, behind one small interface: encode a
//! publish, encode the answer to a keepalive, and parse one server message at a time out of
//! a read buffer ([`parse`]), as an [`Event`].
//!
//! The parsers are incremental: `Ok(None)` means "not a whole message yet, read more"; they
//! never panic on malformed input (an `Err` names what was wrong) and they never allocate
//! for a delivery, whose payload is returned as a byte range of the buffer.

pub mod ghost;
pub mod nats;
pub mod resp;

use std::fmt;
use std::ops::Range;

/// Which server (and so which wire protocol) a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A ghost-sync relay (length-prefixed wincode frames, `PROTOCOL.md`).
    Ghost,
    /// redis-server: RESP `SUBSCRIBE` / `PUBLISH` (RESP3 push messages in all-publish rooms).
    Redis,
    /// nats-server: the NATS text protocol, `SUB` / `PUB`, verbose, pedantic and echo off.
    Nats,
}

impl Proto {
    /// Every protocol, in the order the harness measures them.
    pub const ALL: [Proto; 3] = [Proto::Ghost, Proto::Redis, Proto::Nats];

    /// The server's name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ghost => "ghost-sync",
            Proto::Redis => "redis",
            Proto::Nats => "nats",
        }
    }

    /// Parses a name as given on the command line (`ghost`, `ghost-sync`, `redis`, `nats`).
    pub fn from_name(name: &str) -> Option<Proto> {
        match name {
            "ghost" | "ghost-sync" => Some(Proto::Ghost),
            "redis" => Some(Proto::Redis),
            "nats" => Some(Proto::Nats),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One message from a server, as the load generator cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A published payload delivered to this connection: its bytes in the read buffer.
    Deliver(Range<usize>),
    /// The server's greeting: ghost-sync `Welcome`, NATS `INFO`.
    Hello,
    /// The subscription is in place: ghost-sync `Joined`, RESP `subscribe` confirmation.
    Subscribed,
    /// The answer to our ping: RESP `+PONG`, NATS `PONG`, ghost-sync `Pong`.
    Pong,
    /// The server's keepalive, to be answered ([`encode_pong`]).
    Ping,
    /// RESP's answer to `PUBLISH`: how many subscribers received the message.
    PubAck(i64),
    /// Another member of the room left (ghost-sync `PlayerLeft`).
    PeerLeft,
    /// This many other members are in the room: ghost-sync `Members` (one frame of the list
    /// that follows `Joined`) or `PlayerJoined` (one). Lets a harness wait until every
    /// member knows every other, which a cluster of relays takes a broker hop to reach.
    Peers(u32),
    /// The server refused something but keeps the connection (`Error`, `-ERR`, RESP error).
    Fail(String),
    /// The server closes the connection, with its reason (`Disconnect`, `Rejected`).
    Closed(String),
    /// Nothing the load generator acts on (`Left`, `+OK`, the `HELLO` reply, ...).
    Ignore,
}

/// Parses the next whole message at the start of `buf`: the event and the bytes it used, or
/// `Ok(None)` when `buf` holds only part of a message.
pub fn parse(proto: Proto, buf: &[u8]) -> Result<Option<(Event, usize)>, String> {
    match proto {
        Proto::Ghost => ghost::parse(buf),
        Proto::Redis => resp::parse(buf),
        Proto::Nats => nats::parse(buf),
    }
}

/// Appends a publish of `payload` to `room` (for ghost-sync: a broadcast to the sender's
/// room, `room` is unused).
pub fn encode_publish(proto: Proto, out: &mut Vec<u8>, room: &str, payload: &[u8]) {
    match proto {
        Proto::Ghost => ghost::broadcast(out, payload),
        Proto::Redis => resp::publish(out, room, payload),
        Proto::Nats => nats::publish(out, room, payload),
    }
}

/// Appends the answer to a server [`Event::Ping`] (nothing for RESP, whose server does not
/// ping).
pub fn encode_pong(proto: Proto, out: &mut Vec<u8>) {
    match proto {
        Proto::Ghost => ghost::pong(out),
        Proto::Redis => {}
        Proto::Nats => out.extend_from_slice(b"PONG\r\n"),
    }
}

/// Finds `\r\n` in `buf` at or after `from`; the index of the `\r`.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let mut i = 0;
    while let Some(p) = rest[i..].iter().position(|&b| b == b'\r') {
        let at = i + p;
        match rest.get(at + 1) {
            Some(b'\n') => return Some(from + at),
            Some(_) => i = at + 1,
            None => return None,
        }
    }
    None
}

/// Parses an ASCII decimal integer (optionally negative).
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_ints() {
        assert_eq!(find_crlf(b"ab\rc\r\n", 0), Some(4));
        assert_eq!(find_crlf(b"ab\r", 0), None);
        assert_eq!(find_crlf(b"\r\n\r\n", 1), Some(2));
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"1x"), None);
        assert_eq!(parse_int(b""), None);
    }
}
