//! `POST /webhooks/<source>`: reads the body under a size limit, runs the
//! ingest pipeline, waits for the commit within the ack deadline, and answers
//! — recording every request, accepted or not, in the request log. (`GET`
//! too, for a provider that can sign its parameters in the query.)

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::App;
use super::metrics::Outcomes;
use crate::config::Source;
use crate::event::{RequestRecord, now_rfc3339};
use crate::ingest::{self, IngestError, Prepared, Signed};
use crate::join;
use crate::log_throttle::Throttle;
use crate::providers::Ack;
use crate::signature::SignatureError;
use crate::store::StoreError;

/// Seconds a provider is asked to wait before retrying after a 503/504.
const RETRY_AFTER_SECS: &str = "5";
/// Longest a client may take to send its body (a stalled client must not
/// hold a connection, or shutdown, forever).
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest source name kept in the request log for an unknown source.
const MAX_LOGGED_NAME: usize = 64;
/// "Event not stored" repeats for every webhook while storage is down; each
/// one is in the request log, the server log gets a line per interval.
static NOT_STORED: Throttle = Throttle::new(crate::log_throttle::EVERY);

pub async fn receive(
    State(app): State<App>,
    SourceName(name): SourceName,
    request: Request,
) -> Response {
    let arrived = tokio::time::Instant::now();
    let _in_flight = app.pressure.enter();
    let client = client_ip(&app, &request);
    let record = new_record(&name, client);
    let sources = app.sources.current();
    let Some(source) = sources.get(&name) else {
        return refuse(&app, record, IngestError::UnknownSource);
    };
    if !source.admits(client) {
        let address = record
            .remote_addr
            .clone()
            .unwrap_or_else(|| "an unknown address".into());
        return refuse(&app, record, IngestError::ForbiddenAddress(address));
    }
    take(&app, source, request, record, arrived).await
}

/// `GET /webhooks/<source>`: taken only by a source whose provider signs
/// the query's parameters (Vonage's SMS API, whose dashboard sends `GET`
/// unless told otherwise); any other source, or a `HEAD`, is answered as
/// for any method but POST.
pub async fn receive_get(
    State(app): State<App>,
    SourceName(name): SourceName,
    request: Request,
) -> Response {
    if request.method() == axum::http::Method::GET && takes_get(&app, &name) {
        receive(State(app), SourceName(name), request).await
    } else {
        wrong_method(State(app), SourceName(name), request).await
    }
}

/// Whether the source `name` (if there is one) takes webhooks by GET.
fn takes_get(app: &App, name: &str) -> bool {
    let sources = app.sources.current();
    sources.get(name).is_some_and(|s| s.provider.takes_get())
}

/// The source named in a webhook's URL. A name that does not decode (`%FF`
/// is not UTF-8) names no source either: it is kept as sent, and answered
/// and logged as an unknown source, not with axum's plain-text 400.
pub struct SourceName(String);

impl<S: Send + Sync> FromRequestParts<S> for SourceName {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let name = match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => name,
            Err(_) => parts
                .uri
                .path()
                .trim_start_matches("/webhooks/")
                .to_string(),
        };
        Ok(Self(name))
    }
}

/// Reads, verifies, normalizes and stores one webhook for a source that
/// admits its sender, and answers.
async fn take(
    app: &App,
    source: &Source,
    request: Request,
    mut record: RequestRecord,
    arrived: tokio::time::Instant,
) -> Response {
    let (parts, body) = request.into_parts();
    // Held until the answer: the body's bytes live that long.
    let _reserved = match reserve(app, source, &parts.headers) {
        Ok(reserved) => reserved,
        Err(e) => return refuse(app, record, e),
    };
    let bytes = match read_body(body, app.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => return refuse(app, record, e),
    };
    let content = logged_content(&parts, &bytes);
    record.size = content.len() as u64;
    if let Some(certificates) = &source.certificates {
        certificates.prefetch(&bytes, &source.secrets).await;
    }
    let signed = signed_parts(source, &parts);
    let mut event = match ingest::prepare(source, signed, &bytes, record.at.clone()) {
        Ok(Prepared::One(event)) => event,
        Ok(Prepared::Batch(events)) => {
            return take_batch(app, source, events, record, arrived, content).await;
        }
        Err(e) => {
            return refuse(
                app,
                with_hash(record, content),
                signed_as(e, &parts.headers),
            );
        }
    };
    event.destinations = crate::dispatch::route(&app.destinations, &event);
    let hands_off = !event.destinations.is_empty();
    let part = join::Pending::of(&event);
    let allowed = source.provider.ack_deadline(app.ack_deadline);
    let stored = app.store.insert_event(event, record.clone());
    match within(stored, arrived, allowed).await {
        Ok(inserted) => {
            let outcomes = Outcomes::of(inserted.duplicate);
            committed(app, outcomes, hands_off);
            if let Some(part) = part
                && let Err(cause) = within(store_whole(app, source, &part), arrived, allowed).await
            {
                return not_stored(app, source, with_hash(record, content), &cause);
            }
            app.metrics
                .accepted(&source.name, outcomes, arrived.elapsed());
            if let Some(certificates) = &source.certificates {
                certificates.confirm(&bytes, &source.name);
            }
            acknowledge(source.provider.ack, inserted)
        }
        Err(cause) => not_stored(app, source, with_hash(record, content), &cause),
    }
}

