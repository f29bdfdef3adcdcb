//! WAL checkpoints, mostly off the writer thread: when the writer is not
//! saturated, a thread of its own copies the WAL into the database, so the
//! copy no longer stalls every request that arrives meanwhile.
//!
//! SQLite's own automatic checkpoint runs inside the commit that crosses the
//! limit: the writer, and every webhook waiting on it, stopped for the whole
//! copy (31-48 ms here, every ~18,000 events). Under a flood that stall holds
//! only the requests in flight, fewer than 1% of them, so it stays inline
//! then (moving it competed with the requests for the one core: -5% events/s
//! and a higher p99). But providers do not flood: they send at
//! their own rate, and at a steady 10,000/s every request arriving during
//! the stall waited for it, 2% of them. So, after each commit:
//!
//! - WAL under [`Limits::start`]: nothing to do;
//! - the process saturating the cores it may use (over 85% busy in the last
//!   second: a flood) or the WAL past [`Limits::max`]: the writer
//!   checkpoints inline, as SQLite did;
//! - otherwise the checkpoint thread copies the WAL (a PASSIVE checkpoint on
//!   its own connection; the writer keeps committing meanwhile). It cannot
//!   finish the log while commits keep coming, so once it has copied all but
//!   [`Limits::finish`] the writer copies that rest itself, between two of its
//!   commits (12-23 ms here, mostly the fsyncs of the WAL and the database);
//!   its next transaction then starts the WAL from the beginning again.
//!
//! Measured in the README, "Latency at a steady rate".
//!
//! Only one checkpoint runs at a time: one started while another runs
//! returns `SQLITE_BUSY` at once, and is simply retried after a later commit.

use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

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
    /// copy less (README, "Measured changes"). The thread left 200-1,700
    /// frames for the writer at 14,000 events/s; more than 2,000 left means
    /// commits outran it, and it goes round again.
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
    load: Load,
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
    pub fn spawn(path: &Path, writer: &mut Connection, limits: Limits) -> anyhow::Result<Self> {
        let conn = super::connect(path)?;
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
            .spawn(move || run(&rx, &conn, &shared))?;
        Ok(Self {
            wake,
            state,
            thread,
            frames,
            last_frames: 0,
            limits,
            load: Load::new(),
        })
    }

    /// After each commit of the writer: checkpoints as the module says.
    pub fn after_commit(&mut self, writer: &Connection) {
        let saturated = self.load.saturated();
        self.decide(writer, saturated);
    }

    fn decide(&mut self, writer: &Connection, saturated: bool) {
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
        if saturated || frames >= limits.max || (idle && uncopied <= limits.finish) {
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

/// Busy share of its cores above which the process counts as saturated.
/// On one core, floods kept the server 91-92% busy (the rest waits for
/// fsyncs); a steady 14,000/s, 67%; 20,000/s, 80%.
const SATURATED: f64 = 0.85;
/// How often the process's CPU time is sampled.
const SAMPLE: Duration = Duration::from_secs(1);

/// How busy this process keeps the cores it may use.
struct Load {
    cores: f64,
    at: Instant,
    cpu: Option<Duration>,
    saturated: bool,
}

impl Load {
    fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            cores: cores as f64,
            at: Instant::now(),
            cpu: process_cpu(),
            saturated: false,
        }
    }

    /// Whether the last full sample found the process above [`SATURATED`].
    fn saturated(&mut self) -> bool {
        let now = Instant::now();
        let wall = now.duration_since(self.at);
        if wall < SAMPLE {
            return self.saturated;
        }
        let cpu = process_cpu();
        if let (Some(before), Some(after)) = (self.cpu, cpu) {
            let used = after.saturating_sub(before).as_secs_f64();
            self.saturated = used >= SATURATED * wall.as_secs_f64() * self.cores;
        }
        (self.at, self.cpu) = (now, cpu);
        self.saturated
    }
}

