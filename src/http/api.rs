//! The query API (`/api/*`, bearer token from `SMSHOOK_API_TOKEN`) and the
//! health endpoints. Errors are one [`ApiError`] enum with a JSON body; 5xx
//! answers never carry internal text.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use super::App;
use crate::event::{Event, RequestRecord};
use crate::store::{
    DeliveryQuery, EventQuery, OptoutQuery, Order, RequestQuery, StoreError, TimeRange,
};

/// Page size when none is asked for, and the most one page may hold.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A listing's answer, `{"<rows>": [...], "next": cursor|null}`, written
/// straight from the rows. (Through a `serde_json::Value` every payload
/// became a tree of allocations: a page of 300 events of 900 KB took 4.8 GB
/// and 15 s to answer.)
struct Page<T> {
    rows: &'static str,
    items: Vec<T>,
    next: Option<String>,
}

impl<T> Page<T> {
    /// `items` under `rows`, with the last one's cursor (`seq`) as `next`
    /// when `more` may follow: a full page may have more behind it, a short
    /// one is the end.
    fn of(rows: &'static str, items: Vec<T>, more: bool, seq: fn(&T) -> i64) -> Json<Self> {
        let next = items.last().filter(|_| more).map(|i| seq(i).to_string());
        Json(Self { rows, items, next })
    }
}

