//! What a 200 promises: storage failures, slowness and a full disk are
//! 503/504 (never 200), and every acknowledged event survives a restart, a
//! SIGTERM and a SIGKILL.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use smshook::event::{Event, Inserted, NewEvent, RequestRecord};
use smshook::providers;
use smshook::store::retention::Pruned;
use smshook::store::{EventQuery, RequestQuery, Store, StoreError};

use crate::support::{
    Backend, TestApp, TestOptions, logged_503s, open_url, provider, sample_bytes, secret_for,
    stored_ids, vonage_part,
};

crate::on_both_backends!(
    a_restart_keeps_every_acknowledged_event,
    sigkill_mid_stream_loses_nothing_acknowledged,
    sigterm_finishes_in_flight_requests_and_exits_cleanly,
);

/// A store whose disk has failed: every event write errors, while reads
/// (delegated to a real, empty store) still answer. Or, with
/// `BrokenDisk::at_first_join`, only the first event smshook makes itself
/// (a joined message) fails, and everything else is stored.
struct BrokenDisk {
    inner: Arc<dyn Store>,
    logged: Mutex<Vec<RequestRecord>>,
    /// `None`: every write fails; else whether the one failure happened.
    first_join: Option<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl BrokenDisk {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = open_url(&dir.path().join("ok.db").display().to_string(), 10).await;
        Self {
            inner,
            logged: Mutex::new(Vec::new()),
            first_join: None,
            _dir: dir,
        }
    }

    async fn at_first_join() -> Self {
        Self {
            first_join: Some(AtomicBool::new(false)),
            ..Self::new().await
        }
    }

    /// Whether this write fails: one of a request's events (`request` is
    /// set), or one smshook made.
    fn fails(&self, request: Option<&RequestRecord>) -> bool {
        match &self.first_join {
            None => true,
            Some(failed) => request.is_none() && !failed.swap(true, Ordering::SeqCst),
        }
    }
}

fn disk_error() -> StoreError {
    StoreError::Unavailable("disk I/O error at /var/lib/secret-path".into())
}

