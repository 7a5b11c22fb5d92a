//! [`ClientSender`]: the sending half of a client. Every send checks its payload against the
//! relay's limit before anything is written, then writes the whole frame.

use super::connection::Link;
use crate::error::SyncError;
use crate::protocol::{ClientFrame, MAX_DIRECT_TARGETS, MAX_STATE_KEY_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use uuid::Uuid;

/// The sending half of a [`Client`](super::Client), from
/// [`Client::split`](super::Client::split). Clones share the connection; frames from several
/// clones never interleave inside one another.
#[derive(Debug, Clone)]
pub struct ClientSender {
    pub(super) link: Arc<Link>,
    pub(super) max_payload: usize,
}

impl ClientSender {
    /// The id the relay gave this client (the same after a resume).
    pub fn client_id(&self) -> Uuid {
        self.link.client_id
    }

    /// The largest payload the relay accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// See [`Client::join`](super::Client::join).
    pub async fn join(&mut self, room_id: &str) -> Result<(), SyncError> {
        self.join_with(room_id, &[]).await
    }

    /// See [`Client::join_with`](super::Client::join_with).
    pub async fn join_with(&mut self, room_id: &str, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(room_id.len() + data.len())?;
        self.send(&ClientFrame::Join { room_id, data }).await
    }

    /// See [`Client::leave`](super::Client::leave).
    pub async fn leave(&mut self) -> Result<(), SyncError> {
        self.send(&ClientFrame::Leave).await
    }

    /// See [`Client::broadcast`](super::Client::broadcast).
    pub async fn broadcast(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(data.len())?;
        self.send(&ClientFrame::Broadcast { data }).await
    }

    /// See [`Client::send_to`](super::Client::send_to).
    pub async fn send_to(&mut self, targets: &[Uuid], data: &[u8]) -> Result<(), SyncError> {
        if targets.is_empty() || targets.len() > MAX_DIRECT_TARGETS {
            return Err(SyncError::InvalidRequest(format!(
                "a direct send names 1 to {MAX_DIRECT_TARGETS} members, not {}",
                targets.len()
            )));
        }
        self.check_payload(targets.len() * 16 + data.len())?;
        let ids: Vec<u8> = targets.iter().flat_map(|id| *id.as_bytes()).collect();
        self.send(&ClientFrame::Direct {
            targets: &ids,
            data,
        })
        .await
    }

    /// See [`Client::broadcast_keyed`](super::Client::broadcast_keyed).
    pub async fn broadcast_keyed(&mut self, key: u32, data: &[u8]) -> Result<(), SyncError> {
        self.check_payload(data.len())?;
        self.send(&ClientFrame::Keyed { key, data }).await
    }

    /// See [`Client::set_state`](super::Client::set_state).
    pub async fn set_state(&mut self, key: &str, value: &[u8]) -> Result<(), SyncError> {
        if key.is_empty() || key.len() > MAX_STATE_KEY_LEN {
            return Err(SyncError::InvalidRequest(format!(
                "a room-state key is 1 to {MAX_STATE_KEY_LEN} bytes, not {}",
                key.len()
            )));
        }
        self.check_payload(key.len() + value.len())?;
        self.send(&ClientFrame::SetState { key, value }).await
    }

    /// See [`Client::ping`](super::Client::ping).
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.send(&ClientFrame::Ping).await
    }

    /// See [`Client::close`](super::Client::close).
    pub async fn close(&mut self) -> Result<(), SyncError> {
        self.link.end_seat();
        let conn = self.link.conn();
        let said = conn.send(&ClientFrame::Bye).await;
        conn.close_write();
        conn.closed.store(true, Ordering::Release);
        said
    }

    /// Cuts the connection at once, without a goodbye, as a network failure would: for
    /// trying out what a relay that holds seats does after a drop (the client's receiver
    /// then reconnects, with a [`ReconnectPolicy`](super::ReconnectPolicy)).
    pub fn simulate_connection_loss(&self) {
        let conn = self.link.conn();
        // No goodbye when it is dropped: that is the point.
        conn.abandoned.store(true, Ordering::Release);
        let _ = socket2::SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Both);
    }

    /// Sends one frame on the current connection. While the receiver takes a dropped seat
    /// back, sends fail with [`SyncError::Reconnecting`]: nothing is buffered for later.
    async fn send(&self, frame: &ClientFrame<'_>) -> Result<(), SyncError> {
        let conn = self.link.conn();
        match conn.send(frame).await {
            Err(SyncError::ConnectionClosed | SyncError::ConnectionReset | SyncError::Io(_))
                if self.link.reconnecting.load(Ordering::Acquire) || self.link.can_resume() =>
            {
                Err(SyncError::Reconnecting)
            }
            other => other,
        }
    }

    fn check_payload(&self, len: usize) -> Result<(), SyncError> {
        if len > self.max_payload {
            return Err(SyncError::PayloadTooLarge);
        }
        Ok(())
    }
}
