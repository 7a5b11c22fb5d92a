//! A minimal relay for benchmarks: the library's defaults, a set of pre-created rooms, and a
//! machine-readable READY line. The benchmark harness (`bench/`) starts it as a separate
//! process, exactly as it starts redis-server and nats-server.
//!
//! ```text
//! cargo run --release --example relay -- [--bind ADDR] [--rooms N] [--room-prefix P]
//!                                         [--max-clients N] [--channel-capacity N]
//! cargo run --release --features redis --example relay -- --redis URL
//!                                         [--key-prefix P] [--relay-name NAME] [...]
//! ```
//!
//! - `--bind` (default `127.0.0.1:0`, a free port): the listen address.
//! - `--rooms` (default 1) rooms named `{room-prefix}{i}` for `i` in `0..N` (prefix default
//!   `room-`), created before the READY line.
//! - `--max-clients`, `--channel-capacity`: the builder options of the same name; left at the
//!   library defaults unless given.
//! - `--redis URL` (needs the `redis` feature): share rooms with every relay using this Redis
//!   and key prefix (`--key-prefix`, default `ghost-sync`), under the name `--relay-name`
//!   (default: generated). `--rooms N` then creates the rooms that are missing and takes
//!   the ones another relay created already, so every relay can be started the same way.
//! - Environment: `RELAY_WORKER_THREADS=N` picks the runtime (0: current-thread; unset:
//!   tokio's multi-threaded default); `RELAY_FLUSH_INTERVAL_MS=W` sets a flush window of `W`
//!   ms (fractions allowed; unset: none).
//!
//! Prints `READY <addr>` on stdout once it listens with every room created. It then runs
//! until its standard input closes (how the harness stops it), Ctrl-C (SIGINT) or SIGTERM,
//! whichever comes first; then it sends every client its shutdown farewell and exits.

use ghost_sync::{Server, ServerBuilder};
use std::io::Read;
use tokio::sync::oneshot;

struct Args {
    bind: String,
    rooms: usize,
    room_prefix: String,
    max_clients: Option<usize>,
    channel_capacity: Option<usize>,
    redis: Option<String>,
    key_prefix: Option<String>,
    relay_name: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        bind: "127.0.0.1:0".to_owned(),
        rooms: 1,
        room_prefix: "room-".to_owned(),
        max_clients: None,
        channel_capacity: None,
        redis: None,
        key_prefix: None,
        relay_name: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bind" => args.bind = value()?,
            "--rooms" => args.rooms = value()?.parse()?,
            "--room-prefix" => args.room_prefix = value()?,
            "--max-clients" => args.max_clients = Some(value()?.parse()?),
            "--channel-capacity" => args.channel_capacity = Some(value()?.parse()?),
            "--redis" => args.redis = Some(value()?),
            "--key-prefix" => args.key_prefix = Some(value()?),
            "--relay-name" => args.relay_name = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "relay [--bind ADDR] [--rooms N] [--room-prefix P] [--max-clients N] \
                     [--channel-capacity N] [--redis URL [--key-prefix P] [--relay-name NAME]]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    // The runtime layout is the embedding application's choice, not the library's;
    // RELAY_WORKER_THREADS picks it here (0: a current-thread runtime; unset: tokio's
    // multi-threaded default, one worker per core).
    let threads = std::env::var("RELAY_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok());
    let runtime = match threads {
        Some(0) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut builder = Server::builder().bind(&args.bind);
    // RELAY_FLUSH_INTERVAL_MS (fractions allowed, e.g. 0.5): a flush window
    // (`ServerBuilder::flush_interval`); unset: none, the library's default.
    if let Some(ms) = std::env::var("RELAY_FLUSH_INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        builder = builder.flush_interval(std::time::Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(n) = args.max_clients {
        builder = builder.max_clients(n);
    }
    if let Some(n) = args.channel_capacity {
        builder = builder.channel_capacity(n);
    }
    let clustered = args.redis.is_some();
    if let Some(url) = &args.redis {
        builder = with_redis(builder, url, &args)?;
    } else if args.key_prefix.is_some() || args.relay_name.is_some() {
        anyhow::bail!("--key-prefix and --relay-name go with --redis");
    }
    let handle = builder.build().run().await?;
    for i in 0..args.rooms {
        let id = format!("{}{i}", args.room_prefix);
        if clustered {
            // Every relay of the cluster runs this: the first creates, the others find it.
            handle.ensure_room(&id)?;
        } else {
            handle.create_room(&id)?;
        }
    }
    let addr = handle
        .local_addr()
        .ok_or_else(|| anyhow::anyhow!("the relay has no local address"))?;
    // Both are watched from before READY, so that whoever acts on READY is heard.
    let stdin_closed = stdin_closed();
    let signalled = shutdown_signal()?;
    println!("READY {addr}");

    tokio::select! {
        _ = stdin_closed => {}
        _ = signalled => {}
    }
    handle.shutdown().await;
    Ok(())
}

#[cfg(feature = "redis")]
fn with_redis(builder: ServerBuilder, url: &str, args: &Args) -> anyhow::Result<ServerBuilder> {
    let mut options = ghost_sync::cluster::RedisOptions::new(url);
    if let Some(prefix) = &args.key_prefix {
        options = options.key_prefix(prefix);
    }
    if let Some(name) = &args.relay_name {
        options = options.relay_name(name);
    }
    Ok(builder.redis(options))
}

#[cfg(not(feature = "redis"))]
fn with_redis(_: ServerBuilder, _: &str, _: &Args) -> anyhow::Result<ServerBuilder> {
    anyhow::bail!("--redis needs the relay built with the redis feature (cargo run --features redis --example relay)")
}

/// Resolves when standard input reaches its end (or fails).
///
/// The read runs on a plain thread of its own, not on `tokio::io::stdin()`: that one reads on
/// the runtime's blocking pool, and dropping the runtime waits for the read in progress, so a
/// relay stopped by a signal would hang until stdin closed. A thread of our own is simply
/// left blocked: returning from `main` ends the process without waiting for it. (Ending with
/// `Runtime::shutdown_background` would also work, but it abandons every blocking task
/// without a word; here there is none, and one added later should be waited for, not cut
/// off.)
fn stdin_closed() -> oneshot::Receiver<()> {
    let (closed, on_closed) = oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut sink = [0u8; 256];
        loop {
            match stdin.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                // A signal that interrupts the read is not the end of the input.
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // The relay may already be stopping on a signal, with the receiver gone.
        let _ = closed.send(());
    });
    on_closed
}

/// Resolves on Ctrl-C (SIGINT) or, on unix, SIGTERM (what service managers and `kill` send).
///
/// On unix the handlers are installed here, before the future is first polled, so that a
/// signal sent right after READY is not met by the default action, which kills the process
/// without a word to its clients.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            // An error here means Ctrl-C cannot be watched: then stdin alone stops the relay.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