impl<T: Serialize> Serialize for Page<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(self.rows, &self.items)?;
        map.serialize_entry("next", &self.next)?;
        map.end()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the query API is off: set SMSHOOK_API_TOKEN to turn it on")]
    Disabled,
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("storage is unavailable")]
    Storage(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Disabled => (StatusCode::FORBIDDEN, "api_disabled"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Self::Storage(e) => {
                tracing::error!(error = %e, "query API storage error");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        let mut response = (
            status,
            Json(json!({"error": code, "message": self.to_string()})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Query parameters, refused as a JSON `invalid_query` error (not axum's
/// plain-text rejection) when they do not parse.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters, refused as a JSON `invalid_query` error when they do
/// not parse (a delivery id past `i64`, a `%FF` that is not UTF-8).
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::InvalidQuery(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::InvalidQuery(e.body_text())
    }
}

pub fn routes(app: App) -> axum::Router<App> {
    Router::new()
        .route("/api/events", get(list_events))
        .route("/api/events/{id}", get(get_event))
        .route("/api/requests", get(list_requests))
        .route("/api/stats", get(stats))
        .route("/api/sources", get(list_sources))
        .route("/api/destinations", get(list_destinations))
        .route("/api/messages/{message_id}", get(get_message))
        .route("/api/optouts", get(list_optouts))
        .route("/api/optouts/{number}", get(get_optout))
        .route("/api/deliveries", get(list_deliveries))
        .route("/api/deliveries/retry", axum::routing::post(retry_dead))
        .route("/api/deliveries/{id}", get(get_delivery))
        .route("/api/events/{id}/replay", axum::routing::post(replay))
        .route("/api/stream", get(super::stream::stream))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app, require_token))
}

async fn require_token(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = app.api_token.as_ref().ok_or(ApiError::Disabled)?;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if !token.matches(given) {
        return Err(ApiError::Unauthorized);
    }
    // A NUL can reach a path or query value only as `%00`. No stored value
    // holds one, and PostgreSQL's text refuses it with an error: say why.
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return Err(ApiError::InvalidQuery(
            "a path or query value holds a NUL character (%00)".into(),
        ));
    }
    Ok(next.run(request).await)
}

/// Prometheus text format. Served while the store is down, too: that is
/// when it matters (`smshook_store_up 0`).
async fn metrics(State(app): State<App>) -> Response {
    let backlog = app.store.delivery_backlog().await;
    if let Err(e) = &backlog {
        tracing::warn!(error = %e, "metrics: the delivery backlog could not be read");
    }
    let store = super::metrics::StoreReadings {
        backlog: backlog.ok(),
        log_dropped: app.store.request_log_dropped(),
    };
    let capacity = super::metrics::Capacity {
        connections_open: app.connection_limits.connections.in_use(),
        connections_max: app.connection_limits.connections.max(),
        body_bytes_reading: app.body_budget.in_use(),
        body_bytes_max: app.body_budget.max(),
    };
    let text = app
        .metrics
        .render(&capacity, &store, &app.attempts.snapshot());
    let kind = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

#[derive(Debug, Deserialize)]
struct EventParams {
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    message_id: Option<String>,
    number: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    order: Order,
    since: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestParams {
    source: Option<String>,
    reason: Option<String>,
    refused: Option<bool>,
    after: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    order: Order,
    since: Option<String>,
    until: Option<String>,
}

async fn list_events(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<Json<Page<Event>>, ApiError> {
    let limit = limit(p.limit)?;
    let query = EventQuery {
        source: p.source,
        event_type: p.event_type,
        message_id: p.message_id,
        number: p.number,
        after: cursor(p.after.as_deref())?,
        limit,
        order: p.order,
        received: time_range(p.since.as_deref(), p.until.as_deref())?,
    };
    let events = app.store.events(&query).await?;
    let more = query.more_after(&events);
    Ok(Page::of("events", events, more, |e| e.seq))
}

async fn get_event(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Event>, ApiError> {
    let event = app
        .store
        .event(&id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    Ok(Json(event))
}

async fn list_requests(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<RequestParams>,
) -> Result<Json<Page<RequestRecord>>, ApiError> {
    let limit = limit(p.limit)?;
    let query = RequestQuery {
        source: p.source,
        reason: p.reason,
        refused: p.refused.unwrap_or(false),
        after: cursor(p.after.as_deref())?,
        limit,
        order: p.order,
        at: time_range(p.since.as_deref(), p.until.as_deref())?,
    };
    let requests = app.store.requests(&query).await?;
    let more = requests.len() == limit as usize;
    Ok(Page::of("requests", requests, more, |r| r.seq))
}

#[derive(Debug, Deserialize)]
struct StatsParams {
    since: Option<String>,
    until: Option<String>,
}

/// How far back `/api/stats` counts when no `since` is given.
const STATS_DEFAULT_SPAN: chrono::TimeDelta = chrono::TimeDelta::hours(24);

async fn stats(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut range = time_range(p.since.as_deref(), p.until.as_deref())?;
    range
        .since
        .get_or_insert_with(|| chrono::Utc::now() - STATS_DEFAULT_SPAN);
    let counts = app.store.counts(&range).await?;
    Ok(Json(counts.report(&range)))
}

/// The sources as they run now (a reload included), by name.
async fn list_sources(State(app): State<App>) -> Json<serde_json::Value> {
    let sources = app.sources.current();
    let mut names: Vec<&String> = sources.keys().collect();
    names.sort();
    let sources: Vec<_> = names
        .into_iter()
        .map(|name| super::sources::describe(&sources[name]))
        .collect();
    Json(json!({ "sources": sources }))
}

/// The destinations, in configuration order: where each sends (without
/// credentials), what it takes, and its backlog now.
async fn list_destinations(State(app): State<App>) -> Result<Json<serde_json::Value>, ApiError> {
    let backlog = app.store.delivery_backlog().await?;
    let waiting = |name: &str, state: &str| {
        backlog
            .iter()
            .find(|b| b.destination == name && b.state == state)
            .map_or(0, |b| b.count)
    };
    let destinations: Vec<_> = app
        .destinations
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "kind": d.target.kind(),
                "target": crate::dispatch::place(&d.target, &app.brokers),
                "sources": d.filter.sources,
                "types": d.filter.types,
                "opt_out": d.filter.opt_out,
                "pending": waiting(&d.name, "pending"),
                "dead": waiting(&d.name, "dead"),
            })
        })
        .collect();
    Ok(Json(json!({ "destinations": destinations })))
}

#[derive(Debug, Deserialize)]
struct MessageParams {
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OptoutParams {
    after: Option<String>,
    limit: Option<u32>,
}

async fn get_message(
    State(app): State<App>,
    ApiPath(message_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<MessageParams>,
) -> Result<Json<crate::message::MessageState>, ApiError> {
    let state = crate::message::load(app.store.as_ref(), p.source.as_deref(), &message_id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(Json(state))
}

async fn list_optouts(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<OptoutParams>,
) -> Result<Json<Page<crate::optout::Optout>>, ApiError> {
    let limit = limit(p.limit)?;
    let optouts = app
        .store
        .optouts(&OptoutQuery {
            after: p.after,
            limit,
        })
        .await?;
    let next = (optouts.len() == limit as usize)
        .then(|| optouts.last().map(|o| o.number.clone()))
        .flatten();
    Ok(Json(Page {
        rows: "optouts",
        items: optouts,
        next,
    }))
}

async fn get_optout(
    State(app): State<App>,
    ApiPath(number): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let optout = app
        .store
        .optout(&number)
        .await?
        .ok_or(ApiError::NotFound("number"))?;
    Ok(Json(json!(optout)))
}

#[derive(Debug, Deserialize)]
struct DeliveryParams {
    state: Option<String>,
    destination: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct DestinationParam {
    destination: Option<String>,
}

async fn list_deliveries(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<Page<crate::store::Delivery>>, ApiError> {
    if let Some(state) = p
        .state
        .as_deref()
        .filter(|s| !["pending", "delivered", "dead"].contains(s))
    {
        return Err(ApiError::InvalidQuery(format!(
            "state: {state:?} is not pending, delivered or dead"
        )));
    }
    let limit = limit(p.limit)?;
    let query = DeliveryQuery {
        state: p.state,
        destination: p.destination,
        after: cursor(p.after.as_deref())?,
        limit,
    };
    let deliveries = app.store.deliveries(&query).await?;
    let more = deliveries.len() == limit as usize;
    Ok(Page::of("deliveries", deliveries, more, |d| d.id))
}

async fn get_delivery(
    State(app): State<App>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // One delivery is the listing page that starts just before it: no extra
    // store method per backend.
    let query = DeliveryQuery {
        after: Some(id.saturating_sub(1)),
        limit: 1,
        ..Default::default()
    };
    let delivery = app
        .store
        .deliveries(&query)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or(ApiError::NotFound("delivery"))?;
    let attempts = app.store.attempts(id).await?;
    Ok(Json(json!({"delivery": delivery, "attempts": attempts})))
}

/// The destination a replay or retry names, or the only one configured.
fn pick_destination(app: &App, asked: Option<String>) -> Result<String, ApiError> {
    match asked {
        Some(name) if app.destinations.iter().any(|d| d.name == name) => Ok(name),
        Some(name) => Err(ApiError::InvalidQuery(format!(
            "destination: {name:?} is not configured"
        ))),
        None if app.destinations.len() == 1 => Ok(app.destinations[0].name.clone()),
        None => Err(ApiError::InvalidQuery(
            "destination: name one of the configured destinations".into(),
        )),
    }
}

async fn replay(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<DestinationParam>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let destination = pick_destination(&app, p.destination)?;
    let delivery = app
        .store
        .enqueue_delivery(&id, &destination, crate::event::unix_millis())
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    app.dispatch_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"delivery_id": delivery, "destination": destination})),
    ))
}

async fn retry_dead(
    State(app): State<App>,
    ApiQuery(p): ApiQuery<DestinationParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let retried = app
        .store
        .retry_dead(p.destination.as_deref(), crate::event::unix_millis())
        .await?;
    app.dispatch_wake.notify_one();
    Ok(Json(json!({"retried": retried})))
}

fn limit(asked: Option<u32>) -> Result<u32, ApiError> {
    match asked.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        n => Err(ApiError::InvalidQuery(format!(
            "limit: {n} is outside 1..={MAX_LIMIT}"
        ))),
    }
}

/// `after`, a cursor from `next`; empty (`after=`, as a form sends a field
/// left blank) is the same as none.
fn cursor(after: Option<&str>) -> Result<Option<i64>, ApiError> {
    after
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<i64>().map_err(|_| {
                ApiError::InvalidQuery(format!("after: {a:?} is not a cursor from `next`"))
            })
        })
        .transpose()
}

/// `since` and `until`, RFC 3339 times with any offset; empty is none.
pub(super) fn time_range(since: Option<&str>, until: Option<&str>) -> Result<TimeRange, ApiError> {
    let parse = |name: &str, value: Option<&str>| {
        value
            .filter(|v| !v.is_empty())
            .map(|v| {
                crate::event::parse_time(v).ok_or_else(|| {
                    ApiError::InvalidQuery(format!(
                        "{name}: {v:?} is not an RFC 3339 time, such as 2026-12-03T09:30:00Z"
                    ))
                })
            })
            .transpose()
    };
    Ok(TimeRange {
        since: parse("since", since)?,
        until: parse("until", until)?,
    })
}

/// The OpenAPI 3.1 description of the webhook endpoint and this API
/// (`docs/openapi.json`), for client generators and API tools. Served
/// without a token, even with the API off: it holds no data.
pub async fn openapi() -> Response {
    let json = header::HeaderValue::from_static("application/json");
    let spec = include_str!("../../docs/openapi.json");
    ([(header::CONTENT_TYPE, json)], spec).into_response()
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"ok": true}))
}

pub async fn readyz(State(app): State<App>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let body = json!({"ok": false, "error": "storage_unavailable"});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
