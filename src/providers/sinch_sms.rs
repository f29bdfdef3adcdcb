//! Sinch's SMS API (the REST "XMS" API, not the Conversation API): one JSON
//! callback per request, typed by `type`: an inbound message (`mo_text`),
//! a recipient's delivery report (`recipient_delivery_report_sms`) or a
//! batch's summary (`delivery_report_sms`). The SMS API signs nothing by
//! default; Sinch's account manager sets HTTP Basic credentials on a
//! service plan's callbacks (`signature::basic`), or enables HMAC for it,
//! signed as the Conversation API signs (`signature::sinch`; Sinch's SDKs
//! check SMS callbacks with the same function). A source takes either.

use serde_json::{Value, json};

use super::payload::Object;
use super::{Ack, Format, Provider, SampleIds, Scheme, text, time, type_for_status};
use crate::event::{EventFields, Normalized};

pub static PROVIDER: Provider = Provider {
    name: "sinch-sms",
    signature_header: "authorization",
    signature_prefix: "",
    scheme: Scheme::BasicOrNonceHmac,
    // A batch's summary (`delivery_report_sms`) is normalized too, keyed by
    // its body; `send` makes the two that carry an event of their own.
    event_types: &["mo_text", "recipient_delivery_report_sms"],
    // A 5xx (or 429) is retried, for almost 23 hours; another 4xx is not.
    retry_status: 503,
    answer_timeout: None,
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let kind = text(p, &["type"]);
    match kind.as_deref() {
        Some("mo_text" | "mo_binary" | "mo_media") => inbound(p, kind),
        Some("recipient_delivery_report_sms" | "recipient_delivery_report_mms") => receipt(p, kind),
        _ => summary(p, kind),
    }
}

fn inbound(p: &Object, kind: Option<String>) -> Normalized {
    let id = text(p, &["id"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            provider_event_id: id.clone(),
            event_type: "message.received".into(),
            provider_type: kind,
            message_id: id,
            from: text(p, &["from"]),
            to: text(p, &["to"]),
            body: text(p, &["body"]),
            status: None,
            error_code: None,
            error_reason: None,
            occurred_at: time(p, &["received_at", "sent_at"]),
        },
        consent: None,
        part: None,
    }
}

/// One recipient's status: a batch has one per recipient and status.
fn receipt(p: &Object, kind: Option<String>) -> Normalized {
    let batch = text(p, &["batch_id"]);
    let recipient = text(p, &["recipient"]);
    let status = text(p, &["status"]);
    let event_type = status.as_deref().map(status_type);
    let failed = event_type.as_deref() == Some("message.failed");
    Normalized {
        dedupe_key: batch.as_deref().map(|batch| {
            let recipient = recipient.as_deref().unwrap_or("");
            format!("{batch}:{recipient}:{}", status.as_deref().unwrap_or(""))
        }),
        fields: EventFields {
            provider_event_id: None,
            event_type: event_type
                .or_else(|| kind.clone())
                .unwrap_or_else(|| "unknown".into()),
            provider_type: kind,
            message_id: batch,
            from: None,
            to: recipient,
            body: None,
            status,
            error_code: if failed { text(p, &["code"]) } else { None },
            error_reason: None,
            occurred_at: time(p, &["operator_status_at", "at"]),
        },
        consent: None,
        part: None,
    }
}

/// A batch's summary, or a type this does not know: its own name, keyed
/// by the body.
fn summary(p: &Object, kind: Option<String>) -> Normalized {
    let mut kept = Normalized::kept_as(kind);
    kept.fields.message_id = text(p, &["batch_id"]);
    kept
}

/// Sinch's statuses: `Dispatched` (handed to the operator) is sent,
/// `Aborted` failed; the others as every provider's words read
/// (`Cancelled`, `Deleted`, `Unknown` keep their names).
fn status_type(status: &str) -> String {
    match status.to_ascii_lowercase().as_str() {
        "dispatched" => "message.sent".into(),
        "aborted" => "message.failed".into(),
        other => type_for_status(other).map_or_else(|| status.to_string(), str::to_string),
    }
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let batch = ids.message_id[4..].to_string();
    match event_type {
        "mo_text" => json!({
            "type": "mo_text", "id": ids.event_id[4..], "from": "46732001122",
            "to": "12345", "body": super::SAMPLE_TEXT,
            "received_at": ids.now, "operator_id": "24001",
        }),
        "recipient_delivery_report_sms" => json!({
            "type": event_type, "batch_id": batch, "recipient": "46732001122",
            "code": 0, "status": "Delivered", "at": ids.now,
            "operator_status_at": ids.now, "client_reference": "smshook",
        }),
        _ => json!({
            "type": event_type, "batch_id": batch, "total_message_count": 1,
            "statuses": [{"code": 0, "count": 1, "status": "Delivered", "recipients": ["46732001122"]}],
            "client_reference": "smshook",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("mo_text", &ids));
        assert_eq!(n.dedupe_key.as_deref(), Some(&ids.event_id[4..]));
        assert_eq!(n.fields.event_type, "message.received");
        assert_eq!(n.fields.from.as_deref(), Some("46732001122"));
        assert_eq!(n.fields.to.as_deref(), Some("12345"));
        assert_eq!(n.fields.occurred_at.as_deref(), Some(ids.now.as_str()));
    }

    #[test]
    fn a_recipients_statuses_are_each_an_event() {
        let ids = SampleIds::fresh();
        let delivered = PROVIDER.norm(sample("recipient_delivery_report_sms", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.error_code, None);
        let mut failed = sample("recipient_delivery_report_sms", &ids);
        (failed["status"], failed["code"]) = (json!("Failed"), json!(402));
        let failed = PROVIDER.norm(failed);
        assert_eq!(failed.fields.event_type, "message.failed");
        assert_eq!(failed.fields.error_code.as_deref(), Some("402"));
        assert_ne!(failed.dedupe_key, delivered.dedupe_key);
        for (status, normalized) in [
            ("Dispatched", "message.sent"),
            ("Aborted", "message.failed"),
            ("Expired", "message.failed"),
            ("Cancelled", "Cancelled"),
        ] {
            let mut report = sample("recipient_delivery_report_sms", &ids);
            report["status"] = json!(status);
            assert_eq!(
                PROVIDER.norm(report).fields.event_type,
                normalized,
                "{status}"
            );
        }
        let summary = PROVIDER.norm(sample("delivery_report_sms", &ids));
        assert_eq!(summary.fields.event_type, "delivery_report_sms");
        assert_eq!(summary.dedupe_key, None, "keyed by the body");
    }
}
