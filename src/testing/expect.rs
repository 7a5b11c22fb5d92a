//! The expectations of a [`TestClient`]: each waits up to the client's timeout and panics with
//! a message naming the client, what it expected, what arrived instead, and what it had
//! received before.
//!
//! `expect_*` take the next event and fail if it is not the one expected (keepalive pongs
//! are skipped); `wait_for` and `expect_disconnect_after` skip the events they are told to.

use super::client::{TestClient, HISTORY};
use super::wire::Received;
use crate::disconnect::{DisconnectKind, DisconnectReason};
use crate::event::ServerEvent;
use crate::protocol::DisconnectCode;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// What an expectation makes of one thing received.
enum Verdict<T> {
    /// The expected thing: done.
    Accept(T),
    /// Not it, but allowed before it.
    Skip,
    /// Not it: fail.
    Reject,
}

/// The most skipped frames a failure message lists (the count covers the rest).
const SHOWN_SKIPPED: usize = 8;

impl TestClient {
    /// The core of every expectation: reads until `judge` accepts or rejects something, or
    /// the deadline passes.
    async fn expect<T>(
        &mut self,
        what: &str,
        wait: Duration,
        mut judge: impl FnMut(&Self, &Received) -> Verdict<T>,
    ) -> T {
        let started = Instant::now();
        let deadline = started + wait;
        let mut skipped = Vec::new();
        let mut skipped_count = 0usize;
        loop {
            let received = match tokio::time::timeout_at(deadline, self.wire.next_received()).await
            {
                Ok(received) => received,
                Err(_) => self.fail(what, None, started, &skipped, skipped_count),
            };
            let verdict = judge(self, &received);
            match verdict {
                Verdict::Accept(value) => {
                    self.remember(received);
                    return value;
                }
                Verdict::Skip
                    if !received.is_end() && !matches!(received, Received::Invalid(_)) =>
                {
                    if skipped.len() < SHOWN_SKIPPED {
                        skipped.push(received.clone());
                    }
                    skipped_count += 1;
                    self.remember(received);
                }
                _ => self.fail(what, Some(&received), started, &skipped, skipped_count),
            }
        }
    }

    fn remember(&mut self, received: Received) {
        if matches!(received, Received::Pong) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(received);
    }

    fn fail(
        &self,
        what: &str,
        got: Option<&Received>,
        started: Instant,
        skipped: &[Received],
        skipped_count: usize,
    ) -> ! {
        let names = &self.names;
        let mut message = format!("{}: expected {what}\n", self.who());
        match got {
            Some(got) => message.push_str(&format!(
                "  got:     {} (after {:?})\n",
                names.describe(got),
                started.elapsed()
            )),
            None => message.push_str(&format!(
                "  got:     nothing within {:?}\n",
                started.elapsed()
            )),
        }
        if skipped_count > 0 {
            let list: Vec<String> = skipped.iter().map(|r| names.describe(r)).collect();
            let more = skipped_count - skipped.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            message.push_str(&format!(
                "  skipped: {skipped_count} before it: {}{more}\n",
                list.join(", ")
            ));
        }
        if !self.history.is_empty() {
            let list: Vec<String> = self.history.iter().map(|r| names.describe(r)).collect();
            message.push_str(&format!("  earlier: {}\n", list.join(", ")));
        }
        panic!("{}", message.trim_end());
    }

    /// The next event (keepalive skipped); panics on a disconnect, the end of the stream or
    /// the timeout.
    pub async fn next_event(&mut self) -> ServerEvent {
        self.expect("an event", self.timeout, |_, r| match r {
            Received::Event(event) => Verdict::Accept(event.clone()),
            Received::Pong => Verdict::Skip,
            _ => Verdict::Reject,
        })
        .await
    }

    /// The next thing received, whatever it is (keepalive pongs included; the relay's pings
    /// are answered and never returned); panics only on the timeout.
    pub async fn next_received(&mut self) -> Received {
        self.expect("anything", self.timeout, |_, r| Verdict::Accept(r.clone()))
            .await
    }

    /// Expects the next event to be `expected`.
    pub async fn expect_event(&mut self, expected: ServerEvent) {
        let what = self.names.describe_event(&expected);
        self.expect_next(&what, |event| (*event == expected).then_some(()))
            .await
    }

    /// The next event, if `pick` maps it; keepalive pongs skipped.
    pub(super) async fn expect_next<T>(
        &mut self,
        what: &str,
        pick: impl Fn(&ServerEvent) -> Option<T>,
    ) -> T {
        self.expect(what, self.timeout, |_, r| match r {
            Received::Event(event) => match pick(event) {
                Some(value) => Verdict::Accept(value),
                None => Verdict::Reject,
            },
            Received::Pong => Verdict::Skip,
            _ => Verdict::Reject,
        })
        .await
    }

