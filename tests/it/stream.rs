//! `GET /api/stream`: live events over SSE, resumed with `Last-Event-ID`.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Backend, TOKEN, TestApp, provider};

crate::on_both_backends!(
    the_stream_resumes_from_last_event_id_without_gaps,
    the_stream_filters_and_delivers_live,
    the_stream_starts_at_a_time
);

/// Reads SSE frames from a response.
struct Frames {
    response: reqwest::Response,
    buffer: String,
}

impl Frames {
    async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Frames {
        let mut request = app
            .client
            .get(app.url(&format!("/api/stream{query}")))
            .bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Frames {
            response,
            buffer: String::new(),
        }
    }

    /// The next event: (id, event name, data).
    async fn next(&mut self) -> (String, String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    let event = field("event:").unwrap_or_default();
                    return (id, event, serde_json::from_str(&data).expect("JSON data"));
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await;
            let chunk = chunk
                .expect("an event within 10 s")
                .expect("read")
                .expect("stream open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }
}

async fn send(app: &TestApp, event_type: &str) -> String {
    let (_, status, answer) = app.send_sample(provider("integify"), event_type).await;
    assert_eq!(status, 200);
    answer["event_id"].as_str().expect("id").to_string()
}

async fn the_stream_resumes_from_last_event_id_without_gaps(backend: Backend) {
    let app = TestApp::on(backend).await;
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(send(&app, "sms.delivered").await);
    }
    let mut frames = Frames::open(&app, "", None).await;
    let mut cursors = Vec::new();
    for expected in &sent {
        let (id, name, data) = frames.next().await;
        assert_eq!(&data["id"], expected.as_str());
        assert_eq!(name, "message.delivered");
        cursors.push(id);
    }
    drop(frames);
    for _ in 0..2 {
        sent.push(send(&app, "sms.delivered").await);
    }
    let mut resumed = Frames::open(&app, "", Some(&cursors[1])).await;
    for expected in &sent[2..] {
        assert_eq!(
            &resumed.next().await.2["id"],
            expected.as_str(),
            "every event after the cursor, in order, once"
        );
    }
    let bad = app
        .api_with_header("/api/stream", ("last-event-id", "x"))
        .await;
    assert_eq!(bad.status(), 400);
    let unauthorized = app.get("/api/stream").await;
    assert_eq!(unauthorized.status(), 401);
}

async fn the_stream_filters_and_delivers_live(backend: Backend) {
    let app = TestApp::on(backend).await;
    send(&app, "sms.delivered").await;
    let mut optouts = Frames::open(&app, "?opt_out=true", None).await;
    let mut received = Frames::open(&app, "?type=message.received", None).await;
    let stop = send(&app, "sms.received").await; // the sample's body is STOP
    let (_, name, data) = optouts.next().await;
    assert_eq!(
        (name.as_str(), data["id"].as_str()),
        ("message.received", Some(stop.as_str()))
    );
    assert_eq!(data["opt_out"], true);
    assert_eq!(
        received.next().await.2["id"],
        stop.as_str(),
        "arrives live, after the stream opened"
    );
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open streams end at shutdown instead of holding it up"
    );
    drop((optouts, received));
}

/// `since`: the events received from a time on, then what arrives.
async fn the_stream_starts_at_a_time(backend: Backend) {
    let app = TestApp::on(backend).await;
    send(&app, "sms.delivered").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let instant = smshook::event::now_rfc3339();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let after = send(&app, "sms.failed").await;
    let mut frames = Frames::open(&app, &format!("?since={instant}"), None).await;
    assert_eq!(
        frames.next().await.2["id"],
        after.as_str(),
        "not the one before"
    );
    let live = send(&app, "sms.received").await;
    assert_eq!(frames.next().await.2["id"], live.as_str());
    drop(frames);
    let bad = app
        .api_with_header("/api/stream?since=soon", ("accept", "text/event-stream"))
        .await;
    assert_eq!(bad.status(), 400);
    app.stop().await;
}
