//! PostgreSQL only: several replicas on one database, the database becoming
//! unreachable mid-stream, TLS, migrations racing at start-up, and the plan
//! of a message status lookup.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smshook::store::EventQuery;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{
    Backend, TestApp, TestOptions, logged_503s, open_url, provider, sample_bytes, stored_ids,
};

async fn postgres() -> Option<String> {
    match Backend::postgres().await? {
        Backend::Postgres(url) => Some(url),
        Backend::Sqlite => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_store_each_event_once_and_one_says_new() {
    let Some(url) = postgres().await else { return };
    let a = Arc::new(TestApp::on(Backend::Postgres(url.clone())).await);
    let b = Arc::new(TestApp::on(Backend::Postgres(url.clone())).await);
    let p = provider("integify");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let body = sample_bytes(p, "sms.delivered");
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            tokio::join!(a.send_body(p, &body), b.send_body(p, &body))
        }));
    }
    for task in tasks {
        let ((sa, ja), (sb, jb)) = task.await.expect("task");
        assert_eq!((sa, sb), (200, 200));
        assert_eq!(
            ja["event_id"], jb["event_id"],
            "both replicas name the same event"
        );
        let fresh = [&ja, &jb]
            .iter()
            .filter(|j| j["duplicate"] == false)
            .count();
        assert_eq!(fresh, 1, "exactly one replica answers duplicate:false");
    }
    assert_eq!(a.events("").await.len(), 100, "stored once each");
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (o, l) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let upstream = upstream.clone();
                l.lock().expect("lock").push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy { addr, open, links }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("lock").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let config: tokio_postgres::Config = url.parse().expect("test URL parses");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the test needs a TCP PostgreSQL URL, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = format!("{host}:{port}");
    let proxied = if url.contains(&upstream) {
        url.replacen(&upstream, &addr.to_string(), 1)
    } else {
        url.replacen(&format!("@{host}"), &format!("@{addr}"), 1)
    };
    (proxied, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_in_time_and_ingestion_resumes_by_itself() {
    let Some(url) = postgres().await else { return };
    let (_, upstream) = through(&url, "127.0.0.1:1".parse().expect("addr"));
    let proxy = Proxy::start(upstream).await;
    let (proxied, _) = through(&url, proxy.addr);
    let options = TestOptions {
        backend: Backend::Postgres(proxied),
        ack_deadline: Duration::from_secs(1),
        ..Default::default()
    };
    let app = TestApp::spawn_with(options).await;
    let p = provider("msgine");
    let body = || sample_bytes(p, "message.delivered");
    let mut acked = HashSet::new();
    for _ in 0..20 {
        let (status, answer) = app.send_body(p, &body()).await;
        assert_eq!(status, 200);
        acked.insert(answer["event_id"].as_str().expect("id").to_string());
    }

    proxy.cut();
    let during: Vec<Vec<u8>> = (0..5).map(|_| body()).collect();
    for b in &during {
        let started = Instant::now();
        let (status, answer) = app.send_body(p, b).await;
        assert_eq!(
            status, 503,
            "never 200 while the database is unreachable: {answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered within the deadline, took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(app.get("/readyz").await.status(), 503);

    proxy.restore();
    let mut refused = during.len();
    for b in &during {
        let (answer, retried) = retry_until_stored(&app, p, b).await;
        acked.insert(answer["event_id"].as_str().expect("id").to_string());
        refused += retried;
    }
    assert_eq!(
        logged_503s(&url).await,
        refused,
        "every 503 is in the request log"
    );
    let stored = stored_ids(&url).await;
    assert_eq!(stored, acked, "every acknowledged event is stored, once");
    app.stop().await;
}

/// What a provider does: retry until 200 (bounded: 10 s). The 200's body,
/// and how many answers were not 200 before it.
async fn retry_until_stored(
    app: &TestApp,
    p: &smshook::providers::Provider,
    body: &[u8],
) -> (serde_json::Value, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    loop {
        let (status, answer) = app.send_body(p, body).await;
        if status == 200 {
            return (answer, refused);
        }
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "ingestion did not resume: last answer {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_and_verify_full_checks_the_certificate() {
    let Some(url) = postgres().await else { return };
    let store = open_url(&format!("{url}&sslmode=require"), 1000).await;
    store.ping().await.expect("TLS connection works");
    let schema = url
        .rsplit("application_name=")
        .next()
        .expect("application_name")
        .to_string();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND application_name = $1",
            &[&schema],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(
        row.get::<_, i64>(0) >= 1,
        "the store's connections are encrypted"
    );
    store.close().await;

    let untrusted =
        smshook::store::open(&format!("{url}&sslmode=verify-full"), Default::default()).await;
    let err = format!(
        "{:#}",
        untrusted
            .err()
            .expect("a self-signed certificate is refused")
    );
    assert!(err.contains("PostgreSQL"), "{err}");
}

/// A message's status is an index search, with a source or without; before
/// migration 3 it was a scan of every message ever reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_status_is_an_index_search() {
    let Some(url) = postgres().await else { return };
    let store = open_url(&url, 10).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(
            "INSERT INTO messages SELECT 'src' || (i % 3), 'msg_' || i, 'delivered', 3, 'evt_' || i, 't' \
             FROM generate_series(1, 20000) AS i; ANALYZE messages",
        )
        .await
        .expect("messages");
    let explain = format!("EXPLAIN {}", smshook::store::postgres::MESSAGE_STATUS);
    for source in [None, Some("src1")] {
        let rows = client
            .query(&explain, &[&"msg_5", &source])
            .await
            .expect("plan");
        let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let searched = plan
            .iter()
            .any(|step| step.contains("Index Cond:") && step.contains("message_id = "));
        assert!(searched, "{}", plan.join("\n"));
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let Some(url) = postgres().await else { return };
    let (a, b, c) = tokio::join!(open_url(&url, 10), open_url(&url, 10), open_url(&url, 10));
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT version FROM smshook_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions");
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> = (1..=smshook::store::postgres::SCHEMA_VERSION as i32).collect();
    assert_eq!(versions, expected, "each migration applied exactly once");
    for s in [a, b, c] {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_never_skips_an_event_while_two_replicas_write() {
    let Some(url) = postgres().await else { return };
    let (a, b, reader) = tokio::join!(open_url(&url, 10), open_url(&url, 10), open_url(&url, 10));
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..10 {
                    let inserts: Vec<_> = (0..30)
                        .map(|_| {
                            let store = store.clone();
                            let e = crate::storage::event(
                                "s",
                                &ulid::Ulid::generate().to_string(),
                                "t",
                                None,
                            );
                            tokio::spawn(async move {
                                store
                                    .insert_event(e, crate::storage::request("s", 200, "accepted"))
                                    .await
                            })
                        })
                        .collect();
                    for insert in inserts {
                        ids.push(insert.await.expect("task").expect("insert").event_id);
                    }
                }
                ids
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut after = 0;
    let mut done_rounds = 0;
    while done_rounds < 2 {
        let writing = writers.iter().any(|w| !w.is_finished());
        let page = reader
            .events(&EventQuery {
                after: Some(after),
                limit: 50,
                ..Default::default()
            })
            .await
            .expect("page");
        if let Some(last) = page.last() {
            after = last.seq;
        }
        seen.extend(page.into_iter().map(|e| e.id));
        done_rounds = if writing { 0 } else { done_rounds + 1 };
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    assert_eq!(seen.len(), written.len(), "no event seen twice or skipped");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), written);
    for s in [a, b, reader] {
        s.close().await;
    }
}

/// A value PostgreSQL refuses (here a NUL in `text`, which ingest no longer
/// lets through, written through the store directly) fails its own row
/// only: the events in the same batch are stored, a refused request-log row
/// is dropped instead of going back to the buffer, and later batches are
/// written as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_value_fails_its_own_row_not_the_batch_nor_later_ones() {
    use crate::storage::{event, request};
    let Some(url) = postgres().await else { return };
    let store = open_url(&url, 1000).await;
    for i in 0..10 {
        let source = if i % 4 == 1 {
            "bad\0source"
        } else {
            "good-source"
        };
        store.record_request(request(source, 404, "unknown_source"));
    }
    let bad = [3, 17, 18];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut e = event("src", &format!("key-{i}"), "message.received", None);
        if bad.contains(&i) {
            e.fields.body = Some("nul \0 here".into());
        }
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            (
                i,
                store.insert_event(e, request("src", 200, "accepted")).await,
            )
        }));
    }
    for task in tasks {
        let (i, result) = task.await.expect("task");
        assert_eq!(result.is_ok(), !bad.contains(&i), "event {i}: {result:?}");
    }
    let later = store
        .insert_event(
            event("src", "later", "message.received", None),
            request("src", 200, "accepted"),
        )
        .await;
    assert!(later.is_ok(), "a later batch: {later:?}");
    assert_eq!(
        stored_ids(&url).await.len(),
        38,
        "37 good events and the later one"
    );
    let logged = store
        .requests(&smshook::store::RequestQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("requests");
    let good = logged.iter().filter(|r| r.source == "good-source").count();
    assert_eq!(good, 7, "every good refusal is logged once");
    assert!(
        !logged.iter().any(|r| r.source.contains('\0')),
        "the refused rows are dropped"
    );
    store.close().await;
}

/// Replicas prune one batch at a time: while another holds the retention
/// lock, a batch deletes nothing and ends the pass; once it is free, the
/// same batch deletes. (The lock is held here by a connection of the test,
/// standing in for another replica mid-batch.)
#[tokio::test]
async fn one_replica_prunes_at_a_time() {
    let Some(url) = postgres().await else { return };
    let store = open_url(&url, 10).await;
    let mut old = crate::storage::event("ig", "k1", "message.received", None);
    old.received_at = smshook::event::format_time(chrono::Utc::now() - chrono::Duration::days(40));
    let request = crate::storage::request("ig", 200, "accepted");
    store.insert_event(old, request).await.expect("insert");
    let cutoff = smshook::event::format_time(chrono::Utc::now() - chrono::Duration::days(30));

    let (other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let key = smshook::store::postgres::retention::RETENTION_LOCK;
    other
        .batch_execute(&format!("SELECT pg_advisory_lock({key})"))
        .await
        .expect("lock");
    let busy = store.prune(0, &cutoff, 100).await.expect("prune");
    assert_eq!(
        (busy.deleted, busy.through, busy.done),
        (0, 0, true),
        "another replica is pruning: this pass ends"
    );
    other
        .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
        .await
        .expect("unlock");
    let free = store.prune(0, &cutoff, 100).await.expect("prune");
    assert_eq!((free.deleted, free.done), (1, true));
    store.close().await;
}
