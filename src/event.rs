//! The one event model every provider's payload is normalized into, and the
//! request-log record kept for every webhook request, accepted or not.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What a provider's payload says, in smshook's vocabulary. Every field a
/// payload does not carry is `None` (`null` in JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFields {
    pub provider_event_id: Option<String>,
    /// Normalized type (`message.delivered`, `contact.opted_out`, …); a
    /// provider type with no clear meaning keeps its own name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The type exactly as the provider sent it.
    pub provider_type: Option<String>,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
    pub status: Option<String>,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    /// When the provider says it happened, as RFC 3339 UTC.
    pub occurred_at: Option<String>,
}

impl EventFields {
    /// Replaces every NUL character in the text fields with U+FFFD.
    ///
    /// GSM 03.38 codes `@` as 0x00 and some gateways pass it on as `\u0000`;
    /// PostgreSQL's `text` cannot hold it and would refuse the whole batch,
    /// so the normalized fields carry U+FFFD instead, on every backend alike.
    /// The payload keeps the `\u0000` as sent.
    pub fn replace_nul(&mut self) {
        replace_nul(&mut self.event_type);
        let fields = [
            &mut self.provider_event_id,
            &mut self.provider_type,
            &mut self.message_id,
            &mut self.from,
            &mut self.to,
            &mut self.body,
            &mut self.status,
            &mut self.error_code,
            &mut self.error_reason,
            &mut self.occurred_at,
        ];
        for text in fields.into_iter().flatten() {
            replace_nul(text);
        }
    }
}

/// U+FFFD for every NUL in `text` (see [`EventFields::replace_nul`]).
pub fn replace_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{fffd}");
    }
}

/// A provider's reading of one payload: the fields plus the key that
/// recognises a retry of the same event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// `None` when the payload carries no id; the body's SHA-256 is used then.
    pub dedupe_key: Option<String>,
    pub fields: EventFields,
    /// The provider's own word on consent (Twilio's `OptOutType`): `true`
    /// opts the sender out, `false` back in. `None` leaves it to the event
    /// type and smshook's keyword list (`optout::classify`).
    pub consent: Option<bool>,
    /// Where a long inbound message arrives in parts, each its own webhook
    /// (Vonage's SMS API), which part this is: its event is a
    /// `message.part`, and `crate::join` stores the whole message once
    /// every part is in.
    pub part: Option<Part>,
}

/// One part of a long inbound message, as the sender's phone numbered it
/// (the concatenation header of GSM 03.40: a reference, a count, a place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The sender's reference for the whole message (one byte or two:
    /// phones reuse it after 256 or 65,536 long messages).
    pub reference: String,
    /// How many parts the message has (2 or more).
    pub total: u16,
    /// This part's place, from 1 to `total`.
    pub number: u16,
}

impl Normalized {
    /// An event of a type smshook gives no meaning to: it keeps the name
    /// the provider gave it (`unknown` with none), every other field empty,
    /// and a retry is recognised by the body's hash.
    pub fn kept_as(provider_type: Option<String>) -> Self {
        let event_type = provider_type.clone().unwrap_or_else(|| "unknown".into());
        Self {
            fields: EventFields {
                event_type,
                provider_type,
                ..EventFields::default()
            },
            ..Self::default()
        }
    }
}

/// An event ready to be stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub source: String,
    pub provider: String,
    pub dedupe_key: String,
    pub fields: EventFields,
    /// `Some(true)`: this event opts its number out; `Some(false)`: back in.
    pub opt_out: Option<bool>,
    pub received_at: String,
    /// The original body, byte for byte (validated as a JSON object).
    pub payload: String,
    /// Destinations whose filters match: the store records a pending delivery
    /// for each in the event's own transaction (the outbox).
    pub destinations: Vec<String>,
    /// Which part of a long message this is, as normalization read it
    /// ([`Normalized::part`]): not stored, it tells the webhook handler to
    /// try the join (`crate::join`) without reading the payload again.
    pub part: Option<Part>,
}

/// A stored event as the API and CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Arrival order; the paging cursor.
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub source: String,
    pub provider: String,
    #[serde(flatten)]
    pub fields: EventFields,
    /// `true`: an opt-out (STOP, `contact.opted_out`); `false`: an opt-in.
    pub opt_out: Option<bool>,
    pub received_at: String,
    pub payload: Box<RawValue>,
}

/// What storing an event did: a new row, or the row a retry matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inserted {
    pub event_id: String,
    pub duplicate: bool,
}

/// One webhook request as the request log keeps it: never the body, never a
/// secret; enough to see why a provider's deliveries fail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    #[serde(skip)]
    pub seq: i64,
    pub at: String,
    pub source: String,
    pub status: u16,
    /// `accepted`, `duplicate`, or the error code that was answered.
    pub reason: String,
    pub remote_addr: Option<String>,
    pub size: u64,
    pub body_sha256: Option<String>,
    pub event_id: Option<String>,
    /// Why it was refused, in words: the `message` of the answer sent
    /// (which header was missing, where the JSON broke). `None` when
    /// accepted.
    #[serde(default)]
    pub message: Option<String>,
}

/// A new sortable event id: `evt_` + ULID.
pub fn new_event_id() -> String {
    // Written into one String of the final size: `format!` through the
    // ULID's `Display` cost about 750 instructions per event (callgrind).
    let mut ulid = [0u8; ulid::ULID_LEN];
    let mut id = String::with_capacity(4 + ulid::ULID_LEN);
    id.push_str("evt_");
    id.push_str(ulid::Ulid::generate().array_to_str(&mut ulid));
    id
}

/// The smallest event id [`new_event_id`] can make at `t`: every id made
/// at or after `t` sorts at or after it, every id made before sorts before.
/// Listings by receive time find their place in arrival order through it.
pub fn first_event_id_at(t: DateTime<Utc>) -> String {
    let millis = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    format!("evt_{}", ulid::Ulid::from_parts(millis, 0))
}

/// Milliseconds since the Unix epoch (delivery schedules).
pub fn unix_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Now, as stored timestamps are written (RFC 3339, UTC, milliseconds).
pub fn now_rfc3339() -> String {
    format_time(Utc::now())
}

/// An RFC 3339 time with any offset (`2026-12-03T09:30:00Z`,
/// `2026-12-03T10:30:00+01:00`), in UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_sort_by_creation() {
        let a = new_event_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_event_id();
        assert!(a.starts_with("evt_") && a < b);
    }

    #[test]
    fn the_first_event_id_at_a_time_sorts_between_ids_made_before_and_after() {
        let before = new_event_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let at = Utc::now();
        let first = first_event_id_at(at);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = new_event_id();
        assert!(before < first && first < after, "{before} {first} {after}");
        let epoch = DateTime::<Utc>::from_timestamp_millis(-5).expect("time");
        assert_eq!(first_event_id_at(epoch), "evt_00000000000000000000000000");
    }
}
