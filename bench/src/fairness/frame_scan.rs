//! [`FrameScan`]: the flooders' reader walks the relay's frames without decoding them.

use crate::proto::ghost;

/// The relay's `Ping` tag (PROTOCOL.md).
const PING_TAG: u8 = 8;
/// The relay's `Disconnect` tag (PROTOCOL.md).
const DISCONNECT_TAG: u8 = 10;

/// Walks the relay's frames through a byte stream fed in pieces of any size, looking only at
/// each frame's length and tag: cheap enough for a reader that must keep up with a flood.
#[derive(Debug, Default, Clone)]
pub struct FrameScan {
    /// The length prefix and the tag of the frame being read.
    head: [u8; 5],
    /// Bytes of `head` seen so far.
    have: usize,
    /// Bytes of the current frame's body still to skip.
    skip: usize,
    /// The current frame is a `Disconnect` whose code is the next byte.
    code_next: bool,
    /// Frames seen (counted at their tag).
    pub frames: u64,
    /// `Ping` frames seen.
    pub pings: u64,
    /// `Disconnect` frames seen.
    pub disconnects: u64,
    /// The code of the last `Disconnect` (PROTOCOL.md section 6), once its byte came.
    pub disconnect_code: Option<u8>,
}

impl FrameScan {
    /// Takes the next bytes of the stream; returns how many pings they completed, or what was
    /// wrong with a frame's length.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<u64, String> {
        let pings_before = self.pings;
        while !bytes.is_empty() {
            if self.skip > 0 {
                if std::mem::take(&mut self.code_next) {
                    self.disconnect_code = Some(bytes[0]);
                }
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (self.head.len() - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < self.head.len() {
                break;
            }
            self.have = 0;
            let [a, b, c, d, tag] = self.head;
            let len = u32::from_be_bytes([a, b, c, d]) as usize;
            if len == 0 || len > ghost::MAX_BODY {
                return Err(format!("relay frame of {len} bytes"));
            }
            self.frames += 1;
            match tag {
                PING_TAG => self.pings += 1,
                DISCONNECT_TAG => {
                    self.disconnects += 1;
                    self.code_next = len > 1;
                }
                _ => {}
            }
            // The tag was the body's first byte.
            self.skip = len - 1;
        }
        Ok(self.pings - pings_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay-side frame: length, tag, then `body_rest` bytes.
    fn frame(tag: u8, body_rest: usize) -> Vec<u8> {
        let mut v = ((1 + body_rest) as u32).to_be_bytes().to_vec();
        v.push(tag);
        v.extend(std::iter::repeat_n(0xEE, body_rest));
        v
    }

    #[test]
    fn frame_scan_finds_pings_across_any_split() {
        let mut stream = Vec::new();
        stream.extend(frame(6, 32)); // a delivery
        stream.extend(frame(PING_TAG, 0));
        stream.extend(frame(4, 20)); // a member joined
        stream.extend(frame(PING_TAG, 0));
        stream.extend(frame(DISCONNECT_TAG, 14));
        for cut in 0..=stream.len() {
            let mut scan = FrameScan::default();
            let a = scan.feed(&stream[..cut]).unwrap();
            let b = scan.feed(&stream[cut..]).unwrap();
            assert_eq!((a + b, scan.pings), (2, 2), "cut at {cut}");
            assert_eq!((scan.frames, scan.disconnects), (5, 1), "cut at {cut}");
            assert_eq!(scan.disconnect_code, Some(0xEE), "cut at {cut}");
        }
        // Byte by byte.
        let mut scan = FrameScan::default();
        let pings: u64 = stream.iter().map(|b| scan.feed(&[*b]).unwrap()).sum();
        assert_eq!((pings, scan.frames), (2, 5));
    }

    #[test]
    fn frame_scan_rejects_impossible_lengths() {
        assert!(FrameScan::default().feed(&[0, 0, 0, 0, 8]).is_err());
        assert!(FrameScan::default()
            .feed(&[0xff, 0xff, 0xff, 0xff, 6])
            .is_err());
        // Four bytes of a length are not yet a frame.
        assert_eq!(FrameScan::default().feed(&[0, 0, 0, 0]), Ok(0));
    }
}
