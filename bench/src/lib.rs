//! `ghost-sync-bench`: a load generator that measures ghost-sync against redis-server
//! (RESP SUBSCRIBE/PUBLISH) and nats-server (NATS text protocol SUB/PUB) the same way: each
//! server runs as its own process on a loopback port, rooms of the same size get the same
//! connections and the same window of unread messages, every delivery is checked (no loss,
//! per-publisher order) and timed, and the server's CPU time comes from `/proc`.
//!
//! The binary (`src/main.rs`) runs the comparison; this library holds its parts so that they
//! can be unit-tested and reused by the micro-benchmarks:
//!
//! - [`proto`]: the three wire protocols (encoders and incremental parsers);
//! - [`payload`]: the benchmark payload (publisher, sequence number, send timestamp);
//! - [`check`]: the zero-loss / per-publisher-order checker;
//! - [`load`]: connections, rooms, the unread-message window, publishers and receivers;
//! - [`servers`]: starting, probing and stopping the three servers;
//! - [`sys`]: `/proc` readings (CPU time, RSS, kernel socket memory, load average);
//! - [`fairness`]: the fairness test's flooders and bystanders;
//! - [`hog`]: busy-spinning threads that make the load generator a heavier one (`--hog N`);
//! - [`scenarios`]: the matrix, memory, scale, slow-consumer and fairness tests;
//! - [`cluster`]: one relay, redis pub/sub and three relays sharing redis, side by side;
//! - [`game`]: every member of every room publishing at a tick rate, on the three servers;
//! - [`report`]: the table, the JSON line, the targets and the SVG chart;
//! - [`loadtest`]: the `ghost-sync-loadtest` binary's parts (any relay, through the library's
//!   `Client`).

#![warn(missing_docs)]

pub mod check;
pub mod cluster;
pub mod fairness;
pub mod game;
pub mod hog;
pub mod load;
pub mod loadtest;
pub mod payload;
pub mod proto;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod sys;
