//! Hand-off to the application: destinations, and the dispatcher that works
//! the outbox. Every stored event that matches a destination's filters has a
//! pending delivery written in its own transaction; the dispatcher claims due
//! deliveries under a lease, sends them, and records each attempt. Delivery
//! is at-least-once: a crash between sending and recording means a resend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::event::{Event, NewEvent, format_time};
use crate::log_throttle::Throttle;
use crate::snapshot::{Reload, Snapshot};
use crate::store::{AttemptRecord, DeliveryUpdate, DueDelivery, Store};

pub mod http;
pub mod nats;
pub mod redis;

/// How long a claimed delivery stays ours; past it, another worker (or
/// replica) may take it, so a worker that died does not strand it.
const LEASE: Duration = Duration::from_secs(300);
/// Deliveries claimed per poll, and sent at once.
const CLAIM_LIMIT: u32 = 256;
/// Deliveries claimed per round while ingestion is saturated.
const BUSY_CLAIM_LIMIT: u32 = 64;
/// Event payload bytes the dispatcher holds at once, being sent and
/// claimed: each send takes its payload's length from this budget, and a
/// claim asks for no more deliveries than the budget holds of the last
/// claim's payloads (`BUSY_CLAIM_LIMIT` for the first). SMS events of a
/// kilobyte or two never reach it, and go 256 at a time; events near a
/// `max_body_bytes` of 1 MiB go 16 at a time, where 256 sent and 256
/// claimed held about a gigabyte.
const PAYLOAD_BUDGET: usize = 16 << 20;
/// How often the outbox is polled when nothing wakes the dispatcher.
const POLL: Duration = Duration::from_secs(1);
/// More webhook requests than this in flight at once means ingestion is
/// saturated (a flood); under ordinary load only a few are in flight…
const BUSY_IN_FLIGHT: usize = 8;
/// …and the dispatcher then waits this long between rounds: at most
/// `BUSY_CLAIM_LIMIT` deliveries per pause, so the flood keeps the CPU and the
/// database, and the outbox drains once it passes. Below saturation the
/// dispatcher runs flat out.
const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// Claims fail every round while storage is down: a line per interval.
static CLAIM_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);
static RECORD_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);

/// How many webhook requests are in flight: the dispatcher yields while
/// ingestion is saturated.
pub struct Pressure {
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts one request as in flight until dropped.
pub struct InFlight<'a>(&'a Pressure);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Pressure {
    pub fn new() -> Self {
        Self {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Called for every webhook request; the guard ends it.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(self)
    }

    /// Ingestion is saturated: background writers (the dispatcher,
    /// retention) give way.
    pub fn busy(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) > BUSY_IN_FLIGHT
    }
}

impl Default for Pressure {
    fn default() -> Self {
        Self::new()
    }
}

/// The default retry schedule: the waits after each failed attempt, about a
/// day in all (11 attempts).
pub const DEFAULT_SCHEDULE: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
    Duration::from_secs(7200),
    Duration::from_secs(14400),
    Duration::from_secs(28800),
    Duration::from_secs(28800),
];

/// A configured place events are handed to.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    pub target: Target,
    pub filter: Filter,
    /// Longest wait for one attempt's answer.
    pub timeout: Duration,
    /// Waits after each failed attempt; after the last, the delivery is dead.
    pub schedule: Vec<Duration>,
}

/// Where a destination's events go.
#[derive(Debug, Clone)]
pub enum Target {
    /// POST to a URL, signed with each Standard Webhooks key (`whsec_…`):
    /// two while the application rotates its secret. The keys can be
    /// replaced while serving ([`reload_keys`]); every clone of the
    /// destination shares them.
    Http {
        url: String,
        keys: Arc<Snapshot<Vec<http::SigningKey>>>,
    },
    /// Publish to NATS JetStream on a subject built from a template such as
    /// `sms.{source}.{type}`; `stream`, if set, is created when missing.
    Nats {
        subject: String,
        stream: Option<String>,
    },
    /// Add an entry to a Redis stream (`XADD`), trimmed to about `max_len`
    /// entries when set.
    Redis {
        stream: String,
        max_len: Option<u64>,
    },
}

/// The servers queue destinations reach: `nats_url` and `redis_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brokers {
    pub nats_url: Option<String>,
    pub redis_url: Option<String>,
}

