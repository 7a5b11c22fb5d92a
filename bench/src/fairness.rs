//! The fairness scenario's clients (ghost-sync only): *flooders*, which write tiny `Broadcast`
//! frames back to back as fast as their sockets take them, and a *bystander* pair in another
//! room, one member sending a small timestamped message at a fixed rate and the other timing
//! every delivery. The question is whether a few connections' backlogs can hold the relay's
//! worker threads so long that connections in other rooms wait; the bystanders' latency with
//! and without flooders answers it.
//!
//! **Flooders** run on plain OS threads with blocking sockets (a writer and a reader each),
//! not on the harness's tokio runtime: a flooding task would hold one of the harness's own
//! workers, and the bystanders would then wait inside the harness rather than in the relay.
//! The reader does not decode what the relay sends: [`FrameScan`] only walks the frame
//! boundaries to find the relay's pings, which the writer answers between two whole frames
//! (a flooder that never answered would be disconnected at the second ping tick).
//!
//! **Bystanders** run on the runtime (they are light). Each message carries its sequence
//! number and the time it was written. The receiver times every message of the measured
//! stretch however late it comes (the phase waits for the stragglers, up to a drain limit),
//! so a stall at the end of a phase is not cut off and "sent" against "received" is exact.

use crate::check::{Outcome, SeqChecker};
use crate::load::{new_histogram, Totals};
use crate::payload::{self, now_ns, Header};
use crate::proto::{ghost, Event};
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Bytes of data in each flood frame: about a game's input packet.
pub const FLOOD_DATA: usize = 8;
/// One flood frame on the wire: the `u32` length, the `Broadcast` tag, the `u64` data length
/// and the data.
pub const FLOOD_FRAME: usize = 4 + 1 + 8 + FLOOD_DATA;
/// Flood frames per write: whole frames filling just under 64 KiB, so a write rarely stops
/// the flow for long and a pong can always be slipped in at a frame boundary.
const FLOOD_FRAMES_PER_WRITE: usize = 65_536 / FLOOD_FRAME;
/// The relay's `Ping` tag (PROTOCOL.md).
const PING_TAG: u8 = 8;
/// The relay's `Disconnect` tag (PROTOCOL.md).
const DISCONNECT_TAG: u8 = 10;
/// How long a blocking flooder socket call waits before the thread looks at its clock and
/// its stop flag again.
const POLL: Duration = Duration::from_millis(50);
/// After its deadline, how long a flooder may take to finish the frame it is in the middle of.
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// After its writer is done, how long a flooder's reader waits for the relay to close.
const LINGER: Duration = Duration::from_secs(5);
/// Longest a connection's setup (connect, `Hello`, `Join`) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of each bystander message: the benchmark payload's header and some filler.
pub const BYSTANDER_PAYLOAD: usize = 32;
/// A bystander delivery slower than this counts as "late" (a stall anyone would notice).
pub const LATE_NS: u64 = 100_000_000;

/// Whole `Broadcast` frames of [`FLOOD_DATA`] bytes each, back to back.
pub fn flood_buffer(frames: usize) -> Vec<u8> {
    let data = [0x5A; FLOOD_DATA];
    let mut out = Vec::with_capacity(frames * FLOOD_FRAME);
    for _ in 0..frames {
        ghost::broadcast(&mut out, &data);
    }
    out
}

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

/// Takes the setup frames off the front of `buf`: true once `Joined` came (whatever follows
/// it stays in `buf`); an error if the relay refused.
fn setup_frames(buf: &mut BytesMut) -> Result<bool> {
    loop {
        let Some((event, used)) =
            ghost::parse(buf).map_err(|e| anyhow!("ghost-sync setup: {e}"))?
        else {
            return Ok(false);
        };
        buf.advance(used);
        match event {
            Event::Subscribed => return Ok(true),
            Event::Fail(why) | Event::Closed(why) => bail!("ghost-sync setup: {why}"),
            _ => {}
        }
    }
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
    let mut out = Vec::new();
    ghost::hello(&mut out);
    ghost::join(&mut out, room);
    s.write_all(&out)?;
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

/// Connects one bystander and joins `room`; returns the stream and what was read past
/// `Joined`.
async fn join_async(addr: SocketAddr, room: &str) -> Result<(TcpStream, BytesMut)> {
    tokio::time::timeout(SETUP_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut out = Vec::new();
        ghost::hello(&mut out);
        ghost::join(&mut out, room);
        s.write_all(&out).await?;
        let mut buf = BytesMut::with_capacity(4096);
        while !setup_frames(&mut buf)? {
            if s.read_buf(&mut buf).await? == 0 {
                bail!("the relay closed the connection during setup");
            }
        }
        Ok((s, buf))
    })
    .await
    .map_err(|_| anyhow!("bystander setup timed out"))?
}

