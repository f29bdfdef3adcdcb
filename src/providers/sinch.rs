//! Sinch's Conversation API (SMS and the other channels it reaches):
//! callbacks signed with the webhook's secret over the body, a nonce and a
//! timestamp (`signature::sinch`). A callback names its trigger by the key
//! that holds it (`message` for `MESSAGE_INBOUND`, `message_delivery_report`
//! for `MESSAGE_DELIVERY`, …) and carries no event id: an inbound message
//! is keyed by its id, a delivery report by its message and status, and
//! anything else by the body's hash.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time};
use crate::event::{EventFields, Normalized};
use crate::signature::sinch::SIGNATURE_HEADER;

pub static PROVIDER: Provider = Provider {
    name: "sinch",
    signature_header: SIGNATURE_HEADER,
    signature_prefix: "",
    scheme: Scheme::NonceHmac,
    event_types: &["MESSAGE_INBOUND", "MESSAGE_DELIVERY"],
    // A 5xx (or 429) is retried, for almost 23 hours; another 4xx is not.
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

/// The key holding each trigger's payload, and the trigger's name.
const TRIGGERS: &[(&str, &str)] = &[
    ("message", "MESSAGE_INBOUND"),
    ("message_delivery_report", "MESSAGE_DELIVERY"),
    ("message_submit_notification", "MESSAGE_SUBMIT"),
    ("event", "EVENT_INBOUND"),
    ("event_delivery_report", "EVENT_DELIVERY"),
    ("conversation_start_notification", "CONVERSATION_START"),
    ("conversation_stop_notification", "CONVERSATION_STOP"),
    ("conversation_delete_notification", "CONVERSATION_DELETE"),
    ("contact_create_notification", "CONTACT_CREATE"),
    ("contact_delete_notification", "CONTACT_DELETE"),
    ("contact_merge_notification", "CONTACT_MERGE"),
    ("contact_update_notification", "CONTACT_UPDATE"),
    (
        "contact_identities_duplication_notification",
        "CONTACT_IDENTITIES_DUPLICATION",
    ),
    ("capability_notification", "CAPABILITY"),
    ("opt_in_notification", "OPT_IN"),
    ("opt_out_notification", "OPT_OUT"),
    ("channel_event_notification", "CHANNEL_EVENT"),
    ("unsupported_callback", "UNSUPPORTED"),
    ("smart_conversation_notification", "SMART_CONVERSATIONS"),
];

fn normalize(p: &Object) -> Normalized {
    let trigger = text(p, &["trigger"]).or_else(|| {
        TRIGGERS
            .iter()
            .find(|(key, _)| p.get(key).is_some())
            .map(|(_, name)| name.to_string())
    });
    match trigger.as_deref() {
        Some("MESSAGE_INBOUND") => inbound(p),
        Some("MESSAGE_DELIVERY") => delivery(p),
        _ => other(p, trigger),
    }
}

fn inbound(p: &Object) -> Normalized {
    let id = text(p, &["message.id"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: None,
            event_type: "message.received".into(),
            provider_type: Some("MESSAGE_INBOUND".into()),
            message_id: id,
            from: text(p, &["message.channel_identity.identity"]),
            to: None,
            body: text(p, &["message.contact_message.text_message.text"]),
            status: None,
            error_code: None,
            error_reason: None,
            occurred_at: occurred(p),
        },
        consent: None,
        part: None,
    }
}

fn delivery(p: &Object) -> Normalized {
    let id = text(p, &["message_delivery_report.message_id"]);
    let status = text(p, &["message_delivery_report.status"]);
    Normalized {
        dedupe_key: id
            .as_deref()
            .map(|id| format!("{id}:{}", status.as_deref().unwrap_or(""))),
        fields: EventFields {
            provider_event_id: None,
            event_type: status
                .as_deref()
                .map_or("MESSAGE_DELIVERY", status_type)
                .to_string(),
            provider_type: Some("MESSAGE_DELIVERY".into()),
            message_id: id,
            from: None,
            to: text(p, &["message_delivery_report.channel_identity.identity"]),
            body: None,
            status,
            error_code: text(p, &["message_delivery_report.reason.code"]),
            error_reason: text(p, &["message_delivery_report.reason.description"]),
            occurred_at: occurred(p),
        },
        consent: None,
        part: None,
    }
}

/// Any other trigger keeps its name, keyed by the body.
fn other(p: &Object, trigger: Option<String>) -> Normalized {
    let mut kept = Normalized::kept_as(trigger);
    kept.fields.occurred_at = occurred(p);
    kept
}

fn occurred(p: &Object) -> Option<String> {
    time(p, &["event_time", "accepted_time", "message.accept_time"])
}

/// `QUEUED_ON_CHANNEL` and `SWITCHING_CHANNEL` keep their names.
fn status_type(status: &str) -> &str {
    match status {
        "DELIVERED" => "message.delivered",
        "FAILED" => "message.failed",
        "READ" => "message.read",
        other => other,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let message = ids.message_id[4..].to_string();
    let mut callback = json!({
        "app_id": "01EB37HMH1M6SV18ASNS3G135H",
        "accepted_time": ids.now,
        "event_time": ids.now,
        "project_id": "c36f3d3d-1513-4edd-ae42-11995557ff61",
        "message_metadata": "",
        "correlation_id": "",
    });
    let identity = json!({"channel": "SMS", "identity": "46732001122", "app_id": ""});
    if event_type == "MESSAGE_INBOUND" {
        callback["message"] = json!({
            "id": message, "direction": "TO_APP",
            "contact_message": {"text_message": {"text": super::SAMPLE_TEXT}},
            "channel_identity": identity, "conversation_id": "01EQ8235TD19N21XQTH12B145D",
            "contact_id": "01EQ8235TD19N21XQTH12B145D", "metadata": "", "accept_time": ids.now,
            "processing_mode": "CONVERSATION",
        });
    } else {
        callback["message_delivery_report"] = json!({
            "message_id": message, "conversation_id": "01EQ8235TD19N21XQTH12B145D",
            "status": "DELIVERED", "channel_identity": identity,
            "contact_id": "01EQ8235TD19N21XQTH12B145D", "metadata": "",
            "processing_mode": "CONVERSATION",
        });
    }
    callback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received_from_its_channel_identity() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("MESSAGE_INBOUND", &ids));
        assert_eq!(n.dedupe_key.as_deref(), Some(&ids.message_id[4..]));
        let f = n.fields;
        crate::providers::assert_received(&f, "46732001122", None);
        assert_eq!(f.occurred_at.as_deref(), Some(ids.now.as_str()));
    }

    #[test]
    fn a_delivery_report_is_one_event_per_status() {
        let ids = SampleIds::fresh();
        let delivered = PROVIDER.norm(sample("MESSAGE_DELIVERY", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.to.as_deref(), Some("46732001122"));
        let mut failed = sample("MESSAGE_DELIVERY", &ids);
        failed["message_delivery_report"]["status"] = json!("FAILED");
        failed["message_delivery_report"]["reason"] =
            json!({"code": "RECIPIENT_NOT_REACHABLE", "description": "Unreachable"});
        let failed = PROVIDER.norm(failed);
        assert_eq!(failed.fields.event_type, "message.failed");
        assert_eq!(
            failed.fields.error_code.as_deref(),
            Some("RECIPIENT_NOT_REACHABLE")
        );
        assert_eq!(failed.fields.error_reason.as_deref(), Some("Unreachable"));
        assert_ne!(failed.dedupe_key, delivered.dedupe_key);
    }

    #[test]
    fn other_triggers_keep_their_names_and_are_keyed_by_body() {
        let n = PROVIDER
            .norm(json!({"app_id": "A", "contact_create_notification": {"contact": {"id": "C"}}}));
        assert_eq!(n.fields.event_type, "CONTACT_CREATE");
        assert_eq!(n.dedupe_key, None);
        let named = PROVIDER.norm(json!({"trigger": "CONVERSATION_START", "app_id": "A"}));
        assert_eq!(named.fields.event_type, "CONVERSATION_START");
        assert_eq!(
            PROVIDER.norm(json!({"app_id": "A"})).fields.event_type,
            "unknown"
        );
    }
}
