//! The PostgreSQL backend, for scale and several replicas on one database.
//! Writes are group-committed like SQLite's: a batcher task gathers every
//! insert waiting, and each batch is one transaction with one multi-row
//! `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING`.
//!
//! Every batch transaction, on every replica, first takes one advisory lock
//! and holds it to commit. Commits are therefore serialized, which makes
//! `seq` commit order: a reader that sees row N sees every row before it, so
//! cursors never skip a late commit. Group commit keeps this cheap — while one
//! batch holds the lock, the next one gathers everything that arrives — and a
//! retry reaching two replicas at once meets the first copy already committed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_core::Stream;
use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::queue::{self, InsertJob, LogBuffer};
use super::retention::Pruned;
use super::{AttemptRecord, Delivery, DeliveryQuery, DeliveryUpdate, DueDelivery, OptoutQuery};
use super::{
    BacklogCount, Counts, EventCount, EventQuery, MAX_PARTS, Newest, Order, PageReader,
    RequestCount, RequestQuery, Store, StoreError, StoreOptions, TimeRange,
};
use crate::event::{Event, EventFields, Inserted, NewEvent, RequestRecord, format_time};
use crate::log_throttle::Throttle;
use crate::message::StatusRow;
use crate::optout::Optout;

/// The newest event's cursor and the request log's (0: none).
const NEWEST: &str = "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), \
    (SELECT COALESCE(MAX(seq), 0) FROM requests)";

mod outbox;
pub mod retention;
mod tls;

/// Schema versions, applied in order under an advisory lock.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_init.sql"),
    include_str!("postgres/0002_messages_optouts_outbox.sql"),
    include_str!("postgres/0003_messages_by_message_id.sql"),
    include_str!("postgres/0004_deliveries_by_event.sql"),
    include_str!("postgres/0005_request_messages.sql"),
    include_str!("postgres/0006_message_parts.sql"),
];
/// The schema version this build migrates to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();
/// Key of the advisory lock that serializes migrations across replicas.
const MIGRATION_LOCK: i64 = 0x0073_6d73_686f_6f6b; // "smshook"
/// Run first in every write transaction: take the write lock (key
/// 0x736d7368777274, "smshwrt"), waiting at most 5 s for it; a replica that
/// dies mid-transaction cannot hold it for more than 10 s.
const BEGIN_WRITE: &str = "SET LOCAL lock_timeout = '5s'; \
    SET LOCAL idle_in_transaction_session_timeout = '10s'; \
    SELECT pg_advisory_xact_lock(32489964763050612)";
/// Connections per replica.
const POOL_SIZE: usize = 16;
/// Batches in flight at once: one committing, one waiting on the write lock
/// with its connection ready.
const PARALLEL_FLUSHES: usize = 2;
const MAX_BATCH: usize = 2048;
const QUEUE_DEPTH: usize = 8192;
/// Longest wait for a connection (new or from the pool); bounded so an
/// unreachable server turns into 503s, not hung requests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a batch may take before its connection is dropped.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// A database that is down fails every batch: one log line per interval.
static WRITE_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);

pub struct PostgresStore {
    pool: Pool,
    jobs: mpsc::Sender<InsertJob>,
    logs: Arc<LogBuffer>,
    /// Set by `close`; later writes fail with `Closed`.
    closed: AtomicBool,
    stop: Arc<Notify>,
    /// Joined on close, so every accepted batch is committed before we return.
    batcher: Mutex<Option<JoinHandle<()>>>,
}

impl PostgresStore {
    /// Queues `job` for the batcher, or says why it cannot wait.
    fn submit(&self, job: InsertJob) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })
    }

    /// Connects, applies pending migrations, and starts the batcher.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let pool = connect(url)?;
        let mut client = pool.get().await.context("cannot connect to PostgreSQL")?;
        migrate(&mut client)
            .await
            .context("migrating the PostgreSQL schema")?;
        drop(client);
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let logs = Arc::new(LogBuffer::default());
        let stop = Arc::new(Notify::new());
        let batcher = Batcher {
            pool: pool.clone(),
            rx,
            logs: logs.clone(),
            stop: stop.clone(),
            options,
            since_prune: 0,
        };
        let handle = tokio::spawn(batcher.run());
        Ok(Self {
            pool,
            jobs,
            logs,
            closed: AtomicBool::new(false),
            stop,
            batcher: Mutex::new(Some(handle)),
        })
    }

    /// Runs a listing query built by `listing` and maps its rows.
    async fn list<T>(
        &self,
        sql: &str,
        params: &[Box<dyn ToSql + Sync + Send>],
        from_row: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = self
            .client()
            .await?
            .query(sql, &refs)
            .await
            .map_err(unavailable)?;
        rows.iter().map(from_row).collect()
    }

    /// Runs an events listing built by `listing`, reading rows only until
    /// the page holds enough ([`PageReader`]): the rest are not decoded.
    async fn list_events(
        &self,
        sql: &str,
        params: &[Box<dyn ToSql + Sync + Send>],
    ) -> Result<Vec<Event>, StoreError> {
        let client = self.client().await?;
        let params = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync));
        let rows = client.query_raw(sql, params).await.map_err(unavailable)?;
        let mut rows = std::pin::pin!(rows);
        let mut page = PageReader::default();
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            if !page.push(event_from_row(&row.map_err(unavailable)?)?) {
                break;
            }
        }
        Ok(page.into_events())
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// Applies every migration not yet recorded, in one transaction holding an
/// advisory lock, so replicas starting together apply each exactly once.
/// Returns the schema version; refuses a schema a newer smshook migrated.
pub async fn migrate(client: &mut Object) -> Result<usize> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // `IF NOT EXISTS` on an existing table is a NOTICE, which
    // tokio-postgres logs: every `smshook events` printed one. Not for this
    // transaction.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS smshook_migrations \
         (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM smshook_migrations",
            &[],
        )
        .await?;
    let applied = row.get::<_, i32>(0) as usize;
    super::check_schema_version(applied, MIGRATIONS.len(), "the PostgreSQL database")?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO smshook_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(MIGRATIONS.len())
}

