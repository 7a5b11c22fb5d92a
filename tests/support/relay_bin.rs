//! The relay example's binary, built with cargo for the tests that run it as a real process
//! (a separate `cargo build` is free of the lock `cargo test` takes: that lock is released
//! before the tests run). Included by path by the tests that need it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// `examples/relay.rs` built with `features`, once per feature set for the test binary.
pub fn relay_bin(features: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let key = features.join(",");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "--example", "relay"])
        .args(["--message-format", "json"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if !features.is_empty() {
        build.args(["--features", &key]);
    }
    // Build in the profile these tests were built in, whose dependencies are up to date.
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let out = build.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the relay example failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "relay")
        .and_then(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the relay executable");
    built
        .get_or_insert_with(HashMap::new)
        .insert(key, path.clone());
    path
}
