//! Caps how many connections the relay holds at once.
//!
//! This layer has *connection scope*: the wrapped service is called once per
//! accepted connection, and the [`Admitted`] response it produces is meant to
//! live as long as the connection does. The admission slot is held by the
//! [`Admitted`] value and is released when it (or the [`AdmissionPermit`]
//! taken out of it) is dropped, so the slot's lifetime is tied to the
//! connection, not to the call.
//!
//! A full relay refuses at once with [`ConnectionLimitExceeded`] rather than
//! queueing the connection: a client waiting on a full server is better told
//! so, and can retry elsewhere.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::BoxError;

/// Builds a shared semaphore, clamping `max` so construction cannot panic.
///
/// [`Semaphore::new`] panics above [`Semaphore::MAX_PERMITS`]; a limit that
/// large is "unlimited" in practice, so clamping loses nothing.
fn semaphore(max: usize) -> (Arc<Semaphore>, usize) {
    let max = max.min(Semaphore::MAX_PERMITS);
    (Arc::new(Semaphore::new(max)), max)
}

/// Applies [`ConnectionLimit`] to a service.
///
/// Every service made by this layer, and every clone of the layer, shares one
/// pool of `max` slots, so the limit holds across the whole listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimitLayer {
    semaphore: Arc<Semaphore>,
    max: usize,
}

impl ConnectionLimitLayer {
    /// Creates a layer admitting at most `max` connections at once.
    ///
    /// Values above [`Semaphore::MAX_PERMITS`] are clamped to it.
    pub fn new(max: usize) -> Self {
        let (semaphore, max) = semaphore(max);
        Self { semaphore, max }
    }

    /// Returns the number of connections that could still be admitted.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Returns the maximum number of connections admitted at once.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl<S> Layer<S> for ConnectionLimitLayer {
    type Service = ConnectionLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionLimit {
            inner,
            semaphore: Arc::clone(&self.semaphore),
            max: self.max,
        }
    }
}

/// Refuses new connections once `max` of them are admitted.
///
/// See the [module documentation](self) for the scope this service expects.
///
/// Unlike tower's `ConcurrencyLimit`, the slot is not reserved in
/// `poll_ready`: waiting for a slot there would queue the connection until
/// another one closes, whereas a relay must answer a full server with an
/// immediate rejection. Since `poll_ready` reserves nothing, a derived
/// `Clone` is sound; clones share the same slots.
#[derive(Debug, Clone)]
pub struct ConnectionLimit<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
    max: usize,
}

impl<S> ConnectionLimit<S> {
    /// Wraps `inner` with its own pool of `max` slots.
    ///
    /// Use [`ConnectionLimitLayer`] instead to share one pool among several
    /// services. Values above [`Semaphore::MAX_PERMITS`] are clamped to it.
    pub fn new(inner: S, max: usize) -> Self {
        let (semaphore, max) = semaphore(max);
        Self {
            inner,
            semaphore,
            max,
        }
    }

    /// Returns the number of connections that could still be admitted.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
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

impl<S, R> Service<R> for ConnectionLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = Admitted<S::Response>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(permit) => ResponseFuture::admitted(self.inner.call(req), permit),
            // `try_acquire_owned` also fails on a closed semaphore; we never
            // close it, so every failure here means "no slot left".
            Err(_) => ResponseFuture::rejected(self.max),
        }
    }
}

pin_project! {
    /// Future for the [`ConnectionLimit`] service.
    pub struct ResponseFuture<F> {
        #[pin]
        state: ResponseState<F>,
    }
}

pin_project! {
    #[project = ResponseStateProj]
    enum ResponseState<F> {
        Admitted {
            #[pin]
            fut: F,
            // An `Option` so the permit can move into the response; it is
            // `None` only after the future has completed.
            permit: Option<OwnedSemaphorePermit>,
        },
        Rejected {
            max: usize,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn admitted(fut: F, permit: OwnedSemaphorePermit) -> Self {
        Self {
            state: ResponseState::Admitted {
                fut,
                permit: Some(permit),
            },
        }
    }

    fn rejected(max: usize) -> Self {
        Self {
            state: ResponseState::Rejected { max },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Admitted<T>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ResponseStateProj::Admitted { fut, permit } => {
                // On an inner error the permit stays here and is released
                // with the future, so a failed setup frees its slot.
                let response = match fut.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                    Poll::Pending => return Poll::Pending,
                };
                match permit.take() {
                    Some(permit) => Poll::Ready(Ok(Admitted { response, permit })),
                    // Only reachable by polling after completion, which the
                    // `Future` contract leaves unspecified; fail loudly but
                    // without panicking.
                    None => Poll::Ready(Err("`ResponseFuture` polled after completion".into())),
                }
            }
            ResponseStateProj::Rejected { max } => {
                Poll::Ready(Err(Box::new(ConnectionLimitExceeded { max: *max })))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F>
where
    F: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

/// A response from an admitted connection, holding its admission slot.
///
/// The slot is freed when this value is dropped, so keep it alive for as long
/// as the connection is open. Use [`Admitted::into_parts`] to hold the slot
/// separately from the response.
pub struct Admitted<T> {
    response: T,
    permit: OwnedSemaphorePermit,
}

impl<T> Admitted<T> {
    /// Returns a reference to the inner service's response.
    pub fn response(&self) -> &T {
        &self.response
    }

    /// Returns a mutable reference to the inner service's response.
    pub fn response_mut(&mut self) -> &mut T {
        &mut self.response
    }

    /// Splits into the response and the guard holding the admission slot.
    pub fn into_parts(self) -> (T, AdmissionPermit) {
        (self.response, AdmissionPermit(self.permit))
    }
}

impl<T: fmt::Debug> fmt::Debug for Admitted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("response", &self.response)
            .finish_non_exhaustive()
    }
}

/// An opaque guard holding one admission slot; the slot is freed on drop.
#[derive(Debug)]
pub struct AdmissionPermit(
    #[allow(dead_code, reason = "held only so that dropping it frees the slot")]
    OwnedSemaphorePermit,
);

/// The error returned when a connection arrives while the relay is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimitExceeded {
    /// The limit that was reached.
    pub max: usize,
}

impl fmt::Display for ConnectionLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection limit of {} reached", self.max)
    }
}

impl std::error::Error for ConnectionLimitExceeded {}
