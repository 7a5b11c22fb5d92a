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

impl Credentials {
    /// What a client at `peer` presented: for unit tests of a validator.
    pub fn new(token: impl Into<Bytes>, peer: SocketAddr) -> Self {
        Self {
            token: token.into(),
            peer,
        }
    }
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

/// The ready-made validator for shared-secret signed tokens: HMAC-SHA256 over the user id
/// and an expiry, compared in constant time. The simple production choice: the game backend
/// mints a token for a logged-in player with [`tokens`](HmacTokenValidator::tokens) (or any
/// [`HmacTokens`] with the same secret), the client sends it
/// ([`ClientBuilder::token`](crate::ClientBuilder::token)), and the relay checks it without
/// calling anyone. The identity is the token's user id.
///
/// ```
/// use ghost_sync::auth::HmacTokenValidator;
/// use ghost_sync::Server;
/// use std::time::Duration;
///
/// let validator = HmacTokenValidator::new(b"a secret shared with the game backend");
/// let token = validator.tokens().mint_for("alice", Duration::from_secs(3600));
/// let server = Server::builder().authenticate(validator).build();
/// # drop((server, token));
/// ```
///
/// Refusals say why: `missing token`, `malformed token: ...`, `token signature invalid`,
/// `token expired`.
#[derive(Clone, Debug)]
pub struct HmacTokenValidator {
    tokens: HmacTokens,
}

pub use ghost_sync_layers::{HmacTokens, TokenClaims, TokenError};

impl HmacTokenValidator {
    /// A validator for tokens signed with `secret`.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            tokens: HmacTokens::new(secret),
        }
    }

    /// The signer with the same secret, to mint tokens.
    pub fn tokens(&self) -> &HmacTokens {
        &self.tokens
    }

    /// Checks one token now.
    pub fn validate(&self, token: &[u8]) -> Result<Identity, AuthRejected> {
        if token.is_empty() {
            return Err(AuthRejected("missing token".to_owned()));
        }
        let claims = self
            .tokens
            .verify(token, std::time::SystemTime::now())
            .map_err(|err| AuthRejected(err.to_string()))?;
        Ok(Identity::new(claims.user_id))
    }
}

impl Service<Credentials> for HmacTokenValidator {
    type Response = Identity;
    type Error = AuthRejected;
    type Future = std::future::Ready<Result<Identity, AuthRejected>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), AuthRejected>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, credentials: Credentials) -> Self::Future {
        std::future::ready(self.validate(&credentials.token))
    }
}

/// A validator's refusal, with the reason the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejected(pub String);

impl fmt::Display for AuthRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthRejected {}
