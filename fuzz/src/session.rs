//! The state-machine target: a [`Script`] of steps from three clients and the server's
//! handle, run through the real connection driver over in-memory streams.
//!
//! A script picks a few options (a 64-byte payload limit, a queue of 1 to 8 frames, a rate
//! limit, two seats only, seats held after a drop, whether the clients say `Hello` on their
//! own) and then a list of [`Step`]s:
//! well-formed frames, raw bytes, reads, closes, room and client operations on the handle,
//! and pauses of virtual time (so pings, idle timeouts and write deadlines fire). It runs on
//! a current-thread runtime with paused time, so a run takes microseconds of real time and
//! timers fire in a fixed order. (Client ids, hash seeds and tokio's unbiased `select!` still
//! vary between runs, so a crash may need a few replays to show again.) The server stops at
//! the end (`shutdown` or `drain`) while every client reads to the end. Then:
//!
//! - nothing panicked (libFuzzer turns a panic anywhere, tasks included, into a crash);
//! - every byte the relay sent is a well-formed frame that the real client accepts:
//!   `Welcome` or `Rejected` first, not a byte after a `Disconnect` or a `Rejected`, no two
//!   `Dropped` notices in a row;
//! - nothing is left behind: no client in the directory, no member in any room;
//! - the hooks pair up: `on_disconnect` exactly once for each client that was welcomed (once
//!   per client id, however many connections a resumed seat had) and for no other, every
//!   `on_resume` after an `on_drop` of the same id and no second `on_drop` before it, no
//!   hook for a client after its `on_disconnect`, no `on_leave` of a room without an
//!   admitted join into it, and at least one `on_leave` for each join the client was told
//!   about (each `Joined` into a room it was not already in).
//!
//! Connections come in through the public entry for any transport,
//! `Relay::serve_connection`: admission (the connection limit, with two seats when the
//! script asks, the per-IP limit, `on_connect`), then the connection's task, exactly as the
//! accept loop's TCP connections.

use bytes::BytesMut;
use ghost_sync::layers::ClientRateLimitLayer;
use ghost_sync::pipeline::FrameLayer;
use ghost_sync::protocol::{decode_frame, encode, ClientFrame, FrameReader, ServerFrame};
use ghost_sync::protocol::{MAX_REASON_LEN, PROTOCOL_VERSION};
use ghost_sync::{DisconnectReason, JoinRequest, Relay, RoomOptions, Server, ServerHandler, Uuid};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

/// Clients a script can speak for.
const CLIENTS: usize = 3;
/// Bytes an in-memory socket holds each way: little, so that a client that stops reading
/// stalls the relay's writer within a few frames.
const SOCKET_BYTES: usize = 64;
/// Longest a client's write or its final read may take, in virtual time: far past every
/// deadline of the relay, so only a relay that hangs reaches it.
const STUCK: Duration = Duration::from_secs(3_600);

/// A relay configuration and what happens to it.
#[derive(Arbitrary, Debug)]
pub struct Script {
    /// `max_payload` of 64 bytes instead of the default, so payload limits are hit often.
    small_payload: bool,
    /// The frames a client's queue holds: 1 to 8, so backpressure is hit often.
    channel_capacity: u8,
    /// A rate limit of 5 frames and 1,000 bytes a second, disconnecting at 3 violations.
    rate_limit: bool,
    /// Clients connect without sending `Hello` themselves (the script may send one).
    manual_hello: bool,
    /// End with `drain` (patient) instead of `shutdown`.
    drain: bool,
    /// `max_clients` of 2, so the third client is refused at admission (`ServerFull`).
    two_seats: bool,
    /// Seats are held 5 s (virtual) after a drop, so `Sever` and `Resume` can play out.
    resume_window: bool,
    steps: Vec<Step>,
}

