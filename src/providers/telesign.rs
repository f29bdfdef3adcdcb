//! Telesign (SMS API, Messaging, SMS Verify): callbacks signed with the
//! account's API key (`signature::telesign`). Telesign names no event type:
//! a callback with a `user_response` is an inbound message (`sub_resource`
//! `mo_sms`), keyed by its `reference_id`; any other is a delivery report,
//! one per status of a message, keyed by `reference_id` and `status.code`.
//! The code says what happened (200 delivered, 203/290/292 on the way, 207
//! and the 2xx-5xx errors failed, …); a code with no clear meaning (250
//! "Final status unknown", 295 "Status delayed", …) keeps the report's
//! name: its `sub_resource` where Telesign sends one, else
//! `delivery_report`.

use serde_json::{Value, json};

use super::payload::{Node, Object};
use super::{Ack, Format, Provider, SampleIds, Scheme, at, text, time};
use crate::event::{EventFields, Normalized};
use crate::signature::telesign::SIGNATURE_HEADER;

pub static PROVIDER: Provider = Provider {
    name: "telesign",
    signature_header: SIGNATURE_HEADER,
    signature_prefix: "",
    scheme: Scheme::DecodedKeyHmac,
    event_types: &["delivery_report", "mo_sms"],
    // Anything but a 200 is retried: four attempts in all, 5, 10 and 15 s
    // apart.
    retry_status: 503,
    // "each attempt waits 5 seconds for an HTTP response".
    answer_timeout: Some(std::time::Duration::from_secs(5)),
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

/// The name smshook gives a delivery report that carries no `sub_resource`
/// (Telesign names none).
const DELIVERY_REPORT: &str = "delivery_report";

fn normalize(p: &Object) -> Normalized {
    match at(p, "user_response").and_then(Node::as_object) {
        Some(response) => inbound(p, response),
        None => report(p),
    }
}

fn inbound(p: &Object, response: &Object) -> Normalized {
    let id = text(p, &["reference_id"]);
    Normalized {
        dedupe_key: id.clone(),
        fields: EventFields {
            event_type: "message.received".into(),
            provider_type: text(p, &["sub_resource"]).or_else(|| Some("mo_sms".into())),
            message_id: id,
            from: text(response, &["phone_number"]),
            to: text(response, &["sender_id"]),
            body: text(response, &["mo_message"]),
            occurred_at: occurred(p),
            ..EventFields::default()
        },
        // Telesign's keyword handling says which action a message asked for.
        consent: match text(response, &["action"]).as_deref() {
            Some("stop") => Some(true),
            Some("start") => Some(false),
            _ => None,
        },
        part: None,
    }
}

fn report(p: &Object) -> Normalized {
    let id = text(p, &["reference_id"]);
    let code = at(p, "status.code").and_then(|c| match c {
        Node::Number(n) => n.as_u64(),
        Node::String(s) => s.parse().ok(),
        _ => None,
    });
    let provider_type = text(p, &["sub_resource"]).unwrap_or_else(|| DELIVERY_REPORT.into());
    let meaning = code.and_then(code_type);
    let failed = meaning == Some("message.failed");
    Normalized {
        dedupe_key: super::compound_key(id.as_deref(), code.map(|c| c.to_string()).as_deref()),
        fields: EventFields {
            event_type: meaning.map_or_else(|| provider_type.clone(), str::to_string),
            provider_type: Some(provider_type),
            message_id: id,
            to: text(p, &["additional_info.cleansed_phone_number"]),
            from: text(p, &["additional_info.sender_id"]),
            status: code.map(|c| c.to_string()),
            error_code: code.filter(|_| failed).map(|c| c.to_string()),
            error_reason: failed.then(|| text(p, &["status.description"])).flatten(),
            occurred_at: occurred(p),
            ..EventFields::default()
        },
        consent: None,
        part: None,
    }
}

/// What a status code means, where it is clear.
fn code_type(code: u64) -> Option<&'static str> {
    match code {
        200 => Some("message.delivered"),
        203 | 290 | 292 => Some("message.sent"),
        207 | 210 | 211 | 220 | 221 | 222 | 230 | 231 | 233 | 237 | 238 | 286 => {
            Some("message.failed")
        }
        500..=521 | 10_000.. => Some("message.failed"),
        _ => None,
    }
}

fn occurred(p: &Object) -> Option<String> {
    time(p, &["status.updated_on", "submit_timestamp"])
}

