//! Refuses frames from connections that have not completed authentication.
//!
//! This layer has *frame scope*. It does not decide who a client is: the
//! connection's handshake does that (a pluggable validator comes later) and
//! records the outcome on the connection, which each frame exposes through
//! [`Authenticated`]. This layer only enforces that outcome, so no frame from
//! an unauthenticated connection reaches the services behind it.

use std::fmt;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::BoxError;

/// A request that knows whether its connection has authenticated.
pub trait Authenticated {
    /// Returns `true` once the connection's handshake has succeeded.
    fn is_authenticated(&self) -> bool;
}

/// Applies [`Auth`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthLayer {
    _priv: (),
}

impl AuthLayer {
    /// Creates the layer.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth::new(inner)
    }
}

/// Refuses requests for which [`Authenticated::is_authenticated`] is `false`.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
}

impl<S> Auth<S> {
    /// Wraps `inner`, refusing unauthenticated requests.
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

impl<S, R> Service<R> for Auth<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: Authenticated,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        if req.is_authenticated() {
            ResponseFuture::called(self.inner.call(req))
        } else {
            ResponseFuture::refused(Unauthenticated)
        }
    }
}

pub use crate::future::ResponseFuture;

/// The error returned for a frame from an unauthenticated connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unauthenticated;

impl fmt::Display for Unauthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not authenticated")
    }
}

impl std::error::Error for Unauthenticated {}
