//! Integify: `X-Integify-Signature: sha256=<hex>`, events keyed by `id`, typed
//! by `type` (`sms.delivered`, `sms.failed`, `sms.received`, and the older
//! `DELIVERY_REPORT` with its outcome in `data.status`, and `SMS_RECEIVED`).

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time, type_for_status};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "integify",
    signature_header: "x-integify-signature",
    signature_prefix: "sha256=",
    scheme: Scheme::Hmac,
    event_types: &[
        "sms.delivered",
        "sms.failed",
        "sms.received",
        "DELIVERY_REPORT",
        "SMS_RECEIVED",
    ],
    retry_status: 503,
    answer_timeout: Some(std::time::Duration::from_secs(10)),
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let id = text(p, &["id"]);
    let provider_type = text(p, &["type"]);
    let status = text(p, &["data.status"]);
    let event_type = normalized_type(provider_type.as_deref(), status.as_deref());
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: id,
            event_type: event_type.to_string(),
            provider_type: provider_type.clone(),
            message_id: text(p, &["data.message_id", "data.messageId"]),
            from: text(p, &["data.from"]),
            to: text(p, &["data.to"]),
            body: text(p, &["data.body", "data.text"]),
            status,
            error_code: text(p, &["data.error_code", "data.errorCode"]),
            error_reason: text(
                p,
                &[
                    "data.error_reason",
                    "data.reason",
                    "data.error",
                    "data.failure_reason",
                ],
            ),
            occurred_at: time(
                p,
                &[
                    "data.delivered_at",
                    "data.failed_at",
                    "data.received_at",
                    "created_at",
                ],
            ),
        },
        consent: None,
        part: None,
    }
}

fn normalized_type<'a>(provider_type: Option<&'a str>, status: Option<&str>) -> &'a str {
    match provider_type {
        Some("sms.delivered") => "message.delivered",
        Some("sms.failed") => "message.failed",
        Some("sms.sent") => "message.sent",
        Some("sms.received" | "SMS_RECEIVED") => "message.received",
        Some("DELIVERY_REPORT") => status
            .and_then(type_for_status)
            .unwrap_or("DELIVERY_REPORT"),
        Some(other) => other,
        None => "unknown",
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let data = match event_type {
        "sms.received" | "SMS_RECEIVED" => json!({
            "message_id": ids.message_id, "from": "+2207654321", "to": "+2203001234",
            "body": "STOP", "received_at": ids.now,
        }),
        "sms.failed" => json!({
            "message_id": ids.message_id, "to": "+2203001234", "status": "failed",
            "error_code": "30003", "error_reason": "Unreachable destination handset",
            "failed_at": ids.now,
        }),
        "DELIVERY_REPORT" => json!({
            "message_id": ids.message_id, "to": "+2203001234", "status": "delivered",
            "delivered_at": ids.now,
        }),
        _ => json!({
            "message_id": ids.message_id, "to": "+2203001234", "status": "delivered",
            "delivered_at": ids.now,
        }),
    };
    json!({"id": ids.event_id, "type": event_type, "created_at": ids.now, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_delivery_payload() {
        let n = PROVIDER.norm(json!({
            "id": "evt_01HXYZ789", "type": "sms.delivered", "created_at": "2026-04-10T12:01:30Z",
            "data": {"message_id": "msg_01HXYZ123456", "to": "+2203001234",
                     "status": "delivered", "delivered_at": "2026-04-10T12:01:28Z"}
        }));
        assert_eq!(n.dedupe_key.as_deref(), Some("evt_01HXYZ789"));
        assert_eq!(n.fields.event_type, "message.delivered");
        assert_eq!(n.fields.message_id.as_deref(), Some("msg_01HXYZ123456"));
        assert_eq!(n.fields.to.as_deref(), Some("+2203001234"));
        assert_eq!(
            n.fields.occurred_at.as_deref(),
            Some("2026-04-10T12:01:28.000Z")
        );
        assert_eq!(n.fields.from, None);
    }

    #[test]
    fn legacy_names_map_through_status() {
        let t = |s: &str| {
            PROVIDER
                .norm(json!({"id": "1", "type": "DELIVERY_REPORT", "data": {"status": s}}))
                .fields
                .event_type
        };
        assert_eq!(t("delivered"), "message.delivered");
        assert_eq!(t("UNDELIVERED"), "message.failed");
        assert_eq!(t("mystery"), "DELIVERY_REPORT");
        let r = PROVIDER
            .norm(json!({"id": "2", "type": "SMS_RECEIVED", "data": {"from": "+1", "body": "hi"}}));
        assert_eq!(r.fields.event_type, "message.received");
        assert_eq!(r.fields.body.as_deref(), Some("hi"));
    }

    #[test]
    fn unknown_types_keep_their_name() {
        assert_eq!(
            PROVIDER
                .norm(json!({"id": "3", "type": "sms.clicked"}))
                .fields
                .event_type,
            "sms.clicked"
        );
        assert_eq!(
            PROVIDER.norm(json!({"id": "4"})).fields.event_type,
            "unknown"
        );
    }
}
