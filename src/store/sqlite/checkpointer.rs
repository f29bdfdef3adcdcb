//! WAL checkpoints, off the writer thread: a thread of its own copies the
//! WAL into the database, so the copy no longer stalls every request that
//! arrives meanwhile.
//!
//! SQLite's own automatic checkpoint runs inside the commit that crosses the
//! limit: the writer, and every webhook waiting on it, stopped for the whole
//! copy (31-48 ms here, every ~18,000 events); at a steady 10,000/s every
//! request arriving during the stall waited for it, 2% of them. So, after
//! each commit:
//!
//! - WAL under [`Limits::start`]: nothing to do;
//! - WAL past [`Limits::max`] (the thread fell behind): the writer
//!   checkpoints inline, as SQLite did;
//! - otherwise the checkpoint thread copies the WAL (a PASSIVE checkpoint on
//!   its own connection; the writer keeps committing meanwhile). It cannot
//!   finish the log while commits keep coming, so once it has copied all but
//!   [`Limits::finish`] the writer copies that rest itself, between two of its
//!   commits (12-23 ms here, mostly the fsyncs of the WAL and the database);
//!   its next transaction then starts the WAL from the beginning again.
//!
//! The thread runs at the lowest priority (nice 19). On a core the server
//! saturates, a thread of normal priority took its share of the CPU from the
//! requests (-5% events/s under a flood, and a higher p99), so until the
//! tenth session the writer copied inline whenever the process was over 85%
//! busy. At nice 19 the thread gets the time the core would idle, while
//! every request in flight waits for a sync (about 10% under a flood), and
//! gives the core back as soon as a request is ready: over fourteen
//! interleaved flood pairs against that rule, events/s within noise (median
//! +1.2%), p99 lower in every pair (4.1-4.8 ms against 4.9-7.0 ms), the
//! worst latency 59-99 ms against 87-252 (docs/performance.md, "Latency
//! at a steady rate").
//!
//! After each of its checkpoints the thread syncs the database file itself.
//! SQLite syncs it only in the checkpoint that completes the log, so every
//! page the thread had copied (some 3,700 a log here) was written back by
//! the writer's finishing checkpoint: its `fsync` took 9-21 ms, while every
//! request arriving waited (about 1% of them at a steady 10,000/s: the
//! p99). Synced by the thread as it goes, the writer's `fsync` has only the
//! pages it copied itself.
//!
//! Only one checkpoint runs at a time: one started while another runs
//! returns `SQLITE_BUSY` at once, and is simply retried after a later commit.

use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
#[cfg(test)]
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use super::syncer::Durable;
use crate::log_throttle::Throttle;

/// When to checkpoint, in WAL frames (pages).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// WAL size at which a checkpoint starts.
    pub start: i32,
    /// WAL size at which the writer checkpoints inline whatever its load.
    pub max: i32,
    /// Frames left uncopied that the writer copies itself to close the log.
    pub finish: i32,
}

impl Limits {
    /// A checkpoint every ~120 MB of WAL: pages many batches rewrite are
    /// copied into the database once per checkpoint, so rarer checkpoints
    /// copy less (docs/performance.md, "Where the time goes"). The thread
    /// left 200-1,700 frames for the writer at 14,000 events/s; more than
    /// 2,000 left means commits outran it, and it goes round again.
    pub const DEFAULT: Self = Self {
        start: START_FRAMES,
        max: 3 * START_FRAMES,
        finish: 2_000,
    };
}

/// See [`Limits::DEFAULT`].
pub const START_FRAMES: i32 = 30_000;
/// A failing checkpoint repeats after every commit: one line per interval.
static CHECKPOINT_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);

/// The checkpoint thread and what it shares with the writer.
pub struct Checkpointer {
    wake: SyncSender<()>,
    state: Arc<State>,
    thread: JoinHandle<()>,
    /// WAL frames after the writer's last commit, set by its WAL hook.
    frames: Arc<AtomicI32>,
    /// Frames at the previous commit: fewer now means the log restarted.
    last_frames: i32,
    limits: Limits,
}