/// One thing that happens (the frames of protocol version 2: joins, broadcasts, direct and
/// keyed sends, room state, goodbyes). `who` picks a client (modulo three); a client connects the first
/// time a step names it.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// A well-formed frame from a client.
    Send { who: u8, frame: Frame },
    /// Any bytes from a client: torn frames, bad lengths, unknown tags.
    Raw { who: u8, bytes: Vec<u8> },
    /// A client sends `frames` broadcasts of `size` bytes in one write: load that a short
    /// script can express.
    Flood { who: u8, frames: u8, size: u8 },
    /// A client reads what has reached it (and stops reading until the next `Read`).
    Read { who: u8 },
    /// A client closes its sending side.
    Close { who: u8 },
    /// A client's connection goes without a goodbye (both directions closed): with
    /// `resume_window`, the relay holds its seat.
    Sever { who: u8 },
    /// A new connection for client `who`, presenting the resume token of its last `Welcome`
    /// (if it had one), and becoming that client's connection.
    Resume { who: u8 },
    /// The handle creates a room.
    CreateRoom { room: Room, max_clients: Option<u8> },
    /// The handle deletes a room.
    DeleteRoom { room: Room },
    /// The handle kicks a client.
    Kick { who: u8 },
    /// The handle sends bytes to one client.
    SendTo { who: u8, data: Vec<u8> },
    /// The handle broadcasts to a room.
    BroadcastToRoom { room: Room, data: Vec<u8> },
    /// Virtual time passes.
    Sleep { seconds: u8 },
}

/// A client frame, encoded as a real client would.
#[derive(Arbitrary, Debug)]
pub enum Frame {
    Hello {
        right_version: bool,
        credentials: Vec<u8>,
    },
    /// The join hook refuses a join whose data is `no`.
    Join {
        room: Room,
        data: Vec<u8>,
    },
    Leave,
    Broadcast {
        data: Vec<u8>,
    },
    Ping,
    Pong,
    /// To the clients these name (modulo three: their ids once known, else ids of nobody),
    /// and the sender itself when it is among them.
    Direct {
        targets: Vec<u8>,
        data: Vec<u8>,
    },
    Keyed {
        key: u8,
        data: Vec<u8>,
    },
    /// A key of one letter or two (so that sets overwrite and delete each other), or any.
    SetState {
        key: StateKey,
        value: Vec<u8>,
    },
    Bye,
}

/// A room-state key: mostly one of a few, sometimes anything (empty and too long included).
#[derive(Arbitrary, Debug)]
pub enum StateKey {
    A,
    B,
    Named(String),
}

impl StateKey {
    fn key(&self) -> &str {
        match self {
            StateKey::A => "a",
            StateKey::B => "b",
            StateKey::Named(name) => name,
        }
    }
}

/// A room id: mostly the few the relay knows, sometimes anything.
#[derive(Arbitrary, Debug)]
pub enum Room {
    /// Created at the start, no capacity.
    Lobby,
    /// Created at the start, room for one.
    Duel,
    /// Never created at the start.
    Missing,
    Named(String),
}

impl Room {
    fn id(&self) -> &str {
        match self {
            Room::Lobby => "lobby",
            Room::Duel => "duel",
            Room::Missing => "missing",
            Room::Named(name) => name,
        }
    }
}

/// What a hook saw, in order.
#[derive(Debug, Clone)]
enum Hook {
    Drop(Uuid),
    Resume(Uuid),
    JoinAdmitted(Uuid, String),
    JoinRefused(Uuid),
    Leave(Uuid, String),
    Broadcast(Uuid),
    Backpressure(Uuid),
    Disconnect(Uuid),
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Hook>>>);

impl Recorder {
    fn push(&self, hook: Hook) {
        if let Ok(mut log) = self.0.lock() {
            log.push(hook);
        }
    }
}

impl ServerHandler for Recorder {
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        if join.data == b"no" {
            self.push(Hook::JoinRefused(join.client_id));
            return Err("no".into());
        }
        self.push(Hook::JoinAdmitted(join.client_id, join.room_id.to_owned()));
        Ok(())
    }

    fn on_leave(&self, client_id: Uuid, room_id: &str) {
        self.push(Hook::Leave(client_id, room_id.to_owned()));
    }

    fn on_broadcast(&self, client_id: Uuid, _room_id: &str, _data: &[u8]) {
        self.push(Hook::Broadcast(client_id));
    }

    fn on_backpressure(&self, client_id: Uuid, _room_id: &str) {
        self.push(Hook::Backpressure(client_id));
    }

    fn on_disconnect(&self, client_id: Uuid, _reason: &DisconnectReason) {
        self.push(Hook::Disconnect(client_id));
    }

    fn on_drop(&self, client_id: Uuid, _reason: &DisconnectReason) {
        self.push(Hook::Drop(client_id));
    }

    fn on_resume(&self, client_id: Uuid, _missed: u32) {
        self.push(Hook::Resume(client_id));
    }
}

