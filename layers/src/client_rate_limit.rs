//! Limits how fast one client may send, in frames and in bytes per second.
//!
//! This layer has *frame scope*, with state kept per connection: the relay
//! builds one frame stack per connection, so each service made by
//! [`ClientRateLimitLayer`] owns its own pair of token buckets, and the
//! clones of that service (as tower's middleware makes them) share those
//! buckets. A client therefore cannot escape its budget by pipelining, and
//! one client's traffic never spends another's.
//!
//! Each bucket starts full, holds at most its burst, and refills continuously
//! at its rate. A frame costs one frame token and [`PayloadLength::payload_len`]
//! byte tokens, and passes only if *both* buckets can pay. A frame over budget
//! is refused at once with [`RateLimited`], without waiting, without calling
//! the inner service and without spending any tokens, so a refused frame does
//! not eat into the budget of the frames after it.
//!
//! Every refusal counts as a violation. With
//! [`disconnect_after`](ClientRateLimitLayer::disconnect_after) set, the
//! refusal that brings the count to the threshold is
//! [`RateLimitViolations`] instead, which the relay answers by closing the
//! connection.
//!
//! Time comes from [`tokio::time::Instant`], so paused tokio time in tests
//! drives the refill.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::{Layer, Service};

use crate::{BoxError, PayloadLength};

/// Bucket levels are kept in token-nanoseconds, so that a refill of
/// `elapsed_nanos * rate` is exact integer arithmetic: no rounding drift
/// however often a busy connection refills.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Applies [`ClientRateLimit`] to a service, one pair of buckets per service.
///
/// ```
/// use ghost_sync_layers::ClientRateLimitLayer;
///
/// // 20 frames and 64 KiB per second, bursts of up to 40 frames, and a
/// // disconnect on the tenth refused frame.
/// let layer = ClientRateLimitLayer::new(20, 64 * 1024)
///     .burst_frames(40)
///     .disconnect_after(10);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClientRateLimitLayer {
    config: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    frames_per_second: u32,
    bytes_per_second: u64,
    burst_frames: u32,
    burst_bytes: u64,
    disconnect_after: Option<u32>,
    /// Admit everything without any bookkeeping (see [`ClientRateLimitLayer::unlimited`]).
    unlimited: bool,
}

impl ClientRateLimitLayer {
    /// Creates a layer allowing `frames_per_second` frames and
    /// `bytes_per_second` payload bytes per second to each client.
    ///
    /// Bursts default to one second's worth of each, and violations never
    /// disconnect. A rate of zero never refills, so with a zero rate only
    /// the burst (zero by default) ever passes.
    pub const fn new(frames_per_second: u32, bytes_per_second: u64) -> Self {
        Self {
            config: Config {
                frames_per_second,
                bytes_per_second,
                burst_frames: frames_per_second,
                burst_bytes: bytes_per_second,
                disconnect_after: None,
                unlimited: false,
            },
        }
    }

    /// A layer that admits every frame and keeps no state: what a stack that must contain
    /// the layer uses for "no limit", at no cost per frame.
    pub const fn unlimited() -> Self {
        let mut layer = Self::new(u32::MAX, u64::MAX);
        layer.config.unlimited = true;
        layer
    }

    /// Sets how many frames a client may send at once after being quiet.
    pub const fn burst_frames(mut self, burst: u32) -> Self {
        self.config.burst_frames = burst;
        self
    }

    /// Sets how many payload bytes a client may send at once after being
    /// quiet.
    ///
    /// This also caps the size of a single frame: a frame whose payload is
    /// larger than the byte burst can never be paid for, so it is always
    /// refused, and each such refusal counts as a violation.
    pub const fn burst_bytes(mut self, burst: u64) -> Self {
        self.config.burst_bytes = burst;
        self
    }

    /// Turns the `violations`-th refused frame of a connection into
    /// [`RateLimitViolations`], the signal to disconnect it.
    ///
    /// Violations are counted over the whole life of the service and are
    /// never forgiven; a threshold of zero is treated as one.
    pub const fn disconnect_after(mut self, violations: u32) -> Self {
        self.config.disconnect_after = Some(if violations == 0 { 1 } else { violations });
        self
    }
}

impl<S> Layer<S> for ClientRateLimitLayer {
    type Service = ClientRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientRateLimit {
            inner,
            state: (!self.config.unlimited)
                .then(|| Arc::new(Mutex::new(State::new(&self.config, Instant::now())))),
            disconnect_after: self.config.disconnect_after,
        }
    }
}

/// Refuses frames beyond a client's frame and byte budgets.
///
/// See the [module documentation](self) for how the budgets work. Clones
/// share the budgets of the service they were cloned from; nothing is
/// reserved in `poll_ready`, so a derived `Clone` is sound.
#[derive(Debug, Clone)]
pub struct ClientRateLimit<S> {
    inner: S,
    // A std mutex is enough: it guards a few integers, is held only for the
    // arithmetic in `call`, and never across an `.await`. `None`: unlimited,
    // so a relay without a limit pays no lock and no clock read per frame.
    state: Option<Arc<Mutex<State>>>,
    disconnect_after: Option<u32>,
}

