//! A minimal relay for benchmarks: the library's defaults, a set of pre-created rooms, and a
//! machine-readable READY line. The benchmark harness (`bench/`) starts it as a separate
//! process, exactly as it starts redis-server and nats-server.
//!
//! ```text
//! cargo run --release --example relay -- [--bind ADDR] [--rooms N] [--room-prefix P]
//!                                         [--max-clients N] [--channel-capacity N]
//! ```
//!
//! - `--bind` (default `127.0.0.1:0`, a free port): the listen address.
//! - `--rooms` (default 1) rooms named `{room-prefix}{i}` for `i` in `0..N` (prefix default
//!   `room-`), created before the READY line.
//! - `--max-clients`, `--channel-capacity`: the builder options of the same name; left at the
//!   library defaults unless given.
//!
//! Prints `READY <addr>` on stdout once it listens with every room created. It then runs
//! until its standard input closes (how the harness stops it), Ctrl-C (SIGINT) or SIGTERM,
//! whichever comes first; then it sends every client its shutdown farewell and exits.

use ghost_sync::Server;
use std::io::Read;
use tokio::sync::oneshot;

struct Args {
    bind: String,
    rooms: usize,
    room_prefix: String,
    max_clients: Option<usize>,
    channel_capacity: Option<usize>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        bind: "127.0.0.1:0".to_owned(),
        rooms: 1,
        room_prefix: "room-".to_owned(),
        max_clients: None,
        channel_capacity: None,
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
            "-h" | "--help" => {
                println!(
                    "relay [--bind ADDR] [--rooms N] [--room-prefix P] [--max-clients N] \
                     [--channel-capacity N]"
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
    if let Some(n) = args.max_clients {
        builder = builder.max_clients(n);
    }
    if let Some(n) = args.channel_capacity {
        builder = builder.channel_capacity(n);
    }
    let handle = builder.build().run().await?;
    for i in 0..args.rooms {
        handle.create_room(&format!("{}{i}", args.room_prefix))?;
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