#[async_trait]
impl Store for BrokenDisk {
    async fn insert_event(&self, e: NewEvent, r: RequestRecord) -> Result<Inserted, StoreError> {
        if self.fails(Some(&r)) {
            return Err(disk_error());
        }
        self.inner.insert_event(e, r).await
    }
    async fn insert_events(
        &self,
        e: Vec<NewEvent>,
        r: Option<RequestRecord>,
    ) -> Result<Vec<Inserted>, StoreError> {
        if self.fails(r.as_ref()) {
            return Err(disk_error());
        }
        self.inner.insert_events(e, r).await
    }
    fn record_request(&self, request: RequestRecord) {
        self.logged.lock().expect("lock").push(request.clone());
        self.inner.record_request(request);
    }
    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.inner.events(q).await
    }
    async fn parts(
        &self,
        source: &str,
        group: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.parts(source, group, since).await
    }
    async fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        self.inner.event(id).await
    }
    async fn requests(&self, q: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError> {
        self.inner.requests(q).await
    }
    async fn message_status(
        &self,
        s: Option<&str>,
        m: &str,
    ) -> Result<Option<smshook::message::StatusRow>, StoreError> {
        self.inner.message_status(s, m).await
    }
    async fn optouts(
        &self,
        q: &smshook::store::OptoutQuery,
    ) -> Result<Vec<smshook::optout::Optout>, StoreError> {
        self.inner.optouts(q).await
    }
    async fn optout(&self, n: &str) -> Result<Option<smshook::optout::Optout>, StoreError> {
        self.inner.optout(n).await
    }
    async fn claim_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: u32,
    ) -> Result<Vec<smshook::store::DueDelivery>, StoreError> {
        self.inner.claim_deliveries(now, lease, limit).await
    }
    async fn finish_deliveries(
        &self,
        u: Vec<smshook::store::DeliveryUpdate>,
    ) -> Result<(), StoreError> {
        self.inner.finish_deliveries(u).await
    }
    async fn deliveries(
        &self,
        q: &smshook::store::DeliveryQuery,
    ) -> Result<Vec<smshook::store::Delivery>, StoreError> {
        self.inner.deliveries(q).await
    }
    async fn attempts(&self, id: i64) -> Result<Vec<smshook::store::AttemptRecord>, StoreError> {
        self.inner.attempts(id).await
    }
    async fn enqueue_delivery(
        &self,
        e: &str,
        d: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.inner.enqueue_delivery(e, d, now).await
    }
    async fn retry_dead(&self, d: Option<&str>, now: i64) -> Result<u64, StoreError> {
        self.inner.retry_dead(d, now).await
    }
    async fn prune(&self, after: i64, cutoff: &str, limit: u32) -> Result<Pruned, StoreError> {
        self.inner.prune(after, cutoff, limit).await
    }
    async fn newest(&self) -> Result<smshook::store::Newest, StoreError> {
        self.inner.newest().await
    }
    async fn counts(
        &self,
        range: &smshook::store::TimeRange,
    ) -> Result<smshook::store::Counts, StoreError> {
        self.inner.counts(range).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        match self.first_join {
            None => Err(StoreError::Unavailable("disk".into())),
            Some(_) => self.inner.ping().await,
        }
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[tokio::test]
async fn a_storage_failure_is_503_with_retry_after_and_504_for_textus() {
    let broken = Arc::new(BrokenDisk::new().await);
    let app = TestApp::spawn_with(TestOptions {
        store: Some(broken.clone()),
        ..Default::default()
    })
    .await;
    // Every provider: 503 with Retry-After, but 504 for TextUs, which
    // retries only that.
    let mut expected = Vec::new();
    for p in providers::ALL {
        let body = sample_bytes(p, p.event_types[0]);
        let response = app.post_signed(p.name, p, &body, &secret_for(p.name)).await;
        let want = if p.name == "textus" { 504 } else { 503 };
        assert_eq!(response.status(), want, "{}", p.name);
        assert_eq!(response.headers()["retry-after"], "5");
        let text = response.text().await.expect("body");
        assert!(
            text.contains("storage_unavailable") && !text.contains("secret-path"),
            "{text}"
        );
        expected.push(want);
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let logged = broken.logged.lock().expect("lock").clone();
    assert_eq!(
        logged.iter().map(|r| r.status).collect::<Vec<_>>(),
        expected
    );
    assert!(logged.iter().all(|r| r.reason == "storage_unavailable"));
    app.stop().await;
}

/// The part that completes a long message is stored, but the whole
/// message is not: the part is answered 503, never 200, and the provider's
/// retry of it, a duplicate, stores the message.
#[tokio::test]
async fn a_joined_message_not_stored_is_a_503_and_the_retry_stores_it() {
    let broken = Arc::new(BrokenDisk::at_first_join().await);
    let app = TestApp::spawn_with(TestOptions {
        store: Some(broken.clone()),
        ..Default::default()
    })
    .await;
    let p = provider("vonage-sms");
    let (status, _) = app.send_body(p, &vonage_part("9", 2, 1, "Hello ")).await;
    assert_eq!(status, 200);
    let last = vonage_part("9", 2, 2, "again");
    let (status, answer) = app.send_body(p, &last).await;
    assert_eq!(
        (status, &answer["error"]),
        (503, &json!("storage_unavailable"))
    );
    assert!(!answer.to_string().contains("secret-path"), "{answer}");
    let whole = "type=message.received";
    assert!(app.events(whole).await.is_empty());
    assert_eq!(
        app.events("type=message.part").await.len(),
        2,
        "the part is stored"
    );
    let (status, again) = app.send_body(p, &last).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)));
    let joined = app.events(whole).await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["body"], "Hello again");
    app.stop().await;
}

