//! A simulated power cut: the database on an ext4 file system in a loop
//! device, whose image is copied at an instant while the server is stopped.
//! The copy holds what a disk would hold if the power went then: what was
//! synced, and whatever else the kernel happened to write back. Every event
//! answered 200 before that instant must be in it.
//!
//! The file system is mounted `data=writeback,commit=120`, so it writes file
//! data back only when asked to sync (or after 30 s, longer than the test):
//! anything acknowledged before its fsync would be missing from the copy.
//! A build that answered before syncing lost hundreds to thousands of
//! acknowledged events in every such cut (README, "What a 200 promises").
//!
//! The cut comes once a checkpoint has copied the WAL into the database
//! (the database file grows only then), so what is copied, what is still
//! only in the WAL, and a checkpoint thread possibly at work are all in it.
//!
//! Needs root, `losetup`, `mkfs.ext4`, `mount` and `cp` (Linux), so it runs
//! only when `SMSHOOK_TEST_POWER_CUT=1` (`.ci/run` sets it), and says so when
//! skipped.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::durability::{send_event, start_binary};

/// Requests in flight at once while the power is on.
const SENDERS: usize = 32;
/// The database file's size once a checkpoint has copied the WAL into it
/// (30,000 WAL frames; before, it holds little more than the schema).
const CHECKPOINTED: u64 = 8 << 20;
/// Longest the flood may take to get there.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_power_cut_loses_nothing_acknowledged() {
    if std::env::var("SMSHOOK_TEST_POWER_CUT").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED a_power_cut_loses_nothing_acknowledged: set SMSHOOK_TEST_POWER_CUT=1 (needs root and loop devices)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDisk::create(dir.path(), "disk");
    let database = disk.mount.join("events.db").display().to_string();
    let mut server = start_binary(dir.path(), &database);

    let acks = Arc::new(Mutex::new(Vec::new()));
    let power_on = Arc::new(AtomicBool::new(true));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            tokio::spawn(send_until_cut(
                server.addr.clone(),
                acks.clone(),
                power_on.clone(),
            ))
        })
        .collect();
    let db = disk.mount.join("events.db");
    let flood = Instant::now();
    while std::fs::metadata(&db).map_or(0, |m| m.len()) < CHECKPOINTED {
        assert!(
            flood.elapsed() < FLOOD_LIMIT,
            "no checkpoint within {FLOOD_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The cut: stop the server, then copy the disk as it is.
    let cut = Instant::now();
    power_on.store(false, Ordering::Release);
    let pid = server.child.id().to_string();
    run("kill", &["-STOP".as_ref(), pid.as_ref()]);
    let image = dir.path().join("after-the-cut.img");
    run(
        "cp",
        &[
            "--sparse=always".as_ref(),
            disk.image.as_os_str(),
            image.as_os_str(),
        ],
    );
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    for sender in senders {
        let _ = sender.await;
    }
    drop(disk);

    let acked: HashSet<String> = acks
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, at)| *at < cut)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        acked.len() > 100,
        "too few events before the cut: {}",
        acked.len()
    );
    let after = LoopDisk::attach(dir.path(), "after", image);
    let (stored, integrity) = read_back(&after.mount.join("events.db"));
    assert_eq!(integrity, "ok");
    let lost: Vec<_> = acked.difference(&stored).collect();
    eprintln!(
        "power cut: {} events acknowledged before it, {} stored after it",
        acked.len(),
        stored.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} events acknowledged before the cut are gone, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
}

/// Sends events one after another until the power goes, recording each
/// acknowledged event with the instant its 200 arrived.
async fn send_until_cut(
    addr: String,
    acks: Arc<Mutex<Vec<(String, Instant)>>>,
    power_on: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    while power_on.load(Ordering::Acquire) {
        let Ok(response) = send_event(&client, &addr).await else {
            return;
        };
        if response.status() != 200 {
            continue;
        }
        let at = Instant::now();
        let Ok(answer) = response.json::<Value>().await else {
            return;
        };
        let id = answer["event_id"].as_str().expect("event_id").to_string();
        acks.lock().expect("lock").push((id, at));
    }
}

/// Every event id in the database, and SQLite's integrity check.
fn read_back(db: &Path) -> (HashSet<String>, String) {
    let conn = rusqlite::Connection::open(db).expect("open the database after the cut");
    let mut stmt = conn.prepare("SELECT id FROM events").expect("prepare");
    let ids = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
        .unwrap_or_else(|e| panic!("the database is unreadable after the cut: {e}"));
    let integrity = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    (ids, integrity)
}

/// An ext4 image attached to a loop device and mounted; detached on drop.
struct LoopDisk {
    image: PathBuf,
    device: String,
    mount: PathBuf,
}

impl LoopDisk {
    /// A new, empty 512 MiB file system (sparse: it takes what is written).
    fn create(dir: &Path, name: &str) -> Self {
        let image = dir.join(format!("{name}.img"));
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(512 << 20))
            .expect("image");
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        );
        Self::attach(dir, name, image)
    }

    fn attach(dir: &Path, name: &str, image: PathBuf) -> Self {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mount = dir.join(format!("{name}-mnt"));
        std::fs::create_dir_all(&mount).expect("mount point");
        let disk = Self {
            image,
            device,
            mount,
        };
        let options = "data=writeback,commit=120";
        run(
            "mount",
            &[
                "-o".as_ref(),
                options.as_ref(),
                disk.device.as_ref(),
                disk.mount.as_os_str(),
            ],
        );
        disk
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn run(program: &str, args: &[&OsStr]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}: {status}");
}
