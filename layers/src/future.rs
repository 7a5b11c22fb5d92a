//! [`ResponseFuture`]: the future of every layer here that refuses in `call` (auth, payload
//! limit, rate limit, room-name policy; the relay's `on_connect` adapter too): either the
//! inner service's future, or the refusal decided before calling it. Public, so that a
//! refusing layer of your own needs no future type of its own either.
//!
//! A refusal is boxed when it is decided: refusals are rare, and one shared future type keeps
//! each layer down to its rule.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// Future of a refusing layer: the inner service's response, or the layer's refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        Called {
            #[pin]
            future: F,
        },
        Refused {
            // Taken when the future completes.
            error: Option<BoxError>,
        },
    }
}

impl<F> ResponseFuture<F> {
    /// The request passed: the inner service's future.
    pub fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    /// The request was refused with `error`, without calling the inner service.
    pub fn refused(error: impl Into<BoxError>) -> Self {
        Self {
            state: State::Refused {
                error: Some(error.into()),
            },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Called { future } => future.poll(cx).map_err(Into::into),
            StateProjection::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "response future polled after completion".into()))),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
