//! `TestApp`: the real server on 127.0.0.1:0 with every provider configured,
//! plus typed helpers to send signed webhooks and query the API.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use smshook::config::{Config, Source};
use smshook::http::{self, App};
use smshook::providers::{self, Format, Provider, SampleIds};
use smshook::signature::Secret;
use smshook::signature::public_url::PublicUrl;
use smshook::signature::sns;
use smshook::store::{self, EventQuery, RequestQuery, Store, StoreOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-api-token";

/// The secret the test app gives `provider`'s source.
pub fn secret_for(provider: &str) -> String {
    signing_key(format!("whsec-{provider}-current"), provider)
}

/// The older secret still accepted on every source (rotation).
pub fn old_secret_for(provider: &str) -> String {
    signing_key(format!("whsec-{provider}-previous"), provider)
}

/// A key that signs as `provider` does but that no source takes.
pub fn wrong_secret_for(provider: &str) -> String {
    signing_key(format!("whsec-{provider}-wrong"), provider)
}

/// `name` as an HMAC secret; for an Ed25519 provider, a private key made
/// from it (base64 of its SHA-256, a 32-byte seed), and for Telesign an API
/// key made so. The source verifies
/// with `Provider::verifier_for` it.
fn signing_key(name: String, provider: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    match providers::find(provider).map(|p| p.scheme) {
        // An Ed25519 seed, or Telesign's API key: base64.
        Some(providers::Scheme::Ed25519 { .. } | providers::Scheme::DecodedKeyHmac) => {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(name))
        }
        Some(providers::Scheme::SnsCertificate) => rsa_key(&name),
        _ => name,
    }
}

/// An RSA private key (PEM) for `name`, made once per run: Amazon SNS
/// signs with one.
fn rsa_key(name: &str) -> String {
    static KEYS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut keys = KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, key)) = keys.iter().find(|(n, _)| n == name) {
        return key.clone();
    }
    let key = smshook::signature::sns::new_private_key().expect("an RSA key");
    keys.push((name.to_string(), key.clone()));
    key
}

/// Which store a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A URL whose `search_path` is a schema of this test's own.
    Postgres(String),
}

impl Backend {
    /// A fresh schema on `SMSHOOK_TEST_POSTGRES_URL`, or `None` (with a
    /// visible message) when the variable is unset.
    pub async fn postgres() -> Option<Backend> {
        let Ok(base) = std::env::var("SMSHOOK_TEST_POSTGRES_URL") else {
            skip_notice(
                "PostgreSQL",
                "SMSHOOK_TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            );
            return None;
        };
        Some(Backend::Postgres(fresh_schema(&base).await))
    }
}

/// Says once per run, past libtest's output capture, that a service's tests
/// are skipped and how to turn them on.
pub fn skip_notice(service: &str, var: &str, example: &str) {
    use std::io::Write;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.iter().any(|s| s == service) {
        said.push(service.to_string());
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPING {service} tests: set {var} (e.g. {example}) to run them\n"
        );
    }
}

/// Creates `smshook_t<unix time>_<random>` and returns a URL using it; drops
/// test schemas over an hour old, so repeated runs do not pile up.
pub async fn fresh_schema(base: &str) -> String {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to test PostgreSQL");
    tokio::spawn(conn);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let stale = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'smshook_t%'",
            &[],
        )
        .await
        .expect("list schemas");
    for row in stale {
        let name: String = row.get(0);
        let born: u64 = name
            .trim_start_matches("smshook_t")
            .split('_')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if born + 3600 < now {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
    let schema = format!("smshook_t{now}_{}", rand::random::<u32>());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
}

/// Runs each named `async fn(Backend)` as two tests, `<name>::sqlite` and
/// `<name>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::support::Backend::postgres().await {
                    super::$name(backend).await
                }
            }
        }
    )*};
}

pub struct TestOptions {
    pub backend: Backend,
    pub destinations: Vec<smshook::dispatch::Destination>,
    pub brokers: smshook::dispatch::Brokers,
    pub database: Option<PathBuf>,
    pub store: Option<Arc<dyn Store>>,
    pub ack_deadline: Duration,
    pub max_body_bytes: usize,
    pub max_body_bytes_in_flight: usize,
    pub max_connections: usize,
    pub request_log_max_rows: u64,
    pub api_token: Option<&'static str>,
    pub trusted_proxies: &'static [&'static str],
    /// `allowed_ips` by source name; sources not named accept any address.
    pub allowed_ips: &'static [(&'static str, &'static [&'static str])],
    pub idle_timeout: Duration,
    /// Sources beside one per provider.
    pub extra_sources: Vec<Source>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            destinations: Vec::new(),
            brokers: Default::default(),
            database: None,
            store: None,
            ack_deadline: Duration::from_secs(4),
            max_body_bytes: 1 << 20,
            max_body_bytes_in_flight: 64 << 20,
            max_connections: 1024,
            request_log_max_rows: 100_000,
            api_token: Some(TOKEN),
            trusted_proxies: &[],
            allowed_ips: &[],
            idle_timeout: Duration::from_secs(130),
            extra_sources: Vec::new(),
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The SQLite file (meaningful for the SQLite backend only).
    pub db_path: PathBuf,
    /// The database URL or path the server uses, whatever the backend.
    pub database: String,
    /// Holds the database directory for the test's lifetime.
    pub dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Where a provider that signs its URL (Twilio, Bird) would post, as the
