//! Refuses frames whose payload is larger than a fixed limit.
//!
//! This layer has *frame scope*: it looks at each request on its own. It caps
//! what a single client can make the relay buffer and fan out to a room; the
//! codec should still bound what it reads off the socket, since by the time a
//! frame reaches this layer it has already been read.

use std::fmt;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::BoxError;

/// A request whose payload size can be measured.
pub trait PayloadLength {
    /// Returns the payload size in bytes.
    fn payload_len(&self) -> usize;
}

/// Applies [`PayloadLimit`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLimitLayer {
    max: usize,
}

impl PayloadLimitLayer {
    /// Creates a layer refusing payloads longer than `max` bytes.
    pub const fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for PayloadLimitLayer {
    type Service = PayloadLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PayloadLimit::new(inner, self.max)
    }
}

/// Refuses requests whose [`PayloadLength::payload_len`] exceeds a limit.
///
/// A payload of exactly the limit is allowed.
#[derive(Debug, Clone)]
pub struct PayloadLimit<S> {
    inner: S,
    max: usize,
}

impl<S> PayloadLimit<S> {
    /// Wraps `inner`, refusing payloads longer than `max` bytes.
    pub const fn new(inner: S, max: usize) -> Self {
        Self { inner, max }
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

impl<S, R> Service<R> for PayloadLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: PayloadLength,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let len = req.payload_len();
        if len > self.max {
            // The inner service's readiness goes unused; that is allowed, as
            // readiness only obliges the caller not to call without it.
            ResponseFuture::refused(PayloadTooLarge { len, max: self.max })
        } else {
            ResponseFuture::called(self.inner.call(req))
        }
    }
}

pub use crate::future::ResponseFuture;

/// The error returned for a payload longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTooLarge {
    /// The size of the refused payload, in bytes.
    pub len: usize,
    /// The limit, in bytes.
    pub max: usize,
}

impl fmt::Display for PayloadTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "payload of {} bytes exceeds the limit of {} bytes",
            self.len, self.max
        )
    }
}

impl std::error::Error for PayloadTooLarge {}