/// Stores the whole message `part` completes, if it does: a message
/// smshook made, routed as any event and with no request-log row of its
/// own (the part's request has one).
async fn store_whole(app: &App, source: &Source, part: &join::Pending) -> Result<(), StoreError> {
    let Some(mut whole) = join::whole(app.store.as_ref(), source, part).await? else {
        return Ok(());
    };
    whole.destinations = crate::dispatch::route(&app.destinations, &whole);
    let hands_off = !whole.destinations.is_empty();
    let inserted = app.store.insert_events(vec![whole], None).await?;
    committed(app, Outcomes::of_all(&inserted), hands_off);
    Ok(())
}

/// Stores a batch provider's events, each routed to its destinations, and
/// answers `200` once every one is committed: `{"ok":true,"events":[…]}`,
/// each with its `event_id` and `duplicate` in the order sent.
async fn take_batch(
    app: &App,
    source: &Source,
    mut events: Vec<crate::event::NewEvent>,
    record: RequestRecord,
    arrived: tokio::time::Instant,
    content: &[u8],
) -> Response {
    let mut hands_off = false;
    for event in &mut events {
        event.destinations = crate::dispatch::route(&app.destinations, event);
        hands_off |= !event.destinations.is_empty();
    }
    let allowed = source.provider.ack_deadline(app.ack_deadline);
    let stored = app.store.insert_events(events, Some(record.clone()));
    match within(stored, arrived, allowed).await {
        Ok(inserted) => {
            let outcomes = Outcomes::of_all(&inserted);
            app.metrics
                .accepted(&source.name, outcomes, arrived.elapsed());
            committed(app, outcomes, hands_off);
            let events: Vec<_> = inserted
                .iter()
                .map(|i| json!({"event_id": i.event_id, "duplicate": i.duplicate}))
                .collect();
            Json(json!({"ok": true, "events": events})).into_response()
        }
        Err(cause) => not_stored(app, source, with_hash(record, content), &cause),
    }
}

/// What in the request's head is signed, as `source`'s provider signs:
/// its headers, and the query.
fn signed_parts<'a>(source: &Source, parts: &'a Parts) -> Signed<'a> {
    let mut signed = Signed::from_headers(source.provider, |name| {
        parts.headers.get(name).map(HeaderValue::as_bytes)
    });
    signed.query = parts.uri.query();
    signed
}

/// What the request log sizes and fingerprints: the body, or a GET
/// webhook's query, which is its content.
fn logged_content<'a>(parts: &'a Parts, body: &'a [u8]) -> &'a [u8] {
    match parts.method {
        axum::http::Method::GET => parts.uri.query().unwrap_or_default().as_bytes(),
        _ => body,
    }
}

/// The 503 (TextUs: 504) for an event that could not be stored in time.
fn not_stored(app: &App, source: &Source, record: RequestRecord, cause: &StoreError) -> Response {
    if let Some(skipped) = NOT_STORED.check() {
        tracing::warn!(source = %source.name, error = %cause, skipped, "event not stored; asking the provider to retry");
    }
    let error = IngestError::StorageUnavailable {
        retry_status: source.provider.retry_status,
        cause: cause.to_string(),
    };
    refuse(app, record, error)
}

/// What `stored` comes to, or why it is not committed `allowed` after the
/// webhook arrived.
async fn within<T>(
    stored: impl std::future::Future<Output = Result<T, StoreError>>,
    arrived: tokio::time::Instant,
    allowed: std::time::Duration,
) -> Result<T, StoreError> {
    match tokio::time::timeout_at(arrived + allowed, stored).await {
        Ok(stored) => stored,
        Err(_) => Err(StoreError::Unavailable(format!(
            "not committed within {allowed:?}"
        ))),
    }
}

