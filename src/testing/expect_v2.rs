//! The test client's side of direct sends and room state (protocol version 2): sending them,
//! unchecked as the rest of the kit sends, and expecting the relay's `Direct` and `State`.

use super::TestClient;
use crate::protocol::ClientFrame;
use crate::ServerEvent;
use bytes::Bytes;
use uuid::Uuid;

impl TestClient {
    /// Sends `data` to the members `targets` (a `Direct`); neither the number of targets nor
    /// the length is checked, so a test can send what a real client would refuse to.
    pub async fn send_to(&mut self, targets: &[Uuid], data: impl AsRef<[u8]>) {
        let ids: Vec<u8> = targets.iter().flat_map(|id| *id.as_bytes()).collect();
        self.send_frame(&ClientFrame::Direct {
            targets: &ids,
            data: data.as_ref(),
        })
        .await;
    }

    /// Sets the room-state entry `key` to `value` (a `SetState`; an empty value deletes);
    /// the key is not checked.
    pub async fn set_state(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.send_frame(&ClientFrame::SetState {
            key,
            value: value.as_ref(),
        })
        .await;
    }

    /// Expects a direct send of exactly `data` from `sender`.
    pub async fn expect_direct(&mut self, sender: Uuid, data: impl AsRef<[u8]>) {
        self.expect_event(ServerEvent::Direct {
            sender_id: sender,
            data: Bytes::copy_from_slice(data.as_ref()),
        })
        .await
    }

    /// Expects the room-state entry `key` with `value` set by `owner` (an empty `value`:
    /// its deletion).
    pub async fn expect_state(&mut self, owner: Uuid, key: &str, value: impl AsRef<[u8]>) {
        self.expect_event(ServerEvent::State {
            owner,
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value.as_ref()),
        })
        .await
    }
}
