//! The flooders: clients that write tiny `Broadcast` frames back to back in one room, as
//! fast as their sockets take them.
//!
//! They run on plain OS threads with blocking sockets (a writer and a reader each),
//! not on the harness's tokio runtime: a flooding task would hold one of the harness's own
//! workers, and the bystanders would then wait inside the harness rather than in the relay.
//! The reader does not decode what the relay sends: [`FrameScan`] only walks the frame
//! boundaries to find the relay's pings, which the writer answers between two whole frames
//! (a flooder that never answered would be disconnected at the second ping tick).

use super::frame_scan::FrameScan;
use super::{setup_frames, setup_request, SETUP_TIMEOUT};
use crate::proto::ghost;
use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of data in each flood frame: about a game's input packet.
pub const FLOOD_DATA: usize = 8;
/// One flood frame on the wire: the `u32` length, the `Broadcast` tag, the `u64` data length
/// and the data.
pub const FLOOD_FRAME: usize = 4 + 1 + 8 + FLOOD_DATA;
/// Flood frames per write: whole frames filling just under 64 KiB, so a write rarely stops
/// the flow for long and a pong can always be slipped in at a frame boundary.
const FLOOD_FRAMES_PER_WRITE: usize = 65_536 / FLOOD_FRAME;
/// How long a blocking flooder socket call waits before the thread looks at its clock and
/// its stop flag again.
const POLL: Duration = Duration::from_millis(50);
/// After its deadline, how long a flooder may take to finish the frame it is in the middle of.
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// After its writer is done, how long a flooder's reader waits for the relay to close.
const LINGER: Duration = Duration::from_secs(5);

/// Whole `Broadcast` frames of [`FLOOD_DATA`] bytes each, back to back.
pub fn flood_buffer(frames: usize) -> Vec<u8> {
    let data = [0x5A; FLOOD_DATA];
    let mut out = Vec::with_capacity(frames * FLOOD_FRAME);
    for _ in 0..frames {
        ghost::broadcast(&mut out, &data);
    }
    out
}

/// What a flood is told.
#[derive(Clone, Debug)]
pub struct FloodSpec {
    /// The relay.
    pub addr: SocketAddr,
    /// The room every flooder joins.
    pub room: String,
    /// How many flooders.
    pub flooders: usize,
    /// How long they flood, from the moment they all start.
    pub duration: Duration,
    /// Most frames one flooder writes (a bound besides the duration).
    pub max_frames: u64,
}

/// What the flooders did, all together.
#[derive(Clone, Debug, Default)]
pub struct FloodTotals {
    /// Flooders that joined and flooded.
    pub flooders: usize,
    /// Whole flood frames written, all flooders together.
    pub frames_sent: u64,
    /// The longest a flooder's writer ran, seconds.
    pub secs: f64,
    /// Bytes the flooders read from the relay (discarded).
    pub bytes_received: u64,
    /// Frames in those bytes.
    pub frames_received: u64,
    /// Pings answered.
    pub pongs: u64,
    /// Flooders the relay disconnected or closed before their writer was done.
    pub closed_by_relay: u64,
    /// The codes of the relay's `Disconnect` frames to flooders (PROTOCOL.md section 6).
    pub disconnect_codes: Vec<u8>,
    /// What went wrong, word for word (a few).
    pub errors: Vec<String>,
}

/// State a flooder's writer and reader share.
#[derive(Debug, Default)]
struct FlooderShared {
    /// Pings read and not yet answered.
    pongs_due: AtomicU64,
    /// The writer has finished (so an end of stream from the relay is expected).
    writer_done: AtomicBool,
}

struct WriterReport {
    frames: u64,
    pongs: u64,
    secs: f64,
    error: Option<String>,
}

struct ReaderReport {
    bytes: u64,
    frames: u64,
    closed_by_relay: bool,
    disconnect_code: Option<u8>,
    error: Option<String>,
}

/// A running flood: a writer and a reader thread per flooder.
pub struct Flood {
    writers: Vec<JoinHandle<WriterReport>>,
    readers: Vec<JoinHandle<ReaderReport>>,
    stop: Arc<AtomicBool>,
}

