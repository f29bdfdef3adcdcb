//! Durable storage of events and of the request log, behind one trait; the
//! backend is chosen by the database URL and nothing above this module knows
//! which one is in use.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::event::{Event, Inserted, NewEvent, RequestRecord};
use crate::message::StatusRow;
use crate::optout::Optout;

pub mod postgres;
pub(crate) mod queue;
pub mod retention;
pub mod sqlite;

/// Why storage could not do what was asked. Every variant is transient from
/// a provider's point of view: the webhook is answered 503/504 and retried.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage is overloaded: too many writes waiting")]
    Overloaded,
    #[error("storage is closed")]
    Closed,
}

/// Filters for listing events; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub message_id: Option<String>,
    /// Only events from or to this number, with or without its leading `+`
    /// ([`EventQuery::conditions`]).
    pub number: Option<String>,
    /// Cursor: only events after this one in `order` (with
    /// [`Order::Desc`], events that arrived before it).
    pub after: Option<i64>,
    pub limit: u32,
    pub order: Order,
    /// Only events received in this range.
    pub received: TimeRange,
}

/// The payload bytes one page of events holds: a page ends with the event
/// that reaches it, even short of its `limit`. Without it a page of 1,000
/// events, each payload up to `max_body_bytes`, could hold a gigabyte; with
/// it a page holds at most this plus one payload. Every event is still
/// listed, a page later: the next page starts after the last row.
pub const PAGE_PAYLOAD_BYTES: usize = 8 << 20;

/// A page of events as a backend reads it, row by row, until it holds
/// [`PAGE_PAYLOAD_BYTES`].
#[derive(Debug, Default)]
pub struct PageReader {
    events: Vec<Event>,
    bytes: usize,
}

impl PageReader {
    /// Adds `event`; `false` once the page holds enough (read no more rows).
    pub fn push(&mut self, event: Event) -> bool {
        self.bytes += event.payload.get().len();
        self.events.push(event);
        self.bytes < PAGE_PAYLOAD_BYTES
    }

    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// Whether events may follow `page`, read with `limit`
/// ([`EventQuery::more_after`]).
pub fn more_events(page: &[Event], limit: u32) -> bool {
    let bytes: usize = page.iter().map(|e| e.payload.get().len()).sum();
    page.len() >= limit as usize || bytes >= PAGE_PAYLOAD_BYTES
}

impl EventQuery {
    /// Whether rows may follow `page`, as this query read it: it stopped at
    /// its `limit` or at [`PAGE_PAYLOAD_BYTES`]. (A page that ends exactly
    /// where the rows do says so too; the next is then empty.)
    pub fn more_after(&self, page: &[Event]) -> bool {
        more_events(page, self.limit)
    }

    /// The conditions beyond equality and the cursor, each with one `?` for
    /// its value, as both backends add them: the number's, then the time
    /// range's on `received_at` (a backend bounds `seq` for the range
    /// itself, as its planner needs).
    pub fn conditions(&self) -> Vec<(String, String)> {
        let number = self.number.as_deref().map(number_condition);
        let received = self.received.conditions("received_at");
        number.into_iter().chain(received).collect()
    }
}

/// Which way a listing of events or of the request log runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Arrival order, oldest first: how an application reads every event.
    #[default]
    Asc,
    /// Newest first: what arrived lately, for a person looking, paging back
    /// in time (the cursor names the last row seen; the next page is older).
    Desc,
}

impl Order {
    /// The SQL comparison that keeps rows after `cursor` in this order, and
    /// the `ORDER BY` direction (both backends).
    pub fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Asc => (">", "ASC"),
            Self::Desc => ("<", "DESC"),
        }
    }

    /// The cursor of a listing's start: before the first row, or past the
    /// newest.
    pub fn start(self) -> i64 {
        match self {
            Self::Asc => 0,
            Self::Desc => i64::MAX,
        }
    }
}

/// The newest cursors ([`Store::newest`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Newest {
    pub events: i64,
    pub requests: i64,
}

/// Most parts [`Store::parts`] reads: one message's parts, and those of
/// the few a phone sent under the same reference in a day, are far fewer.
pub const MAX_PARTS: u32 = 1_000;

