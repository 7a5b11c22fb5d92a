//! `ConnectionLimitLayer` alone: admissions beyond the limit are refused at once, and a slot
//! frees when its `Admitted` is dropped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ghost_sync_layers::{BoxError, ConnectionLimitExceeded, ConnectionLimitLayer};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// A connection service that counts how often it is called.
fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = Infallible> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |conn: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(conn) }
    })
}

fn exceeded(err: &BoxError) -> Option<&ConnectionLimitExceeded> {
    err.downcast_ref::<ConnectionLimitExceeded>()
}

#[tokio::test]
async fn connections_up_to_the_limit_are_admitted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ConnectionLimitLayer::new(2);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let first = svc.clone().oneshot(1).await.expect("first admitted");
    let second = svc.clone().oneshot(2).await.expect("second admitted");

    assert_eq!(*first.response(), 1);
    assert_eq!(*second.response(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.available(), 0);
}

#[tokio::test]
async fn the_connection_past_the_limit_is_refused_without_calling_inner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(ConnectionLimitLayer::new(2))
        .service(counting(&calls));

    let _a = svc.clone().oneshot(1).await.expect("admitted");
    let _b = svc.clone().oneshot(2).await.expect("admitted");
    let err = svc.oneshot(3).await.expect_err("refused");

    assert_eq!(exceeded(&err), Some(&ConnectionLimitExceeded { max: 2 }));
    assert_eq!(err.to_string(), "connection limit of 2 reached");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_full_server_refuses_at_once_instead_of_waiting() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(ConnectionLimitLayer::new(1))
        .service(counting(&calls));

    let _held = svc.ready().await.expect("ready").call(1).await;
    // No timeout wrapper: if the layer queued, this would hang the test.
    let ready = svc.ready().await.expect("still ready when full");
    assert!(exceeded(&ready.call(2).await.expect_err("refused")).is_some());
}

#[tokio::test]
async fn dropping_an_admitted_connection_frees_its_slot() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ConnectionLimitLayer::new(1);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let admitted = svc.clone().oneshot(1).await.expect("admitted");
    assert_eq!(layer.available(), 0);
    drop(admitted);
    assert_eq!(layer.available(), 1);

    svc.oneshot(2)
        .await
        .expect("admitted again after the first closed");
}

#[tokio::test]
async fn the_permit_split_off_an_admitted_keeps_the_slot_until_dropped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ConnectionLimitLayer::new(1);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let (response, permit) = svc.oneshot(7).await.expect("admitted").into_parts();
    assert_eq!(response, 7);
    assert_eq!(layer.available(), 0);
    drop(permit);
    assert_eq!(layer.available(), 1);
}

#[tokio::test]
async fn clones_of_the_layer_and_service_share_one_limit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ConnectionLimitLayer::new(1);
    let from_layer = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));
    let from_layer_clone = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let _held = from_layer.clone().oneshot(1).await.expect("admitted");

    let via_service_clone = from_layer.clone().oneshot(2).await.expect_err("full");
    let via_layer_clone = from_layer_clone.oneshot(3).await.expect_err("full");
    assert!(exceeded(&via_service_clone).is_some());
    assert!(exceeded(&via_layer_clone).is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_inner_error_frees_the_slot() {
    let layer = ConnectionLimitLayer::new(1);
    let failing = service_fn(|_: ()| async { Err::<(), _>("handshake failed") });
    let svc = ServiceBuilder::new().layer(layer.clone()).service(failing);

    let err = svc.oneshot(()).await.expect_err("inner error");
    assert_eq!(err.to_string(), "handshake failed");
    assert_eq!(layer.available(), 1);
}