fn connect(url: &str) -> Result<Pool> {
    let mut target = tls::parse(url)?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(CONNECT_TIMEOUT);
    }
    target.config.keepalives(true);
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match target.tls {
        Some(tls) => Manager::from_config(target.config, tls, recycling),
        None => Manager::from_config(target.config, NoTls, recycling),
    };
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .context("building the PostgreSQL pool")
}

/// Gathers waiting inserts into batches and hands each to a flush task.
struct Batcher {
    pool: Pool,
    rx: mpsc::Receiver<InsertJob>,
    logs: Arc<LogBuffer>,
    stop: Arc<Notify>,
    options: StoreOptions,
    since_prune: u64,
}

impl Batcher {
    async fn run(mut self) {
        let permits = Arc::new(Semaphore::new(PARALLEL_FLUSHES));
        let mut stopping = false;
        while !stopping {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let first = tokio::select! {
                job = self.rx.recv() => job,
                () = tokio::time::sleep(IDLE_FLUSH) => None,
                () = self.stop.notified() => { stopping = true; None }
            };
            let mut batch: Vec<InsertJob> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.spawn_flush(batch, permit);
        }
        let _ = permits.acquire_many(PARALLEL_FLUSHES as u32).await;
    }

    fn spawn_flush(&mut self, batch: Vec<InsertJob>, permit: OwnedSemaphorePermit) {
        let logs = self.logs.take();
        if batch.is_empty() && logs.is_empty() {
            return;
        }
        self.since_prune += (batch.len() + logs.len()) as u64;
        let max_rows = self.options.request_log_max_rows;
        let prune = (self.since_prune >= (max_rows / 10).clamp(1, 1000)).then_some(max_rows);
        if prune.is_some() {
            self.since_prune = 0;
        }
        let pending = Pending {
            batch,
            logs,
            buffer: self.logs.clone(),
        };
        tokio::spawn(flush(self.pool.clone(), pending, prune, permit));
    }
}

/// One flush's rows, and the buffer its request rows go back to if it fails.
struct Pending {
    batch: Vec<InsertJob>,
    logs: Vec<RequestRecord>,
    buffer: Arc<LogBuffer>,
}

async fn flush(pool: Pool, pending: Pending, prune: Option<u64>, _permit: OwnedSemaphorePermit) {
    let Pending {
        batch,
        logs,
        buffer,
    } = pending;
    let error = match write_part(&pool, &batch, &logs, prune).await {
        Ok(results) => {
            if let Some(failures) = WRITE_FAILED.recovered() {
                tracing::info!(failures, "PostgreSQL writes succeed again");
            }
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(Ok(result));
            }
            return;
        }
        Err(PartError::Refused(_)) if batch.len() + logs.len() > 1 => {
            return write_apart(&pool, batch, logs, &buffer).await;
        }
        Err(e) => e.into_text(),
    };
    if let Some(skipped) = WRITE_FAILED.check() {
        tracing::error!(error = %error, events = batch.len(), skipped, "PostgreSQL write failed; answering 503");
    }
    // A timed-out commit may still land: a request row may then be logged
    // twice, which is better than an outage missing from the log.
    buffer.restore(logs);
    for job in batch {
        let _ = job.reply.send(Err(StoreError::Unavailable(error.clone())));
    }
}

/// Whether PostgreSQL refused a value (SQLSTATE class 22, "data
/// exception"): the row holding it fails again however often it is retried.
fn refused_value(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .any(|e| e.code().is_some_and(|c| c.code().starts_with("22")))
}

