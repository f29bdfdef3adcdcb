//! The SQLite backend's durability point: the thread that fsyncs the WAL
//! file and only then releases the answers of what the writer committed.
//!
//! The writer commits with `synchronous=NORMAL`: a commit has written every
//! frame of its transaction into the WAL file (SQLite's commit returns only
//! then) but has not synced it. It hands the batch's answers here and goes on
//! to the next batch; this thread syncs the WAL (one `fdatasync` for every
//! batch committed since the last one) and answers. An answer released after
//! a sync that started after its commit is as durable as `synchronous=FULL`
//! would have made it, while the writer's next batch overlaps this sync
//! instead of waiting behind it (the core sat idle during each fsync).
//! Checkpoints keep SQLite's own syncs: NORMAL syncs the WAL before copying
//! it into the database and the database after, before the WAL is reused;
//! the checkpoint thread also syncs the database after each of its
//! partial checkpoints (`checkpointer`), and a failure there marks the
//! store failed as below.
//!
//! Every answer of the writer thread passes here (webhook acks, duplicates,
//! outbox claims and updates, API writes): none leaves before its sync. A
//! failed sync fails its answers and marks the store failed for good: after
//! a failed fsync the kernel may have dropped the unsynced pages, so nothing
//! more is acknowledged until a restart recovers from what is on disk.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::store::StoreError;
use crate::store::queue::{Replies, Reply};

/// A write task's answer: sent with `Ok(())` once its commit is synced, or
/// with the sync's error.
pub type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// What one round of the writer committed, to be released once synced.
#[derive(Default)]
pub struct Round {
    pub replies: Vec<Reply>,
    pub answers: Vec<Answer>,
    /// The `seq` of the round's last new event, if it stored any.
    pub events_through: Option<i64>,
}

impl Round {
    fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.answers.is_empty()
    }
}

/// What the sync thread has made durable, shared with the store's readers.
pub struct Durable {
    /// Set for good by the first sync that fails.
    failed: AtomicBool,
    /// Every event up to this `seq` is synced: reads show no later one, so
    /// nothing read through smshook (the API, a live stream's cursor) can
    /// vanish in a power loss.
    events_through: AtomicI64,
}

impl Durable {
    /// Starts at the last event on disk when the store opens.
    pub fn new(events_through: i64) -> Self {
        Self {
            failed: AtomicBool::new(false),
            events_through: AtomicI64::new(events_through),
        }
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Marks the store failed for good (a sync failed: the kernel may have
    /// dropped pages), logging `what` failed and why.
    pub fn fail(&self, what: &str, error: &io::Error) {
        self.failed.store(true, Ordering::Release);
        tracing::error!(
            %error,
            "{what} failed: nothing more is acknowledged; restart smshook once the disk is sound"
        );
    }

    pub fn events_through(&self) -> i64 {
        self.events_through.load(Ordering::Acquire)
    }
}

/// Most committed rounds waiting for a sync. A disk that stalls stops the
/// writer here, so the writer's queue fills and new webhooks get 503 at
/// once, instead of the writer committing ever more into memory.
const ROUNDS_WAITING: usize = 64;

pub struct Syncer {
    rounds: SyncSender<Round>,
    thread: JoinHandle<()>,
}

impl Syncer {
    /// Starts the thread for the database whose WAL file is `wal`; it
    /// records in `durable` what it synced.
    pub fn spawn(wal: PathBuf, replies: Replies, durable: Arc<Durable>) -> io::Result<Self> {
        let (rounds, rx) = sync_channel(ROUNDS_WAITING);
        let wal = WalFile::new(wal);
        let thread = std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || run(&rx, wal, &replies, &durable))?;
        Ok(Self { rounds, thread })
    }

    pub fn send(&self, round: Round) {
        if round.is_empty() {
            return;
        }
        if let Err(unsent) = self.rounds.send(round) {
            // The thread is gone (it only stops on `stop`): nothing synced.
            release(unsent.0, &Err(not_synced("the sync thread stopped")), None);
        }
    }

    /// Syncs and answers every round sent so far, then stops the thread.
    pub fn stop(self) {
        drop(self.rounds);
        if self.thread.join().is_err() {
            tracing::error!("the SQLite sync thread panicked");
        }
    }
}

fn run(rounds: &Receiver<Round>, mut wal: WalFile, replies: &Replies, durable: &Durable) {
    while let Ok(first) = rounds.recv() {
        let mut waiting = vec![first];
        waiting.extend(rounds.try_iter());
        let synced = sync_unless_failed(&mut wal, durable);
        if synced.is_ok() {
            let through = waiting.iter().filter_map(|r| r.events_through).max();
            if let Some(seq) = through {
                durable.events_through.fetch_max(seq, Ordering::AcqRel);
            }
        }
        for round in waiting {
            release(round, &synced, Some(replies));
        }
    }
}

/// Syncs the WAL, or says why not: the reason every answer then carries.
fn sync_unless_failed(wal: &mut WalFile, durable: &Durable) -> Result<(), String> {
    if durable.failed() {
        return Err(not_synced("an earlier fsync failed"));
    }
    wal.sync().map_err(|e| {
        durable.fail("fsync of the SQLite WAL", &e);
        not_synced(&e.to_string())
    })
}

/// The error every write answers with once a sync has failed.
pub fn sync_failed(why: &str) -> StoreError {
    StoreError::Unavailable(not_synced(why))
}

/// Why nothing is acknowledged: the text of [`sync_failed`]'s error.
pub fn not_synced(why: &str) -> String {
    format!("SQLite WAL not synced ({why}); restart smshook")
}

/// Answers a round: as committed if `synced`, else every success turns into
/// a 503 with the sync's reason. `replies` hands webhook answers to the
/// runtime a batch at a time; without it (no sync thread), they are sent
/// from here.
fn release(round: Round, synced: &Result<(), String>, replies: Option<&Replies>) {
    let mut batch = round.replies;
    if let Err(why) = synced {
        for (_, result) in batch.iter_mut().filter(|(_, r)| r.is_ok()) {
            *result = Err(StoreError::Unavailable(why.clone()));
        }
    }
    match replies {
        Some(replies) => replies.send(batch),
        None => crate::store::queue::answer(batch),
    }
    for answer in round.answers {
        answer(synced.clone().map_err(StoreError::Unavailable));
    }
}

/// The WAL file, opened on first use (after the writer's first commit, when
/// it exists). The first sync also syncs its directory, so that a WAL file
/// SQLite created at start-up is itself found after a power loss. As in
/// SQLite's own directory sync, that one is best effort: some file systems
/// refuse to open or sync a directory, and a store that refused every
/// webhook for it would be worse (a warning says so).
struct WalFile {
    path: PathBuf,
    file: Option<File>,
}

impl WalFile {
    fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            return file.sync_data();
        }
        let file = File::open(&self.path)?;
        file.sync_data()?;
        if let Err(e) = sync_dir(&self.path) {
            tracing::warn!(error = %e, "could not sync the SQLite WAL's directory");
        }
        self.file = Some(file);
        Ok(())
    }
}

