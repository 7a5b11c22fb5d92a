//! One run, start to end: connect and join every client (receivers start at once, so early
//! joiners answer the relay's pings while the others connect), then publish through the
//! warm-up and the window, wait for frames in flight, stop, and count.

use super::args::{Options, RoomPlan};
use super::progress;
use super::report::Report;
use super::traffic::{self, Failure, Live, Phase, Published, Received, Window};
use crate::payload;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Handshakes in flight at once: enough to connect thousands of clients in seconds without
/// overflowing the relay's accept backlog.
const CONNECT_CONCURRENCY: usize = 64;
/// From the last join to the first tick: time to start every publisher.
const LEAD: Duration = Duration::from_millis(20);
/// How long stopped receivers get to hand back their counts.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A client that joined.
struct Member {
    room: usize,
    alive: Arc<AtomicBool>,
    receiver: JoinHandle<Received>,
}

/// Runs the load test `options` describe and reports it. Fails only if the options
/// contradict each other ([`Options::plan`]); a relay that cannot be reached or refuses is
/// reported ([`Report::errors`], [`Report::exit_code`]).
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let plan = options.plan()?;
    let clients: usize = plan.iter().map(|r| r.members).sum();
    let live = Arc::new(Live::new());
    let (stop, stopped) = watch::channel(false);
    let progress = options
        .progress
        .then(|| progress::spawn(Arc::clone(&live), clients, stopped.clone()));

    let (members, senders, failures) = connect_all(options, &plan, &live, &stopped).await;
    let mut report = Report {
        addr: options.addr.clone(),
        rooms: plan.len(),
        clients,
        joined: members.len(),
        rate_hz: options.rate,
        payload_bytes: options.payload,
        warmup_secs: options.warmup.as_secs_f64(),
        window_secs: options.duration.as_secs_f64(),
        published: 0,
        published_total: 0,
        expected: 0,
        received: 0,
        lost: 0,
        gaps: 0,
        reordered: 0,
        malformed: 0,
        latency_us: traffic::histogram(),
        disconnects: BTreeMap::new(),
        connect_failures: BTreeMap::new(),
        join_failures: BTreeMap::new(),
        publish_errors: BTreeMap::new(),
        errors: Vec::new(),
    };
    explain_failures(&mut report, options, &failures);

    if !members.is_empty() {
        let published = publish_all(options, &live, senders).await;
        let deadline = Instant::now() + options.drain;
        live.set_phase(Phase::Draining);
        // Frames still in flight: wait until every expected one came, or the deadline.
        while live.window_received.load(Ordering::Relaxed) < expected(&members, &published)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        count(&mut report, members, &published).await;
    }
    let _ = stop.send(true);
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    Ok(report)
}

/// Connects and joins every planned client, [`CONNECT_CONCURRENCY`] at a time.
async fn connect_all(
    options: &Options,
    plan: &[RoomPlan],
    live: &Arc<Live>,
    stopped: &watch::Receiver<bool>,
) -> (Vec<Member>, Vec<traffic::SenderSlot>, Vec<Failure>) {
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::new();
    for (room, rp) in plan.iter().enumerate() {
        for index in 0..rp.members {
            let (limit, live, stopped) = (Arc::clone(&limit), Arc::clone(live), stopped.clone());
            let (addr, token, name) =
                (options.addr.clone(), options.token.clone(), rp.name.clone());
            let (payload_len, deadline, size) =
                (options.payload, options.connect_timeout, rp.members);
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let client = traffic::connect_and_join(
                    &addr,
                    token.as_deref(),
                    &name,
                    payload_len,
                    deadline,
                )
                .await?;
                live.connected.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = client.split();
                let alive = Arc::new(AtomicBool::new(true));
                let receiver = tokio::spawn(traffic::receive(
                    rx,
                    size,
                    payload_len,
                    live,
                    Arc::clone(&alive),
                    stopped,
                ));
                let index = index as u32;
                Ok::<_, Failure>((
                    Member {
                        room,
                        alive,
                        receiver,
                    },
                    traffic::SenderSlot { tx, index },
                ))
            }));
        }
    }
    let (mut members, mut senders, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        match task.await {
            Ok(Ok((member, sender))) => {
                members.push(member);
                senders.push(sender);
            }
            Ok(Err(failure)) => failures.push(failure),
            Err(e) => failures.push(Failure {
                stage: "connect",
                reason: "internal".to_owned(),
                detail: format!("the connecting task failed: {e}"),
            }),
        }
    }
    (members, senders, failures)
}