/// Wakes live streams, and the dispatcher when an event has somewhere to
/// go, for new events.
fn committed(app: &App, outcomes: Outcomes, hands_off: bool) {
    if outcomes.new > 0 {
        app.commits.send_modify(|n| *n += outcomes.new);
        if hands_off {
            app.dispatch_wake.notify_one();
        }
    }
}

/// The 200 for one stored event.
fn acknowledge(ack: Ack, inserted: crate::event::Inserted) -> Response {
    match ack {
        Ack::Json => {
            let json = HeaderValue::from_static("application/json");
            ([(header::CONTENT_TYPE, json)], accepted_body(&inserted)).into_response()
        }
        Ack::EmptyXml => empty_xml_ack(&inserted),
    }
}

/// An empty `<Response/>` document: Twilio (TwiML) and Plivo (Plivo XML)
/// send no reply to the message. What the JSON answer says is in headers.
fn empty_xml_ack(inserted: &crate::event::Inserted) -> Response {
    const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;
    let duplicate = if inserted.duplicate { "true" } else { "false" };
    let mut response = ([(header::CONTENT_TYPE, "text/xml")], EMPTY).into_response();
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&inserted.event_id) {
        headers.insert("smshook-event-id", id);
    }
    headers.insert("smshook-duplicate", HeaderValue::from_static(duplicate));
    response
}

/// `{"ok":true,"event_id":"…","duplicate":…}`. Written by hand: our ids
/// (`evt_` + ULID) need no escaping, and serde plus axum's `Json` cost about
/// 1,000 more instructions per answer (callgrind). Any other id goes through
/// serde.
fn accepted_body(inserted: &crate::event::Inserted) -> String {
    let id = &inserted.event_id;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        let body = json!({"ok": true, "event_id": id, "duplicate": inserted.duplicate});
        return body.to_string();
    }
    let duplicate = if inserted.duplicate { "true" } else { "false" };
    [
        r#"{"ok":true,"event_id":""#,
        id,
        r#"","duplicate":"#,
        duplicate,
        "}",
    ]
    .concat()
}

/// A webhook without its source's signature header (or, for Vonage's SMS
/// API, without a `sig` it could read), but with another provider's, is
/// said to be signed as that one.
fn signed_as(mut error: IngestError, headers: &HeaderMap) -> IngestError {
    if let IngestError::InvalidSignature {
        header: own,
        cause:
            SignatureError::Missing
            | SignatureError::MissingSig
            | SignatureError::Unreadable
            | SignatureError::MissingCredentials
            | SignatureError::NotSns,
        signed_as,
    } = &mut error
    {
        // Its own header may be there but empty: that is not another's.
        let other = |h: &str| {
            let value = headers.get(h).filter(|_| h != *own);
            value.map(HeaderValue::as_bytes)
        };
        *signed_as = crate::providers::signing_in(other).map(|p| p.name);
    }
    error
}

/// A refused body is not stored, so its log row carries its fingerprint; an
/// accepted one's row points at the stored event instead.
fn with_hash(mut record: RequestRecord, body: &[u8]) -> RequestRecord {
    record.body_sha256 = Some(ingest::body_sha256(body));
    record
}

/// Any method but POST (and, for a source that takes it, GET) on a
/// webhook URL; `Allow` names what the source takes.
pub async fn wrong_method(
    State(app): State<App>,
    SourceName(name): SourceName,
    request: Request,
) -> Response {
    let (allow, message) = if takes_get(&app, &name) {
        ("GET, POST", "webhooks are delivered with GET or POST")
    } else {
        ("POST", "webhooks are delivered with POST")
    };
    let mut record = new_record(&name, client_ip(&app, &request));
    record.status = StatusCode::METHOD_NOT_ALLOWED.as_u16();
    record.reason = "method_not_allowed".into();
    record.message = Some(message.into());
    app.metrics.answered(&name, record.status);
    app.store.record_request(record);
    let body = json!({"error": "method_not_allowed", "message": message});
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, allow)],
        Json(body),
    )
        .into_response()
}

/// The client's address: the peer's, or behind a trusted proxy the one it
/// names (`proxies`). Always there for connections from our accept loop.
fn client_ip(app: &App, request: &Request) -> Option<IpAddr> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(app.trusted_proxies.client(peer.0.ip(), request.headers()))
}

fn new_record(name: &str, client: Option<IpAddr>) -> RequestRecord {
    let remote = client.map(ip_text);
    let mut source = name.to_string();
    source.truncate(source.floor_char_boundary(MAX_LOGGED_NAME));
    // Anyone can send `/webhooks/%00`; PostgreSQL's text refuses NUL, and
    // would refuse the events logged in the same transaction with it.
    crate::event::replace_nul(&mut source);
    RequestRecord {
        seq: 0,
        at: now_rfc3339(),
        source,
        status: 200,
        reason: "accepted".into(),
        remote_addr: remote,
        size: 0,
        body_sha256: None,
        event_id: None,
        message: None,
    }
}

