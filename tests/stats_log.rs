//! `ServerBuilder::stats_interval`: a stats snapshot is emitted periodically as a `tracing`
//! event (target `ghost_sync::stats`), and only when asked for.

use ghost_sync::{Client, Server};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Records the `connections` field of every stats event.
struct StatsEvents(Arc<Mutex<Vec<String>>>);

struct Connections(Option<String>);

impl Visit for Connections {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "connections" {
            self.0 = Some(format!("{value:?}"));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "connections" {
            self.0 = Some(value.to_string());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for StatsEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "ghost_sync::stats" {
            let mut connections = Connections(None);
            event.record(&mut connections);
            self.0
                .lock()
                .unwrap()
                .push(connections.0.unwrap_or_default());
        }
    }
}

#[tokio::test]
async fn stats_are_logged_periodically_when_asked_for() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(StatsEvents(seen.clone()));
    // Global: the reporting task runs on the runtime, not necessarily on this thread.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Without the option, nothing is logged.
    let quiet = Server::builder()
        .bind("127.0.0.1:0")
        .build()
        .run()
        .await
        .unwrap();
    let _client = Client::connect(quiet.local_addr().unwrap()).await.unwrap();
    quiet.shutdown().await;
    assert!(seen.lock().unwrap().is_empty());

    let handle = Server::builder()
        .bind("127.0.0.1:0")
        .stats_interval(Duration::from_millis(20))
        .build()
        .run()
        .await
        .unwrap();
    let _client = Client::connect(handle.local_addr().unwrap()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        // Two snapshots that saw the connected client: it is periodic, not a one-off.
        while seen.lock().unwrap().iter().filter(|c| *c == "1").count() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("two stats events with the client counted");
    handle.shutdown().await;
}
