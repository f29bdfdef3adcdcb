//! TextUs: `X-TextUs-Signature: <hex>`. The body layout is not documented
//! field by field, so the type, id and message fields are looked for where
//! TextUs has put them: `type`/`event`/`action`, at the top level or under
//! `data`, with message fields in `message`, `data` or the top level, and the
//! numbers in a JSON-LD `conversation` (`phoneNumber` is the contact's,
//! `accountPhoneNumber` ours). TextUs retries only a `504`: any other error
//! marks the integration failed, so storage trouble is answered `504`.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time, type_for_status};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "textus",
    signature_header: "x-textus-signature",
    signature_prefix: "",
    scheme: Scheme::Hmac,
    event_types: &[
        "message.received",
        "message.delivered",
        "message.failed",
        "message.unknown",
        "contact.opted_out",
        "contact.opted_in",
        "contact.created",
        "phone_call.completed",
    ],
    retry_status: 504,
    answer_timeout: None,
    addresses_change: true,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

const TYPE: &[&str] = &[
    "type",
    "event",
    "action",
    "data.type",
    "data.event",
    "data.action",
];
const ID: &[&str] = &["id", "@id", "data.id", "data.@id"];
const BODY: &[&str] = &[
    "message.body",
    "message.content",
    "data.message.body",
    "data.body",
    "data.content",
    "data.text",
    "body",
    "content",
    "text",
];
const MESSAGE_ID: &[&str] = &[
    "message.id",
    "message.@id",
    "data.message.id",
    "data.message_id",
    "data.messageId",
    "message_id",
    "messageId",
];
const FROM: &[&str] = &[
    "message.from",
    "data.message.from",
    "data.from",
    "from",
    "message.senderPhone",
];
const TO: &[&str] = &[
    "message.to",
    "data.message.to",
    "data.to",
    "to",
    "message.receiverPhone",
];
const CONTACT: &[&str] = &[
    "contact.phoneNumber",
    "contact.phone_number",
    "data.contact.phoneNumber",
    "data.contact.phone_number",
    "data.phoneNumber",
    "data.phone_number",
    "phoneNumber",
    "conversation.phoneNumber",
];
const STATUS: &[&str] = &[
    "message.status",
    "message.deliveryState",
    "data.status",
    "status",
];
const ERROR_CODE: &[&str] = &[
    "message.errorCode",
    "data.error_code",
    "data.errorCode",
    "error_code",
];
const ERROR_REASON: &[&str] = &[
    "message.errorMessage",
    "data.error",
    "data.error_reason",
    "error",
];
const TIME: &[&str] = &[
    "timestamp",
    "data.timestamp",
    "created_at",
    "createdAt",
    "data.created_at",
];

fn normalize(p: &Object) -> Normalized {
    let provider_type = text(p, TYPE);
    let event_type = normalized_type(provider_type.as_deref(), text(p, STATUS).as_deref());
    let (from, to) = numbers(p, &event_type);
    let id = text(p, ID);
    let mut fields = EventFields {
        provider_event_id: id.clone(),
        event_type,
        provider_type: provider_type.clone(),
        message_id: text(p, MESSAGE_ID),
        from,
        to,
        body: text(p, BODY),
        status: text(p, STATUS),
        error_code: text(p, ERROR_CODE),
        error_reason: text(p, ERROR_REASON),
        occurred_at: time(p, TIME),
    };
    if provider_type.as_deref() == Some("message.unknown") && fields.error_reason.is_none() {
        fields.error_reason = Some("unknown error (TextUs message.unknown)".into());
    }
    let dedupe_key = compound_key(id.as_deref(), provider_type.as_deref());
    Normalized {
        dedupe_key,
        fields,
        consent: None,
        part: None,
    }
}

