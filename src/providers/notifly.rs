//! Notifly: `x-notifly-signature: <hex>`, events keyed by `id`, typed by
//! `type` (`message.created`, `conversation.updated`, `contact.deleted`, …)
//! with the object in `payload`. Notifly is a chat product: its types say
//! what changed, not which way a message went, so they keep their own names.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "notifly",
    signature_header: "x-notifly-signature",
    signature_prefix: "",
    scheme: Scheme::Hmac,
    event_types: &[
        "message.created",
        "message.updated",
        "message.deleted",
        "conversation.created",
        "conversation.updated",
        "conversation.deleted",
        "contact.created",
        "contact.updated",
        "contact.deleted",
        "group.created",
        "group.updated",
        "group.deleted",
        "attachment.created",
        "attachment.updated",
        "attachment.deleted",
    ],
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let id = text(p, &["id"]);
    let provider_type = text(p, &["type"]);
    let kind = provider_type
        .as_deref()
        .and_then(|t| t.split('.').next())
        .unwrap_or("")
        .to_string();
    let is_message = kind == "message";
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: id,
            event_type: provider_type.clone().unwrap_or_else(|| "unknown".into()),
            provider_type,
            message_id: if is_message {
                text(p, &["payload.id"])
            } else {
                None
            },
            // A contact event's number is the contact's; a message's direction is unknown.
            from: if kind == "contact" {
                text(p, &["payload.phone_number"])
            } else {
                None
            },
            to: None,
            body: if is_message {
                text(p, &["payload.message"])
            } else {
                None
            },
            status: None,
            error_code: None,
            error_reason: None,
            occurred_at: time(
                p,
                &["payload.updated_at", "payload.created_at", "created_at"],
            ),
        },
        consent: None,
        part: None,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let payload = match event_type.split('.').next() {
        Some("message") => json!({
            "id": ids.message_id, "conversation_id": "xgQQXg3hrtjh7AvZ",
            "contact": {"id": "WAz8eIbvDR60rouK", "username": "KevinMcCallister",
                        "phone_number": "1-800-759-3000"},
            "message": "I’m traveling with my dad. He’s at a meeting.",
            "reactions": [], "attachments": [],
            "created_at": 692233200, "updated_at": 692233200,
        }),
        Some("contact") => json!({
            "id": "WAz8eIbvDR60rouK", "username": "KevinMcCallister",
            "phone_number": "1-800-759-3000", "created_at": 692233200,
        }),
        _ => json!({"id": format!("obj_{}", ids.number)}),
    };
    json!({"id": ids.event_id, "type": event_type, "payload": payload})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_message_payload() {
        let n = PROVIDER.norm(sample("message.updated", &SampleIds::fresh()));
        assert_eq!(n.fields.event_type, "message.updated");
        assert!(
            n.fields
                .message_id
                .as_deref()
                .is_some_and(|m| m.starts_with("msg_"))
        );
        assert!(n.fields.body.is_some());
        assert_eq!(
            n.fields.occurred_at.as_deref(),
            Some("1991-12-08T23:00:00.000Z")
        );
    }

    #[test]
    fn conversation_event_keeps_name_and_id() {
        let v = json!({"id": "a056V7R7NmNRjl70", "type": "conversation.updated",
                       "payload": {"id": "WAz8eIbvDR60rouK"}});
        let n = PROVIDER.norm(v);
        assert_eq!(n.dedupe_key.as_deref(), Some("a056V7R7NmNRjl70"));
        assert_eq!(n.fields.event_type, "conversation.updated");
        assert_eq!(n.fields.message_id, None);
    }
}
