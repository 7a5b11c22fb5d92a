//! The README's first command, `cargo run --example demo`, runs to the end: its script of
//! joins, member lists, broadcasts, a leave and a shutdown matches what the relay does.

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

#[tokio::test]
async fn the_demo_runs_to_the_end() {
    tokio::time::timeout(std::time::Duration::from_secs(20), demo::run())
        .await
        .expect("the demo finished in time")
        .expect("the demo succeeded");
}
