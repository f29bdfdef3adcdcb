//! The HTTP server: shared state, the router, and [`run`], which serves a
//! bound listener until a shutdown future completes, then finishes in-flight
//! requests and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{Config, Source};
use crate::dispatch::{Destination, Dispatcher};
use crate::signature::Secret;
use crate::store::Store;
use budget::Budget;

/// Connections the kernel holds for us before we accept them. Rust's default
/// is 128: more simultaneous connects than that (a provider draining its
/// retry queue after an outage, a proxy's pool opening) overflowed it, and
/// each dropped SYN cost its client a one-second retransmit (512 connects at
/// once: 144 dropped). The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// How long shutdown waits for in-flight requests before closing anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

mod api;
mod budget;
pub mod console;
pub mod metrics;
pub mod networks;
mod proxies;
mod serve;
pub mod sources;
mod stream;
pub mod tls;
mod webhooks;

pub use networks::Networks;
pub use proxies::TrustedProxies;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    /// Sources by name, as they appear in `/webhooks/<name>`; their
    /// secrets can be reloaded while serving.
    pub sources: sources::Sources,
    pub store: Arc<dyn Store>,
    pub max_body_bytes: usize,
    /// Body bytes the webhooks being read reserve, at most
    /// `max_body_bytes_in_flight` (`webhooks::reserve`).
    pub body_budget: Budget,
    /// Longest a webhook waits for its commit before 503/504.
    pub ack_deadline: Duration,
    /// `None`: the query API is off.
    pub api_token: Option<Secret>,
    pub destinations: Vec<Destination>,
    /// The servers NATS and Redis destinations reach.
    pub brokers: crate::dispatch::Brokers,
    /// Wakes the dispatcher when an event with deliveries is stored, so the
    /// hand-off starts at once instead of at the next poll.
    pub dispatch_wake: Arc<Notify>,
    /// Webhook activity, which the dispatcher yields to.
    pub pressure: Arc<crate::dispatch::Pressure>,
    /// Bumped on every new event stored here, to wake live streams.
    pub commits: tokio::sync::watch::Sender<u64>,
    /// Set when shutdown begins, so live streams end instead of holding it up.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Whose `X-Forwarded-For` names the client in the request log.
    pub trusted_proxies: TrustedProxies,
    /// The deadline for request heads and the open connections, at most
    /// `max_connections` (`serve`).
    pub connection_limits: serve::Limits,
    /// Counters behind `/metrics`.
    pub metrics: metrics::Metrics,
    /// The dispatcher's delivery attempts, also for `/metrics`.
    pub attempts: Arc<crate::dispatch::AttemptCounts>,
    /// How long events are kept (`crate::retention`); `None`: forever.
    pub retention: Option<Duration>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Self {
        Self(Arc::new(AppInner {
            sources: sources::Sources::new(&config.sources),
            store,
            max_body_bytes: config.max_body_bytes,
            body_budget: Budget::new(config.max_body_bytes_in_flight),
            ack_deadline: config.ack_deadline,
            api_token: config.api_token.clone(),
            destinations: config.destinations.clone(),
            brokers: config.brokers.clone(),
            dispatch_wake: Arc::new(Notify::new()),
            pressure: Arc::new(crate::dispatch::Pressure::new()),
            commits: tokio::sync::watch::Sender::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            trusted_proxies: config.trusted_proxies.clone(),
            connection_limits: serve::Limits {
                idle_timeout: config.idle_timeout,
                connections: Budget::new(config.max_connections),
            },
            metrics: metrics::Metrics::new(config.sources.iter().map(|s| s.name.as_str())),
            attempts: Arc::new(crate::dispatch::AttemptCounts::new(&config.destinations)),
            retention: config.retention,
        }))
    }

    /// Gives running sources their secrets, and HTTP destinations their
    /// signing keys, from a configuration loaded again (SIGHUP, or a
    /// changed secret file), and logs what changed and what only a restart
    /// applies.
    pub fn reload_secrets(&self, config: &Config) {
        let sources = self.sources.reload(config);
        let destinations = crate::dispatch::reload_keys(&self.destinations, &config.destinations);
        for (name, secrets) in &sources.changed {
            let from = config
                .sources
                .iter()
                .find(|s| &s.name == name)
                .map(Source::allowed_text);
            tracing::info!(source = %name, secrets, from = from.unwrap_or_default(), "source reloaded: its secrets or allowed addresses changed");
        }
        for (destination, secrets) in &destinations.changed {
            tracing::info!(%destination, secrets, "destination's signing secrets reloaded");
        }
        if sources.changed.is_empty() && destinations.changed.is_empty() {
            tracing::info!("configuration read again: no secret changed");
        }
        if !sources.need_restart.is_empty() {
            tracing::warn!(sources = %sources.need_restart.join(", "), "sources added, removed or given another provider: restart smshook to apply");
        }
        let brokers = self.brokers.changed(&config.brokers);
        if !brokers.is_empty() {
            tracing::warn!(changed = %brokers.join(", "), "queue server URLs changed: restart smshook to apply");
        }
        if !destinations.need_restart.is_empty() {
            tracing::warn!(destinations = %destinations.need_restart.join(", "), "destinations added, removed or changed other than their secrets: restart smshook to apply");
        }
    }
}

