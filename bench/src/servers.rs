//! Starting, probing and stopping the servers under test, each as a child process on its own
//! loopback port: the ghost-sync relay example (`examples/relay.rs`), `redis-server` and
//! `nats-server`.

use crate::proto::Proto;
use anyhow::{anyhow, bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};

/// How to start the servers.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// The relay example binary.
    pub relay_bin: PathBuf,
    /// Rooms the relay creates at start (`room-0` ...); the peers need none.
    pub rooms: usize,
    /// The relay's `max_clients` (the only option the harness changes from the defaults,
    /// so that the scale test fits).
    pub max_clients: usize,
    /// `RELAY_WORKER_THREADS` for the relay (its runtime's worker threads); `None` passes on
    /// whatever the harness's own environment says (unset: tokio's default, one per core).
    pub worker_threads: Option<usize>,
    /// Where the servers' own logs go.
    pub log_dir: PathBuf,
}

/// A running server.
#[derive(Debug)]
pub struct ServerProc {
    /// Which server.
    pub proto: Proto,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id (for `/proc` readings).
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Builds the relay example in release mode (a no-op when up to date) and returns its path.
pub fn build_relay() -> Result<PathBuf> {
    build_relay_with(&[])
}

/// [`build_relay`] with these features of the `ghost-sync` crate (e.g. `redis`, for a
/// cluster). Every feature set is linked to the same `examples/relay` path: copy the binary
/// away before building another set.
pub fn build_relay_with(features: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "ghost-sync",
            "--example",
            "relay",
        ])
        .args(if features.is_empty() {
            Vec::new()
        } else {
            vec!["--features".to_owned(), features.join(",")]
        })
        .args(["--message-format", "json", "--manifest-path"])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo to build the relay example")?;
    if !out.status.success() {
        bail!("building the relay example failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == "relay" {
            if let Some(exe) = v["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err(anyhow!("cargo did not report the relay executable"))
}

/// The version line of each peer binary, or why it is missing.
pub fn peer_version(proto: Proto) -> Result<String> {
    let (bin, arg) = match proto {
        Proto::Ghost => return Ok(format!("ghost-sync {}", env!("CARGO_PKG_VERSION"))),
        Proto::Redis => ("redis-server", "--version"),
        Proto::Nats => ("nats-server", "--version"),
    };
    crate::sys::command_line_output(bin, &[arg]).ok_or_else(|| {
        anyhow!("{bin} not found: install the peers with scripts/install-bench-peers.sh")
    })
}

/// A port free right now on 127.0.0.1.
async fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

/// Starts `proto`'s server and waits until it answers.
pub async fn start(proto: Proto, opts: &ServerOpts) -> Result<ServerProc> {
    std::fs::create_dir_all(&opts.log_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.log_dir.join(format!("{}.log", proto.name())))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    match proto {
        Proto::Ghost => start_relay_logged(opts, &[], log).await,
        Proto::Redis | Proto::Nats => {
            let port = free_port().await?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut cmd = if proto == Proto::Redis {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                    .args([
                        "--daemonize",
                        "no",
                        "--loglevel",
                        "warning",
                        "--logfile",
                        "",
                    ])
                    .args(["--maxclients", "19500"]);
                c
            } else {
                let mut c = Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
                c
            };
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {proto}: {}", install_hint()))?;
            let pid = child
                .id()
                .ok_or_else(|| anyhow!("{proto} exited at once"))?;
            let mut server = ServerProc {
                proto,
                addr,
                pid,
                child,
                stdin: None,
            };
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    bail!("{proto} exited at start ({status}); see its log");
                }
                if probe(proto, addr).await.is_ok() {
                    return Ok(server);
                }
                if Instant::now() > deadline {
                    bail!("{proto} did not answer on {addr}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Starts a relay with `extra` arguments after the usual ones (a cluster's `--redis ...`),
/// its log in `log_name` under the log directory, and waits for its READY line.
pub async fn start_relay(
    opts: &ServerOpts,
    extra: &[String],
    log_name: &str,
) -> Result<ServerProc> {
    std::fs::create_dir_all(&opts.log_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.log_dir.join(log_name))?;
    start_relay_logged(opts, extra, log).await
}

async fn start_relay_logged(
    opts: &ServerOpts,
    extra: &[String],
    log: std::fs::File,
) -> Result<ServerProc> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut cmd = Command::new(&opts.relay_bin);
    cmd.args(["--bind", "127.0.0.1:0", "--rooms"])
        .arg(opts.rooms.to_string())
        .arg("--max-clients")
        .arg(opts.max_clients.to_string())
        .args(extra);
    if let Some(n) = opts.worker_threads {
        cmd.env("RELAY_WORKER_THREADS", n.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", opts.relay_bin.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the relay exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no relay stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
        .await
        .map_err(|_| anyhow!("the relay printed no READY line in time"))??
        .ok_or_else(|| anyhow!("the relay exited before READY (see its log)"))?;
    let addr = line
        .strip_prefix("READY ")
        .ok_or_else(|| anyhow!("unexpected relay output {line:?}"))?
        .trim()
        .parse()?;
    // Keep draining its stdout so that a later print can never block it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let stdin = child.stdin.take();
    Ok(ServerProc {
        proto: Proto::Ghost,
        addr,
        pid,
        child,
        stdin,
    })
}

fn install_hint() -> &'static str {
    "is it installed? (scripts/install-bench-peers.sh)"
}

/// One round trip that shows the server is ready.
async fn probe(proto: Proto, addr: SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    if proto == Proto::Redis {
        s.write_all(b"PING\r\n").await?;
    }
    let want: &[u8] = if proto == Proto::Redis {
        b"+PONG\r\n"
    } else {
        b"\r\n"
    };
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                bail!("closed");
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(want.len()).any(|w| w == want) {
                return Ok(());
            }
        }
    })
    .await
    .map_err(|_| anyhow!("no answer"))?
}

impl ServerProc {
    /// Stops the server: the relay by closing its stdin (a graceful shutdown), the peers with
    /// SIGTERM; SIGKILL after 5 s.
    pub async fn stop(mut self) -> Result<()> {
        if self.proto == Proto::Ghost {
            drop(self.stdin.take());
        } else {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