/// A batch with a value PostgreSQL refused, written again in halves, and
/// halves of the halves that fail, down to the rows that hold such a value:
/// one bad row must not turn every event beside it into a 503, nor, put back
/// into the log buffer, every later batch. That takes about two
/// transactions per halving for each bad row, not one per row, so a large
/// batch still makes its ack deadline. A refused log row is dropped
/// (logged); one that failed for another reason goes back to the buffer.
async fn write_apart(
    pool: &Pool,
    batch: Vec<InsertJob>,
    logs: Vec<RequestRecord>,
    buffer: &LogBuffer,
) {
    // The buffered log rows arrived before the batch's events: first, as in
    // a whole batch.
    let kept = logs_in_halves(pool, logs).await;
    buffer.restore(kept);
    events_in_halves(pool, batch).await;
}

type Apart<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Writes `logs`, or each half of it if PostgreSQL refuses a value; returns
/// the rows to put back (failed for another reason).
fn logs_in_halves(pool: &Pool, mut logs: Vec<RequestRecord>) -> Apart<'_, Vec<RequestRecord>> {
    Box::pin(async move {
        if logs.is_empty() {
            return logs;
        }
        match write_part(pool, &[], &logs, None).await {
            Ok(_) => Vec::new(),
            Err(PartError::Refused(_)) if logs.len() > 1 => {
                let second = logs.split_off(logs.len() / 2);
                let mut kept = logs_in_halves(pool, logs).await;
                kept.extend(logs_in_halves(pool, second).await);
                kept
            }
            Err(PartError::Refused(e)) => {
                tracing::error!(source = %logs[0].source, error = %e, "request-log row refused by PostgreSQL; dropped");
                Vec::new()
            }
            Err(PartError::Failed(_)) => logs,
        }
    })
}

/// Writes `batch` and answers its requests, or does so for each half if
/// PostgreSQL refuses a value; a row that holds one is answered 503.
fn events_in_halves(pool: &Pool, mut batch: Vec<InsertJob>) -> Apart<'_, ()> {
    Box::pin(async move {
        if batch.is_empty() {
            return;
        }
        match write_part(pool, &batch, &[], None).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(PartError::Refused(_)) if batch.len() > 1 => {
                let second = batch.split_off(batch.len() / 2);
                events_in_halves(pool, batch).await;
                events_in_halves(pool, second).await;
            }
            Err(e) => {
                if let PartError::Refused(e) = &e {
                    tracing::error!(error = %e, "PostgreSQL refused an event; answering 503 for it alone");
                }
                let error = e.into_text();
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(error.clone())));
                }
            }
        }
    })
}

/// Why a transaction failed, as text for logs and answers.
enum PartError {
    /// PostgreSQL refused a value (SQLSTATE class 22): the same rows fail
    /// however often they are retried.
    Refused(String),
    /// Anything else (a connection, a lock, the time limit): worth a retry.
    Failed(String),
}

impl PartError {
    fn into_text(self) -> String {
        match self {
            Self::Refused(e) => format!("PostgreSQL refused a value: {e}"),
            Self::Failed(e) => e,
        }
    }
}

/// A batch, or part of one, in one transaction, within [`FLUSH_TIMEOUT`].
async fn write_part(
    pool: &Pool,
    batch: &[InsertJob],
    logs: &[RequestRecord],
    prune: Option<u64>,
) -> Result<Vec<Inserted>, PartError> {
    match tokio::time::timeout(FLUSH_TIMEOUT, write_batch(pool, batch, logs, prune)).await {
        Ok(Ok(results)) => Ok(results),
        Ok(Err(e)) if refused_value(&e) => Err(PartError::Refused(format!("{e:#}"))),
        Ok(Err(e)) => Err(PartError::Failed(format!("{e:#}"))),
        Err(_) => Err(PartError::Failed(format!(
            "batch not committed within {FLUSH_TIMEOUT:?}"
        ))),
    }
}

async fn write_batch(
    pool: &Pool,
    batch: &[InsertJob],
    logs: &[RequestRecord],
    prune: Option<u64>,
) -> Result<Vec<Inserted>> {
    let mut client = pool.get().await.context("getting a connection")?;
    let written = write_in(&mut client, batch, logs, prune).await;
    if written.is_err() {
        // The connection may be broken (a restart, a cut network): drop it
        // rather than hand it to the next batch.
        drop(Object::take(client));
    }
    written
}

const INSERT_EVENTS: &str = "INSERT INTO events (id, source, provider, dedupe_key, provider_event_id, \
    type, provider_type, message_id, from_number, to_number, body, status, error_code, error_reason, \
    occurred_at, received_at, payload, opt_out) \
    SELECT id, source, provider, dedupe_key, provider_event_id, type, provider_type, message_id, \
    from_number, to_number, body, status, error_code, error_reason, occurred_at, received_at, payload::json, \
    opt_out::boolean \
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], \
    $16::text[], $17::text[], $18::text[]) AS t(id, source, provider, dedupe_key, provider_event_id, type, \
    provider_type, message_id, from_number, to_number, body, status, error_code, error_reason, occurred_at, \
    received_at, payload, opt_out) \
    ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id";
