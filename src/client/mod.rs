//! [`Client`]: connect to a relay, join a room, broadcast, and receive events; or split it into
//! a [`ClientSender`] and a [`ClientReceiver`] for two tasks. With a [`ReconnectPolicy`] it
//! takes its seat back by itself after a brief drop, when the relay holds seats.
//!
//! Every method is cancel-safe. Outgoing frames go whole into a buffer shared by both halves
//! (so a pong from the receiver never lands inside a frame of the sender) that outlives each
//! call: a cancelled send leaves its unsent tail there, and the next call (or `recv`) finishes
//! it. Incoming partial frames stay in the read buffer likewise. So `recv()` can sit in
//! `tokio::select!` or under a timeout without losing or corrupting a frame.
//!
//! The socket is shared, not split, and written only with non-blocking `try_write` under a
//! short lock that is never held across an `.await`.
//!
//! - `connection.rs`: the socket, its handshake, and the link both halves share;
//! - `sender.rs`, `receiver.rs`: the two halves;
//! - `reconnect.rs`: the policy, and the attempts to take a seat back.

mod connection;
mod receiver;
mod reconnect;
mod sender;

pub use receiver::ClientReceiver;
pub use reconnect::ReconnectPolicy;
pub use sender::ClientSender;

use crate::error::SyncError;
use crate::event::ServerEvent;
use bytes::Bytes;
use connection::{open, Link};
use std::sync::Arc;
use tokio::net::{lookup_host, ToSocketAddrs};
use uuid::Uuid;

/// A connection to a ghost-sync relay (`Send`).
///
/// ```no_run
/// use ghost_sync::{Client, ServerEvent};
///
/// # async fn demo() -> Result<(), ghost_sync::SyncError> {
/// let mut client = Client::connect("127.0.0.1:7777").await?;
/// client.join("lobby").await?;
/// while let Some(event) = client.recv().await? {
///     if let ServerEvent::Joined { .. } = event {
///         client.broadcast(b"hello room").await?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    sender: ClientSender,
    receiver: ClientReceiver,
}

/// Options for a connection: [`Client::builder`].
///
/// ```no_run
/// use ghost_sync::ReconnectPolicy;
///
/// # async fn demo() -> Result<(), ghost_sync::SyncError> {
/// let client = ghost_sync::Client::builder()
///     .token("v1.616c696365.1767225600.9f2c...")
///     .reconnect(ReconnectPolicy::default())
///     .connect("127.0.0.1:7777")
///     .await?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    token: Bytes,
    reconnect: Option<ReconnectPolicy>,
}

impl ClientBuilder {
    /// The credentials to send in the handshake, for a relay that checks them (a signed
    /// token minted by the game backend, say). None by default.
    pub fn token(mut self, token: impl AsRef<[u8]>) -> Self {
        self.token = Bytes::copy_from_slice(token.as_ref());
        self
    }

    /// Reconnect by itself after a drop, as `policy` says, when the relay holds seats
    /// (`ServerBuilder::resume_window`): the client keeps its id and its room, `recv` goes on
    /// with the frames queued meanwhile, then [`ServerEvent::Resumed`]. Off by default: a
    /// drop ends `recv` with its error.
    ///
    /// It reconnects after a connection that ends without a goodbye (a reset, a close, no
    /// frame for twice the relay's ping interval) or with one that holds the seat (idle
    /// timeout, ping timeout, slow consumer); never after a kick, a shutdown or a refusal.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Connects and completes the handshake; see [`Client::connect`].
    pub async fn connect(self, addr: impl ToSocketAddrs) -> Result<Client, SyncError> {
        Client::handshake(addr, self.token, self.reconnect).await
    }
}

