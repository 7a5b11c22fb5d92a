//! Resuming a held seat (`ServerBuilder::resume_window`) from a test: a client that keeps the
//! resume token of its `Welcome`, a resume with it, its refusal, and `Bye`.
//!
//! ```
//! use ghost_sync::testing::TestRelay;
//! use ghost_sync::{Server, ServerEvent};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let relay = TestRelay::start(Server::builder().resume_window(Duration::from_secs(20))).await;
//! relay.create_room("arena");
//! let (mut alice, token) = relay.resumable("alice").await;
//! alice.join("arena").await;
//! alice.expect_joined("arena").await;
//! let id = alice.client_id();
//!
//! alice.sever(); // held, not ended: nobody is told
//! let (mut alice, _next) = relay.resume("alice", &token).await;
//! assert_eq!(alice.client_id(), id);
//! alice.expect_event(ServerEvent::Resumed { missed: 0 }).await;
//! # }
//! ```

use super::client::TestClient;
use super::names::Names;
use super::wire::Wire;
use super::{TestRelay, DEFAULT_TIMEOUT};
use crate::protocol::{decode_frame, ClientFrame, RejectCode, ServerFrame, PROTOCOL_VERSION};
use std::collections::VecDeque;
use tokio::net::TcpStream;
use uuid::Uuid;

/// The resume token a `Welcome` carried: empty when the relay holds no seats, else 16 bytes.
pub type ResumeToken = Vec<u8>;

/// What a relay answered a `Hello`.
#[derive(Debug)]
pub enum HelloAnswer {
    /// Welcomed: the client (its `Welcome` consumed) and the token that `Welcome` carried.
    Welcome(Box<TestClient>, ResumeToken),
    /// Refused: the reject code and its reason.
    Rejected(u8, String),
}

impl TestRelay {
    /// A new client named `name` past its handshake, with the resume token of its `Welcome`.
    pub async fn resumable(&self, name: &str) -> (TestClient, ResumeToken) {
        self.resumable_with(name, b"").await
    }

    /// [`resumable`](TestRelay::resumable), sending `credentials` in the handshake.
    pub async fn resumable_with(
        &self,
        name: &str,
        credentials: &[u8],
    ) -> (TestClient, ResumeToken) {
        match self.hello(name, credentials, b"").await {
            HelloAnswer::Welcome(client, token) => (*client, token),
            HelloAnswer::Rejected(code, why) => {
                panic!("{name}: the relay refused the handshake: code {code} ({why:?})")
            }
        }
    }

    /// Resumes the seat `token` names on a new connection: the client (its `Welcome`
    /// consumed; the frames queued during the hold and `Resumed` are next) and its new token.
    /// Panics if the relay refuses.
    pub async fn resume(&self, name: &str, token: &[u8]) -> (TestClient, ResumeToken) {
        self.resume_with(name, b"", token).await
    }

    /// [`resume`](TestRelay::resume), sending `credentials` in the handshake.
    pub async fn resume_with(
        &self,
        name: &str,
        credentials: &[u8],
        token: &[u8],
    ) -> (TestClient, ResumeToken) {
        match self.hello(name, credentials, token).await {
            HelloAnswer::Welcome(client, token) => (*client, token),
            HelloAnswer::Rejected(code, why) => {
                panic!("{name}: the relay refused the resume: code {code} ({why:?})")
            }
        }
    }

    /// Tries to resume with `token` (and `credentials`), expecting `ResumeFailed`: returns
    /// its reason. Panics if the relay welcomes the client or refuses with another code.
    pub async fn expect_resume_refused(&self, credentials: &[u8], token: &[u8]) -> String {
        match self.hello("resuming client", credentials, token).await {
            HelloAnswer::Rejected(code, why) if code == RejectCode::ResumeFailed as u8 => why,
            HelloAnswer::Rejected(code, why) => {
                panic!("expected the resume to fail with ResumeFailed, got code {code} ({why:?})")
            }
            HelloAnswer::Welcome(client, _) => panic!(
                "expected the resume to fail, but the relay welcomed the client as {}",
                client.client_id()
            ),
        }
    }

    /// Connects, sends a `Hello` with `credentials` and `resume` (empty: a new client), and
    /// reads the answer.
    pub async fn hello(&self, name: &str, credentials: &[u8], resume: &[u8]) -> HelloAnswer {
        let stream = tokio::time::timeout(DEFAULT_TIMEOUT, TcpStream::connect(self.addr()))
            .await
            .unwrap_or_else(|_| panic!("{name}: connecting took over {DEFAULT_TIMEOUT:?}"))
            .unwrap_or_else(|err| panic!("{name}: cannot connect: {err}"));
        let _ = stream.set_nodelay(true);
        let mut wire = Wire::new(stream);
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            credentials,
            resume,
        };
        if let Err(err) = wire.send(&hello).await {
            panic!("{name}: sending the Hello failed: {err}");
        }
        let body = match tokio::time::timeout(DEFAULT_TIMEOUT, wire.next_body()).await {
            Err(_) => panic!("{name}: no answer to the Hello within {DEFAULT_TIMEOUT:?}"),
            Ok(Err(end)) => panic!("{name}: no answer to the Hello: {end:?}"),
            Ok(Ok(body)) => body,
        };
        let (id, max_payload, token): (Uuid, usize, ResumeToken) =
            match decode_frame::<ServerFrame<'_>>(&body) {
                Ok(ServerFrame::Welcome {
                    client_id,
                    max_payload,
                    resume_token,
                    ..
                }) => (client_id, max_payload as usize, resume_token.to_vec()),
                Ok(ServerFrame::Rejected { code, message }) => {
                    return HelloAnswer::Rejected(code, message.to_owned())
                }
                other => panic!("{name}: expected a Welcome or a Rejected, got {other:?}"),
            };
        wire.set_max_payload(max_payload);
        let names = Names::default();
        names.insert(id, name);
        let client = TestClient {
            wire,
            id,
            max_payload,
            name: name.to_owned(),
            names,
            timeout: DEFAULT_TIMEOUT,
            history: VecDeque::new(),
        };
        HelloAnswer::Welcome(Box::new(client), token)
    }
}

impl TestClient {
    /// Says `Bye`, then closes: the relay ends the seat at once, even when it holds seats.
    pub async fn bye(mut self) {
        self.send_frame(&ClientFrame::Bye).await;
    }

    /// Closes with a FIN and no `Bye` (what dropping the client does), as a game process that
    /// died: with `resume_window` on, the relay holds the seat.
    pub fn close_without_bye(self) {
        drop(self);
    }
}
