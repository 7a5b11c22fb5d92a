//! [`FrameLayer`]: the one name for "a layer the frame pipeline accepts", in place of the
//! four `where` bounds every generic user of the stack would repeat.

use super::{CoreService, FrameRequest, Reply};
use ghost_sync_layers::BoxError;
use std::future::Future;
use tower::{Layer, Service};

/// A tower [`Layer`] the relay can put over its [`CoreService`]: what
/// [`ServerBuilder::layer`](crate::ServerBuilder::layer) stacks, and what a generic helper
/// names in place of the bounds themselves.
///
/// Implemented for every layer whose service takes [`FrameRequest`]s, answers [`Reply`]s,
/// fails with an error convertible to [`BoxError`] and is `Send`; never implement it by hand.
///
/// ```
/// use ghost_sync::pipeline::FrameLayer;
/// use ghost_sync::{ServerBuilder, ServerHandle};
///
/// async fn start<L: FrameLayer>(builder: ServerBuilder<L>) -> ServerHandle {
///     builder.bind("127.0.0.1:0").build().run().await.expect("the relay starts")
/// }
/// ```
pub trait FrameLayer:
    Layer<CoreService, Service = <Self as FrameLayer>::FrameService> + Send + Sync + 'static
{
    /// The layered service (`<Self as Layer<CoreService>>::Service`).
    type FrameService: Service<
            FrameRequest,
            Response = Reply,
            Error = <Self as FrameLayer>::Error,
            Future = <Self as FrameLayer>::Future,
        > + Send
        + 'static;
    /// Its error: sent to the client as `ServerEvent::Error(error.to_string())`, unless
    /// [`recover`](super::recover) maps it to a disconnect.
    type Error: Into<BoxError>;
    /// Its response future.
    type Future: Future<Output = Result<Reply, <Self as FrameLayer>::Error>> + Send;
}

impl<L> FrameLayer for L
where
    L: Layer<CoreService> + Send + Sync + 'static,
    L::Service: Service<FrameRequest, Response = Reply> + Send + 'static,
    <L::Service as Service<FrameRequest>>::Error: Into<BoxError>,
    <L::Service as Service<FrameRequest>>::Future: Send,
{
    type FrameService = L::Service;
    type Error = <L::Service as Service<FrameRequest>>::Error;
    type Future = <L::Service as Service<FrameRequest>>::Future;
}
