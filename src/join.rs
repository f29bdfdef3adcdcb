//! Long inbound messages that arrive in parts, each its own webhook
//! (Vonage's SMS API): each part is stored as a `message.part` event as it
//! comes, and once every part of a message is stored, the whole message is
//! stored as one `message.received` event, its text the parts' in order.
//!
//! The parts of a message share the sender, the recipient, and the
//! sender's reference and part count; a phone reuses its reference after
//! 256 long messages (65,536 with a two-byte one), so parts are only
//! joined with parts sent within [`SPAN`] of them, and where a place has
//! several candidates, the one sent nearest in time is taken. The join is
//! tried after every part is committed, a retried one too, before the
//! part's webhook is answered: a `200` for the last part means the whole
//! message is stored, and a failure to store it is answered as a storage
//! failure, so the provider's retry of the part tries the join again. Its
//! dedupe key comes from its parts' event ids, so two last parts arriving
//! at once store it once.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::Source;
use crate::event::{Event, EventFields, NewEvent, Part, new_event_id, now_rfc3339, parse_time};
use crate::providers::payload::parse_object;
use crate::store::{Store, StoreError};

/// The type of a part's event.
pub const PART: &str = "message.part";
/// How far back the parts of a message are looked for: Vonage retries an
/// inbound message for 24 hours, the first part may have come before.
const LOOK_BACK: TimeDelta = TimeDelta::hours(25);
/// Farthest apart the parts of one message were sent (their `occurred_at`,
/// the time the provider first pushed them, which its retries keep; else
/// the time smshook received them). A phone sends them within seconds.
pub const SPAN: TimeDelta = TimeDelta::hours(1);

/// The start of the dedupe key of every part of one message: sender,
/// recipient, reference and count, each ended by `|`; a part's key goes on
/// with its message id, so its retry is a duplicate while another message
/// under the same reference is not, and the parts of a message are found
/// as one range of the dedupe index ([`Store::parts`]).
pub fn group_key(from: &str, to: Option<&str>, part: &Part) -> String {
    let (to, reference, total) = (to.unwrap_or_default(), &part.reference, part.total);
    format!("part|{from}|{to}|{reference}|{total}|")
}

/// The start of the dedupe key `fields`' part has, if it is one.
fn group_of(fields: &EventFields, part: &Part) -> Option<String> {
    let from = fields.from.as_deref()?;
    Some(group_key(from, fields.to.as_deref(), part))
}

/// A part just stored, as the join needs it.
#[derive(Debug, Clone)]
pub struct Pending {
    group: String,
    total: u16,
    sent: DateTime<Utc>,
}

impl Pending {
    /// `event`'s part, if it is one (as its provider's normalization read
    /// it: the payload is not read again).
    pub fn of(event: &NewEvent) -> Option<Self> {
        let part = event.part.as_ref()?;
        Some(Self {
            group: group_of(&event.fields, part)?,
            total: part.total,
            sent: sent(&event.fields, &event.received_at)?,
        })
    }
}

/// The whole message `pending` completes, ready to be stored; `None` while
/// a part is missing.
pub async fn whole(
    store: &dyn Store,
    source: &Source,
    pending: &Pending,
) -> Result<Option<NewEvent>, StoreError> {
    let since = Utc::now() - LOOK_BACK;
    let stored = store.parts(&source.name, &pending.group, since).await?;
    let candidates: Vec<Candidate> = stored
        .into_iter()
        .filter_map(|event| Candidate::of(source, pending, event))
        .collect();
    Ok(pick(&candidates, pending).map(|parts| joined(source, &parts)))
}

/// A stored part of the same message as the pending one, maybe.
struct Candidate {
    number: u16,
    /// How far from the pending part's it was sent.
    distance: TimeDelta,
    event: Event,
}

impl Candidate {
    /// `event`, if it is a part of the pending one's message (the same
    /// group exactly: the range read also holds keys that only start
    /// alike) sent within [`SPAN`] of it.
    fn of(source: &Source, pending: &Pending, event: Event) -> Option<Self> {
        let part = part_of(source, event.payload.get())?;
        let same = group_of(&event.fields, &part)? == pending.group;
        let distance = (sent(&event.fields, &event.received_at)? - pending.sent).abs();
        (same && distance <= SPAN).then_some(Self {
            number: part.number,
            distance,
            event,
        })
    }
}