impl Flood {
    /// Connects and joins every flooder, then starts them all at once. Blocks: call it from
    /// a blocking context (`spawn_blocking`).
    pub fn start(spec: &FloodSpec) -> Result<Flood> {
        let mut joined = Vec::with_capacity(spec.flooders);
        for i in 0..spec.flooders {
            joined.push(join_blocking(spec.addr, &spec.room).with_context(|| {
                format!("flooder {i} of {} joining {}", spec.flooders, spec.room)
            })?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut flood = Flood {
            writers: Vec::new(),
            readers: Vec::new(),
            stop: Arc::clone(&stop),
        };
        let deadline = Instant::now() + spec.duration;
        let reader_until = deadline + FINISH_GRACE + LINGER;
        for (i, (stream, leftover)) in joined.into_iter().enumerate() {
            let shared = Arc::new(FlooderShared::default());
            let started = (|| {
                let rd = stream.try_clone()?;
                let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
                let max = spec.max_frames;
                flood.writers.push(
                    std::thread::Builder::new()
                        .name(format!("flood-w{i}"))
                        .spawn(move || flood_writer(stream, deadline, max, &sh, &st))?,
                );
                let (sh, st) = (shared, Arc::clone(&stop));
                flood.readers.push(
                    std::thread::Builder::new()
                        .name(format!("flood-r{i}"))
                        .spawn(move || flood_reader(rd, &leftover, reader_until, &sh, &st))?,
                );
                Ok::<_, std::io::Error>(())
            })();
            if let Err(e) = started {
                flood.stop();
                flood.join();
                return Err(anyhow!("starting flooder {i}: {e}"));
            }
        }
        Ok(flood)
    }

    /// Asks every flooder to stop now (they also stop by themselves at their deadline).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for every flooder's threads (blocks) and adds up what they did.
    pub fn join(self) -> FloodTotals {
        let mut t = FloodTotals {
            flooders: self.writers.len(),
            ..FloodTotals::default()
        };
        let mut errors = Vec::new();
        for w in self.writers {
            match w.join() {
                Ok(r) => {
                    t.frames_sent += r.frames;
                    t.pongs += r.pongs;
                    t.secs = t.secs.max(r.secs);
                    errors.extend(r.error);
                }
                Err(_) => errors.push("a flooder's writer panicked".to_owned()),
            }
        }
        for r in self.readers {
            match r.join() {
                Ok(r) => {
                    t.bytes_received += r.bytes;
                    t.frames_received += r.frames;
                    t.closed_by_relay += u64::from(r.closed_by_relay);
                    t.disconnect_codes.extend(r.disconnect_code);
                    errors.extend(r.error);
                }
                Err(_) => errors.push("a flooder's reader panicked".to_owned()),
            }
        }
        errors.truncate(5);
        t.errors = errors;
        t
    }
}

/// Connects one flooder with a blocking socket and joins `room`; returns the socket and what
/// was read past `Joined`.
fn join_blocking(addr: SocketAddr, room: &str) -> Result<(std::net::TcpStream, BytesMut)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(SETUP_TIMEOUT))?;
    s.write_all(&setup_request(room))?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while !setup_frames(&mut buf)? {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("the relay closed the connection during setup");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((s, buf))
}

/// Writes all of `bytes` on a socket with a write timeout, retrying until `until`.
fn write_fully(s: &mut std::net::TcpStream, mut bytes: &[u8], until: Instant) -> Result<()> {
    while !bytes.is_empty() {
        match s.write(bytes) {
            Ok(0) => bail!("the relay stopped taking bytes"),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if retry(&e) => {
                if Instant::now() >= until {
                    bail!("the relay took no bytes for too long");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A blocking call that only timed out (or was interrupted): try again.
fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// One flooder's writer: whole frames as fast as the socket takes them, pongs slipped in at
/// frame boundaries, until the deadline (then the frame in progress is finished).
fn flood_writer(
    mut s: std::net::TcpStream,
    deadline: Instant,
    max_frames: u64,
    shared: &FlooderShared,
    stop: &AtomicBool,
) -> WriterReport {
    let buf = flood_buffer(FLOOD_FRAMES_PER_WRITE);
    let give_up = deadline + FINISH_GRACE;
    let t0 = Instant::now();
    let mut off = 0;
    let mut bytes: u64 = 0;
    let mut pongs = 0;
    let mut error = s
        .set_write_timeout(Some(POLL))
        .err()
        .map(|e| format!("flooder socket: {e}"));
    while error.is_none() {
        let now = Instant::now();
        let over = now >= deadline
            || stop.load(Ordering::Acquire)
            || bytes / FLOOD_FRAME as u64 >= max_frames;
        if off % FLOOD_FRAME == 0 {
            if over {
                break;
            }
            let due = shared.pongs_due.swap(0, Ordering::AcqRel);
            for _ in 0..due {
                if let Err(e) = write_fully(&mut s, &[0, 0, 0, 1, 5], give_up) {
                    error = Some(format!("flooder pong: {e:#}"));
                    break;
                }
                pongs += 1;
            }
            if error.is_some() {
                break;
            }
        } else if now >= give_up {
            error = Some("the relay took no bytes for 2 s past the flood's end".to_owned());
            break;
        }
        // Past the deadline, only the rest of the frame in progress.
        let end = if over {
            off + FLOOD_FRAME - off % FLOOD_FRAME
        } else {
            buf.len()
        };
        match s.write(&buf[off..end]) {
            Ok(0) => error = Some("the relay stopped taking bytes".to_owned()),
            Ok(n) => {
                off += n;
                bytes += n as u64;
                if off == buf.len() {
                    off = 0;
                }
            }
            Err(e) if retry(&e) => {}
            Err(e) => error = Some(format!("flood write: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    shared.writer_done.store(true, Ordering::Release);
    // A clean end of stream: the relay serves what it read, then closes its side.
    let _ = s.shutdown(Shutdown::Write);
    WriterReport {
        frames: bytes / FLOOD_FRAME as u64,
        pongs,
        secs,
        error,
    }
}

/// One flooder's reader: drains the socket, discarding everything but the count of pings,
/// until the relay closes or `until`.
fn flood_reader(
    mut s: std::net::TcpStream,
    leftover: &[u8],
    until: Instant,
    shared: &FlooderShared,
    stop: &AtomicBool,
) -> ReaderReport {
    let mut scan = FrameScan::default();
    let mut report = ReaderReport {
        bytes: 0,
        frames: 0,
        closed_by_relay: false,
        disconnect_code: None,
        error: None,
    };
    let mut buf = vec![0u8; 256 * 1024];
    let step = |scan: &mut FrameScan, bytes: &[u8]| match scan.feed(bytes) {
        Ok(pings) => {
            shared.pongs_due.fetch_add(pings, Ordering::AcqRel);
            Ok(())
        }
        Err(e) => Err(format!("flooder read: {e}")),
    };
    report.error = step(&mut scan, leftover).err();
    if let Err(e) = s.set_read_timeout(Some(POLL)) {
        report.error = Some(format!("flooder socket: {e}"));
    }
    while report.error.is_none() && Instant::now() < until && !stop.load(Ordering::Acquire) {
        match s.read(&mut buf) {
            Ok(0) => {
                report.closed_by_relay = !shared.writer_done.load(Ordering::Acquire);
                break;
            }
            Ok(n) => {
                report.bytes += n as u64;
                report.error = step(&mut scan, &buf[..n]).err();
            }
            Err(e) if retry(&e) => {}
            Err(e) => {
                report.closed_by_relay = !shared.writer_done.load(Ordering::Acquire);
                report.error = Some(format!("flooder read: {e}"));
            }
        }
    }
    report.frames = scan.frames;
    report.closed_by_relay |= scan.disconnects > 0;
    report.disconnect_code = scan.disconnect_code;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_buffer_is_whole_broadcast_frames() {
        let buf = flood_buffer(3);
        assert_eq!(buf.len(), 3 * FLOOD_FRAME);
        let mut one = Vec::new();
        ghost::broadcast(&mut one, &[0x5A; FLOOD_DATA]);
        assert_eq!(one.len(), FLOOD_FRAME);
        assert!(buf.chunks(FLOOD_FRAME).all(|c| c == one.as_slice()));
        assert_eq!(flood_buffer(FLOOD_FRAMES_PER_WRITE).len() % FLOOD_FRAME, 0);
    }
}
