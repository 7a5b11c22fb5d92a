//! Turns a layer's error into a reply, so that a client always learns why a frame was refused.

use super::Reply;
use crate::disconnect::DisconnectReason;
use ghost_sync_layers::{BoxError, PayloadTooLarge, RateLimitViolations, Unauthenticated};

/// Maps the result of the frame pipeline to a reply; never returns `Err`.
///
/// - [`PayloadTooLarge`] disconnects with `SyncError::PayloadTooLarge` (disconnect code 2 in
///   PROTOCOL.md).
/// - [`Unauthenticated`] disconnects with a protocol error.
/// - [`RateLimitViolations`] (a client past the rate limit's `disconnect_after`) disconnects
///   with a policy reason the client reads.
/// - Any other error (a user layer's refusal, tower's `Overloaded` or `Elapsed`) is sent to the
///   client as `ServerEvent::Error(error.to_string())`; the connection stays open.
pub fn recover(result: Result<Reply, BoxError>) -> Result<Reply, BoxError> {
    let err = match result {
        Ok(reply) => return Ok(reply),
        Err(err) => err,
    };
    if err.is::<PayloadTooLarge>() {
        return Ok(Reply::disconnect(DisconnectReason::PayloadTooLarge(
            err.to_string(),
        )));
    }
    if err.is::<Unauthenticated>() {
        return Ok(Reply::disconnect(DisconnectReason::Protocol(
            err.to_string(),
        )));
    }
    if err.is::<RateLimitViolations>() {
        return Ok(Reply::disconnect(DisconnectReason::Policy(err.to_string())));
    }
    tracing::debug!(error = %err, "frame refused by a layer");
    Ok(Reply::error(err.to_string()))
}
