//! [`Hooks`]: the `ServerHandler` frame hooks adapted into a tower layer.
//!
//! - `on_join_request` (by default `on_join`) is an allow/deny gate in front of the router. Joins into one room pass the gate
//!   one at a time (the room's turnstile), so a capacity check made in the hook with
//!   `ServerHandle::room_client_count` and the insert that follows are atomic. The turnstile
//!   guards no data and no handle method takes it, so the hook may call the handle freely.
//! - `on_direct` is an allow/deny gate in front of the router for direct sends, which sees
//!   the targets.
//! - `on_broadcast` fires after the router relayed a broadcast (plain or keyed), with the
//!   room it used.
//!
//! `on_connect` runs at connection scope (`connect_hook.rs`); `on_leave`,
//! `on_backpressure` and the room hooks fire where those events happen, always after every
//! lock is released.

use super::{ClientMessage, FrameRequest, Reply, ReplyKind};
use crate::disconnect::DisconnectReason;
use crate::handler::{guarded, DirectRequest, JoinRequest, SharedHandler};
use crate::server::Shared;
use crate::stats::JoinRefusal;
use bytes::Bytes;
use ghost_sync_layers::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service};
use uuid::Uuid;

/// Adds [`Hooks`] to a frame stack.
#[derive(Clone)]
pub(crate) struct HooksLayer {
    shared: Arc<Shared>,
    handler: SharedHandler,
}

impl HooksLayer {
    pub(crate) fn new(shared: Arc<Shared>, handler: SharedHandler) -> Self {
        Self { shared, handler }
    }
}

impl<S> Layer<S> for HooksLayer {
    type Service = Hooks<S>;

    fn layer(&self, inner: S) -> Hooks<S> {
        Hooks {
            inner,
            shared: Arc::clone(&self.shared),
            handler: Arc::clone(&self.handler),
        }
    }
}

/// Calls `on_join`, `on_direct` and `on_broadcast` around the inner service.
#[derive(Clone)]
pub struct Hooks<S> {
    inner: S,
    shared: Arc<Shared>,
    handler: SharedHandler,
}

type BoxedReply = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

impl<S> Service<FrameRequest> for Hooks<S>
where
    S: Service<FrameRequest, Response = Reply, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: FrameRequest) -> Self::Future {
        match req.message() {
            ClientMessage::Join { room_id, .. } => {
                let room_id = room_id.clone();
                let Some(room) = self.shared.registry.get(&room_id) else {
                    // The router answers "room not found".
                    return ResponseFuture::plain(self.inner.call(req));
                };
                let mut req = req;
                req.set_target(Arc::clone(&room));
                if req
                    .session()
                    .current_room()
                    .is_some_and(|current| Arc::ptr_eq(&current, &room))
                {
                    // Already there: nothing to admit.
                    return ResponseFuture::plain(self.inner.call(req));
                }
                // Joins are rare: boxing this one future keeps the hot path unboxed. The inner
                // service was made ready for this call, so that one goes into the future.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let handler = Arc::clone(&self.handler);
                let shared = Arc::clone(&self.shared);
                ResponseFuture::boxed(Box::pin(async move {
                    let turn = room.turnstile().lock_owned().await;
                    let session = req.session();
                    let data = match req.message() {
                        ClientMessage::Join { data, .. } => data.clone(),
                        _ => Bytes::new(),
                    };
                    let verdict = guarded("on_join_request", || {
                        handler.on_join_request(&JoinRequest {
                            client_id: session.client_id,
                            room_id: &room_id,
                            addr: session.peer,
                            identity: session.identity.as_ref(),
                            data: &data,
                        })
                    });
                    let Some(verdict) = verdict else {
                        return Ok(Reply::disconnect(hook_failed("on_join")));
                    };
                    if let Err(reason) = verdict {
                        shared.counters.join_refused(JoinRefusal::Rejected);
                        return Ok(Reply::error(if reason.is_empty() {
                            format!("join rejected: {room_id}")
                        } else {
                            format!("join rejected: {room_id}: {reason}")
                        }));
                    }
                    // The router does its work inside `call` (its future is already complete),
                    // so the join is in the room before the turnstile is released, and no
                    // lock is held across an await.
                    let reply = inner.call(req);
                    drop(turn);
                    reply.await
                }))
            }
            ClientMessage::Direct { targets, data } => {
                let Some(room) = req.session().current_room() else {
                    // The router answers "not in a room".
                    return ResponseFuture::plain(self.inner.call(req));
                };
                let direct = DirectRequest::new(req.client_id(), room.id(), targets, data);
                match guarded("on_direct", || self.handler.on_direct(&direct)) {
                    None => ResponseFuture::ready(Reply::disconnect(hook_failed("on_direct"))),
                    Some(Err(reason)) if reason.is_empty() => {
                        ResponseFuture::ready(Reply::error("direct rejected"))
                    }
                    Some(Err(reason)) => {
                        ResponseFuture::ready(Reply::error(format!("direct rejected: {reason}")))
                    }
                    Some(Ok(())) => ResponseFuture::plain(self.inner.call(req)),
                }
            }
            ClientMessage::Broadcast { data } | ClientMessage::Keyed { data, .. } => {
                let data = data.clone();
                let client_id = req.client_id();
                ResponseFuture {
                    state: State::Broadcast {
                        future: self.inner.call(req),
                        client_id,
                        data,
                        handler: Arc::clone(&self.handler),
                    },
                }
            }
            _ => ResponseFuture::plain(self.inner.call(req)),
        }
    }
}

pin_project! {
    /// Response future of [`Hooks`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        // No hook involved.
        Plain { #[pin] future: F },
        // A join waiting for its room's turnstile and `on_join`.
        Join { future: BoxedReply },
        // A hook answered without the inner service (a refused direct send).
        Ready { reply: Option<Reply> },
        // A broadcast; `on_broadcast` fires once it was relayed.
        Broadcast {
            #[pin] future: F,
            client_id: Uuid,
            data: Bytes,
            handler: SharedHandler,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn plain(future: F) -> Self {
        Self {
            state: State::Plain { future },
        }
    }

    fn boxed(future: BoxedReply) -> Self {
        Self {
            state: State::Join { future },
        }
    }

    fn ready(reply: Reply) -> Self {
        Self {
            state: State::Ready { reply: Some(reply) },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Reply, BoxError>>,
{
    type Output = Result<Reply, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Plain { future } => future.poll(cx),
            StateProjection::Join { future } => future.as_mut().poll(cx),
            // Polled once: a second poll after completion is a caller's bug, answered with an
            // error rather than a panic.
            StateProjection::Ready { reply } => {
                Poll::Ready(reply.take().ok_or_else(|| "polled after completion".into()))
            }
            StateProjection::Broadcast {
                future,
                client_id,
                data,
                handler,
            } => {
                let reply = ready!(future.poll(cx))?;
                if let ReplyKind::Relayed { room_id } = &reply.kind {
                    let hook = || handler.on_broadcast(*client_id, room_id, data);
                    if guarded("on_broadcast", hook).is_none() {
                        return Poll::Ready(Ok(Reply::disconnect(hook_failed("on_broadcast"))));
                    }
                }
                Poll::Ready(Ok(reply))
            }
        }
    }
}

/// A hook panicked while handling this client's request: the client is disconnected with an
/// internal error (the panic itself is logged), and the relay serves everyone else on.
fn hook_failed(hook: &str) -> DisconnectReason {
    DisconnectReason::Internal(format!("the server's {hook} hook failed"))
}
