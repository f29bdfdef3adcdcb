//! The SQLite writer thread and its group commit: every request waiting when
//! the thread is free goes into one transaction, so one fsync acknowledges a
//! whole batch instead of one each. The fsync itself, and the answers, are
//! the sync thread's (see `syncer`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use crate::event::{Inserted, NewEvent, RequestRecord};
use crate::log_throttle::Throttle;
use crate::store::StoreError;
use crate::store::queue::{InsertJob, LogBuffer, Reply};

use super::checkpointer::Checkpointer;
use super::syncer::{Answer, Durable, Round, Syncer, not_synced};

/// Most jobs in one transaction; bounds a batch's latency and memory.
const MAX_BATCH: usize = 2048;
/// How long the writer waits for work before flushing refused-request logs.
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// A batch at least this large means requests are arriving faster than one
/// commit takes: the next batch is gathered after letting them queue.
const BUSY_BATCH: usize = 16;
/// A failing disk fails every batch: one log line per interval says so.
static WRITE_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);

pub enum Job {
    Insert(Box<InsertJob>),
    /// Other writes (the outbox's claims and attempt records): run on the
    /// writer's connection, after the batch gathered with them.
    Run(Task),
    Shutdown,
}

/// A write task: runs on the writer's connection and returns its answer,
/// which the sync thread sends once the task's commit is durable.
pub type Task = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;

pub struct Writer {
    pub conn: Connection,
    pub jobs: Receiver<Job>,
    pub logs: Arc<LogBuffer>,
    /// Where a committed round's answers go, to be released once synced.
    pub syncer: Syncer,
    /// Copies the WAL into the database, on its own thread or inline.
    pub checkpointer: Checkpointer,
    /// Marked failed by the sync thread when an fsync fails: no webhook is
    /// written after that (each is answered 503).
    pub durable: Arc<Durable>,
    pub max_rows: u64,
    /// Request rows written since the log was last pruned.
    pub since_prune: u64,
    /// Size of the last batch: the load signal for [`Writer::gather`].
    pub last_batch: usize,
    /// The server's store: it checkpoints and truncates the WAL at
    /// shutdown. A command's (`smshook events` beside a running server)
    /// must not: a TRUNCATE checkpoint holds off the server's writer while
    /// it copies the whole WAL (five `smshook events` during a steady
    /// 10,000/s raised its p99 from 14 to 100 ms).
    pub server: bool,
}

