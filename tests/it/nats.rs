//! NATS JetStream destinations against a real server
//! (`SMSHOOK_TEST_NATS_URL`, e.g. nats://127.0.0.1:4222): events are read
//! back from the stream, and a replay is dropped by JetStream's dedupe.

use std::time::Duration;

use async_nats::jetstream;
use smshook::dispatch::{Brokers, Destination, Filter, Target};

use crate::support::{TestApp, TestOptions, skip_notice};

fn nats_url() -> Option<String> {
    let url = std::env::var("SMSHOOK_TEST_NATS_URL").ok();
    if url.is_none() {
        skip_notice("NATS", "SMSHOOK_TEST_NATS_URL", "nats://127.0.0.1:4222");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_once_with_their_id_and_read_back() {
    let Some(url) = nats_url() else { return };
    let tag = format!("t{}", rand::random::<u32>());
    let stream_name = format!("SMSHOOK_{tag}");
    let destination = Destination {
        name: "queue".into(),
        target: Target::Nats {
            subject: format!("{tag}.{{source}}.{{type}}"),
            stream: Some(stream_name.clone()),
        },
        filter: Filter::default(),
        timeout: Duration::from_secs(5),
        schedule: vec![Duration::from_secs(1)],
    };
    let options = TestOptions {
        destinations: vec![destination],
        brokers: Brokers {
            nats_url: Some(url.clone()),
            redis_url: None,
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(options).await;
    let ids = app.two_events_and_a_replay().await;

    let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
    let mut stream = js.get_stream(&stream_name).await.expect("stream exists");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        2,
        "the replay was dropped as a duplicate"
    );
    // Deliveries are sent concurrently: match messages by id, not by order.
    let subjects = [
        format!("{tag}.integify.message.delivered"),
        format!("{tag}.integify.message.received"),
    ];
    let mut found = std::collections::HashMap::new();
    for seq in 1..=2 {
        let message = stream.get_raw_message(seq).await.expect("message");
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string())
            .expect("Nats-Msg-Id");
        let event: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        assert_eq!(
            event["id"],
            id.as_str(),
            "the body is the event the header names"
        );
        found.insert(id, message.subject.to_string());
    }
    for (id, subject) in ids.iter().zip(subjects) {
        assert_eq!(
            found.get(id),
            Some(&subject),
            "{id} published once, on its subject"
        );
    }
    let _ = js.delete_stream(&stream_name).await;
    app.stop().await;
}
