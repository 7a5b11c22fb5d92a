//! The bystanders: a pair of clients in a room of their own, one sending at a fixed rate,
//! the other timing each delivery.
//!
//! They run on the harness's tokio runtime (they are light). Each message carries its sequence
//! number and the time it was written. The receiver times every message of the measured
//! stretch however late it comes (the phase waits for the stragglers, up to a drain limit),
//! so a stall at the end of a phase is not cut off and "sent" against "received" is exact.

use super::receipts::Receipts;
use super::{setup_frames, setup_request, SETUP_TIMEOUT};
use crate::load::{new_histogram, Totals};
use crate::payload::{self, now_ns, Header};
use crate::proto::{ghost, Event};
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedWriteHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Bytes of each bystander message: the benchmark payload's header and some filler.
pub const BYSTANDER_PAYLOAD: usize = 32;
/// A bystander delivery slower than this counts as "late" (a stall anyone would notice).
pub const LATE_NS: u64 = 100_000_000;

/// Connects one bystander and joins `room`; returns the stream and what was read past
/// `Joined`.
async fn join_async(addr: SocketAddr, room: &str) -> Result<(TcpStream, BytesMut)> {
    tokio::time::timeout(SETUP_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(&setup_request(room)).await?;
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
    /// The receiver's receipts; poisoned only if a read loop panicked, which ends the phase.
    fn receipts(&self) -> Result<MutexGuard<'_, Receipts>> {
        self.receipts
            .lock()
            .map_err(|_| anyhow!("bystander state poisoned"))
    }

    /// Connects the sender, then the receiver, both to `room`, and starts reading.
    pub async fn connect(addr: SocketAddr, room: &str) -> Result<Bystanders> {
        let (sender, sender_buf) = join_async(addr, room).await?;
        let (receiver, receiver_buf) = join_async(addr, room).await?;
        let receipts = Arc::new(Mutex::new(Receipts::new()));
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
            tokio::spawn(read_loop(
                Side::Sender(Arc::clone(&writer)),
                rd,
                sender_buf,
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
            let mut r = self.receipts()?;
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
            let received = self.receipts()?.received;
            if received >= u64::from(measured) || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut r = self.receipts()?;
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

/// Which of the pair a connection is, with the way its pongs reach the socket: the only
/// things in which the two connections' read loops differ.
enum Side<'a> {
    /// Times each delivery; answers pings on its own stream.
    Receiver(WriteHalf<'a>),
    /// Should get nothing but membership news. Its write half is shared with the sending
    /// schedule, so a pong waits for the message being written instead of cutting into it.
    Sender(Arc<tokio::sync::Mutex<OwnedWriteHalf>>),
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        match self {
            Side::Receiver(_) => "receiver",
            Side::Sender(_) => "sender",
        }
    }

    /// Books a delivery whose bytes were read at `read_at` (ns).
    fn delivered(&self, r: &mut Receipts, message: &[u8], read_at: u64) {
        match self {
            Side::Receiver(_) => match payload::read(message, BYSTANDER_PAYLOAD) {
                Ok(h) => r.delivery(h, read_at),
                Err(e) => r.error(format!("bystander payload: {e}")),
            },
            Side::Sender(_) => r.error("the sending bystander got a message".to_owned()),
        }
    }

    async fn write_pong(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Side::Receiver(w) => w.write_all(frame).await,
            Side::Sender(w) => w.lock().await.write_all(frame).await,
        }
    }
}

/// The receiving bystander: times each delivery, answers pings.
async fn receive(
    mut s: TcpStream,
    buf: BytesMut,
    receipts: Arc<Mutex<Receipts>>,
    stop: watch::Receiver<bool>,
) {
    // Borrowed halves: unlike owned ones, they do not shut the stream's write side on drop.
    let (rd, wr) = s.split();
    read_loop(Side::Receiver(wr), rd, buf, receipts, stop).await;
}

/// One bystander connection's reads until `stop` or the connection's end: books the
/// deliveries as `side` says, answers pings, records a relay that closes or fails.
async fn read_loop(
    mut side: Side<'_>,
    mut rd: impl AsyncRead + Unpin,
    mut buf: BytesMut,
    receipts: Arc<Mutex<Receipts>>,
    mut stop: watch::Receiver<bool>,
) {
    // A second handle on the flag, for the select's arms (the first one is borrowed there).
    let stopping = stop.clone();
    // The moment the bytes in `buf` were read: parsing is not part of the latency.
    let mut read_at = now_ns();
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
                    if let Ok(mut r) = receipts.lock() {
                        side.delivered(&mut r, &buf[range], read_at);
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
            if let Err(e) = side.write_pong(&out).await {
                bystander_failed(&receipts, *stop.borrow(), format!("bystander pong: {e}"));
                return;
            }
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|&s| s) => return,
            r = rd.read_buf(&mut buf) => {
                read_at = now_ns();
                match r {
                    Ok(0) => {
                        let what = format!("the bystander {}'s connection closed", side.name());
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
