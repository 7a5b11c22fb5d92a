//! `AuthLayer` alone: unauthenticated requests are refused before the inner service.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ghost_sync_layers::{AuthLayer, Authenticated, Unauthenticated};
use tower::{service_fn, ServiceBuilder, ServiceExt};

struct Frame {
    authenticated: bool,
}

impl Authenticated for Frame {
    fn is_authenticated(&self) -> bool {
        self.authenticated
    }
}

#[tokio::test]
async fn a_frame_from_an_unauthenticated_connection_is_refused_without_calling_inner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new())
        .service(service_fn(move |_: Frame| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(()) }
        }));

    let err = svc
        .oneshot(Frame {
            authenticated: false,
        })
        .await
        .expect_err("refused");

    assert_eq!(
        err.downcast_ref::<Unauthenticated>(),
        Some(&Unauthenticated)
    );
    assert_eq!(err.to_string(), "not authenticated");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_frame_from_an_authenticated_connection_passes() {
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::default())
        .service(service_fn(|_: Frame| async {
            Ok::<_, Infallible>("relayed")
        }));

    let response = svc
        .oneshot(Frame {
            authenticated: true,
        })
        .await
        .expect("passes");
    assert_eq!(response, "relayed");
}