/// SQLite: the sync thread cannot sync the WAL (here it is gone from the
/// directory, so it cannot even be opened): the committed event is answered
/// 503, never 200, and so is every later one, with `/readyz` failing.
#[tokio::test]
async fn a_wal_that_cannot_be_synced_is_never_acknowledged() {
    let app = TestApp::spawn_with(TestOptions::default()).await;
    let wal = format!("{}-wal", app.db_path.display());
    std::fs::remove_file(&wal).expect("the WAL exists once the server runs");
    let p = provider("integify");
    for _ in 0..2 {
        let body = sample_bytes(p, "sms.delivered");
        let (status, answer) = app.send_body(p, &body).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"], "storage_unavailable");
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503, "a failed sync fails readiness");
    app.stop().await;
}

#[tokio::test]
async fn storage_slower_than_the_ack_deadline_is_503_in_time_and_nothing_is_lost() {
    let took =
        stalled_then_retried(Duration::from_millis(400), "msgine", "message.delivered").await;
    assert!(
        took < Duration::from_secs(2),
        "answered near the deadline, took {took:?}"
    );
}

/// Telnyx waits 2 s for an answer: with storage stalled, its source answers
/// 503 after 1.5 s however long `ack_deadline` allows, so Telnyx sees a
/// status to retry on instead of its own timeout.
#[tokio::test]
async fn a_source_answers_before_its_providers_timeout_whatever_the_ack_deadline() {
    let took = stalled_then_retried(Duration::from_secs(30), "telnyx", "message.finalized").await;
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "answered at Telnyx's cap, not the 30 s deadline: {took:?}"
    );
}

/// Sends a sample of `provider`'s `event_type` while another connection
/// holds the database locked, with `ack_deadline`: it must be answered 503,
/// and its retry, once the lock is gone, stored once. Returns how long the
/// 503 took.
async fn stalled_then_retried(
    ack_deadline: Duration,
    provider_name: &str,
    event_type: &str,
) -> Duration {
    let app = TestApp::spawn_with(TestOptions {
        ack_deadline,
        ..Default::default()
    })
    .await;
    let lock = rusqlite::Connection::open(&app.db_path).expect("open");
    lock.execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the database");
    let p = provider(provider_name);
    let body = sample_bytes(p, event_type);
    let started = Instant::now();
    let (status, answer) = app.send_body(p, &body).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    lock.execute_batch("ROLLBACK").expect("unlock");
    // The provider retries until it is answered 200; on a loaded machine the
    // first retry may still find the writer catching up within the deadline.
    let mut status = 503;
    for _ in 0..20 {
        (status, _) = app.send_body(p, &body).await;
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the provider's retry succeeds");
    let stored = app.events(&format!("source={provider_name}")).await;
    assert_eq!(stored.len(), 1, "stored exactly once");
    app.stop().await;
    took
}

async fn a_restart_keeps_every_acknowledged_event(backend: Backend) {
    let app = Arc::new(TestApp::on(backend.clone()).await);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let app = app.clone();
            let name = ["integify", "msgine", "textus", "private-number", "notifly"][i % 5];
            tokio::spawn(async move {
                let p = provider(name);
                app.send_sample(p, p.event_types[0]).await
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for t in tasks {
        let (_, status, answer) = t.await.expect("task");
        assert_eq!(status, 200);
        acked.insert(answer["event_id"].as_str().expect("id").to_string());
    }
    let app = Arc::into_inner(app).expect("sole owner");
    let (dir, db) = (app.dir.clone(), app.db_path.clone());
    app.stop().await;
    let again = TestApp::spawn_in(
        dir,
        db,
        TestOptions {
            backend,
            ..Default::default()
        },
    )
    .await;
    let stored: HashSet<String> = again
        .events("")
        .await
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(stored, acked);
    again.stop().await;
}

/// The real binary, started on port 0; its address is read from its log.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

/// A test that fails midway must not leave its server running (holding the
/// test's output open, so the run never ends).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// What `systemctl stop` or `docker stop` sends.
    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("kill").success());
    }
}

pub fn start_binary(dir: &std::path::Path, database: &str) -> Server {
    start_binary_with(dir, database, "")
}

/// The binary with `extra` appended to its config (e.g. destinations).
pub fn start_binary_with(dir: &std::path::Path, database: &str, extra: &str) -> Server {
    start(serve_command(dir, database, extra))
}