/// One client's end of its in-memory socket.
struct Conn {
    reader: ReadHalf<DuplexStream>,
    writer: Option<WriteHalf<DuplexStream>>,
    received: BytesMut,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) {
        if let Some(writer) = &mut self.writer {
            // A relay that stopped reading (it disconnected this client) fails or stalls the
            // write: either is fine, the relay decides when to read.
            if !matches!(
                tokio::time::timeout(STUCK, writer.write_all(bytes)).await,
                Ok(Ok(()))
            ) {
                self.writer = None;
            }
        }
    }

    /// Reads what is there now, without waiting.
    async fn read_available(&mut self) {
        loop {
            self.received.reserve(1024);
            match tokio::time::timeout(Duration::ZERO, self.reader.read_buf(&mut self.received))
                .await
            {
                Ok(Ok(n)) if n > 0 => continue,
                _ => return,
            }
        }
    }

    /// Reads until the relay closes, then closes too.
    async fn finish(mut self) -> BytesMut {
        loop {
            self.received.reserve(1024);
            match tokio::time::timeout(STUCK, self.reader.read_buf(&mut self.received)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => break,
                Err(_) => panic!("the relay never closed the connection"),
            }
        }
        drop(self.writer.take());
        self.received
    }
}

/// Runs one script and checks what came of it.
pub fn run(script: Script) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(play(script));
}

