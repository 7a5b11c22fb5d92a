//! Rooms across several relays over Redis (feature `redis`): three relays in one process,
//! sharing a `redis-server` the tests start themselves, with clients spread across them.
//!
//! Run with `cargo test -p ghost-sync --features redis --test cluster`; it needs
//! `redis-server` (Redis 7) on PATH.

mod broker;
mod relays;

mod broadcast;
mod capacity;
mod control;
mod liveness;
mod outage;
mod presence;
mod resume;
mod room_state;
mod rooms;
mod startup;