impl Writer {
    /// Runs the writer on a thread of its own.
    pub fn spawn(self) -> anyhow::Result<std::thread::JoinHandle<()>> {
        use anyhow::Context;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || self.run())
            .context("starting the SQLite writer thread")
    }

    fn run(mut self) {
        let mut stopping = false;
        // One Vec for every batch: it keeps the capacity of the largest so
        // far, where a new one per batch grew a doubling at a time (jobs are
        // about 600 bytes) and was freed on another thread.
        let mut batch = Vec::new();
        while !stopping {
            let mut tasks = Vec::new();
            match self.jobs.recv_timeout(IDLE_FLUSH) {
                Ok(Job::Insert(job)) => {
                    batch.push(*job);
                    self.gather(&mut batch, &mut tasks, &mut stopping);
                }
                Ok(Job::Run(task)) => {
                    tasks.push(task);
                    self.gather(&mut batch, &mut tasks, &mut stopping);
                }
                Ok(Job::Shutdown) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let mut round = Round::default();
            self.flush(&mut batch, &mut round);
            for task in tasks {
                round.answers.push(task(&mut self.conn));
            }
            self.syncer.send(round);
            // After the hand-off, so the round's answers go out while an
            // inline checkpoint runs.
            if !self.durable.failed() {
                self.checkpointer.after_commit(&self.conn);
            }
        }
        self.finish();
    }

    /// Adds to `batch` every job already waiting. Under load, the first job
    /// wakes this thread while the HTTP side still has more requests ready to
    /// queue; on a shared core, waking us took the CPU from it. Yielding once
    /// lets them queue, so one commit and one fsync cover them too (batches
    /// about twice as large, +6% events/s on one core when added; within
    /// noise in a later re-check, docs/performance.md). After a small batch there
    /// is no yield: on a quiet server a lone request is committed at once
    /// (the first one after a burst waits one yield).
    fn gather(&mut self, batch: &mut Vec<InsertJob>, tasks: &mut Vec<Task>, stopping: &mut bool) {
        if self.last_batch >= BUSY_BATCH {
            std::thread::yield_now();
        }
        while batch.len() < MAX_BATCH {
            match self.jobs.try_recv() {
                Ok(Job::Insert(job)) => batch.push(*job),
                Ok(Job::Run(task)) => tasks.push(task),
                Ok(Job::Shutdown) => {
                    *stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        self.last_batch = batch.len();
    }

    /// Commits `batch` (leaving it empty) and the refused-request logs into
    /// `round`'s answers. After a failed sync, nothing is written.
    fn flush(&mut self, batch: &mut Vec<InsertJob>, round: &mut Round) {
        if self.durable.failed() {
            round.replies = failed(batch.drain(..), &not_synced("an earlier fsync failed"));
            return;
        }
        let logs = self.logs.take();
        if batch.is_empty() && logs.is_empty() {
            return;
        }
        let prune = self.prune_due(batch.len() + logs.len());
        let written = write_batch(&mut self.conn, batch, &logs, prune.then_some(self.max_rows));
        round.replies = match written {
            Ok((results, events_through)) => {
                round.events_through = events_through;
                stored(batch.drain(..), results)
            }
            Err(e) => {
                // The refusals go back to the buffer, so the outage shows in
                // the request log once the disk takes writes again.
                self.logs.restore(logs);
                failed(batch.drain(..), &e)
            }
        };
    }

    fn prune_due(&mut self, rows: usize) -> bool {
        self.since_prune += rows as u64;
        let due = self.since_prune >= (self.max_rows / 10).clamp(1, 1000);
        if due {
            self.since_prune = 0;
        }
        due
    }

    fn finish(self) {
        self.syncer.stop();
        self.checkpointer.stop();
        // After a failed sync the database file may lack pages the kernel
        // dropped, which only the WAL still holds: keep it whole.
        if self.durable.failed() {
            tracing::warn!("SQLite WAL kept at shutdown after a failed sync");
        } else if self.server
            && let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        {
            tracing::warn!(error = %e, "SQLite checkpoint at shutdown failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "SQLite close failed");
        }
    }
}

/// Answers for a committed batch.
fn stored(batch: impl Iterator<Item = InsertJob>, results: Vec<Inserted>) -> Vec<Reply> {
    if let Some(failures) = WRITE_FAILED.recovered() {
        tracing::info!(failures, "SQLite writes succeed again");
    }
    batch
        .zip(results)
        .map(|(job, result)| (job.reply, Ok(result)))
        .collect()
}

/// Answers for a batch that could not be written: 503s, never a 200.
fn failed(
    batch: impl ExactSizeIterator<Item = InsertJob>,
    e: &impl std::fmt::Display,
) -> Vec<Reply> {
    if batch.len() == 0 {
        return Vec::new();
    }
    if let Some(skipped) = WRITE_FAILED.check() {
        tracing::error!(error = %e, events = batch.len(), skipped, "SQLite write failed; answering 503");
    }
    let error = e.to_string();
    batch
        .map(|job| (job.reply, Err(StoreError::Unavailable(error.clone()))))
        .collect()
}

const INSERT_EVENT: &str = "INSERT INTO events (id, source, provider, dedupe_key, provider_event_id, \
    type, provider_type, message_id, from_number, to_number, body, status, error_code, error_reason, \
    occurred_at, received_at, payload, opt_out) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
    ON CONFLICT (dedupe_key, source) DO NOTHING";
const UPSERT_MESSAGE: &str = "INSERT INTO messages (source, message_id, status, rank, event_id, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (message_id, source) DO UPDATE SET status = excluded.status, \
    rank = excluded.rank, event_id = excluded.event_id, updated_at = excluded.updated_at \
    WHERE excluded.rank > messages.rank";
const UPSERT_OPTOUT: &str = "INSERT INTO optouts (number, opted_out, source, event_id, changed_at) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (number) DO UPDATE SET opted_out = excluded.opted_out, \
    source = excluded.source, event_id = excluded.event_id, changed_at = excluded.changed_at \
    WHERE excluded.changed_at >= optouts.changed_at";
const INSERT_DELIVERY: &str = "INSERT INTO deliveries (event_id, destination, next_attempt_at, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?4)";
const FIND_EVENT: &str = "SELECT id FROM events WHERE source = ?1 AND dedupe_key = ?2";
const INSERT_REQUEST: &str = "INSERT INTO requests (at, source, status, reason, remote_addr, size, \
    body_sha256, event_id, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const PRUNE_REQUESTS: &str =
    "DELETE FROM requests WHERE seq <= (SELECT MAX(seq) FROM requests) - ?1";

/// One transaction: the batch's events with their request rows, the buffered
/// refused-request rows, and a prune of the request log when due. Returns
/// the answers and the `seq` of the last new event, if any.
fn write_batch(
    conn: &mut Connection,
    batch: &mut [InsertJob],
    logs: &[RequestRecord],
    prune_to: Option<u64>,
) -> rusqlite::Result<(Vec<Inserted>, Option<i64>)> {
    let tx = conn.transaction()?;
    let results = write_rows(&tx, batch, logs)?;
    if let Some(max_rows) = prune_to {
        tx.execute(PRUNE_REQUESTS, params![max_rows as i64])?;
    }
    tx.commit()?;
    Ok(results)
}

/// The batch's statements, looked up in the statement cache once per batch
/// rather than once per row (each lookup hashes the SQL text).
struct Statements<'t> {
    insert: CachedStatement<'t>,
    find: CachedStatement<'t>,
    log: CachedStatement<'t>,
    message: CachedStatement<'t>,
    optout: CachedStatement<'t>,
    delivery: CachedStatement<'t>,
}

impl<'t> Statements<'t> {
    fn prepare(tx: &'t Transaction) -> rusqlite::Result<Self> {
        Ok(Self {
            insert: tx.prepare_cached(INSERT_EVENT)?,
            find: tx.prepare_cached(FIND_EVENT)?,
            log: tx.prepare_cached(INSERT_REQUEST)?,
            message: tx.prepare_cached(UPSERT_MESSAGE)?,
            optout: tx.prepare_cached(UPSERT_OPTOUT)?,
            delivery: tx.prepare_cached(INSERT_DELIVERY)?,
        })
    }
}

fn write_rows(
    tx: &Transaction,
    batch: &mut [InsertJob],
    logs: &[RequestRecord],
) -> rusqlite::Result<(Vec<Inserted>, Option<i64>)> {
    let mut st = Statements::prepare(tx)?;
    // Refusals buffered before this batch was taken arrived before its events.
    for record in logs {
        insert_request(&mut st.log, record)?;
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut last_seq = None;
    for job in batch {
        let result = insert_event(&mut st, &job.event)?;
        if !result.duplicate {
            last_seq = Some(tx.last_insert_rowid());
            record_effects(&mut st, &job.event)?;
        }
        if let Some(request) = &mut job.request {
            if result.duplicate {
                request.reason = "duplicate".into();
            }
            request.event_id = Some(result.event_id.clone());
            insert_request(&mut st.log, request)?;
        }
        results.push(result);
    }
    Ok((results, last_seq))
}

fn insert_event(st: &mut Statements, e: &NewEvent) -> rusqlite::Result<Inserted> {
    let f = &e.fields;
    let changed = st.insert.execute(params![
        e.id,
        e.source,
        e.provider,
        e.dedupe_key,
        f.provider_event_id,
        f.event_type,
        f.provider_type,
        f.message_id,
        f.from,
        f.to,
        f.body,
        f.status,
        f.error_code,
        f.error_reason,
        f.occurred_at,
        e.received_at,
        e.payload,
        e.opt_out,
    ])?;
    if changed == 1 {
        return Ok(Inserted {
            event_id: e.id.clone(),
            duplicate: false,
        });
    }
    let existing: Option<String> = st
        .find
        .query_row(params![e.source, e.dedupe_key], |r| r.get(0))
        .optional()?;
    let event_id = existing.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Inserted {
        event_id,
        duplicate: true,
    })
}

/// What a new event changes besides its own row: its message's status, its
/// number's consent, and its pending deliveries.
fn record_effects(st: &mut Statements, e: &NewEvent) -> rusqlite::Result<()> {
    let f = &e.fields;
    if let (Some((status, rank)), Some(message_id)) = (crate::message::status_of(f), &f.message_id)
    {
        st.message.execute(params![
            e.source,
            message_id,
            status,
            rank,
            e.id,
            e.received_at
        ])?;
    }
    if let (Some(opted_out), Some(number)) = (e.opt_out, &f.from) {
        let changed_at = f.occurred_at.as_ref().unwrap_or(&e.received_at);
        st.optout
            .execute(params![number, opted_out, e.source, e.id, changed_at])?;
    }
    let now = crate::event::unix_millis();
    for destination in &e.destinations {
        st.delivery
            .execute(params![e.id, destination, now, e.received_at])?;
    }
    Ok(())
}

fn insert_request(log: &mut CachedStatement, r: &RequestRecord) -> rusqlite::Result<()> {
    log.execute(params![
        r.at,
        r.source,
        r.status,
        r.reason,
        r.remote_addr,
        r.size as i64,
        r.body_sha256,
        r.event_id,
        r.message,
    ])?;
    Ok(())
}