async fn play(script: Script) {
    let max_payload = if script.small_payload { 64 } else { 64 * 1024 };
    let recorder = Recorder::default();
    let mut builder = Server::builder()
        .max_payload(max_payload)
        .channel_capacity(usize::from(script.channel_capacity % 8) + 1)
        .max_queued_bytes(1024)
        .ping_interval(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(20))
        .write_timeout(Duration::from_secs(3))
        .handler(recorder.clone());
    if script.two_seats {
        builder = builder.max_clients(2);
    }
    if script.resume_window {
        builder = builder.resume_window(Duration::from_secs(5));
    }
    if script.rate_limit {
        builder = builder.rate_limit(ClientRateLimitLayer::new(5, 1_000).disconnect_after(3));
    }
    // The public entry for any transport: admission, then the connection's task.
    let relay = builder
        .build()
        .start()
        .await
        .expect("a relay without a broker starts");
    let handle = relay.handle();
    handle.create_room("lobby").expect("a fresh room");
    handle
        .create_room_with(
            "duel",
            RoomOptions {
                max_clients: Some(1),
            },
        )
        .expect("a fresh room");

    let mut conns: Vec<Option<Conn>> = (0..CLIENTS).map(|_| None).collect();
    let mut welcomed: Vec<Option<Uuid>> = vec![None; CLIENTS];
    // The resume token of each client's last `Welcome`, read when it is severed.
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; CLIENTS];
    // Connections that ended before the end of the script, reading to their end.
    let mut finishing = Vec::new();
    for step in &script.steps {
        match step {
            Step::Send { who, frame } => {
                let bytes = encode_frame(frame, &welcomed);
                let conn = connect(&relay, &mut conns, *who, script.manual_hello).await;
                conn.send(&bytes).await;
            }
            Step::Raw { who, bytes } => {
                let conn = connect(&relay, &mut conns, *who, script.manual_hello).await;
                conn.send(bytes).await;
            }
            Step::Flood { who, frames, size } => {
                let conn = connect(&relay, &mut conns, *who, script.manual_hello).await;
                let data = vec![0x5a; usize::from(*size)];
                let frame = encode(&ClientFrame::Broadcast { data: &data });
                conn.send(&frame.repeat(usize::from(*frames))).await;
            }
            Step::Read { who } => {
                connect(&relay, &mut conns, *who, script.manual_hello)
                    .await
                    .read_available()
                    .await;
            }
            Step::Close { who } => {
                let conn = connect(&relay, &mut conns, *who, script.manual_hello).await;
                if let Some(mut writer) = conn.writer.take() {
                    let _ = writer.shutdown().await;
                }
            }
            Step::Sever { who } => {
                let index = usize::from(*who) % CLIENTS;
                if let Some(mut conn) = conns[index].take() {
                    conn.read_available().await;
                    if let Some((id, token)) = welcome_of(&conn.received, max_payload) {
                        welcomed[index] = Some(id);
                        tokens[index] = Some(token);
                    }
                    // No goodbye: the relay sees the stream end.
                    drop(conn.writer.take());
                    finishing.push(tokio::spawn(conn.finish()));
                }
            }
            Step::Resume { who } => {
                let index = usize::from(*who) % CLIENTS;
                if let Some(token) = tokens[index].take() {
                    if let Some(conn) = conns[index].take() {
                        finishing.push(tokio::spawn(conn.finish()));
                    }
                    let conn = open(&relay, index);
                    conns[index] = Some(conn);
                    let hello = encode(&ClientFrame::Hello {
                        version: PROTOCOL_VERSION,
                        credentials: &[],
                        resume: &token,
                    });
                    if let Some(conn) = conns[index].as_mut() {
                        conn.send(&hello).await;
                    }
                }
            }
            Step::CreateRoom { room, max_clients } => {
                let options = RoomOptions {
                    max_clients: max_clients.map(usize::from),
                };
                let _ = handle.create_room_with(room.id(), options);
            }
            Step::DeleteRoom { room } => {
                handle.delete_room(room.id());
            }
            Step::Kick { who } => {
                if let Some(id) = client_id(&mut conns, &mut welcomed, *who, max_payload).await {
                    let _ = handle.kick(id, "fuzz");
                }
            }
            Step::SendTo { who, data } => {
                if let Some(id) = client_id(&mut conns, &mut welcomed, *who, max_payload).await {
                    let _ = handle.send_to(id, data);
                }
            }
            Step::BroadcastToRoom { room, data } => {
                let _ = handle.broadcast_to_room(room.id(), data);
            }
            Step::Sleep { seconds } => {
                tokio::time::sleep(Duration::from_secs(u64::from(*seconds))).await;
            }
        }
        // Paused time moves on only once every task waits: the relay has done all it can.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // In the order the connections were made, so that a client's transcripts follow each
    // other (a resumed connection after the one it took over).
    finishing.extend(
        conns
            .into_iter()
            .flatten()
            .map(|conn| tokio::spawn(conn.finish())),
    );
    if script.drain {
        handle.drain(Duration::from_secs(30)).await;
    } else {
        handle.shutdown().await;
    }
    let mut transcripts = Vec::new();
    for conn in finishing {
        transcripts.push(conn.await.expect("a client task"));
    }

    let mut welcomed: Vec<Welcomed> = Vec::new();
    for bytes in &transcripts {
        // A resumed connection goes on in the room its client was in.
        let before = |id: Uuid| {
            welcomed
                .iter()
                .rev()
                .find(|w| w.id == id)
                .and_then(|w| w.room.clone())
        };
        if let Some(seen) = check_transcript(bytes, max_payload, before) {
            welcomed.push(seen);
        }
    }
    assert_eq!(handle.client_count(), 0, "a client left in the directory");
    for room in handle.room_ids() {
        assert_eq!(
            handle.room_client_count(&room),
            Some(0),
            "members left in {room:?}"
        );
    }
    let log = recorder.0.lock().expect("the hook log").clone();
    check_hooks(&log, &welcomed);
}

/// The client `who`, connected (and greeting the relay, unless the script does) the first
/// time it is named.
async fn connect<'a, L: FrameLayer>(
    relay: &Relay<L>,
    conns: &'a mut [Option<Conn>],
    who: u8,
    manual_hello: bool,
) -> &'a mut Conn {
    let index = usize::from(who) % CLIENTS;
    let slot = &mut conns[index];
    if slot.is_none() {
        let mut conn = open(relay, index);
        if !manual_hello {
            conn.send(&encode(&ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                credentials: &[],
                resume: &[],
            }))
            .await;
        }
        *slot = Some(conn);
    }
    slot.as_mut().expect("connected just now")
}

/// A new in-memory connection for client `index`, through the relay's admission.
fn open<L: FrameLayer>(relay: &Relay<L>, index: usize) -> Conn {
    let (ours, theirs) = tokio::io::duplex(SOCKET_BYTES);
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000 + index as u16));
    relay.serve_connection(theirs, peer);
    let (reader, writer) = tokio::io::split(ours);
    Conn {
        reader,
        writer: Some(writer),
        received: BytesMut::new(),
    }
}

