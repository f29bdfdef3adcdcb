//! The accept loop: one HTTP/1.1 connection task per client (over TLS when
//! configured), at most `max_connections` at once, a deadline and a size
//! limit for each request head, and a graceful stop.
//!
//! axum's own `serve` gives hyper no timer, so hyper's deadline for request
//! heads never ran: a client that sent half a request head, or connected and
//! sent nothing, held its connection and a file descriptor forever. Here
//! hyper gets a timer and [`Config::idle_timeout`](crate::config::Config):
//! hyper counts it from when it starts waiting for a head, so it also closes
//! a kept-alive connection idle that long.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::budget::Budget;
use crate::log_throttle::Throttle;

/// The most a connection buffers while reading a request head (hyper's
/// default is about 400 KiB): a head still incomplete past it is answered
/// 431. Providers' heads are well under 8 KiB; with every connection
/// allowed 400 KiB, a client opening many connections and sending large
/// heads slowly (each has `idle_timeout` to finish) could hold gigabytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a connection may take, and how many are served at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a request head, idle keep-alive included.
    pub idle_timeout: Duration,
    /// One unit held by each open connection, at most `max_connections`:
    /// past it, new connections wait in the listen queue until one closes.
    pub connections: Budget,
}

/// Serves `router` on `listener` until `stop` completes; then stops
/// accepting, closes idle connections, and returns once the requests in
/// flight are answered.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = take_slot(&limits.connections) => slot,
            () = &mut stop => break,
        };
        // axum's `Listener` retries a failed accept itself (a client that
        // gave up is skipped; anything else, out of file descriptors say, is
        // logged and retried after a second).
        let (tcp, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut stop => break,
        };
        let connection = Connection {
            tcp,
            peer,
            tls: tls.clone(),
            slot,
        };
        spawn_connection(&builder, &graceful, connection, router.clone());
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Room for one more connection, waiting for one to close when all
/// `max_connections` are open (and saying so in the log, at most once per
/// interval).
async fn take_slot(connections: &Budget) -> OwnedSemaphorePermit {
    if let Some(slot) = connections.try_take_one() {
        return slot;
    }
    if let Some(skipped) = AT_MAX_CONNECTIONS.check() {
        tracing::warn!(
            max_connections = connections.max(),
            skipped,
            "every connection slot is taken: new connections wait until one closes"
        );
    }
    connections.take_one().await
}

/// All connections open, for as long as a flood lasts: one log line per
/// interval.
static AT_MAX_CONNECTIONS: Throttle = Throttle::new(crate::log_throttle::EVERY);

/// Longest a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection, the TLS to put on it, if any, and its slot of
/// `max_connections`, given back when it closes.
struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    slot: OwnedSemaphorePermit,
}

/// Serves one client's connection on a task of its own, its requests
/// carrying its address as axum's `ConnectInfo` (the request log records it).
fn spawn_connection(
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    connection: Connection,
    router: Router,
) {
    let Connection {
        tcp,
        peer,
        tls,
        slot,
    } = connection;
    // Answers are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let Some(tls) = tls else {
        let served = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = served.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        return;
    };
    let (builder, watcher) = (builder.clone(), graceful.watcher());
    tokio::spawn(async move {
        let _slot = slot;
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        };
        let served = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
        if let Err(e) = served.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    });
}
