//! The embedded SQLite backend: WAL, one writer thread doing group commit
//! (see `writer`), one thread making its commits durable before anything is
//! answered (see `syncer`), and a separate connection for reads, which WAL
//! lets run beside the writer.

use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::{AttemptRecord, Delivery, DeliveryQuery, DeliveryUpdate, DueDelivery, OptoutQuery};
use super::{
    BacklogCount, Counts, EventCount, EventQuery, MAX_PARTS, Newest, Order, PageReader,
    RequestCount, RequestQuery, Store, StoreError, StoreOptions, TimeRange,
};
use crate::event::{Event, EventFields, Inserted, NewEvent, RequestRecord, format_time};
use crate::message::StatusRow;
use crate::optout::Optout;

/// The newest synced event's cursor, and the request log's (0: none).
const NEWEST_EVENT: &str = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq <= ?1";
const NEWEST_REQUEST: &str = "SELECT COALESCE(MAX(seq), 0) FROM requests";

mod backup;
mod checkpointer;
mod outbox;
mod retention;
mod syncer;
mod writer;

use super::queue::{self, InsertJob, LogBuffer, Replies};
use super::retention::Pruned;
pub use backup::backup;
use syncer::{Answer, Durable, Syncer};
use writer::{Job, Task, Writer};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/0001_init.sql"),
    include_str!("sqlite/0002_messages_optouts_outbox.sql"),
    include_str!("sqlite/0003_without_rowid.sql"),
    include_str!("sqlite/0004_keys_lead_with_ids.sql"),
    include_str!("sqlite/0005_deliveries_by_event.sql"),
    include_str!("sqlite/0006_request_messages.sql"),
];
/// Jobs that may wait for the writer; past this, requests get 503 at once.
const QUEUE_DEPTH: usize = 8192;
/// How long a statement waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    jobs: SyncSender<Job>,
    logs: Arc<LogBuffer>,
    /// Reads go through their own connection so they never queue behind writes.
    reader: Arc<Mutex<Connection>>,
    /// Joined on close, so the last batch is committed before we return.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// What the sync thread has made durable (see `syncer`): the server's
    /// reads of events stop there (`events_through`), and a failed sync
    /// fails readiness.
    durable: Arc<Durable>,
    /// Opened by the server (`StoreOptions::server`), not a command.
    server: bool,
}

impl SqliteStore {
    pub async fn open(path: &Path, options: StoreOptions) -> Result<Self> {
        let path = path.to_path_buf();
        let replies = Replies::spawn();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, options, replies))
            .await
            .context("opening SQLite")?
    }

    fn open_blocking(path: &Path, options: StoreOptions, replies: Replies) -> Result<Self> {
        let mut conn = open_for_writing(path, options.server)?;
        let reader = connect(path)?;
        reader.execute_batch("PRAGMA query_only = ON;")?;
        let (jobs, rx) = sync_channel(QUEUE_DEPTH);
        let logs = Arc::new(LogBuffer::default());
        let last_seq =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        let durable = Arc::new(Durable::new(last_seq));
        let syncer = Syncer::spawn(wal_path(&conn)?, replies, durable.clone())
            .context("starting the SQLite sync thread")?;
        // The sync thread makes each commit durable: see `syncer`.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let checkpointer = checkpointer::Checkpointer::spawn(
            path,
            &mut conn,
            checkpointer::Limits::DEFAULT,
            durable.clone(),
        )
        .context("starting the SQLite checkpoint thread")?;
        let writer = Writer {
            conn,
            jobs: rx,
            logs: logs.clone(),
            syncer,
            checkpointer,
            durable: durable.clone(),
            max_rows: options.request_log_max_rows,
            since_prune: 0,
            last_batch: 0,
            server: options.server,
        };
        let handle = writer.spawn()?;
        Ok(Self {
            jobs,
            logs,
            reader: Arc::new(Mutex::new(reader)),
            writer: Mutex::new(Some(handle)),
            durable,
            server: options.server,
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn).map_err(unavailable)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

impl SqliteStore {
    /// Queues `job` for the writer, or says why it cannot wait.
    fn submit(&self, job: InsertJob) -> Result<(), StoreError> {
        self.jobs
            .try_send(Job::Insert(Box::new(job)))
            .map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Overloaded,
                TrySendError::Disconnected(_) => StoreError::Closed,
            })
    }

    /// The newest event reads may show. In the server, the last one synced,
    /// so the API never shows an event before its 200 could be sent. A
    /// command reading beside the server (`smshook events`, `--follow`)
    /// cannot know the server's syncs and shows every committed event: at
    /// worst one a moment before its fsync returns, which a power cut in
    /// that moment would take back.
    fn events_through(&self) -> i64 {
        if self.server {
            self.durable.events_through()
        } else {
            i64::MAX
        }
    }

    /// Runs `f` in one transaction on the writer thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let task: Task = Box::new(move |conn: &mut Connection| {
            let result = conn.transaction().and_then(|tx| {
                let value = f(&tx)?;
                tx.commit().map(|()| value)
            });
            let answer: Answer = Box::new(move |synced| {
                let _ = reply.send(synced.and(result.map_err(unavailable)));
            });
            answer
        });
        self.jobs.try_send(Job::Run(task)).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The WAL file SQLite keeps beside the database: its name with `-wal`.