/// The id and resume token of the `Welcome` that `received` starts with, if it does.
fn welcome_of(received: &BytesMut, max_payload: usize) -> Option<(Uuid, Vec<u8>)> {
    let mut bytes = received.clone();
    let body = client_reader(max_payload).next_frame(&mut bytes).ok()??;
    match decode_frame(&body) {
        Ok(ServerFrame::Welcome {
            client_id,
            resume_token,
            ..
        }) => Some((client_id, resume_token.to_vec())),
        _ => None,
    }
}

/// The id the relay gave client `who`, if it has read its `Welcome`.
async fn client_id(
    conns: &mut [Option<Conn>],
    welcomed: &mut [Option<Uuid>],
    who: u8,
    max_payload: usize,
) -> Option<Uuid> {
    let index = usize::from(who) % CLIENTS;
    if welcomed[index].is_none() {
        let conn = conns[index].as_mut()?;
        conn.read_available().await;
        let reader = client_reader(max_payload);
        let mut bytes = conn.received.clone();
        if let Ok(Some(body)) = reader.next_frame(&mut bytes) {
            if let Ok(ServerFrame::Welcome { client_id, .. }) = decode_frame(&body) {
                welcomed[index] = Some(client_id);
            }
        }
    }
    welcomed[index]
}

/// `frame` encoded; a `Direct` names the clients whose ids are known, others made up.
fn encode_frame(frame: &Frame, welcomed: &[Option<Uuid>]) -> bytes::Bytes {
    match frame {
        Frame::Hello {
            right_version,
            credentials,
        } => encode(&ClientFrame::Hello {
            version: if *right_version {
                PROTOCOL_VERSION
            } else {
                PROTOCOL_VERSION.wrapping_add(1)
            },
            credentials,
            resume: &[],
        }),
        Frame::Join { room, data } => encode(&ClientFrame::Join {
            room_id: room.id(),
            data,
        }),
        Frame::Leave => encode(&ClientFrame::Leave),
        Frame::Broadcast { data } => encode(&ClientFrame::Broadcast { data }),
        Frame::Ping => encode(&ClientFrame::Ping),
        Frame::Pong => encode(&ClientFrame::Pong),
        Frame::Direct { targets, data } => {
            let ids: Vec<u8> = targets
                .iter()
                .map(|&who| {
                    welcomed[usize::from(who) % CLIENTS]
                        .unwrap_or(Uuid::from_u128(u128::from(who) + 1))
                })
                .flat_map(|id| *id.as_bytes())
                .collect();
            encode(&ClientFrame::Direct {
                targets: &ids,
                data,
            })
        }
        Frame::Keyed { key, data } => encode(&ClientFrame::Keyed {
            key: u32::from(*key % 4),
            data,
        }),
        Frame::SetState { key, value } => encode(&ClientFrame::SetState {
            key: key.key(),
            value,
        }),
        Frame::Bye => encode(&ClientFrame::Bye),
    }
}

/// Frames as the real client reads them: up to the relay's payload limit, and reasons of
/// up to [`MAX_REASON_LEN`] whatever that limit.
fn client_reader(max_payload: usize) -> FrameReader {
    FrameReader::for_payload(max_payload.max(MAX_REASON_LEN))
}

/// A client the relay welcomed, and what its transcript shows.
struct Welcomed {
    id: Uuid,
    /// Per room id: the joins it was told about (`Joined` into a room it was not already in,
    /// as far as its transcript shows). A lower bound: a reply the relay dropped under
    /// backpressure only makes it smaller.
    joins: HashMap<String, usize>,
    /// The room it was in at the end of this connection, as far as its transcript shows.
    room: Option<String>,
}