fn sample(event_type: &str, ids: &SampleIds) -> Value {
    let reference = format!("{}000000", &ids.message_id[4..]);
    if event_type == "mo_sms" {
        return json!({
            "reference_id": reference,
            "status": {"code": 1500, "description": "Delivered", "updated_on": ids.now},
            "user_response": {
                "sender_id": "4442", "iso_country_code": "US", "action": "generic",
                "keyword": "", "phone_number": "15558675310",
                "mo_message": super::SAMPLE_TEXT, "price": "0.0075",
            },
            "sub_resource": "mo_sms",
            "errors": {},
            "submit_timestamp": ids.now,
        });
    }
    json!({
        "reference_id": reference,
        "status": {"code": 200, "description": "Delivered to handset", "updated_on": ids.now},
        "submit_timestamp": ids.now,
        "additional_info": {
            "mcc": "310", "mnc": "004", "price": "0.01", "currency": "USD",
            "message_parts_count": 1, "cleansed_phone_number": "15558675310",
        },
        "external_id": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_keyed_by_its_reference() {
        let ids = SampleIds::fresh();
        let n = PROVIDER.norm(sample("mo_sms", &ids));
        let reference = format!("{}000000", &ids.message_id[4..]);
        assert_eq!(n.dedupe_key.as_deref(), Some(reference.as_str()));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("mo_sms"));
        crate::providers::assert_received(&f, "15558675310", Some("4442"));
        assert_eq!(f.occurred_at.as_deref(), Some(ids.now.as_str()));
    }

    /// Telesign's own keyword handling decides; without it, the keyword
    /// list does.
    #[test]
    fn telesigns_action_says_stop_or_start() {
        let consent = |action: &str, text: &str| {
            let mut v = sample("mo_sms", &SampleIds::fresh());
            v["user_response"]["action"] = json!(action);
            v["user_response"]["mo_message"] = json!(text);
            let n = PROVIDER.norm(v);
            crate::optout::classify(&n.fields, n.consent)
        };
        assert_eq!(consent("stop", "ARRET"), Some(true));
        assert_eq!(consent("start", "Start"), Some(false));
        assert_eq!(consent("generic", "STOP"), Some(true), "the keyword list");
        assert_eq!(consent("help", "HELP"), None);
    }

    #[test]
    fn each_status_code_is_a_report_of_its_own() {
        let ids = SampleIds::fresh();
        let report = |code: Value, description: &str| {
            let mut v = sample("delivery_report", &ids);
            v["status"]["code"] = code;
            v["status"]["description"] = json!(description);
            PROVIDER.norm(v)
        };
        let delivered = report(json!(200), "Delivered to handset");
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(
            delivered.fields.provider_type.as_deref(),
            Some("delivery_report")
        );
        assert_eq!(delivered.fields.to.as_deref(), Some("15558675310"));
        assert_eq!(delivered.fields.error_code, None);
        let gateway = report(json!(203), "Delivered to gateway");
        assert_eq!(gateway.fields.event_type, "message.sent");
        assert_ne!(gateway.dedupe_key, delivered.dedupe_key);
        let failed = report(json!(210), "Temporary phone error");
        assert_eq!(failed.fields.event_type, "message.failed");
        assert_eq!(failed.fields.status.as_deref(), Some("210"));
        assert_eq!(failed.fields.error_code.as_deref(), Some("210"));
        assert_eq!(
            failed.fields.error_reason.as_deref(),
            Some("Temporary phone error")
        );
        assert_eq!(
            report(json!("511"), "Subscriber low on credit")
                .fields
                .event_type,
            "message.failed"
        );
        let unknown = report(json!(250), "Final status unknown");
        assert_eq!(unknown.fields.event_type, "delivery_report");
        assert_eq!(unknown.fields.error_code, None);
    }

    #[test]
    fn a_bulk_report_keeps_its_sub_resource() {
        let n = PROVIDER.norm(json!({"reference_id": "0123456789ABCDEF0123456789ABCDEF",
            "status": {"code": 295, "description": "Status delayed", "updated_on": "2016-10-25T12:33:45.420798Z"},
            "errors": [], "sub_resource": "bulk_sms", "session_id": "255E3E34382C0E049046BF14FF7F3435"}));
        assert_eq!(n.fields.event_type, "bulk_sms");
        assert_eq!(
            n.dedupe_key.as_deref(),
            Some("0123456789ABCDEF0123456789ABCDEF:295")
        );
        assert_eq!(
            PROVIDER.norm(json!({})).fields.event_type,
            "delivery_report"
        );
        assert_eq!(PROVIDER.norm(json!({})).dedupe_key, None);
    }
}
