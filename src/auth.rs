//! Authentication: the credentials a client sends in its handshake, the validator that turns
//! them into an [`Identity`], and a ready-made validator for signed tokens.
//!
//! A validator is any tower [`Service`] from [`Credentials`] to [`Identity`]; its error's
//! `Display` is the reason the refused client reads ([`SyncError::AuthFailed`]). It runs once
//! per connection, during the handshake, within the handshake's deadline, so it may be
//! asynchronous (a database or an HTTP call). Without a validator the relay is open and
//! clients have no identity.
//!
//! [`SyncError::AuthFailed`]: crate::SyncError::AuthFailed

use bytes::Bytes;
use ghost_sync_layers::BoxError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// Who a client is, as its validator established it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    user_id: Arc<str>,
}

impl Identity {
    /// An identity for `user_id`.
    pub fn new(user_id: impl Into<Arc<str>>) -> Self {
        Self {
            user_id: user_id.into(),
        }
    }

    /// The user id (the one in the token, for [`HmacTokenValidator`]).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Identity").field(&self.user_id).finish()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user_id)
    }
}

/// What a validator is asked to check: the bytes the client sent as its token, and where it
/// connects from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Credentials {
    /// The client's token ([`ClientBuilder::token`](crate::ClientBuilder::token)); empty when
    /// it sent none.
    pub token: Bytes,
    /// The client's address.
    pub peer: SocketAddr,
}

/// How the server holds a validator.
pub(crate) type Validator = BoxCloneSyncService<Credentials, Identity, BoxError>;

/// Boxes a user's validator service.
pub(crate) fn boxed<V>(validator: V) -> Validator
where
    V: Service<Credentials, Response = Identity> + Clone + Send + Sync + 'static,
    V::Error: Into<BoxError>,
    V::Future: Send + 'static,
{
    BoxCloneSyncService::new(validator.map_err(Into::into))
}
