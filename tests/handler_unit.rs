//! A handler's hooks and a validator, unit-tested alone with the values the relay would pass
//! them (`JoinRequest::new`, `Credentials::new`): no relay, no socket.

use ghost_sync::auth::{Credentials, HmacTokenValidator, Identity};
use ghost_sync::{JoinRequest, ServerHandler, Uuid};
use std::net::SocketAddr;
use std::time::Duration;
use tower::ServiceExt;

/// The hook under test: "vip" rooms take identified players who bring the password.
struct VipRooms;

impl ServerHandler for VipRooms {
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        if !join.room_id.starts_with("vip") {
            return Ok(());
        }
        match (join.identity, join.data) {
            (None, _) => Err("sign in first".into()),
            (Some(_), b"open sesame") => Ok(()),
            (Some(_), _) => Err("wrong password".into()),
        }
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

#[test]
fn a_join_request_hook_is_tested_with_the_requests_the_relay_would_pass() {
    let alice = Identity::new("alice");
    let id = Uuid::new_v4();
    assert_eq!(
        VipRooms.on_join_request(&JoinRequest::new(id, "lobby", addr())),
        Ok(())
    );
    assert_eq!(
        VipRooms.on_join_request(&JoinRequest::new(id, "vip-1", addr())),
        Err("sign in first".into())
    );
    let with_password = JoinRequest::new(id, "vip-1", addr())
        .with_identity(&alice)
        .with_data(b"open sesame");
    assert_eq!(VipRooms.on_join_request(&with_password), Ok(()));
    let wrong = JoinRequest::new(id, "vip-1", addr())
        .with_identity(&alice)
        .with_data(b"?");
    assert_eq!(
        VipRooms.on_join_request(&wrong),
        Err("wrong password".into())
    );
}

#[tokio::test]
async fn a_validator_is_tested_with_the_credentials_the_relay_would_pass() {
    let validator = HmacTokenValidator::new(b"secret");
    let token = validator
        .tokens()
        .mint_for("alice", Duration::from_secs(60));
    let identity = validator
        .clone()
        .oneshot(Credentials::new(token.into_bytes(), addr()))
        .await
        .unwrap();
    assert_eq!(identity.user_id(), "alice");
    let refused = validator
        .oneshot(Credentials::new(&b"forged"[..], addr()))
        .await;
    assert!(refused.is_err());
}
