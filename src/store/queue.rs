//! What waits between a request and a backend's writer: insert jobs with
//! their reply channel, and the bounded buffer of refused-request records.
//! Shared by every backend.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::event::{Inserted, NewEvent, RequestRecord};
use crate::store::StoreError;

/// Most refused-request records buffered between flushes (flood bound).
const LOG_BUFFER: usize = 10_000;

pub struct InsertJob {
    pub event: NewEvent,
    pub request: RequestRecord,
    pub reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// Refused-request records waiting for the writer. Bounded: past
/// `LOG_BUFFER`, records are dropped and counted instead of using memory.
pub struct LogBuffer {
    queue: Mutex<VecDeque<RequestRecord>>,
    /// Records dropped since the last warning, reported in the server log.
    dropped: AtomicU64,
}

impl LogBuffer {
    pub fn push(&self, record: RequestRecord) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= LOG_BUFFER {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            queue.push_back(record);
        }
    }

    /// Everything buffered, oldest first; warns once about what was dropped.
    pub fn take(&self) -> Vec<RequestRecord> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "request log: dropped refused-request records under load"
            );
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.drain(..).collect()
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
        }
    }
}