/// Every route; a plain function so tests can drive it without a socket.
pub fn router(app: App) -> Router {
    Router::new()
        .route(
            "/webhooks/{source}",
            post(webhooks::receive)
                .get(webhooks::receive_get)
                .fallback(webhooks::wrong_method),
        )
        .merge(api::routes(app.clone()))
        .merge(console::routes())
        .route("/api/openapi.json", get(api::openapi))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .with_state(app)
}

/// Binds the server's listener, with room for a burst of connections.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `listener` (and works the outbox, when destinations are
/// configured) until `shutdown` completes: then stops accepting, finishes
/// in-flight requests and deliveries, and flushes and closes the store.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_tls(listener, app, None, shutdown).await
}

/// [`run`], serving HTTPS with `tls` when given.
pub async fn run_tls(
    listener: TcpListener,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = app.store.clone();
    let stop_dispatch = Arc::new(Notify::new());
    let dispatcher = (!app.destinations.is_empty()).then(|| {
        let mut d = Dispatcher::new(store.clone(), &app.destinations, &app.brokers);
        d.wake = app.dispatch_wake.clone();
        d.pressure = app.pressure.clone();
        d.attempts = app.attempts.clone();
        tokio::spawn(d.run(stop_dispatch.clone()))
    });
    let retention = app.retention.map(|keep| {
        let retention = crate::retention::Retention {
            keep,
            pressure: app.pressure.clone(),
            deleted: app.metrics.retention_deleted.clone(),
        };
        tokio::spawn(crate::retention::run(
            store.clone(),
            retention,
            app.stopping.subscribe(),
        ))
    });
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signal = stopping.clone();
    let stop_streams = app.stopping.clone();
    let stop = async move {
        shutdown.await;
        stop_streams.send_replace(true);
        signal.notify_one();
    };
    let limits = app.connection_limits.clone();
    let served = serve::serve(listener, router(app.clone()), limits, tls, stop);
    tokio::select! {
        () = served => {}
        () = grace_expired(&stopping) => {
            tracing::warn!("shutdown grace period over: closing the connections still open");
        }
    };
    if let Some(dispatcher) = dispatcher {
        stop_dispatch.notify_one();
        let _ = dispatcher.await;
    }
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    store.close().await;
    Ok(())
}

/// Completes `SHUTDOWN_GRACE` after shutdown starts. A request cut off then
/// was never answered 200, so the provider retries it and nothing is lost.
async fn grace_expired(stopping: &tokio::sync::Notify) {
    stopping.notified().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}