impl Client {
    /// Connects and completes the handshake; returns once the relay welcomed the client.
    ///
    /// Fails with [`SyncError::ServerFull`], [`SyncError::ConnectRejected`] or
    /// [`SyncError::AuthFailed`] when the relay refuses, with the reason it gave.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, SyncError> {
        Self::handshake(addr, Bytes::new(), None).await
    }

    /// Options for a connection, such as a token for a relay that checks credentials.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    async fn handshake(
        addr: impl ToSocketAddrs,
        credentials: Bytes,
        reconnect: Option<ReconnectPolicy>,
    ) -> Result<Self, SyncError> {
        // Resolved once: a resume goes back to the relay that holds the seat.
        let mut last = None;
        for addr in lookup_host(addr).await? {
            match open(addr, &credentials, &[]).await {
                Ok(opened) => {
                    let welcome = &opened.welcome;
                    let (max_payload, ping) = (welcome.max_payload, welcome.ping_interval);
                    let link = Arc::new(Link::new(
                        opened.conn,
                        addr,
                        credentials,
                        &opened.welcome,
                        reconnect,
                    ));
                    return Ok(Self {
                        sender: ClientSender {
                            link: Arc::clone(&link),
                            max_payload,
                        },
                        receiver: ClientReceiver::new(link, opened.read_buf, max_payload, ping),
                    });
                }
                // Refused by a relay that answered: trying another address would not help.
                Err(err @ (SyncError::Io(_) | SyncError::ConnectionReset)) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            SyncError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            ))
        }))
    }

    /// The id the relay gave this client.
    pub fn client_id(&self) -> Uuid {
        self.sender.client_id()
    }

    /// The largest payload the relay accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.sender.max_payload()
    }

    /// Asks to join `room_id` (leaving the current room). The answer comes through
    /// [`recv`](Client::recv): [`ServerEvent::Joined`] then [`ServerEvent::Members`], or
    /// [`ServerEvent::Error`].
    pub async fn join(&mut self, room_id: &str) -> Result<(), SyncError> {
        self.sender.join(room_id).await
    }

    /// [`join`](Client::join) with bytes for the server's join hook (a password, a loadout).
    pub async fn join_with(&mut self, room_id: &str, data: &[u8]) -> Result<(), SyncError> {
        self.sender.join_with(room_id, data).await
    }

    /// Leaves the current room; [`ServerEvent::Left`] confirms it.
    pub async fn leave(&mut self) -> Result<(), SyncError> {
        self.sender.leave().await
    }

    /// Sends `data` to every other member of the current room.
    ///
    /// Fails with [`SyncError::PayloadTooLarge`] without sending if `data` is longer than
    /// the relay's `max_payload`.
    pub async fn broadcast(&mut self, data: &[u8]) -> Result<(), SyncError> {
        self.sender.broadcast(data).await
    }

    /// Sends `data` to the members `targets` of the current room only; they receive it as
    /// [`ServerEvent::Direct`]. The relay refuses the whole send with an
    /// [`ServerEvent::Error`] if one of them is not in the room.
    ///
    /// Fails with [`SyncError::PayloadTooLarge`] without sending if the targets (16 bytes
    /// each) and `data` together are longer than the relay's `max_payload`, and with
    /// [`SyncError::InvalidRequest`] for an empty list or one of more than
    /// [`MAX_DIRECT_TARGETS`](crate::protocol::MAX_DIRECT_TARGETS) ids.
    pub async fn send_to(&mut self, targets: &[Uuid], data: &[u8]) -> Result<(), SyncError> {
        self.sender.send_to(targets, data).await
    }

    /// Sends `data` to every other member of the current room as the latest state of `key`
    /// (an entity's position, say): they receive it as [`ServerEvent::Keyed`]. For a member
    /// that falls behind, the relay replaces this client's older frame of the same key still
    /// queued for it, rather than dropping the new one.
    pub async fn broadcast_keyed(&mut self, key: u32, data: &[u8]) -> Result<(), SyncError> {
        self.sender.broadcast_keyed(key, data).await
    }

    /// Sets the entry `key` of the current room's state to `value`, or deletes it if `value`
    /// is empty. The other members receive it as [`ServerEvent::State`], and so does every
    /// later joiner, after its member list. The entry goes when this client leaves the room.
    pub async fn set_state(&mut self, key: &str, value: &[u8]) -> Result<(), SyncError> {
        self.sender.set_state(key, value).await
    }

    /// Sends a keepalive ping. It counts as activity for the relay's idle timeout; the pong
    /// is consumed by [`recv`](Client::recv).
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.sender.ping().await
    }

    /// Says goodbye and closes the connection: the relay ends this client's seat at once.
    /// Dropping the client says goodbye too, if the socket takes it at once.
    pub async fn close(mut self) -> Result<(), SyncError> {
        self.sender.close().await
    }

    /// Waits for the next event. Answers the relay's pings and hides keepalive traffic.
    ///
    /// Returns `Ok(None)` once the connection is closed cleanly, and the relay's reason as an
    /// error when it disconnected this client ([`SyncError::IdleTimeout`],
    /// [`SyncError::PingTimeout`], [`SyncError::Kicked`], [`SyncError::ConnectionClosed`] on
    /// server shutdown, ...). With a [`ReconnectPolicy`], a drop that the relay holds the
    /// seat through is not returned: `recv` reconnects, and goes on with the frames queued
    /// meanwhile, then [`ServerEvent::Resumed`]; it returns the drop's error only once the
    /// attempts ran out, or [`SyncError::ResumeFailed`] when the relay refused. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<ServerEvent>, SyncError> {
        self.receiver.recv().await
    }

    /// Splits the client into a sender and a receiver, so one task can send while another
    /// receives.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ghost_sync::SyncError> {
    /// let client = ghost_sync::Client::connect("127.0.0.1:7777").await?;
    /// let (mut tx, mut rx) = client.split();
    /// tokio::spawn(async move {
    ///     while let Ok(Some(event)) = rx.recv().await {
    ///         println!("{event:?}");
    ///     }
    /// });
    /// tx.join("lobby").await?;
    /// tx.broadcast(b"hi").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(self) -> (ClientSender, ClientReceiver) {
        (self.sender, self.receiver)
    }

    /// Cuts the connection at once without a goodbye, as a network failure would (see
    /// [`ClientSender::simulate_connection_loss`]): with a [`ReconnectPolicy`], the next
    /// `recv` takes the seat back.
    pub fn simulate_connection_loss(&self) {
        self.sender.simulate_connection_loss();
    }
}