#[derive(Default)]
struct State {
    /// A checkpoint has been asked for and not finished.
    running: AtomicBool,
    /// Frames of the current log copied into the database so far.
    copied: AtomicI32,
    /// Checkpoints the thread has run.
    thread_runs: AtomicU32,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own to `path`, and hooks
    /// `writer` so that each of its commits reports the WAL's size.
    pub fn spawn(
        path: &Path,
        writer: &mut Connection,
        limits: Limits,
        durable: Arc<Durable>,
    ) -> anyhow::Result<Self> {
        let conn = super::connect(path)?;
        let database = std::fs::OpenOptions::new().write(true).open(path)?;
        let frames = Arc::new(AtomicI32::new(0));
        let hooked = frames.clone();
        // Replaces SQLite's automatic checkpoint, which is itself a WAL hook.
        writer.wal_hook(Some(move |_: &mut Wal, n: c_int| {
            hooked.store(n, Ordering::Relaxed);
            Ok(())
        }))?;
        let (wake, rx) = sync_channel(1);
        let state = Arc::new(State::default());
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&rx, &conn, &database, &shared, &durable))?;
        Ok(Self {
            wake,
            state,
            thread,
            frames,
            last_frames: 0,
            limits,
        })
    }

    /// After each commit of the writer: checkpoints as the module says.
    pub fn after_commit(&mut self, writer: &Connection) {
        let frames = self.frames.load(Ordering::Relaxed);
        if frames < self.last_frames {
            self.state.copied.store(0, Ordering::Relaxed);
        }
        self.last_frames = frames;
        let limits = self.limits;
        if frames < limits.start {
            return;
        }
        let uncopied = frames - self.state.copied.load(Ordering::Relaxed);
        let idle = !self.state.running.load(Ordering::Acquire);
        if frames >= limits.max || (idle && uncopied <= limits.finish) {
            if idle {
                checkpoint(writer, &self.state);
            }
        } else if idle {
            self.state.running.store(true, Ordering::Release);
            if let Err(TrySendError::Disconnected(())) = self.wake.try_send(()) {
                self.state.running.store(false, Ordering::Release);
            }
        }
    }

    /// Lets a running checkpoint finish, then stops the thread.
    pub fn stop(self) {
        drop(self.wake);
        if self.thread.join().is_err() {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}

fn run(
    wake: &Receiver<()>,
    conn: &Connection,
    database: &std::fs::File,
    state: &State,
    durable: &Durable,
) {
    lowest_priority();
    while wake.recv().is_ok() {
        checkpoint(conn, state);
        // What this checkpoint copied, so the writer's need not (module doc).
        // A failure is the disk's, as a failed WAL sync is: the store is
        // marked failed, so nothing more is acknowledged or checkpointed.
        if !durable.failed()
            && let Err(e) = database.sync_data()
        {
            durable.fail("fdatasync of the SQLite database after a checkpoint", &e);
        }
        state.thread_runs.fetch_add(1, Ordering::Relaxed);
        state.running.store(false, Ordering::Release);
    }
}

/// Puts the calling thread at nice 19, the lowest priority short of
/// `SCHED_IDLE` (module doc). Lowering one's own priority needs no
/// privilege; if it fails anyway, the thread runs at normal priority.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::warn!(error = %e, "could not lower the checkpoint thread's priority");
    }
}