/// `message.unknown` is an outgoing message that could not be delivered: a
/// failure, whose cause TextUs does not know. The rest keep their names.
fn normalized_type(provider_type: Option<&str>, status: Option<&str>) -> String {
    match provider_type {
        Some("message.unknown") => "message.failed".into(),
        Some(t) => t.into(),
        None => status.and_then(type_for_status).unwrap_or("unknown").into(),
    }
}

/// `(from, to)`: explicit fields first; otherwise from the conversation, by
/// direction. For `contact.*` events `from` is the contact's number.
fn numbers(p: &Object, event_type: &str) -> (Option<String>, Option<String>) {
    if event_type.starts_with("contact.") {
        return (text(p, CONTACT), None);
    }
    let contact = text(p, &["conversation.phoneNumber"]);
    let account = text(p, &["conversation.accountPhoneNumber"]);
    let (from, to) = if event_type == "message.received" {
        (contact, account)
    } else {
        (account, contact)
    };
    (text(p, FROM).or(from), text(p, TO).or(to))
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let mut v = json!({
        "@type": "WebhookDelivery",
        "@context": "/contexts/WebhookDelivery.jsonld",
        "id": format!("/integrations/h13Jc5/deliveries/{}", ids.event_id),
        "timestamp": ids.now,
        "action": event_type,
        "webHook": "/integrations/h13Jc5",
        "conversation": {
            "@type": "Conversation", "id": "/conversations/JYnJBY",
            "phoneNumber": "+13035551234", "accountPhoneNumber": "+13035550100",
        },
    });
    if event_type.starts_with("message.") {
        let inbound = event_type == "message.received";
        v["message"] = json!({
            "@type": "Message", "id": format!("/messages/{}", ids.message_id),
            "body": if inbound { "STOP" } else { "Your appointment is at 10am" },
            "direction": if inbound { "in" } else { "out" },
            "deliveryState": event_type.trim_start_matches("message."),
        });
    } else if event_type.starts_with("contact.") {
        v["contact"] =
            json!({"@type": "Contact", "id": "/contacts/Bq3x", "phoneNumber": "+13035551234"});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ld_delivery_reads_direction_from_conversation() {
        let n = PROVIDER.norm(sample("message.received", &SampleIds::fresh()));
        assert_eq!(n.fields.event_type, "message.received");
        assert_eq!(n.fields.from.as_deref(), Some("+13035551234"));
        assert_eq!(n.fields.to.as_deref(), Some("+13035550100"));
        assert_eq!(n.fields.body.as_deref(), Some("STOP"));
        let out = PROVIDER.norm(sample("message.delivered", &SampleIds::fresh()));
        assert_eq!(out.fields.from.as_deref(), Some("+13035550100"));
        assert_eq!(out.fields.to.as_deref(), Some("+13035551234"));
    }

    #[test]
    fn type_and_fields_under_data() {
        let n = PROVIDER.norm(json!({"event": "message.failed", "data": {
            "id": "m1", "message_id": "m1", "from": "+1", "to": "+2", "body": "hi",
            "status": "failed", "error_code": "30007"}}));
        assert_eq!(n.fields.event_type, "message.failed");
        assert_eq!(n.dedupe_key.as_deref(), Some("m1:message.failed"));
        assert_eq!(n.fields.error_code.as_deref(), Some("30007"));
        let nested =
            PROVIDER.norm(json!({"data": {"type": "contact.opted_out", "phone_number": "+15"}}));
        assert_eq!(nested.fields.event_type, "contact.opted_out");
        assert_eq!(nested.fields.from.as_deref(), Some("+15"));
        assert_eq!(nested.dedupe_key, None, "no id: the body hash is used");
    }

    #[test]
    fn message_unknown_is_a_failure_that_keeps_its_name() {
        let n = PROVIDER.norm(sample("message.unknown", &SampleIds::fresh()));
        assert_eq!(n.fields.event_type, "message.failed");
        assert_eq!(n.fields.provider_type.as_deref(), Some("message.unknown"));
        assert!(n.fields.error_reason.is_some());
    }
}