/// The keys starting with `prefix`, as a range of text: from `prefix`
/// (inclusive) to `prefix` with its last character one higher (exclusive).
/// Both backends compare these keys byte by byte: SQLite's `BINARY`, and
/// `COLLATE "C"` on PostgreSQL.
pub fn key_range(prefix: &str) -> (String, String) {
    let mut end = prefix.to_string();
    match end.pop() {
        Some(last) => end.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX)),
        None => end.push(char::MAX),
    }
    (prefix.to_string(), end)
}

/// The condition `RequestQuery::refused` adds, in either backend's SQL.
pub const REFUSED_REQUESTS: &str = " AND status <> 200";

/// Filters for listing the request log.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    pub source: Option<String>,
    /// Only requests answered for this reason (`invalid_signature`, …).
    pub reason: Option<String>,
    /// Only requests not answered 200. The request log is bounded
    /// (`request_log.max_rows`) and has no index but its order, so a
    /// filtered page reads at most the whole log.
    pub refused: bool,
    /// Cursor, as in [`EventQuery::after`].
    pub after: Option<i64>,
    pub limit: u32,
    pub order: Order,
    /// Only requests made in this range.
    pub at: TimeRange,
}

/// The condition [`EventQuery::number`] adds, with one `?` for its value:
/// the number as an event's `from` or `to`, with or without a leading `+`
/// (providers write E.164 numbers either way, and a `+` left unescaped in a
/// URL's query arrives as a space). No index has the numbers: a listing by
/// number reads every row of its range, so give it a time range too.
fn number_condition(number: &str) -> (String, String) {
    let digits = number.trim().trim_start_matches('+').to_string();
    let sql = "? IN (ltrim(from_number, '+'), ltrim(to_number, '+'))";
    (sql.to_string(), digits)
}

/// Receive times a listing keeps: from `since` (inclusive) to `until`
/// (exclusive). Stored times are RFC 3339 in UTC with milliseconds, one
/// width, so they compare as text in either backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// How far apart an event's place in arrival order (`seq`, the order of
/// commits) and its receive time can be: the time it took to read the body
/// and to commit (seconds: the ack deadline), plus, with several
/// PostgreSQL replicas, how far their clocks differ. Far less than this.
pub const ARRIVAL_MARGIN: TimeDelta = TimeDelta::hours(1);

impl TimeRange {
    /// `column >= ?` and `column < ?` for the ends that are set, each with
    /// its value (stored times compare as text).
    pub fn conditions(&self, column: &str) -> Vec<(String, String)> {
        let since = self.since.map(|t| (format!("{column} >= ?"), t));
        let until = self.until.map(|t| (format!("{column} < ?"), t));
        [since, until]
            .into_iter()
            .flatten()
            .map(|(sql, t)| (sql, crate::event::format_time(t)))
            .collect()
    }

    /// Bounds on an events listing's `seq`, found through the event ids,
    /// since no table has an index on its times: a `seq` every event
    /// received since `since` comes after, and one every event received
    /// before `until` comes before, each an SQL expression with one `?`
    /// for its value.
    ///
    /// Event ids are ULIDs made as each event is received (an index every
    /// event has anyway). The newest event made `ARRIVAL_MARGIN` before
    /// `since` committed before anything received since, and the first
    /// made that long after `until` committed after anything received
    /// before. A page of the last hour then reads about two hours' rows,
    /// however large the table.
    pub fn event_seq_bounds(&self) -> (Option<SeqBound>, Option<SeqBound>) {
        let id = crate::event::first_event_id_at;
        (
            self.since
                .map(|t| (LAST_SEQ_MADE_BEFORE, id(t - ARRIVAL_MARGIN))),
            self.until
                .map(|t| (FIRST_SEQ_MADE_FROM, id(t + ARRIVAL_MARGIN))),
        )
    }
}

/// A bound on `seq`: an SQL expression with one `?`, and its value.
pub type SeqBound = (&'static str, String);

/// The `seq` of the newest event whose id sorts before `?` (0 if none).
const LAST_SEQ_MADE_BEFORE: &str =
    "COALESCE((SELECT seq FROM events WHERE id < ? ORDER BY id DESC LIMIT 1), 0)";
/// The `seq` of the first event whose id sorts at or after `?` (past any
/// if none).
const FIRST_SEQ_MADE_FROM: &str =
    "COALESCE((SELECT seq FROM events WHERE id >= ? ORDER BY id LIMIT 1), 9223372036854775807)";

/// Numbers currently opted out, by number.
#[derive(Debug, Clone, Default)]
pub struct OptoutQuery {
    /// Cursor: numbers after this one.
    pub after: Option<String>,
    pub limit: u32,
}

/// A delivery claimed for sending, with its event.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub destination: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub event: Event,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttemptRecord {
    pub at: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What an attempt changes: its record, the delivery's new state
/// (`pending`, `delivered` or `dead`) and when to try next.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub id: i64,
    pub attempt: AttemptRecord,
    pub state: String,
    pub next_attempt_at: i64,
}