    /// Skips events until one that `pick` accepts, and returns it; `what` describes it for
    /// the failure message (which lists the events skipped).
    pub async fn wait_for(
        &mut self,
        what: &str,
        pick: impl Fn(&ServerEvent) -> bool,
    ) -> ServerEvent {
        self.expect(what, self.timeout, |_, r| match r {
            Received::Event(event) if pick(event) => Verdict::Accept(event.clone()),
            Received::Event(_) | Received::Pong => Verdict::Skip,
            _ => Verdict::Reject,
        })
        .await
    }

    /// Expects this client's `Joined` for `room`, then the member list; returns the other
    /// members (in no particular order).
    pub async fn expect_joined(&mut self, room: &str) -> Vec<Uuid> {
        let me = self.id;
        let what = format!("Joined({room:?})");
        self.expect_next(&what, |event| match event {
            ServerEvent::Joined { client_id, room_id } if *client_id == me && room_id == room => {
                Some(())
            }
            _ => None,
        })
        .await;
        let what = format!("the member list of {room:?} after its Joined");
        self.expect_next(&what, |event| match event {
            ServerEvent::Members {
                room_id,
                client_ids,
            } if room_id == room => Some(client_ids.clone()),
            _ => None,
        })
        .await
    }

    /// Expects `Left` for `room`, the answer to [`leave`](TestClient::leave).
    pub async fn expect_left(&mut self, room: &str) {
        self.expect_event(ServerEvent::Left {
            room_id: room.to_owned(),
        })
        .await
    }

    /// Expects a broadcast from `sender`; returns its bytes.
    pub async fn expect_broadcast_from(&mut self, sender: Uuid) -> Bytes {
        let what = format!("a broadcast from {}", self.names.who(sender));
        self.expect_next(&what, |event| match event {
            ServerEvent::Broadcast { sender_id, data } if *sender_id == sender => {
                Some(data.clone())
            }
            _ => None,
        })
        .await
    }

    /// Expects a broadcast of exactly `data` from `sender`.
    pub async fn expect_broadcast(&mut self, sender: Uuid, data: impl AsRef<[u8]>) {
        self.expect_event(ServerEvent::Broadcast {
            sender_id: sender,
            data: Bytes::copy_from_slice(data.as_ref()),
        })
        .await
    }

    /// Expects `PlayerJoined` for `id`.
    pub async fn expect_member_joined(&mut self, id: Uuid) {
        self.expect_event(ServerEvent::PlayerJoined { client_id: id })
            .await
    }

    /// Expects `PlayerLeft` for `id`.
    pub async fn expect_member_left(&mut self, id: Uuid) {
        self.expect_event(ServerEvent::PlayerLeft { client_id: id })
            .await
    }

