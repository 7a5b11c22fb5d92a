//! Unit tests of the writer: batching, direct writes begun, slow consumers, farewells.

use super::batcher::frame_rest;
use super::*;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Records every write call, vectored ones as one call.
#[derive(Default)]
struct Recorder {
    writes: Vec<Vec<u8>>,
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.push(buf.to_vec());
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let n = all.len();
        self.writes.push(all);
        Poll::Ready(Ok(n))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn queued_small_frames_go_out_in_one_write() {
    let mut io = Recorder::default();
    let mut batch: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 10])).collect();
    Batcher::default().write(&mut io, &mut batch).await.unwrap();
    assert_eq!(io.writes.len(), 1);
    assert_eq!(io.writes[0].len(), 1000);
    assert!(batch.is_empty());
}

#[tokio::test]
async fn large_frames_go_out_in_one_vectored_write_in_order() {
    let mut io = Recorder::default();
    let frames: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 5000])).collect();
    let mut batch = frames.clone();
    batch.insert(5, Bytes::from_static(b"small"));
    Batcher::default().write(&mut io, &mut batch).await.unwrap();
    // Five large, one small (copied), five large: three calls.
    assert_eq!(io.writes.len(), 3);
    let mut expected = frames[..5].concat();
    expected.extend_from_slice(b"small");
    expected.extend_from_slice(&frames[5..].concat());
    assert_eq!(io.writes.concat(), expected);
}

#[tokio::test]
async fn a_frame_begun_by_a_direct_write_is_finished_first_and_only_its_rest() {
    let mut io = Recorder::default();
    let mut batch = vec![Bytes::from_static(b"defgh"), Bytes::from_static(b"ij")];
    let mut out = Batcher::default();
    out.resume(&mut batch, 2);
    out.write(&mut io, &mut batch).await.unwrap();
    assert_eq!(io.writes.concat(), b"fghij");
}

fn session(outbox: crate::outbox::Outbox) -> Arc<Session> {
    let peer = "127.0.0.1:1".parse().unwrap();
    Arc::new(Session::new(uuid::Uuid::nil(), peer, None, outbox))
}

#[tokio::test]
async fn the_farewell_follows_the_queued_frames() {
    let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
    let (bye_tx, bye_rx) = oneshot::channel();
    tx.try_send(Bytes::from_static(b"a")).unwrap();
    tx.try_send(Bytes::from_static(b"b")).unwrap();
    bye_tx
        .send(Ending::Close(Bytes::from_static(b"bye")))
        .unwrap();
    let mut io = Recorder::default();
    let shared = Arc::new(Shared::new(Default::default(), None));
    write_loop(&mut io, rx, bye_rx, shared, session(tx)).await;
    assert_eq!(io.writes.concat(), b"abbye");
}

/// A socket that never takes a byte: a client that stopped reading, its buffers full.
struct Stuck;

impl AsyncWrite for Stuck {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Pending
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

fn slow_shared() -> Arc<Shared> {
    let config = crate::server::config::Config {
        write_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    Arc::new(Shared::new(config, None))
}

/// Plays the driver's part: once the session ended, hands the writer its farewell.
fn farewell_on_end(
    session: &Arc<Session>,
    bye: oneshot::Sender<Ending>,
    then: impl FnOnce() + Send + 'static,
) {
    let session = Arc::clone(session);
    tokio::spawn(async move {
        session.ended().await;
        then();
        let _ = bye.send(Ending::Close(Bytes::from_static(b"bye")));
    });
}

#[tokio::test(start_paused = true)]
async fn a_write_stuck_past_the_deadline_ends_the_session_as_a_slow_consumer() {
    let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
    let (bye_tx, bye_rx) = oneshot::channel();
    tx.try_send(Bytes::from_static(b"never written")).unwrap();
    let session = session(tx);
    farewell_on_end(&session, bye_tx, || {});
    let started = tokio::time::Instant::now();
    write_loop(Stuck, rx, bye_rx, slow_shared(), Arc::clone(&session)).await;
    // The deadline, then the farewell's patience: the socket never took a byte.
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(10) + FAREWELL_TIMEOUT
    );
    assert_eq!(session.end_reason(), DisconnectReason::SlowConsumer);
}

/// A socket that takes `limit` bytes, then nothing until the limit is lifted.
#[derive(Clone, Default)]
struct Valve {
    taken: Arc<std::sync::Mutex<Vec<u8>>>,
    limit: Arc<std::sync::Mutex<(usize, Option<std::task::Waker>)>>,
}

impl Valve {
    fn new(limit: usize) -> Self {
        let valve = Self::default();
        valve.limit.lock().unwrap().0 = limit;
        valve
    }

