//! `ghost-sync-loadtest`: load-tests a ghost-sync relay (see `--help`, and the library side in
//! `ghost_sync_bench::loadtest`).
//!
//! ```text
//! cargo run --release --example server        # one terminal: a relay on 127.0.0.1:7777
//! cargo run --release -p ghost-sync-bench --bin ghost-sync-loadtest -- --addr 127.0.0.1:7777
//! ```
//!
//! The report goes to stdout (text, or one JSON object with `--json`); the live progress line
//! to stderr, only when stderr is a terminal. Exits 1 if no client connected and joined, 2 on
//! bad arguments.

use ghost_sync_bench::loadtest::{self, args, Command};
use std::io::IsTerminal;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut options = match args::parse(&argv) {
        Ok(Command::Run(options)) => *options,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ghost-sync-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    options.progress = std::io::stderr().is_terminal();
    let report = match loadtest::run(&options).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("ghost-sync-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    if options.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}