impl<S> ClientRateLimit<S> {
    /// Returns how many frames this client has had refused so far.
    pub fn violations(&self) -> u32 {
        self.state
            .as_ref()
            .map_or(0, |state| lock(state).violations)
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

    /// Spends the frame's tokens, or records a violation and says why not.
    fn admit(&self, bytes: u64) -> Result<(), Refusal> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let disconnect_after = self.disconnect_after;
        let mut state = lock(state);
        // Once tripped, stay tripped: a caller that does not disconnect at
        // once must not see this client's frames start passing again.
        if state.tripped {
            return Err(Refusal::Disconnect(RateLimitViolations {
                violations: state.violations,
            }));
        }
        state.refill(Instant::now());
        let limit = if !state.frames.can_pay(1) {
            RateLimitKind::Frames
        } else if !state.bytes.can_pay(bytes) {
            RateLimitKind::Bytes
        } else {
            state.frames.pay(1);
            state.bytes.pay(bytes);
            return Ok(());
        };
        state.violations = state.violations.saturating_add(1);
        let violations = state.violations;
        if disconnect_after.is_some_and(|max| violations >= max) {
            state.tripped = true;
            Err(Refusal::Disconnect(RateLimitViolations { violations }))
        } else {
            Err(Refusal::Limited(RateLimited { violations, limit }))
        }
    }
}

impl<S, R> Service<R> for ClientRateLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: PayloadLength,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Budgets are checked in `call`: waiting here for tokens would stall
        // the connection's reads instead of telling the client it is too fast.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let bytes = u64::try_from(req.payload_len()).unwrap_or(u64::MAX);
        match self.admit(bytes) {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(Refusal::Limited(err)) => ResponseFuture::refused(err),
            Err(Refusal::Disconnect(err)) => ResponseFuture::refused(err),
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The state is a handful of integers updated without any call that
    // can panic halfway, so a poisoned lock still holds usable values.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct State {
    frames: Bucket,
    bytes: Bucket,
    last_refill: Instant,
    violations: u32,
    tripped: bool,
}

impl State {
    fn new(config: &Config, now: Instant) -> Self {
        Self {
            frames: Bucket::full(config.frames_per_second.into(), config.burst_frames.into()),
            bytes: Bucket::full(config.bytes_per_second, config.burst_bytes),
            last_refill: now,
            violations: 0,
            tripped: false,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_refill).as_nanos();
        self.frames.refill(elapsed);
        self.bytes.refill(elapsed);
        self.last_refill = now;
    }
}

/// A token bucket; levels are in token-nanoseconds (see [`NANOS_PER_SEC`]).
#[derive(Debug)]
struct Bucket {
    level: u128,
    capacity: u128,
    rate: u128,
}

impl Bucket {
    fn full(rate: u64, burst: u64) -> Self {
        let capacity = u128::from(burst) * NANOS_PER_SEC;
        Self {
            level: capacity,
            capacity,
            rate: rate.into(),
        }
    }

    fn refill(&mut self, elapsed_nanos: u128) {
        // Saturating, since a long-idle connection times a high rate could
        // overflow even a u128; the level is capped at the burst anyway.
        self.level = self
            .level
            .saturating_add(elapsed_nanos.saturating_mul(self.rate))
            .min(self.capacity);
    }

    fn can_pay(&self, tokens: u64) -> bool {
        self.level >= u128::from(tokens) * NANOS_PER_SEC
    }

    fn pay(&mut self, tokens: u64) {
        self.level = self
            .level
            .saturating_sub(u128::from(tokens) * NANOS_PER_SEC);
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Limited(RateLimited),
    Disconnect(RateLimitViolations),
}

pub use crate::future::ResponseFuture;

/// Which of a client's budgets a refused frame exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    /// The frames-per-second budget.
    Frames,
    /// The bytes-per-second budget, including a frame larger than the
    /// whole byte burst.
    Bytes,
}

/// The error returned for a frame over the client's budget.
///
/// The connection may carry on; later frames pass once the budget refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// How many frames this client has had refused, this one included.
    pub violations: u32,
    /// Which budget this frame exceeded.
    pub limit: RateLimitKind,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            RateLimitKind::Frames => "frames",
            RateLimitKind::Bytes => "bytes",
        };
        write!(f, "rate limit exceeded: too many {what} per second")
    }
}

impl std::error::Error for RateLimited {}

/// The error returned once a client's violations reach the
/// [`disconnect_after`](ClientRateLimitLayer::disconnect_after) threshold.
///
/// The relay should close the connection; until it does, every frame is
/// refused with this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitViolations {
    /// How many frames this client has had refused for exceeding its budget.
    pub violations: u32,
}

impl fmt::Display for RateLimitViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disconnected: rate limit exceeded {} times",
            self.violations
        )
    }
}

impl std::error::Error for RateLimitViolations {}
