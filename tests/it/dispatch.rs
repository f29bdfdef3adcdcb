//! Hand-off to the application: signed deliveries, retries with backoff and
//! Retry-After, dead-lettering, replay, crash recovery, and several replicas.
//! Retry timing runs on a paused tokio clock: no test sleeps through a backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use smshook::dispatch::{Destination, Dispatcher};
use smshook::event::{EventFields, NewEvent, new_event_id, now_rfc3339};
use smshook::store::{DeliveryQuery, Store};
use tokio::sync::Notify;

use crate::memory::MemoryOutbox;
use crate::receiver::{Reply, TestReceiver};
use crate::support::{Backend, TestApp, TestOptions, open_url, provider};

crate::on_both_backends!(
    replay_and_bulk_retry_over_the_api,
    leases_keep_a_claimed_delivery_from_a_second_worker
);

/// An event with a pending delivery to `destination`, stored directly.
async fn stored_event(store: &Arc<dyn Store>, destination: &str) -> String {
    stored_payload(store, destination, r#"{"id":"x"}"#.into()).await
}

/// [`stored_event`] with this payload.
async fn stored_payload(store: &Arc<dyn Store>, destination: &str, payload: String) -> String {
    let event = NewEvent {
        id: new_event_id(),
        source: "integify".into(),
        provider: "integify".into(),
        dedupe_key: new_event_id(),
        fields: EventFields {
            event_type: "message.delivered".into(),
            message_id: Some("m1".into()),
            ..Default::default()
        },
        opt_out: None,
        received_at: now_rfc3339(),
        payload,
        destinations: vec![destination.into()],
        part: None,
    };
    let request = smshook::event::RequestRecord {
        seq: 0,
        at: now_rfc3339(),
        source: "integify".into(),
        status: 200,
        reason: "accepted".into(),
        remote_addr: None,
        ..Default::default()
    };
    store
        .insert_event(event, request)
        .await
        .expect("insert")
        .event_id
}

fn start(
    store: &Arc<dyn Store>,
    destinations: &[Destination],
) -> (Arc<Notify>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(Notify::new());
    let task = tokio::spawn(
        Dispatcher::new(store.clone(), destinations, &Default::default()).run(stop.clone()),
    );
    (stop, task)
}

async fn deliveries(store: &Arc<dyn Store>) -> Vec<smshook::store::Delivery> {
    store
        .deliveries(&DeliveryQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("deliveries")
}

#[tokio::test(start_paused = true)]
async fn signed_delivery_retries_after_500_and_honours_429_retry_after() {
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let mut receiver = TestReceiver::start(vec![
        Reply::Status(500),
        Reply::RetryAfter(429, 120),
        Reply::Status(200),
    ])
    .await;
    let destination = receiver.destination("app", &[10, 60, 300]);
    let event_id = stored_event(&store, "app").await;
    let (stop, task) = start(&store, &[destination]);

    let first = receiver.next().await;
    first.assert_signed();
    assert_eq!(
        first.headers["webhook-id"],
        event_id.as_str(),
        "webhook-id is the event id"
    );
    assert_eq!(first.json()["id"], event_id.as_str());
    assert_eq!(first.json()["type"], "message.delivered");
    let second = receiver.next().await;
    let wait = second.at - first.at;
    assert!(
        wait >= Duration::from_secs(8) && wait <= Duration::from_secs(14),
        "10 s ±20% (+ poll), got {wait:?}"
    );
    let third = receiver.next().await;
    let wait = third.at - second.at;
    assert!(
        wait >= Duration::from_secs(120),
        "Retry-After 120 s beats the 60 s schedule, got {wait:?}"
    );
    assert!(wait <= Duration::from_secs(123), "{wait:?}");
    third.assert_signed();

    stop.notify_one();
    task.await.expect("dispatcher");
    let d = &deliveries(&store).await[0];
    assert_eq!((d.state.as_str(), d.attempts), ("delivered", 3));
    let statuses: Vec<Option<u16>> = store
        .attempts(d.id)
        .await
        .expect("attempts")
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(
        statuses,
        [Some(500), Some(429), Some(200)],
        "every attempt is recorded"
    );
    store.close().await;
}

/// Forty events of 1 MB for an endpoint that never answers: the dispatcher
/// sends the 16 that its payload budget (16 MiB) holds, and no more while
/// they hang, where it once held 256 such sends and 256 claimed beside them.
#[tokio::test]
async fn large_payloads_are_sent_a_budget_at_a_time() {
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let mut receiver = TestReceiver::start(vec![Reply::Hang; 40]).await;
    let mut destination = receiver.destination("app", &[10]);
    destination.timeout = Duration::from_secs(60);
    let pad = "x".repeat(1_000_000);
    for i in 0..40 {
        let payload = format!(r#"{{"id":"big{i}","pad":"{pad}"}}"#);
        stored_payload(&store, "app", payload).await;
    }
    let (stop, task) = start(&store, &[destination]);
    for _ in 0..16 {
        receiver.next().await;
    }
    let more = tokio::time::timeout(Duration::from_millis(500), receiver.next()).await;
    assert!(more.is_err(), "a 17th send while 16 MB were in flight");
    stop.notify_one();
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_times_out_and_is_retried() {
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let mut receiver = TestReceiver::start(vec![Reply::Hang, Reply::Status(200)]).await;
    let destination = receiver.destination("app", &[10]); // 5 s timeout
    stored_event(&store, "app").await;
    let (stop, task) = start(&store, &[destination]);
    let hung = receiver.next().await;
    let retried = receiver.next().await;
    let wait = retried.at - hung.at;
    assert!(
        wait >= Duration::from_secs(13),
        "5 s timeout, then 10 s ±20%: {wait:?}"
    );
    assert!(wait <= Duration::from_secs(18), "{wait:?}");
    stop.notify_one();
    task.await.expect("dispatcher");
    let d = &deliveries(&store).await[0];
    assert_eq!((d.state.as_str(), d.attempts), ("delivered", 2));
    let attempts = store.attempts(d.id).await.expect("attempts");
    assert_eq!(attempts[0].status, None, "no answer");
    assert_eq!(attempts[0].error.as_deref(), Some("no answer within 5s"));
    assert!(
        attempts[0].latency_ms >= 5000,
        "the attempt waited for its timeout"
    );
    assert_eq!(attempts[1].status, Some(200));
}

/// While the application rotates its secret, a destination holds both and
/// each delivery carries a signature for each (Standard Webhooks' way), so
/// the application verifies with either.
#[tokio::test(start_paused = true)]
async fn a_destination_with_two_secrets_signs_with_both() {
    const NEW: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHMtb25seQ==";
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let mut receiver = TestReceiver::start(vec![]).await;
    let mut destination = receiver.destination("app", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.secret");
    std::fs::write(&file, format!("{}\n{NEW}\n", crate::receiver::SECRET)).expect("write");
    let toml = format!(
        "[[sources]]\nname='integify'\nprovider='integify'\nsecrets=['s']\n\
         [[destinations]]\nname='app'\nurl={:?}\nsecret_file={:?}\n",
        receiver.url,
        file.display().to_string()
    );
    std::fs::write(dir.path().join("c.toml"), toml).expect("config");
    let config = smshook::config::Config::load(&smshook::config::Overrides {
        config_file: Some(dir.path().join("c.toml")),
        listen: None,
        database: None,
        env: &|_| None,
    })
    .expect("config loads");
    destination.target = config.destinations[0].target.clone();
    stored_event(&store, "app").await;
    let (stop, task) = start(&store, &[destination]);
    receiver
        .next()
        .await
        .assert_signed_by(&[crate::receiver::SECRET, NEW]);
    stop.notify_one();
    task.await.expect("dispatcher");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_endpoint_is_recorded_with_its_cause() {
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", closed.local_addr().expect("addr"));
    drop(closed); // nothing listens there now
    let receiver = TestReceiver::start(vec![]).await;
    let mut destination = receiver.destination("app", &[]);
    destination.target = smshook::dispatch::Target::http(
        url,
        vec![smshook::dispatch::http::SigningKey::parse(crate::receiver::SECRET).expect("key")],
    );
    stored_event(&store, "app").await;
    let (stop, task) = start(&store, &[destination]);
    let dead = loop {
        if let Some(d) = deliveries(&store)
            .await
            .into_iter()
            .find(|d| d.state == "dead")
        {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.notify_one();
    task.await.expect("dispatcher");
    let error = dead.last_error.expect("an error");
    assert!(
        error.to_lowercase().contains("refused"),
        "the cause is kept: {error}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_marks_it_dead_and_a_bulk_retry_revives_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryOutbox::default());
    let mut receiver = TestReceiver::start(vec![
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(503),
    ])
    .await;
    let (stop, task) = start(&store, &[receiver.destination("app", &[1, 1])]);
    stored_event(&store, "app").await;
    for _ in 0..3 {
        receiver.next().await;
    }
    let dead = loop {
        let dead = store
            .deliveries(&DeliveryQuery {
                state: Some("dead".into()),
                limit: 10,
                ..Default::default()
            })
            .await;
        if let Some(d) = dead.expect("list").pop() {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.attempts, 3, "one try and the two scheduled retries");
    assert_eq!(
        dead.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );

    assert_eq!(
        store
            .retry_dead(None, smshook::event::unix_millis())
            .await
            .expect("retry"),
        1
    );
    let again = receiver.next().await;
    again.assert_signed();
    stop.notify_one();
    task.await.expect("dispatcher");
    assert_eq!(deliveries(&store).await[0].state, "delivered");
    store.close().await;
}

async fn replay_and_bulk_retry_over_the_api(backend: Backend) {
    let mut receiver = TestReceiver::start(vec![]).await;
    let destination = receiver.destination("app", &[1]);
    let app = TestApp::spawn_with(TestOptions {
        backend,
        destinations: vec![destination],
        ..Default::default()
    })
    .await;
    let (_, status, answer) = app.send_sample(provider("integify"), "sms.delivered").await;
    assert_eq!(status, 200);
    let event_id = answer["event_id"].as_str().expect("id").to_string();
    let first = receiver.next().await;
    first.assert_signed();
    assert_eq!(
        first.json()["payload"]["type"],
        "sms.delivered",
        "the original payload travels along"
    );

    assert_eq!(app.replay(&event_id).await, 202);
    let again = receiver.next().await;
    assert_eq!(again.headers["webhook-id"], event_id.as_str());
    assert_eq!(app.replay("evt_nope").await, 404);

    // The attempt is recorded just after the receiver answers: wait for it.
    let page = eventually(
        || async { app.api("/api/deliveries?state=delivered").await.1 },
        |p| p["deliveries"].as_array().is_some_and(|d| d.len() == 2),
    )
    .await;
    let id = page["deliveries"][0]["id"].as_i64().expect("id");
    let (_, one) = app.api(&format!("/api/deliveries/{id}")).await;
    assert_eq!(one["attempts"][0]["status"], 200);
    let retried = app
        .client
        .post(app.url("/api/deliveries/retry"))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await;
    assert_eq!(
        retried
            .expect("send")
            .json::<serde_json::Value>()
            .await
            .expect("json")["retried"],
        0,
        "none dead"
    );
    app.stop().await;
}

async fn leases_keep_a_claimed_delivery_from_a_second_worker(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match backend {
        Backend::Sqlite => dir.path().join("l.db").display().to_string(),
        Backend::Postgres(url) => url,
    };
    let store = open_url(&url, 100).await;
    stored_event(&store, "app").await;
    let now = smshook::event::unix_millis() + 1000;
    assert_eq!(
        store
            .claim_deliveries(now, 60_000, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    assert!(
        store
            .claim_deliveries(now + 59_000, 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "held by the first worker"
    );
    let reclaimed = store
        .claim_deliveries(now + 61_000, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(
        reclaimed.len(),
        1,
        "a worker that died does not strand its delivery"
    );
    store.close().await;
}

/// Polls `fetch` until `done` holds (10 s at most), returning the last value.
async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    fetch: impl Fn() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = fetch().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened; last: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_make_each_delivery_once() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let mut receiver = TestReceiver::start(vec![]).await;
    let destination = receiver.destination("app", &[1]);
    let options = || TestOptions {
        backend: Backend::Postgres(url.clone()),
        destinations: vec![destination.clone()],
        ..Default::default()
    };
    let (a, b) = (
        TestApp::spawn_with(options()).await,
        TestApp::spawn_with(options()).await,
    );
    for i in 0..60 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            app.send_sample(provider("msgine"), "message.sent").await.1,
            200
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < 60 {
        let r = receiver.next().await;
        *seen
            .entry(r.headers["webhook-id"].to_str().expect("id").to_string())
            .or_default() += 1;
    }
    // Both dispatchers keep polling; anything sent twice would arrive now.
    let extra = tokio::time::timeout(Duration::from_millis(2500), receiver.requests.recv()).await;
    assert!(extra.is_err(), "a delivery was made twice: {extra:?}");
    assert!(seen.values().all(|n| *n == 1));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_delivery_loses_nothing_the_restart_delivers_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("events.db").display().to_string();
    let mut receiver = TestReceiver::start(vec![Reply::Hang]).await;
    let extra = format!(
        "[[destinations]]\nname = \"app\"\nurl = {:?}\nsecret = {:?}\nretry_schedule = [\"1s\"]\n",
        receiver.url,
        crate::receiver::SECRET
    );
    let mut server = crate::durability::start_binary_with(dir.path(), &database, &extra);
    let p = provider("integify");
    let body = serde_json::to_vec(&(p.sample)(
        "sms.delivered",
        &smshook::providers::SampleIds::fresh(),
    ))
    .expect("json");
    let sig = smshook::signature::sign_hex(
        &smshook::signature::Secret::new(crate::support::secret_for("integify")),
        &body,
        "sha256=",
    );
    let answer = reqwest::Client::new()
        .post(format!("http://{}/webhooks/integify", server.addr))
        .header(p.signature_header, sig)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(answer.status(), 200);
    let first = receiver.next().await;
    server
        .child
        .kill()
        .expect("SIGKILL while the delivery hangs");
    let _ = tokio::task::spawn_blocking(move || server.child.wait()).await;

    let mut restarted = crate::durability::start_binary_with(dir.path(), &database, &extra);
    let second = receiver.next().await;
    assert_eq!(
        second.headers["webhook-id"], first.headers["webhook-id"],
        "the same event, sent again"
    );
    second.assert_signed();
    restarted.child.kill().expect("stop");
    let _ = tokio::task::spawn_blocking(move || restarted.child.wait()).await;
}

#[tokio::test]
async fn only_a_starting_server_releases_sqlite_leases_not_a_cli_reading_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db").display().to_string();
    let open = |server: bool| {
        let path = path.clone();
        async move {
            let options = smshook::store::StoreOptions {
                request_log_max_rows: 10,
                server,
            };
            smshook::store::open(&path, options).await.expect("open")
        }
    };
    let running = open(true).await;
    stored_event(&running, "app").await;
    let now = smshook::event::unix_millis() + 1000;
    assert_eq!(
        running
            .claim_deliveries(now, 600_000, 10)
            .await
            .expect("claim")
            .len(),
        1
    );

    let cli = open(false).await; // e.g. `smshook events` in another terminal
    cli.close().await;
    assert!(
        running
            .claim_deliveries(now, 600_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "still leased"
    );
    running.close().await;

    let restarted = open(true).await; // the server again, after a crash
    assert_eq!(
        restarted
            .claim_deliveries(now, 600_000, 10)
            .await
            .expect("claim")
            .len(),
        1,
        "released at start-up"
    );
    restarted.close().await;
}