/// The remote address as text. IPv4 is written by hand: `to_string` cost
/// about 1,000 more instructions per request (callgrind), for four numbers.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Room in the body budget for this request's body: its declared length,
/// else, for a chunked body, the most a body may be. A request with
/// neither has no body in HTTP/1.1 (a GET of Vonage's SMS API) and takes
/// no room. A declared length past `max_body_bytes` is refused 413 before
/// any byte is read; no room left, 503 (504 for TextUs).
fn reserve<'a>(
    app: &'a App,
    source: &Source,
    headers: &HeaderMap,
) -> Result<tokio::sync::SemaphorePermit<'a>, IngestError> {
    let limit = app.max_body_bytes;
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let unknown = if chunked { limit as u64 } else { 0 };
    let declared = content_length(headers).unwrap_or(unknown);
    if declared > limit as u64 {
        return Err(IngestError::PayloadTooLarge { limit });
    }
    let permits = u32::try_from(declared).unwrap_or(u32::MAX);
    app.body_budget.try_take(permits).ok_or(IngestError::Busy {
        retry_status: source.provider.retry_status,
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes or
/// stalls past `BODY_READ_TIMEOUT`.
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, IngestError> {
    let reading = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect());
    match reading.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(IngestError::PayloadTooLarge { limit })
        }
        Ok(Err(e)) => Err(IngestError::BadBody(e.to_string())),
        Err(_) => Err(IngestError::BadBody(
            "the body took too long to arrive".into(),
        )),
    }
}

/// Answers a refused request and records it in the request log, with the
/// message the answer carries.
fn refuse(app: &App, mut record: RequestRecord, error: IngestError) -> Response {
    let message = error.to_string();
    let response = answer(&error, &message);
    record.status = response.status().as_u16();
    record.reason = error.code().into();
    record.message = Some(message);
    app.metrics.answered(&record.source, record.status);
    tracing::debug!(source = %record.source, status = record.status, reason = %record.reason, "webhook refused");
    app.store.record_request(record);
    response
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        answer(&self, &self.to_string())
    }
}

/// A refusal's HTTP answer: its status, `{"error","message"}`, and
/// `Retry-After` when the provider should come back.
fn answer(error: &IngestError, message: &str) -> Response {
    let status = match error {
        IngestError::UnknownSource => StatusCode::NOT_FOUND,
        IngestError::ForbiddenAddress(_) => StatusCode::FORBIDDEN,
        IngestError::PayloadTooLarge { .. } | IngestError::TooManyEvents { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        IngestError::BadBody(_)
        | IngestError::MalformedJson(_)
        | IngestError::MalformedBatch(_) => StatusCode::BAD_REQUEST,
        IngestError::InvalidSignature { .. } => StatusCode::UNAUTHORIZED,
        IngestError::StorageUnavailable { retry_status, .. }
        | IngestError::Busy { retry_status }
        | IngestError::Unsigned { retry_status, .. }
        | IngestError::Unverifiable { retry_status, .. } => {
            StatusCode::from_u16(*retry_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
    };
    let body = json!({"error": error.code(), "message": message});
    let mut response = (status, Json(body)).into_response();
    // Every 5xx here means nothing was stored and the provider should send
    // it again (its retry status: 503, or TextUs's 504).
    if status.is_server_error() {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    // A sender that sends its Basic credentials only when asked is asked.
    if let IngestError::InvalidSignature {
        cause:
            SignatureError::MissingCredentials
            | SignatureError::MissingCredentialsOrHmac
            | SignatureError::MalformedBasic,
        ..
    } = error
    {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="smshook""#),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Inserted;

    #[test]
    fn ip_text_writes_addresses_as_std_does() {
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 10]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().expect("an IPv6 address");
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn the_accepted_body_is_the_json_serde_would_write() {
        for (id, duplicate) in [
            (crate::event::new_event_id(), false),
            ("evt_01J".to_string(), true),
            ("an \"odd\" id\n".to_string(), false),
        ] {
            let inserted = Inserted {
                event_id: id.clone(),
                duplicate,
            };
            let body: serde_json::Value =
                serde_json::from_str(&accepted_body(&inserted)).expect("valid JSON");
            assert_eq!(
                body,
                json!({"ok": true, "event_id": id, "duplicate": duplicate})
            );
        }
    }
}
