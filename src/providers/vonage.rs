//! Vonage's Messages API: `Authorization: Bearer <JWT>` signed HS256 with the
//! account's signature secret, whose `payload_hash` claim is the body's
//! SHA-256. Its webhooks carry no event type and no event id: a message
//! status callback has `status` (`submitted`, `delivered`, `rejected`,
//! `undeliverable`, `read`), an inbound message has none, and both name the
//! message by `message_uuid`. (The older SMS API, which signs a `sig`
//! parameter, is the `vonage-sms` provider, `providers::vonage_sms`.)

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "vonage",
    signature_header: "authorization",
    signature_prefix: "",
    scheme: Scheme::Jwt,
    event_types: &[
        "submitted",
        "delivered",
        "rejected",
        "undeliverable",
        "read",
        "inbound",
    ],
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

/// What `provider_type` holds for a message with no `status` (both of
/// Vonage's APIs).
pub(super) const INBOUND: &str = "inbound";

/// A Vonage webhook's type, in both APIs: its `status`, or [`INBOUND`].
pub(super) fn provider_type(status: Option<&str>) -> String {
    status.unwrap_or(INBOUND).to_string()
}

fn normalize(p: &Object) -> Normalized {
    let message_id = text(p, &["message_uuid"]);
    let status = text(p, &["status"]);
    let provider_type = provider_type(status.as_deref());
    Normalized {
        dedupe_key: compound_key(message_id.as_deref(), Some(&provider_type)),
        fields: EventFields {
            provider_event_id: None,
            event_type: normalized_type(&provider_type).to_string(),
            provider_type: Some(provider_type),
            message_id,
            from: text(p, &["from"]),
            to: text(p, &["to"]),
            body: text(p, &["text"]),
            status,
            error_code: text(p, &["error.title"]),
            error_reason: text(p, &["error.detail"]),
            occurred_at: time(p, &["timestamp"]),
        },
        consent: None,
        part: None,
    }
}

/// `read` (WhatsApp, Viber, RCS) has no normalized name of its own yet:
/// `message.read`. Any other status keeps its own name.
fn normalized_type(provider_type: &str) -> &str {
    match provider_type {
        INBOUND => "message.received",
        "submitted" => "message.sent",
        "delivered" => "message.delivered",
        "rejected" | "undeliverable" => "message.failed",
        "read" => "message.read",
        other => other,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    if event_type == INBOUND {
        return json!({
            "channel": "sms", "message_uuid": ids.message_id, "message_type": "text",
            "to": "447700900000", "from": "447700900001", "timestamp": ids.now,
            "text": super::SAMPLE_TEXT, "sms": {"num_messages": "1"},
        });
    }
    let mut status = json!({
        "message_uuid": ids.message_id, "to": "447700900001", "from": "447700900000",
        "timestamp": ids.now, "status": event_type, "channel": "sms",
        "usage": {"currency": "EUR", "price": "0.0333"}, "client_ref": "order-1234",
    });
    if matches!(event_type, "rejected" | "undeliverable") {
        status["error"] = json!({
            "type": "https://developer.vonage.com/api-errors/messages#1320",
            "title": "1320",
            "detail": "Message failed because the number is not part of the provider network",
            "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        });
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_has_no_status() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample(INBOUND, &ids));
        assert_eq!(n.dedupe_key, Some(format!("{}:inbound", ids.message_id)));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("inbound"));
        crate::providers::assert_received(&f, "447700900001", None);
        assert_eq!(f.status, None);
    }

    #[test]
    fn statuses_normalize_and_each_is_its_own_event() {
        let ids = SampleIds::fresh();
        let rejected = PROVIDER.norm(sample("rejected", &ids));
        assert_eq!(rejected.fields.event_type, "message.failed");
        assert_eq!(rejected.fields.error_code.as_deref(), Some("1320"));
        assert!(
            rejected
                .fields
                .error_reason
                .as_deref()
                .is_some_and(|r| r.contains("network"))
        );
        let delivered = PROVIDER.norm(sample("delivered", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_ne!(
            delivered.dedupe_key, rejected.dedupe_key,
            "same message, two events"
        );
        assert_eq!(
            PROVIDER.norm(sample("submitted", &ids)).fields.event_type,
            "message.sent"
        );
        assert_eq!(
            PROVIDER
                .norm(sample("undeliverable", &ids))
                .fields
                .event_type,
            "message.failed"
        );
        let mut unknown = sample("delivered", &ids);
        unknown["status"] = json!("deleted");
        assert_eq!(
            PROVIDER.norm(unknown).fields.event_type,
            "deleted",
            "kept as sent"
        );
    }
}