const FIND_EXISTING: &str = "SELECT source, dedupe_key, e.id FROM events e \
    JOIN UNNEST($1::text[], $2::text[]) AS k(source, dedupe_key) USING (source, dedupe_key)";
const INSERT_REQUESTS: &str = "INSERT INTO requests (at, source, status, reason, remote_addr, size, body_sha256, event_id, message) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[])";
const PRUNE_REQUESTS: &str =
    "DELETE FROM requests WHERE seq <= (SELECT MAX(seq) FROM requests) - $1";

/// One transaction, holding the write lock from its first statement.
async fn write_in(
    client: &mut Object,
    batch: &[InsertJob],
    logs: &[RequestRecord],
    prune: Option<u64>,
) -> Result<Vec<Inserted>> {
    let tx = client.transaction().await?;
    tx.batch_execute(BEGIN_WRITE).await?;
    let columns = event_columns(batch);
    let insert = tx.prepare_cached(INSERT_EVENTS).await?;
    let fresh: HashSet<String> = tx
        .query(&insert, &as_params(&columns))
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let existing = if fresh.len() < batch.len() {
        find_existing(&tx, batch).await?
    } else {
        HashMap::new()
    };
    let results = batch
        .iter()
        .map(|job| resolve(&job.event, &fresh, &existing))
        .collect::<Result<Vec<_>>>()?;
    let fresh_events: Vec<&NewEvent> = batch
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.duplicate)
        .map(|(j, _)| &j.event)
        .collect();
    let requests = request_rows(batch, &results, logs);
    let log_requests = async {
        let insert = tx.prepare_cached(INSERT_REQUESTS).await?;
        tx.execute(&insert, &requests.params()).await
    };
    tokio::try_join!(record_effects(&tx, &fresh_events), log_requests)?;
    if let Some(max_rows) = prune {
        tx.execute(PRUNE_REQUESTS, &[&(max_rows as i64)]).await?;
    }
    tx.commit().await?;
    Ok(results)
}

async fn find_existing(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[InsertJob],
) -> Result<HashMap<(String, String), String>, tokio_postgres::Error> {
    let sources: Vec<&str> = batch.iter().map(|j| j.event.source.as_str()).collect();
    let keys: Vec<&str> = batch.iter().map(|j| j.event.dedupe_key.as_str()).collect();
    let find = tx.prepare_cached(FIND_EXISTING).await?;
    let rows = tx.query(&find, &[&sources, &keys]).await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// A message's status, from any source or the one given (`$2`): an index
/// search, the primary key starting with `message_id` (public for the test
/// that checks the plan).
pub const MESSAGE_STATUS: &str = "SELECT source, message_id, status, event_id, updated_at FROM messages \
    WHERE message_id = $1 AND ($2::text IS NULL OR source = $2) ORDER BY source LIMIT 1";

const UPSERT_MESSAGES: &str = "INSERT INTO messages (source, message_id, status, rank, event_id, updated_at) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[]) \
    ON CONFLICT (message_id, source) DO UPDATE SET status = excluded.status, rank = excluded.rank, \
    event_id = excluded.event_id, updated_at = excluded.updated_at WHERE excluded.rank > messages.rank";
const UPSERT_OPTOUTS: &str = "INSERT INTO optouts (number, opted_out, source, event_id, changed_at) \
    SELECT * FROM UNNEST($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[]) \
    ON CONFLICT (number) DO UPDATE SET opted_out = excluded.opted_out, source = excluded.source, \
    event_id = excluded.event_id, changed_at = excluded.changed_at WHERE excluded.changed_at >= optouts.changed_at";
const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (event_id, destination, next_attempt_at, created_at, updated_at) \
    SELECT e, d, n, c, c FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[]) AS t(e, d, n, c)";

/// What new events change besides their rows: message status, consent, and
/// pending deliveries. One statement each, sent together (tokio-postgres
/// pipelines them); a statement may not touch a key twice, so updates are
/// first reduced to one per key, the way applying them one by one would end.
async fn record_effects(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[&NewEvent],
) -> Result<(), tokio_postgres::Error> {
    tokio::try_join!(
        upsert_statuses(tx, events),
        upsert_consents(tx, events),
        insert_deliveries(tx, events)
    )?;
    Ok(())
}

async fn upsert_statuses(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[&NewEvent],
) -> Result<(), tokio_postgres::Error> {
    let statuses = reduce_statuses(events);
    if statuses.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = statuses.iter().map(|(e, _, _)| e.source.as_str()).collect();
    let ids: Vec<&str> = statuses
        .iter()
        .map(|(e, _, _)| e.fields.message_id.as_deref().unwrap_or(""))
        .collect();
    let names: Vec<&str> = statuses.iter().map(|(_, status, _)| *status).collect();
    let ranks: Vec<i64> = statuses.iter().map(|(_, _, rank)| *rank).collect();
    let by: Vec<&str> = statuses.iter().map(|(e, _, _)| e.id.as_str()).collect();
    let at: Vec<&str> = statuses
        .iter()
        .map(|(e, _, _)| e.received_at.as_str())
        .collect();
    let upsert = tx.prepare_cached(UPSERT_MESSAGES).await?;
    tx.execute(&upsert, &[&sources, &ids, &names, &ranks, &by, &at])
        .await?;
    Ok(())
}

