//! Twilio Programmable Messaging: form-encoded webhooks (`MessageSid`,
//! `MessageStatus`, `From`, `To`, `Body`, …) signed in `X-Twilio-Signature`
//! with HMAC-SHA1 over the registered URL and the sorted parameters, or
//! HMAC-SHA256 under a SharedKey where a Webhook Rule says so
//! (`signature::twilio`). A status callback names the message and its new
//! status; an inbound message has `SmsStatus=received`. Neither carries an
//! event id or a time, so the key is the message and its status.
//!
//! Twilio reads the answer to an inbound message as TwiML: a source answers
//! an empty `<Response/>` (no reply is sent), not JSON, which Twilio's
//! debugger would report as an error for every message.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "twilio",
    signature_header: "x-twilio-signature",
    signature_prefix: "",
    scheme: Scheme::SignedUrl,
    event_types: &[
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "received",
        "read",
    ],
    retry_status: 503,
    // Twilio's default read timeout (its "connection overrides" page).
    answer_timeout: Some(std::time::Duration::from_secs(15)),
    // Twilio publishes no address ranges for webhooks and asks that they be
    // checked by signature.
    addresses_change: true,
    ack: Ack::EmptyXml,
    format: Format::Form,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let message_id = text(p, &["MessageSid", "SmsSid", "SmsMessageSid"]);
    let status = text(p, &["MessageStatus", "SmsStatus"]);
    if status.is_none()
        && let Some(event) = text(p, &["EventType"])
    {
        return conversations(p, event, message_id);
    }
    Normalized {
        dedupe_key: compound_key(message_id.as_deref(), status.as_deref()),
        fields: EventFields {
            provider_event_id: None,
            event_type: status
                .as_deref()
                .map_or("unknown", normalized_type)
                .to_string(),
            provider_type: status.clone(),
            message_id,
            from: text(p, &["From"]),
            to: text(p, &["To"]),
            body: text(p, &["Body"]),
            status,
            error_code: text(p, &["ErrorCode"]),
            error_reason: text(p, &["ErrorMessage"]),
            occurred_at: None,
        },
        consent: text(p, &["OptOutType"]).and_then(|t| opt_out_type(&t)),
        part: None,
    }
}

/// A Conversations webhook (`EventType=onMessageAdded`, …): its types keep
/// their names, and an update of a message is not a retry of its
/// creation, so the key is the body's hash (a retry repeats the body).
fn conversations(p: &Object, event: String, message_id: Option<String>) -> Normalized {
    let mut kept = Normalized::kept_as(Some(event));
    let fields = &mut kept.fields;
    fields.message_id = message_id;
    fields.from = text(p, &["Author"]);
    fields.body = text(p, &["Body"]);
    fields.occurred_at = time(p, &["DateCreated"]);
    kept
}

/// Advanced Opt-Out's verdict on an inbound message, which knows the
/// service's own keywords (any language): `STOP` opts out, `START` in;
/// `HELP`, or none, leaves it to the standard keyword list.
fn opt_out_type(value: &str) -> Option<bool> {
    match value.trim().to_ascii_uppercase().as_str() {
        "STOP" => Some(true),
        "START" => Some(false),
        _ => None,
    }
}

/// Twilio's message statuses. `queued`, `accepted`, `scheduled`, `sending`
/// and the others come before the message is sent, or have no normalized
/// name: they keep their own.
pub(super) fn normalized_type(status: &str) -> &str {
    match status {
        "sent" => "message.sent",
        "delivered" => "message.delivered",
        "undelivered" | "failed" => "message.failed",
        "received" => "message.received",
        "read" => "message.read",
        other => other,
    }
}