/// What the bystanders' receiver has seen.
struct Receipts {
    checker: SeqChecker,
    /// Sequence numbers of the phase being measured.
    measured: Range<u32>,
    hist: Histogram<u64>,
    /// Messages of `measured` received.
    received: u64,
    /// Of those, slower than [`LATE_NS`].
    late: u64,
    disconnects: u64,
    error_count: u64,
    errors: Vec<String>,
}

impl Receipts {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }

    fn delivery(&mut self, h: Header, now: u64) {
        if h.publisher != 0 {
            self.error(format!(
                "a bystander got a message from publisher {}",
                h.publisher
            ));
            return;
        }
        if let Some(Outcome::Stale) | None = self.checker.observe(0, h.seq) {
            return;
        }
        if self.measured.contains(&h.seq) {
            let latency = now.saturating_sub(h.sent_ns);
            self.hist.saturating_record(latency.max(1));
            self.received += 1;
            self.late += u64::from(latency > LATE_NS);
        }
    }
}

/// What the bystanders measured in one phase.
#[derive(Debug)]
pub struct BystanderPhase {
    /// Seconds over which the measured messages were sent.
    pub secs: f64,
    /// Messages of the measured stretch sent.
    pub sent: u64,
    /// Of those, received (before the drain limit).
    pub received: u64,
    /// Of those, slower than [`LATE_NS`].
    pub late: u64,
    /// Their latencies, ns.
    pub hist: Histogram<u64>,
    /// The largest lag of a send (write done) behind its schedule: the harness's own delay,
    /// not in the latency, which counts from the write.
    pub sender_lag_max_ns: u64,
}

/// A pair of clients in one room: one sends, the other times what it gets.
pub struct Bystanders {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    receipts: Arc<Mutex<Receipts>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    next_seq: u32,
    template: Vec<u8>,
}

impl Bystanders {
    /// Connects the sender, then the receiver, both to `room`, and starts reading.
    pub async fn connect(addr: SocketAddr, room: &str) -> Result<Bystanders> {
        let (sender, sender_buf) = join_async(addr, room).await?;
        let (receiver, receiver_buf) = join_async(addr, room).await?;
        let receipts = Arc::new(Mutex::new(Receipts {
            checker: SeqChecker::new(1),
            measured: 0..0,
            hist: new_histogram(),
            received: 0,
            late: 0,
            disconnects: 0,
            error_count: 0,
            errors: Vec::new(),
        }));
        let (stop, stop_rx) = watch::channel(false);
        let (rd, wr) = sender.into_split();
        let writer = Arc::new(tokio::sync::Mutex::new(wr));
        let tasks = vec![
            tokio::spawn(receive(
                receiver,
                receiver_buf,
                Arc::clone(&receipts),
                stop_rx.clone(),
            )),
            tokio::spawn(sender_pings(
                rd,
                sender_buf,
                Arc::clone(&writer),
                Arc::clone(&receipts),
                stop_rx,
            )),
        ];
        Ok(Bystanders {
            writer,
            receipts,
            stop,
            tasks,
            next_seq: 0,
            template: payload::template(BYSTANDER_PAYLOAD),
        })
    }