/// A delivery as the API and CLI show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub destination: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What arrived in a time range, counted ([`Store::counts`]): events by
/// source and type, requests by source and answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub events: Vec<EventCount>,
    pub requests: Vec<RequestCount>,
}

impl Counts {
    /// As `smshook stats --json` and `GET /api/stats` give it: the range
    /// (a missing `until` is `null`: now), the counts, and the outcomes.
    pub fn report(&self, range: &TimeRange) -> serde_json::Value {
        serde_json::json!({
            "since": range.since.map(crate::event::format_time),
            "until": range.until.map(crate::event::format_time),
            "events": self.events,
            "requests": self.requests,
            "outcomes": self.outcomes(),
        })
    }

    /// Each source's delivery reports: how many messages were reported
    /// delivered and how many failed, for sources that reported any.
    pub fn outcomes(&self) -> Vec<Outcomes> {
        let mut outcomes: Vec<Outcomes> = Vec::new();
        for c in &self.events {
            let delivered = c.event_type == "message.delivered";
            if !delivered && c.event_type != "message.failed" {
                continue;
            }
            if outcomes.last().is_none_or(|o| o.source != c.source) {
                outcomes.push(Outcomes {
                    source: c.source.clone(),
                    delivered: 0,
                    failed: 0,
                });
            }
            let last = outcomes.last_mut().expect("pushed");
            if delivered {
                last.delivered += c.count;
            } else {
                last.failed += c.count;
            }
        }
        outcomes
    }
}

/// One source's delivery reports in a time range ([`Counts::outcomes`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    pub source: String,
    pub delivered: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventCount {
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestCount {
    pub source: String,
    pub status: u16,
    /// `accepted`, `duplicate`, or the error code answered.
    pub reason: String,
    pub count: u64,
}

/// How many deliveries to one destination are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogCount {
    pub destination: String,
    pub state: String,
    pub count: u64,
}

/// Counts the backlog by destination and state. On SQLite it searches
/// `deliveries_state` (state, id), reading no delivered row (`EXPLAIN QUERY
/// PLAN`); both backends have that index.
pub const DELIVERY_BACKLOG: &str = "SELECT destination, state, count(*) FROM deliveries \
    WHERE state IN ('pending', 'dead') GROUP BY destination, state ORDER BY destination, state";

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub state: Option<String>,
    pub destination: Option<String>,
    pub after: Option<i64>,
    pub limit: u32,
}

/// Milliseconds since the epoch as RFC 3339 (for showing schedules).
pub fn millis_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(crate::event::format_time)
        .unwrap_or_default()
}

