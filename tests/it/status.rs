//! Message status that never moves backwards, and the opt-out list, over HTTP.

use serde_json::{Value, json};

use crate::support::{Backend, TestApp, provider};

crate::on_both_backends!(
    late_and_duplicate_reports_never_move_status_backwards,
    stop_and_start_keywords_maintain_the_optout_list,
    an_older_stop_arriving_late_does_not_undo_a_newer_start,
);

fn msgine(message_id: &str, event: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": message_id, "event": event, "status": event.trim_start_matches("message."),
        "to": "+256701521269", "from": "MyApp", "timestamp": "2026-04-10T12:00:00Z",
    }))
    .expect("json")
}

fn inbound(id: &str, from: &str, body: &str, at: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "type": "sms.received", "created_at": at,
        "data": {"message_id": format!("in_{id}"), "from": from, "to": "+2203001234", "body": body, "received_at": at},
    }))
    .expect("json")
}

async fn late_and_duplicate_reports_never_move_status_backwards(backend: Backend) {
    let app = TestApp::on(backend).await;
    let p = provider("msgine");
    let (_, delivered) = app
        .send_body(p, &msgine("msg_A", "message.delivered"))
        .await;
    let (status, _) = app.send_body(p, &msgine("msg_A", "message.sent")).await;
    assert_eq!(status, 200, "a late report is stored");
    app.send_body(p, &msgine("msg_A", "message.delivered"))
        .await;
    app.send_body(p, &msgine("msg_A", "message.failed")).await;

    let (status, state) = app.api("/api/messages/msg_A").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        state["status"], "delivered",
        "delivered is final: neither sent nor failed replace it"
    );
    assert_eq!(state["status_event_id"], delivered["event_id"]);
    let timeline: Vec<&str> = state["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        timeline,
        ["message.delivered", "message.sent", "message.failed"],
        "every distinct report, in arrival order"
    );

    app.send_body(p, &msgine("msg_B", "message.sent")).await;
    assert_eq!(app.api("/api/messages/msg_B").await.1["status"], "sent");
    app.send_body(p, &msgine("msg_B", "message.failed")).await;
    assert_eq!(app.api("/api/messages/msg_B").await.1["status"], "failed");
    assert_eq!(app.api("/api/messages/msg_nope").await.0, 404);
    app.stop().await;
}

async fn stop_and_start_keywords_maintain_the_optout_list(backend: Backend) {
    let app = TestApp::on(backend).await;
    let ig = provider("integify");
    let (_, stop) = app
        .send_body(
            ig,
            &inbound("e1", "+15550001", "  Stop \n", "2026-04-10T12:00:00Z"),
        )
        .await;
    app.send_body(
        ig,
        &inbound(
            "e2",
            "+15550002",
            "please stop texting",
            "2026-04-10T12:00:01Z",
        ),
    )
    .await;
    app.send_body(
        ig,
        &inbound("e3", "+15550003", "UNSUBSCRIBE", "2026-04-10T12:00:02Z"),
    )
    .await;
    app.send_sample(provider("textus"), "contact.opted_out")
        .await;

    let event = app.event_answered(&stop).await;
    assert_eq!(
        event["opt_out"], true,
        "the stored event says it was an opt-out"
    );
    let listed = |page: &Value| -> Vec<String> {
        page["optouts"]
            .as_array()
            .expect("optouts")
            .iter()
            .map(|o| o["number"].as_str().expect("number").to_string())
            .collect()
    };
    let (_, page) = app.api("/api/optouts").await;
    assert_eq!(listed(&page), ["+13035551234", "+15550001", "+15550003"]);

    let (_, back) = app
        .send_body(
            ig,
            &inbound("e4", "+15550001", "start", "2026-04-10T13:00:00Z"),
        )
        .await;
    let (_, page) = app.api("/api/optouts").await;
    assert_eq!(listed(&page), ["+13035551234", "+15550003"]);
    let (status, one) = app.api("/api/optouts/+15550001").await;
    assert_eq!(status, 200);
    assert_eq!(one["opted_out"], false);
    assert_eq!(one["event_id"], back["event_id"]);
    assert_eq!(app.api("/api/optouts/+19999999").await.0, 404);
    app.stop().await;
}

async fn an_older_stop_arriving_late_does_not_undo_a_newer_start(backend: Backend) {
    let app = TestApp::on(backend).await;
    let ig = provider("integify");
    app.send_body(
        ig,
        &inbound("s1", "+15550009", "START", "2026-04-10T13:00:00Z"),
    )
    .await;
    app.send_body(
        ig,
        &inbound("s0", "+15550009", "STOP", "2026-04-10T12:00:00Z"),
    )
    .await;
    let (_, one) = app.api("/api/optouts/+15550009").await;
    assert_eq!(
        one["opted_out"], false,
        "the change that happened last wins, not the one that arrived last"
    );
    app.stop().await;
}
