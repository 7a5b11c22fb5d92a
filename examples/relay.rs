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
//! Prints `READY <addr>` on stdout once it listens with every room created, then runs until
//! its standard input closes (or Ctrl-C), and shuts down gracefully.

use ghost_sync::Server;
use tokio::io::AsyncReadExt;

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
    println!("READY {addr}");

    // Run until stdin closes (the harness drops its end) or Ctrl-C.
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 256];
    tokio::select! {
        _ = async { while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.shutdown().await;
    Ok(())
}
