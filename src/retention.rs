//! Event retention (`retention` in the config): a task of the server that,
//! once a minute, deletes the events received longer ago than the
//! configured age, a short batch at a time so webhooks' commits go between
//! batches, and more slowly while webhooks flood in. What a batch deletes,
//! and what it keeps, is the store's (`store::retention`).
//!
//! Measured (README, "Retention"): batches of 500 with 20 ms pauses took
//! about a quarter of the writer's time while deleting a backlog during a
//! flood, and the flood lost 13% of its rate; 200 to a batch, pausing twice
//! each batch's own time and 250 ms under a flood, keeps that to 1-4%.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::dispatch::Pressure;
use crate::store::{Store, StoreError};

/// Events looked at per batch: one short write transaction each (a few
/// milliseconds of the writer's time on SQLite).
const BATCH: u32 = 200;
/// Pause after a batch, in multiples of the time it took: deleting takes at
/// most a third of the store's time.
const PAUSE_FACTOR: u32 = 2;
/// Shortest pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(10);
/// Pause between two batches while webhooks flood in.
const BUSY_PAUSE: Duration = Duration::from_millis(250);
/// Between passes.
const EVERY: Duration = Duration::from_secs(60);
/// A pass starts from the first event again this often, to look again at
/// the events kept for a delivery that was pending.
const RESWEEP: Duration = Duration::from_secs(3600);

/// What the task works with besides the store.
pub struct Retention {
    /// Events older than this are deleted.
    pub keep: Duration,
    /// Webhook activity, which deletion yields to.
    pub pressure: Arc<Pressure>,
    /// Counts the events deleted (`/metrics`).
    pub deleted: Arc<AtomicU64>,
}

/// Runs passes until `stopping` turns true.
pub async fn run(store: Arc<dyn Store>, r: Retention, mut stopping: watch::Receiver<bool>) {
    let mut cursor = 0;
    let mut swept = Instant::now();
    loop {
        if swept.elapsed() >= RESWEEP {
            (cursor, swept) = (0, Instant::now());
        }
        let cutoff = crate::event::format_time(chrono::Utc::now() - r.keep);
        match pass(&*store, &cutoff, &mut cursor, &r, &stopping).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, received_before = %cutoff, "retention: old events deleted")
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: could not delete old events; trying again in a minute")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass from `cursor`, which it moves on; returns the events deleted.
async fn pass(
    store: &dyn Store,
    cutoff: &str,
    cursor: &mut i64,
    r: &Retention,
    stopping: &watch::Receiver<bool>,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let started = Instant::now();
        let batch = store.prune(*cursor, cutoff, BATCH).await?;
        deleted += batch.deleted;
        r.deleted.fetch_add(batch.deleted, Ordering::Relaxed);
        *cursor = batch.through;
        if batch.done || *stopping.borrow() {
            return Ok(deleted);
        }
        tokio::time::sleep(pause(started.elapsed(), r.pressure.busy())).await;
    }
}

/// How long to wait after a batch that took `took`.
fn pause(took: Duration, busy: bool) -> Duration {
    if busy {
        BUSY_PAUSE
    } else {
        (took * PAUSE_FACTOR).max(MIN_PAUSE)
    }
}
