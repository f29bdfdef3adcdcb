//! What waits between a request and a backend's writer: insert jobs with
//! their reply channel, and the bounded buffer of refused-request records.
//! Shared by every backend.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::event::{Inserted, NewEvent, RequestRecord};
use crate::log_throttle::Throttle;
use crate::store::StoreError;

/// Most refused-request records buffered between flushes (flood bound).
const LOG_BUFFER: usize = 10_000;

/// A job's answer, with the channel it goes back on.
pub type Reply = (
    oneshot::Sender<Result<Inserted, StoreError>>,
    Result<Inserted, StoreError>,
);

/// Hands a writer thread's answers to the async runtime a batch at a time.
/// Answering each request straight from the thread would wake the runtime
/// once per request (a syscall each, on a thread the runtime does not own);
/// one task on the runtime answers the whole batch with cheap local wake-ups.
pub struct Replies(tokio::sync::mpsc::UnboundedSender<Vec<Reply>>);

impl Replies {
    /// Starts the answering task on the current runtime.
    pub fn spawn() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Reply>>();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                answer(batch);
            }
        });
        Self(tx)
    }

    /// Answers every job of a batch; at once if the runtime is gone.
    pub fn send(&self, batch: Vec<Reply>) {
        if let Err(unsent) = self.0.send(batch) {
            answer(unsent.0);
        }
    }
}

pub(crate) fn answer(batch: Vec<Reply>) {
    for (reply, result) in batch {
        let _ = reply.send(result);
    }
}

pub struct InsertJob {
    pub event: NewEvent,
    /// The request's log row, on its one event or, for a batch, on the
    /// last of its events ([`crate::store::Store::insert_events`]).
    pub request: Option<RequestRecord>,
    pub reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The jobs that store `events` with `request`'s log row on the last, and
/// the answers to wait for, in order.
pub fn batch_jobs(
    events: Vec<NewEvent>,
    mut request: Option<RequestRecord>,
) -> (
    Vec<InsertJob>,
    Vec<oneshot::Receiver<Result<Inserted, StoreError>>>,
) {
    let count = events.len();
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let (reply, answer) = oneshot::channel();
            let request = if i + 1 == count { request.take() } else { None };
            let job = InsertJob {
                event,
                request,
                reply,
            };
            (job, answer)
        })
        .unzip()
}

/// Every answer, in order; the first failure if any failed.
pub async fn answers(
    answers: Vec<oneshot::Receiver<Result<Inserted, StoreError>>>,
) -> Result<Vec<Inserted>, StoreError> {
    let mut inserted = Vec::with_capacity(answers.len());
    for answer in answers {
        inserted.push(answer.await.map_err(|_| StoreError::Closed)??);
    }
    Ok(inserted)
}

/// Refused-request records waiting for the writer. Bounded: past
/// `LOG_BUFFER`, records are dropped and counted instead of using memory.
pub struct LogBuffer {
    queue: Mutex<VecDeque<RequestRecord>>,
    /// Records dropped since the last warning, reported in the server log.
    dropped: AtomicU64,
    /// Records dropped since start, for `/metrics`.
    dropped_total: AtomicU64,
}

impl LogBuffer {
    pub fn push(&self, record: RequestRecord) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= LOG_BUFFER {
            self.count_dropped(1);
        } else {
            queue.push_back(record);
        }
    }

    /// Everything buffered, oldest first; warns about what was dropped (at
    /// most once per interval: drops go on for as long as a flood does).
    pub fn take(&self) -> Vec<RequestRecord> {
        if self.dropped.load(Ordering::Relaxed) > 0 && DROPS_LOGGED.check().is_some() {
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            tracing::warn!(
                dropped,
                "request log: dropped refused-request records under load"
            );
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.drain(..).collect()
    }

    /// Records dropped since start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.dropped_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Puts back, ahead of newer ones, the records of a write that failed,
    /// so an outage shows in the log once storage is back. What no longer
    /// fits is dropped and counted.
    pub fn restore(&self, records: Vec<RequestRecord>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let room = LOG_BUFFER.saturating_sub(queue.len());
        let dropped = records.len().saturating_sub(room);
        self.count_dropped(dropped as u64);
        for record in records.into_iter().take(room).rev() {
            queue.push_front(record);
        }
    }
}

/// Drops repeat for as long as a flood lasts: one line per interval.
static DROPS_LOGGED: Throttle = Throttle::new(crate::log_throttle::EVERY);

impl Default for LogBuffer {
    fn default() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reason: &str) -> RequestRecord {
        RequestRecord {
            reason: reason.into(),
            ..RequestRecord::default()
        }
    }

    fn reasons(records: &[RequestRecord]) -> Vec<&str> {
        records.iter().map(|r| r.reason.as_str()).collect()
    }

    #[test]
    fn restored_records_go_back_ahead_of_newer_ones_within_the_bound() {
        let logs = LogBuffer::default();
        logs.push(record("a"));
        logs.push(record("b"));
        let failed = logs.take();
        logs.push(record("c"));
        logs.restore(failed);
        assert_eq!(reasons(&logs.take()), ["a", "b", "c"]);

        for _ in 0..LOG_BUFFER - 1 {
            logs.push(record("new"));
        }
        logs.restore(vec![record("old1"), record("old2")]);
        assert_eq!(logs.dropped.load(Ordering::Relaxed), 1);
        let all = logs.take();
        assert_eq!(all.len(), LOG_BUFFER);
        assert_eq!(all[0].reason, "old1");
    }

    /// The count `/metrics` shows keeps every drop since start; the warning's
    /// count starts over each time it is logged.
    #[test]
    fn drops_are_counted_since_start() {
        let logs = LogBuffer::default();
        for _ in 0..LOG_BUFFER + 3 {
            logs.push(record("r"));
        }
        assert_eq!(logs.dropped_total(), 3);
        let taken = logs.take();
        logs.restore(taken);
        logs.push(record("r"));
        assert_eq!(logs.dropped_total(), 4);
    }
}
