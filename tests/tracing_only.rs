//! The library logs through `tracing` only: a span per connection, and no printing.

use ghost_sync::{Client, Server};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[test]
fn the_library_never_prints() {
    fn visit(dir: &Path, offenders: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, offenders);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    for mac in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                        if code.contains(mac) {
                            offenders.push(format!("{}:{}: {}", path.display(), n + 1, code));
                        }
                    }
                }
            }
        }
    }
    let mut offenders = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    visit(&root.join("src"), &mut offenders);
    visit(&root.join("layers/src"), &mut offenders);
    assert!(
        offenders.is_empty(),
        "printing in the library:\n{}",
        offenders.join("\n")
    );
}

/// Records the names of the spans created.
struct SpanNames(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for SpanNames {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _ctx: Context<'_, S>) {
        self.0
            .lock()
            .unwrap()
            .push(attrs.metadata().name().to_owned());
    }
}

#[tokio::test]
async fn every_connection_runs_in_its_own_span() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(SpanNames(names.clone()));
    // Global: connection tasks run on runtime threads, not this one.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .build()
        .run()
        .await
        .unwrap();
    let addr = handle.local_addr().unwrap();
    let a = Client::connect(addr).await.unwrap();
    let b = Client::connect(addr).await.unwrap();
    drop((a, b));
    handle.shutdown().await;
    let spans = names.lock().unwrap();
    assert_eq!(
        spans.iter().filter(|n| *n == "connection").count(),
        2,
        "{spans:?}"
    );
}