/// Settings every backend honours.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The request log keeps at most this many rows, the newest.
    pub request_log_max_rows: u64,
    /// Opened by `smshook serve` (which works the outbox), not by a CLI
    /// command reading beside a running server.
    pub server: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            request_log_max_rows: 100_000,
            server: false,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores an event and its request-log row in one transaction. Returns
    /// only once committed (fsync'd). A second event with the same source and
    /// dedupe key is not stored again: the first one's id comes back with
    /// `duplicate: true`.
    async fn insert_event(
        &self,
        event: NewEvent,
        request: RequestRecord,
    ) -> Result<Inserted, StoreError>;

    /// Stores the events one request carried (a batch provider's), each
    /// deduplicated on its own, with the request's log row on the last
    /// (none for an event smshook made itself: a joined message).
    /// Returns once every one is committed, their answers in order. They
    /// are written as they reach the writer, usually in one commit but not
    /// always: after an error some may be stored, which the provider's
    /// retry of the whole batch then finds as duplicates.
    async fn insert_events(
        &self,
        events: Vec<NewEvent>,
        request: Option<RequestRecord>,
    ) -> Result<Vec<Inserted>, StoreError>;

    /// The events of `source` received since `since` whose dedupe key
    /// starts with `group` (the parts of one long message: `crate::join`),
    /// newest first, at most [`MAX_PARTS`]. On SQLite a range of the
    /// dedupe index, which every event has anyway (another index, partial
    /// as it may be, cost every insert about 1% more instructions); on
    /// PostgreSQL a partial index that compares keys byte by byte.
    async fn parts(
        &self,
        source: &str,
        group: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError>;

    /// Records a request that stored nothing (refused, or a storage failure).
    /// Best effort and never blocking: under a flood, entries may be dropped
    /// (and counted in the log) rather than slow the server down.
    fn record_request(&self, request: RequestRecord);

    /// Events matching the query, in its order: at most `limit`, and no
    /// more than fill [`PAGE_PAYLOAD_BYTES`] ([`EventQuery::more_after`]
    /// tells whether rows may follow).
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    async fn event(&self, id: &str) -> Result<Option<Event>, StoreError>;

    /// The cursors of the newest stored event and request-log row (0 when
    /// there is none): where `smshook events --follow` starts.
    async fn newest(&self) -> Result<Newest, StoreError>;

    /// Events received and requests made in `range`, counted by source and
    /// type, and by source, status and reason; each list sorted by its
    /// keys. Reads every row of the range (the events' found as listings
    /// find them).
    async fn counts(&self, range: &TimeRange) -> Result<Counts, StoreError>;

    /// Request-log entries, in the query's order.
    async fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError>;

    /// A message's current status; `source` narrows it when several
    /// sources use the same message id.
    async fn message_status(
        &self,
        source: Option<&str>,
        message_id: &str,
    ) -> Result<Option<StatusRow>, StoreError>;

    /// Numbers whose latest consent change is an opt-out.
    async fn optouts(&self, query: &OptoutQuery) -> Result<Vec<Optout>, StoreError>;

    /// One number's latest consent change, opted out or back in.
    async fn optout(&self, number: &str) -> Result<Option<Optout>, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now_ms` that no one
    /// holds, leasing them until `now_ms + lease_ms`.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Records attempts and their deliveries' new states, in one transaction.
    async fn finish_deliveries(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError>;

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// A delivery's attempts, oldest first.
    async fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptRecord>, StoreError>;

    /// A new pending delivery of a stored event (replay); `None` if there is
    /// no such event.
    async fn enqueue_delivery(
        &self,
        event_id: &str,
        destination: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Makes dead deliveries pending again, with a fresh schedule. Returns
    /// how many.
    async fn retry_dead(&self, destination: Option<&str>, now_ms: i64) -> Result<u64, StoreError>;

    /// Deliveries not delivered, by destination and state (`pending`,
    /// `dead`), for `/metrics`: what the application has yet to receive.
    async fn delivery_backlog(&self) -> Result<Vec<BacklogCount>, StoreError> {
        Ok(Vec::new())
    }

    /// One batch of a retention pass ([`retention`]): looks at up to
    /// `limit` events after the cursor `after` and deletes those received
    /// before `cutoff` (RFC 3339), with their deliveries and attempts and the
    /// message statuses they set, but none with a delivery pending.
    /// Opt-outs are kept: a STOP holds until the number opts back in.
    async fn prune(
        &self,
        after: i64,
        cutoff: &str,
        limit: u32,
    ) -> Result<retention::Pruned, StoreError>;

    /// Refused-request records dropped from the request log since start,
    /// under a flood (`record_request`), for `/metrics`.
    fn request_log_dropped(&self) -> u64 {
        0
    }

    /// Ok when the store can take writes (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes pending writes and closes. Later calls fail with `Closed`.
    async fn close(&self);
}

/// Refuses a database whose schema a newer smshook migrated: this one's
/// queries may not fit it, and going on could corrupt what the newer one
/// relies on.
pub fn check_schema_version(found: usize, known: usize, database: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        found <= known,
        "{database}: its schema is version {found}, newer than this smshook knows ({known}): \
         a newer smshook migrated it; run that one, or restore a backup made before the upgrade"
    );
    Ok(())
}

/// Opens the store a database URL names: `postgres://…` or
/// `postgresql://…` for PostgreSQL; `sqlite://path` or a plain path for SQLite.
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>> {
    if is_postgres(url) {
        return Ok(Arc::new(postgres::PostgresStore::open(url, options).await?));
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    Ok(Arc::new(
        sqlite::SqliteStore::open(path.as_ref(), options).await?,
    ))
}

/// Whether a database URL names PostgreSQL (else it is SQLite).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