/// CPU time this process has used, all threads (Linux; elsewhere `None`,
/// and the process never counts as saturated). Read from `/proc/self/stat`
/// once per [`SAMPLE`]: the vDSO clock that `clock_gettime` would use for
/// this crashes valgrind's callgrind, which `bench/instructions.sh` runs.
fn process_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        cpu_from_stat(&stat)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// User plus system time from a `/proc/<pid>/stat` line: its 14th and 15th
/// fields, in USER_HZ ticks (100 a second on every Linux architecture
/// smshook builds for). The 2nd field, the command, may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_from_stat(stat: &str) -> Option<Duration> {
    const USER_HZ: u64 = 100;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

fn run(wake: &Receiver<()>, conn: &Connection, state: &State) {
    while wake.recv().is_ok() {
        checkpoint(conn, state);
        state.thread_runs.fetch_add(1, Ordering::Relaxed);
        state.running.store(false, Ordering::Release);
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
        let checkpointer = Checkpointer::spawn(&path, &mut conn, limits).expect("spawn");
        (conn, checkpointer)
    }

    fn commit(conn: &Connection) {
        conn.execute("INSERT INTO t VALUES (randomblob(3000))", [])
            .expect("insert");
    }

    /// Commits until the WAL starts over, checkpointing after each as the
    /// writer does; returns how many commits that took.
    fn commits_until_restart(conn: &Connection, ck: &mut Checkpointer, saturated: bool) -> usize {
        for n in 1..=100_000 {
            let before = ck.frames.load(Ordering::Relaxed);
            commit(conn);
            if ck.frames.load(Ordering::Relaxed) < before {
                return n;
            }
            ck.decide(conn, saturated);
            wait_idle(ck);
        }
        panic!("the WAL never started over");
    }

    /// An unsaturated writer has idle time: here it waits for the thread.
    fn wait_idle(ck: &Checkpointer) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ck.state.running.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the checkpoint thread is stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Commits until the WAL holds `frames`, then lets the policy decide.
    fn fill_then_decide(conn: &Connection, ck: &mut Checkpointer, frames: i32, saturated: bool) {
        while ck.frames.load(Ordering::Relaxed) < frames {
            commit(conn);
        }
        ck.decide(conn, saturated);
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
    fn saturated_the_writer_copies_the_whole_log_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (conn, mut ck) = writer(&dir, SMALL);
        fill_then_decide(&conn, &mut ck, SMALL.start, true);
        assert_copied_inline(&ck);
        commits_until_restart(&conn, &mut ck, true);
        assert_eq!(thread_runs_after_stop(ck), 0, "no thread involved");
    }

    #[test]
    fn unsaturated_a_thread_copies_and_the_log_still_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (conn, mut ck) = writer(&dir, SMALL);
        let mut commits = 0;
        for round in 1..=3 {
            commits += commits_until_restart(&conn, &mut ck, false);
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
    fn a_log_past_its_maximum_is_copied_inline_even_while_unsaturated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            start: 20,
            max: 40,
            finish: 0,
        };
        let (conn, mut ck) = writer(&dir, limits);
        fill_then_decide(&conn, &mut ck, limits.max, false);
        assert_copied_inline(&ck);
        assert_eq!(thread_runs_after_stop(ck), 0, "the writer copied it");
    }

    #[test]
    fn cpu_time_is_read_past_a_command_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "4242 (a b) c) (x) S 1 4242 4242 0 -1 4194560 10 0 0 0 250 130 0 0 20 0";
        assert_eq!(cpu_from_stat(stat), Some(Duration::from_millis(3_800)));
        assert_eq!(cpu_from_stat("4242 (truncated) S 1 2"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_cpu_time_grows_with_work() {
        // Spins until the reading moves (ticks are 10 ms), with a deadline
        // far beyond a loaded machine's, so it fails only if it never does.
        let before = process_cpu().expect("readable on Linux");
        let start = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after < before + Duration::from_millis(30)
            && start.elapsed() < Duration::from_secs(20)
        {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = process_cpu().expect("readable on Linux");
        }
        assert!(
            after >= before + Duration::from_millis(30),
            "{before:?} -> {after:?}"
        );
    }

    /// Checkpoints the thread ran, counted once it has stopped (so one it
    /// was woken for is counted too).
    fn thread_runs_after_stop(ck: Checkpointer) -> u32 {
        let state = ck.state.clone();
        ck.stop();
        state.thread_runs.load(Ordering::Relaxed)
    }
}
