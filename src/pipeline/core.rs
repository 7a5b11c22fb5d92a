//! [`CoreService`]: the bottom of every frame stack, under the user's layers: the
//! `ServerHandler` hooks around the room router.
//!
//! Opaque on purpose: only the relay builds it (for each connection), and a user's layer
//! never needs to know what is inside, only that it serves [`FrameRequest`]s with
//! [`Reply`]s. In a unit test, a `tower::service_fn` takes its place.

use super::hooks::{self, Hooks};
use super::router::{RoomRouter, RouterFuture};
use super::{FrameRequest, Reply};
use ghost_sync_layers::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;

/// The innermost part of the frame stack, under the user's layers: `on_join` and
/// `on_broadcast` around the room router. A layer given to
/// [`ServerBuilder::layer`](crate::ServerBuilder::layer) wraps it (see
/// [`FrameLayer`](super::FrameLayer)).
///
/// Write a layer generic over the service it wraps (`impl<S> Layer<S>`), as tower's own
/// are: one written for `CoreService` alone cannot be unit-tested, since only the relay
/// builds a `CoreService`.
#[derive(Clone)]
pub struct CoreService {
    inner: Hooks<RoomRouter>,
}

impl CoreService {
    pub(crate) fn new(inner: Hooks<RoomRouter>) -> Self {
        Self { inner }
    }
}

impl std::fmt::Debug for CoreService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreService").finish_non_exhaustive()
    }
}

impl Service<FrameRequest> for CoreService {
    type Response = Reply;
    type Error = BoxError;
    type Future = CoreFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: FrameRequest) -> CoreFuture {
        CoreFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Response future of [`CoreService`].
    pub struct CoreFuture {
        #[pin]
        inner: hooks::ResponseFuture<RouterFuture>,
    }
}

impl Future for CoreFuture {
    type Output = Result<Reply, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl std::fmt::Debug for CoreFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreFuture").finish_non_exhaustive()
    }
}