impl Brokers {
    /// The keys whose URL differs in `new`: a change takes a restart
    /// (connections are made once), so a reload names them, never the URLs.
    pub fn changed(&self, new: &Brokers) -> Vec<&'static str> {
        let nats = (self.nats_url != new.nats_url).then_some("nats_url");
        let redis = (self.redis_url != new.redis_url).then_some("redis_url");
        nats.into_iter().chain(redis).collect()
    }
}

impl Target {
    pub fn http(url: impl Into<String>, keys: Vec<http::SigningKey>) -> Self {
        Target::Http {
            url: url.into(),
            keys: Arc::new(Snapshot::new(keys)),
        }
    }

    /// `http`, `nats` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Nats { .. } => "nats",
            Self::Redis { .. } => "redis",
        }
    }

    /// The same place, whatever the keys.
    pub(crate) fn same_place(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Http { url: a, .. }, Target::Http { url: b, .. }) => a == b,
            (
                Target::Nats { subject, stream },
                Target::Nats {
                    subject: other_subject,
                    stream: other_stream,
                },
            ) => subject == other_subject && stream == other_stream,
            (
                Target::Redis { stream, max_len },
                Target::Redis {
                    stream: other_stream,
                    max_len: other_max_len,
                },
            ) => stream == other_stream && max_len == other_max_len,
            _ => false,
        }
    }
}

/// Gives each running HTTP destination the signing keys that `config`
/// gives the destination of the same name, place, filters and schedule. A
/// destination added, removed or changed in another way needs a restart
/// (events are routed, and attempts counted, by the destinations at
/// start-up).
pub fn reload_keys(running: &[Destination], config: &[Destination]) -> Reload {
    let mut reload = Reload::default();
    for new in config {
        match running.iter().find(|d| d.name == new.name) {
            Some(old) if same_but_keys(old, new) => {
                if let (Target::Http { keys: in_use, .. }, Target::Http { keys, .. }) =
                    (&old.target, &new.target)
                {
                    let keys = keys.current();
                    if in_use.current() != keys {
                        reload.changed.push((new.name.clone(), keys.len()));
                        in_use.replace(keys.to_vec());
                    }
                }
            }
            _ => reload.need_restart.push(new.name.clone()),
        }
    }
    for old in running {
        if !config.iter().any(|d| d.name == old.name) {
            reload.need_restart.push(old.name.clone());
        }
    }
    reload.sorted()
}

/// Every field but the name (matched already) and the keys. Written out
/// field by field, so a field added to `Destination` must be placed here.
fn same_but_keys(a: &Destination, b: &Destination) -> bool {
    let Destination {
        name: _,
        target,
        filter,
        timeout,
        schedule,
    } = a;
    target.same_place(&b.target)
        && *filter == b.filter
        && *timeout == b.timeout
        && *schedule == b.schedule
}

/// What the destination answered.
#[derive(Debug)]
pub enum Answer {
    /// Taken (an HTTP 2xx, or a JetStream ack); the HTTP status if any.
    Success(Option<u16>),
    Failure {
        status: Option<u16>,
        retry_after: Option<Duration>,
        error: String,
    },
}

/// Which events a destination wants; an empty list means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub sources: Vec<String>,
    pub types: Vec<String>,
    /// `Some(true)`: only opt-outs; `Some(false)`: only opt-ins.
    pub opt_out: Option<bool>,
}

impl Filter {
    pub fn matches(&self, e: &NewEvent) -> bool {
        (self.sources.is_empty() || self.sources.contains(&e.source))
            && (self.types.is_empty() || self.types.contains(&e.fields.event_type))
            && self.opt_out.is_none_or(|want| e.opt_out == Some(want))
    }
}

/// Where a destination's events go, in words (`smshook check`, `GET
/// /api/destinations`): a URL, or a queue's subject or stream and server,
/// each without its credentials.
pub fn place(target: &Target, brokers: &Brokers) -> String {
    let server =
        |url: &Option<String>| url.as_deref().map_or_else(String::new, without_credentials);
    match target {
        Target::Http { url, keys } => {
            let n = keys.current().len();
            let plural = if n == 1 { "" } else { "s" };
            format!("{} ({n} signing secret{plural})", without_credentials(url))
        }
        Target::Nats { subject, stream } => {
            let at = server(&brokers.nats_url);
            match stream {
                Some(stream) => format!("NATS subject {subject} (stream {stream}) at {at}"),
                None => format!("NATS subject {subject} at {at}"),
            }
        }
        Target::Redis { stream, max_len } => {
            let at = server(&brokers.redis_url);
            match max_len {
                Some(n) => format!("Redis stream {stream} at {at} (about {n} entries kept)"),
                None => format!("Redis stream {stream} at {at}"),
            }
        }
    }
}

