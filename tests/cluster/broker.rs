//! A `redis-server` of the test's own: on a free loopback port, with no persistence, killed
//! when dropped. Never a shared or system instance.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
}

/// Tells the tests apart on a shared server: every test has its own key prefix.
pub fn prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}-{test}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free loopback port, never one already handed to another broker of this test binary:
/// the tests run side by side, and two brokers on one port would share (and stop) one
/// redis-server.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Broker {
    /// Starts a `redis-server` on a free port; panics, saying how to install it, if there
    /// is none.
    pub fn start() -> Self {
        let port = free_port();
        let mut broker = Self { child: None, port };
        broker.spawn();
        broker
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): the cluster tests need Redis 7. \
                     Install it with `apt-get update && apt-get install -y redis-server` \
                     (Debian/Ubuntu), or put a redis-server on PATH."
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye, its data is gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many connections are subscribed to `channel` (`PUBSUB NUMSUB`), asked over a
    /// plain socket in RESP.
    pub fn subscribers(&self, channel: &str) -> i64 {
        use std::io::{BufRead, BufReader, Write};
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        let command = format!(
            "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        socket.write_all(command.as_bytes()).expect("sends");
        // The answer: *2, $<len>, the channel, :<count>.
        let mut lines = BufReader::new(socket).lines();
        let count = lines.nth(3).expect("an answer").expect("reads");
        count.trim_start_matches(':').parse().expect("a count")
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([which, &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
