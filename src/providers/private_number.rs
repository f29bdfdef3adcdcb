//! The private-number service: `X-Webhook-Signature: sha256=<hex>`, one event
//! type (`sms.received`, payload `version` 1); `data.messageId` is a number
//! that names the message, so a retry is recognised by it plus `event`.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "private-number",
    signature_header: "x-webhook-signature",
    signature_prefix: "sha256=",
    scheme: Scheme::Hmac,
    event_types: &["sms.received"],
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let provider_type = text(p, &["event"]);
    let event_type = match provider_type.as_deref() {
        Some("sms.received") => "message.received".to_string(),
        Some(other) => other.to_string(),
        None => "unknown".to_string(),
    };
    let message_id = text(p, &["data.messageId"]);
    Normalized {
        dedupe_key: compound_key(message_id.as_deref(), provider_type.as_deref()),
        fields: EventFields {
            provider_event_id: None,
            event_type,
            provider_type,
            message_id,
            from: text(p, &["data.from"]),
            to: text(p, &["data.to"]),
            body: text(p, &["data.body"]),
            status: None,
            error_code: None,
            error_reason: None,
            occurred_at: time(p, &["data.receivedAt"]),
        },
        consent: None,
        part: None,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    json!({
        "event": event_type,
        "version": "1",
        "data": {
            "messageId": ids.number,
            "from": "+14155551234",
            "to": "+12025550100",
            "body": "Hello, this is a test message",
            "receivedAt": ids.now,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_payload() {
        let v = json!({"event": "sms.received", "version": "1", "data": {
            "messageId": 42, "from": "+14155551234", "to": "+12025550100",
            "body": "Hello, this is a test message", "receivedAt": "2026-03-01T15:30:00.000Z"}});
        let n = PROVIDER.norm(v);
        assert_eq!(n.dedupe_key.as_deref(), Some("42:sms.received"));
        assert_eq!(n.fields.event_type, "message.received");
        assert_eq!(n.fields.message_id.as_deref(), Some("42"));
        assert_eq!(n.fields.from.as_deref(), Some("+14155551234"));
        assert_eq!(
            n.fields.occurred_at.as_deref(),
            Some("2026-03-01T15:30:00.000Z")
        );
    }
}