/// `url` without the parts that may carry a credential: user, password
/// and query string.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(not a valid URL)".into(),
    }
}

/// The names of the destinations an event goes to.
pub fn route(destinations: &[Destination], event: &NewEvent) -> Vec<String> {
    destinations
        .iter()
        .filter(|d| d.filter.matches(event))
        .map(|d| d.name.clone())
        .collect()
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Delivered,
    /// Try again no earlier than this many milliseconds from now (a
    /// `Retry-After` longer than the schedule's wait wins).
    Retry {
        after_ms: i64,
    },
    GaveUp,
}

/// Milliseconds on a clock that follows tokio's, so tests can pause time.
#[derive(Clone, Copy)]
pub struct Clock {
    wall_ms: i64,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            wall_ms: crate::event::unix_millis(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.wall_ms + self.start.elapsed().as_millis() as i64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The wait before attempt `attempts + 1`, with ±20% jitter so a burst of
/// failures does not retry in lockstep; `None` when the schedule is spent.
pub fn backoff(
    schedule: &[Duration],
    attempts: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = *schedule.get(attempts.checked_sub(1)?)?;
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let wait = base.mul_f64(jitter);
    Some(retry_after.map_or(wait, |r| r.max(wait)))
}

/// Works the outbox until `stop` is notified.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    destinations: Arc<HashMap<String, Destination>>,
    client: reqwest::Client,
    nats: Arc<nats::Connection>,
    redis: Arc<redis::Connection>,
    clock: Clock,
    /// Wakes the loop early (a new event with deliveries was stored).
    pub wake: Arc<Notify>,
    /// Ingestion activity, to yield to.
    pub pressure: Arc<Pressure>,
    /// Attempts by destination and result, for `/metrics`.
    pub attempts: Arc<AttemptCounts>,
}

/// Delivery attempts since start, by destination and what the attempt left
/// the delivery as: `delivered`, `retrying` (failed, tried again later) or
/// `dead` (failed for good).
#[derive(Debug, Default)]
pub struct AttemptCounts(HashMap<String, [AtomicU64; 3]>);

/// The results an attempt is counted under, in [`AttemptCounts`] order.
pub const ATTEMPT_RESULTS: [&str; 3] = ["delivered", "retrying", "dead"];

impl AttemptCounts {
    pub fn new(destinations: &[Destination]) -> Self {
        Self(
            destinations
                .iter()
                .map(|d| (d.name.clone(), Default::default()))
                .collect(),
        )
    }

    /// Counts an attempt to `destination` that ended in `outcome`.
    fn record(&self, destination: &str, outcome: &Outcome) {
        let result = match outcome {
            Outcome::Delivered => 0,
            Outcome::Retry { .. } => 1,
            Outcome::GaveUp => 2,
        };
        if let Some(counts) = self.0.get(destination) {
            counts[result].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every destination's counts, in [`ATTEMPT_RESULTS`] order, by name.
    pub fn snapshot(&self) -> Vec<(String, [u64; 3])> {
        let mut all: Vec<_> = self
            .0
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    c.each_ref().map(|n| n.load(Ordering::Relaxed)),
                )
            })
            .collect();
        all.sort();
        all
    }
}

