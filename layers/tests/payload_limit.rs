//! `PayloadLimitLayer` alone: payloads over the limit are refused before the inner service.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ghost_sync_layers::{PayloadLength, PayloadLimitLayer, PayloadTooLarge};
use tower::{service_fn, ServiceBuilder, ServiceExt};

struct Frame(Vec<u8>);

impl PayloadLength for Frame {
    fn payload_len(&self) -> usize {
        self.0.len()
    }
}

fn frame(len: usize) -> Frame {
    Frame(vec![0; len])
}

#[tokio::test]
async fn a_payload_at_the_limit_passes() {
    let svc = ServiceBuilder::new()
        .layer(PayloadLimitLayer::new(8))
        .service(service_fn(|f: Frame| async move {
            Ok::<_, Infallible>(f.0.len())
        }));

    assert_eq!(svc.oneshot(frame(8)).await.expect("passes"), 8);
}

#[tokio::test]
async fn a_payload_one_byte_over_the_limit_is_refused_without_calling_inner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(PayloadLimitLayer::new(8))
        .service(service_fn(move |_: Frame| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(()) }
        }));

    let err = svc.oneshot(frame(9)).await.expect_err("refused");

    assert_eq!(
        err.downcast_ref::<PayloadTooLarge>(),
        Some(&PayloadTooLarge { len: 9, max: 8 })
    );
    assert_eq!(
        err.to_string(),
        "payload of 9 bytes exceeds the limit of 8 bytes"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn inner_errors_pass_through_boxed() {
    let svc = ServiceBuilder::new()
        .layer(PayloadLimitLayer::new(8))
        .service(service_fn(|_: Frame| async { Err::<(), _>("room closed") }));

    let err = svc.oneshot(frame(1)).await.expect_err("inner error");
    assert_eq!(err.to_string(), "room closed");
    assert!(err.downcast_ref::<PayloadTooLarge>().is_none());
}
