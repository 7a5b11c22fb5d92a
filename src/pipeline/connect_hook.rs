//! [`ConnectHook`]: `ServerHandler::on_connect` adapted into a connection-scope layer.
//!
//! The admission stack (connection limit, then this hook) is called once per accepted socket
//! with the peer address, before any byte is read; a refusal becomes a `Rejected` handshake.

use crate::handler::{guarded, SharedHandler};
use ghost_sync_layers::future::ResponseFuture;
use ghost_sync_layers::BoxError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds [`ConnectHook`] to an admission stack.
#[derive(Clone)]
pub(crate) struct ConnectHookLayer {
    handler: SharedHandler,
}

impl ConnectHookLayer {
    pub(crate) fn new(handler: SharedHandler) -> Self {
        Self { handler }
    }
}

impl<S> Layer<S> for ConnectHookLayer {
    type Service = ConnectHook<S>;

    fn layer(&self, inner: S) -> ConnectHook<S> {
        ConnectHook {
            inner,
            handler: Arc::clone(&self.handler),
        }
    }
}

/// Refuses a connection when `on_connect` returns `false`.
#[derive(Clone)]
pub(crate) struct ConnectHook<S> {
    inner: S,
    handler: SharedHandler,
}

impl<S> Service<SocketAddr> for ConnectHook<S>
where
    S: Service<SocketAddr>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, addr: SocketAddr) -> Self::Future {
        // A panicking hook refuses: the safe answer when the policy could not decide.
        if guarded("on_connect", || self.handler.on_connect(addr)).unwrap_or(false) {
            ResponseFuture::called(self.inner.call(addr))
        } else {
            ResponseFuture::refused(ConnectRejected)
        }
    }
}

/// `on_connect` refused the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectRejected;

impl fmt::Display for ConnectRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection rejected by the server")
    }
}

impl std::error::Error for ConnectRejected {}
