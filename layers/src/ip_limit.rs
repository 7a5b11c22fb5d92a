//! Caps how many connections one IP address may hold at once.
//!
//! This layer has *connection scope*, like
//! [`ConnectionLimitLayer`](crate::ConnectionLimitLayer): the wrapped service
//! is called once per accepted connection, and the [`IpAdmitted`] response
//! holds the address's slot for as long as it (or the [`IpPermit`] taken out
//! of it) lives. Together the two stop one host from taking every slot of a
//! full relay.
//!
//! An address already holding its limit is refused at once with
//! [`TooManyConnectionsFromIp`] rather than queued.
//!
//! The count map holds an entry only for addresses with a live permit, and
//! drops it when the last one goes, so its size is bounded by the number of
//! open connections (which [`ConnectionLimitLayer`](crate::ConnectionLimitLayer)
//! bounds in turn), never by how many addresses have ever connected.
//!
//! IPv4 peers reached through a dual-stack socket appear as IPv4-mapped IPv6
//! addresses (`::ffff:a.b.c.d`); they are counted as the IPv4 address, so a
//! host gets one budget whichever socket it came through. Note that a single
//! IPv6 host usually controls a whole prefix of addresses, so against IPv6
//! this limit slows an abuser down rather than stopping one.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::BoxError;

/// A connection request that knows the address of its peer.
pub trait PeerIp {
    /// Returns the IP address the connection came from.
    fn peer_ip(&self) -> IpAddr;
}

impl PeerIp for SocketAddr {
    fn peer_ip(&self) -> IpAddr {
        self.ip()
    }
}

impl PeerIp for IpAddr {
    fn peer_ip(&self) -> IpAddr {
        *self
    }
}

/// Live permits per address; an address with none has no entry.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Locks the count map, recovering it from a poisoned lock.
///
/// Every update under the lock is a single map operation that leaves the
/// counts consistent even if it panics, so the map stays usable.
fn lock(counts: &Counts) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies [`PerIpLimit`] to a service.
///
/// Every service made by this layer, and every clone of the layer, shares one
/// count map, so the limit holds across the whole listener.
#[derive(Debug, Clone)]
pub struct PerIpLimitLayer {
    counts: Counts,
    max_per_ip: usize,
}

impl PerIpLimitLayer {
    /// Creates a layer admitting at most `max_per_ip` connections from each
    /// IP address at once.
    pub fn new(max_per_ip: usize) -> Self {
        Self {
            counts: Counts::default(),
            max_per_ip,
        }
    }

    /// Returns how many connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        count(&self.counts, ip)
    }

    /// Returns how many distinct addresses hold at least one connection.
    pub fn tracked_ips(&self) -> usize {
        lock(&self.counts).len()
    }

    /// Returns the maximum number of connections per address.
    pub fn max_per_ip(&self) -> usize {
        self.max_per_ip
    }
}

impl<S> Layer<S> for PerIpLimitLayer {
    type Service = PerIpLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PerIpLimit {
            inner,
            counts: Arc::clone(&self.counts),
            max_per_ip: self.max_per_ip,
        }
    }
}

/// Refuses a connection when its address already holds `max_per_ip` of them.
///
/// See the [module documentation](self) for the scope this service expects.
/// The slot is taken in `call`, not reserved in `poll_ready`, so a derived
/// `Clone` is sound; clones share the same counts.
#[derive(Debug, Clone)]
pub struct PerIpLimit<S> {
    inner: S,
    counts: Counts,
    max_per_ip: usize,
}

impl<S> PerIpLimit<S> {
    /// Wraps `inner` with its own count map.
    ///
    /// Use [`PerIpLimitLayer`] instead to share one map among several
    /// services.
    pub fn new(inner: S, max_per_ip: usize) -> Self {
        Self {
            inner,
            counts: Counts::default(),
            max_per_ip,
        }
    }

    /// Returns how many connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        count(&self.counts, ip)
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn count(counts: &Counts, ip: IpAddr) -> usize {
    lock(counts).get(&ip.to_canonical()).copied().unwrap_or(0)
}

impl<S, R> Service<R> for PerIpLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: PeerIp,
{
    type Response = IpAdmitted<S::Response>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let ip = req.peer_ip().to_canonical();
        match IpPermit::try_acquire(&self.counts, ip, self.max_per_ip) {
            Some(permit) => ResponseFuture::admitted(self.inner.call(req), permit),
            None => ResponseFuture::rejected(ip, self.max_per_ip),
        }
    }
}

