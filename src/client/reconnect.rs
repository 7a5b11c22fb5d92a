//! Taking the seat back: [`ReconnectPolicy`], and the attempts a [`ClientReceiver`] makes when
//! its connection drops while the relay holds its seat (`ServerBuilder::resume_window` on the
//! relay).
//!
//! [`ClientReceiver`]: super::ClientReceiver

use super::connection::{open, Link, Opened};
use crate::error::SyncError;
use std::time::Duration;

/// How a [`Client`](super::Client) reconnects by itself after a drop: how many attempts,
/// and how long it waits between them (doubling from `initial_backoff` up to `max_backoff`).
/// The first attempt is made at once.
///
/// ```
/// use ghost_sync::ReconnectPolicy;
/// use std::time::Duration;
///
/// let policy = ReconnectPolicy::new(10).backoff(Duration::from_millis(50), Duration::from_secs(1));
/// assert_eq!(policy.attempts(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for ReconnectPolicy {
    /// 5 attempts, waiting 100 ms, then 200 ms, ... up to 2 s.
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl ReconnectPolicy {
    /// Up to `attempts` attempts (at least 1), with the default backoff.
    pub fn new(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            ..Self::default()
        }
    }

    /// Waits `initial` before the second attempt, doubling for each later one up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The most attempts made after one drop.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before attempt `n` (0-based): none before the first.
    fn wait_before(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX));
        doubled.min(self.max_backoff)
    }
}

/// Tries to take the seat back, as the link's policy says. `Ok`: the relay welcomed this
/// client again with its own id (the frames queued meanwhile follow, then `Resumed`).
/// `Err(Some(_))`: the relay refused (the seat is gone, with its reason), no use trying
/// again; `Err(None)`: no attempt got through.
pub(super) async fn resume(link: &Link) -> Result<Opened, Option<SyncError>> {
    let Some(policy) = link.policy else {
        return Err(None);
    };
    for attempt in 0..policy.attempts {
        tokio::time::sleep(policy.wait_before(attempt)).await;
        let token = link.token();
        match open(link.addr, &link.credentials, &token).await {
            Ok(opened) if opened.welcome.client_id == link.client_id => return Ok(opened),
            Ok(opened) => {
                return Err(Some(SyncError::Protocol(format!(
                    "the relay resumed {} instead of {}",
                    opened.welcome.client_id, link.client_id
                ))))
            }
            // Refused: the relay answered, and it will answer the same again.
            Err(
                err @ (SyncError::ResumeFailed(_)
                | SyncError::AuthFailed(_)
                | SyncError::ConnectRejected(_)
                | SyncError::Protocol(_)),
            ) => return Err(Some(err)),
            // Not reached, full, or shutting down: maybe next time.
            Err(err) => tracing::debug!(attempt, %err, "resume attempt failed"),
        }
    }
    Err(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_the_first_attempt_waits_nothing() {
        let policy =
            ReconnectPolicy::new(6).backoff(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..6).map(|n| policy.wait_before(n).as_millis()).collect();
        assert_eq!(waits, vec![0, 100, 200, 350, 350, 350]);
        assert_eq!(ReconnectPolicy::new(0).attempts(), 1);
        assert_eq!(policy.wait_before(40), Duration::from_millis(350));
    }
}
