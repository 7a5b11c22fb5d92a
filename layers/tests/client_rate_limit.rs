//! `ClientRateLimitLayer` alone, with paused time: frames over either budget are refused at
//! once without spending tokens, budgets refill with time, and repeated violations turn into
//! the disconnect signal.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ghost_sync_layers::{
    BoxError, ClientRateLimitLayer, PayloadLength, RateLimitKind, RateLimitViolations, RateLimited,
};
use tokio::time::{advance, Instant};
use tower::{service_fn, Layer, Service, ServiceExt};

struct Frame(usize);

impl PayloadLength for Frame {
    fn payload_len(&self) -> usize {
        self.0
    }
}

/// Builds one connection's stack over an inner service counting its calls.
fn stack(
    layer: ClientRateLimitLayer,
    calls: &Arc<AtomicUsize>,
) -> impl Service<Frame, Response = usize, Error = BoxError> + Clone {
    let calls = Arc::clone(calls);
    layer.layer(service_fn(move |frame: Frame| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(frame.0) }
    }))
}

/// Sends one frame through `svc`, sharing its budgets through a clone.
async fn send<S>(svc: &S, len: usize) -> Result<usize, BoxError>
where
    S: Service<Frame, Response = usize, Error = BoxError> + Clone,
{
    svc.clone().oneshot(Frame(len)).await
}

fn limited(err: &BoxError) -> Option<&RateLimited> {
    err.downcast_ref::<RateLimited>()
}

#[tokio::test(start_paused = true)]
async fn the_default_burst_is_one_seconds_worth_of_frames() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(5, 1_000_000), &calls);

    for _ in 0..5 {
        send(&svc, 1).await.expect("within the burst");
    }
    let err = send(&svc, 1).await.expect_err("sixth frame refused");

    assert_eq!(
        limited(&err),
        Some(&RateLimited {
            violations: 1,
            limit: RateLimitKind::Frames
        })
    );
    assert_eq!(
        err.to_string(),
        "rate limit exceeded: too many frames per second"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn the_default_burst_is_one_seconds_worth_of_bytes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(1000, 100), &calls);

    send(&svc, 100).await.expect("exactly the byte burst");
    let err = send(&svc, 1).await.expect_err("one byte over");

    assert_eq!(
        limited(&err),
        Some(&RateLimited {
            violations: 1,
            limit: RateLimitKind::Bytes
        })
    );
    assert_eq!(
        err.to_string(),
        "rate limit exceeded: too many bytes per second"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn budgets_refill_with_time_at_their_rate() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(10, 1_000_000), &calls);
    for _ in 0..10 {
        send(&svc, 1).await.expect("within the burst");
    }
    send(&svc, 1).await.expect_err("empty");

    // 10 frames per second refill one frame every 100ms, and no more.
    advance(Duration::from_millis(99)).await;
    send(&svc, 1).await.expect_err("not yet a whole frame");
    advance(Duration::from_millis(1)).await;
    send(&svc, 1).await.expect("one frame refilled");
    send(&svc, 1).await.expect_err("only one");

    // A long silence refills only up to the burst.
    advance(Duration::from_secs(60)).await;
    for _ in 0..10 {
        send(&svc, 1).await.expect("burst refilled");
    }
    send(&svc, 1).await.expect_err("capped at the burst");
}

#[tokio::test(start_paused = true)]
async fn a_refused_frame_spends_no_byte_tokens() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(100, 100), &calls);

    send(&svc, 60).await.expect("60 of 100");
    send(&svc, 50).await.expect_err("50 more would exceed");
    // Had the refused frame spent its 50 bytes, only 0 would be left.
    send(&svc, 40)
        .await
        .expect("the remaining 40 are still there");
}

#[tokio::test(start_paused = true)]
async fn a_frame_refused_for_bytes_spends_no_frame_token() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(2, 10), &calls);

    send(&svc, 8).await.expect("first frame");
    let err = send(&svc, 5).await.expect_err("over the bytes");
    assert_eq!(limited(&err).map(|e| e.limit), Some(RateLimitKind::Bytes));
    // Had the refused frame spent a frame token, this would be refused.
    send(&svc, 2).await.expect("second frame token still there");
}

#[tokio::test(start_paused = true)]
async fn burst_builders_raise_the_initial_allowance_but_not_the_rate() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ClientRateLimitLayer::new(2, 10)
        .burst_frames(4)
        .burst_bytes(40);
    let svc = stack(layer, &calls);

    for _ in 0..4 {
        send(&svc, 10).await.expect("within the raised burst");
    }
    send(&svc, 0).await.expect_err("frames spent");

    advance(Duration::from_millis(500)).await;
    send(&svc, 5)
        .await
        .expect("one frame and five bytes refilled");
    send(&svc, 0)
        .await
        .expect_err("only one frame in 500ms at 2/s");
}