    fn open(&self) {
        let mut limit = self.limit.lock().unwrap();
        limit.0 = usize::MAX;
        if let Some(waker) = limit.1.take() {
            waker.wake();
        }
    }
}

impl AsyncWrite for Valve {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut limit = self.limit.lock().unwrap();
        let mut taken = self.taken.lock().unwrap();
        let room = limit.0.saturating_sub(taken.len()).min(buf.len());
        if room == 0 {
            limit.1 = Some(cx.waker().clone());
            return Poll::Pending;
        }
        taken.extend_from_slice(&buf[..room]);
        Poll::Ready(Ok(room))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn frame(fill: u8, len: usize) -> Bytes {
    crate::protocol::encode(&crate::protocol::ServerFrame::Error {
        message: &String::from_utf8(vec![fill; len]).unwrap(),
    })
}

/// Queues `frames`, lets the socket take `cut` bytes and stall past the deadline, then
/// read again once the session ended: what it got in all.
async fn stall_then_read_again(frames: &[Bytes], cut: usize) -> Vec<u8> {
    let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
    let (bye_tx, bye_rx) = oneshot::channel();
    for f in frames {
        tx.try_send(f.clone()).unwrap();
    }
    let valve = Valve::new(cut);
    let session = session(tx);
    let reopen = valve.clone();
    farewell_on_end(&session, bye_tx, move || reopen.open());
    let shared = slow_shared();
    write_loop(valve.clone(), rx, bye_rx, shared, Arc::clone(&session)).await;
    assert_eq!(session.end_reason(), DisconnectReason::SlowConsumer);
    let taken = valve.taken.lock().unwrap().clone();
    taken
}

/// A client stalls in the middle of a frame, and reads again after the deadline: it gets
/// the rest of that frame and the farewell, never a cut frame; what was queued behind is
/// given up.
#[tokio::test(start_paused = true)]
async fn a_stall_mid_frame_ends_with_that_frame_whole_then_the_farewell() {
    for (small, cut) in [(100, 150), (5000, 7000), (5000, 3)] {
        let frames = [frame(b'a', small), frame(b'b', small), frame(b'c', small)];
        // Whole frames up to the one the cut fell in, then the farewell.
        let whole = (cut - 1) / frames[0].len() + 1;
        let mut expected = frames[..whole].concat();
        expected.extend_from_slice(b"bye");
        let taken = stall_then_read_again(&frames, cut).await;
        assert_eq!(taken, expected, "{small} cut at {cut}");
    }
}

/// A socket that takes one byte a second: a client reading slowly, but reading.
struct Trickle {
    taken: Vec<u8>,
    next: Pin<Box<tokio::time::Sleep>>,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.next.as_mut().poll(cx));
        let at = self.next.deadline() + Duration::from_secs(1);
        self.next.as_mut().reset(at);
        self.taken.push(buf[0]);
        Poll::Ready(Ok(1))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `write_timeout` is about a socket that stops taking bytes, not a slow one: a batch that
/// takes far longer than the deadline to trickle out is written whole.
#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_reader_is_not_a_slow_consumer() {
    let (tx, rx) = crate::outbox::outbox(8, 1 << 20);
    let (bye_tx, bye_rx) = oneshot::channel();
    let frames = [frame(b'a', 20), frame(b'b', 20)];
    for f in &frames {
        tx.try_send(f.clone()).unwrap();
    }
    let session = session(tx);
    let mut io = Trickle {
        taken: Vec::new(),
        next: Box::pin(tokio::time::sleep(Duration::ZERO)),
    };
    let started = tokio::time::Instant::now();
    let writer = write_loop(&mut io, rx, bye_rx, slow_shared(), Arc::clone(&session));
    let whole = frames.concat();
    tokio::select! {
        () = writer => panic!("the writer gave up: {:?}", session.end_reason()),
        () = tokio::time::sleep(Duration::from_secs(whole.len() as u64 + 5)) => {}
    }
    // Far past the 10 s deadline, every byte went out and the session lives on.
    assert!(started.elapsed() > Duration::from_secs(10 * 5));
    assert_eq!(io.taken, whole);
    drop(bye_tx);
}

/// The same stall as above, inside a batch's only frame (written from its own buffer).
#[tokio::test(start_paused = true)]
async fn a_stall_inside_a_lone_frame_ends_with_that_frame_whole_then_the_farewell() {
    let lone = frame(b'a', 100);
    let mut expected = lone.to_vec();
    expected.extend_from_slice(b"bye");
    assert_eq!(stall_then_read_again(&[lone], 40).await, expected);
}

#[test]
fn the_rest_of_a_frame_runs_to_its_end_and_is_empty_at_a_boundary() {
    let frames = [frame(b'a', 10), frame(b'b', 20)].concat();
    let first = 4 + 9 + 10;
    assert_eq!(frame_rest(&frames, 0), 0..0);
    assert_eq!(frame_rest(&frames, 2), 2..first);
    assert_eq!(frame_rest(&frames, first), first..first);
    assert_eq!(frame_rest(&frames, first + 1), first + 1..frames.len());
}