    /// Expects an `Error` whose text contains `part`; returns the whole text.
    pub async fn expect_error(&mut self, part: &str) -> String {
        let what = format!("an Error containing {part:?}");
        self.expect_next(&what, |event| match event {
            ServerEvent::Error(message) if message.contains(part) => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// Expects nothing but keepalive for `window`: fails on any event, disconnect or end of
    /// the stream. It necessarily waits the whole window; prefer
    /// [`expect_round_trip`](Self::expect_round_trip) where the relay's own order proves
    /// the absence.
    pub async fn expect_no_event(&mut self, window: Duration) {
        let started = Instant::now();
        let deadline = started + window;
        loop {
            match tokio::time::timeout_at(deadline, self.wire.next_received()).await {
                Err(_) => return,
                Ok(Received::Pong) => continue,
                Ok(other) => {
                    let what = format!("no event within {window:?}");
                    self.fail(&what, Some(&other), started, &[], 0)
                }
            }
        }
    }

    /// Runs `work` (waiting for a hook, for the relay's stats to change) while expecting no
    /// event, answering the relay's pings meanwhile: a client left unread across a wait longer
    /// than the relay's ping interval would be disconnected for a ping timeout. No timeout of
    /// its own: bound `work`.
    pub async fn expect_no_event_while<T>(&mut self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                value = &mut work => return value,
                // Cancel-safe: a partial frame stays in the read buffer.
                received = self.wire.next_received() => match received {
                    Received::Pong => continue,
                    other => self.fail("no event while waiting", Some(&other), started, &[], 0),
                },
            }
        }
    }

    /// Sends a ping and expects its pong before any event. The relay answers a client's
    /// frames in order, so this proves that nothing the relay produced in answer to this
    /// client's earlier frames (a refusal, an echo) is on its way.
    pub async fn expect_round_trip(&mut self) {
        self.ping().await;
        self.expect(
            "the Pong of a Ping, before any event",
            self.timeout,
            |_, r| match r {
                Received::Pong => Verdict::Accept(()),
                _ => Verdict::Reject,
            },
        )
        .await
    }

    /// Expects the relay's goodbye for `kind` as the next thing received, then the end of the
    /// stream (a close, or a reset when the relay closed with this client's frames unread);
    /// returns the reason, as the relay's `on_disconnect` saw it.
    ///
    /// Only the kinds the relay sends a goodbye for can arrive: never
    /// [`DisconnectKind::ClientClosed`] or [`DisconnectKind::Transport`] (see
    /// [`expect_closed`](Self::expect_closed)).
    pub async fn expect_disconnect(&mut self, kind: DisconnectKind) -> DisconnectReason {
        self.expect_disconnect_after(kind, |_| false).await
    }

    /// [`expect_disconnect`](Self::expect_disconnect), skipping the events `skip` accepts
    /// before the goodbye (the broadcasts a slow consumer still had coming, the refusals
    /// before a policy disconnect).
    pub async fn expect_disconnect_after(
        &mut self,
        kind: DisconnectKind,
        skip: impl Fn(&ServerEvent) -> bool,
    ) -> DisconnectReason {
        let what = format!("a Disconnect for {}", kind.as_str());
        let reason = self
            .expect(&what, self.timeout, |_, r| match r {
                Received::Disconnect { code, message } => match reason_of(*code, message) {
                    Some(reason) if reason.kind() == kind => Verdict::Accept(reason),
                    _ => Verdict::Reject,
                },
                Received::Event(event) if skip(event) => Verdict::Skip,
                Received::Pong => Verdict::Skip,
                _ => Verdict::Reject,
            })
            .await;
        self.expect(
            "the end of the stream after the Disconnect",
            self.timeout,
            |_, r| {
                if r.is_end() {
                    Verdict::Accept(())
                } else {
                    Verdict::Reject
                }
            },
        )
        .await;
        reason
    }

    /// Expects the end of a connection whose seat a resume took over (see
    /// `ServerBuilder::resume_window`): the events it still had coming are skipped, then
    /// `Disconnect(Replaced)`, or the end of the stream alone (the relay may reset a link
    /// whose frames were left unread before its goodbye gets through).
    pub async fn expect_replaced(&mut self) {
        self.expect(
            "Disconnect(Replaced) or the end of the stream",
            self.timeout,
            |_, r| match r {
                Received::Disconnect { code, .. } if *code == DisconnectCode::Replaced as u8 => {
                    Verdict::Accept(())
                }
                r if r.is_end() => Verdict::Accept(()),
                Received::Event(_) | Received::Pong => Verdict::Skip,
                _ => Verdict::Reject,
            },
        )
        .await
    }

    /// Expects the relay to close the connection without a goodbye (after a client-side
    /// fault, say): the end of the stream or a reset, with no event before it.
    pub async fn expect_closed(&mut self) {
        self.expect("the end of the stream", self.timeout, |_, r| match r {
            r if r.is_end() => Verdict::Accept(()),
            Received::Pong => Verdict::Skip,
            _ => Verdict::Reject,
        })
        .await
    }
}

/// The reason a `Disconnect` frame gives, as the relay's `DisconnectReason` (the relay sends
/// the detail of the reasons that carry one as the message).
fn reason_of(code: u8, message: &str) -> Option<DisconnectReason> {
    let message = message.to_owned();
    Some(match DisconnectCode::from_u8(code)? {
        DisconnectCode::IdleTimeout => DisconnectReason::IdleTimeout,
        DisconnectCode::PingTimeout => DisconnectReason::PingTimeout,
        DisconnectCode::PayloadTooLarge => DisconnectReason::PayloadTooLarge(message),
        DisconnectCode::Protocol => DisconnectReason::Protocol(message),
        DisconnectCode::Kicked => DisconnectReason::Kicked(message),
        DisconnectCode::ServerShutdown => DisconnectReason::ServerShutdown,
        DisconnectCode::Internal => DisconnectReason::Internal(message),
        DisconnectCode::SlowConsumer => DisconnectReason::SlowConsumer,
        DisconnectCode::Policy => DisconnectReason::Policy(message),
        DisconnectCode::Replaced => DisconnectReason::Replaced,
    })
}
