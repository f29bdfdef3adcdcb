//! The query API, the request log and the health endpoints.

use serde_json::Value;
use smshook::signature::{Secret, sign_hex};

use crate::support::{Backend, TestApp, TestOptions, provider, sample_bytes, secret_for};

crate::on_both_backends!(
    events_page_in_arrival_order_with_filters,
    events_and_requests_in_a_time_range,
    bad_queries_and_unknown_ids_are_clear_errors,
    the_request_log_explains_every_answer_and_never_holds_a_secret,
    an_unauthenticated_flood_cannot_grow_the_request_log_without_bound,
    health_and_readiness,
    metrics_count_answers_events_and_the_delivery_backlog,
);

#[tokio::test]
async fn the_api_needs_the_bearer_token() {
    let app = TestApp::spawn().await;
    let bare = app.get("/api/events").await;
    assert_eq!(bare.status(), 401);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .get(app.url("/api/events"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    assert_eq!(app.api("/api/events").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn without_a_token_the_api_is_off_and_says_so() {
    let app = TestApp::spawn_with(TestOptions {
        api_token: None,
        ..Default::default()
    })
    .await;
    let response = app
        .client
        .get(app.url("/api/events"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "api_disabled");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("SMSHOOK_API_TOKEN")
    );
    app.stop().await;
}

async fn events_page_in_arrival_order_with_filters(backend: Backend) {
    let app = TestApp::on(backend).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let (p, t) = if i % 5 == 0 {
            ("msgine", "message.failed")
        } else {
            ("integify", "sms.delivered")
        };
        let (_, status, answer) = app.send_sample(provider(p), t).await;
        assert_eq!(status, 200);
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    let seen = every_page(&app, "/api/events?limit=10").await;
    assert_eq!(seen, sent, "every event once, in arrival order");
    let newest_first = every_page(&app, "/api/events?limit=10&order=desc").await;
    let mut reversed = sent.clone();
    reversed.reverse();
    assert_eq!(newest_first, reversed, "every event once, newest first");
    let msgine_newest = every_page(&app, "/api/events?limit=2&order=desc&source=msgine").await;
    let msgine: Vec<String> = sent.iter().step_by(5).rev().cloned().collect();
    assert_eq!(msgine_newest, msgine, "filters apply newest first too");
    assert_eq!(app.events("source=msgine").await.len(), 5);
    assert_eq!(app.events("type=message.delivered").await.len(), 20);
    let one = &app.events("source=msgine").await[0];
    let by_message = app
        .events(&format!(
            "message_id={}",
            one["message_id"].as_str().expect("mid")
        ))
        .await;
    assert_eq!(by_message.len(), 1);
    app.stop().await;
}

/// Three events, an instant, three more and a refused request: `since`
/// keeps what was received at or after the instant (given in any offset),
/// `until` what came before, in either order; the request log likewise.
async fn events_and_requests_in_a_time_range(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("integify");
    let mut sent = Vec::new();
    let mut instant = String::new();
    for i in 0..6 {
        if i == 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let local = chrono::Utc::now()
                .with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"));
            instant = local.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if i == 4 {
            // Logged with the next event's batch.
            let refused = app.post_unsigned("/webhooks/integify").await;
            assert_eq!(refused.status(), 401);
        }
        let (_, status, answer) = app.send_sample(p, "sms.delivered").await;
        assert_eq!(status, 200);
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    assert!(instant.ends_with("+01:00"), "{instant}");
    let instant = instant.replace('+', "%2B");
    let since = every_page(&app, &format!("/api/events?limit=2&since={instant}")).await;
    assert_eq!(since, sent[3..]);
    let until = every_page(&app, &format!("/api/events?limit=2&until={instant}")).await;
    assert_eq!(until, sent[..3]);
    let newest_before = every_page(
        &app,
        &format!("/api/events?limit=2&order=desc&until={instant}"),
    )
    .await;
    assert_eq!(newest_before, [&*sent[2], &sent[1], &sent[0]]);
    let reasons = async |query: &str| -> Vec<String> {
        let (status, page) = app.api(&format!("/api/requests?{query}")).await;
        assert_eq!(status, 200, "{page}");
        let log = page["requests"].as_array().expect("requests").iter();
        log.map(|r| r["reason"].as_str().expect("reason").to_string())
            .collect()
    };
    assert_eq!(reasons(&format!("until={instant}")).await, ["accepted"; 3]);
    assert_eq!(
        reasons(&format!("since={instant}")).await,
        ["accepted", "invalid_signature", "accepted", "accepted"]
    );
    assert_eq!(
        reasons(&format!("since={instant}&refused=true")).await,
        ["invalid_signature"]
    );
    let (status, stats) = app.api(&format!("/api/stats?since={instant}")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (&stats["events"], &stats["requests"], &stats["outcomes"]),
        (
            &serde_json::json!([{"source": "integify", "type": "message.delivered", "count": 3}]),
            &serde_json::json!([
                {"source": "integify", "status": 200, "reason": "accepted", "count": 3},
                {"source": "integify", "status": 401, "reason": "invalid_signature", "count": 1}
            ]),
            &serde_json::json!([{"source": "integify", "delivered": 3, "failed": 0}])
        )
    );
    let (_, day) = app.api("/api/stats").await;
    assert_eq!(
        day["events"][0]["count"], 6,
        "the last day by default: {day}"
    );
    assert!(day["since"].as_str().is_some() && day["until"].is_null());
    // Every sample is sent to one number. A `+` left unescaped arrives as
    // a space, and still finds it.
    let to = app.events("").await[4]["to"]
        .as_str()
        .expect("to")
        .to_string();
    for (number, expected) in [
        (to.replace('+', "%2B"), &sent[..]),
        (to.clone(), &sent[..]),
        ("%2B1".to_string(), &[]),
    ] {
        let found = app.events(&format!("number={number}")).await;
        let ids: Vec<&str> = found
            .iter()
            .map(|e| e["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, expected, "{number}");
    }
    app.stop().await;
}

/// Ten webhooks of about 1 MB: a page asked for 1,000 events ends at the one
/// that takes its payloads to 8 MiB, with a `next` cursor (the server no
/// longer holds a page of large events in memory at once), and following
/// `next` lists every event once.
#[tokio::test]
async fn a_page_of_large_events_ends_early_and_next_lists_the_rest() {
    let app = TestApp::spawn().await;
    let integify = provider("integify");
    let pad = "x".repeat(1_000_000);
    let mut sent = Vec::new();
    for i in 0..10 {
        let body = format!(r#"{{"id":"evt_big_{i}","type":"sms.received","pad":"{pad}"}}"#);
        let (status, answer) = app.send_body(integify, body.as_bytes()).await;
        assert_eq!(status, 200, "{answer}");
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    let (status, first) = app.api("/api/events?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(first["events"].as_array().expect("events").len(), 9);
    assert!(
        first["next"].is_string(),
        "a short page with more behind it"
    );
    assert_eq!(every_page(&app, "/api/events?limit=1000").await, sent);
    app.stop().await;
}

/// The ids of every event on every page of `path`, following `next`.
async fn every_page(app: &TestApp, path: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = app.api(&format!("{path}{after}")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["events"]
                .as_array()
                .expect("array")
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return seen,
        }
    }
}

async fn bad_queries_and_unknown_ids_are_clear_errors(backend: Backend) {
    let app = TestApp::on(backend).await;
    let (status, body) = app.api("/api/events?limit=5000").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_query"))
    );
    for query in [
        "after=yesterday",
        "order=sideways",
        "since=yesterday",
        "until=2026-12-03",
        "since=2026-12-03T09:30:00",
    ] {
        let (status, body) = app.api(&format!("/api/events?{query}")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_query")),
            "{query}"
        );
        if query.starts_with("since") || query.starts_with("until") {
            let message = body["message"].as_str().expect("message");
            assert!(message.contains("not an RFC 3339 time"), "{message}");
        }
    }
    let (status, body) = app.api("/api/events/evt_nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    // No stored value holds a NUL ("Normalization decisions"), and
    // PostgreSQL would answer one with an error, not with no match.
    for path in [
        "/api/events?source=%00",
        "/api/events?message_id=a%00b",
        "/api/events/evt_%00",
        "/api/messages/msg_%00",
        "/api/optouts/%00",
        "/api/requests?source=%00",
    ] {
        let (status, body) = app.api(path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_query")),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

async fn the_request_log_explains_every_answer_and_never_holds_a_secret(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("integify");
    let body = sample_bytes(p, "sms.delivered");
    app.post_signed("integify", p, &body, "wrong-secret").await;
    app.post_unsigned("/webhooks/ghost").await;
    app.post_signed("integify", p, b"{oops", &secret_for("integify"))
        .await;
    app.send_body(p, &body).await;
    let (_, dup) = app.send_body(p, &body).await;
    let log = app.requests().await;
    let summary: Vec<(u64, &str)> = log
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().expect("status"),
                r["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (401, "invalid_signature"),
            (404, "unknown_source"),
            (400, "malformed_json"),
            (200, "accepted"),
            (200, "duplicate")
        ]
    );
    assert_eq!(log[4]["event_id"], dup["event_id"]);
    // Why, in the words of the answer: which header, where the JSON broke.
    let messages: Vec<&str> = log
        .iter()
        .map(|r| r["message"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        messages[..2],
        [
            "the signature does not match any configured secret (x-integify-signature)",
            "no source is configured at this URL",
        ]
    );
    assert!(
        messages[2]
            .starts_with("the body is not a JSON object: key must be a string at line 1 column 2"),
        "{}",
        messages[2]
    );
    assert_eq!(messages[3..], ["-", "-"], "accepted: no message");
    assert_eq!(log[0]["remote_addr"], "127.0.0.1");
    assert_eq!(log[0]["size"].as_u64(), Some(body.len() as u64));
    assert_eq!(
        log[0]["body_sha256"].as_str().map(str::len),
        Some(64),
        "a refused body's fingerprint"
    );
    assert_eq!(
        log[3]["body_sha256"],
        Value::Null,
        "an accepted body is the stored event's payload"
    );
    let text = serde_json::to_string(&log).expect("json");
    assert!(
        !text.contains("whsec") && !text.contains("wrong-secret"),
        "no secret in the log"
    );

    // Filters: what was refused, and why; combined with a source and a cursor.
    let reasons = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.api(&format!("/api/requests?{query}")).await;
            assert_eq!(status, 200, "{page}");
            let rows = page["requests"].as_array().expect("requests").clone();
            let reasons: Vec<String> = rows.iter().map(|r| r["reason"].to_string()).collect();
            (reasons.join(" "), page["next"].clone())
        }
    };
    assert_eq!(
        reasons("refused=true").await.0,
        r#""invalid_signature" "unknown_source" "malformed_json""#
    );
    assert_eq!(
        reasons("refused=true&source=integify").await.0,
        r#""invalid_signature" "malformed_json""#
    );
    assert_eq!(
        reasons("refused=true&order=desc").await.0,
        r#""malformed_json" "unknown_source" "invalid_signature""#,
        "newest first"
    );
    assert_eq!(reasons("reason=duplicate").await.0, r#""duplicate""#);
    assert_eq!(reasons("reason=accepted&refused=true").await.0, "");
    let (first, next) = reasons("refused=true&limit=1").await;
    assert_eq!(first, r#""invalid_signature""#);
    let after = next.as_str().expect("a cursor").to_string();
    let (status, page) = app
        .api(&format!("/api/requests?refused=true&limit=1&after={after}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["requests"][0]["reason"], "unknown_source");
    let (status, _) = app.api("/api/requests?refused=maybe").await;
    assert_eq!(status, 400, "a flag that is not true or false");
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_log_names_the_client_and_otherwise_the_peer() {
    // The client wrote the first hop itself; the proxy (us, 127.0.0.1) added
    // the address it saw.
    let forwarded = "192.0.2.66, 203.0.113.7";
    let logged = |trusted: &'static [&'static str]| async move {
        let app = TestApp::spawn_with(TestOptions {
            trusted_proxies: trusted,
            ..Default::default()
        })
        .await;
        let p = provider("integify");
        let body = sample_bytes(p, "sms.delivered");
        let signature = sign_hex(
            &Secret::new(secret_for("integify")),
            &body,
            p.signature_prefix,
        );
        // Refusals are logged with the next commit: the accepted one last.
        for signature in ["sha256=00", signature.as_str()] {
            let response = app
                .client
                .post(app.url("/webhooks/integify"))
                .header(p.signature_header, signature)
                .header("x-forwarded-for", forwarded)
                .body(body.clone())
                .send()
                .await
                .expect("send");
            assert!([200, 401].contains(&response.status().as_u16()));
        }
        let log = app.requests().await;
        let addrs: Vec<String> = log.iter().map(|r| r["remote_addr"].to_string()).collect();
        app.stop().await;
        addrs
    };
    assert_eq!(
        logged(&["127.0.0.1"]).await,
        [r#""203.0.113.7""#, r#""203.0.113.7""#],
        "accepted and refused requests alike"
    );
    assert_eq!(
        logged(&[]).await,
        [r#""127.0.0.1""#, r#""127.0.0.1""#],
        "no trusted proxy: the header is ignored"
    );
}

async fn an_unauthenticated_flood_cannot_grow_the_request_log_without_bound(backend: Backend) {
    let app = TestApp::spawn_with(TestOptions {
        backend,
        request_log_max_rows: 50,
        ..Default::default()
    })
    .await;
    for _ in 0..400 {
        app.post_unsigned("/webhooks/integify").await;
    }
    // A committed event means every earlier refusal record was flushed too.
    let (_, status, _) = app.send_sample(provider("integify"), "sms.delivered").await;
    assert_eq!(status, 200);
    let (_, page) = app.api("/api/requests?limit=1000").await;
    let rows = page["requests"].as_array().expect("array");
    assert!(
        rows.len() <= 60,
        "request log bounded near its 50-row cap, has {}",
        rows.len()
    );
    assert_eq!(
        rows.last().expect("row")["reason"],
        "accepted",
        "the newest rows are kept"
    );
    app.stop().await;
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::on(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

/// `/metrics`: behind the token; answers by source and status, new and
/// duplicate events, answer times, and the deliveries not yet made.
async fn metrics_count_answers_events_and_the_delivery_backlog(backend: Backend) {
    use crate::receiver::{Reply, TestReceiver};
    let mut receiver = TestReceiver::start(vec![Reply::Status(500), Reply::Status(500)]).await;
    let app = TestApp::spawn_with(TestOptions {
        backend,
        destinations: vec![receiver.destination("app", &[3600])],
        ..Default::default()
    })
    .await;
    let p = provider("integify");
    let (body, status, _) = app.send_sample(p, "sms.delivered").await;
    assert_eq!(status, 200);
    app.send_sample(p, "sms.received").await;
    app.send_body(p, &body).await;
    app.post_signed("integify", p, &body, "wrong-secret").await;
    assert_eq!(app.post_unsigned("/webhooks/ghost").await.status(), 404);
    receiver.next().await;
    receiver.next().await;

    assert_eq!(app.get("/metrics").await.status(), 401, "behind the token");
    let text = metrics_once_recorded(
        &app,
        "smshook_delivery_attempts_total{destination=\"app\",result=\"retrying\"} 2",
    )
    .await;
    for line in [
        "smshook_webhooks_total{source=\"integify\",status=\"200\"} 3",
        "smshook_webhooks_total{source=\"integify\",status=\"401\"} 1",
        "smshook_webhooks_total{source=\"msgine\",status=\"200\"} 0",
        "smshook_webhooks_unknown_source_total{status=\"404\"} 1",
        "smshook_events_total{source=\"integify\",outcome=\"new\"} 2",
        "smshook_events_total{source=\"integify\",outcome=\"duplicate\"} 1",
        "smshook_ack_seconds_count 3",
        "smshook_ack_seconds_bucket{le=\"+Inf\"} 3",
        "smshook_store_up 1",
        "smshook_request_log_dropped_total 0",
        "smshook_deliveries{destination=\"app\",state=\"pending\"} 2",
        "smshook_delivery_attempts_total{destination=\"app\",result=\"delivered\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    app.stop().await;
}

/// The metrics text once it holds `line`: an attempt is counted just after
/// the receiver has answered it.
async fn metrics_once_recorded(app: &TestApp, line: &str) -> String {
    for _ in 0..100 {
        let response = app.metrics().await;
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = response.text().await.expect("text");
        if text.lines().any(|l| l == line) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{line} never appeared in /metrics");
}