async fn upsert_consents(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[&NewEvent],
) -> Result<(), tokio_postgres::Error> {
    let consents = reduce_consents(events);
    if consents.is_empty() {
        return Ok(());
    }
    let numbers: Vec<&str> = consents.iter().map(|(n, _, _)| *n).collect();
    let opted: Vec<bool> = consents
        .iter()
        .map(|(_, e, _)| e.opt_out == Some(true))
        .collect();
    let sources: Vec<&str> = consents.iter().map(|(_, e, _)| e.source.as_str()).collect();
    let ids: Vec<&str> = consents.iter().map(|(_, e, _)| e.id.as_str()).collect();
    let at: Vec<&str> = consents.iter().map(|(_, _, t)| *t).collect();
    let upsert = tx.prepare_cached(UPSERT_OPTOUTS).await?;
    tx.execute(&upsert, &[&numbers, &opted, &sources, &ids, &at])
        .await?;
    Ok(())
}

async fn insert_deliveries(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[&NewEvent],
) -> Result<(), tokio_postgres::Error> {
    let pairs: Vec<(&NewEvent, &str)> = events
        .iter()
        .flat_map(|e| e.destinations.iter().map(move |d| (*e, d.as_str())))
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = pairs.iter().map(|(e, _)| e.id.as_str()).collect();
    let names: Vec<&str> = pairs.iter().map(|(_, d)| *d).collect();
    let created: Vec<&str> = pairs.iter().map(|(e, _)| e.received_at.as_str()).collect();
    let now = vec![crate::event::unix_millis(); ids.len()];
    let insert = tx.prepare_cached(INSERT_DELIVERIES).await?;
    tx.execute(&insert, &[&ids, &names, &now, &created]).await?;
    Ok(())
}

/// One status update per message: the highest rank, the first on a tie.
fn reduce_statuses<'a>(events: &[&'a NewEvent]) -> Vec<(&'a NewEvent, &'static str, i64)> {
    let mut best: Vec<(&NewEvent, &'static str, i64)> = Vec::new();
    for e in events {
        let Some((status, rank)) = crate::message::status_of(&e.fields) else {
            continue;
        };
        let same = |b: &&mut (&NewEvent, &str, i64)| {
            b.0.source == e.source && b.0.fields.message_id == e.fields.message_id
        };
        match best.iter_mut().find(same) {
            Some(b) if rank > b.2 => *b = (e, status, rank),
            Some(_) => {}
            None => best.push((e, status, rank)),
        }
    }
    best
}

/// One consent change per number: the latest by provider time.
fn reduce_consents<'a>(events: &[&'a NewEvent]) -> Vec<(&'a str, &'a NewEvent, &'a str)> {
    let mut latest: HashMap<&str, (&NewEvent, &str)> = HashMap::new();
    for e in events {
        let (Some(_), Some(number)) = (e.opt_out, e.fields.from.as_deref()) else {
            continue;
        };
        let at = e.fields.occurred_at.as_deref().unwrap_or(&e.received_at);
        match latest.get(number) {
            Some((_, t)) if *t > at => {}
            _ => {
                latest.insert(number, (e, at));
            }
        }
    }
    latest.into_iter().map(|(n, (e, t))| (n, e, t)).collect()
}

/// New row, or the committed row that holds the key (its inserter held the
/// key until it committed). Neither: fail the batch rather than claim a row.
fn resolve(
    e: &NewEvent,
    fresh: &HashSet<String>,
    existing: &HashMap<(String, String), String>,
) -> Result<Inserted> {
    if fresh.contains(&e.id) {
        return Ok(Inserted {
            event_id: e.id.clone(),
            duplicate: false,
        });
    }
    let key = (e.source.clone(), e.dedupe_key.clone());
    let event_id = existing
        .get(&key)
        .cloned()
        .context("a conflicting event was not found")?;
    Ok(Inserted {
        event_id,
        duplicate: true,
    })
}