/// test's sources of those say: a public URL behind a proxy, not the test
/// server's own address.
pub const PUBLIC_URL: &str = "https://hooks.smshook.test/webhooks/twilio";

/// One source per provider, named after it, accepting two secrets.
pub fn all_sources() -> Vec<Source> {
    providers::ALL
        .iter()
        .map(|p| {
            let verifiers = [old_secret_for(p.name), secret_for(p.name)]
                .iter()
                .map(|s| p.verifier_for(s).expect("a signing key"))
                .collect::<Vec<_>>();
            let sns = p.scheme == providers::Scheme::SnsCertificate;
            Source {
                name: p.name.to_string(),
                provider: p,
                secrets: if sns {
                    vec![Secret::new(sns::SAMPLE_TOPIC_ARN)]
                } else {
                    verifiers.iter().map(Secret::new).collect()
                },
                allowed: None,
                public_url: p
                    .signs_url()
                    .then(|| PublicUrl::parse(PUBLIC_URL).expect("a URL")),
                certificates: sns.then(|| pinned(&verifiers)),
            }
        })
        .collect()
}

/// An SNS source's certificates: these public keys (PEM), pinned.
pub fn pinned(keys: &[String]) -> Arc<sns::Certificates> {
    Arc::new(sns::Certificates::from_pems(keys).expect("public keys"))
}

/// The payload stored for `body`: the JSON itself, a form's parameters as
/// a JSON object, or a batch of one's event.
pub fn sent_payload(provider: &Provider, body: &[u8]) -> Value {
    match provider.format {
        Format::Form => {
            serde_json::from_str(&smshook::providers::payload::form_body_json(body)).expect("json")
        }
        Format::Object => serde_json::from_slice(body).expect("json"),
        Format::Batch => match serde_json::from_slice(body).expect("json") {
            Value::Array(mut events) if events.len() == 1 => events.remove(0),
            other => panic!("not a batch of one: {other}"),
        },
    }
}

/// A fresh sample of `event_type` as `provider` sends it (JSON or a form;
/// Vonage's SMS API's with its `sig` inside, under the source's secret).
pub fn sample_bytes(provider: &Provider, event_type: &str) -> Vec<u8> {
    let body = provider.encode(&(provider.sample)(event_type, &SampleIds::fresh()));
    let now = chrono::Utc::now().timestamp();
    provider
        .sign_body(&secret_for(provider.name), &body, now)
        .expect("signed")
}

/// Part `number` of `total` of a long inbound message (sender's reference
/// `reference`) to Vonage's SMS API's source, as JSON, with `text`; signed
/// when sent (`TestApp::send_body`).
pub fn vonage_part(reference: &str, total: u16, number: u16, text: &str) -> Vec<u8> {
    let mut sample = (provider("vonage-sms").sample)("inbound", &SampleIds::fresh());
    let (total, number) = (total.to_string(), number.to_string());
    let concat = [
        ("text", text),
        ("concat", "true"),
        ("concat-ref", reference),
        ("concat-total", &total),
        ("concat-part", &number),
    ];
    for (key, value) in concat {
        sample[key] = Value::from(value);
    }
    serde_json::to_vec(&sample).expect("json")
}