impl Dispatcher {
    /// `brokers`: the servers NATS and Redis destinations reach.
    pub fn new(store: Arc<dyn Store>, destinations: &[Destination], brokers: &Brokers) -> Self {
        Self {
            store,
            destinations: Arc::new(
                destinations
                    .iter()
                    .map(|d| (d.name.clone(), d.clone()))
                    .collect(),
            ),
            client: reqwest::Client::builder()
                .user_agent(concat!("smshook/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            nats: Arc::new(nats::Connection::new(brokers.nats_url.clone())),
            redis: Arc::new(redis::Connection::new(brokers.redis_url.clone())),
            clock: Clock::new(),
            wake: Arc::new(Notify::new()),
            pressure: Arc::new(Pressure::new()),
            attempts: Arc::new(AttemptCounts::new(destinations)),
        }
    }

    pub async fn run(self, stop: Arc<Notify>) {
        let sending = Arc::new(Semaphore::new(CLAIM_LIMIT as usize));
        let payloads = Arc::new(Semaphore::new(PAYLOAD_BUDGET));
        let (done, results) = mpsc::channel(CLAIM_LIMIT as usize * 4);
        let recorder = tokio::spawn(record(self.store.clone(), results));
        let mut mean_payload = None;
        loop {
            let claimed = self
                .claim(claim_limit(self.pressure.busy(), mean_payload))
                .await;
            let idle = claimed.is_empty();
            mean_payload = mean(&claimed).or(mean_payload);
            for due in claimed {
                let Ok(permit) = sending.clone().acquire_owned().await else {
                    return;
                };
                let Ok(bytes) = payloads.clone().acquire_many_owned(weight(&due)).await else {
                    return;
                };
                let (worker, done) = (self.worker(), done.clone());
                tokio::spawn(async move {
                    let _ = done.send(worker.attempt(due).await).await;
                    drop((permit, bytes));
                });
            }
            // Ingestion first: while it is saturated, pause between rounds
            // so the outbox absorbs the flood and drains after it.
            let pause = if idle {
                POLL
            } else if self.pressure.busy() {
                BUSY_PAUSE
            } else {
                Duration::ZERO
            };
            tokio::select! {
                biased;
                () = stop.notified() => break,
                () = self.wake.notified(), if idle => {},
                () = tokio::time::sleep(pause) => {},
            }
        }
        let _ = sending.acquire_many(CLAIM_LIMIT).await;
        drop(done);
        let _ = recorder.await;
    }

    async fn claim(&self, limit: u32) -> Vec<DueDelivery> {
        match self
            .store
            .claim_deliveries(self.clock.now_ms(), LEASE.as_millis() as i64, limit)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                if let Some(skipped) = CLAIM_FAILED.check() {
                    tracing::warn!(error = %e, skipped, "cannot claim deliveries; will retry");
                }
                Vec::new()
            }
        }
    }

    fn worker(&self) -> Worker {
        Worker {
            destinations: self.destinations.clone(),
            client: self.client.clone(),
            nats: self.nats.clone(),
            redis: self.redis.clone(),
            clock: self.clock,
            attempts: self.attempts.clone(),
        }
    }
}

/// Sends one delivery and records what happened.
struct Worker {
    destinations: Arc<HashMap<String, Destination>>,
    client: reqwest::Client,
    nats: Arc<nats::Connection>,
    redis: Arc<redis::Connection>,
    clock: Clock,
    attempts: Arc<AttemptCounts>,
}

impl Worker {
    async fn attempt(&self, due: DueDelivery) -> DeliveryUpdate {
        let started = self.clock.now_ms();
        let (outcome, status, error) = match self.destinations.get(&due.destination) {
            Some(d) => self.send(d, &due).await,
            None => (
                Outcome::GaveUp,
                None,
                Some(format!(
                    "destination {:?} is no longer configured",
                    due.destination
                )),
            ),
        };
        self.attempts.record(&due.destination, &outcome);
        let now = self.clock.now_ms();
        let (state, next) = match outcome {
            Outcome::Delivered => ("delivered", now),
            Outcome::Retry { after_ms } => ("pending", now + after_ms),
            Outcome::GaveUp => ("dead", now),
        };
        let attempt = AttemptRecord {
            at: ms_to_rfc3339(started),
            status,
            latency_ms: now - started,
            error,
        };
        DeliveryUpdate {
            id: due.id,
            attempt,
            state: state.into(),
            next_attempt_at: next,
        }
    }

