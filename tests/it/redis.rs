//! Redis Streams destinations against a real server
//! (`SMSHOOK_TEST_REDIS_URL`, e.g. redis://127.0.0.1:6379): entries are
//! read back from the stream, a retry after a lost answer adds nothing, a
//! replay adds the event again, and an unreachable Redis is retried without
//! its password in the recorded error. The `rediss://` test starts a
//! `redis-server` of its own with TLS (and makes its certificate with
//! `openssl`); without either command it skips, saying so.

use std::collections::HashMap;
use std::time::Duration;

use smshook::dispatch::redis::{Connection, Stream};
use smshook::dispatch::{Answer, Brokers, Destination, Filter, Target};
use smshook::event::Event;
use smshook::store::Store;

use crate::support::{TestApp, TestOptions, provider, skip_notice};

fn redis_url() -> Option<String> {
    let url = std::env::var("SMSHOOK_TEST_REDIS_URL").ok();
    if url.is_none() {
        skip_notice("Redis", "SMSHOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    }
    url
}

fn destination(stream: &str) -> Destination {
    Destination {
        name: "worker".into(),
        target: Target::Redis {
            stream: stream.into(),
            max_len: None,
        },
        filter: Filter::default(),
        timeout: Duration::from_secs(5),
        schedule: vec![Duration::from_secs(60)],
    }
}

fn with_redis(destination: Destination, url: &str) -> TestOptions {
    TestOptions {
        destinations: vec![destination],
        brokers: Brokers {
            nats_url: None,
            redis_url: Some(url.into()),
        },
        ..Default::default()
    }
}

/// A stream key no other run uses.
fn fresh_stream() -> String {
    format!("smshook-test:{}", rand::random::<u32>())
}

/// Every entry of `stream`: its fields by name, oldest first.
async fn entries(url: &str, stream: &str) -> Vec<HashMap<String, String>> {
    let mut con = ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let rows: Vec<(String, HashMap<String, String>)> = ::redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    let _: () = ::redis::cmd("DEL")
        .arg(stream)
        .query_async(&mut con)
        .await
        .expect("DEL");
    rows.into_iter().map(|(_, fields)| fields).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_stream_entries_and_a_replay_is_added_again() {
    let Some(url) = redis_url() else { return };
    let stream = fresh_stream();
    let app = TestApp::spawn_with(with_redis(destination(&stream), &url)).await;
    let ids = app.two_events_and_a_replay().await;
    app.stop().await;

    let entries = entries(&url, &stream).await;
    assert_eq!(entries.len(), 3, "two events, and the replay again");
    let mut seen: Vec<(String, String)> = Vec::new();
    for entry in &entries {
        let event: serde_json::Value = serde_json::from_str(&entry["event"]).expect("json");
        assert_eq!(event["id"], entry["event_id"].as_str(), "{entry:?}");
        assert_eq!(event["type"], entry["type"].as_str(), "{entry:?}");
        assert_eq!(entry["source"], "integify");
        assert!(
            event["payload"].is_object(),
            "the original payload rides along"
        );
        seen.push((entry["event_id"].clone(), entry["type"].clone()));
    }
    // Deliveries are sent concurrently: compare as sets.
    seen.sort();
    let mut expected = vec![
        (ids[0].clone(), "message.delivered".to_string()),
        (ids[0].clone(), "message.delivered".to_string()),
        (ids[1].clone(), "message.received".to_string()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

/// Redis wrote the entry but the answer was lost: the delivery is tried
/// again, and its marker keeps a second entry out. Another delivery of the
/// same event (a replay) is added. `redis_max_len` trims the stream.
#[tokio::test]
async fn a_retried_delivery_is_added_once_and_max_len_trims() {
    let Some(url) = redis_url() else { return };
    let stream = fresh_stream();
    let connection = Connection::new(Some(url.clone()));
    let plain = Stream {
        key: &stream,
        max_len: None,
    };
    let event = event().await;
    for delivery in [41, 41, 41, 42] {
        let answer = connection
            .add(&plain, Duration::from_secs(5), delivery, &event)
            .await;
        assert!(matches!(answer, Answer::Success(None)), "{answer:?}");
    }
    assert_eq!(
        entries(&url, &stream).await.len(),
        2,
        "delivery 41 once, 42 once"
    );

    let trimmed = Stream {
        key: &stream,
        max_len: Some(10),
    };
    for delivery in 0..500 {
        let answer = connection
            .add(&trimmed, Duration::from_secs(5), delivery, &event)
            .await;
        assert!(matches!(answer, Answer::Success(None)), "{answer:?}");
    }
    let kept = entries(&url, &stream).await.len();
    // `MAXLEN ~` trims whole nodes of the stream (100 entries by default).
    assert!((10..=200).contains(&kept), "{kept} of 500 kept");
}

/// Redis down: the attempt fails, is recorded with a reason and no
/// password, and stays pending for the next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_retried_and_its_password_never_shown() {
    let Some(_) = redis_url() else { return };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("redis://:sekrit-pass@127.0.0.1:{closed}/0");
    let app = TestApp::spawn_with(with_redis(destination(&fresh_stream()), &url)).await;
    let (_, status, _) = app.send_sample(provider("msgine"), "message.sent").await;
    assert_eq!(status, 200);
    let delivery = app.wait_deliveries("pending", 1).await;
    for _ in 0..100 {
        let (_, d) = app.api("/api/deliveries?state=pending").await;
        let error = &d["deliveries"][0]["last_error"];
        if let Some(error) = error.as_str() {
            assert!(error.contains("cannot reach Redis"), "{error}");
            assert!(!error.contains("sekrit"), "{error}");
            app.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no failed attempt recorded: {delivery}");
}

/// `rediss://`: the binary adds its entries over TLS, verifying the
/// server's certificate against the roots it is given (`SSL_CERT_FILE`,
/// as a private CA's users would).
#[tokio::test]
async fn the_binary_adds_entries_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(tls) = crate::tls::self_signed(dir.path(), "redis") else {
        return;
    };
    let Some(redis) = TlsRedis::start(&tls) else {
        return;
    };
    let database = dir.path().join("events.db").display().to_string();
    // Appended after the source's table: the URL comes from the variable.
    let extra = "[[destinations]]\nname = \"worker\"\nredis_stream = \"tls:events\"\n";
    let mut command = crate::durability::serve_command(dir.path(), &database, extra);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    command
        .env("SMSHOOK_REDIS_URL", url)
        .env("SSL_CERT_FILE", &tls.cert);
    let server = crate::durability::start(command);
    let client = reqwest::Client::new();
    let answer = crate::durability::send_event(&client, &server.addr).await;
    assert_eq!(answer.expect("send").status(), 200);
    for _ in 0..200 {
        if redis.cli(&["XLEN", "tls:events"]) == "1" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no entry over TLS; XLEN {}",
        redis.cli(&["XLEN", "tls:events"])
    );
}

/// A `redis-server` serving TLS only, on a free port, stopped on drop.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    cert: std::path::PathBuf,
}

impl TlsRedis {
    fn start(tls: &smshook::config::TlsFiles) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let spawned = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&tls.cert)
            .arg("--tls-key-file")
            .arg(&tls.key)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            eprintln!("SKIPPED a Redis TLS test: needs the redis-server command");
            return None;
        };
        let redis = Self {
            child,
            port,
            cert: tls.cert.clone(),
        };
        for _ in 0..100 {
            if redis.cli(&["PING"]) == "PONG" {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server never served TLS on {port}");
    }

    /// `redis-cli` over TLS; its output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["--tls", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("--cacert")
            .arg(&self.cert)
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stored event, as the dispatcher hands it over (from the in-memory
/// store, which keeps what it is given).
async fn event() -> Event {
    let store = crate::memory::MemoryOutbox::default();
    let new = crate::storage::event("integify", "k", "message.delivered", None);
    let id = new.id.clone();
    let log = crate::storage::request("integify", 200, "accepted");
    store.insert_event(new, log).await.expect("insert");
    store.event(&id).await.expect("read").expect("stored")
}
