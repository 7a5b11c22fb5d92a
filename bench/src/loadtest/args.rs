//! The load tester's options: the command line (parsed by hand, like the comparison binary's),
//! their defaults, and the plan they make (which room gets how many clients).
//!
//! Clients, rooms and room size: `--rooms` names the rooms (a list) or counts them (`N` rooms
//! named `<prefix>0`..). Then the client count is `rooms × room-size`; `--clients` alone
//! spreads that many clients over the rooms as evenly as it goes (sizes differ by one at
//! most); both given must agree. Every room needs two members, or nobody hears anyone.

use crate::payload::HEADER_LEN;
use anyhow::{anyhow, bail, Result};
use std::time::Duration;

/// The usage text (`--help`).
pub const USAGE: &str = "ghost-sync-loadtest: load-test a ghost-sync relay

usage: ghost-sync-loadtest [--addr HOST:PORT] [--rooms N|NAME,NAME..] [--room-size N]
    [--clients N] [--room-prefix P] [--rate HZ] [--payload BYTES] [--duration D]
    [--warmup D] [--drain D] [--connect-timeout D] [--token T] [--json]

  --addr A            the relay (default 127.0.0.1:7777, examples/server.rs's address)
  --rooms R           the rooms to join: names, comma-separated, or a count N for the rooms
                      <prefix>0..<prefix>N-1 (default lobby,deathmatch: examples/server.rs's
                      rooms). The rooms must exist: a relay creates them, joins do not
  --room-prefix P     the prefix of counted room names (default room-)
  --room-size N       clients per room (default 8); clients = rooms x room-size
  --clients N         total clients, spread evenly over the rooms; with --room-size it
                      must equal rooms x room-size
  --rate HZ           broadcasts per second per client, at most 1000 (default 10)
  --payload BYTES     bytes per broadcast, at least 16: sender, sequence number and send
                      time (default 64)
  --duration D        the measuring window (default 10s); D is 500ms, 10s, 2m or seconds
  --warmup D          publishing before the window, not counted (default 1s)
  --drain D           after the window, how long to wait for frames still in flight
                      (default 2s; ends early once every expected delivery came)
  --connect-timeout D connecting and joining, per client (default 10s)
  --token T           the handshake token, for a relay that checks credentials
  --json              print the report as one JSON object instead of text
  -h, --help          this text

Every client publishes at the rate (fixed ticks, missed ones skipped) and receives its
room's broadcasts: the report gives deliveries/s, loss, latency percentiles and
disconnects by reason. Exits 1 if no client could connect and join, 2 on bad arguments.";

/// Which rooms to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rooms {
    /// `N` rooms named `<room_prefix>0` .. `<room_prefix>N-1`.
    Count(usize),
    /// These rooms, by name.
    Names(Vec<String>),
}

/// Everything a run needs; [`Options::default`] is the command line without arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The relay's address.
    pub addr: String,
    /// Total clients; `None`: rooms × room size.
    pub clients: Option<usize>,
    /// The rooms to join.
    pub rooms: Rooms,
    /// The prefix of the names of [`Rooms::Count`].
    pub room_prefix: String,
    /// Clients per room; `None`: 8, or what `clients` makes.
    pub room_size: Option<usize>,
    /// Broadcasts per second per client.
    pub rate: f64,
    /// Bytes per broadcast, at least [`HEADER_LEN`].
    pub payload: usize,
    /// The measuring window.
    pub duration: Duration,
    /// Publishing before the window, not counted (connections and caches settle).
    pub warmup: Duration,
    /// The longest wait for frames in flight after the window.
    pub drain: Duration,
    /// The deadline for one client to connect and join.
    pub connect_timeout: Duration,
    /// The handshake token, if the relay checks credentials.
    pub token: Option<String>,
    /// The report as JSON (the binary's choice; [`run`](super::run) ignores it).
    pub json: bool,
    /// Rewrite a progress line on stderr about once a second.
    pub progress: bool,
}

