//! Authentication end to end: a validator checks the handshake's token, refusals reach the
//! client with their reason, and the identity reaches the hooks and the handle.

mod common;

use common::*;
use ghost_sync::auth::{Credentials, HmacTokenValidator};
use ghost_sync::{Client, Identity, JoinRequest, Server, ServerEvent, ServerHandler, SyncError};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

const SECRET: &[u8] = b"test secret shared with the game backend";

fn hmac_server() -> ghost_sync::ServerBuilder {
    Server::builder().authenticate(HmacTokenValidator::new(SECRET))
}

async fn refusal(addr: std::net::SocketAddr, token: Option<&[u8]>) -> String {
    let connected = match token {
        Some(token) => Client::builder().token(token).connect(addr).await,
        None => Client::connect(addr).await,
    };
    match connected {
        Err(SyncError::AuthFailed(reason)) => reason,
        other => panic!("expected AuthFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_token_connects_and_gives_the_client_its_identity() {
    let (handle, addr) = start(hmac_server()).await;
    let token = HmacTokenValidator::new(SECRET)
        .tokens()
        .mint_for("alice", Duration::from_secs(60));
    let client = Client::builder().token(&token).connect(addr).await.unwrap();
    let info = handle.client_info(client.client_id()).unwrap();
    assert_eq!(info.identity, Some(Identity::new("alice")));
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused_with_the_reason() {
    let (_handle, addr) = start(hmac_server()).await;
    let forged = HmacTokenValidator::new(b"not the secret")
        .tokens()
        .mint_for("mallory", Duration::from_secs(60));
    let reason = refusal(addr, Some(forged.as_bytes())).await;
    assert!(reason.contains("signature"), "{reason}");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (_handle, addr) = start(hmac_server()).await;
    let stale = HmacTokenValidator::new(SECRET)
        .tokens()
        .mint("alice", SystemTime::now() - Duration::from_secs(10));
    let reason = refusal(addr, Some(stale.as_bytes())).await;
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_missing_token_is_refused_when_auth_is_on() {
    let (handle, addr) = start(hmac_server()).await;
    assert_eq!(refusal(addr, None).await, "missing token");
    let reason = refusal(addr, Some(b"garbage")).await;
    assert!(reason.contains("malformed"), "{reason}");
    assert_eq!(handle.client_count(), 0);
}

#[tokio::test]
async fn without_a_validator_the_relay_stays_open() {
    let (handle, addr) = start(Server::builder()).await;
    let client = Client::builder()
        .token("ignored")
        .connect(addr)
        .await
        .unwrap();
    assert_eq!(
        handle.client_info(client.client_id()).unwrap().identity,
        None
    );
}

/// Reports the identity each join request carries, and lets only "alice" into "vip".
struct VipOnly(mpsc::UnboundedSender<Option<Identity>>);

impl ServerHandler for VipOnly {
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        let _ = self.0.send(join.identity.cloned());
        match join.identity.map(Identity::user_id) {
            Some("alice") => Ok(()),
            _ if join.room_id == "vip" => Err("members only".into()),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn the_identity_reaches_the_join_hook() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (handle, addr) = start(hmac_server().handler(VipOnly(tx))).await;
    handle.create_room("vip").unwrap();
    let tokens = HmacTokenValidator::new(SECRET);
    let mint = |user: &str| tokens.tokens().mint_for(user, Duration::from_secs(60));

    let mut alice = Client::builder()
        .token(mint("alice"))
        .connect(addr)
        .await
        .unwrap();
    alice.join("vip").await.unwrap();
    expect_joined(&mut alice, "vip").await;
    assert_eq!(seen.recv().await.unwrap(), Some(Identity::new("alice")));

    let mut bob = Client::builder()
        .token(mint("bob"))
        .connect(addr)
        .await
        .unwrap();
    bob.join("vip").await.unwrap();
    assert_eq!(
        next_event(&mut bob).await,
        ServerEvent::Error("join rejected: vip: members only".into())
    );
    assert_eq!(seen.recv().await.unwrap(), Some(Identity::new("bob")));
}

#[tokio::test]
async fn an_async_closure_validator_sees_token_and_address() {
    let (handle, addr) = start(Server::builder().authenticate_with(
        |credentials: Credentials| async move {
            // An asynchronous check, as a database lookup would be.
            tokio::task::yield_now().await;
            if !credentials.peer.ip().is_loopback() {
                return Err("remote clients not allowed".to_owned());
            }
            match std::str::from_utf8(&credentials.token) {
                Ok(name) if name.starts_with("player-") => Ok(Identity::new(name)),
                _ => Err("unknown player".to_owned()),
            }
        },
    ))
    .await;
    let ok = Client::builder()
        .token("player-7")
        .connect(addr)
        .await
        .unwrap();
    assert_eq!(
        handle.client_info(ok.client_id()).unwrap().identity,
        Some(Identity::new("player-7"))
    );
    assert_eq!(refusal(addr, Some(b"intruder")).await, "unknown player");
}

#[tokio::test]
async fn a_validator_that_never_answers_is_a_refusal_not_a_hang() {
    let (_handle, addr) = start(
        Server::builder()
            // The handshake deadline is the smaller of 10 s and idle_timeout.
            .idle_timeout(Duration::from_millis(200))
            .authenticate_with(|_: Credentials| async {
                std::future::pending::<Result<Identity, String>>().await
            }),
    )
    .await;
    let reason = within("the refusal", refusal(addr, Some(b"x"))).await;
    assert!(reason.contains("in time"), "{reason}");
}
