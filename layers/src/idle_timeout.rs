//! Closes connections on which no frame has arrived for a while.
//!
//! An idle timeout has *connection scope*: it must notice silence, and a
//! per-frame service only runs when a frame arrives, so it cannot. The job is
//! therefore split in two:
//!
//! - [`IdleTimeoutLayer`] is a per-frame layer that records each frame's
//!   arrival on the connection's [`ActivityClock`], reached through
//!   [`HasActivityClock`];
//! - [`IdleDeadline`] is a future, made by [`ActivityClock::deadline`], that
//!   the connection driver selects on next to its reads; it completes with
//!   [`IdleTimeoutElapsed`] once the clock has been silent for the timeout.
//!
//! Recording activity costs one clock read and one relaxed atomic store; it
//! never touches the timer. The deadline re-arms its single timer lazily,
//! only when the timer fires, so a busy connection costs about one timer
//! operation per timeout period rather than one per frame.
//!
//! ```
//! use ghost_sync_layers::ActivityClock;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let clock = ActivityClock::new();
//! let idle = clock.deadline(Duration::from_secs(30));
//! tokio::select! {
//!     elapsed = idle => println!("closing: {elapsed}"),
//!     // A real driver reads frames here and calls them through the stack.
//!     _ = std::future::pending::<()>() => {}
//! }
//! # }
//! ```
//!
//! Times come from [`tokio::time::Instant`], so paused tokio time in tests
//! drives both halves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Records when a connection last received a frame.
///
/// Clones share the same record, so the per-frame layer and the connection's
/// [`IdleDeadline`] can each hold one.
#[derive(Clone, Debug)]
pub struct ActivityClock {
    // Every clone keeps the same base, so offsets stored by one clone mean
    // the same instant to all of them. Storing an offset rather than an
    // `Instant` is what lets the record be a lock-free atomic.
    base: Instant,
    nanos_since_base: Arc<AtomicU64>,
}

impl ActivityClock {
    /// Creates a clock whose last activity is now.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            nanos_since_base: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let elapsed = Instant::now().saturating_duration_since(self.base);
        // A `u64` of nanoseconds spans about 584 years, so saturation is
        // unreachable in practice but keeps this panic-free.
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed is enough: the value is a hint read by one deadline, not a
        // guard for other memory. Racing touches may store slightly out of
        // order, which at worst moves the deadline by the race's width.
        self.nanos_since_base.store(nanos, Ordering::Relaxed);
    }

    /// Returns when activity was last recorded.
    pub fn last_activity(&self) -> Instant {
        let nanos = self.nanos_since_base.load(Ordering::Relaxed);
        self.base + Duration::from_nanos(nanos)
    }

    /// Returns a future completing once there has been no activity for
    /// `timeout`.
    pub fn deadline(&self, timeout: Duration) -> IdleDeadline {
        IdleDeadline {
            sleep: tokio::time::sleep_until(deadline_after(self.last_activity(), timeout)),
            clock: self.clone(),
            timeout,
        }
    }
}

impl Default for ActivityClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `timeout` to `instant` without panicking on overflow.
fn deadline_after(instant: Instant, timeout: Duration) -> Instant {
    // A timeout too long to represent never fires in practice; tokio itself
    // uses roughly thirty years as "far future".
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    instant
        .checked_add(timeout)
        .or_else(|| instant.checked_add(FAR_FUTURE))
        .unwrap_or(instant)
}

pin_project! {
    /// Future completing once an [`ActivityClock`] has been silent for a
    /// timeout; made by [`ActivityClock::deadline`].
    ///
    /// It holds a single timer armed at the last activity plus the timeout.
    /// When the timer fires it re-reads the clock: if there was activity
    /// since, it moves the same timer to the new deadline and keeps waiting;
    /// otherwise it completes.
    ///
    /// Polling again after completion is allowed: it completes again at once
    /// unless the clock was touched since, in which case it waits for the
    /// new deadline, so a driver can keep one `IdleDeadline` for the whole
    /// connection.
    pub struct IdleDeadline {
        #[pin]
        sleep: Sleep,
        clock: ActivityClock,
        timeout: Duration,
    }
}

impl IdleDeadline {
    /// Returns the silence this deadline waits for.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Future for IdleDeadline {
    type Output = IdleTimeoutElapsed;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let deadline = deadline_after(this.clock.last_activity(), *this.timeout);
            // Each pass moves the deadline strictly forward or completes, so
            // the loop ends.
            if deadline > this.sleep.deadline() {
                this.sleep.as_mut().reset(deadline);
            } else {
                return Poll::Ready(IdleTimeoutElapsed {
                    timeout: *this.timeout,
                });
            }
        }
    }
}

impl fmt::Debug for IdleDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleDeadline")
            .field("armed_at", &self.sleep.deadline())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A request that can reach its connection's [`ActivityClock`].
pub trait HasActivityClock {
    /// Returns the clock of the connection this request arrived on.
    fn activity_clock(&self) -> &ActivityClock;
}

/// Applies [`IdleTimeout`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleTimeoutLayer {
    _priv: (),
}

impl IdleTimeoutLayer {
    /// Creates the layer.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for IdleTimeoutLayer {
    type Service = IdleTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdleTimeout::new(inner)
    }
}

/// Records each request's arrival on its connection's [`ActivityClock`],
/// then forwards it unchanged.
///
/// The clock is touched in `call`, before the inner service runs, so a slow
/// handler does not make an active connection look idle.
#[derive(Debug, Clone)]
pub struct IdleTimeout<S> {
    inner: S,
}

impl<S> IdleTimeout<S> {
    /// Wraps `inner`, touching each request's clock.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for IdleTimeout<S>
where
    S: Service<R>,
    R: HasActivityClock,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        req.activity_clock().touch();
        self.inner.call(req)
    }
}

/// The output of an [`IdleDeadline`]: no frame arrived within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimeoutElapsed {
    /// The silence that was allowed.
    pub timeout: Duration,
}

impl fmt::Display for IdleTimeoutElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no frame received for {:?}", self.timeout)
    }
}

impl std::error::Error for IdleTimeoutElapsed {}