/// `smshook serve` on a fresh config in `dir`.
pub fn serve_command(dir: &std::path::Path, database: &str, extra: &str) -> Command {
    let config = dir.join("smshook.toml");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndatabase = {:?}\n[[sources]]\nname = \"integify\"\nprovider = \"integify\"\nsecrets = [{:?}]\n{extra}",
        database,
        secret_for("integify")
    );
    std::fs::write(&config, toml).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_smshook"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("SMSHOOK_LOG", "info")
        .stderr(Stdio::piped());
    command
}

/// The binary started by `sh` after the shell commands `setup` (limits the
/// test needs the server to start under).
fn start_after(dir: &std::path::Path, database: &str, setup: &str) -> Server {
    let serve = serve_command(dir, database, "");
    let mut command = Command::new("sh");
    command
        .args(["-c", &format!("{setup}; exec \"$0\" \"$@\"")])
        .arg(serve.get_program())
        .args(serve.get_args())
        .env("SMSHOOK_LOG", "info")
        .stderr(Stdio::piped());
    start(command)
}

/// Starts `command` and waits until it serves.
pub fn start(mut command: Command) -> Server {
    let mut child = command.spawn().expect("start smshook");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("smshook exited before serving")
            .expect("read log");
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, addr }
}

/// Sends one fresh, signed Integify event to the binary at `addr`.
pub fn send_event(
    client: &reqwest::Client,
    addr: &str,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + use<> {
    let p = provider("integify");
    let body = sample_bytes(p, "sms.delivered");
    let sig = smshook::signature::sign_hex(
        &smshook::signature::Secret::new(secret_for("integify")),
        &body,
        "sha256=",
    );
    client
        .post(format!("http://{addr}/webhooks/integify"))
        .header(p.signature_header, sig)
        .body(body)
        .send()
}

/// Sends `n` fresh events to the binary, 16 at a time: the ids answered
/// 200, and how many were not.
pub async fn flood(addr: &str, n: usize) -> (HashSet<String>, usize) {
    let client = reqwest::Client::new();
    let mut acked = HashSet::new();
    let mut failed = 0;
    let mut pending: Vec<_> = (0..n).map(|_| send_event(&client, addr)).collect();
    while !pending.is_empty() {
        let batch: Vec<_> = pending.drain(..pending.len().min(16)).collect();
        for result in futures_join(batch).await {
            match result {
                Ok(r) if r.status() == 200 => {
                    let v: Value = r.json().await.expect("json");
                    acked.insert(v["event_id"].as_str().expect("id").to_string());
                }
                _ => failed += 1,
            }
        }
    }
    (acked, failed)
}

async fn futures_join<F>(fs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// The database a binary test uses: a file in `dir`, or the backend's URL.
fn database_in(dir: &std::path::Path, backend: &Backend) -> String {
    match backend {
        Backend::Sqlite => dir.join("events.db").display().to_string(),
        Backend::Postgres(url) => url.clone(),
    }
}

async fn sigkill_mid_stream_loses_nothing_acknowledged(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = database_in(dir.path(), &backend);
    let mut server = start_binary(dir.path(), &database);
    let (acked, failed) = flood(&server.addr, 300).await;
    assert_eq!((acked.len(), failed), (300, 0));
    let addr = server.addr.clone();
    let more = tokio::spawn(async move { flood(&addr, 200).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.child.kill().expect("SIGKILL");
    let _ = tokio::task::spawn_blocking(move || server.child.wait()).await;
    let (acked_during, _) = more.await.expect("task");
    let stored = stored_ids(&database).await;
    assert!(
        acked.is_subset(&stored),
        "all events acknowledged before the kill are stored"
    );
    assert!(
        acked_during.is_subset(&stored),
        "all events acknowledged during the kill are stored"
    );
}

async fn sigterm_finishes_in_flight_requests_and_exits_cleanly(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = database_in(dir.path(), &backend);
    let mut server = start_binary(dir.path(), &database);
    let addr = server.addr.clone();
    let sending = tokio::spawn(async move { flood(&addr, 400).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.sigterm();
    let status = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .expect("task")
        .expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let (acked, _) = sending.await.expect("task");
    let stored = stored_ids(&database).await;
    assert!(
        acked.is_subset(&stored),
        "every acknowledged event is stored"
    );
    assert!(
        !dir.path().join("events.db-wal").exists()
            || std::fs::metadata(dir.path().join("events.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
                == 0,
        "the WAL was checkpointed at shutdown"
    );
}

/// A real full disk, without root: the server runs under a file-size limit
/// (`ulimit -f`, with `SIGXFSZ` ignored so an oversize write fails instead of
/// killing it), which stops the WAL from growing; raising the limit with
/// `prlimit` is freeing space. SQLite only: PostgreSQL's disk is not ours.
#[tokio::test]
async fn a_full_disk_is_503_then_writes_resume_and_the_outage_is_logged() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED a_full_disk_is_503...: needs Linux's prlimit (util-linux)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("events.db").display().to_string();
    // 2048 blocks: 1 MiB in dash's 512-byte blocks, 2 MiB in bash's.
    let mut server = start_after(dir.path(), &database, "trap '' XFSZ; ulimit -S -f 2048");
    let (acked, refused) = fill_until_refused(&server.addr, 5).await;
    assert_eq!(refused, 5, "the disk filled up");
    assert!(!acked.is_empty(), "events were stored before it did");

    let pid = server.child.id().to_string();
    let freed = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited"])
        .status()
        .expect("prlimit");
    assert!(freed.success());
    let (after, failed) = flood(&server.addr, 50).await;
    assert_eq!(
        (after.len(), failed),
        (50, 0),
        "writes resume by themselves"
    );
    server.sigterm();
    server.child.wait().expect("wait");

    let stored = stored_ids(&database).await;
    assert!(acked.is_subset(&stored) && after.is_subset(&stored));
    assert_eq!(
        logged_503s(&database).await,
        refused,
        "every 503 is in the request log"
    );
}

/// Started with a soft limit of 256 open files (a hard one far above), the
/// server raises it to the hard limit and serves 600 connections at once;
/// at 256 it could not have accepted most of them.
#[tokio::test]
async fn the_open_file_limit_is_raised_to_serve_many_connections_at_once() {
    let hard = open_files_limit("self", 1);
    if hard < 2048 {
        eprintln!(
            "SKIPPED the_open_file_limit_is_raised...: the hard limit on open files is {hard}"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("events.db").display().to_string();
    let mut server = start_after(dir.path(), &database, "ulimit -S -n 256");
    let pid = server.child.id().to_string();
    assert_eq!(
        open_files_limit(&pid, 0),
        hard,
        "soft limit raised to the hard one"
    );

    // One connection per request: the pool opens a new one for each
    // request in flight.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let answers = futures_join(
        (0..600)
            .map(|_| send_event(&client, &server.addr))
            .collect(),
    )
    .await;
    let ok = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    assert_eq!(ok, 600, "every connection served");
    server.sigterm();
    server.child.wait().expect("wait");
}

/// "Max open files" of process `pid` from /proc: column 0 soft, 1 hard.
fn open_files_limit(pid: &str, column: usize) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let values: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    values[column].parse().unwrap_or(u64::MAX)
}

/// Sends events one at a time until `n` are refused (at most 5000 sent):
/// the ids acknowledged, and how many were refused, each a 503.
async fn fill_until_refused(addr: &str, n: usize) -> (HashSet<String>, usize) {
    let client = reqwest::Client::new();
    let (mut acked, mut refused) = (HashSet::new(), 0);
    for _ in 0..5000 {
        let answer = send_event(&client, addr).await.expect("answer");
        let status = answer.status().as_u16();
        let v: Value = answer.json().await.expect("json");
        match status {
            200 => {
                acked.insert(v["event_id"].as_str().expect("id").to_string());
            }
            503 => {
                assert_eq!(v["error"], "storage_unavailable");
                refused += 1;
                if refused == n {
                    break;
                }
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    (acked, refused)
}