/// The default room size when neither `--room-size` nor `--clients` says.
pub const DEFAULT_ROOM_SIZE: usize = 8;

impl Default for Options {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:7777".to_owned(),
            clients: None,
            rooms: Rooms::Names(vec!["lobby".to_owned(), "deathmatch".to_owned()]),
            room_prefix: "room-".to_owned(),
            room_size: None,
            rate: 10.0,
            payload: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            token: None,
            json: false,
            progress: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run with these options (already checked with [`Options::plan`]).
    Run(Box<Options>),
    /// Print [`USAGE`].
    Help,
}

/// A room of the plan: its name and how many clients join it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPlan {
    /// The room's name on the relay.
    pub name: String,
    /// Clients joining it.
    pub members: usize,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => o.addr = value()?,
            "--clients" => o.clients = Some(count(flag, &value()?)?),
            "--rooms" => o.rooms = rooms(&value()?)?,
            "--room-prefix" => o.room_prefix = value()?,
            "--room-size" => o.room_size = Some(count(flag, &value()?)?),
            "--rate" => {
                let v = value()?;
                o.rate = v
                    .parse()
                    .map_err(|_| anyhow!("--rate: {v:?} is not a number"))?;
            }
            "--payload" => o.payload = count(flag, &value()?)?,
            "--duration" => o.duration = duration(flag, &value()?)?,
            "--warmup" => o.warmup = duration(flag, &value()?)?,
            "--drain" => o.drain = duration(flag, &value()?)?,
            "--connect-timeout" => o.connect_timeout = duration(flag, &value()?)?,
            "--token" => o.token = Some(value()?),
            "--json" => o.json = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => bail!("unknown argument {other} (--help lists the options)"),
        }
    }
    o.plan()?;
    Ok(Command::Run(Box::new(o)))
}

fn count(flag: &str, v: &str) -> Result<usize> {
    v.parse()
        .map_err(|_| anyhow!("{flag}: {v:?} is not a whole number"))
}

fn rooms(v: &str) -> Result<Rooms> {
    if let Ok(n) = v.parse::<usize>() {
        return Ok(Rooms::Count(n));
    }
    let names: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
    if names.iter().any(String::is_empty) {
        bail!("--rooms: an empty room name in {v:?}");
    }
    Ok(Rooms::Names(names))
}

/// `500ms`, `10s`, `2m`, or plain seconds (`1.5`).
fn duration(flag: &str, v: &str) -> Result<Duration> {
    let (number, unit) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    let secs = number
        .parse::<f64>()
        .ok()
        .map(|n| n * unit)
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .ok_or_else(|| anyhow!("{flag}: {v:?} is not a duration (500ms, 10s, 2m)"))?;
    Ok(Duration::from_secs_f64(secs))
}

