//! Bird (formerly MessageBird), its Channels API: webhook subscriptions
//! signed with the subscription's signing key over a timestamp, the URL and
//! the body's hash (`signature::bird`). A webhook is an envelope,
//! `{"service":"channels","event":"sms.inbound","payload":{…}}`, around a
//! message object. `<channel>.inbound` is a received message, keyed by its
//! id; `<channel>.outbound` is one of an outgoing message's statuses
//! (`accepted`, `sent`, `delivered`, `sending_failed`, `delivery_failed`,
//! …), keyed by message and status. Anything else (interactions, channel
//! events) keeps its event name and is keyed by the body's hash.

use serde_json::{Value, json};

use super::payload::{Node, Object};
use super::{Ack, Format, Provider, SampleIds, Scheme, at, first, text, time, type_for_status};
use crate::event::{EventFields, Normalized};
use crate::signature::bird::SIGNATURE_HEADER;

pub static PROVIDER: Provider = Provider {
    name: "bird",
    signature_header: SIGNATURE_HEADER,
    signature_prefix: "",
    scheme: Scheme::UrlDigestHmac,
    event_types: &["sms.inbound", "sms.outbound"],
    // Anything but a 2xx is retried, at growing intervals, for 8 hours.
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let event = text(p, &["event"]);
    let Some(message) = at(p, "payload").and_then(Node::as_object) else {
        return Normalized::kept_as(event);
    };
    match event.as_deref().and_then(|e| e.rsplit_once('.')) {
        Some((_, "inbound")) => inbound(message, event),
        Some((_, "outbound")) => outbound(message, event),
        _ => other(message, event),
    }
}

fn inbound(m: &Object, event: Option<String>) -> Normalized {
    let id = text(m, &["id"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            event_type: "message.received".into(),
            provider_type: event,
            message_id: id,
            status: text(m, &["status"]),
            occurred_at: time(m, &["createdAt", "lastStatusAt"]),
            ..message_fields(m)
        },
        consent: None,
        part: None,
    }
}

fn outbound(m: &Object, event: Option<String>) -> Normalized {
    let id = text(m, &["id"]);
    let status = text(m, &["status"]);
    let event_type = status
        .as_deref()
        .and_then(status_type)
        .map(str::to_string)
        .or_else(|| event.clone())
        .unwrap_or_else(|| "unknown".into());
    Normalized {
        dedupe_key: super::compound_key(id.as_deref(), status.as_deref()),
        fields: EventFields {
            event_type,
            provider_type: event,
            message_id: id,
            status,
            error_code: text(m, &["failure.code", "failure.source.code"]),
            error_reason: text(m, &["reason", "details"]),
            occurred_at: time(m, &["lastStatusAt", "updatedAt", "createdAt"]),
            ..message_fields(m)
        },
        consent: None,
        part: None,
    }
}

/// Any other event keeps its name, keyed by the body.
fn other(m: &Object, event: Option<String>) -> Normalized {
    let mut kept = Normalized::kept_as(event);
    kept.fields.message_id = text(m, &["messageId"]);
    kept.fields.occurred_at = time(m, &["createdAt", "updatedAt"]);
    kept
}

/// Who sent a message, to whom, and its text.
fn message_fields(m: &Object) -> EventFields {
    EventFields {
        from: party(m, "sender"),
        to: party(m, "receiver"),
        body: text(m, &["body.text.text"]),
        ..EventFields::default()
    }
}

/// The number (or other identifier) of a message's `side`: a contact, the
/// channel's connector, or the first of several contacts.
fn party(m: &Object, side: &str) -> Option<String> {
    let side = m.get(side)?.as_object()?;
    text(
        side,
        &["contact.identifierValue", "connector.identifierValue"],
    )
    .or_else(|| first(side, "contacts").and_then(|c| text(c, &["identifierValue"])))
}

