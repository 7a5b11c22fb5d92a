//! The benchmark payload: a 16-byte header (publisher id `u32`, sequence number `u32`, send
//! timestamp in nanoseconds `u64`, all little-endian) followed by filler bytes up to the
//! payload size. Receivers check the size and the last filler byte, then use the header for
//! the order check and the latency.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of header at the start of every payload; also the smallest payload size.
pub const HEADER_LEN: usize = 16;
/// The filler byte after the header.
pub const FILL: u8 = 0xA5;

/// What a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Global publisher id: room index × room size + member index.
    pub publisher: u32,
    /// The publisher's sequence number, from 0.
    pub seq: u32,
    /// When the message was (scheduled to be) sent, in [`now_ns`] time.
    pub sent_ns: u64,
}

/// A payload buffer of `size` bytes (at least [`HEADER_LEN`]), filled with [`FILL`].
pub fn template(size: usize) -> Vec<u8> {
    vec![FILL; size.max(HEADER_LEN)]
}

/// Writes `h` into the header of `payload` (a [`template`]).
pub fn write(payload: &mut [u8], h: Header) {
    payload[0..4].copy_from_slice(&h.publisher.to_le_bytes());
    payload[4..8].copy_from_slice(&h.seq.to_le_bytes());
    payload[8..16].copy_from_slice(&h.sent_ns.to_le_bytes());
}

/// Reads the header of a delivered payload, checking that it has `size` bytes and ends with
/// the filler.
pub fn read(payload: &[u8], size: usize) -> Result<Header, String> {
    if payload.len() != size || payload.len() < HEADER_LEN {
        return Err(format!(
            "payload of {} bytes, expected {size}",
            payload.len()
        ));
    }
    if size > HEADER_LEN && payload[size - 1] != FILL {
        return Err("payload filler corrupted".to_owned());
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&payload[8..16]);
    Ok(Header {
        publisher: u32_at(0),
        seq: u32_at(4),
        sent_ns: u64::from_le_bytes(ts),
    })
}

/// Nanoseconds on a monotonic clock shared by every thread of this process.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let mut p = template(256);
        let h = Header {
            publisher: 77,
            seq: 123_456,
            sent_ns: 9_876_543_210,
        };
        write(&mut p, h);
        assert_eq!(read(&p, 256), Ok(h));
        assert!(read(&p[..255], 256).is_err());
        p[255] = 0;
        assert!(read(&p, 256).is_err());
        let mut small = template(16);
        write(&mut small, h);
        assert_eq!(read(&small, 16), Ok(h));
        assert!(now_ns() <= now_ns());
    }
}
