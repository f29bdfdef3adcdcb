//! AWS End User Messaging SMS through Amazon SNS: inbound messages (two-way
//! SMS) and delivery events (a configuration set's event destination) are
//! published to an SNS topic, which posts each to an HTTPS subscription in
//! an envelope signed by AWS (`signature::sns`). The envelope's `Message` is
//! the SMS service's JSON as a string:
//! - an inbound message (`originationNumber`, `destinationNumber`,
//!   `messageBody`, `inboundMessageId`) is `message.received`, keyed by its
//!   `inboundMessageId`; a STOP is an opt-out through the keyword list;
//! - an event (`eventType`: `TEXT_DELIVERED`, `TEXT_SUCCESSFUL`, …) is keyed
//!   by `messageId` and `eventType`. `TEXT_SUCCESSFUL` (taken by the
//!   carrier) and the queued and pending events are `message.sent`; a final
//!   event of any other status but `UNKNOWN` is `message.failed`, its
//!   description the reason; `MEDIA_` (MMS) events read the same.
//!
//! Anything else, a subscription confirmation or another publisher's
//! message, keeps SNS's `Type` and is keyed by SNS's `MessageId`, which a
//! retry keeps.

use serde_json::{Value, json};

use super::payload::{Node, Object, parse_object};
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time};
use crate::event::{EventFields, Normalized};
use crate::signature::sns::{SAMPLE_TOPIC_ARN, SIGNATURE_FIELD};

pub static PROVIDER: Provider = Provider {
    name: "aws-sns",
    signature_header: SIGNATURE_FIELD,
    signature_prefix: "",
    scheme: Scheme::SnsCertificate,
    event_types: &[
        "inbound",
        "TEXT_DELIVERED",
        "TEXT_SUCCESSFUL",
        "TEXT_CARRIER_UNREACHABLE",
        "SubscriptionConfirmation",
    ],
    // SNS retries a 5xx or a 429 (by default three times, 20 s apart: set a
    // longer delivery policy on the subscription); any other 4xx is lost.
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let kind = text(p, &["Type"]);
    let sns_id = text(p, &["MessageId"]);
    let message = match (kind.as_deref(), p.get("Message")) {
        (Some("Notification"), Some(Node::String(m))) => parse_object(m).ok(),
        _ => None,
    };
    let mut normalized = match &message {
        Some(m) if m.get("inboundMessageId").is_some() => inbound(m),
        Some(m) if m.get("eventType").is_some() => delivery_event(m),
        _ => Normalized::kept_as(kind),
    };
    let fields = &mut normalized.fields;
    fields.provider_event_id = sns_id.clone();
    if fields.occurred_at.is_none() {
        fields.occurred_at = time(p, &["Timestamp"]);
    }
    if normalized.dedupe_key.is_none() {
        normalized.dedupe_key = sns_id.map(|id| format!("sns:{id}"));
    }
    normalized
}

fn inbound(m: &Object) -> Normalized {
    let id = text(m, &["inboundMessageId"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            event_type: "message.received".into(),
            provider_type: Some("inbound".into()),
            message_id: id,
            from: text(m, &["originationNumber"]),
            to: text(m, &["destinationNumber"]),
            body: text(m, &["messageBody"]),
            ..EventFields::default()
        },
        consent: None,
        part: None,
    }
}

fn delivery_event(m: &Object) -> Normalized {
    let event = text(m, &["eventType"]);
    let id = text(m, &["messageId"]);
    let status = text(m, &["messageStatus"]);
    let is_final = matches!(m.get("isFinal"), Some(Node::Bool(true)));
    let event_type = event
        .as_deref()
        .and_then(|e| event_meaning(e, is_final))
        .map(str::to_string)
        .or_else(|| event.clone())
        .unwrap_or_else(|| "unknown".into());
    let failed = event_type == "message.failed";
    Normalized {
        dedupe_key: compound_key(id.as_deref(), event.as_deref()),
        fields: EventFields {
            event_type,
            provider_type: event,
            message_id: id,
            from: text(m, &["originationPhoneNumber"]),
            to: text(m, &["destinationPhoneNumber"]),
            status,
            error_reason: failed
                .then(|| text(m, &["messageStatusDescription"]))
                .flatten(),
            occurred_at: time(m, &["eventTimestamp"]),
            ..EventFields::default()
        },
        consent: None,
        part: None,
    }
}

/// What an SMS (`TEXT_…`) or MMS (`MEDIA_…`) event means; voice events
/// and `UNKNOWN` (no final status came within 72 hours) keep their names.
fn event_meaning(event: &str, is_final: bool) -> Option<&'static str> {
    let status = event
        .strip_prefix("TEXT_")
        .or_else(|| event.strip_prefix("MEDIA_"))?;
    match status {
        "DELIVERED" => Some("message.delivered"),
        "SUCCESSFUL" | "QUEUED" | "PENDING" => Some("message.sent"),
        "UNKNOWN" => None,
        _ if is_final => Some("message.failed"),
        _ => None,
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let id = ids.message_uuid();
    let mut envelope = json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": SAMPLE_TOPIC_ARN,
        "Timestamp": ids.now,
        "SignatureVersion": "2",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-smshook-sample.pem",
        "UnsubscribeURL": format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={SAMPLE_TOPIC_ARN}:{id}"),
    });
    let message = match event_type {
        "SubscriptionConfirmation" => return confirmation(envelope, ids),
        "inbound" => json!({
            "originationNumber": "+14255550182",
            "destinationNumber": "+12125550101",
            "messageKeyword": "KEYWORD_123456789012",
            "messageBody": super::SAMPLE_TEXT,
            "inboundMessageId": id,
            "previousPublishedMessageId": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY",
        }),
        event => delivery_sample(event, &id),
    };
    envelope["Message"] = Value::String(message.to_string());
    envelope
}

