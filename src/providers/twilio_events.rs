//! Twilio Event Streams' webhook sinks: a JSON array of CloudEvents per
//! request (`specversion`, `type`, `id`, `time`, `data`), each stored as
//! an event of its own and keyed by its `id`, which a redelivery keeps.
//! Signed as Twilio signs a JSON body (`signature::twilio`): the sink's URL
//! with the body's SHA-256 as `bodySHA256` in the query.
//!
//! Messaging's types (`com.twilio.messaging.message.delivered`, …,
//! `com.twilio.messaging.inbound-message.received`) normalize as Twilio's
//! statuses do; every other product's types keep their own names
//! (Conversations' `data` is in PascalCase: its message's fields are read
//! too).

use serde_json::{Value, json};

use super::payload::Object;
use super::twilio::{normalized_type, sid};
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time};
use crate::event::{EventFields, Normalized};

/// The type prefix of an outbound message's status events.
const STATUS: &str = "com.twilio.messaging.message.";
/// The type of an inbound message.
const INBOUND: &str = "com.twilio.messaging.inbound-message.received";

pub static PROVIDER: Provider = Provider {
    name: "twilio-events",
    signature_header: "x-twilio-signature",
    signature_prefix: "",
    scheme: Scheme::SignedUrl,
    event_types: &[
        "com.twilio.messaging.message.queued",
        "com.twilio.messaging.message.sent",
        "com.twilio.messaging.message.delivered",
        "com.twilio.messaging.message.undelivered",
        "com.twilio.messaging.message.failed",
        "com.twilio.messaging.message.read",
        INBOUND,
    ],
    retry_status: 503,
    // "The maximum timeout for a webhook Sink response is 5 seconds."
    answer_timeout: Some(std::time::Duration::from_secs(5)),
    // Event Streams publishes the one network it posts from.
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Batch,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let id = text(p, &["id"]);
    let provider_type = text(p, &["type"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: id,
            event_type: provider_type
                .as_deref()
                .map_or("unknown", event_type)
                .to_string(),
            provider_type,
            message_id: text(p, &["data.messageSid", "data.MessageSid"]),
            from: text(p, &["data.from", "data.Author"]),
            to: text(p, &["data.to"]),
            body: text(p, &["data.body", "data.MessageBody"]),
            status: text(p, &["data.messageStatus"]),
            error_code: text(p, &["data.errorCode", "data.ErrorCode"]),
            error_reason: None,
            occurred_at: time(p, &["data.timestamp", "data.DateCreated", "time"]),
        },
        consent: None,
        part: None,
    }
}

/// A messaging type as Twilio's status of the same name normalizes; any
/// other keeps its own name.
fn event_type(cloud_type: &str) -> &str {
    if cloud_type == INBOUND {
        return "message.received";
    }
    match cloud_type.strip_prefix(STATUS) {
        Some(status) => normalized_type(status),
        None => cloud_type,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let message = sid("SM", &ids.message_id);
    let account = sid("AC", "smshook");
    let mut event = json!({
        "specversion": "1.0",
        "type": event_type,
        "source": format!("/2010-04-01/Accounts/{account}/Messages/{message}.json"),
        "id": sid("EZ", &ids.event_id),
        "datacontenttype": "application/json",
        "time": ids.now,
    });
    if event_type == INBOUND {
        event["dataschema"] =
            json!("https://events-schemas.twilio.com/Messaging.InboundMessageV1/1");
        event["data"] = json!({
            "numMedia": 0, "timestamp": ids.now, "accountSid": account,
            "to": "+14155550100", "numSegments": 1, "messageSid": message,
            "eventName": event_type, "body": super::SAMPLE_TEXT,
            "from": "+14155550101",
        });
        return event;
    }
    let status = event_type.strip_prefix(STATUS).unwrap_or(event_type);
    event["dataschema"] = json!("https://events-schemas.twilio.com/Messaging.MessageStatus/8");
    event["data"] = json!({
        "messageSid": message, "timestamp": ids.now, "accountSid": account,
        "eventName": event_type, "apiVersion": "2010-04-01",
        "from": "+14155550100", "to": "+14155550101",
        "messageStatus": status.to_ascii_uppercase(),
        "messagingServiceSid": sid("MG", "smshook"), "numberOfSegments": 1,
    });
    if matches!(status, "undelivered" | "failed") {
        event["data"]["errorCode"] = json!(30003);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_event_normalizes_as_twilios_status_does() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("com.twilio.messaging.message.undelivered", &ids));
        let event_id = sid("EZ", &ids.event_id);
        assert_eq!(n.dedupe_key.as_deref(), Some(event_id.as_str()));
        let f = n.fields;
        assert_eq!(f.event_type, "message.failed");
        assert_eq!(
            f.provider_type.as_deref(),
            Some("com.twilio.messaging.message.undelivered")
        );
        assert_eq!(f.provider_event_id, Some(event_id));
        assert_eq!(f.message_id, Some(sid("SM", &ids.message_id)));
        assert_eq!(f.status.as_deref(), Some("UNDELIVERED"));
        assert_eq!(f.error_code.as_deref(), Some("30003"));
        assert_eq!(f.to.as_deref(), Some("+14155550101"));
        assert!(f.occurred_at.is_some());
        for (status, normalized) in [
            ("delivered", "message.delivered"),
            ("sent", "message.sent"),
            ("read", "message.read"),
            ("queued", "queued"),
        ] {
            let n = PROVIDER.norm(sample(&format!("{STATUS}{status}"), &ids));
            assert_eq!(n.fields.event_type, normalized);
        }
    }

    #[test]
    fn an_inbound_message_is_received_and_other_products_keep_their_types() {
        let n = PROVIDER.norm(sample(INBOUND, &SampleIds::fresh()));
        crate::providers::assert_received(&n.fields, "+14155550101", None);
        let call = PROVIDER.norm(json!({
            "specversion": "1.0", "type": "com.twilio.voice.status-callback.call.completed",
            "id": "EZ1", "time": "2026-12-04T10:00:00.000Z", "data": {"CallSid": "CA1"},
        }));
        assert_eq!(
            call.fields.event_type,
            "com.twilio.voice.status-callback.call.completed"
        );
        assert_eq!(call.dedupe_key.as_deref(), Some("EZ1"));
        let added = PROVIDER.norm(json!({
            "specversion": "1.0", "type": "com.twilio.conversations.message.added",
            "id": "EZ2", "time": "2026-12-04T10:00:01.000Z",
            "data": {"MessageSid": "IM1", "Author": "+14155550101", "MessageBody": "Hi",
                     "ConversationSid": "CH1", "DateCreated": "2026-12-04T10:00:00.000Z"},
        }));
        let f = added.fields;
        assert_eq!(f.event_type, "com.twilio.conversations.message.added");
        assert_eq!(
            (
                f.message_id.as_deref(),
                f.from.as_deref(),
                f.body.as_deref()
            ),
            (Some("IM1"), Some("+14155550101"), Some("Hi"))
        );
        assert_eq!(f.occurred_at.as_deref(), Some("2026-12-04T10:00:00.000Z"));
        assert_eq!(
            call.fields.occurred_at.as_deref(),
            Some("2026-12-04T10:00:00.000Z")
        );
    }
}