pin_project! {
    /// Future for the [`PerIpLimit`] service.
    pub struct ResponseFuture<F> {
        #[pin]
        state: ResponseState<F>,
    }
}

pin_project! {
    #[project = ResponseStateProj]
    enum ResponseState<F> {
        Admitted {
            #[pin]
            fut: F,
            // An `Option` so the permit can move into the response; it is
            // `None` only after the future has completed.
            permit: Option<IpPermit>,
        },
        Rejected {
            ip: IpAddr,
            max: usize,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn admitted(fut: F, permit: IpPermit) -> Self {
        Self {
            state: ResponseState::Admitted {
                fut,
                permit: Some(permit),
            },
        }
    }

    fn rejected(ip: IpAddr, max: usize) -> Self {
        Self {
            state: ResponseState::Rejected { ip, max },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<IpAdmitted<T>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ResponseStateProj::Admitted { fut, permit } => {
                // On an inner error, or if this future is dropped early, the
                // permit is released with it, so a failed setup frees its slot.
                let response = match fut.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                    Poll::Pending => return Poll::Pending,
                };
                match permit.take() {
                    Some(permit) => Poll::Ready(Ok(IpAdmitted { response, permit })),
                    // Only reachable by polling after completion, which the
                    // `Future` contract leaves unspecified; fail loudly but
                    // without panicking.
                    None => Poll::Ready(Err("`ResponseFuture` polled after completion".into())),
                }
            }
            ResponseStateProj::Rejected { ip, max } => {
                Poll::Ready(Err(Box::new(TooManyConnectionsFromIp {
                    ip: *ip,
                    max: *max,
                })))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F>
where
    F: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

/// A response from an admitted connection, holding its address's slot.
///
/// The slot is freed when this value is dropped, so keep it alive for as long
/// as the connection is open. Use [`IpAdmitted::into_parts`] to hold the slot
/// separately from the response.
pub struct IpAdmitted<T> {
    response: T,
    permit: IpPermit,
}

impl<T> IpAdmitted<T> {
    /// Returns a reference to the inner service's response.
    pub fn response(&self) -> &T {
        &self.response
    }

    /// Returns a mutable reference to the inner service's response.
    pub fn response_mut(&mut self) -> &mut T {
        &mut self.response
    }

    /// Returns the address the slot is counted against.
    pub fn ip(&self) -> IpAddr {
        self.permit.ip
    }

    /// Splits into the response and the guard holding the address's slot.
    pub fn into_parts(self) -> (T, IpPermit) {
        (self.response, self.permit)
    }
}

impl<T: fmt::Debug> fmt::Debug for IpAdmitted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpAdmitted")
            .field("response", &self.response)
            .field("ip", &self.permit.ip)
            .finish_non_exhaustive()
    }
}

/// A guard holding one connection slot of an address; freed on drop.
pub struct IpPermit {
    counts: Counts,
    ip: IpAddr,
}

impl IpPermit {
    /// Takes a slot for `ip` if it holds fewer than `max`.
    fn try_acquire(counts: &Counts, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = lock(counts);
        let held = map.get(&ip).copied().unwrap_or(0);
        if held >= max {
            // Checked before inserting, so a refused address leaves no entry.
            return None;
        }
        map.insert(ip, held + 1);
        drop(map);
        Some(Self {
            counts: Arc::clone(counts),
            ip,
        })
    }

    /// Returns the address the slot is counted against.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut map = lock(&self.counts);
        if let Some(held) = map.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl fmt::Debug for IpPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpPermit")
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// The error returned when an address already holds its limit of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnectionsFromIp {
    /// The refused address, with IPv4-mapped IPv6 shown as IPv4.
    pub ip: IpAddr,
    /// The per-address limit.
    pub max: usize,
}

impl fmt::Display for TooManyConnectionsFromIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many connections from {} (limit {})",
            self.ip, self.max
        )
    }
}

impl std::error::Error for TooManyConnectionsFromIp {}
