//! The fairness scenario's clients (ghost-sync only): *flooders*, which write tiny `Broadcast`
//! frames back to back as fast as their sockets take them, and a *bystander* pair in another
//! room, one member sending a small timestamped message at a fixed rate and the other timing
//! every delivery. The question is whether a few connections' backlogs can hold the relay's
//! worker threads so long that connections in other rooms wait; the bystanders' latency with
//! and without flooders answers it. The phases themselves (baseline, then flood) are run by
//! `scenarios`.
//!
//! This module holds what both kinds of client share: the setup handshake and its time limit.

mod bystander;
mod flooder;
mod frame_scan;
mod receipts;

pub use bystander::{BystanderPhase, Bystanders, BYSTANDER_PAYLOAD, LATE_NS};
pub use flooder::{flood_buffer, Flood, FloodSpec, FloodTotals, FLOOD_DATA, FLOOD_FRAME};
pub use frame_scan::FrameScan;

use crate::proto::{ghost, Event};
use anyhow::{anyhow, bail, Result};
use bytes::{Buf, BytesMut};
use std::time::Duration;

/// Longest a connection's setup (connect, `Hello`, `Join`) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The frames that open a connection and join it to `room`.
fn setup_request(room: &str) -> Vec<u8> {
    let mut out = Vec::new();
    ghost::hello(&mut out);
    ghost::join(&mut out, room);
    out
}

/// Takes the setup frames off the front of `buf`: true once `Joined` came (whatever follows
/// it stays in `buf`); an error if the relay refused.
fn setup_frames(buf: &mut BytesMut) -> Result<bool> {
    loop {
        let Some((event, used)) =
            ghost::parse(buf).map_err(|e| anyhow!("ghost-sync setup: {e}"))?
        else {
            return Ok(false);
        };
        buf.advance(used);
        match event {
            Event::Subscribed => return Ok(true),
            Event::Fail(why) | Event::Closed(why) => bail!("ghost-sync setup: {why}"),
            _ => {}
        }
    }
}
