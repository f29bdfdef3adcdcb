//! The OpenAPI description, `docs/openapi.json`, against the real server:
//! it is served as written, every operation in it is answered, and every
//! answer provoked here, accepted or refused, is documented for its status
//! and matches the schema documented for it.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use smshook::providers::SampleIds;

use crate::receiver::TestReceiver;
use crate::support::{TOKEN, TestApp, TestOptions, provider, sample_bytes, secret_for};

const SPEC: &str = include_str!("../../docs/openapi.json");

/// The description, and the operations seen answered 2xx so far.
struct Spec {
    doc: Value,
    answered: BTreeSet<(String, String)>,
}

impl Spec {
    fn load() -> Self {
        let doc: Value = serde_json::from_str(SPEC).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        Self {
            doc,
            answered: BTreeSet::new(),
        }
    }

    /// Every (method, path) the description documents.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("path item").keys();
                methods.map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect()
    }

    /// Checks `response`, the answer of `method` on `template`: its status
    /// is documented, with the content type it came with, and a JSON body
    /// matches the schema documented for it. Returns status and body.
    async fn check(
        &mut self,
        method: &str,
        template: &str,
        response: reqwest::Response,
    ) -> (u16, Value) {
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let what = format!("{method} {template} {status}");
        let documented = self.response(method, template, status, &what);
        let content = &documented["content"][&kind];
        assert!(content.is_object(), "{what}: {kind:?} is not documented");
        let body = if kind == "application/json" {
            let body: Value = response.json().await.expect("a JSON body");
            self.validate(&content["schema"], &body, &what);
            body
        } else {
            Value::Null
        };
        if status < 300 {
            self.answered
                .insert((method.to_string(), template.to_string()));
        }
        (status, body)
    }

    /// The documented response, following a `$ref` to a shared one.
    fn response(&self, method: &str, template: &str, status: u16, what: &str) -> Value {
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(operation.is_object(), "{what}: not documented");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{what}: this status is not documented"
        );
        match response["$ref"].as_str() {
            Some(pointer) => {
                let pointer = pointer.trim_start_matches('#');
                self.doc.pointer(pointer).expect("$ref resolves").clone()
            }
            None => response.clone(),
        }
    }

    fn validate(&self, schema: &Value, body: &Value, what: &str) {
        // The schema's `$ref`s point into the description's components.
        let root = json!({"components": self.doc["components"], "allOf": [schema]});
        let validator = jsonschema::draft202012::new(&root).expect("a valid schema");
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{body:#}");
    }
}