/// The batch as 18 text arrays, one per column, in `INSERT_EVENTS` order.
fn event_columns(batch: &[InsertJob]) -> Vec<Vec<Option<&str>>> {
    let getters: [fn(&NewEvent) -> Option<&str>; 18] = [
        |e| Some(&e.id),
        |e| Some(&e.source),
        |e| Some(&e.provider),
        |e| Some(&e.dedupe_key),
        |e| e.fields.provider_event_id.as_deref(),
        |e| Some(&e.fields.event_type),
        |e| e.fields.provider_type.as_deref(),
        |e| e.fields.message_id.as_deref(),
        |e| e.fields.from.as_deref(),
        |e| e.fields.to.as_deref(),
        |e| e.fields.body.as_deref(),
        |e| e.fields.status.as_deref(),
        |e| e.fields.error_code.as_deref(),
        |e| e.fields.error_reason.as_deref(),
        |e| e.fields.occurred_at.as_deref(),
        |e| Some(&e.received_at),
        |e| Some(&e.payload),
        |e| e.opt_out.map(|o| if o { "true" } else { "false" }),
    ];
    getters
        .iter()
        .map(|get| batch.iter().map(|j| get(&j.event)).collect())
        .collect()
}

fn as_params<T: ToSql + Sync>(columns: &[T]) -> Vec<&(dyn ToSql + Sync)> {
    columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect()
}

/// Request-log rows as column arrays: buffered refusals first (they arrived
/// before this batch was taken), then the batch's own requests.
#[derive(Default)]
struct RequestColumns {
    at: Vec<String>,
    source: Vec<String>,
    status: Vec<i32>,
    reason: Vec<String>,
    remote_addr: Vec<Option<String>>,
    size: Vec<i64>,
    body_sha256: Vec<Option<String>>,
    event_id: Vec<Option<String>>,
    message: Vec<Option<String>>,
}

impl RequestColumns {
    fn push(&mut self, r: RequestRecord) {
        self.at.push(r.at);
        self.source.push(r.source);
        self.status.push(i32::from(r.status));
        self.reason.push(r.reason);
        self.remote_addr.push(r.remote_addr);
        self.size.push(r.size as i64);
        self.body_sha256.push(r.body_sha256);
        self.event_id.push(r.event_id);
        self.message.push(r.message);
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.at,
            &self.source,
            &self.status,
            &self.reason,
            &self.remote_addr,
            &self.size,
            &self.body_sha256,
            &self.event_id,
            &self.message,
        ]
    }
}

fn request_rows(
    batch: &[InsertJob],
    results: &[Inserted],
    logs: &[RequestRecord],
) -> RequestColumns {
    let mut rows = RequestColumns::default();
    for record in logs {
        rows.push(record.clone());
    }
    for (job, result) in batch.iter().zip(results) {
        let Some(mut record) = job.request.clone() else {
            continue;
        };
        if result.duplicate {
            record.reason = "duplicate".into();
        }
        record.event_id = Some(result.event_id.clone());
        rows.push(record);
    }
    rows
}

/// The `WHERE` of [`Store::parts`]: a range of the partial index
/// `events_parts`, its keys compared byte by byte (`COLLATE "C"`) as on
/// SQLite, whatever the database's collation.
const PARTS: &str = "WHERE type = 'message.part' AND source = $1 \
    AND dedupe_key COLLATE \"C\" >= $2 AND dedupe_key COLLATE \"C\" < $3 \
    AND received_at >= $4 ORDER BY seq DESC LIMIT $5";

pub(crate) const EVENT_COLUMNS: &str = "seq, id, source, provider, provider_event_id, type, provider_type, message_id, \
    from_number, to_number, body, status, error_code, error_reason, occurred_at, received_at, payload::text, opt_out";
