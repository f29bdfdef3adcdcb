//! Event retention: what a pass deletes and keeps, on both backends through
//! the `Store` trait, and the server deleting old events by itself.

use std::sync::Arc;

use chrono::{Duration, Utc};
use smshook::event::{NewEvent, format_time};
use smshook::store::{AttemptRecord, DeliveryQuery, DeliveryUpdate, EventQuery, Store};

use crate::durability::{serve_command, start};
use crate::storage::{event, request};
use crate::support::{Backend, open_url};

crate::on_both_backends!(a_pass_deletes_old_events_and_keeps_what_is_still_needed);

fn days_ago(days: i64) -> String {
    format_time(Utc::now() - Duration::days(days))
}

/// An event received `days` ago.
fn aged(key: &str, event_type: &str, message_id: Option<&str>, days: i64) -> NewEvent {
    NewEvent {
        received_at: days_ago(days),
        ..event("ig", key, event_type, message_id)
    }
}

async fn insert(store: &Arc<dyn Store>, event: NewEvent) -> String {
    store
        .insert_event(event, request("ig", 200, "accepted"))
        .await
        .expect("insert")
        .event_id
}

/// Runs a whole pass with batches of `limit`; returns the events deleted.
async fn pass(store: &Arc<dyn Store>, cutoff: &str, limit: u32) -> u64 {
    let (mut cursor, mut deleted) = (0, 0);
    loop {
        let batch = store.prune(cursor, cutoff, limit).await.expect("prune");
        assert!(batch.through >= cursor, "the cursor only moves on");
        (cursor, deleted) = (batch.through, deleted + batch.deleted);
        if batch.done {
            return deleted;
        }
    }
}

async fn a_pass_deletes_old_events_and_keeps_what_is_still_needed(backend: Backend) {
    let (store, _dir) = crate::storage::open(&backend).await;
    let with_delivery = |mut e: NewEvent| {
        e.destinations = vec!["app".into()];
        e
    };
    // Old, its delivery still pending: kept.
    let pending = insert(
        &store,
        with_delivery(aged("k1", "message.sent", Some("m1"), 40)),
    )
    .await;
    // Old, delivered (one attempt recorded): deleted with both.
    let delivered = insert(
        &store,
        with_delivery(aged("k2", "message.sent", Some("m2"), 40)),
    )
    .await;
    // Old, but a recent event about the same message set its status since.
    let superseded = insert(&store, aged("k3", "message.sent", Some("m3"), 39)).await;
    // An old STOP: the event goes, the opt-out stays.
    let mut stop = aged("k4", "contact.opted_out", None, 38);
    (stop.opt_out, stop.fields.from) = (Some(true), Some("+15550001111".into()));
    let stop = insert(&store, stop).await;
    for k in 6..=12 {
        insert(&store, aged(&format!("k{k}"), "message.received", None, 35)).await;
    }
    // Events arrive in time order: a pass stops at the first recent one.
    let recent = insert(&store, aged("k5", "message.delivered", Some("m3"), 1)).await;

    let claimed = store
        .claim_deliveries(Utc::now().timestamp_millis() + 1_000, 60_000, 10)
        .await
        .expect("claim");
    let done = claimed
        .iter()
        .find(|d| d.event.id == delivered)
        .expect("claimed");
    let attempt = AttemptRecord {
        at: days_ago(40),
        status: Some(200),
        latency_ms: 3,
        error: None,
    };
    store
        .finish_deliveries(vec![DeliveryUpdate {
            id: done.id,
            attempt,
            state: "delivered".into(),
            next_attempt_at: 0,
        }])
        .await
        .expect("finish");

    // Batches of 3 make the pass step its cursor over the kept event.
    assert_eq!(pass(&store, &days_ago(30), 3).await, 10);
    let kept: Vec<String> = store
        .events(&EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(kept, [pending.clone(), recent.clone()]);
    for gone in [&delivered, &superseded, &stop] {
        assert!(store.event(gone).await.expect("read").is_none());
    }

    let deliveries = store
        .deliveries(&DeliveryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("deliveries");
    let events: Vec<_> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(
        events,
        [pending.as_str()],
        "the delivered one went with its event"
    );
    assert!(store.attempts(done.id).await.expect("attempts").is_empty());

    assert!(
        store
            .message_status(None, "m2")
            .await
            .expect("m2")
            .is_none()
    );
    let m3 = store
        .message_status(None, "m3")
        .await
        .expect("m3")
        .expect("kept");
    assert_eq!(m3.status_event_id, recent, "a later event's status stays");
    let m1 = store.message_status(None, "m1").await.expect("m1");
    assert!(m1.is_some(), "the kept event's status stays");
    let optout = store
        .optout("+15550001111")
        .await
        .expect("optout")
        .expect("kept");
    assert!(optout.opted_out);

    assert_eq!(
        pass(&store, &days_ago(30), 500).await,
        0,
        "nothing left to delete"
    );
    store.close().await;
}

/// `smshook serve` with `SMSHOOK_RETENTION=1d` deletes, on its own and
/// at start-up, the events of a database that are older than a day, and
/// counts them in `/metrics`.
#[tokio::test]
async fn the_server_deletes_events_past_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("events.db").display().to_string();
    let store = open_url(&database, 1000).await;
    for k in 0..5 {
        insert(
            &store,
            aged(&format!("old{k}"), "message.received", None, 3),
        )
        .await;
    }
    let recent = insert(&store, aged("new", "message.received", None, 0)).await;
    store.close().await;

    let mut command = serve_command(dir.path(), &database, "");
    command
        .env("SMSHOOK_RETENTION", "1d")
        .env("SMSHOOK_API_TOKEN", "metrics-token");
    let server = start(command);
    let count = || {
        rusqlite::Connection::open(&database)
            .expect("open")
            .query_row("SELECT count(*), max(id) FROM events", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .expect("count")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count().0 > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count(), (1, recent), "only the recent event is left");
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.addr))
        .bearer_auth("metrics-token")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("\nsmshook_events_deleted_total 5\n"),
        "{metrics}"
    );
}
