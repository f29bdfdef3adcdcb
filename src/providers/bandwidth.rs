//! Bandwidth's Messaging API v2: callbacks as a JSON array of events
//! (`type`: `message-received`, `message-sending`, `message-delivered`,
//! `message-failed`; the message in `message`), each stored as an event of
//! its own. Bandwidth does not sign them: an application's callback
//! credentials come as HTTP Basic in `Authorization` (`signature::basic`).
//! An event has no id of its own; a message has one event of each type per
//! recipient, so the key is the message, the type and the recipient.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "bandwidth",
    signature_header: "authorization",
    signature_prefix: "",
    scheme: Scheme::Basic,
    event_types: &[
        "message-received",
        "message-sending",
        "message-delivered",
        "message-failed",
    ],
    // Bandwidth retries anything but a 2xx for 24 hours.
    retry_status: 503,
    // "Bandwidth's Messaging platform has a 10 second timeout for callbacks."
    answer_timeout: Some(std::time::Duration::from_secs(10)),
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Batch,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let kind = text(p, &["type"]);
    let message_id = text(p, &["message.id"]);
    let to = text(p, &["to"]);
    let failed = kind.as_deref() == Some("message-failed");
    Normalized {
        dedupe_key: message_id.as_deref().map(|id| {
            format!(
                "{id}:{}:{}",
                kind.as_deref().unwrap_or(""),
                to.as_deref().unwrap_or("")
            )
        }),
        fields: EventFields {
            provider_event_id: None,
            event_type: kind.as_deref().map_or("unknown", event_type).to_string(),
            provider_type: kind,
            message_id,
            from: text(p, &["message.from"]),
            to,
            body: text(p, &["message.text"]),
            status: None,
            error_code: text(p, &["errorCode"]),
            error_reason: if failed {
                text(p, &["description"])
            } else {
                None
            },
            occurred_at: time(p, &["time", "message.time"]),
        },
        consent: None,
        part: None,
    }
}

/// `message-sending` (an MMS or group message on its way) keeps its name.
fn event_type(kind: &str) -> &str {
    match kind {
        "message-received" => "message.received",
        "message-delivered" => "message.delivered",
        "message-failed" => "message.failed",
        other => other,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    // Bandwidth's ids: the time in milliseconds and lowercase letters.
    let id = format!(
        "1733{:09}{}",
        ids.number % 1_000_000_000,
        ids.message_id[4..].to_lowercase()
    );
    let (ours, theirs) = ("+14155550100", "+14155550101");
    let inbound = event_type == "message-received";
    let (from, to) = if inbound {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    let mut event = json!({
        "type": event_type,
        "time": ids.now,
        "description": description(event_type),
        "to": to,
        "message": {
            "id": id, "owner": ours, "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
            "time": ids.now, "segmentCount": 1, "direction": if inbound { "in" } else { "out" },
            "to": [to], "from": from, "text": if inbound { super::SAMPLE_TEXT } else { "" },
            "tag": "smshook",
        },
    });
    if inbound {
        event["message"]["media"] = json!([]);
    }
    if event_type == "message-failed" {
        event["errorCode"] = json!(4720);
    }
    event
}

fn description(event_type: &str) -> &'static str {
    match event_type {
        "message-received" => "Incoming message received",
        "message-sending" => "Message is sending to carrier",
        "message-failed" => "rejected-carrier-invalid-destination-address",
        _ => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received_from_its_sender() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("message-received", &ids));
        let f = n.fields;
        crate::providers::assert_received(&f, "+14155550101", Some("+14155550100"));
        assert_eq!(f.occurred_at.as_deref(), Some(ids.now.as_str()));
        let id = f.message_id.expect("an id");
        assert_eq!(
            n.dedupe_key,
            Some(format!("{id}:message-received:+14155550100"))
        );
    }

    #[test]
    fn receipts_say_what_became_of_a_message_per_recipient() {
        let ids = SampleIds::fresh();
        let failed = PROVIDER.norm(sample("message-failed", &ids));
        assert_eq!(failed.fields.event_type, "message.failed");
        assert_eq!(failed.fields.error_code.as_deref(), Some("4720"));
        assert_eq!(
            failed.fields.error_reason.as_deref(),
            Some("rejected-carrier-invalid-destination-address")
        );
        let delivered = PROVIDER.norm(sample("message-delivered", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.error_reason, None);
        assert_ne!(delivered.dedupe_key, failed.dedupe_key);
        assert_eq!(
            PROVIDER
                .norm(sample("message-sending", &ids))
                .fields
                .event_type,
            "message-sending"
        );
        // A group message's receipt for another recipient is its own event.
        let mut other = sample("message-delivered", &ids);
        other["to"] = json!("+14155550102");
        assert_ne!(PROVIDER.norm(other).dedupe_key, delivered.dedupe_key);
    }
}