/// `seq > $1 [AND col = $n …] ORDER BY seq LIMIT $last` (`<` and `DESC`
/// newest first).
fn listing(
    table: &str,
    columns: &str,
    filters: &[(&str, &Option<String>)],
    also: &str,
    conditions: Vec<(String, String)>,
    (after, order): (Option<i64>, Order),
    limit: u32,
) -> (String, Params) {
    let after = after.unwrap_or(order.start());
    let mut params: Params = vec![Box::new(after)];
    let (compare, direction) = order.sql();
    let mut sql = format!("SELECT {columns} FROM {table} WHERE seq {compare} $1");
    for (column, value) in filters {
        if let Some(v) = value {
            params.push(Box::new(v.clone()));
            sql.push_str(&format!(" AND {column} = ${}", params.len()));
        }
    }
    sql.push_str(also);
    push_conditions(&mut sql, &mut params, conditions);
    params.push(Box::new(i64::from(limit)));
    sql.push_str(&format!(
        " ORDER BY seq {direction} LIMIT ${}",
        params.len()
    ));
    (sql, params)
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Appends `conditions`, which come with SQLite's `?` for their one value,
/// as PostgreSQL's numbered parameters.
fn push_conditions(sql: &mut String, params: &mut Params, conditions: Vec<(String, String)>) {
    for (condition, value) in conditions {
        params.push(Box::new(value));
        let placeholder = format!("${}", params.len());
        sql.push_str(" AND ");
        sql.push_str(&condition.replacen('?', &placeholder, 1));
    }
}

/// Rows of `table` that meet `conditions`, counted by `columns`, in their
/// order.
fn counting(table: &str, columns: &str, conditions: Vec<(String, String)>) -> (String, Params) {
    let mut params = Params::new();
    let mut sql = format!("SELECT {columns}, count(*) FROM {table} WHERE TRUE");
    push_conditions(&mut sql, &mut params, conditions);
    sql.push_str(&format!(" GROUP BY {columns} ORDER BY {columns}"));
    (sql, params)
}

/// An events listing's conditions beyond its filters: the time range's
/// bounds on `seq` (PostgreSQL reads a range of the primary key from all of
/// them), then the query's own.
fn event_conditions(q: &EventQuery) -> Vec<(String, String)> {
    let (since, until) = q.received.event_seq_bounds();
    let since = since.map(|(sql, id)| (format!("seq > {sql}"), id));
    let until = until.map(|(sql, id)| (format!("seq < {sql}"), id));
    since
        .into_iter()
        .chain(until)
        .chain(q.conditions())
        .collect()
}

fn event_count_from_row(r: &Row) -> Result<EventCount, StoreError> {
    let count = |r: &Row| -> Result<EventCount, tokio_postgres::Error> {
        Ok(EventCount {
            source: r.try_get(0)?,
            event_type: r.try_get(1)?,
            count: r.try_get::<_, i64>(2)?.unsigned_abs(),
        })
    };
    count(r).map_err(unavailable)
}

fn request_count_from_row(r: &Row) -> Result<RequestCount, StoreError> {
    let count = |r: &Row| -> Result<RequestCount, tokio_postgres::Error> {
        Ok(RequestCount {
            source: r.try_get(0)?,
            status: u16::try_from(r.try_get::<_, i32>(1)?).unwrap_or(0),
            reason: r.try_get(2)?,
            count: r.try_get::<_, i64>(3)?.unsigned_abs(),
        })
    };
    count(r).map_err(unavailable)
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_event(
        &self,
        event: NewEvent,
        request: RequestRecord,
    ) -> Result<Inserted, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.submit(InsertJob {
            event,
            request: Some(request),
            reply,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn insert_events(
        &self,
        events: Vec<NewEvent>,
        request: Option<RequestRecord>,
    ) -> Result<Vec<Inserted>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (jobs, waiting) = queue::batch_jobs(events, request);
        for job in jobs {
            self.submit(job)?;
        }
        queue::answers(waiting).await
    }

    fn record_request(&self, request: RequestRecord) {
        self.logs.push(request);
    }

    async fn parts(
        &self,
        source: &str,
        group: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events {PARTS}");
        let (from, to) = super::key_range(group);
        let params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
            Box::new(source.to_string()),
            Box::new(from),
            Box::new(to),
            Box::new(format_time(since)),
            Box::new(i64::from(MAX_PARTS)),
        ];
        self.list_events(&sql, &params).await
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let filters = [
            ("source", &q.source),
            ("type", &q.event_type),
            ("message_id", &q.message_id),
        ];
        let (sql, params) = listing(
            "events",
            EVENT_COLUMNS,
            &filters,
            "",
            event_conditions(q),
            (q.after, q.order),
            q.limit,
        );
        self.list_events(&sql, &params).await
    }

    async fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&id])
            .await
            .map_err(unavailable)?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn requests(&self, q: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError> {
        let columns =
            "seq, at, source, status, reason, remote_addr, size, body_sha256, event_id, message";
        let (sql, params) = listing(
            "requests",
            columns,
            &[("source", &q.source), ("reason", &q.reason)],
            if q.refused {
                super::REFUSED_REQUESTS
            } else {
                ""
            },
            q.at.conditions("at"),
            (q.after, q.order),
            q.limit,
        );
        self.list(&sql, &params, request_from_row).await
    }

    async fn counts(&self, range: &TimeRange) -> Result<Counts, StoreError> {
        let events = EventQuery {
            received: *range,
            ..Default::default()
        };
        let (sql, params) = counting("events", "source, type", event_conditions(&events));
        let events = self.list(&sql, &params, event_count_from_row).await?;
        let conditions = range.conditions("at");
        let (sql, params) = counting("requests", "source, status, reason", conditions);
        let requests = self.list(&sql, &params, request_count_from_row).await?;
        Ok(Counts { events, requests })
    }

    async fn message_status(
        &self,
        source: Option<&str>,
        message_id: &str,
    ) -> Result<Option<StatusRow>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(MESSAGE_STATUS, &[&message_id, &source])
            .await
            .map_err(unavailable)?;
        row.map(|r| -> Result<StatusRow, tokio_postgres::Error> {
            Ok(StatusRow {
                source: r.try_get(0)?,
                message_id: r.try_get(1)?,
                status: r.try_get(2)?,
                status_event_id: r.try_get(3)?,
                updated_at: r.try_get(4)?,
            })
        })
        .transpose()
        .map_err(unavailable)
    }

    async fn optouts(&self, q: &OptoutQuery) -> Result<Vec<Optout>, StoreError> {
        let sql = format!(
            "SELECT {OPTOUT_COLUMNS} FROM optouts WHERE opted_out AND number > $1 ORDER BY number LIMIT $2"
        );
        let after = q.after.clone().unwrap_or_default();
        let rows = self
            .client()
            .await?
            .query(&sql, &[&after, &i64::from(q.limit)])
            .await
            .map_err(unavailable)?;
        rows.iter().map(optout_from_row).collect()
    }

    async fn optout(&self, number: &str) -> Result<Option<Optout>, StoreError> {
        let sql = format!("SELECT {OPTOUT_COLUMNS} FROM optouts WHERE number = $1");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&number])
            .await
            .map_err(unavailable)?;
        row.as_ref().map(optout_from_row).transpose()
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        outbox::claim(&self.client().await?, now_ms, lease_ms, limit).await
    }

    async fn finish_deliveries(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        outbox::finish(&mut client, &updates)
            .await
            .map_err(unavailable)
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        outbox::list(&self.client().await?, q).await
    }

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        outbox::attempts(&self.client().await?, delivery_id).await
    }

    async fn enqueue_delivery(
        &self,
        event_id: &str,
        destination: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        outbox::enqueue(&self.client().await?, event_id, destination, now_ms).await
    }

    async fn retry_dead(&self, destination: Option<&str>, now_ms: i64) -> Result<u64, StoreError> {
        outbox::retry_dead(&self.client().await?, destination, now_ms).await
    }

    async fn prune(&self, after: i64, cutoff: &str, limit: u32) -> Result<Pruned, StoreError> {
        let mut client = self.client().await?;
        retention::prune(&mut client, after, cutoff, limit)
            .await
            .map_err(unavailable)
    }

    fn request_log_dropped(&self) -> u64 {
        self.logs.dropped_total()
    }

    async fn delivery_backlog(&self) -> Result<Vec<BacklogCount>, StoreError> {
        outbox::backlog(&self.client().await?).await
    }

    async fn newest(&self) -> Result<Newest, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(NEWEST, &[])
            .await
            .map_err(unavailable)?;
        Ok(Newest {
            events: row.get(0),
            requests: row.get(1),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.notify_one();
        let handle = self
            .batcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.await.is_err()
        {
            tracing::error!("the PostgreSQL batcher did not stop cleanly");
        }
        self.pool.close();
    }
}

