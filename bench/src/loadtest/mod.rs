//! `ghost-sync-loadtest`'s library side: a load test of any ghost-sync relay through the
//! library's public [`ghost_sync::Client`], so it sees what an application sees (the token
//! handshake, typed disconnect reasons).
//!
//! Clients join existing rooms (the relay creates rooms; a join never does), each publishes
//! at a fixed rate and receives its room's broadcasts; the [`Report`] gives deliveries/s,
//! loss, latency percentiles and disconnects by reason.
//!
//! - [`args`]: the options, the command line, and how clients, rooms and room size relate;
//! - `traffic`: connecting, joining, the publisher and receiver tasks;
//! - `progress`: the live line on a terminal;
//! - `run`: one run from connecting to counting ([`run`]);
//! - [`report`]: the report, as text and JSON.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ghost_sync_bench::loadtest::{self, Options, Rooms};
//! let options = Options {
//!     addr: "127.0.0.1:7777".to_owned(),
//!     rooms: Rooms::Names(vec!["lobby".to_owned()]),
//!     room_size: Some(4),
//!     ..Options::default()
//! };
//! let report = loadtest::run(&options).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

pub mod args;
mod progress;
pub mod report;
mod run;
mod traffic;

pub use args::{Command, Options, RoomPlan, Rooms};
pub use report::Report;
pub use run::run;