/// Syncs the directory holding `path`, so that a file created there is
/// found after a power loss.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Inserted;
    use std::sync::mpsc;
    use tokio::sync::oneshot;

    fn committed() -> (Reply, oneshot::Receiver<Result<Inserted, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        let inserted = Inserted {
            event_id: "ev_1".into(),
            duplicate: false,
        };
        ((tx, Ok(inserted)), rx)
    }

    /// Releases a round of one webhook answer and one task answer; returns
    /// what each was answered.
    fn released(
        synced: &Result<(), String>,
    ) -> (Result<Inserted, StoreError>, Result<(), StoreError>) {
        let (reply, mut acked) = committed();
        let (tx, answered) = mpsc::channel();
        let round = Round {
            replies: vec![reply],
            answers: vec![Box::new(move |result| tx.send(result).expect("send"))],
            events_through: None,
        };
        release(round, synced, None);
        let acked = acked.try_recv().expect("answered");
        (acked, answered.try_recv().expect("answered"))
    }

    #[test]
    fn a_synced_round_is_answered_as_committed() {
        let (acked, answered) = released(&Ok(()));
        assert_eq!(acked.expect("ok").event_id, "ev_1");
        assert!(answered.is_ok());
    }

    #[test]
    fn a_failed_sync_turns_every_success_into_a_503_and_sticks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path();
        let durable = Durable::new(0);
        // No WAL file where the syncer looks: the sync fails.
        let mut wal = WalFile::new(dir.join("missing").join("db-wal"));
        let synced = sync_unless_failed(&mut wal, &durable);
        assert!(synced.is_err());
        assert!(durable.failed(), "a failed sync marks the store");

        let (acked, answered) = released(&synced);
        assert!(matches!(acked, Err(StoreError::Unavailable(why)) if why.contains("not synced")));
        assert!(answered.is_err());

        // A later sync of a WAL that exists still fails: the store stays failed.
        let mut present = WalFile::new(dir.join("db-wal"));
        std::fs::write(dir.join("db-wal"), b"frames").expect("write");
        assert!(sync_unless_failed(&mut present, &durable).is_err());
    }

    #[test]
    fn the_wal_is_opened_once_and_its_directory_can_be_synced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path();
        std::fs::write(dir.join("db-wal"), b"frames").expect("write");
        sync_dir(&dir.join("db-wal")).expect("a directory syncs");
        assert!(sync_dir(&dir.join("gone").join("db-wal")).is_err());
        let mut wal = WalFile::new(dir.join("db-wal"));
        wal.sync().expect("first sync");
        assert!(wal.file.is_some(), "the file stays open");
        std::fs::remove_file(dir.join("db-wal")).expect("remove");
        wal.sync().expect("later syncs use the open file");
    }
}