    async fn send(
        &self,
        d: &Destination,
        due: &DueDelivery,
    ) -> (Outcome, Option<u16>, Option<String>) {
        let now_secs = self.clock.now_ms() / 1000;
        let answer = match &d.target {
            Target::Http { url, keys } => {
                let keys = keys.current();
                http::send(&self.client, url, &keys, d.timeout, &due.event, now_secs).await
            }
            Target::Nats { subject, stream } => {
                self.nats
                    .publish(subject, stream.as_deref(), d.timeout, &due.event)
                    .await
            }
            Target::Redis { stream, max_len } => {
                let stream = redis::Stream {
                    key: stream,
                    max_len: *max_len,
                };
                self.redis.add(&stream, d.timeout, due.id, &due.event).await
            }
        };
        let attempts = due.attempts as usize + 1;
        let retry = |retry_after| match backoff(&d.schedule, attempts, retry_after) {
            Some(wait) => Outcome::Retry {
                after_ms: wait.as_millis() as i64,
            },
            None => Outcome::GaveUp,
        };
        match answer {
            Answer::Success(status) => (Outcome::Delivered, status, None),
            Answer::Failure {
                status,
                retry_after,
                error,
            } => (retry(retry_after), status, Some(error)),
        }
    }
}

/// Deliveries to claim. Big rounds amortize the claim and record
/// transactions; small ones while a flood of webhooks needs the resources
/// (`busy`); and no more than [`PAYLOAD_BUDGET`] holds of payloads the size
/// of the last claim's (`mean_payload`; unknown before the first).
fn claim_limit(busy: bool, mean_payload: Option<usize>) -> u32 {
    let by_count = if busy { BUSY_CLAIM_LIMIT } else { CLAIM_LIMIT };
    let by_bytes = match mean_payload {
        Some(mean) => u32::try_from(PAYLOAD_BUDGET / mean.max(1)).unwrap_or(u32::MAX),
        None => BUSY_CLAIM_LIMIT,
    };
    by_count.min(by_bytes).max(1)
}

/// The mean payload length of a claim; `None` for an empty one.
fn mean(claimed: &[DueDelivery]) -> Option<usize> {
    let total: usize = claimed.iter().map(|d| d.event.payload.get().len()).sum();
    total.checked_div(claimed.len())
}

/// What a delivery takes from [`PAYLOAD_BUDGET`] while it is sent: its
/// payload's length, at least 1 and at most the whole budget.
fn weight(due: &DueDelivery) -> u32 {
    due.event.payload.get().len().clamp(1, PAYLOAD_BUDGET) as u32
}

/// Writes attempt results in batches (one transaction for all that are
/// waiting), retrying a failed write a few times. A result never written is
/// not lost work: the lease runs out and the delivery is sent again.
async fn record(store: Arc<dyn Store>, mut results: mpsc::Receiver<DeliveryUpdate>) {
    while let Some(first) = results.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = results.try_recv() {
            batch.push(more);
        }
        for wait in [0, 200, 1000, 5000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match store.finish_deliveries(batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    if let Some(skipped) = RECORD_FAILED.check() {
                        tracing::warn!(error = %e, attempts = batch.len(), skipped, "cannot record delivery attempts yet");
                    }
                }
            }
        }
    }
}

fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(format_time)
        .unwrap_or_default()
}