impl Options {
    /// The rooms and their sizes these options make, or why they contradict each other.
    pub fn plan(&self) -> Result<Vec<RoomPlan>> {
        let names: Vec<String> = match &self.rooms {
            Rooms::Count(0) => bail!("--rooms: at least one room"),
            Rooms::Count(n) => (0..*n)
                .map(|i| format!("{}{i}", self.room_prefix))
                .collect(),
            Rooms::Names(names) if names.is_empty() => bail!("--rooms: at least one room"),
            Rooms::Names(names) => names.clone(),
        };
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                bail!("--rooms: {name:?} is listed twice");
            }
        }
        let rooms = names.len();
        let sizes: Vec<usize> = match (self.clients, self.room_size) {
            (Some(clients), Some(size)) if clients != rooms * size => bail!(
                "--clients {clients} contradicts {rooms} rooms x --room-size {size} = {}",
                rooms * size
            ),
            (_, Some(size)) => vec![size; rooms],
            (Some(clients), None) => (0..rooms)
                .map(|i| clients / rooms + usize::from(i < clients % rooms))
                .collect(),
            (None, None) => vec![DEFAULT_ROOM_SIZE; rooms],
        };
        if sizes.iter().any(|&s| s < 2) {
            bail!(
                "every room needs at least 2 clients (a room of one hears nobody): {} clients \
                 over {rooms} rooms",
                sizes.iter().sum::<usize>()
            );
        }
        // The publishers tick on tokio's timer, which counts in milliseconds.
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0) {
            bail!("--rate: {} is not a rate in (0, 1000] Hz", self.rate);
        }
        if self.payload < HEADER_LEN {
            bail!(
                "--payload: {} bytes cannot hold the {HEADER_LEN}-byte header (sender, sequence \
                 number, send time)",
                self.payload
            );
        }
        if self.payload > 16 << 20 {
            bail!("--payload: {} bytes is more than 16 MiB", self.payload);
        }
        if self.duration.is_zero() {
            bail!("--duration: the window cannot be empty");
        }
        if self.connect_timeout.is_zero() {
            bail!("--connect-timeout: cannot be zero");
        }
        Ok(names
            .into_iter()
            .zip(sizes)
            .map(|(name, members)| RoomPlan { name, members })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &str) -> Result<Options> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        match parse(&args)? {
            Command::Run(o) => Ok(*o),
            Command::Help => bail!("help"),
        }
    }

    fn sizes(o: &Options) -> Vec<usize> {
        o.plan().unwrap().iter().map(|r| r.members).collect()
    }

    #[test]
    fn defaults_are_the_example_servers_rooms() {
        let o = run("").unwrap();
        assert_eq!(o, Options::default());
        let plan = o.plan().unwrap();
        assert_eq!(plan[0].name, "lobby");
        assert_eq!(plan[1].name, "deathmatch");
        assert_eq!(sizes(&o), [8, 8]);
    }

    #[test]
    fn clients_rooms_and_room_size() {
        let o = run("--rooms 3 --room-size 4 --room-prefix r").unwrap();
        let plan = o.plan().unwrap();
        assert_eq!(plan[2].name, "r2");
        assert_eq!(sizes(&o), [4, 4, 4]);
        assert_eq!(sizes(&run("--rooms 3 --clients 8").unwrap()), [3, 3, 2]);
        assert_eq!(
            sizes(&run("--rooms a,b --clients 6 --room-size 3").unwrap()),
            [3, 3]
        );
        let err = run("--rooms 2 --clients 7 --room-size 3").unwrap_err();
        assert!(err.to_string().contains("contradicts"), "{err}");
        assert!(run("--rooms 4 --clients 7").is_err(), "a room of one");
        assert!(run("--room-size 1").is_err());
    }

    #[test]
    fn values_and_durations() {
        let o = run(
            "--addr 10.0.0.1:9 --rate 2.5 --payload 16 --duration 500ms --warmup 0 \
                     --drain 1.5 --token t --json",
        )
        .unwrap();
        assert_eq!(o.addr, "10.0.0.1:9");
        assert_eq!(o.rate, 2.5);
        assert_eq!(o.payload, 16);
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(o.warmup, Duration::ZERO);
        assert_eq!(o.drain, Duration::from_millis(1500));
        assert_eq!(o.token.as_deref(), Some("t"));
        assert!(o.json);
        assert_eq!(
            run("--duration 2m").unwrap().duration,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [
            "--payload 15",
            "--payload x",
            "--rate 0",
            "--rate 1001",
            "--rate -1",
            "--rate fast",
            "--duration 0",
            "--duration ten",
            "--duration -1s",
            "--rooms 0",
            "--rooms a,,b",
            "--rooms a,a",
            "--clients",
            "--bogus",
        ] {
            assert!(run(bad).is_err(), "{bad} was accepted");
        }
        let args = vec!["--help".to_owned()];
        assert_eq!(parse(&args).unwrap(), Command::Help);
    }
}
