//! MsGine: `X-MsGine-Signature: <hex>`, typed by `event` (`message.sent`,
//! `message.delivered`, `message.failed`). Its `id` names the *message*, so a
//! retry is recognised by `id` + `event`. MsGine waits 5 s for an answer.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time, type_for_status};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "msgine",
    signature_header: "x-msgine-signature",
    signature_prefix: "",
    scheme: Scheme::Hmac,
    event_types: &["message.sent", "message.delivered", "message.failed"],
    retry_status: 503,
    answer_timeout: Some(std::time::Duration::from_secs(5)),
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let provider_type = text(p, &["event"]);
    let status = text(p, &["status"]);
    let event_type = match provider_type.as_deref() {
        Some(t @ ("message.sent" | "message.delivered" | "message.failed")) => t.to_string(),
        Some(other) => other.to_string(),
        None => status
            .as_deref()
            .and_then(type_for_status)
            .unwrap_or("unknown")
            .to_string(),
    };
    let id = text(p, &["id"]);
    Normalized {
        dedupe_key: compound_key(id.as_deref(), provider_type.as_deref()),
        fields: EventFields {
            // MsGine sends no event id of its own: `id` is the message's.
            provider_event_id: None,
            event_type,
            provider_type,
            message_id: text(p, &["messageId", "id"]),
            from: text(p, &["from"]),
            to: text(p, &["to"]),
            body: text(p, &["message", "body"]),
            status,
            error_code: text(p, &["errorCode", "error_code"]),
            error_reason: text(p, &["failureReason", "failure_reason"]),
            occurred_at: time(p, &["timestamp"]),
        },
        consent: None,
        part: None,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let status = event_type.strip_prefix("message.").unwrap_or(event_type);
    let mut v = json!({
        "id": ids.message_id, "event": event_type, "status": status,
        "to": "+256701521269", "from": "MyApp", "timestamp": ids.now,
        "messageId": ids.message_id, "sid": format!("SM{:016x}", ids.number),
    });
    if event_type == "message.failed" {
        v["failureReason"] = json!("Invalid phone number");
        v["errorCode"] = json!("invalid_phone_number");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_failed_payload() {
        let v = json!({
            "id": "msg_1234567890", "event": "message.failed", "status": "failed",
            "to": "+256701521269", "from": "MyApp", "timestamp": "2024-01-15T10:30:15Z",
            "failureReason": "Invalid phone number", "errorCode": "invalid_phone_number"
        });
        let n = PROVIDER.norm(v);
        assert_eq!(
            n.dedupe_key.as_deref(),
            Some("msg_1234567890:message.failed")
        );
        assert_eq!(n.fields.event_type, "message.failed");
        assert_eq!(n.fields.message_id.as_deref(), Some("msg_1234567890"));
        assert_eq!(n.fields.error_code.as_deref(), Some("invalid_phone_number"));
        assert_eq!(
            n.fields.error_reason.as_deref(),
            Some("Invalid phone number")
        );
        assert_eq!(n.fields.provider_event_id, None);
    }

    #[test]
    fn same_message_different_events_are_different_keys() {
        let a = sample("message.sent", &SampleIds::fresh());
        let mut b = a.clone();
        b["event"] = json!("message.delivered");
        let key = |v: &Value| PROVIDER.norm(v.clone()).dedupe_key;
        assert_ne!(key(&a), key(&b));
    }
}