    /// Sends at `rate` for `warmup` (not measured), then for `measure`, then waits up to
    /// `drain` for the measured messages still on their way.
    pub async fn phase(
        &mut self,
        rate: f64,
        warmup: Duration,
        measure: Duration,
        drain: Duration,
    ) -> Result<BystanderPhase> {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let count = |d: Duration| (d.as_secs_f64() * rate).round() as u32;
        let (warm, measured) = (count(warmup), count(measure).max(1));
        let first = self.next_seq.wrapping_add(warm);
        {
            let mut r = self
                .receipts
                .lock()
                .map_err(|_| anyhow!("bystander state poisoned"))?;
            r.measured = first..first.wrapping_add(measured);
            r.hist.reset();
            r.received = 0;
            r.late = 0;
        }
        let t0 = tokio::time::Instant::now();
        let mut measured_from = None;
        let mut lag_max = Duration::ZERO;
        let mut out = Vec::with_capacity(BYSTANDER_PAYLOAD + 16);
        for i in 0..warm + measured {
            let due = t0 + interval * i;
            tokio::time::sleep_until(due).await;
            if i == warm {
                measured_from = Some(Instant::now());
            }
            payload::write(
                &mut self.template,
                Header {
                    publisher: 0,
                    seq: self.next_seq,
                    sent_ns: now_ns(),
                },
            );
            out.clear();
            ghost::broadcast(&mut out, &self.template);
            self.writer
                .lock()
                .await
                .write_all(&out)
                .await
                .context("bystander send")?;
            lag_max = lag_max.max(tokio::time::Instant::now().saturating_duration_since(due));
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        let secs = measured_from.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let until = Instant::now() + drain;
        loop {
            let received = self
                .receipts
                .lock()
                .map_err(|_| anyhow!("bystander state poisoned"))?
                .received;
            if received >= u64::from(measured) || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut r = self
            .receipts
            .lock()
            .map_err(|_| anyhow!("bystander state poisoned"))?;
        let hist = std::mem::replace(&mut r.hist, new_histogram());
        // Later stragglers of this phase no longer count.
        r.measured = 0..0;
        Ok(BystanderPhase {
            secs,
            sent: u64::from(measured),
            received: r.received,
            late: r.late,
            hist,
            sender_lag_max_ns: lag_max.as_nanos() as u64,
        })
    }

    /// Stops both clients and returns the checks over every phase: order, loss (whatever
    /// was sent and never came), disconnects and errors.
    pub async fn finish(self) -> Totals {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let sent = self.next_seq;
        let mut totals = Totals {
            sent: u64::from(sent),
            ..Totals::default()
        };
        match self.receipts.lock() {
            Ok(mut r) => {
                r.checker.finish(|_| sent);
                totals.received = r.checker.received;
                totals.lost = r.checker.lost;
                totals.stale = r.checker.stale;
                totals.disconnects = r.disconnects;
                totals.error_count = r.error_count;
                totals.errors = r.errors.clone();
            }
            Err(_) => {
                totals.error_count = 1;
                totals.errors.push("bystander state poisoned".to_owned());
            }
        }
        totals
    }
}

/// Records a failure of a bystander connection (unless it is closing on purpose).
fn bystander_failed(receipts: &Mutex<Receipts>, stopping: bool, what: String) {
    if stopping {
        return;
    }
    if let Ok(mut r) = receipts.lock() {
        r.disconnects += 1;
        r.error(what);
    }
}

/// The receiving bystander: times each delivery, answers pings.
async fn receive(
    mut s: TcpStream,
    mut buf: BytesMut,
    receipts: Arc<Mutex<Receipts>>,
    mut stop: watch::Receiver<bool>,
) {
    // A second handle on the flag, for the select's arms (the first one is borrowed there).
    let stopping = stop.clone();
    // The moment the bytes in `buf` were read: parsing is not part of the latency.
    let mut now = now_ns();
    loop {
        let mut pong = false;
        loop {
            let (event, used) = match ghost::parse(&buf) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    bystander_failed(&receipts, false, format!("bystander protocol error: {e}"));
                    return;
                }
            };
            match event {
                Event::Deliver(range) => {
                    let h = payload::read(&buf[range], BYSTANDER_PAYLOAD);
                    if let Ok(mut r) = receipts.lock() {
                        match h {
                            Ok(h) => r.delivery(h, now),
                            Err(e) => r.error(format!("bystander payload: {e}")),
                        }
                    }
                }
                Event::Ping => pong = true,
                Event::Closed(why) => {
                    bystander_failed(&receipts, *stop.borrow(), format!("bystander: {why}"));
                    return;
                }
                Event::Fail(why) => {
                    if let Ok(mut r) = receipts.lock() {
                        r.error(format!("bystander: {why}"));
                    }
                }
                _ => {}
            }
            buf.advance(used);
        }
        if pong {
            let mut out = Vec::new();
            ghost::pong(&mut out);
            if let Err(e) = s.write_all(&out).await {
                bystander_failed(&receipts, *stop.borrow(), format!("bystander pong: {e}"));
                return;
            }
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|&s| s) => return,
            r = s.read_buf(&mut buf) => {
                now = now_ns();
                match r {
                    Ok(0) => {
                        let what = "the bystander receiver's connection closed".to_owned();
                        bystander_failed(&receipts, *stopping.borrow(), what);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        bystander_failed(&receipts, *stopping.borrow(), format!("bystander read: {e}"));
                        return;
                    }
                }
            }
        }
    }
}