#[tokio::test]
async fn every_answer_is_documented_and_matches_its_schema() {
    let mut spec = Spec::load();
    let receiver = TestReceiver::start(vec![]).await;
    let app = TestApp::spawn_with(TestOptions {
        destinations: vec![receiver.destination("app", &[1])],
        max_body_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    webhooks(&mut spec, &app).await;
    let (event_id, message_id) = events_and_requests(&mut spec, &app).await;
    statuses_and_optouts(&mut spec, &app, &message_id).await;
    deliveries(&mut spec, &app, &event_id).await;
    operations(&mut spec, &app).await;
    app.stop().await;

    let off = TestApp::spawn_with(TestOptions {
        api_token: None,
        ..Default::default()
    })
    .await;
    let (status, _) = spec
        .check("GET", "/api/events", get(&off, "/api/events", true).await)
        .await;
    assert_eq!(status, 403, "the API is off without a token");
    let (status, served) = spec
        .check(
            "GET",
            "/api/openapi.json",
            get(&off, "/api/openapi.json", false).await,
        )
        .await;
    assert_eq!(
        (status, &served),
        (200, &spec.doc),
        "served as written, API off or on"
    );
    off.stop().await;

    let missed: Vec<_> = spec
        .operations()
        .difference(&spec.answered)
        .cloned()
        .collect();
    assert!(
        missed.is_empty(),
        "documented but never answered 2xx here: {missed:?}"
    );
}

async fn get(app: &TestApp, path: &str, token: bool) -> reqwest::Response {
    let request = app.client.get(app.url(path));
    let request = if token {
        request.bearer_auth(TOKEN)
    } else {
        request
    };
    request.send().await.expect("send")
}

async fn post(app: &TestApp, path: &str) -> reqwest::Response {
    let request = app.client.post(app.url(path)).bearer_auth(TOKEN);
    request.send().await.expect("send")
}

/// Every answer of the webhook endpoint but 403 (a source's `allowed_ips`,
/// in `webhooks.rs`) and 503/504 (a failing store, in `durability.rs`).
async fn webhooks(spec: &mut Spec, app: &TestApp) {
    const WEBHOOK: &str = "/webhooks/{source}";
    let p = provider("integify");
    let body = sample_bytes(p, "sms.delivered");
    let secret = secret_for("integify");
    for duplicate in [false, true] {
        let answer = app.post_signed("integify", p, &body, &secret).await;
        let (status, answer) = spec.check("POST", WEBHOOK, answer).await;
        assert_eq!((status, &answer["duplicate"]), (200, &json!(duplicate)));
    }
    let textus = provider("textus");
    let stop = serde_json::to_vec(&(textus.sample)("contact.opted_out", &SampleIds::fresh()));
    let stop = stop.expect("json");
    let answer = app
        .post_signed("textus", textus, &stop, &secret_for("textus"))
        .await;
    assert_eq!(spec.check("POST", WEBHOOK, answer).await.0, 200);
    let twilio = provider("twilio");
    let inbound = sample_bytes(twilio, "received");
    let answer = app
        .post_signed("twilio", twilio, &inbound, &secret_for("twilio"))
        .await;
    assert_eq!(spec.check("POST", WEBHOOK, answer).await.0, 200, "TwiML");
    let events = provider("twilio-events");
    let sample = |t: &str| (events.sample)(t, &SampleIds::fresh());
    let batch = json!([
        sample("com.twilio.messaging.message.sent"),
        sample("com.twilio.messaging.inbound-message.received"),
    ]);
    let batch = serde_json::to_vec(&batch).expect("json");
    let answer = app
        .post_signed(
            "twilio-events",
            events,
            &batch,
            &secret_for("twilio-events"),
        )
        .await;
    let (status, answer) = spec.check("POST", WEBHOOK, answer).await;
    assert_eq!(
        (status, answer["events"].as_array().map(Vec::len)),
        (200, Some(2))
    );

    let unsigned = app.post_unsigned("/webhooks/integify").await;
    assert_eq!(spec.check("POST", WEBHOOK, unsigned).await.0, 401);
    let malformed = app.post_signed("integify", p, b"{oops", &secret).await;
    assert_eq!(spec.check("POST", WEBHOOK, malformed).await.0, 400);
    for nobody in ["/webhooks/nobody", "/webhooks/%FF"] {
        let unknown = app.post_unsigned(nobody).await;
        assert_eq!(
            spec.check("POST", WEBHOOK, unknown).await.0,
            404,
            "{nobody}"
        );
    }
    let oversize = app
        .post_signed("integify", p, &vec![b' '; 64 * 1024 + 1], &secret)
        .await;
    assert_eq!(spec.check("POST", WEBHOOK, oversize).await.0, 413);
    let wrong_method = app.get("/webhooks/integify").await;
    let (status, _) = spec.check("GET", WEBHOOK, wrong_method).await;
    assert_eq!(status, 405);
    // Vonage's SMS API, GET: signed in the query.
    let vonage = provider("vonage-sms");
    let sample = (vonage.sample)("delivered", &SampleIds::fresh());
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in sample.as_object().expect("an object") {
        form.append_pair(name, value.as_str().expect("text"));
    }
    let now = chrono::Utc::now().timestamp();
    let query = vonage
        .sign_body(&secret_for("vonage-sms"), form.finish().as_bytes(), now)
        .expect("signed");
    let query = String::from_utf8(query).expect("text");
    let answer = app.get(&format!("/webhooks/vonage-sms?{query}")).await;
    assert_eq!(spec.check("GET", WEBHOOK, answer).await.0, 200);
    let unsigned = app.get("/webhooks/vonage-sms?msisdn=1").await;
    assert_eq!(spec.check("GET", WEBHOOK, unsigned).await.0, 401);
}

/// Listings with every parameter, one event, the request log, and the
/// API's refusals. Returns the first event's id and message id.
async fn events_and_requests(spec: &mut Spec, app: &TestApp) -> (String, String) {
    let listings = [
        "/api/events?after=&since=&until=",
        "/api/events?limit=1&order=desc",
        "/api/events?source=integify&type=message.delivered&since=2026-01-01T00:00:00Z",
        "/api/events?until=2999-01-01T00:00:00%2B01:00&after=0&number=%2B2203001234",
    ];
    let mut first = Value::Null;
    for path in listings {
        let (status, page) = spec
            .check("GET", "/api/events", get(app, path, true).await)
            .await;
        assert_eq!(status, 200, "{path}");
        first = page["events"][0].clone();
    }
    let event_id = first["id"].as_str().expect("id").to_string();
    let message_id = first["message_id"]
        .as_str()
        .expect("message id")
        .to_string();
    let by_message = format!("/api/events?message_id={message_id}");
    let (_, page) = spec
        .check("GET", "/api/events", get(app, &by_message, true).await)
        .await;
    assert_eq!(page["events"][0]["id"], event_id.as_str());
    let one = get(app, &format!("/api/events/{event_id}"), true).await;
    assert_eq!(spec.check("GET", "/api/events/{id}", one).await.0, 200);
    let none = get(app, "/api/events/evt_none", true).await;
    assert_eq!(spec.check("GET", "/api/events/{id}", none).await.0, 404);
    let not_utf8 = get(app, "/api/events/%FF", true).await;
    assert_eq!(spec.check("GET", "/api/events/{id}", not_utf8).await.0, 400);

    for path in [
        "/api/requests",
        "/api/requests?refused=true&order=desc&since=2026-01-01T00:00:00Z",
    ] {
        let (status, page) = spec
            .check("GET", "/api/requests", get(app, path, true).await)
            .await;
        assert_eq!(status, 200, "{path}");
        assert!(!page["requests"].as_array().expect("requests").is_empty());
    }
    for path in [
        "/api/events?limit=0",
        "/api/events?since=soon",
        "/api/events?after=x",
    ] {
        let refused = get(app, path, true).await;
        assert_eq!(
            spec.check("GET", "/api/events", refused).await.0,
            400,
            "{path}"
        );
    }
    for path in ["/api/stats", "/api/stats?since=2026-01-01T00:00:00Z&until="] {
        let (status, stats) = spec
            .check("GET", "/api/stats", get(app, path, true).await)
            .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(stats["outcomes"][0]["delivered"], 1, "{stats}");
    }
    sources(spec, app).await;
    let no_token = get(app, "/api/events", false).await;
    assert_eq!(spec.check("GET", "/api/events", no_token).await.0, 401);
    (event_id, message_id)
}

/// Every source, as it runs, with what a provider is to be given and no
/// secret.
async fn sources(spec: &mut Spec, app: &TestApp) {
    let listed = get(app, "/api/sources", true).await;
    let (status, listed) = spec.check("GET", "/api/sources", listed).await;
    assert_eq!(status, 200);
    let sources = listed["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), smshook::providers::ALL.len());
    let named = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed}"))
    };
    let integify = named("integify");
    assert_eq!(integify["path"], "/webhooks/integify");
    assert_eq!(
        (&integify["methods"], &integify["credentials"]),
        (&json!(["POST"]), &json!(2))
    );
    assert_eq!(named("vonage-sms")["methods"], json!(["GET", "POST"]));
    assert_eq!(named("twilio")["public_url"], crate::support::PUBLIC_URL);
    assert_eq!(named("telnyx")["credential_kind"], "public key");
    assert_eq!(named("aws-sns")["certificates"], "pinned");
    let text = listed.to_string();
    for p in smshook::providers::ALL {
        assert!(
            !text.contains(&secret_for(p.name)),
            "no secret of {}",
            p.name
        );
    }
}

async fn statuses_and_optouts(spec: &mut Spec, app: &TestApp, message_id: &str) {
    let message = get(app, &format!("/api/messages/{message_id}"), true).await;
    let (status, state) = spec
        .check("GET", "/api/messages/{message_id}", message)
        .await;
    assert_eq!((status, state["status"].as_str()), (200, Some("delivered")));
    let unknown = get(app, "/api/messages/msg_none?source=integify", true).await;
    assert_eq!(
        spec.check("GET", "/api/messages/{message_id}", unknown)
            .await
            .0,
        404
    );

    let (status, page) = spec
        .check(
            "GET",
            "/api/optouts",
            get(app, "/api/optouts?limit=10", true).await,
        )
        .await;
    assert_eq!(status, 200);
    let number = page["optouts"][0]["number"].as_str().expect("an opt-out");
    let path = format!("/api/optouts/{}", number.replace('+', "%2B"));
    let (status, optout) = spec
        .check("GET", "/api/optouts/{number}", get(app, &path, true).await)
        .await;
    assert_eq!((status, &optout["opted_out"]), (200, &json!(true)));
    let unknown = get(app, "/api/optouts/%2B10000000000", true).await;
    assert_eq!(
        spec.check("GET", "/api/optouts/{number}", unknown).await.0,
        404
    );
}

async fn deliveries(spec: &mut Spec, app: &TestApp, event_id: &str) {
    let replay = post(app, &format!("/api/events/{event_id}/replay")).await;
    let (status, replayed) = spec.check("POST", "/api/events/{id}/replay", replay).await;
    assert_eq!(
        (status, replayed["destination"].as_str()),
        (202, Some("app"))
    );
    let nowhere = post(
        app,
        &format!("/api/events/{event_id}/replay?destination=nowhere"),
    )
    .await;
    assert_eq!(
        spec.check("POST", "/api/events/{id}/replay", nowhere)
            .await
            .0,
        400
    );
    let missing = post(app, "/api/events/evt_none/replay").await;
    assert_eq!(
        spec.check("POST", "/api/events/{id}/replay", missing)
            .await
            .0,
        404
    );

    let listed = get(app, "/api/destinations", true).await;
    let (status, listed) = spec.check("GET", "/api/destinations", listed).await;
    assert_eq!(status, 200);
    let app_destination = &listed["destinations"][0];
    assert_eq!(
        (&app_destination["name"], &app_destination["kind"]),
        (&json!("app"), &json!("http"))
    );
    let target = app_destination["target"].as_str().expect("target");
    assert!(
        target.starts_with("http://127.0.0.1:") && target.ends_with("(1 signing secret)"),
        "{target}"
    );

    let list = get(app, "/api/deliveries?destination=app&limit=10", true).await;
    let (status, page) = spec.check("GET", "/api/deliveries", list).await;
    assert_eq!(status, 200);
    let id = page["deliveries"][0]["id"].as_i64().expect("a delivery");
    let one = get(app, &format!("/api/deliveries/{id}"), true).await;
    assert_eq!(spec.check("GET", "/api/deliveries/{id}", one).await.0, 200);
    for (path, status) in [
        ("/api/deliveries/999999", 404),
        ("/api/deliveries/-9223372036854775808", 404),
        ("/api/deliveries/9223372036854775808", 400),
    ] {
        let none = get(app, path, true).await;
        assert_eq!(
            spec.check("GET", "/api/deliveries/{id}", none).await.0,
            status,
            "{path}"
        );
    }
    let bad_state = get(app, "/api/deliveries?state=lost", true).await;
    assert_eq!(spec.check("GET", "/api/deliveries", bad_state).await.0, 400);
    let retry = post(app, "/api/deliveries/retry").await;
    let (status, retried) = spec.check("POST", "/api/deliveries/retry", retry).await;
    assert_eq!((status, retried["retried"].as_u64()), (200, Some(0)));
}

/// The stream (its head: it never ends), metrics, health, readiness and
/// the description itself.
async fn operations(spec: &mut Spec, app: &TestApp) {
    let stream = get(
        app,
        "/api/stream?type=message.delivered&opt_out=false&since=2026-01-01T00:00:00Z",
        true,
    )
    .await;
    assert_eq!(spec.check("GET", "/api/stream", stream).await.0, 200);
    let resume = app
        .api_with_header("/api/stream", ("last-event-id", "not-a-cursor"))
        .await;
    assert_eq!(spec.check("GET", "/api/stream", resume).await.0, 400);
    assert_eq!(
        spec.check("GET", "/metrics", app.metrics().await).await.0,
        200
    );
    for path in ["/healthz", "/readyz"] {
        let (status, health) = spec.check("GET", path, app.get(path).await).await;
        assert_eq!((status, &health["ok"]), (200, &json!(true)), "{path}");
    }
    let served = app.get("/api/openapi.json").await;
    assert_eq!(spec.check("GET", "/api/openapi.json", served).await.0, 200);
}