/// Bird's failure statuses, then the words every provider shares.
/// `processing` and `scheduled` have no clear meaning and keep the event's
/// name.
fn status_type(status: &str) -> Option<&'static str> {
    match status {
        "sending_failed" | "delivery_failed" => Some("message.failed"),
        other => type_for_status(other),
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let id = ids.message_uuid();
    let us =
        json!({"id": "0f39e2b3-8f44-4ba0-9e0b-5d1dc8c0f4a2", "identifierValue": "+3197010250010"});
    let them = json!({"id": "5cd1e9e1-2d53-4f8a-9a47-f87b9a5e6c11", "identifierKey": "phonenumber",
                      "identifierValue": "+31612345678"});
    let mut message = json!({
        "id": id,
        "channelId": "5a4b6f3c-2d1e-4f0a-9b8c-7d6e5f4a3b2c",
        "createdAt": ids.now, "updatedAt": ids.now, "lastStatusAt": ids.now,
        "parts": [{"platformReference": ids.event_id}],
    });
    if event_type == "sms.inbound" {
        message["sender"] = json!({"contact": them});
        message["receiver"] = json!({"connector": us});
        message["body"] = json!({"type": "text", "text": {"text": super::SAMPLE_TEXT}});
        message["status"] = json!("delivered");
        message["direction"] = json!("incoming");
    } else {
        message["sender"] = json!({"connector": us});
        message["receiver"] = json!({"contacts": [them]});
        message["body"] = json!({"type": "text", "text": {"text": "Your code is 482913"}});
        message["status"] = json!("delivered");
        message["direction"] = json!("outgoing");
    }
    json!({"service": "channels", "event": event_type, "payload": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received_from_its_contact() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("sms.inbound", &ids));
        let id = ids.message_uuid();
        assert_eq!(n.dedupe_key.as_deref(), Some(id.as_str()));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("sms.inbound"));
        assert_eq!(f.message_id.as_deref(), Some(id.as_str()));
        crate::providers::assert_received(&f, "+31612345678", Some("+3197010250010"));
        assert_eq!(f.occurred_at.as_deref(), Some(ids.now.as_str()));
    }

    #[test]
    fn an_inbound_stop_opts_the_number_out() {
        let mut v = sample("sms.inbound", &SampleIds::fresh());
        v["payload"]["body"]["text"]["text"] = json!("STOP");
        let n = PROVIDER.norm(v);
        assert_eq!(crate::optout::classify(&n.fields, n.consent), Some(true));
    }

    #[test]
    fn each_outbound_status_is_an_event_of_its_own() {
        let ids = SampleIds::fresh();
        let outbound = |status: &str| {
            let mut v = sample("sms.outbound", &ids);
            v["payload"]["status"] = json!(status);
            PROVIDER.norm(v)
        };
        let delivered = outbound("delivered");
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.from.as_deref(), Some("+3197010250010"));
        assert_eq!(delivered.fields.to.as_deref(), Some("+31612345678"));
        assert_eq!(outbound("sent").fields.event_type, "message.sent");
        assert_eq!(outbound("accepted").fields.event_type, "message.sent");
        assert_eq!(outbound("processing").fields.event_type, "sms.outbound");
        assert_eq!(
            outbound("sending_failed").fields.event_type,
            "message.failed"
        );
        assert_ne!(delivered.dedupe_key, outbound("sent").dedupe_key);
        assert_eq!(delivered.dedupe_key, outbound("delivered").dedupe_key);
    }

    /// Bird's documented failure: the reason, and a code of its own (the
    /// SMS platform's is in `failure.source`).
    #[test]
    fn a_failure_carries_its_code_and_reason() {
        let mut v = sample("sms.outbound", &SampleIds::fresh());
        v["payload"]["status"] = json!("delivery_failed");
        v["payload"]["reason"] =
            json!("details: unknown subscriber; reason: unknown_subscriber; code: 1");
        v["payload"]["details"] = json!("unknown_subscriber");
        v["payload"]["failure"] =
            json!({"code": 15005, "source": {"name": "sms-messagebird", "code": "1"}});
        let f = PROVIDER.norm(v).fields;
        assert_eq!(f.event_type, "message.failed");
        assert_eq!(f.status.as_deref(), Some("delivery_failed"));
        assert_eq!(f.error_code.as_deref(), Some("15005"));
        assert_eq!(
            f.error_reason.as_deref(),
            Some("details: unknown subscriber; reason: unknown_subscriber; code: 1")
        );
    }

    #[test]
    fn other_events_keep_their_names_and_are_keyed_by_body() {
        let n = PROVIDER.norm(json!({"service": "channels", "event": "sms.interaction",
                            "payload": {"id": "i1", "messageId": "m1", "type": "opened"}}));
        assert_eq!(n.fields.event_type, "sms.interaction");
        assert_eq!(n.fields.message_id.as_deref(), Some("m1"));
        assert_eq!(n.dedupe_key, None);
        let bare =
            PROVIDER.norm(json!({"service": "channels", "event": "sms.inbound", "payload": []}));
        assert_eq!(bare.fields.event_type, "sms.inbound");
        assert_eq!(bare.dedupe_key, None);
        assert_eq!(PROVIDER.norm(json!({})).fields.event_type, "unknown");
    }
}