fn wal_path(conn: &Connection) -> Result<std::path::PathBuf> {
    match conn.path() {
        Some(db) if !db.is_empty() => Ok(format!("{db}-wal").into()),
        _ => anyhow::bail!("SQLite database has no file name: a file is needed"),
    }
}

/// Creates the database file, if there is none, readable and writable by
/// its owner alone: it holds phone numbers and message texts. SQLite gives
/// its WAL and shared-memory files the database file's permissions, and
/// keeps whatever an existing file has (`chmod` it to share it).
fn create_private(path: &Path) -> std::io::Result<()> {
    if path == Path::new(":memory:") {
        // SQLite's name for no file at all (refused later: WAL needs one).
        return Ok(());
    }
    match new_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new, empty file that only its owner may read and write; an error if
/// `path` exists.
fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Checkpoint every ~120 MB of WAL instead of SQLite's 4 MB (why:
    // `checkpointer::Limits`). The server's writer replaces this with its
    // checkpointer, which keeps the size; it holds for other connections.
    // The size limit keeps the WAL file from being cut back and regrown
    // after each checkpoint; a clean shutdown truncates it.
    conn.pragma_update(None, "wal_autocheckpoint", checkpointer::START_FRAMES)?;
    conn.pragma_update(None, "journal_size_limit", 192 * 1024 * 1024)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // No checkpoint when the last connection closes: the writer checkpoints
    // at a clean shutdown itself, and after a failed sync must not (the WAL
    // may alone hold pages the kernel dropped; `writer::Writer::finish`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The writer's connection to the database at `path`, created (readable by
/// its owner alone) and migrated if need be, in WAL mode.
fn open_for_writing(path: &Path, server: bool) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    create_private(path).with_context(|| format!("creating SQLite database {}", path.display()))?;
    let mut conn =
        connect(path).with_context(|| format!("opening SQLite database {}", path.display()))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let database = format!("SQLite database {}", path.display());
    super::check_schema_version(version as usize, MIGRATIONS.len(), &database)?;
    migrate(&mut conn).with_context(|| format!("migrating {database}"))?;
    if server {
        // One server process works a SQLite database's outbox: a lease
        // found when it starts was held by a process that died. (A CLI
        // command opened beside a running server must leave them alone.)
        // Only pending deliveries hold leases: `deliveries_state` finds
        // them without reading every delivery ever made.
        conn.execute(
            "UPDATE deliveries SET locked_until = NULL WHERE state = 'pending' AND locked_until IS NOT NULL",
            [],
        )?;
    }
    // The sync thread syncs the WAL file: without WAL there is none.
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "SQLite database {}: the file system does not support WAL (journal mode {mode}); smshook needs it",
        path.display()
    );
    Ok(conn)
}

