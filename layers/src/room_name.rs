//! Refuses frames naming a room whose name breaks the relay's naming policy.
//!
//! This layer has *frame scope*. Room names come from clients and end up as
//! map keys, in logs and in other clients' views, so the relay bounds their
//! length and the characters they may use before any room is looked up or
//! created. Frames that name no room pass untouched.
//!
//! The default policy allows up to [`DEFAULT_MAX_ROOM_NAME_LEN`] bytes of
//! anything but control characters, which keeps names printable on one log
//! line. It still allows look-alike letters and invisible formatting
//! characters; [`RoomNamePolicyLayer::ascii_identifiers`] is the stricter
//! choice when names are machine-made.

use std::fmt;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::BoxError;

/// The default maximum length of a room name, in bytes.
pub const DEFAULT_MAX_ROOM_NAME_LEN: usize = 64;

/// A request that may name a room.
pub trait RoomName {
    /// Returns the room this frame names, or `None` if it names none.
    fn room_name(&self) -> Option<&str>;
}

fn not_control(c: char) -> bool {
    !c.is_control()
}

fn ascii_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Applies [`RoomNamePolicy`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct RoomNamePolicyLayer {
    policy: Policy,
}

#[derive(Debug, Clone, Copy)]
struct Policy {
    max_len: usize,
    allowed: fn(char) -> bool,
    /// Checks nothing (see [`RoomNamePolicyLayer::any`]).
    any: bool,
}

impl Policy {
    fn check(&self, name: &str) -> Result<(), InvalidRoomNameReason> {
        if self.any {
            return Ok(());
        }
        if name.is_empty() {
            return Err(InvalidRoomNameReason::Empty);
        }
        // Length first, so the character scan below is bounded by `max_len`
        // however long a name a client sends.
        if name.len() > self.max_len {
            return Err(InvalidRoomNameReason::TooLong {
                len: name.len(),
                max: self.max_len,
            });
        }
        match name.chars().find(|&c| !(self.allowed)(c)) {
            Some(c) => Err(InvalidRoomNameReason::ForbiddenChar(c)),
            None => Ok(()),
        }
    }
}

impl RoomNamePolicyLayer {
    /// Creates the default policy: at most [`DEFAULT_MAX_ROOM_NAME_LEN`]
    /// bytes, and no control characters.
    pub fn new() -> Self {
        Self {
            policy: Policy {
                max_len: DEFAULT_MAX_ROOM_NAME_LEN,
                allowed: not_control,
                any: false,
            },
        }
    }

    /// Creates a policy allowing only ASCII letters, digits and `_.:-`, at
    /// most [`DEFAULT_MAX_ROOM_NAME_LEN`] bytes long.
    pub fn ascii_identifiers() -> Self {
        Self::new().allowed_chars(ascii_identifier_char)
    }

    /// A policy that accepts every name, the empty one included: what a stack that must
    /// contain the layer uses for "no policy". The builder methods below turn checking on
    /// again.
    pub fn any() -> Self {
        let mut layer = Self::new();
        layer.policy.any = true;
        layer
    }

    /// Sets the maximum length of a room name, in bytes (not characters).
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.policy.any = false;
        self.policy.max_len = max_len;
        self
    }

    /// Sets which characters a room name may contain.
    pub fn allowed_chars(mut self, allowed: fn(char) -> bool) -> Self {
        self.policy.any = false;
        self.policy.allowed = allowed;
        self
    }
}

impl Default for RoomNamePolicyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RoomNamePolicyLayer {
    type Service = RoomNamePolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RoomNamePolicy {
            inner,
            policy: self.policy,
        }
    }
}

/// Refuses requests whose [`RoomName::room_name`] breaks the policy.
///
/// Names are checked in this order, and the first failure is reported:
/// empty, too long, then the first character not allowed.
#[derive(Debug, Clone)]
pub struct RoomNamePolicy<S> {
    inner: S,
    policy: Policy,
}

impl<S> RoomNamePolicy<S> {
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

impl<S, R> Service<R> for RoomNamePolicy<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: RoomName,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        match req.room_name().map(|name| self.policy.check(name)) {
            Some(Err(reason)) => ResponseFuture::refused(InvalidRoomName { reason }),
            Some(Ok(())) | None => ResponseFuture::called(self.inner.call(req)),
        }
    }
}

pub use crate::future::ResponseFuture;

/// Why a room name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRoomNameReason {
    /// The name is the empty string.
    Empty,
    /// The name is longer than the policy allows.
    TooLong {
        /// The name's length, in bytes.
        len: usize,
        /// The policy's maximum, in bytes.
        max: usize,
    },
    /// The name contains a character the policy does not allow; this is the
    /// first one.
    ForbiddenChar(char),
}

impl fmt::Display for InvalidRoomNameReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty"),
            Self::TooLong { len, max } => write!(f, "too long ({len} bytes, max {max})"),
            // `{:?}` escapes control and invisible characters, so the
            // message stays printable whatever the client sent.
            Self::ForbiddenChar(c) => write!(f, "character {c:?} not allowed"),
        }
    }
}

/// The error returned for a frame naming a room the policy refuses.
///
/// It reports why, but never the name itself, which could be huge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRoomName {
    /// Why the name was refused.
    pub reason: InvalidRoomNameReason,
}

impl fmt::Display for InvalidRoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid room name: {}", self.reason)
    }
}

impl std::error::Error for InvalidRoomName {}