/// A Twilio SID: two letters and 32 hex digits, the same for the same id.
pub(super) fn sid(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", hex::encode(&Sha256::digest(id)[..16]))
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let message = sid("SM", &ids.message_id);
    let account = sid("AC", "smshook");
    let service = sid("MG", "smshook");
    if event_type == "received" {
        return json!({
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": message, "NumMedia": "0",
            "ToCity": "SAN FRANCISCO", "FromZip": "94105", "SmsSid": message,
            "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
            "Body": super::SAMPLE_TEXT, "FromCountry": "US",
            "To": "+14155550100", "MessagingServiceSid": service, "ToZip": "94107",
            "NumSegments": "1", "MessageSid": message, "AccountSid": account,
            "From": "+14155550101", "ApiVersion": "2010-04-01",
        });
    }
    let mut status = json!({
        "SmsSid": message, "SmsStatus": event_type, "MessageStatus": event_type,
        "To": "+14155550101", "MessagingServiceSid": service, "MessageSid": message,
        "AccountSid": account, "From": "+14155550100", "ApiVersion": "2010-04-01",
    });
    if matches!(event_type, "undelivered" | "failed") {
        status["ErrorCode"] = json!("30003");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("received", &ids));
        let message = sid("SM", &ids.message_id);
        assert_eq!(n.dedupe_key, Some(format!("{message}:received")));
        let f = n.fields;
        assert_eq!(f.message_id.as_deref(), Some(message.as_str()));
        crate::providers::assert_received(&f, "+14155550101", Some("+14155550100"));
        assert!(message.starts_with("SM") && message.len() == 34);
    }

    #[test]
    fn statuses_normalize_and_each_is_its_own_event() {
        let ids = SampleIds::fresh();
        let failed = PROVIDER.norm(sample("undelivered", &ids));
        assert_eq!(failed.fields.event_type, "message.failed");
        assert_eq!(failed.fields.error_code.as_deref(), Some("30003"));
        let delivered = PROVIDER.norm(sample("delivered", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.status.as_deref(), Some("delivered"));
        assert_ne!(
            delivered.dedupe_key, failed.dedupe_key,
            "same message, two events"
        );
        assert_eq!(
            PROVIDER.norm(sample("sent", &ids)).fields.event_type,
            "message.sent"
        );
        assert_eq!(
            PROVIDER.norm(sample("queued", &ids)).fields.event_type,
            "queued"
        );
        // Only the older name: still read.
        let old =
            json!({"SmsSid": "SM1", "SmsStatus": "failed", "ErrorMessage": "Unknown destination"});
        let old = PROVIDER.norm(old);
        assert_eq!(old.fields.event_type, "message.failed");
        assert_eq!(
            old.fields.error_reason.as_deref(),
            Some("Unknown destination")
        );
        assert_eq!(old.dedupe_key.as_deref(), Some("SM1:failed"));
    }

    /// Conversations posts its events to the same kind of URL, signed the
    /// same way: each is an event, keyed by its body, typed by `EventType`.
    #[test]
    fn conversations_events_keep_their_types_and_are_not_merged() {
        let added = json!({
            "EventType": "onMessageAdded", "ConversationSid": "CH1", "MessageSid": "IM1",
            "Author": "+14155550101", "Body": "Hello", "Index": "0",
            "DateCreated": "2026-12-04T10:00:00.000Z", "Source": "SMS",
        });
        let n = PROVIDER.norm(added.clone());
        assert_eq!(n.fields.event_type, "onMessageAdded");
        assert_eq!(n.fields.provider_type.as_deref(), Some("onMessageAdded"));
        assert_eq!(n.fields.message_id.as_deref(), Some("IM1"));
        assert_eq!(n.fields.from.as_deref(), Some("+14155550101"));
        assert_eq!(n.fields.body.as_deref(), Some("Hello"));
        assert_eq!(
            n.fields.occurred_at.as_deref(),
            Some("2026-12-04T10:00:00.000Z")
        );
        assert_eq!(
            n.dedupe_key, None,
            "the body's hash: an update is not a retry"
        );
        let mut updated = added;
        updated["EventType"] = json!("onMessageUpdated");
        assert_eq!(PROVIDER.norm(updated).fields.event_type, "onMessageUpdated");
    }

    #[test]
    fn a_stop_message_opts_its_sender_out() {
        let mut stop = sample("received", &SampleIds::fresh());
        stop["Body"] = json!("Stop");
        let n = PROVIDER.norm(stop);
        assert_eq!(n.consent, None, "no Advanced Opt-Out: the keyword list");
        assert_eq!(crate::optout::classify(&n.fields, n.consent), Some(true));
    }

    #[test]
    fn advanced_opt_out_custom_keywords_count() {
        let consent = |body: &str, kind: Option<&str>| {
            let mut message = sample("received", &SampleIds::fresh());
            message["Body"] = json!(body);
            if let Some(kind) = kind {
                message["OptOutType"] = json!(kind);
            }
            let n = PROVIDER.norm(message);
            assert_eq!(n.fields.event_type, "message.received", "{body}");
            crate::optout::classify(&n.fields, n.consent)
        };
        assert_eq!(consent("ARRET", Some("STOP")), Some(true));
        assert_eq!(consent("ARRET", None), None, "not a standard keyword");
        assert_eq!(consent("REPRENDRE", Some("START")), Some(false));
        assert_eq!(consent("AIDE", Some("HELP")), None);
        assert_eq!(consent("STOP", Some("HELP")), Some(true), "list decides");
    }
}