/// Everything the relay sent one client, as a client reads it: well-formed frames, a
/// `Welcome` or a `Rejected` first, not a byte after the last word. Returns what the client
/// saw if it was welcomed.
fn check_transcript(
    bytes: &BytesMut,
    max_payload: usize,
    before: impl Fn(Uuid) -> Option<String>,
) -> Option<Welcomed> {
    let reader = client_reader(max_payload);
    let mut bytes = bytes.clone();
    let mut welcomed = None;
    let mut joins: HashMap<String, usize> = HashMap::new();
    let mut current: Option<String> = None;
    let mut first = true;
    let mut ended = false;
    let mut after_notice = false;
    // A writer that gave up on a stalled client may have cut its last batch short: a torn
    // frame at the very end is allowed, a malformed one never.
    while let Some(body) = reader
        .next_frame(&mut bytes)
        .expect("the relay sent a frame a client refuses")
    {
        let frame = decode_frame::<ServerFrame<'_>>(&body).expect("the relay sent a bad frame");
        assert!(!ended, "{frame:?} after the relay's last word");
        // A notice is queued with the frame it announces: never two in a row.
        let notice = matches!(frame, ServerFrame::Dropped { .. });
        assert!(!(after_notice && notice), "two Dropped notices in a row");
        after_notice = notice;
        match frame {
            ServerFrame::Welcome { client_id, .. } => {
                assert!(first, "a second Welcome");
                welcomed = Some(client_id);
                // A resumed seat is where it was.
                current = before(client_id);
            }
            ServerFrame::Rejected { .. } => {
                assert!(first, "Rejected after the handshake");
                ended = true;
            }
            ServerFrame::Disconnect { .. } => ended = true,
            ServerFrame::Joined { room_id, .. } if !first => {
                if current.as_deref() != Some(room_id) {
                    *joins.entry(room_id.to_owned()).or_default() += 1;
                    current = Some(room_id.to_owned());
                }
            }
            ServerFrame::Left { .. } if !first => current = None,
            other => assert!(!first, "{other:?} before the handshake"),
        }
        first = false;
    }
    if ended {
        assert!(bytes.is_empty(), "bytes after the relay's last word");
    }
    welcomed.map(|id| Welcomed {
        id,
        joins,
        room: current,
    })
}

/// The hooks pair up: see the module's documentation.
fn check_hooks(log: &[Hook], clients: &[Welcomed]) {
    let welcomed: Vec<Uuid> = clients.iter().map(|client| client.id).collect();
    let mut disconnected: HashMap<Uuid, usize> = HashMap::new();
    // Per client: drops not yet followed by their resume.
    let mut held: HashMap<Uuid, usize> = HashMap::new();
    // Per client and room: joins admitted minus `on_leave`s, and `on_leave`s.
    let mut joined: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut left: HashMap<(Uuid, &str), usize> = HashMap::new();
    for hook in log {
        let id = match hook {
            Hook::Drop(id)
            | Hook::Resume(id)
            | Hook::JoinAdmitted(id, _)
            | Hook::JoinRefused(id)
            | Hook::Leave(id, _)
            | Hook::Broadcast(id)
            | Hook::Backpressure(id)
            | Hook::Disconnect(id) => *id,
        };
        assert!(
            welcomed.contains(&id),
            "{hook:?} for a client never welcomed"
        );
        // A client's `on_backpressure` can come from another's broadcast, racing its end.
        if !matches!(hook, Hook::Backpressure(_)) {
            assert!(
                !disconnected.contains_key(&id),
                "{hook:?} after on_disconnect"
            );
        }
        match hook {
            Hook::JoinAdmitted(_, room) => *joined.entry((id, room)).or_default() += 1,
            Hook::Leave(_, room) => {
                let open = joined.entry((id, room)).or_default();
                assert!(*open > 0, "on_leave of {room:?} without an admitted join");
                *open -= 1;
                *left.entry((id, room)).or_default() += 1;
            }
            Hook::Disconnect(_) => *disconnected.entry(id).or_default() += 1,
            Hook::Drop(_) => {
                let open = held.entry(id).or_default();
                assert_eq!(*open, 0, "on_drop twice without a resume");
                *open += 1;
            }
            Hook::Resume(_) => {
                let open = held.entry(id).or_default();
                assert_eq!(*open, 1, "on_resume without an on_drop");
                *open -= 1;
            }
            _ => {}
        }
    }
    // Once per client, however many connections it had.
    let mut joins: HashMap<(Uuid, &str), usize> = HashMap::new();
    for client in clients {
        for (room, &n) in &client.joins {
            *joins.entry((client.id, room.as_str())).or_default() += n;
        }
    }
    for &id in &welcomed {
        assert_eq!(
            disconnected.get(&id).copied().unwrap_or(0),
            1,
            "on_disconnect for {id}"
        );
    }
    for (&(id, room), &joins) in &joins {
        let leaves = left.get(&(id, room)).copied().unwrap_or(0);
        assert!(
            leaves >= joins,
            "{id} was told of {joins} join(s) into {room:?} but left it {leaves} time(s)"
        );
    }
}
