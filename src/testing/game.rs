//! A test client's side of the game features: direct sends, latest-state (keyed) broadcasts,
//! room state, and the expectations of what they make the relay send.

use super::client::TestClient;
use crate::event::ServerEvent;
use crate::protocol::ClientFrame;
use bytes::Bytes;
use uuid::Uuid;

impl TestClient {
    /// Sends `data` to the members `targets` only; neither the number of targets nor the
    /// length is checked (the relay's checks are what a test may want to see).
    pub async fn send_to(&mut self, targets: &[Uuid], data: impl AsRef<[u8]>) {
        let ids: Vec<u8> = targets.iter().flat_map(|id| *id.as_bytes()).collect();
        self.send_frame(&ClientFrame::Direct {
            targets: &ids,
            data: data.as_ref(),
        })
        .await;
    }

    /// Broadcasts `data` as the latest state of `key`.
    pub async fn broadcast_keyed(&mut self, key: u32, data: impl AsRef<[u8]>) {
        self.send_frame(&ClientFrame::Keyed {
            key,
            data: data.as_ref(),
        })
        .await;
    }

    /// Sets the room-state entry `key` to `value` (an empty value deletes it).
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

    /// Expects a keyed broadcast from `sender`; returns its key and bytes.
    pub async fn expect_keyed_from(&mut self, sender: Uuid) -> (u32, Bytes) {
        let what = format!("a keyed broadcast from {}", self.names.who(sender));
        self.expect_next(&what, |event| match event {
            ServerEvent::Keyed {
                sender_id,
                key,
                data,
            } if *sender_id == sender => Some((*key, data.clone())),
            _ => None,
        })
        .await
    }

    /// Expects the room-state entry `key` with `value` (empty: deleted), set by `owner`.
    pub async fn expect_state(&mut self, owner: Uuid, key: &str, value: impl AsRef<[u8]>) {
        self.expect_event(ServerEvent::State {
            owner,
            key: key.to_owned(),
            value: Bytes::copy_from_slice(value.as_ref()),
        })
        .await
    }

    /// Expects a missed-frame notice; returns its count.
    pub async fn expect_dropped(&mut self) -> u32 {
        self.expect_next("a Dropped notice", |event| match event {
            ServerEvent::Dropped { count } => Some(*count),
            _ => None,
        })
        .await
    }
}