#[tokio::test(start_paused = true)]
async fn a_frame_larger_than_the_byte_burst_never_passes_and_counts_as_a_violation() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(10, 100).burst_bytes(50), &calls);

    let first = send(&svc, 51).await.expect_err("larger than the burst");
    advance(Duration::from_secs(3600)).await;
    let after_an_hour = send(&svc, 51)
        .await
        .expect_err("still larger than the burst");

    assert_eq!(
        limited(&first),
        Some(&RateLimited {
            violations: 1,
            limit: RateLimitKind::Bytes
        })
    );
    assert_eq!(limited(&after_an_hour).map(|e| e.violations), Some(2));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    send(&svc, 50)
        .await
        .expect("a frame of exactly the burst passes");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_immediate_and_never_waits_for_tokens() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = stack(ClientRateLimitLayer::new(1, 100), &calls);
    send(&svc, 1).await.expect("the only frame");

    let before = Instant::now();
    let ready = svc.ready().await.expect("ready while over budget");
    ready.call(Frame(1)).await.expect_err("refused");
    // Paused time jumps ahead whenever the runtime would wait on a timer, so
    // a layer that slept for tokens would show up here.
    assert_eq!(Instant::now(), before);
}

#[tokio::test(start_paused = true)]
async fn violations_count_up_and_the_threshold_turns_into_the_disconnect_signal() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(
        ClientRateLimitLayer::new(1, 100).disconnect_after(3),
        &calls,
    );
    send(&svc, 1).await.expect("the only frame");

    for expected in 1..=2 {
        let err = send(&svc, 1).await.expect_err("over budget");
        assert_eq!(limited(&err).map(|e| e.violations), Some(expected));
    }
    let err = send(&svc, 1).await.expect_err("third violation");

    assert_eq!(
        err.downcast_ref::<RateLimitViolations>(),
        Some(&RateLimitViolations { violations: 3 })
    );
    assert!(limited(&err).is_none());
    assert_eq!(err.to_string(), "disconnected: rate limit exceeded 3 times");
}

#[tokio::test(start_paused = true)]
async fn once_the_threshold_is_reached_every_frame_is_refused_even_within_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(
        ClientRateLimitLayer::new(1, 100).disconnect_after(1),
        &calls,
    );
    send(&svc, 1).await.expect("the only frame");
    send(&svc, 1).await.expect_err("tripped");

    advance(Duration::from_secs(10)).await;
    let err = send(&svc, 1).await.expect_err("still tripped");

    assert_eq!(
        err.downcast_ref::<RateLimitViolations>(),
        Some(&RateLimitViolations { violations: 1 })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_threshold_violations_never_disconnect() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::new(1, 100), &calls);
    send(&svc, 1).await.expect("the only frame");

    for _ in 0..100 {
        let err = send(&svc, 1).await.expect_err("over budget");
        assert!(limited(&err).is_some());
    }
    advance(Duration::from_secs(1)).await;
    send(&svc, 1).await.expect("passes again once refilled");
}

#[tokio::test(start_paused = true)]
async fn each_service_made_by_the_layer_has_its_own_budget_and_clones_share_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ClientRateLimitLayer::new(1, 100);
    let alice = stack(layer, &calls);
    let bob = stack(layer, &calls);

    alice
        .clone()
        .oneshot(Frame(1))
        .await
        .expect("alice's frame");
    let err = alice
        .clone()
        .oneshot(Frame(1))
        .await
        .expect_err("a clone of alice's service shares her budget");
    assert!(limited(&err).is_some());

    bob.oneshot(Frame(1))
        .await
        .expect("bob's budget is his own");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let svc = ClientRateLimitLayer::new(10, 100)
        .layer(service_fn(|_: Frame| async { Err::<(), _>("room closed") }));

    let err = svc.oneshot(Frame(1)).await.expect_err("inner error");
    assert_eq!(err.to_string(), "room closed");
    assert!(limited(&err).is_none());
}

#[tokio::test(start_paused = true)]
async fn violations_are_readable_from_any_clone() {
    let svc = ClientRateLimitLayer::new(1, 100)
        .layer(service_fn(|_: Frame| async { Ok::<_, Infallible>(()) }));
    let watcher = svc.clone();

    svc.clone().oneshot(Frame(1)).await.expect("the only frame");
    svc.clone()
        .oneshot(Frame(1))
        .await
        .expect_err("over budget");

    assert_eq!(watcher.violations(), 1);
}

#[tokio::test(start_paused = true)]
async fn unlimited_admits_everything_and_counts_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(ClientRateLimitLayer::unlimited(), &calls);
    for _ in 0..10_000 {
        assert_eq!(send(&svc, 1 << 20).await.ok(), Some(1 << 20));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10_000);
}