fn delivery_sample(event: &str, id: &str) -> Value {
    let status = event.trim_start_matches("TEXT_");
    let description = match status {
        "DELIVERED" => "Message has been delivered to the handset",
        "SUCCESSFUL" => "Message has been accepted by phone carrier",
        _ => "The carrier could not reach the destination phone number",
    };
    let now = chrono::Utc::now().timestamp_millis();
    json!({
        "eventType": event,
        "eventVersion": "1.0",
        "eventTimestamp": now,
        "isFinal": true,
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": "+14255550156",
        "isoCountryCode": "US",
        "isInternationalSend": false,
        "mcc": "310",
        "mnc": "800",
        "messageId": id,
        "messageRequestTimestamp": now - 300,
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": status,
        "messageStatusDescription": description,
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "totalCarrierFee": 0.00302,
    })
}

/// What SNS sends once an HTTPS endpoint is subscribed to a topic.
fn confirmation(mut envelope: Value, ids: &SampleIds) -> Value {
    let token = format!("2336412f37fb687f5d51e6e2425{}", ids.number);
    envelope["Type"] = json!("SubscriptionConfirmation");
    envelope["Token"] = json!(token);
    envelope["Message"] = json!(format!(
        "You have chosen to subscribe to the topic {SAMPLE_TOPIC_ARN}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    ));
    envelope["SubscribeURL"] = json!(format!(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={SAMPLE_TOPIC_ARN}&Token={token}"
    ));
    if let Some(fields) = envelope.as_object_mut() {
        fields.remove("UnsubscribeURL");
    }
    envelope
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received_and_keyed_by_its_id() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("inbound", &ids));
        let id = ids.message_uuid();
        assert_eq!(n.dedupe_key.as_deref(), Some(id.as_str()));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("inbound"));
        assert_eq!(f.message_id.as_deref(), Some(id.as_str()));
        assert_eq!(f.provider_event_id.as_deref(), Some(id.as_str()));
        crate::providers::assert_received(&f, "+14255550182", Some("+12125550101"));
        assert!(f.occurred_at.is_some(), "SNS's Timestamp");
    }

    #[test]
    fn delivery_events_are_typed_by_event_and_keyed_by_message_and_event() {
        let ids = SampleIds::fresh();
        let id = ids.message_uuid();
        let cases = [
            ("TEXT_DELIVERED", "message.delivered"),
            ("TEXT_SUCCESSFUL", "message.sent"),
            ("TEXT_CARRIER_UNREACHABLE", "message.failed"),
        ];
        for (event, expected) in cases {
            let n = PROVIDER.norm(sample(event, &ids));
            assert_eq!(n.dedupe_key, Some(format!("{id}:{event}")));
            let f = n.fields;
            assert_eq!(f.event_type, expected, "{event}");
            assert_eq!(f.provider_type.as_deref(), Some(event));
            assert_eq!(f.message_id.as_deref(), Some(id.as_str()));
            assert_eq!(f.from.as_deref(), Some("+12065550152"));
            assert_eq!(f.to.as_deref(), Some("+14255550156"));
            assert_eq!(f.status.as_deref(), event.strip_prefix("TEXT_"));
            assert_eq!(f.error_reason.is_some(), expected == "message.failed");
            assert!(f.occurred_at.is_some());
        }
    }

    #[test]
    fn what_each_event_means() {
        let meaning = |e, last| event_meaning(e, last);
        assert_eq!(meaning("TEXT_QUEUED", false), Some("message.sent"));
        assert_eq!(meaning("TEXT_PENDING", false), Some("message.sent"));
        assert_eq!(meaning("TEXT_BLOCKED", true), Some("message.failed"));
        assert_eq!(meaning("TEXT_TTL_EXPIRED", true), Some("message.failed"));
        assert_eq!(meaning("MEDIA_DELIVERED", true), Some("message.delivered"));
        assert_eq!(meaning("TEXT_UNKNOWN", true), None);
        assert_eq!(meaning("TEXT_SOMETHING_NEW", false), None);
        assert_eq!(meaning("VOICE_COMPLETED", true), None);
    }

    #[test]
    fn other_messages_keep_snss_type_and_id() {
        let ids = SampleIds::fresh();
        let id = ids.message_uuid();
        let n = PROVIDER.norm(sample("SubscriptionConfirmation", &ids));
        assert_eq!(n.fields.event_type, "SubscriptionConfirmation");
        assert_eq!(n.dedupe_key, Some(format!("sns:{id}")));
        let mut plain = sample("inbound", &ids);
        plain["Message"] = json!("a text another publisher sent");
        let n = PROVIDER.norm(plain);
        assert_eq!(n.fields.event_type, "Notification");
        assert_eq!(n.fields.body, None);
        assert_eq!(n.dedupe_key, Some(format!("sns:{id}")));
    }

    #[test]
    fn a_stop_is_an_opt_out_through_the_keyword_list() {
        let mut body = sample("inbound", &SampleIds::fresh());
        let mut message: Value =
            serde_json::from_str(body["Message"].as_str().expect("text")).expect("json");
        message["messageBody"] = json!("STOP");
        body["Message"] = json!(message.to_string());
        let n = PROVIDER.norm(body);
        assert_eq!(n.consent, None);
        assert_eq!(crate::optout::classify(&n.fields, n.consent), Some(true));
    }
}
