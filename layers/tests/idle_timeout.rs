//! `IdleTimeoutLayer` and `IdleDeadline` alone, with paused time: the deadline moves with
//! every touch and fires after a full timeout of silence.

use std::convert::Infallible;
use std::time::Duration;

use ghost_sync_layers::{ActivityClock, HasActivityClock, IdleTimeoutElapsed, IdleTimeoutLayer};
use tokio::time::{advance, timeout, Instant};
use tower::{service_fn, ServiceBuilder, ServiceExt};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Lets the deadline's timer observe the advanced time.
async fn settle() {
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn the_deadline_fires_after_the_timeout_of_silence() {
    let clock = ActivityClock::new();
    let start = Instant::now();

    // The outer timeout turns a deadline that never fires into a failure.
    let elapsed = timeout(TIMEOUT * 2, clock.deadline(TIMEOUT))
        .await
        .expect("the deadline fired");

    assert_eq!(elapsed, IdleTimeoutElapsed { timeout: TIMEOUT });
    assert_eq!(Instant::now() - start, TIMEOUT);
    assert_eq!(elapsed.to_string(), "no frame received for 10s");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_does_not_fire_while_touched_more_often_than_the_timeout() {
    let clock = ActivityClock::new();
    let deadline = tokio::spawn(clock.deadline(TIMEOUT));

    // Ten steps of 7s span 70s, far past the timeout, but no gap reaches it.
    for _ in 0..10 {
        advance(Duration::from_secs(7)).await;
        settle().await;
        assert!(!deadline.is_finished(), "fired while the clock was active");
        clock.touch();
    }

    let last_touch = Instant::now();
    let elapsed = deadline.await.expect("deadline task");
    assert_eq!(elapsed.timeout, TIMEOUT);
    assert_eq!(Instant::now() - last_touch, TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_the_last_touch_not_from_its_creation() {
    let clock = ActivityClock::new();
    advance(Duration::from_secs(4)).await;
    clock.touch();
    let touched = Instant::now();

    clock.deadline(TIMEOUT).await;
    assert_eq!(Instant::now() - touched, TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stays_complete_when_polled_again_without_activity() {
    let clock = ActivityClock::new();
    let mut deadline = Box::pin(clock.deadline(TIMEOUT));
    deadline.as_mut().await;

    let again = timeout(Duration::from_millis(1), deadline.as_mut()).await;
    assert_eq!(again, Ok(IdleTimeoutElapsed { timeout: TIMEOUT }));
}

#[tokio::test(start_paused = true)]
async fn clones_of_a_clock_share_its_record() {
    let clock = ActivityClock::new();
    let clone = clock.clone();
    advance(Duration::from_secs(3)).await;

    clone.touch();

    assert_eq!(clock.last_activity(), Instant::now());
}

struct Frame {
    clock: ActivityClock,
}

impl HasActivityClock for Frame {
    fn activity_clock(&self) -> &ActivityClock {
        &self.clock
    }
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_service_touches_the_clock_and_forwards() {
    let clock = ActivityClock::new();
    let created = clock.last_activity();
    let svc = ServiceBuilder::new()
        .layer(IdleTimeoutLayer::new())
        .service(service_fn(|_: Frame| async {
            Ok::<_, Infallible>("relayed")
        }));

    advance(Duration::from_secs(5)).await;
    let response = svc
        .oneshot(Frame {
            clock: clock.clone(),
        })
        .await;

    assert_eq!(response, Ok("relayed"));
    assert_eq!(clock.last_activity(), created + Duration::from_secs(5));
}