/// Applies pending migrations, each in an IMMEDIATE transaction that re-reads
/// the version, so two processes starting at once apply each one once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version <= i as i64 {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
    }
    Ok(())
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_event(
        &self,
        event: NewEvent,
        request: RequestRecord,
    ) -> Result<Inserted, StoreError> {
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
        let (source, range) = (source.to_string(), super::key_range(group));
        let (since, through) = (format_time(since), self.events_through());
        self.read(move |conn| {
            let sql =
                format!("SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_dedupe {PARTS}");
            let mut stmt = conn.prepare_cached(&sql)?;
            let values = params![range.0, range.1, source, since, through, MAX_PARTS];
            stmt.query_map(values, event_from_row)?.collect()
        })
        .await
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let q = q.clone();
        let through = self.events_through();
        self.read(move |conn| list_events(conn, &q, through)).await
    }

    async fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let (id, through) = (id.to_string(), self.events_through());
        self.read(move |conn| {
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 AND seq <= ?2");
            conn.query_row(&sql, params![id, through], event_from_row)
                .optional()
        })
        .await
    }

    async fn requests(&self, q: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError> {
        let q = q.clone();
        self.read(move |conn| list_requests(conn, &q)).await
    }

    async fn counts(&self, range: &TimeRange) -> Result<Counts, StoreError> {
        let (range, through) = (*range, self.events_through());
        self.read(move |conn| count(conn, range, through)).await
    }

    async fn message_status(
        &self,
        source: Option<&str>,
        message_id: &str,
    ) -> Result<Option<StatusRow>, StoreError> {
        let (source, message_id) = (source.map(String::from), message_id.to_string());
        self.read(move |conn| {
            conn.query_row(MESSAGE_STATUS, rusqlite::params![message_id, source], |r| {
                Ok(StatusRow {
                    source: r.get(0)?,
                    message_id: r.get(1)?,
                    status: r.get(2)?,
                    status_event_id: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn optouts(&self, q: &OptoutQuery) -> Result<Vec<Optout>, StoreError> {
        let q = q.clone();
        self.read(move |conn| {
            let sql = format!("SELECT {OPTOUT_COLUMNS} FROM optouts WHERE opted_out AND number > ?1 ORDER BY number LIMIT ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params![q.after.unwrap_or_default(), q.limit], optout_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn optout(&self, number: &str) -> Result<Option<Optout>, StoreError> {
        let number = number.to_string();
        self.read(move |conn| {
            let sql = format!("SELECT {OPTOUT_COLUMNS} FROM optouts WHERE number = ?1");
            conn.query_row(&sql, [number], optout_from_row).optional()
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.write(move |conn| outbox::claim(conn, now_ms, lease_ms, limit))
            .await
    }

    async fn finish_deliveries(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        self.write(move |conn| outbox::finish(conn, &updates)).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let q = q.clone();
        self.read(move |conn| outbox::list(conn, &q)).await
    }

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(move |conn| outbox::attempts(conn, delivery_id))
            .await
    }

    async fn enqueue_delivery(
        &self,
        event_id: &str,
        destination: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (event_id, destination) = (event_id.to_string(), destination.to_string());
        self.write(move |conn| outbox::enqueue(conn, &event_id, &destination, now_ms))
            .await
    }

    async fn retry_dead(&self, destination: Option<&str>, now_ms: i64) -> Result<u64, StoreError> {
        let destination = destination.map(String::from);
        self.write(move |conn| outbox::retry_dead(conn, destination.as_deref(), now_ms))
            .await
    }

    async fn prune(&self, after: i64, cutoff: &str, limit: u32) -> Result<Pruned, StoreError> {
        let cutoff = cutoff.to_string();
        self.write(move |conn| retention::prune(conn, after, &cutoff, limit))
            .await
    }

    fn request_log_dropped(&self) -> u64 {
        self.logs.dropped_total()
    }

    async fn delivery_backlog(&self) -> Result<Vec<BacklogCount>, StoreError> {
        self.read(outbox::backlog).await
    }

    async fn newest(&self) -> Result<Newest, StoreError> {
        let through = self.events_through();
        self.read(move |conn| {
            Ok(Newest {
                events: conn.query_row(NEWEST_EVENT, [through], |r| r.get(0))?,
                requests: conn.query_row(NEWEST_REQUEST, [], |r| r.get(0))?,
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let alive = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        if !alive {
            return Err(StoreError::Closed);
        }
        if self.durable.failed() {
            return Err(syncer::sync_failed("an earlier fsync failed"));
        }
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn close(&self) {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let jobs = self.jobs.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _ = jobs.send(Job::Shutdown);
            handle.map(JoinHandle::join)
        })
        .await;
        if !matches!(joined, Ok(None | Some(Ok(())))) {
            tracing::error!("the SQLite writer thread did not stop cleanly");
        }
    }
}

/// A message's status, from any source or the one given (`?2`): a search of
/// the primary key, which starts with `message_id`.
const MESSAGE_STATUS: &str = "SELECT source, message_id, status, event_id, updated_at FROM messages \
    WHERE message_id = ?1 AND (?2 IS NULL OR source = ?2) ORDER BY source LIMIT 1";

/// The `WHERE` of [`Store::parts`]: a range of the dedupe index, named
/// with `INDEXED BY` (without statistics the planner would rather walk
/// `seq` back from the newest event, for the `ORDER BY`, through the whole
/// table).
const PARTS: &str = "WHERE dedupe_key >= ?1 AND dedupe_key < ?2 AND source = ?3 \
    AND received_at >= ?4 AND seq <= ?5 ORDER BY seq DESC LIMIT ?6";

pub(crate) const EVENT_COLUMNS: &str = "seq, id, source, provider, provider_event_id, type, provider_type, message_id, \
    from_number, to_number, body, status, error_code, error_reason, occurred_at, received_at, payload, opt_out";

/// `WHERE` clauses for the filters that are set, with their values, after
/// the range of `cursor`. A filter left out is not in the SQL at all:
/// SQLite plans before it sees values, so `? IS NULL OR column = ?` could
/// never use an index on `column`.
fn filters(
    range: (String, Vec<SqlValue>),
    pairs: &[(&str, &Option<String>)],
    conditions: Vec<(String, String)>,
) -> (String, Vec<SqlValue>) {
    let (range, mut values) = range;
    let mut clauses = vec![range];
    let equal = pairs
        .iter()
        .filter_map(|(column, value)| Some((format!("{column} = ?"), (*value).clone()?)));
    for (clause, value) in equal.chain(conditions) {
        clauses.push(clause);
        values.push(SqlValue::Text(value));
    }
    (clauses.join(" AND "), values)
}

/// The range of `cursor` (the rowid) a listing reads: after the cursor in
/// `order`, and above every `lower` and below every `upper` bound (SQL
/// expressions, with their values). SQLite reads a range of the rowid
/// from one lower and one upper bound, the first of each it finds, and
/// tests any other on every row it reads; so the bounds of each side are
/// folded into one with `max()` and `min()`.
fn cursor_range(
    cursor: &str,
    (after, order): (Option<i64>, Order),
    mut lower: Vec<(String, SqlValue)>,
    mut upper: Vec<(String, SqlValue)>,
) -> (String, Vec<SqlValue>) {
    let after = (
        "?".to_string(),
        SqlValue::Integer(after.unwrap_or(order.start())),
    );
    match order {
        Order::Asc => lower.insert(0, after),
        Order::Desc => upper.insert(0, after),
    }
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    for (bounds, compare, fold) in [(lower, ">", "max"), (upper, "<", "min")] {
        let (sql, bound_values): (Vec<String>, Vec<SqlValue>) = bounds.into_iter().unzip();
        match sql.len() {
            0 => continue,
            1 => clauses.push(format!("{cursor} {compare} {}", sql[0])),
            _ => clauses.push(format!("{cursor} {compare} {fold}({})", sql.join(", "))),
        }
        values.extend(bound_values);
    }
    (clauses.join(" AND "), values)
}

/// Events matching `q`, up to `seq` `through` (the last synced one).
fn list_events(conn: &Connection, q: &EventQuery, through: i64) -> rusqlite::Result<Vec<Event>> {
    let (sql, values) = events_sql(q, through);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), event_from_row)?;
    let mut page = PageReader::default();
    for event in rows {
        if !page.push(event?) {
            break;
        }
    }
    Ok(page.into_events())
}

fn events_sql(q: &EventQuery, through: i64) -> (String, Vec<SqlValue>) {
    let (clause, mut values) = events_where(q, through);
    values.push(SqlValue::Integer(q.limit.into()));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {clause} ORDER BY seq {} LIMIT ?",
        q.order.sql().1
    );
    (sql, values)
}

/// The `WHERE` clause of the events `q` lists, up to `seq` `through`.
fn events_where(q: &EventQuery, through: i64) -> (String, Vec<SqlValue>) {
    let bound =
        |b: Option<(&str, String)>| b.map(|(sql, id)| (sql.to_string(), SqlValue::Text(id)));
    let (since, until) = q.received.event_seq_bounds();
    // Only what is synced: `seq <= through`.
    let synced = (
        "?".to_string(),
        SqlValue::Integer(through.saturating_add(1)),
    );
    let range = cursor_range(
        "seq",
        (q.after, q.order),
        bound(since).into_iter().collect(),
        std::iter::once(synced).chain(bound(until)).collect(),
    );
    filters(
        range,
        &[
            ("source", &q.source),
            ("type", &q.event_type),
            ("message_id", &q.message_id),
        ],
        q.conditions(),
    )
}

/// Events and requests in `range`, counted ([`Store::counts`]).
fn count(conn: &Connection, range: TimeRange, through: i64) -> rusqlite::Result<Counts> {
    let events = EventQuery {
        received: range,
        ..Default::default()
    };
    let requests = RequestQuery {
        at: range,
        ..Default::default()
    };
    let events = events_where(&events, through);
    let requests = requests_where(&requests);
    Ok(Counts {
        events: grouped(conn, "events", "source, type", events, |r| {
            Ok(EventCount {
                source: r.get(0)?,
                event_type: r.get(1)?,
                count: r.get::<_, i64>(2)?.unsigned_abs(),
            })
        })?,
        requests: grouped(conn, "requests", "source, status, reason", requests, |r| {
            Ok(RequestCount {
                source: r.get(0)?,
                status: r.get(1)?,
                reason: r.get(2)?,
                count: r.get::<_, i64>(3)?.unsigned_abs(),
            })
        })?,
    })
}

/// The rows of `table` that a `WHERE` clause keeps, counted by `columns` (the
/// count last), in their order.
fn grouped<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    (clause, values): (String, Vec<SqlValue>),
    row: fn(&Row) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let sql = format!(
        "SELECT {columns}, count(*) FROM {table} WHERE {clause} \
         GROUP BY {columns} ORDER BY {columns}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), row)?;
    rows.collect()
}

fn list_requests(conn: &Connection, q: &RequestQuery) -> rusqlite::Result<Vec<RequestRecord>> {
    let (clause, mut values) = requests_where(q);
    values.push(SqlValue::Integer(q.limit.into()));
    let sql = format!(
        "SELECT seq, at, source, status, reason, remote_addr, size, body_sha256, event_id, message \
         FROM requests WHERE {clause} ORDER BY seq {} LIMIT ?",
        q.order.sql().1
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), request_from_row)?;
    rows.collect()
}

/// The `WHERE` clause of the request-log rows `q` lists.
fn requests_where(q: &RequestQuery) -> (String, Vec<SqlValue>) {
    let (mut clause, values) = filters(
        cursor_range("seq", (q.after, q.order), Vec::new(), Vec::new()),
        &[("source", &q.source), ("reason", &q.reason)],
        q.at.conditions("at"),
    );
    if q.refused {
        clause.push_str(super::REFUSED_REQUESTS);
    }
    (clause, values)
}

pub(crate) fn event_from_row(r: &Row) -> rusqlite::Result<Event> {
    let payload: String = r.get(16)?;
    let payload = RawValue::from_string(payload).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(16, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Event {
        seq: r.get(0)?,
        id: r.get(1)?,
        source: r.get(2)?,
        provider: r.get(3)?,
        fields: EventFields {
            provider_event_id: r.get(4)?,
            event_type: r.get(5)?,
            provider_type: r.get(6)?,
            message_id: r.get(7)?,
            from: r.get(8)?,
            to: r.get(9)?,
            body: r.get(10)?,
            status: r.get(11)?,
            error_code: r.get(12)?,
            error_reason: r.get(13)?,
            occurred_at: r.get(14)?,
        },
        opt_out: r.get(17)?,
        received_at: r.get(15)?,
        payload,
    })
}

const OPTOUT_COLUMNS: &str = "number, opted_out, source, event_id, changed_at";

fn optout_from_row(r: &Row) -> rusqlite::Result<Optout> {
    Ok(Optout {
        number: r.get(0)?,
        opted_out: r.get(1)?,
        source: r.get(2)?,
        event_id: r.get(3)?,
        changed_at: r.get(4)?,
    })
}

fn request_from_row(r: &Row) -> rusqlite::Result<RequestRecord> {
    Ok(RequestRecord {
        seq: r.get(0)?,
        at: r.get(1)?,
        source: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        remote_addr: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        body_sha256: r.get(7)?,
        event_id: r.get(8)?,
        message: r.get(9)?,
    })
}

/// What SQLite's planner does with `sql`, one step per line.
#[cfg(test)]
pub(crate) fn query_plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("query plan");
    let steps: rusqlite::Result<Vec<String>> = stmt
        .query_map(params, |r| r.get::<_, String>(3))
        .and_then(|rows| rows.collect());
    steps.expect("query plan").join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads show events only up to the last synced one: a row committed
    /// but not yet fsynced could vanish in a power loss, and with it a
    /// cursor a client already holds.
    #[test]
    fn event_reads_stop_at_the_last_synced_event() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        migrate(&mut conn).expect("migrations");
        for n in 1..=3 {
            conn.execute(
                "INSERT INTO events (id, source, provider, dedupe_key, type, received_at, payload) \
                 VALUES (?1, 'ig', 'integify', ?1, 'message.delivered', '2026-12-02T00:00:00Z', '{}')",
                [format!("evt_{n}")],
            )
            .expect("insert");
        }
        let all = EventQuery {
            limit: 100,
            ..EventQuery::default()
        };
        let seqs = |through| -> Vec<i64> {
            let events = list_events(&conn, &all, through).expect("list");
            events.iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs(2), [1, 2]);
        assert_eq!(seqs(3), [1, 2, 3]);
    }

    /// A status lookup, with a source or without, searches the primary key:
    /// a scan would read every message ever reported.
    #[test]
    fn a_message_status_is_a_search_of_the_primary_key() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        migrate(&mut conn).expect("migrations");
        for source in [None, Some("ig")] {
            let plan = query_plan(&conn, MESSAGE_STATUS, rusqlite::params!["msg_1", source]);
            assert!(
                plan.contains("SEARCH messages USING PRIMARY KEY (message_id=?"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// Either way, a page of events or of the request log is a range of
    /// the rowid read in order: no sort, however many rows are stored; a
    /// time range bounds it through the id index.
    #[test]
    fn listings_read_the_rowid_in_order_either_way() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        migrate(&mut conn).expect("migrations");
        let at = |t| crate::event::parse_time(t).expect("time");
        let ranges = [
            TimeRange::default(),
            TimeRange {
                since: Some(at("2026-12-03T09:00:00Z")),
                until: None,
            },
            TimeRange {
                since: Some(at("2026-12-03T09:00:00Z")),
                until: Some(at("2026-12-03T10:00:00Z")),
            },
        ];
        for order in [Order::Asc, Order::Desc] {
            for source in [None, Some("ig".to_string())] {
                for received in ranges {
                    let q = EventQuery {
                        source: source.clone(),
                        limit: 50,
                        order,
                        received,
                        ..EventQuery::default()
                    };
                    let (sql, values) = events_sql(&q, i64::MAX);
                    let plan = query_plan(&conn, &sql, params_from_iter(values));
                    // Every bound in one range: SQLite takes the first it
                    // finds of each side and tests the rest on every row,
                    // from the start of the table or its end.
                    for side in ["seq >", "seq <"] {
                        assert!(sql.matches(side).count() <= 1, "{sql}");
                    }
                    let range = if order == Order::Asc || received.since.is_some() {
                        "(rowid>? AND rowid<?)"
                    } else {
                        "(rowid<?)"
                    };
                    assert!(
                        plan.contains(&format!("SEARCH events USING INTEGER PRIMARY KEY {range}")),
                        "{plan}"
                    );
                    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
                    // A time range's bounds on `seq` are found in the id index.
                    let ids = plan
                        .matches("SEARCH events USING COVERING INDEX events_id (id")
                        .count();
                    let bounds = usize::from(received.since.is_some())
                        + usize::from(received.until.is_some());
                    assert_eq!(ids, bounds, "{plan}");
                }
            }
        }
    }

    /// A database made before migration 3 keeps its message statuses and
    /// opt-outs when its tables are rebuilt WITHOUT ROWID (3) and its keys
    /// made to lead with the id (4).
    #[test]
    fn migrations_3_and_4_keep_statuses_and_optouts() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO messages VALUES ('ig', 'msg_1', 'delivered', 3, 'evt_1', 't1');
             INSERT INTO optouts VALUES ('+2207654321', 1, 'ig', 'evt_2', 't2');",
        )
        .expect("old rows");
        migrate(&mut conn).expect("migrations 3 and 4");
        let status: String = conn
            .query_row(
                "SELECT status FROM messages WHERE message_id = 'msg_1'",
                [],
                |r| r.get(0),
            )
            .expect("status kept");
        assert_eq!(status, "delivered");
        let opted_out: bool = conn
            .query_row(
                "SELECT opted_out FROM optouts WHERE number = '+2207654321'",
                [],
                |r| r.get(0),
            )
            .expect("opt-out kept");
        assert!(opted_out);
        let rowid_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('messages', 'optouts') AND sql NOT LIKE '%WITHOUT ROWID'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(rowid_tables, 0);
        let dedupe_columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_info('events_dedupe') ORDER BY seqno")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("index columns");
        assert_eq!(dedupe_columns, ["dedupe_key", "source"]);
    }
}