/// The JSON an HTTP destination receives: the stored event as the API shows it.
pub fn body(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls_are_shown_without_credentials() {
        let shown = without_credentials("https://user:pa55@app.internal:8443/hooks?token=t0k");
        assert_eq!(shown, "https://app.internal:8443/hooks");
    }

    fn http_destination(name: &str, url: &str, secrets: &[&str]) -> Destination {
        let keys = secrets.iter().map(|s| key(s)).collect();
        Destination {
            name: name.into(),
            target: Target::http(url, keys),
            filter: Filter::default(),
            timeout: Duration::from_secs(10),
            schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }

    fn key(secret: &str) -> http::SigningKey {
        use base64::Engine;
        let bytes = format!("{secret:0>16}");
        http::SigningKey::parse(&base64::engine::general_purpose::STANDARD.encode(bytes))
            .expect("key")
    }

    /// Claims are sized by count, then by what the payload budget holds of
    /// the last claim's payloads; the first, sizes unknown, is a small one.
    #[test]
    fn a_reload_names_the_broker_urls_that_changed() {
        let running = Brokers {
            nats_url: Some("nats://a:4222".into()),
            redis_url: None,
        };
        assert!(running.changed(&running.clone()).is_empty());
        let new = Brokers {
            nats_url: Some("nats://b:4222".into()),
            redis_url: Some("redis://r".into()),
        };
        assert_eq!(running.changed(&new), ["nats_url", "redis_url"]);
    }

    #[test]
    fn claims_shrink_for_large_payloads() {
        assert_eq!(claim_limit(false, Some(1_500)), CLAIM_LIMIT);
        assert_eq!(claim_limit(true, Some(1_500)), BUSY_CLAIM_LIMIT);
        assert_eq!(claim_limit(false, None), BUSY_CLAIM_LIMIT);
        assert_eq!(claim_limit(false, Some(1 << 20)), 16);
        assert_eq!(claim_limit(false, Some(64 << 20)), 1, "one at least");
        assert_eq!(claim_limit(false, Some(0)), CLAIM_LIMIT);
    }

    fn keys(d: &Destination) -> Arc<Vec<http::SigningKey>> {
        match &d.target {
            Target::Http { keys, .. } => keys.current(),
            _ => panic!("not HTTP"),
        }
    }

    #[test]
    fn a_reload_replaces_signing_keys_and_only_those() {
        let running = vec![
            http_destination("app", "http://app/hooks", &["old"]),
            http_destination("crm", "http://crm/hooks", &["c"]),
            http_destination("gone", "http://gone/hooks", &["g"]),
        ];
        // What the dispatcher holds: clones, sharing the keys.
        let dispatcher_copy = running[0].clone();
        let mut moved = http_destination("crm", "http://crm.new/hooks", &["c2"]);
        moved.filter.types = vec!["message.failed".into()];
        let config = vec![
            http_destination("app", "http://app/hooks", &["old", "new"]),
            moved,
            http_destination("added", "http://added/hooks", &["a"]),
        ];
        let reload = reload_keys(&running, &config);
        assert_eq!(reload.changed, vec![("app".to_string(), 2)]);
        assert_eq!(reload.need_restart, ["added", "crm", "gone"]);
        assert_eq!(*keys(&dispatcher_copy), vec![key("old"), key("new")]);
        assert_eq!(
            *keys(&running[1]),
            vec![key("c")],
            "a moved destination keeps its keys"
        );

        let again = reload_keys(&running, &config[..1]);
        assert!(again.changed.is_empty(), "{again:?}");
    }

    #[test]
    fn backoff_follows_the_schedule_with_bounded_jitter_and_retry_after() {
        let schedule = [Duration::from_secs(10), Duration::from_secs(60)];
        for _ in 0..100 {
            let first = backoff(&schedule, 1, None).expect("retry");
            assert!(
                first >= Duration::from_secs(8) && first <= Duration::from_secs(12),
                "{first:?}"
            );
        }
        let long = backoff(&schedule, 1, Some(Duration::from_secs(120))).expect("retry");
        assert_eq!(
            long,
            Duration::from_secs(120),
            "Retry-After longer than the schedule wins"
        );
        assert_eq!(backoff(&schedule, 3, None), None, "schedule spent: give up");
        assert!(
            DEFAULT_SCHEDULE.iter().sum::<Duration>() > Duration::from_secs(20 * 3600),
            "about a day"
        );
    }

    #[test]
    fn the_dispatcher_yields_only_while_ingestion_is_saturated() {
        let pressure = Pressure::new();
        let few: Vec<_> = (0..BUSY_IN_FLIGHT).map(|_| pressure.enter()).collect();
        assert!(!pressure.busy(), "ordinary load: deliver flat out");
        let one_more = pressure.enter();
        assert!(pressure.busy(), "a flood: yield");
        drop(one_more);
        drop(few);
        assert!(!pressure.busy(), "finished requests no longer count");
    }

    #[test]
    fn filters_combine() {
        let mut e = NewEvent {
            id: "evt".into(),
            source: "ig".into(),
            provider: "integify".into(),
            dedupe_key: "k".into(),
            fields: crate::event::EventFields {
                event_type: "message.received".into(),
                ..Default::default()
            },
            opt_out: Some(true),
            received_at: String::new(),
            payload: "{}".into(),
            destinations: vec![],
            part: None,
        };
        assert!(Filter::default().matches(&e));
        let f = Filter {
            sources: vec!["ig".into()],
            types: vec!["message.received".into()],
            opt_out: Some(true),
        };
        assert!(f.matches(&e));
        e.opt_out = None;
        assert!(!f.matches(&e));
        assert!(
            !Filter {
                sources: vec!["other".into()],
                ..Default::default()
            }
            .matches(&e)
        );
    }
}