/// Starts every publisher (their first ticks spread over one period, so that the rooms do
/// not all publish in the same millisecond) and waits for them to pass the window's end.
async fn publish_all(
    options: &Options,
    live: &Arc<Live>,
    senders: Vec<traffic::SenderSlot>,
) -> Vec<Published> {
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let t0 = Instant::now() + LEAD;
    let start_ns = payload::now_ns() + nanos(LEAD + options.warmup);
    let window = Window {
        start_ns,
        end_ns: start_ns + nanos(options.duration),
    };
    let _ = live.window.set(window);
    let n = senders.len();
    let handles: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let first = t0 + period.mul_f64(i as f64 / n as f64);
            tokio::spawn(traffic::publish(
                s.tx,
                s.index,
                options.payload,
                period,
                first,
                window,
            ))
        })
        .collect();
    live.set_phase(Phase::WarmingUp);
    let measuring = t0 + options.warmup;
    let ends = measuring + options.duration;
    tokio::time::sleep_until(measuring).await;
    live.set_phase(Phase::Measuring);
    // A publisher waiting on a socket the relay never drains is given up after the drain.
    let give_up = ends + options.drain;
    let mut published = Vec::with_capacity(n);
    for mut handle in handles {
        match tokio::time::timeout_at(give_up, &mut handle).await {
            Ok(Ok(p)) => published.push(p),
            Ok(Err(e)) => published.push(Published {
                error: Some(format!("internal: {e}")),
                ..Published::default()
            }),
            Err(_) => {
                handle.abort();
                published.push(Published {
                    error: Some("stuck".to_owned()),
                    ..Published::default()
                });
            }
        }
    }
    published
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Deliveries the window's broadcasts should make to members still connected: each
/// broadcast to every other member of its room.
fn expected(members: &[Member], published: &[Published]) -> u64 {
    let mut per_room: BTreeMap<usize, u64> = BTreeMap::new();
    for (m, p) in members.iter().zip(published) {
        *per_room.entry(m.room).or_default() += p.in_window;
    }
    members
        .iter()
        .zip(published)
        .filter(|(m, _)| m.alive.load(Ordering::Acquire))
        .map(|(m, p)| per_room[&m.room] - p.in_window)
        .sum()
}

/// Stops the receivers and adds up what everyone did.
async fn count(report: &mut Report, members: Vec<Member>, published: &[Published]) {
    let mut per_room: BTreeMap<usize, u64> = BTreeMap::new();
    for (m, p) in members.iter().zip(published) {
        *per_room.entry(m.room).or_default() += p.in_window;
        report.published += p.in_window;
        report.published_total += p.total;
        if let Some(e) = &p.error {
            *report.publish_errors.entry(e.clone()).or_default() += 1;
        }
    }
    for (m, p) in members.into_iter().zip(published) {
        let room = m.room;
        let mut handle = m.receiver;
        let got = match tokio::time::timeout(STOP_GRACE, &mut handle).await {
            Ok(Ok(got)) => got,
            Ok(Err(_)) | Err(_) => {
                handle.abort();
                *report.disconnects.entry("internal".to_owned()).or_default() += 1;
                continue;
            }
        };
        report.gaps += got.gaps;
        report.reordered += got.reordered;
        report.malformed += got.malformed;
        match got.disconnect {
            Some(why) => *report.disconnects.entry(why).or_default() += 1,
            None => {
                report.expected += per_room[&room] - p.in_window;
                report.received += got.in_window;
                let _ = report.latency_us.add(&got.latency);
            }
        }
    }
    report.lost = report.expected.saturating_sub(report.received);
    if !report.disconnects.is_empty() {
        let n: u64 = report.disconnects.values().sum();
        report.errors.push(format!(
            "{n} client(s) disconnected during the run (by reason above); their deliveries \
             are not counted"
        ));
    }
}

/// Turns connect and join failures into counts, grouped messages and advice.
fn explain_failures(report: &mut Report, options: &Options, failures: &[Failure]) {
    let mut grouped: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for f in failures {
        let map = if f.stage == "join" {
            &mut report.join_failures
        } else {
            &mut report.connect_failures
        };
        *map.entry(f.reason.clone()).or_default() += 1;
        *grouped
            .entry((f.stage, f.reason.as_str(), f.detail.as_str()))
            .or_default() += 1;
    }
    const SHOWN: usize = 8;
    for ((stage, _, detail), n) in grouped.iter().take(SHOWN) {
        let what = if *stage == "join" {
            "connected but could not join"
        } else {
            "could not connect"
        };
        report
            .errors
            .push(format!("{n} client(s) {what}: {detail}"));
    }
    if grouped.len() > SHOWN {
        report
            .errors
            .push(format!("... and {} other failures", grouped.len() - SHOWN));
    }
    let advice = |reason: &str| -> Option<String> {
        Some(match reason {
            "connection_refused" => format!(
                "nothing listens on {}: start the relay first (e.g. `cargo run --release \
                 --example server`) or pass --addr",
                options.addr
            ),
            "room_not_found" => "the relay has no such room, and joins do not create rooms: \
                 the server creates them (ServerHandle::create_room). Pass --rooms with the \
                 relay's room names (examples/server.rs has lobby,deathmatch)"
                .to_owned(),
            "auth_failed" => {
                "the relay checks credentials: pass a token it accepts with --token".to_owned()
            }
            "server_full" => "the relay's max_clients is below the client count: lower \
                 --clients / --room-size or raise max_clients"
                .to_owned(),
            "connect_rejected" => "the relay's on_connect hook refused this client (the \
                 example server admits only loopback addresses)"
                .to_owned(),
            "join_rejected" => "the relay's on_join hook refused the join".to_owned(),
            "room_full" => "the room's member limit is below --room-size".to_owned(),
            _ => return None,
        })
    };
    let reasons: Vec<String> = report
        .connect_failures
        .keys()
        .chain(report.join_failures.keys())
        .cloned()
        .collect();
    report
        .errors
        .extend(reasons.iter().filter_map(|r| advice(r)));
}