pub(crate) fn event_from_row(r: &Row) -> Result<Event, StoreError> {
    let payload: String = r.try_get(16).map_err(unavailable)?;
    Ok(Event {
        seq: r.try_get(0).map_err(unavailable)?,
        id: r.try_get(1).map_err(unavailable)?,
        source: r.try_get(2).map_err(unavailable)?,
        provider: r.try_get(3).map_err(unavailable)?,
        fields: EventFields {
            provider_event_id: r.try_get(4).map_err(unavailable)?,
            event_type: r.try_get(5).map_err(unavailable)?,
            provider_type: r.try_get(6).map_err(unavailable)?,
            message_id: r.try_get(7).map_err(unavailable)?,
            from: r.try_get(8).map_err(unavailable)?,
            to: r.try_get(9).map_err(unavailable)?,
            body: r.try_get(10).map_err(unavailable)?,
            status: r.try_get(11).map_err(unavailable)?,
            error_code: r.try_get(12).map_err(unavailable)?,
            error_reason: r.try_get(13).map_err(unavailable)?,
            occurred_at: r.try_get(14).map_err(unavailable)?,
        },
        opt_out: r.try_get(17).map_err(unavailable)?,
        received_at: r.try_get(15).map_err(unavailable)?,
        payload: RawValue::from_string(payload).map_err(unavailable)?,
    })
}

const OPTOUT_COLUMNS: &str = "number, opted_out, source, event_id, changed_at";

fn optout_from_row(r: &Row) -> Result<Optout, StoreError> {
    Ok(Optout {
        number: r.try_get(0).map_err(unavailable)?,
        opted_out: r.try_get(1).map_err(unavailable)?,
        source: r.try_get(2).map_err(unavailable)?,
        event_id: r.try_get(3).map_err(unavailable)?,
        changed_at: r.try_get(4).map_err(unavailable)?,
    })
}

fn request_from_row(r: &Row) -> Result<RequestRecord, StoreError> {
    Ok(RequestRecord {
        seq: r.try_get(0).map_err(unavailable)?,
        at: r.try_get(1).map_err(unavailable)?,
        source: r.try_get(2).map_err(unavailable)?,
        status: r.try_get::<_, i32>(3).map_err(unavailable)? as u16,
        reason: r.try_get(4).map_err(unavailable)?,
        remote_addr: r.try_get(5).map_err(unavailable)?,
        size: r.try_get::<_, i64>(6).map_err(unavailable)? as u64,
        body_sha256: r.try_get(7).map_err(unavailable)?,
        event_id: r.try_get(8).map_err(unavailable)?,
        message: r.try_get(9).map_err(unavailable)?,
    })
}