/// For each place of the message, the candidate sent nearest the pending
/// part (the newest of equals: candidates come newest first); `None` if a
/// place has none.
fn pick<'a>(candidates: &'a [Candidate], pending: &Pending) -> Option<Vec<&'a Event>> {
    (1..=pending.total)
        .map(|number| {
            candidates
                .iter()
                .filter(|c| c.number == number)
                .min_by_key(|c| c.distance)
                .map(|c| &c.event)
        })
        .collect()
}

/// What the provider's normalization reads of a stored `payload` as a part.
fn part_of(source: &Source, payload: &str) -> Option<Part> {
    let object = parse_object(payload).ok()?;
    (source.provider.normalize)(&object).part
}

/// When a part was sent: its `occurred_at`, else when it was received.
fn sent(fields: &EventFields, received_at: &str) -> Option<DateTime<Utc>> {
    let occurred = fields.occurred_at.as_deref().and_then(parse_time);
    occurred.or_else(|| parse_time(received_at))
}

/// The payload of a joined message: every part's payload as sent, in
/// order, and the ids of their events.
#[derive(Serialize)]
struct Joined<'a> {
    parts: Vec<&'a RawValue>,
    part_event_ids: Vec<&'a str>,
}

/// The `message.received` event of the whole message, from its parts in
/// order: the first part's numbers and message id, the text of all, the
/// earliest time.
fn joined(source: &Source, parts: &[&Event]) -> NewEvent {
    let first = &parts[0].fields;
    let ids: Vec<&str> = parts.iter().map(|e| e.id.as_str()).collect();
    let bodies: Vec<&str> = parts
        .iter()
        .filter_map(|e| e.fields.body.as_deref())
        .collect();
    let fields = EventFields {
        event_type: "message.received".into(),
        provider_type: first.provider_type.clone(),
        message_id: first.message_id.clone(),
        from: first.from.clone(),
        to: first.to.clone(),
        body: (!bodies.is_empty()).then(|| bodies.concat()),
        occurred_at: parts
            .iter()
            .filter_map(|e| e.fields.occurred_at.clone())
            .min(),
        ..EventFields::default()
    };
    let payload = Joined {
        parts: parts.iter().map(|e| e.payload.as_ref()).collect(),
        part_event_ids: ids.clone(),
    };
    NewEvent {
        id: new_event_id(),
        source: source.name.clone(),
        provider: source.provider.name.to_string(),
        dedupe_key: format!("joined:{}", hex::encode(Sha256::digest(ids.join(",")))),
        opt_out: crate::optout::classify(&fields, None),
        fields,
        received_at: now_rfc3339(),
        payload: serde_json::to_string(&payload).expect("a joined payload serializes"),
        destinations: Vec::new(),
        part: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vonage_sms;
    use serde_json::json;

    fn source() -> Source {
        Source {
            name: "vs".into(),
            provider: &vonage_sms::PROVIDER,
            secrets: Vec::new(),
            allowed: None,
            public_url: None,
            certificates: None,
        }
    }

    /// A stored part of message `reference` to `to`, sent at `minute`.
    fn part(reference: &str, to: &str, number: u16, text: &str, minute: u32) -> Event {
        let payload = json!({
            "msisdn": "447700900001", "to": to, "messageId": format!("{reference}-{number}-{minute}"),
            "text": text, "type": "text", "concat": "true", "concat-ref": reference,
            "concat-total": "3", "concat-part": number.to_string(),
            "message-timestamp": format!("2026-12-05 10:{minute:02}:00"),
        });
        let object = serde_json::to_string(&payload).expect("json");
        let fields =
            (vonage_sms::PROVIDER.normalize)(&parse_object(&object).expect("object")).fields;
        Event {
            seq: 0,
            id: format!("evt_{reference}{number}{minute:02}"),
            source: "vs".into(),
            provider: "vonage-sms".into(),
            fields,
            opt_out: None,
            received_at: "2026-12-05T11:00:00.000Z".into(),
            payload: RawValue::from_string(object).expect("raw"),
        }
    }

    fn pending(event: &Event) -> Pending {
        let part = part_of(&source(), event.payload.get()).expect("a part");
        Pending {
            group: group_of(&event.fields, &part).expect("a group"),
            total: part.total,
            sent: sent(&event.fields, &event.received_at).expect("time"),
        }
    }

    /// What `whole` would make of `stored` (newest first) for `pending`.
    fn whole_of(stored: &[Event], pending: &Pending) -> Option<NewEvent> {
        let candidates: Vec<Candidate> = stored
            .iter()
            .filter_map(|e| Candidate::of(&source(), pending, e.clone()))
            .collect();
        pick(&candidates, pending).map(|parts| joined(&source(), &parts))
    }

    #[test]
    fn the_parts_join_in_their_order_once_all_are_in() {
        let (one, two, three) = (
            part("7", "447700900000", 1, "Hello ", 0),
            part("7", "447700900000", 2, "there, ", 0),
            part("7", "447700900000", 3, "friend", 1),
        );
        assert_eq!(one.fields.event_type, PART);
        let now = pending(&two);
        assert!(whole_of(&[two.clone(), three.clone()], &now).is_none());
        let whole = whole_of(&[one.clone(), three.clone(), two.clone()], &now).expect("whole");
        assert_eq!(whole.fields.event_type, "message.received");
        assert_eq!(whole.fields.body.as_deref(), Some("Hello there, friend"));
        assert_eq!(whole.fields.message_id, one.fields.message_id);
        assert_eq!(whole.fields.from.as_deref(), Some("447700900001"));
        assert_eq!(whole.fields.to.as_deref(), Some("447700900000"));
        assert_eq!(
            whole.fields.occurred_at.as_deref(),
            Some("2026-12-05T10:00:00.000Z")
        );
        assert_eq!(
            (whole.source.as_str(), whole.provider.as_str()),
            ("vs", "vonage-sms")
        );
        let payload: serde_json::Value = serde_json::from_str(&whole.payload).expect("json");
        assert_eq!(payload["parts"][2]["text"], "friend");
        assert_eq!(payload["part_event_ids"], json!([one.id, two.id, three.id]));
        // The same parts, found from another part: the same key.
        let again = whole_of(&[three.clone(), two, one], &pending(&three)).expect("whole");
        assert_eq!(again.dedupe_key, whole.dedupe_key);
        assert_ne!(again.id, whole.id);
    }

    #[test]
    fn only_parts_of_the_same_message_sent_near_in_time_are_joined() {
        let now = part("7", "447700900000", 3, "c", 30);
        let other_ref = part("8", "447700900000", 1, "x", 30);
        let other_to = part("7", "447700900009", 1, "x", 30);
        let two = part("7", "447700900000", 2, "b", 30);
        let stored = [now.clone(), other_ref, other_to, two.clone()];
        assert!(whole_of(&stored, &pending(&now)).is_none());
        // A reused reference: the part sent nearest in time is taken; one
        // sent more than SPAN before is not taken at all.
        let mut old = part("7", "447700900000", 1, "old ", 0);
        old.fields.occurred_at = Some("2026-12-05T08:59:00.000Z".into());
        let stored = [now.clone(), two.clone(), old.clone()];
        assert!(
            whole_of(&stored, &pending(&now)).is_none(),
            "too long before"
        );
        let earlier = part("7", "447700900000", 1, "earlier ", 5);
        let near = part("7", "447700900000", 1, "a", 29);
        let stored = [now.clone(), near, two, earlier];
        let whole = whole_of(&stored, &pending(&now)).expect("whole");
        assert_eq!(whole.fields.body.as_deref(), Some("abc"));
    }

    #[test]
    fn a_joined_stop_opts_its_sender_out() {
        let (one, two) = (
            part("9", "447700900000", 1, "ST", 0),
            part("9", "447700900000", 2, "OP", 0),
        );
        let mut three = part("9", "447700900000", 3, "", 0);
        three.fields.body = None;
        let whole = whole_of(&[one, two, three.clone()], &pending(&three)).expect("whole");
        assert_eq!(whole.fields.body.as_deref(), Some("STOP"));
        assert_eq!(whole.opt_out, Some(true));
    }
}
