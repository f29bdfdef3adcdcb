//! Telnyx (Messaging API v2): Ed25519 signatures in `telnyx-signature-ed25519`
//! over `{telnyx-timestamp}|{body}`, events keyed by `data.id` (a retry keeps
//! it and counts up `meta.attempt`), typed by `data.event_type`:
//! `message.sent`, `message.finalized` (the outcome in the recipient's
//! `status`) and `message.received`.

use serde_json::{Value, json};

use super::payload::{Node, Object};
use super::{Ack, Format, Provider, SampleIds, Scheme, at, first, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "telnyx",
    signature_header: "telnyx-signature-ed25519",
    signature_prefix: "",
    scheme: Scheme::Ed25519 {
        timestamp_header: "telnyx-timestamp",
    },
    event_types: &["message.received", "message.sent", "message.finalized"],
    retry_status: 503,
    // "Return a 2xx status code within 2 seconds"; then it retries, up to
    // three times per URL, and tries the failover URL.
    answer_timeout: Some(std::time::Duration::from_secs(2)),
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let id = text(p, &["data.id"]);
    let provider_type = text(p, &["data.event_type"]);
    let message = at(p, "data.payload").and_then(Node::as_object);
    let recipient = message.and_then(|m| first(m, "to"));
    let error = message.and_then(|m| first(m, "errors"));
    let status = recipient.and_then(|r| text(r, &["status"]));
    let event_type = normalized_type(provider_type.as_deref(), status.as_deref());
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: id,
            event_type,
            provider_type,
            message_id: message.and_then(|m| text(m, &["id"])),
            from: message.and_then(|m| text(m, &["from.phone_number", "from"])),
            to: recipient
                .and_then(|r| text(r, &["phone_number"]))
                .or_else(|| message.and_then(|m| text(m, &["to"]))),
            body: message.and_then(|m| text(m, &["text"])),
            status,
            error_code: error.and_then(|e| text(e, &["code"])),
            error_reason: error.and_then(|e| text(e, &["detail", "title"])),
            occurred_at: time(p, &["data.occurred_at"]),
        },
        consent: None,
        part: None,
    }
}

/// `message.finalized` says an outbound message reached its last state; the
/// recipient's status says which. `delivery_unconfirmed` (the carrier never
/// said) has no clear meaning and keeps the provider's name.
fn normalized_type(provider_type: Option<&str>, status: Option<&str>) -> String {
    match (provider_type, status) {
        (Some("message.finalized"), Some("delivered")) => "message.delivered",
        (Some("message.finalized"), Some("sending_failed" | "delivery_failed" | "expired")) => {
            "message.failed"
        }
        (Some(other), _) => other,
        (None, _) => "unknown",
    }
    .to_string()
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let (direction, from, to, status, text) = match event_type {
        "message.received" => (
            "inbound",
            "+13125550123",
            "+18445550001",
            "webhook_delivered",
            "Is my order on its way?",
        ),
        "message.sent" => (
            "outbound",
            "+18445550001",
            "+13125550123",
            "sent",
            "Your code is 482913",
        ),
        _ => (
            "outbound",
            "+18445550001",
            "+13125550123",
            "delivered",
            "Your code is 482913",
        ),
    };
    json!({
        "data": {
            "event_type": event_type,
            "id": ids.event_id,
            "occurred_at": ids.now,
            "payload": {
                "direction": direction,
                "encoding": "GSM-7",
                "errors": [],
                "from": {"carrier": "Telnyx", "line_type": "VoIP", "phone_number": from},
                "id": ids.message_id,
                "media": [],
                "messaging_profile_id": "4000eba1-a0c0-4563-9925-b25e842a7cb6",
                "parts": 1,
                "record_type": "message",
                "text": text,
                "to": [{"carrier": "T-MOBILE USA, INC.", "line_type": "Wireless",
                        "phone_number": to, "status": status}],
                "type": "SMS",
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks/telnyx"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_message() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("message.received", &ids));
        assert_eq!(n.dedupe_key.as_deref(), Some(ids.event_id.as_str()));
        let f = n.fields;
        assert_eq!(f.event_type, "message.received");
        assert_eq!(f.message_id.as_deref(), Some(ids.message_id.as_str()));
        assert_eq!(f.from.as_deref(), Some("+13125550123"));
        assert_eq!(f.to.as_deref(), Some("+18445550001"));
        assert_eq!(f.body.as_deref(), Some("Is my order on its way?"));
        assert!(f.occurred_at.is_some());
    }

    #[test]
    fn finalized_reads_the_recipients_status() {
        let finalized = |status: &str, errors: Value| {
            let mut v = sample("message.finalized", &SampleIds::fresh());
            v["data"]["payload"]["to"][0]["status"] = json!(status);
            v["data"]["payload"]["errors"] = errors;
            PROVIDER.norm(v).fields
        };
        assert_eq!(
            finalized("delivered", json!([])).event_type,
            "message.delivered"
        );
        let failed = finalized(
            "delivery_failed",
            json!([{"code": "40002", "title": "Blocked as spam", "detail": "Message was blocked by the carrier as spam."}]),
        );
        assert_eq!(failed.event_type, "message.failed");
        assert_eq!(failed.status.as_deref(), Some("delivery_failed"));
        assert_eq!(failed.error_code.as_deref(), Some("40002"));
        assert_eq!(
            failed.error_reason.as_deref(),
            Some("Message was blocked by the carrier as spam.")
        );
        assert_eq!(
            finalized("sending_failed", json!([])).event_type,
            "message.failed"
        );
        let unconfirmed = finalized("delivery_unconfirmed", json!([]));
        assert_eq!(unconfirmed.event_type, "message.finalized");
    }

    #[test]
    fn a_retry_keeps_its_dedupe_key() {
        let ids = SampleIds::fresh();
        let first = sample("message.sent", &ids);
        let mut retry = first.clone();
        retry["meta"]["attempt"] = json!(2);
        assert_eq!(
            PROVIDER.norm(first).dedupe_key,
            PROVIDER.norm(retry).dedupe_key
        );
    }

    #[test]
    fn a_body_without_the_envelope_has_no_key_and_breaks_nothing() {
        let n = PROVIDER.norm(json!({"data": "not an object", "payload": []}));
        assert_eq!(n.dedupe_key, None);
        assert_eq!(n.fields.event_type, "unknown");
        assert_eq!(n.fields.to, None);
    }
}
