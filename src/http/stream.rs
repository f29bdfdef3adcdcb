//! `GET /api/stream`: stored events as Server-Sent Events, as they commit.
//! The stream tails the events table by its `seq` cursor, which is gap-free
//! on both backends, so `Last-Event-ID` (each event's `id:` is its cursor)
//! resumes exactly where a client left off. Commits here wake streams at
//! once; events stored by other replicas arrive within a poll.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::App;
use super::api::{ApiError, ApiQuery};
use crate::log_throttle::Throttle;
use crate::store::{EventQuery, Order, TimeRange};

const PAGE: u32 = 200;
/// Longest a stream waits before looking for events from other replicas.
const POLL: Duration = Duration::from_secs(1);
/// Every open stream fails its reads while storage is down: one line per
/// interval for all of them.
static READ_FAILED: Throttle = Throttle::new(crate::log_throttle::EVERY);

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// `true`: only opt-outs; `false`: only opt-ins.
    opt_out: Option<bool>,
    /// Resume after this cursor (as `Last-Event-ID` does).
    after: Option<i64>,
    /// Start with the events received at or after this time (RFC 3339):
    /// the last hour, say, then what arrives.
    since: Option<String>,
}

pub async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<i64>);
    let after = match resume {
        Some(Ok(seq)) => Some(seq),
        Some(Err(_)) => {
            return Err(ApiError::InvalidQuery(
                "Last-Event-ID: not an id from this stream".into(),
            ));
        }
        None => p.after,
    };
    let received = super::api::time_range(p.since.as_deref(), None)?;
    let (tx, rx) = mpsc::channel(PAGE as usize);
    tokio::spawn(tail(app, p, (after.unwrap_or(0), received), tx));
    Ok(Sse::new(EventStream(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Sends every matching event after `cursor`, then waits for more, until the
/// client goes away or the server shuts down.
async fn tail(
    app: App,
    p: StreamParams,
    (mut cursor, received): (i64, TimeRange),
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    let mut commits = app.commits.subscribe();
    let mut stopping = app.stopping.subscribe();
    loop {
        let query = EventQuery {
            source: p.source.clone(),
            event_type: p.event_type.clone(),
            message_id: None,
            number: None,
            after: Some(cursor),
            limit: PAGE,
            order: Order::Asc,
            received,
        };
        let page = match app.store.events(&query).await {
            Ok(page) => page,
            Err(e) => {
                if let Some(skipped) = READ_FAILED.check() {
                    tracing::warn!(error = %e, skipped, "event stream: storage unavailable; retrying");
                }
                Vec::new()
            }
        };
        for event in &page {
            cursor = event.seq;
            if p.opt_out.is_some_and(|want| event.opt_out != Some(want)) {
                continue;
            }
            let Ok(frame) = SseEvent::default()
                .id(event.seq.to_string())
                .event(&event.fields.event_type)
                .json_data(event)
            else {
                continue;
            };
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
        if query.more_after(&page) {
            continue;
        }
        tokio::select! {
            _ = commits.changed() => {}
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// The receiving end of a tail, as the `Stream` axum's `Sse` wants.
pub struct EventStream(mpsc::Receiver<Result<SseEvent, Infallible>>);

impl futures_core::Stream for EventStream {
    type Item = Result<SseEvent, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
