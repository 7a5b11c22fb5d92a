//! Seats held across a drop (`resume_window`): which resume token names which client, which
//! seats are live or held, and why a token no longer works.
//!
//! A seat is **live** while a connection serves it, **held** between a drop and a resume or
//! its expiry. Every `Welcome` carries a fresh token (single use): claiming a seat moves its
//! old token to the bounded record of ended tokens, so that a second use, an expiry or a kick
//! is refused with its own reason. One mutex guards it all; no hook runs under it (a held
//! seat that ends is handed back to the caller, whose drop of it runs the hooks).

use crate::auth::Identity;
use crate::disconnect::DisconnectReason;
use crate::session::Session;
use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::SeatGuards;

/// The refusal of a token this relay never issued (or has forgotten): in a cluster, the
/// cue to look for the seat on the other relays.
pub(crate) const UNKNOWN_TOKEN: &str = "unknown resume token";

/// A resume token: 128 bits from the operating system.
pub(crate) type Token = [u8; 16];

/// The seat table of a relay that holds seats.
pub(crate) struct Seats {
    pub(crate) window: Duration,
    max_held: usize,
    /// Most ended tokens remembered (for their refusal's reason); older ones are "unknown".
    max_ended: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_token: HashMap<Token, Uuid>,
    seats: HashMap<Uuid, Seat>,
    held: usize,
    /// Numbers each hold, so that a hold's expiry never ends a later hold of the same seat.
    next_hold: u64,
    ended: HashMap<Token, Ended>,
    /// `ended`'s tokens, oldest first, to forget the oldest past `max_ended`.
    ended_order: VecDeque<Token>,
}

struct Seat {
    token: Token,
    identity: Option<Identity>,
    state: State,
}

enum State {
    /// A connection serves it; `taker`: a resume is waiting for that connection to let go.
    Live {
        taker: Option<oneshot::Sender<Held>>,
    },
    /// `stop` ends the hold's expiry task early (a resume, a kick).
    Held {
        held: Held,
        hold: u64,
        stop: CancellationToken,
    },
}

/// A held seat: the session (still listed, still in its room) and the guards that end the
/// seat when dropped (`PlayerLeft`, `on_leave`, `on_disconnect`).
pub(crate) struct Held {
    pub(crate) session: Arc<Session>,
    pub(crate) guards: SeatGuards,
}

/// Why a token no longer names a seat.
#[derive(Debug, Clone)]
enum Ended {
    Used,
    Expired,
    Seat(String),
}

impl Ended {
    fn refusal(&self) -> String {
        match self {
            Self::Used => "resume token already used".to_owned(),
            Self::Expired => "resume token expired".to_owned(),
            Self::Seat(why) => format!("seat ended: {why}"),
        }
    }
}

/// What a claim found.
pub(crate) enum Claim {
    /// A held seat, now the claimer's.
    Held(Held),
    /// A live seat: its connection must be closed first (`end_with(Replaced)`); the seat
    /// comes through the receiver once it has let go.
    Live(oneshot::Receiver<Held>),
}

/// What became of a seat its connection let go of.
pub(crate) enum Hold {
    /// Parked until `hold`'s expiry (or a resume, or a kick, which cancel the token).
    Parked(u64, CancellationToken),
    /// Handed at once to the resume that took the connection over.
    HandedOver,
    /// Not held (too many held seats, or the seat ended meanwhile): end it now.
    Refused(Held),
}

/// A new random token.
pub(crate) fn new_token() -> Token {
    let mut token = [0; 16];
    if getrandom::fill(&mut token).is_err() {
        // No OS randomness (which `uuid`'s v4 ids need too): a v4 id's 122 random bits,
        // tagged, rather than no seat at all.
        tracing::warn!("no OS randomness for a resume token: falling back to uuid v4");
        token = *Uuid::new_v4().as_bytes();
    }
    token
}

/// The seat's end, as its refusal tells it: the reason's kind in words ("kicked").
fn ended_for(reason: &DisconnectReason) -> Ended {
    Ended::Seat(reason.kind().as_str().replace('_', " "))
}

impl Seats {
    pub(crate) fn new(window: Duration, max_held: usize, max_clients: usize) -> Self {
        Self {
            window,
            max_held,
            max_ended: max_clients.saturating_add(max_held).max(1),
            table: Mutex::default(),
        }
    }

    /// A new live seat for a client that just completed its handshake; its token.
    pub(crate) fn open(&self, client_id: Uuid, identity: Option<Identity>) -> Token {
        let token = new_token();
        let mut table = lock(&self.table);
        table.by_token.insert(token, client_id);
        let seat = Seat {
            token,
            identity,
            state: State::Live { taker: None },
        };
        table.seats.insert(client_id, seat);
        token
    }