/// The sending bystander's read side: answers pings (through the shared writer); nothing
/// else should come but membership news.
async fn sender_pings(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut buf: BytesMut,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    receipts: Arc<Mutex<Receipts>>,
    mut stop: watch::Receiver<bool>,
) {
    // A second handle on the flag, for the select's arms (the first one is borrowed there).
    let stopping = stop.clone();
    loop {
        let mut pong = false;
        loop {
            let (event, used) = match ghost::parse(&buf) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    bystander_failed(&receipts, false, format!("bystander protocol error: {e}"));
                    return;
                }
            };
            buf.advance(used);
            match event {
                Event::Ping => pong = true,
                Event::Deliver(_) => {
                    if let Ok(mut r) = receipts.lock() {
                        r.error("the sending bystander got a message".to_owned());
                    }
                }
                Event::Closed(why) => {
                    bystander_failed(&receipts, *stop.borrow(), format!("bystander: {why}"));
                    return;
                }
                Event::Fail(why) => {
                    if let Ok(mut r) = receipts.lock() {
                        r.error(format!("bystander: {why}"));
                    }
                }
                _ => {}
            }
        }
        if pong {
            let mut out = Vec::new();
            ghost::pong(&mut out);
            if let Err(e) = writer.lock().await.write_all(&out).await {
                bystander_failed(&receipts, *stop.borrow(), format!("bystander pong: {e}"));
                return;
            }
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|&s| s) => return,
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    let what = "the bystander sender's connection closed".to_owned();
                    bystander_failed(&receipts, *stopping.borrow(), what);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    bystander_failed(&receipts, *stopping.borrow(), format!("bystander read: {e}"));
                    return;
                }
            },
        }
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
    fn flood_buffer_is_whole_broadcast_frames() {
        let buf = flood_buffer(3);
        assert_eq!(buf.len(), 3 * FLOOD_FRAME);
        let mut one = Vec::new();
        ghost::broadcast(&mut one, &[0x5A; FLOOD_DATA]);
        assert_eq!(one.len(), FLOOD_FRAME);
        assert!(buf.chunks(FLOOD_FRAME).all(|c| c == one.as_slice()));
        assert_eq!(flood_buffer(FLOOD_FRAMES_PER_WRITE).len() % FLOOD_FRAME, 0);
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

    #[test]
    fn receipts_time_only_the_measured_stretch_and_count_late_ones() {
        let mut r = Receipts {
            checker: SeqChecker::new(1),
            measured: 2..4,
            hist: new_histogram(),
            received: 0,
            late: 0,
            disconnects: 0,
            error_count: 0,
            errors: Vec::new(),
        };
        let at = |seq, sent_ns| Header {
            publisher: 0,
            seq,
            sent_ns,
        };
        let now = 10 * LATE_NS;
        r.delivery(at(0, now - 1), now);
        r.delivery(at(1, now - 1), now);
        r.delivery(at(2, now - 1_000), now);
        r.delivery(at(2, now - 1_000), now); // a duplicate: not timed again
        r.delivery(at(3, now - 2 * LATE_NS), now);
        r.delivery(at(4, now - 5 * LATE_NS), now);
        assert_eq!((r.received, r.late, r.hist.len()), (2, 1, 2));
        assert_eq!(r.checker.stale, 1);
        r.delivery(at(0, 0), now);
        r.delivery(
            Header {
                publisher: 9,
                ..at(5, 0)
            },
            now,
        );
        assert_eq!((r.checker.stale, r.error_count), (2, 1));
    }
}
