//! The `Store` contract, checked against every backend through the trait
//! alone: what HTTP relies on, without HTTP.

use std::sync::Arc;

use smshook::event::{EventFields, NewEvent, RequestRecord, new_event_id, now_rfc3339};
use smshook::store::{
    EventQuery, Newest, Order, PAGE_PAYLOAD_BYTES, RequestQuery, Store, StoreError, TimeRange,
};

use crate::support::{Backend, open_url};

crate::on_both_backends!(
    store_contract,
    concurrent_copies_resolve_to_one_row,
    closed_store_refuses_writes,
    a_database_a_newer_smshook_migrated_is_refused,
    time_ranges_list_what_was_received_in_them,
    a_number_lists_the_events_from_or_to_it,
    a_page_of_events_ends_at_its_payload_bytes
);

/// A fresh store on `backend` (SQLite in a temporary directory, kept alive
/// by the returned guard).
pub async fn open(backend: &Backend) -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match backend {
        Backend::Sqlite => dir.path().join("s.db").display().to_string(),
        Backend::Postgres(url) => url.clone(),
    };
    (open_url(&url, 1000).await, dir)
}

pub fn event(source: &str, key: &str, event_type: &str, message_id: Option<&str>) -> NewEvent {
    NewEvent {
        id: new_event_id(),
        source: source.into(),
        provider: "integify".into(),
        dedupe_key: key.into(),
        fields: EventFields {
            event_type: event_type.into(),
            message_id: message_id.map(String::from),
            body: Some("héllo \u{1F600}".into()),
            ..EventFields::default()
        },
        opt_out: None,
        destinations: Vec::new(),
        part: None,
        received_at: now_rfc3339(),
        payload: format!(r#"{{"id": "{key}",  "nested": {{"keep": "spacing"}}}}"#),
    }
}

pub fn request(source: &str, status: u16, reason: &str) -> RequestRecord {
    RequestRecord {
        seq: 0,
        at: now_rfc3339(),
        source: source.into(),
        status,
        reason: reason.into(),
        remote_addr: Some("203.0.113.9".into()),
        size: 42,
        body_sha256: None,
        event_id: None,
        message: (status != 200).then(|| format!("refused as {reason}")),
    }
}

async fn store_contract(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    assert_eq!(store.newest().await.expect("newest"), Newest::default());
    let first = event("a", "k1", "message.delivered", Some("m1"));
    let first_id = first.id.clone();
    let stored = store
        .insert_event(first.clone(), request("a", 200, "accepted"))
        .await
        .expect("insert");
    assert_eq!(
        (stored.event_id.as_str(), stored.duplicate),
        (first_id.as_str(), false)
    );

    let retry = store
        .insert_event(
            event("a", "k1", "message.delivered", Some("m1")),
            request("a", 200, "accepted"),
        )
        .await;
    let retry = retry.expect("insert retry");
    assert_eq!(
        (retry.event_id.as_str(), retry.duplicate),
        (first_id.as_str(), true)
    );
    let other_source = store
        .insert_event(
            event("b", "k1", "message.failed", Some("m1")),
            request("b", 200, "accepted"),
        )
        .await;
    assert!(
        !other_source.expect("insert").duplicate,
        "dedupe is per source"
    );

    store.record_request(request("a", 401, "invalid_signature"));
    store
        .insert_event(
            event("a", "k2", "message.received", None),
            request("a", 200, "accepted"),
        )
        .await
        .expect("insert");

    let all = store
        .events(&EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let keys: Vec<_> = all
        .iter()
        .map(|e| (e.source.as_str(), e.fields.event_type.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("a", "message.delivered"),
            ("b", "message.failed"),
            ("a", "message.received")
        ]
    );
    let page = store
        .events(&EventQuery {
            after: Some(all[0].seq),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(
        page[0].id, all[1].id,
        "cursor continues after the last seen"
    );
    let by_source = store
        .events(&EventQuery {
            source: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_source.len(), 2);
    let by_message = store
        .events(&EventQuery {
            message_id: Some("m1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_message.len(), 2);
    let by_type = store
        .events(&EventQuery {
            event_type: Some("message.failed".into()),
            limit: 10,
            ..Default::default()
        })
        .await;
    assert_eq!(by_type.expect("list").len(), 1);

    let got = store.event(&first_id).await.expect("get").expect("found");
    assert_eq!(
        got.payload.get(),
        first.payload,
        "payload kept byte for byte"
    );
    assert_eq!(got.fields.body.as_deref(), Some("héllo \u{1F600}"));
    assert!(store.event("evt_missing").await.expect("get").is_none());

    let log = store
        .requests(&RequestQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("requests");
    let reasons: Vec<_> = log.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "accepted",
            "duplicate",
            "accepted",
            "invalid_signature",
            "accepted"
        ]
    );
    assert_eq!(log[1].event_id.as_deref(), Some(first_id.as_str()));
    assert_eq!(
        log[3].message.as_deref(),
        Some("refused as invalid_signature")
    );
    assert_eq!(log[0].message, None);
    let counts = store.counts(&TimeRange::default()).await.expect("counts");
    let events: Vec<(&str, &str, u64)> = counts
        .events
        .iter()
        .map(|c| (c.source.as_str(), c.event_type.as_str(), c.count))
        .collect();
    assert_eq!(
        events,
        [
            ("a", "message.delivered", 1),
            ("a", "message.received", 1),
            ("b", "message.failed", 1)
        ]
    );
    let requests: Vec<(&str, u16, &str, u64)> = counts
        .requests
        .iter()
        .map(|c| (c.source.as_str(), c.status, c.reason.as_str(), c.count))
        .collect();
    assert_eq!(
        requests,
        [
            ("a", 200, "accepted", 2),
            ("a", 200, "duplicate", 1),
            ("a", 401, "invalid_signature", 1),
            ("b", 200, "accepted", 1)
        ]
    );
    let newest = store.newest().await.expect("newest");
    assert_eq!(
        (newest.events, newest.requests),
        (all[2].seq, log[4].seq),
        "where --follow starts"
    );
    store.ping().await.expect("ready");
    store.close().await;
}

async fn concurrent_copies_resolve_to_one_row(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let key = format!("k{}", i % 4);
            tokio::spawn(async move {
                store
                    .insert_event(event("s", &key, "t", None), request("s", 200, "accepted"))
                    .await
            })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        fresh += usize::from(!t.await.expect("task").expect("insert").duplicate);
    }
    assert_eq!(fresh, 4, "one original per key");
    assert_eq!(
        store
            .events(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list")
            .len(),
        4
    );
    store.close().await;
}

/// Events received every half hour for a day (a range is bounded in
/// arrival order through the event ids an hour either side of it, so this
/// spans far more than that), with two committed late: one received just
/// before `since`, stored after later ones, and one just before `until`,
/// stored after one received past it. `since` keeps what was received at
/// or after it, `until` what was received before, whatever the order of
/// commits; either way, paging as without a range.
async fn time_ranges_list_what_was_received_in_them(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    let base = smshook::event::parse_time("2026-12-01T00:00:00Z").expect("time");
    let half_hours = |n: i64| base + chrono::TimeDelta::minutes(30 * n);
    let (since, until) = (half_hours(20), half_hours(30));
    let ms = chrono::TimeDelta::milliseconds(1);
    let mut order: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        (0..48).map(|i| (format!("e{i}"), half_hours(i))).collect();
    order.insert(23, ("late_before_since".into(), since - ms));
    order.insert(33, ("late_before_until".into(), until - ms));
    for (key, at) in &order {
        let mut new = event("s", key, "message.delivered", None);
        new.id = smshook::event::first_event_id_at(*at);
        new.received_at = smshook::event::format_time(*at);
        let mut log = request("s", 200, "accepted");
        log.at = new.received_at.clone();
        store.insert_event(new, log).await.expect("insert");
    }
    let list = async |range: TimeRange, after: Option<i64>, limit: u32, order: Order| {
        let q = EventQuery {
            after,
            limit,
            order,
            received: range,
            ..Default::default()
        };
        let events = store.events(&q).await.expect("events");
        let keys: Vec<String> = events.iter().map(payload_id).collect();
        (keys, events.last().map(|e| e.seq))
    };
    let both = TimeRange {
        since: Some(since),
        until: Some(until),
    };
    let mut expected: Vec<String> = (20..30).map(|i| format!("e{i}")).collect();
    expected.push("late_before_until".into());
    assert_eq!(list(both, None, 100, Order::Asc).await.0, expected);

    // Paged from `since` on, five at a time: every event received since.
    let from = TimeRange {
        since: Some(since),
        until: None,
    };
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let (page, last) = list(from, after, 5, Order::Asc).await;
        paged.extend(page);
        if last.is_none() {
            break;
        }
        after = last;
    }
    let mut expected: Vec<String> = (20..32).map(|i| format!("e{i}")).collect();
    expected.push("late_before_until".into());
    expected.extend((32..48).map(|i| format!("e{i}")));
    assert_eq!(paged, expected, "in arrival order");

    // The newest before `until`, newest first.
    let before = TimeRange {
        since: None,
        until: Some(until),
    };
    let (newest, _) = list(before, None, 3, Order::Desc).await;
    assert_eq!(newest, ["late_before_until", "e29", "e28"]);

    let log = store
        .requests(&RequestQuery {
            limit: 100,
            at: both,
            ..Default::default()
        })
        .await
        .expect("requests");
    let times: Vec<&str> = log.iter().map(|r| r.at.as_str()).collect();
    let mut expected: Vec<String> = (20..30)
        .map(|i| smshook::event::format_time(half_hours(i)))
        .collect();
    expected.push(smshook::event::format_time(until - ms));
    assert_eq!(times, expected);
    let counts = store.counts(&both).await.expect("counts");
    let counted = |c: &[smshook::store::EventCount]| c.iter().map(|c| c.count).collect::<Vec<_>>();
    assert_eq!(counted(&counts.events), [11], "as listed");
    assert_eq!(
        counts.requests.iter().map(|c| c.count).collect::<Vec<_>>(),
        [11]
    );
    store.close().await;
}

/// Events from or to a number, however the provider wrote it (with a
/// leading `+` or without) and however it is asked for.
async fn a_number_lists_the_events_from_or_to_it(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    let numbers = [
        ("out", Some("+15550001111"), Some("+15559990000")),
        ("reply", Some("15559990000"), Some("15550001111")),
        ("other", Some("+15552223333"), None),
    ];
    for (key, from, to) in numbers {
        let mut new = event("s", key, "message.received", None);
        new.fields.from = from.map(String::from);
        new.fields.to = to.map(String::from);
        let log = request("s", 200, "accepted");
        store.insert_event(new, log).await.expect("insert");
    }
    for (asked, expected) in [
        ("+15550001111", &["out", "reply"][..]),
        ("15559990000", &["out", "reply"]),
        (" 15552223333", &["other"]),
        ("+15550000000", &[]),
    ] {
        let q = EventQuery {
            number: Some(asked.into()),
            limit: 10,
            ..Default::default()
        };
        let events = store.events(&q).await.expect("events");
        let keys: Vec<String> = events.iter().map(payload_id).collect();
        assert_eq!(keys, expected, "{asked:?}");
    }
    store.close().await;
}

/// Twenty events of 1 MiB each: a page of up to 1,000 ends at the event that
/// takes it to `PAGE_PAYLOAD_BYTES` (8 MiB), says more may follow, and the
/// pages after it list the rest, each once.
async fn a_page_of_events_ends_at_its_payload_bytes(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    let pad = "x".repeat(1 << 20);
    let keys: Vec<String> = (0..20).map(|i| format!("big{i:02}")).collect();
    for key in &keys {
        let mut new = event("s", key, "message.received", None);
        new.payload = format!(r#"{{"id":"{key}","pad":"{pad}"}}"#);
        let log = request("s", 200, "accepted");
        store.insert_event(new, log).await.expect("insert");
    }
    let (mut listed, mut sizes, mut after) = (Vec::new(), Vec::new(), None);
    loop {
        let q = EventQuery {
            after,
            limit: 1000,
            ..Default::default()
        };
        let page = store.events(&q).await.expect("events");
        let bytes: usize = page.iter().map(|e| e.payload.get().len()).sum();
        assert!(bytes < PAGE_PAYLOAD_BYTES + (2 << 20), "{bytes} bytes");
        sizes.push(page.len());
        listed.extend(page.iter().map(payload_id));
        after = page.last().map(|e| e.seq);
        if !q.more_after(&page) {
            break;
        }
    }
    assert_eq!(sizes, [8, 8, 4]);
    assert_eq!(listed, keys);
    let newest = EventQuery {
        limit: 1000,
        order: Order::Desc,
        ..Default::default()
    };
    let page = store.events(&newest).await.expect("events");
    let ids: Vec<String> = page.iter().map(payload_id).collect();
    assert_eq!(ids, keys[12..].iter().rev().cloned().collect::<Vec<_>>());
    assert!(newest.more_after(&page));
    store.close().await;
}

/// The `id` of the payload [`event`] made.
fn payload_id(e: &smshook::event::Event) -> String {
    let payload: serde_json::Value = serde_json::from_str(e.payload.get()).expect("payload");
    payload["id"].as_str().expect("id").to_string()
}

async fn closed_store_refuses_writes(backend: Backend) {
    let (store, _dir) = open(&backend).await;
    store.close().await;
    let after = store
        .insert_event(event("s", "k", "t", None), request("s", 200, "accepted"))
        .await;
    assert!(matches!(after, Err(StoreError::Closed)), "{after:?}");
    assert!(store.ping().await.is_err());
}

/// The SQLite database holds phone numbers and message texts: a new one is
/// its owner's alone, and so are the WAL and shared-memory files SQLite
/// makes beside it. An existing file keeps the permissions it has.
#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_its_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("private.db");
    let mode = |suffix: &str| {
        let file = format!("{}{suffix}", path.display());
        std::fs::metadata(&file).expect(&file).permissions().mode() & 0o777
    };
    let store = open_url(&path.display().to_string(), 1000).await;
    store
        .insert_event(
            event("src", "k", "message.received", None),
            request("src", 200, "accepted"),
        )
        .await
        .expect("stored");
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "private.db{suffix}");
    }
    store.close().await;

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let store = open_url(&path.display().to_string(), 1000).await;
    assert_eq!(mode(""), 0o640, "an existing file keeps its permissions");
    store.close().await;
}

/// `smshook events` (a command's store) beside a running server reads and
/// closes without touching the WAL: its TRUNCATE checkpoint at close held
/// off the server's writer while it copied the whole log (p99 14 -> 100 ms
/// at a steady 10,000/s with five such commands). The server truncates
/// the WAL at its own shutdown.
#[tokio::test]
async fn a_command_beside_the_server_leaves_the_wal_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db").display().to_string();
    let server = crate::support::open_as(&path, 1000, true).await;
    server
        .insert_event(
            event("src", "k", "message.received", None),
            request("src", 200, "accepted"),
        )
        .await
        .expect("stored");
    let wal = format!("{path}-wal");
    let wal_len = || std::fs::metadata(&wal).expect("the WAL").len();
    let before = wal_len();
    assert!(before > 0);

    let command = open_url(&path, 1000).await;
    let query = EventQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(command.events(&query).await.expect("events").len(), 1);
    command.close().await;
    assert_eq!(wal_len(), before, "the command left the WAL alone");

    server.close().await;
    assert_eq!(wal_len(), 0, "the server checkpointed and truncated it");
}

/// A database whose schema a newer smshook migrated (as after a rollback
/// to an older release) is refused with what to do, not used half-way.
async fn a_database_a_newer_smshook_migrated_is_refused(backend: Backend) {
    let (store, dir) = open(&backend).await;
    store.close().await;
    let url = match &backend {
        Backend::Sqlite => {
            let path = dir.path().join("s.db");
            rusqlite::Connection::open(&path)
                .and_then(|c| c.execute_batch("PRAGMA user_version = 1000"))
                .expect("a newer schema version");
            path.display().to_string()
        }
        Backend::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
                .batch_execute("INSERT INTO smshook_migrations (version) VALUES (1000)")
                .await
                .expect("a newer schema version");
            url.clone()
        }
    };
    let options = smshook::store::StoreOptions::default();
    let refused = smshook::store::open(&url, options).await.err();
    let text = format!("{:#}", refused.expect("refused"));
    assert!(
        text.contains("its schema is version 1000, newer than this smshook knows"),
        "{text}"
    );
}