    /// Claims the seat `token` names, for a client the validator identified as `identity`.
    /// On success the seat is live again under a new token (returned with it), and `token`
    /// is used up. `Err`: the refusal's reason.
    pub(crate) fn claim(
        &self,
        token: &[u8],
        identity: &Option<Identity>,
    ) -> Result<(Uuid, Token, Claim), String> {
        let token: Token = token.try_into().map_err(|_| UNKNOWN_TOKEN.to_owned())?;
        let mut table = lock(&self.table);
        let table = &mut *table;
        let Some(&client_id) = table.by_token.get(&token) else {
            return Err(table
                .ended
                .get(&token)
                .map_or_else(|| UNKNOWN_TOKEN.to_owned(), Ended::refusal));
        };
        let Some(seat) = table.seats.get_mut(&client_id) else {
            return Err(UNKNOWN_TOKEN.to_owned());
        };
        if seat.identity.as_ref().map(Identity::user_id) != identity.as_ref().map(Identity::user_id)
        {
            return Err("resume token belongs to another user".to_owned());
        }
        let (claim, was_held) =
            match std::mem::replace(&mut seat.state, State::Live { taker: None }) {
                State::Live { taker: Some(taker) } => {
                    seat.state = State::Live { taker: Some(taker) };
                    return Err(Ended::Used.refusal());
                }
                State::Live { taker: None } => {
                    let (tx, rx) = oneshot::channel();
                    seat.state = State::Live { taker: Some(tx) };
                    (Claim::Live(rx), false)
                }
                State::Held { held, stop, .. } => {
                    stop.cancel();
                    (Claim::Held(held), true)
                }
            };
        let fresh = new_token();
        seat.token = fresh;
        if was_held {
            table.held -= 1;
        }
        table.by_token.remove(&token);
        table.by_token.insert(fresh, client_id);
        remember(table, self.max_ended, token, Ended::Used);
        Ok((client_id, fresh, claim))
    }

    /// The connection serving `client_id` dropped and the seat should be held: handed to a
    /// waiting resume, parked, or refused (then the caller ends it).
    pub(crate) fn hold(&self, client_id: Uuid, held: Held) -> Hold {
        let mut table = lock(&self.table);
        let table = &mut *table;
        let held_now = table.held;
        let Some(seat) = table.seats.get_mut(&client_id) else {
            return Hold::Refused(held);
        };
        let held = match &mut seat.state {
            State::Live { taker } => match taker.take() {
                Some(taker) => match taker.send(held) {
                    Ok(()) => return Hold::HandedOver,
                    // The resume gave up waiting: park it for the next one.
                    Err(held) => held,
                },
                None => held,
            },
            State::Held { .. } => return Hold::Refused(held),
        };
        if held_now >= self.max_held {
            return Hold::Refused(held);
        }
        table.next_hold += 1;
        let hold = table.next_hold;
        let stop = CancellationToken::new();
        seat.state = State::Held {
            held,
            hold,
            stop: stop.clone(),
        };
        table.held += 1;
        Hold::Parked(hold, stop)
    }

    /// Hold `hold` of `client_id` ran out: the seat, if it is still that hold, for the
    /// caller to end.
    pub(crate) fn expire(&self, client_id: Uuid, hold: u64) -> Option<Held> {
        let mut table = lock(&self.table);
        let current = matches!(
            table.seats.get(&client_id),
            Some(Seat { state: State::Held { hold: h, .. }, .. }) if *h == hold
        );
        if !current {
            return None;
        }
        self.remove(&mut table, client_id, Ended::Expired)
    }

    /// Ends the seat of `client_id` for `reason` (a kick, a shutdown, the end of its
    /// connection): its token is refused from now on with that reason. A held seat is
    /// returned for the caller to end; a live one ends with its connection.
    pub(crate) fn end(&self, client_id: Uuid, reason: &DisconnectReason) -> Option<Held> {
        let mut table = lock(&self.table);
        self.remove(&mut table, client_id, ended_for(reason))
    }

    /// The seat of `client_id` moved to another relay (after a claim): forgotten here, its
    /// tokens refused from now on.
    pub(crate) fn moved(&self, client_id: Uuid) {
        let mut table = lock(&self.table);
        let _ = self.remove(
            &mut table,
            client_id,
            Ended::Seat("moved to another relay".to_owned()),
        );
    }

    /// Whether `client_id`'s seat is held.
    pub(crate) fn is_held(&self, client_id: Uuid) -> bool {
        matches!(
            lock(&self.table).seats.get(&client_id),
            Some(Seat {
                state: State::Held { .. },
                ..
            })
        )
    }

    /// Why `token` is refused now (after a takeover that did not complete).
    pub(crate) fn refusal(&self, token: &[u8]) -> String {
        let table = lock(&self.table);
        let found = <Token>::try_from(token)
            .ok()
            .and_then(|token| table.ended.get(&token).cloned());
        found.map_or_else(|| UNKNOWN_TOKEN.to_owned(), |why| why.refusal())
    }

    fn remove(&self, table: &mut Table, client_id: Uuid, why: Ended) -> Option<Held> {
        let seat = table.seats.remove(&client_id)?;
        table.by_token.remove(&seat.token);
        remember(table, self.max_ended, seat.token, why);
        match seat.state {
            State::Held { held, stop, .. } => {
                stop.cancel();
                table.held -= 1;
                Some(held)
            }
            // A waiting resume learns of the end when its sender drops here.
            State::Live { .. } => None,
        }
    }
}

/// Records why `token` ended, forgetting the oldest record past `max`.
fn remember(table: &mut Table, max: usize, token: Token, why: Ended) {
    if table.ended.insert(token, why).is_none() {
        table.ended_order.push_back(token);
    }
    while table.ended_order.len() > max {
        if let Some(old) = table.ended_order.pop_front() {
            table.ended.remove(&old);
        }
    }
}