/// `sources` with the `allowed_ips` named for them.
fn limited(mut sources: Vec<Source>, allowed: &[(&str, &[&str])]) -> Vec<Source> {
    for (name, ips) in allowed {
        let source = sources
            .iter_mut()
            .find(|s| s.name == *name)
            .expect("a source");
        source.allowed = Some(smshook::http::Networks::parse(ips).expect("allowed_ips"));
    }
    sources
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn on(backend: Backend) -> TestApp {
        Self::spawn_with(TestOptions {
            backend,
            ..Default::default()
        })
        .await
    }

    pub async fn spawn_with(o: TestOptions) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let db_path = o
            .database
            .clone()
            .unwrap_or_else(|| dir.path().join("events.db"));
        Self::spawn_in(dir, db_path, o).await
    }

    /// Starts a server on an existing database (e.g. after a restart).
    pub async fn spawn_in(
        dir: Arc<tempfile::TempDir>,
        db_path: PathBuf,
        o: TestOptions,
    ) -> TestApp {
        let database = match &o.backend {
            Backend::Sqlite => db_path.display().to_string(),
            Backend::Postgres(url) => url.clone(),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database: database.clone(),
            max_body_bytes: o.max_body_bytes,
            max_body_bytes_in_flight: o.max_body_bytes_in_flight,
            max_connections: o.max_connections,
            ack_deadline: o.ack_deadline,
            idle_timeout: o.idle_timeout,
            file_check_interval: Duration::from_secs(60),
            request_log_max_rows: o.request_log_max_rows,
            retention: None,
            sources: limited(
                all_sources()
                    .into_iter()
                    .chain(o.extra_sources.clone())
                    .collect(),
                o.allowed_ips,
            ),
            destinations: o.destinations.clone(),
            brokers: o.brokers.clone(),
            api_token: o.api_token.map(Secret::new),
            trusted_proxies: smshook::http::TrustedProxies::parse(o.trusted_proxies)
                .expect("trusted proxies"),
            secret_files: Vec::new(),
            certificate_files: Vec::new(),
            tls: None,
        };
        let store = match o.store {
            Some(store) => store,
            None => open_as(&database, o.request_log_max_rows, true).await,
        };
        let listener = smshook::http::bind(config.listen).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(http::run(listener, App::new(&config, store), async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            client: reqwest::Client::new(),
            db_path,
            database,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A GET without credentials (health, readiness, refusals).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("send")
    }

    /// An API GET with the bearer token and one more header.
    pub async fn api_with_header(
        &self,
        path: &str,
        (name, value): (&str, &str),
    ) -> reqwest::Response {
        let request = self.client.get(self.url(path)).bearer_auth(TOKEN);
        request.header(name, value).send().await.expect("send")
    }

    /// `GET /metrics` with the bearer token.
    pub async fn metrics(&self) -> reqwest::Response {
        let request = self.client.get(self.url("/metrics")).bearer_auth(TOKEN);
        request.send().await.expect("send")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful stop: in-flight requests finish, the store is flushed and closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    /// POSTs `{}` to `path` with no signature (refusals, unknown sources).
    pub async fn post_unsigned(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body("{}")
            .send()
            .await
            .expect("send")
    }

    /// POSTs `body` to `/webhooks/<source>` signed with `secret` the way
    /// `provider` signs.
    pub async fn post_signed(
        &self,
        source: &str,
        provider: &Provider,
        body: &[u8],
        secret: &str,
    ) -> reqwest::Response {
        let now = chrono::Utc::now().timestamp();
        let url = provider.url_for(PUBLIC_URL, body);
        let mut headers = provider.sign(secret, body, now, &url).expect("signed");
        headers.push(("content-type", provider.content_type().to_string()));
        let query = url
            .split_once('?')
            .map_or(String::new(), |(_, q)| format!("?{q}"));
        self.post_with(&format!("{source}{query}"), &headers, body)
            .await
    }

    /// POSTs `body` to `/webhooks/<source>` with these headers.
    pub async fn post_with(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(&format!("/webhooks/{source}")));
        if !headers.iter().any(|(name, _)| *name == "content-type") {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body.to_vec()).send().await.expect("request")
    }

    /// A fresh sample of `event_type`, sent to the provider's own source with
    /// its current secret. Returns the body sent, the status and the answer.
    pub async fn send_sample(
        &self,
        provider: &Provider,
        event_type: &str,
    ) -> (Vec<u8>, u16, Value) {
        let body = sample_bytes(provider, event_type);
        let (status, answer) = self.send_body(provider, &body).await;
        (body, status, answer)
    }

    /// POSTs `body` signed as `provider` signs; a body that carries its
    /// signature inside (Vonage's SMS API) is signed first, where it can be
    /// (the same body again when it was signed already), else sent as is.
    pub async fn send_body(&self, provider: &Provider, body: &[u8]) -> (u16, Value) {
        let secret = secret_for(provider.name);
        let now = chrono::Utc::now().timestamp();
        let body = &provider
            .sign_body(&secret, body, now)
            .unwrap_or_else(|_| body.to_vec());
        let response = self
            .post_signed(provider.name, provider, body, &secret)
            .await;
        let status = response.status().as_u16();
        (status, answer_json(response).await)
    }

    /// GET an API path with the bearer token; returns status and JSON.
    pub async fn api(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/events/{id}/replay` with the bearer token; its status.
    pub async fn replay(&self, event_id: &str) -> u16 {
        let response = self
            .client
            .post(self.url(&format!("/api/events/{event_id}/replay")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        response.status().as_u16()
    }

    /// Two Integify events (sms.delivered, sms.received) for the app's one
    /// destination, then the first replayed: their ids, once the three
    /// deliveries are made.
    pub async fn two_events_and_a_replay(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for t in ["sms.delivered", "sms.received"] {
            let (_, status, answer) = self.send_sample(provider("integify"), t).await;
            assert_eq!(status, 200);
            ids.push(answer["event_id"].as_str().expect("id").to_string());
        }
        self.wait_deliveries("delivered", 2).await;
        assert_eq!(self.replay(&ids[0]).await, 202);
        self.wait_deliveries("delivered", 3).await;
        ids
    }

    /// Waits (5 s at most) until `n` deliveries are in `state`; the listing.
    pub async fn wait_deliveries(&self, state: &str, n: usize) -> Value {
        for _ in 0..100 {
            let (_, page) = self.api(&format!("/api/deliveries?state={state}")).await;
            if page["deliveries"].as_array().is_some_and(|d| d.len() == n) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{n} deliveries never {state}: {}",
            self.api("/api/deliveries").await.1
        );
    }

    /// The stored event a webhook's JSON answer names (`event_id`).
    pub async fn event_answered(&self, answer: &Value) -> Value {
        let id = answer["event_id"].as_str().expect("an event_id");
        let (status, event) = self.api(&format!("/api/events/{id}")).await;
        assert_eq!(status, 200, "{event}");
        event
    }

    pub async fn events(&self, query: &str) -> Vec<Value> {
        let (status, page) = self.api(&format!("/api/events?limit=1000&{query}")).await;
        assert_eq!(status, 200, "{page}");
        page["events"].as_array().expect("events array").clone()
    }

    pub async fn requests(&self) -> Vec<Value> {
        let (status, page) = self.api("/api/requests?limit=1000").await;
        assert_eq!(status, 200, "{page}");
        page["requests"].as_array().expect("requests array").clone()
    }
}

/// A store opened as a command beside the server would open it.
pub async fn open_url(url: &str, max_rows: u64) -> Arc<dyn Store> {
    open_as(url, max_rows, false).await
}

/// A store opened as `smshook serve` opens it: reads of events stop at the
/// last one synced, and leases left by a dead process are released.
pub async fn open_as(url: &str, max_rows: u64, server: bool) -> Arc<dyn Store> {
    store::open(
        url,
        StoreOptions {
            request_log_max_rows: max_rows,
            server,
        },
    )
    .await
    .expect("open store")
}

/// The ids of the (first 1000) events stored at `url`, read by a store of
/// its own, as a restarted server would see them.
pub async fn stored_ids(url: &str) -> HashSet<String> {
    let store = open_url(url, 1000).await;
    let events = store
        .events(&EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    store.close().await;
    events.into_iter().map(|e| e.id).collect()
}

/// How many requests the log at `url` (its first 1000) answered 503, each
/// with reason `storage_unavailable`.
pub async fn logged_503s(url: &str) -> usize {
    let store = open_url(url, 1000).await;
    let log = store
        .requests(&RequestQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("request log");
    store.close().await;
    let outage: Vec<_> = log.iter().filter(|r| r.status == 503).collect();
    assert!(outage.iter().all(|r| r.reason == "storage_unavailable"));
    outage.len()
}

pub fn provider(name: &str) -> &'static Provider {
    providers::find(name).expect("provider")
}

/// A webhook's answer as JSON: a TwiML acknowledgement (Twilio's) as the
/// `{"ok","event_id","duplicate"}` its headers carry, and a batch of one's
/// (Twilio Event Streams') as its event's, so every provider's answers read
/// alike (a batch's own answer is tested where batches are).
pub async fn answer_json(response: reqwest::Response) -> Value {
    let headers = response.headers().clone();
    if headers.get("content-type").is_some_and(|t| t == "text/xml") {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let body = response.text().await.expect("text");
        assert!(body.ends_with("<Response></Response>"), "{body}");
        return serde_json::json!({
            "ok": true,
            "event_id": header("smshook-event-id"),
            "duplicate": header("smshook-duplicate").as_deref() == Some("true"),
        });
    }
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match answer["events"].as_array().map(Vec::as_slice) {
        Some([event]) => serde_json::json!({
            "ok": answer["ok"],
            "event_id": event["event_id"],
            "duplicate": event["duplicate"],
        }),
        _ => answer,
    }
}
