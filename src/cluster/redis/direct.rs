//! [`Direct`]: the publish path. A room's frame is handed to the connection's own writer at
//! once, from the task that relayed it, with no answer awaited (`PUBLISH`'s reply is read and
//! dropped by the connection): no task hop, and no reply to wake anyone, which at a game's
//! tick rate is a thread wake-up per frame saved. The channel name and the bus message are
//! written straight into the command, so a frame costs that one buffer and no other.
//!
//! Its order with the link's ops holds: a frame only ever enters the connection before the
//! ops submitted after it (a member's leave comes after its last frames).

use super::{MAX_QUEUED_BYTES, MAX_QUEUED_OPS};
use crate::cluster::bus_message::write_room_message;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{RedisWrite, ToRedisArgs};
use std::io::Write;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub(crate) struct Direct {
    /// The connection while it is up.
    pub(super) conn: Mutex<Option<MultiplexedConnection>>,
    /// Requests the connection may hold unwritten: 64 MiB of the largest frames (at least 64,
    /// at most 65,536); past it, frames are dropped and counted.
    pub(super) capacity: usize,
    prefix: String,
    /// This run of the relay, in every bus message's header.
    origin: u64,
}

/// The channel `P:bus:<room>`, as one argument written in place.
struct RoomChannel<'a> {
    prefix: &'a str,
    room: &'a str,
}

impl ToRedisArgs for RoomChannel<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = write!(arg, "{}:bus:{}", self.prefix, self.room);
    }
}

/// A bus message (header and frame), as one argument written in place.
struct BusMessage<'a> {
    origin: u64,
    seq: u64,
    frame: &'a [u8],
}

impl ToRedisArgs for BusMessage<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        let _ = write_room_message(&mut arg, self.origin, self.seq, self.frame);
    }
}

impl Direct {
    pub(super) fn new(prefix: &str, origin: u64, max_payload: usize) -> Self {
        Self {
            conn: Mutex::new(None),
            capacity: (MAX_QUEUED_BYTES / (max_payload + 64)).clamp(64, MAX_QUEUED_OPS),
            prefix: prefix.to_owned(),
            origin,
        }
    }

    /// Hands `frame` (this relay's `seq`-th in `room`) to the connection; `false` if it is
    /// down or full.
    pub(super) fn publish(&self, room: &str, seq: u64, frame: &Bytes) -> bool {
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(RoomChannel {
                prefix: &self.prefix,
                room,
            })
            .arg(BusMessage {
                origin: self.origin,
                seq,
                frame,
            })
            .set_no_response(true);
        let mut conn = crate::sync::lock(&self.conn);
        let Some(conn) = conn.as_mut() else {
            return false;
        };
        // Without an awaited answer the send completes at its first poll, unless the
        // connection's queue is full: then it is dropped unsent, as a full queue drops.
        // Unconstrained: the relaying task may have spent its cooperative budget, which
        // would make the queue's semaphore answer "not yet" however empty it is.
        let mut send = std::pin::pin!(tokio::task::unconstrained(
            conn.send_packed_command(&publish)
        ));
        let polled =
            std::future::Future::poll(send.as_mut(), &mut Context::from_waker(Waker::noop()));
        matches!(polled, Poll::Ready(Ok(_)))
    }
}
