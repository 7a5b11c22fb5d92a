//! Shared-secret signed tokens: the simple production choice for deciding
//! who a client is during the connection handshake.
//!
//! A backend that knows the secret mints a token for a user; the client hands
//! it to the relay, which verifies it with the same secret. There is no state
//! to share and nothing to revoke: a token is good until it expires, so keep
//! lifetimes short.
//!
//! A token is ASCII and URL-safe:
//!
//! ```text
//! v1.<user id as lowercase hex>.<expiry, unix seconds>.<HMAC-SHA256 as lowercase hex>
//! ```
//!
//! where the MAC covers everything before the last dot. Hex keeps any user id
//! free of the `.` separator without another dependency.
//!
//! ```
//! use ghost_sync_layers::{HmacTokens, TokenError};
//! use std::time::{Duration, SystemTime};
//!
//! let tokens = HmacTokens::new(b"a long random secret, shared with the backend");
//! let token = tokens.mint_for("alice", Duration::from_secs(300));
//!
//! let claims = tokens.verify(token.as_bytes(), SystemTime::now()).unwrap();
//! assert_eq!(claims.user_id, "alice");
//!
//! let later = SystemTime::now() + Duration::from_secs(600);
//! assert!(matches!(
//!     tokens.verify(token.as_bytes(), later),
//!     Err(TokenError::Expired { .. })
//! ));
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The longest token [`HmacTokens::verify`] will look at, in bytes.
///
/// Longer input is refused before any parsing or hashing, so a client cannot
/// make the relay spend work in proportion to what it sends. With the fixed
/// parts taking under 100 bytes, this leaves room for user ids of about
/// 2000 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

const VERSION: &str = "v1";

/// Length of an HMAC-SHA256 tag in bytes.
const MAC_LEN: usize = 32;

/// The latest expiry a token may carry: 9999-12-31T23:59:59Z.
///
/// `SystemTime` has a platform-dependent range; capping expiry well inside
/// every platform's range keeps minting and verifying free of overflow.
const MAX_EXPIRY_SECS: u64 = 253_402_300_799;

/// Mints and verifies tokens signed with one shared secret.
///
/// Use a secret of at least 32 random bytes: anyone who knows or guesses it
/// can mint tokens for any user. Clones share nothing mutable; the `Debug`
/// output never shows the secret.
#[derive(Clone)]
pub struct HmacTokens {
    // The keyed MAC state, cloned for each token, rather than the raw secret.
    mac: HmacSha256,
}

impl HmacTokens {
    /// Creates a minter and verifier for `secret`.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        // HMAC accepts keys of any length (long ones are hashed, short ones
        // padded), so this cannot fail; and the secret is server
        // configuration, never client input.
        let mac = HmacSha256::new_from_slice(secret.as_ref())
            .expect("HMAC-SHA256 accepts keys of any length");
        Self { mac }
    }

    /// Mints a token for `user_id` that expires at `expires_at`.
    ///
    /// Expiry is kept to whole seconds, rounded down, and clamped between
    /// the unix epoch and the end of year 9999. [`verify`](Self::verify)
    /// refuses tokens for an empty user id, and tokens longer than
    /// [`MAX_TOKEN_LEN`], so minting those yields a token that never
    /// verifies.
    pub fn mint(&self, user_id: &str, expires_at: SystemTime) -> String {
        let secs = expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.mint_at_secs(user_id, secs)
    }

    /// Mints a token for `user_id` that expires `ttl` from now.
    pub fn mint_for(&self, user_id: &str, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        // Added as durations, not to the `SystemTime`, whose `+` panics on
        // overflow; a saturated expiry is clamped by `mint_at_secs` anyway.
        self.mint_at_secs(user_id, now.saturating_add(ttl).as_secs())
    }

    fn mint_at_secs(&self, user_id: &str, secs: u64) -> String {
        let secs = secs.min(MAX_EXPIRY_SECS);
        let mut token = format!("{VERSION}.{}.{secs}", hex_encode(user_id.as_bytes()));
        let tag = self.tag(&token);
        token.push('.');
        token.push_str(&hex_encode(&tag));
        token
    }

    /// Checks `token`'s signature and expiry at `now`, returning its claims.
    ///
    /// The signature is compared in constant time. A token is expired from
    /// its expiry second onwards.
    pub fn verify(&self, token: &[u8], now: SystemTime) -> Result<TokenClaims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Malformed("empty"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let token = std::str::from_utf8(token).map_err(|_| TokenError::Malformed("not utf-8"))?;

        // The MAC covers the text exactly as received up to the last dot,
        // which is what `mint` signed.
        let (signed, tag_hex) = token
            .rsplit_once('.')
            .ok_or(TokenError::Malformed("wrong number of parts"))?;
        let mut parts = signed.split('.');
        let (Some(version), Some(user_hex), Some(expiry), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("wrong number of parts"));
        };
        if version != VERSION {
            return Err(TokenError::Malformed("unknown version"));
        }
        let user_id = hex_decode(user_hex).ok_or(TokenError::Malformed("user id is not hex"))?;
        if user_id.is_empty() {
            return Err(TokenError::Malformed("empty user id"));
        }
        let user_id = String::from_utf8(user_id)
            .map_err(|_| TokenError::Malformed("user id is not utf-8"))?;
        let expires_at = parse_expiry(expiry).ok_or(TokenError::Malformed("bad expiry"))?;
        let tag = hex_decode(tag_hex)
            .filter(|tag| tag.len() == MAC_LEN)
            .ok_or(TokenError::Malformed("bad signature encoding"))?;

        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;

        // Checked only once the signature holds, so only a genuine token is
        // reported as expired; a forged one is refused as forged whatever
        // expiry it claims.
        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at: expires_at,
            });
        }
        Ok(TokenClaims {
            user_id,
            expires_at,
        })
    }

    fn tag(&self, signed: &str) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for HmacTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacTokens")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user the token was minted for; never empty.
    pub user_id: String,
    /// When the token stops being valid, to the second.
    pub expires_at: SystemTime,
}

/// Why a token was refused.
///
/// The `Display` text is safe to show the client: it never contains the
/// secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The token is not in the expected format; the text says which part.
    Malformed(&'static str),
    /// The token was not signed with this secret, or was altered.
    BadSignature,
    /// The token was genuine but has expired.
    Expired {
        /// When the token expired.
        expired_at: SystemTime,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed token: {why}"),
            Self::BadSignature => f.write_str("token signature invalid"),
            Self::Expired { .. } => f.write_str("token expired"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Parses unix seconds written as plain decimal digits.
///
/// Stricter than `u64::from_str`, which would also take a leading `+`; the
/// signature already pins the exact text, but one spelling per value keeps
/// tokens canonical.
fn parse_expiry(text: &str) -> Option<SystemTime> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = text.parse().ok()?;
    if secs > MAX_EXPIRY_SECS {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes lowercase hex; uppercase is refused so each value has one
/// spelling, as `mint` writes it.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => Some(nibble(hi)? << 4 | nibble(lo)?),
            _ => None,
        })
        .collect()
}
