//! Plivo (Messaging): form-encoded callbacks (`MessageUUID`, `From`, `To`,
//! `Text`, `Status`, …) signed in `X-Plivo-Signature-V2` with HMAC-SHA256 of
//! the URL and a nonce (`signature::plivo`). An inbound message (to the
//! application's `message_url`) carries `Text` and no `Status`, and is keyed
//! by its `MessageUUID`; a status callback (to the `url` a message was sent
//! with) names the message and its new `Status`, the pair its key.
//!
//! Plivo reads the answer to an inbound message as Plivo XML: a source
//! answers an empty `<Response/>` (no reply is sent).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, type_for_status};
use crate::event::{EventFields, Normalized, format_time};
use crate::signature::plivo::SIGNATURE_HEADER;

pub static PROVIDER: Provider = Provider {
    name: "plivo",
    signature_header: SIGNATURE_HEADER,
    signature_prefix: "",
    scheme: Scheme::NonceUrlHmac,
    event_types: &[
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "inbound",
    ],
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::EmptyXml,
    format: Format::Form,
    normalize,
    sample,
};

/// smshook's name for an inbound message, which carries no status.
const INBOUND: &str = "inbound";

fn normalize(p: &Object) -> Normalized {
    let message_id = text(p, &["MessageUUID"]);
    let status = text(p, &["Status"]);
    let provider_type = status.clone().unwrap_or_else(|| INBOUND.into());
    let event_type = match provider_type.as_str() {
        INBOUND => "message.received",
        "read" => "message.read",
        other => type_for_status(other).unwrap_or(other),
    };
    Normalized {
        dedupe_key: match &status {
            Some(status) => compound_key(message_id.as_deref(), Some(status)),
            None => message_id.clone(),
        },
        fields: EventFields {
            event_type: event_type.to_string(),
            provider_type: Some(provider_type),
            message_id,
            from: text(p, &["From"]),
            to: text(p, &["To"]),
            body: text(p, &["Text"]),
            error_code: text(p, &["ErrorCode"]).filter(|code| code != "0"),
            status,
            occurred_at: occurred(p),
            ..EventFields::default()
        },
        consent: None,
        part: None,
    }
}

/// The latest of a status callback's times that names its offset
/// (`2026-12-04 10:00:00.123456+00:00`). Plivo's documentation gives them
/// without one, and does not say in which zone: such a time is left in the
/// payload rather than guessed.
fn occurred(p: &Object) -> Option<String> {
    [
        "DeliveryReportTime",
        "SentTime",
        "QueuedTime",
        "MessageTime",
    ]
    .iter()
    .filter_map(|key| text(p, &[key]))
    .find_map(|t| DateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f%:z").ok())
    .map(|t| format_time(t.with_timezone(&Utc)))
}

/// A sample as Plivo sends it: every value a string (it is a form).
fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let uuid = ids.message_uuid();
    if event_type == INBOUND {
        return json!({
            "From": "14155550123", "To": "14155550100", "Type": "sms",
            "Text": super::SAMPLE_TEXT, "MessageUUID": uuid,
            "TotalRate": "0", "TotalAmount": "0", "Units": "1",
        });
    }
    let mut callback = json!({
        "MessageUUID": uuid, "ParentMessageUUID": uuid, "From": "14155550100",
        "To": "14155550123", "Type": "sms", "Status": event_type, "Units": "1",
        "TotalRate": "0.0050", "TotalAmount": "0.0050", "MCC": "310", "MNC": "004",
        "Sequence": "1", "PartInfo": "1 of 1", "PowerpackUUID": "",
    });
    if matches!(event_type, "failed" | "undelivered") {
        callback["ErrorCode"] = json!("30");
    }
    callback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample(INBOUND, &ids));
        let uuid = ids.message_uuid();
        assert_eq!(n.dedupe_key.as_deref(), Some(uuid.as_str()));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("inbound"));
        crate::providers::assert_received(&f, "14155550123", Some("14155550100"));
    }

    #[test]
    fn each_status_is_an_event_of_its_own() {
        let ids = SampleIds::fresh();
        let sent = PROVIDER.norm(sample("sent", &ids));
        assert_eq!(sent.fields.event_type, "message.sent");
        let delivered = PROVIDER.norm(sample("delivered", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_ne!(sent.dedupe_key, delivered.dedupe_key);
        let failed = PROVIDER.norm(sample("undelivered", &ids)).fields;
        assert_eq!(failed.event_type, "message.failed");
        assert_eq!(failed.error_code.as_deref(), Some("30"));
        assert_eq!(
            PROVIDER.norm(sample("queued", &ids)).fields.event_type,
            "message.sent"
        );
        let mut read = sample("sent", &ids);
        read["Status"] = json!("read");
        assert_eq!(PROVIDER.norm(read).fields.event_type, "message.read");
    }

    #[test]
    fn only_a_time_with_its_offset_is_read() {
        let mut v = sample("delivered", &SampleIds::fresh());
        v["MessageTime"] = json!("2026-12-04 10:00:00.123456");
        assert_eq!(
            PROVIDER.norm(v.clone()).fields.occurred_at,
            None,
            "no zone: not guessed"
        );
        v["DeliveryReportTime"] = json!("2026-12-04 11:30:00.5+01:00");
        assert_eq!(
            PROVIDER.norm(v).fields.occurred_at.as_deref(),
            Some("2026-12-04T10:30:00.500Z")
        );
    }
}