/// One PASSIVE checkpoint on `conn`: copies what no reader still needs,
/// without waiting for anyone. Busy (another checkpoint runs) is no failure.
fn checkpoint(conn: &Connection, state: &State) {
    match conn.wal_checkpoint_v2(Some(c"main"), CheckpointMode::PASSIVE) {
        Ok((_, copied)) => {
            state.copied.store(copied, Ordering::Relaxed);
            if let Some(failures) = CHECKPOINT_FAILED.recovered() {
                tracing::info!(failures, "SQLite checkpoints succeed again");
            }
        }
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
        Err(e) => {
            if let Some(skipped) = CHECKPOINT_FAILED.check() {
                tracing::warn!(error = %e, skipped, "SQLite checkpoint failed; the WAL grows until one succeeds");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        start: 20,
        max: 1_000_000,
        finish: 5,
    };

    fn writer(dir: &tempfile::TempDir, limits: Limits) -> (Connection, Checkpointer) {
        let path = dir.path().join("ck.db");
        let mut conn = crate::store::sqlite::connect(&path).expect("open");
        conn.execute_batch("PRAGMA synchronous = OFF; CREATE TABLE t (v BLOB);")
            .expect("schema");
        let durable = Arc::new(Durable::new(0));
        let checkpointer = Checkpointer::spawn(&path, &mut conn, limits, durable).expect("spawn");
        (conn, checkpointer)
    }

    fn commit(conn: &Connection) {
        conn.execute("INSERT INTO t VALUES (randomblob(3000))", [])
            .expect("insert");
    }

    /// Commits until the WAL starts over, checkpointing after each as the
    /// writer does; returns how many commits that took.
    fn commits_until_restart(conn: &Connection, ck: &mut Checkpointer) -> usize {
        for n in 1..=100_000 {
            let before = ck.frames.load(Ordering::Relaxed);
            commit(conn);
            if ck.frames.load(Ordering::Relaxed) < before {
                return n;
            }
            ck.after_commit(conn);
            wait_idle(ck);
        }
        panic!("the WAL never started over");
    }

    /// The writer has idle time between commits: here it waits for the thread.
    fn wait_idle(ck: &Checkpointer) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ck.state.running.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the checkpoint thread is stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Commits until the WAL holds `frames`, then lets the policy decide.
    fn fill_then_decide(conn: &Connection, ck: &mut Checkpointer, frames: i32) {
        while ck.frames.load(Ordering::Relaxed) < frames {
            commit(conn);
        }
        ck.after_commit(conn);
    }

    /// The whole log was copied before `decide` returned: by the writer.
    fn assert_copied_inline(ck: &Checkpointer) {
        assert_eq!(
            ck.state.copied.load(Ordering::Relaxed),
            ck.frames.load(Ordering::Relaxed),
            "copied inline, before decide returned"
        );
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_thread_copies_and_the_log_still_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (conn, mut ck) = writer(&dir, SMALL);
        let mut commits = 0;
        for round in 1..=3 {
            commits += commits_until_restart(&conn, &mut ck);
            let frames = ck.frames.load(Ordering::Relaxed);
            assert!(
                frames < SMALL.start,
                "the log started over: {frames} frames"
            );
            assert_eq!(ck.state.thread_runs.load(Ordering::Relaxed), round);
        }
        ck.stop();
        assert_eq!(rows(&conn), commits as i64, "every committed row is there");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
    }

    #[test]
    fn a_log_past_its_maximum_is_copied_inline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            start: 20,
            max: 40,
            finish: 0,
        };
        let (conn, mut ck) = writer(&dir, limits);
        fill_then_decide(&conn, &mut ck, limits.max);
        assert_copied_inline(&ck);
        assert_eq!(thread_runs_after_stop(ck), 0, "the writer copied it");
    }

    /// A database file that cannot be synced (`fdatasync` on /dev/null
    /// fails, as on a failing disk) marks the store failed, as a failed
    /// WAL sync does: nothing more is acknowledged.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_sync_of_the_database_marks_the_store_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::store::sqlite::connect(&dir.path().join("f.db")).expect("open");
        let unsyncable = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        let durable = Durable::new(0);
        let (wake, rx) = sync_channel(1);
        wake.send(()).expect("wake");
        drop(wake);
        run(&rx, &conn, &unsyncable, &State::default(), &durable);
        assert!(durable.failed());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_thread_lowers_its_priority_to_nice_19() {
        // The nice value is the 19th field of /proc/thread-self/stat,
        // counted after the command, which may hold spaces.
        let nice = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let after = &stat[stat.rfind(')').expect("comm") + 1..];
            after
                .split_whitespace()
                .nth(16)
                .expect("nice")
                .parse::<i32>()
                .expect("number")
        };
        let (before, after) = std::thread::spawn(move || {
            let before = nice();
            lowest_priority();
            (before, nice())
        })
        .join()
        .expect("thread");
        assert_eq!(after, 19, "from {before}");
    }

    /// Checkpoints the thread ran, counted once it has stopped (so one it
    /// was woken for is counted too).
    fn thread_runs_after_stop(ck: Checkpointer) -> u32 {
        let state = ck.state.clone();
        ck.stop();
        state.thread_runs.load(Ordering::Relaxed)
    }
}
