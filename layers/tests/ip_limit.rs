//! `PerIpLimitLayer` alone: an address past its limit is refused at once, other addresses
//! are unaffected, and a slot frees (and its map entry goes) when its permit is dropped.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ghost_sync_layers::{BoxError, PeerIp, PerIpLimitLayer, TooManyConnectionsFromIp};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(5, 6, 7, 8));

/// A connection service that counts how often it is called.
fn counting<R: PeerIp>(
    calls: &Arc<AtomicUsize>,
) -> impl Service<R, Response = IpAddr, Error = Infallible> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |conn: R| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(conn.peer_ip()) }
    })
}

fn too_many(err: &BoxError) -> Option<&TooManyConnectionsFromIp> {
    err.downcast_ref::<TooManyConnectionsFromIp>()
}

#[tokio::test]
async fn the_connection_past_an_addresss_limit_is_refused_without_calling_inner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(2);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let first = svc.clone().oneshot(A).await.expect("first admitted");
    let _second = svc.clone().oneshot(A).await.expect("second admitted");
    let err = svc.oneshot(A).await.expect_err("third refused");

    assert_eq!(*first.response(), A);
    assert_eq!(first.ip(), A);
    assert_eq!(
        too_many(&err),
        Some(&TooManyConnectionsFromIp { ip: A, max: 2 })
    );
    assert_eq!(
        err.to_string(),
        "too many connections from 1.2.3.4 (limit 2)"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(layer.count(A), 2);
}

#[tokio::test]
async fn other_addresses_keep_their_own_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(1);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let _a = svc.clone().oneshot(A).await.expect("A admitted");
    svc.clone().oneshot(A).await.expect_err("A full");
    let _b = svc.oneshot(B).await.expect("B unaffected by A");

    assert_eq!((layer.count(A), layer.count(B)), (1, 1));
}

#[tokio::test]
async fn connections_from_one_ip_on_different_ports_share_its_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(PerIpLimitLayer::new(1))
        .service(counting(&calls));

    let _first = svc
        .clone()
        .oneshot(SocketAddr::new(A, 40_000))
        .await
        .expect("admitted");
    let err = svc
        .oneshot(SocketAddr::new(A, 40_001))
        .await
        .expect_err("same IP, other port");
    assert!(too_many(&err).is_some());
}

#[tokio::test]
async fn an_ipv4_mapped_ipv6_peer_counts_as_its_ipv4_address() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(1);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));
    let mapped = IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
    assert_ne!(mapped, A);

    let _v4 = svc.clone().oneshot(A).await.expect("admitted over IPv4");
    let err = svc.oneshot(mapped).await.expect_err("same host over IPv6");

    assert_eq!(
        too_many(&err),
        Some(&TooManyConnectionsFromIp { ip: A, max: 1 })
    );
    assert_eq!(layer.count(mapped), 1);
}

#[tokio::test]
async fn dropping_an_admitted_connection_frees_its_slot_and_entry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(2);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let first = svc.clone().oneshot(A).await.expect("admitted");
    let second = svc.clone().oneshot(A).await.expect("admitted");
    drop(first);
    assert_eq!(layer.count(A), 1);
    assert_eq!(layer.tracked_ips(), 1);

    drop(second);
    assert_eq!(layer.count(A), 0);
    assert_eq!(layer.tracked_ips(), 0, "no entry left for an idle address");

    svc.oneshot(A).await.expect("admitted again");
}

#[tokio::test]
async fn the_permit_split_off_keeps_the_slot_until_dropped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(1);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let (response, permit) = svc.oneshot(A).await.expect("admitted").into_parts();
    assert_eq!(response, A);
    assert_eq!(permit.ip(), A);
    assert_eq!(layer.count(A), 1);
    drop(permit);
    assert_eq!(layer.count(A), 0);
}

#[tokio::test]
async fn clones_of_the_layer_and_service_share_one_map() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(1);
    let from_layer = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));
    let from_layer_clone = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    let _held = from_layer.clone().oneshot(A).await.expect("admitted");

    let via_service_clone = from_layer.clone().oneshot(A).await.expect_err("full");
    let via_layer_clone = from_layer_clone.oneshot(A).await.expect_err("full");
    assert!(too_many(&via_service_clone).is_some());
    assert!(too_many(&via_layer_clone).is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_inner_error_frees_the_slot() {
    let layer = PerIpLimitLayer::new(1);
    let failing = service_fn(|_: IpAddr| async { Err::<(), _>("handshake failed") });
    let svc = ServiceBuilder::new().layer(layer.clone()).service(failing);

    let err = svc.oneshot(A).await.expect_err("inner error");
    assert_eq!(err.to_string(), "handshake failed");
    assert_eq!(layer.count(A), 0);
    assert_eq!(layer.tracked_ips(), 0);
}

#[tokio::test]
async fn dropping_the_response_future_before_it_completes_frees_the_slot() {
    let layer = PerIpLimitLayer::new(1);
    let never = service_fn(|_: IpAddr| std::future::pending::<Result<(), Infallible>>());
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service(never);

    let pending = svc.ready().await.expect("ready").call(A);
    assert_eq!(layer.count(A), 1);
    drop(pending);
    assert_eq!(layer.count(A), 0);
}

#[tokio::test]
async fn a_refused_address_leaves_no_entry_behind() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = PerIpLimitLayer::new(0);
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(counting(&calls));

    for last in 0..=255 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last));
        svc.clone().oneshot(ip).await.expect_err("limit of zero");
    }
    assert_eq!(layer.tracked_ips(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
