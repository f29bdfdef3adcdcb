//! Vonage's SMS API (the older of Vonage's two, chosen per API key in the
//! dashboard): delivery receipts and inbound messages, signed with a `sig`
//! parameter among the others (`signature::vonage_sms`), sent as a query
//! (`GET`), a form (`POST`) or JSON (`POST-JSON`). A receipt has `status`
//! (`delivered`, `accepted`, `buffered`, `expired`, `failed`, `rejected`,
//! `unknown`) and names the recipient `msisdn` and the sender `to`; an
//! inbound message has none, `msisdn` is its sender and `to` your number.
//! Neither carries an event id: the key is `messageId` and the status.
//! Values are all strings, the time is `timestamp` (Unix seconds, which a
//! signed webhook carries) or `message-timestamp` (`YYYY-MM-DD HH:MM:SS`,
//! UTC).

use chrono::{NaiveDateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::payload::Object;
use super::vonage::{INBOUND, provider_type};
use super::{Ack, Format, Provider, SampleIds, Scheme, compound_key, text, time};
use crate::event::{EventFields, Normalized, Part, format_time};

pub static PROVIDER: Provider = Provider {
    name: "vonage-sms",
    signature_header: crate::signature::vonage_sms::SIG,
    signature_prefix: "",
    scheme: Scheme::SignedParams,
    event_types: &[
        "delivered",
        "inbound",
        "accepted",
        "buffered",
        "expired",
        "failed",
        "rejected",
        "unknown",
    ],
    // Vonage retries a 429 or 5xx (inbound messages for 24 hours, receipts
    // for 72), and waits 15 s for an answer (its support article on webhook
    // time-outs).
    retry_status: 503,
    answer_timeout: Some(std::time::Duration::from_secs(15)),
    // As for the Messages API: nothing found in Vonage's documentation
    // asks not to filter by address.
    addresses_change: false,
    ack: Ack::Json,
    format: Format::Object,
    normalize,
    sample,
};

fn normalize(p: &Object) -> Normalized {
    let message_id = text(p, &["messageId"]);
    let status = text(p, &["status"]);
    let provider_type = provider_type(status.as_deref());
    // A receipt is about a message you sent: `to` is your sender id.
    let (from, to) = if status.is_some() {
        (text(p, &["to"]), text(p, &["msisdn"]))
    } else {
        (text(p, &["msisdn"]), text(p, &["to"]))
    };
    // A part of a long inbound message, keyed to be found with its
    // message's other parts (`crate::join`); one without a sender or an id
    // could never be joined, and is kept as a message of its own.
    let part = status.is_none().then(|| part(p)).flatten();
    let (event_type, dedupe_key, part) = match (part, &from, &message_id) {
        (Some(part), Some(from), Some(id)) => {
            let key = crate::join::group_key(from, to.as_deref(), &part) + id;
            (crate::join::PART, Some(key), Some(part))
        }
        _ => (
            normalized_type(&provider_type),
            compound_key(message_id.as_deref(), Some(&provider_type)),
            None,
        ),
    };
    Normalized {
        dedupe_key,
        fields: EventFields {
            provider_event_id: None,
            event_type: event_type.to_string(),
            provider_type: Some(provider_type),
            message_id,
            from,
            to,
            body: text(p, &["text"]),
            status,
            error_code: text(p, &["err-code"]).filter(|code| code != "0"),
            error_reason: None,
            occurred_at: time(p, &["timestamp"]).or_else(|| message_timestamp(p)),
        },
        consent: None,
        part,
    }
}

/// Which part of a long message an inbound message is: `concat` is `true`
/// and `concat-ref`, `concat-total` (2 or more) and `concat-part` (1 to
/// the total) are all there. Vonage passes them on where the carrier sent
/// the message's concatenation header (US Sprint and Verizon do not).
fn part(p: &Object) -> Option<Part> {
    if text(p, &["concat"])? != "true" {
        return None;
    }
    let count = |key| text(p, &[key])?.trim().parse::<u16>().ok();
    let (total, number) = (count("concat-total")?, count("concat-part")?);
    if total < 2 || !(1..=total).contains(&number) {
        return None;
    }
    let reference = text(p, &["concat-ref"])?;
    Some(Part {
        reference,
        total,
        number,
    })
}

/// `accepted` is the carrier's acknowledgement: sent. `buffered` (waiting
/// for the handset) and `unknown` keep their own names.
fn normalized_type(provider_type: &str) -> &str {
    match provider_type {
        INBOUND => "message.received",
        "accepted" => "message.sent",
        "delivered" => "message.delivered",
        "expired" | "failed" | "rejected" => "message.failed",
        other => other,
    }
}

/// `message-timestamp`: `2020-01-01 12:00:00`, UTC, in receipts sometimes
/// followed by ` +0000`.
fn message_timestamp(p: &Object) -> Option<String> {
    let text = text(p, &["message-timestamp"])?;
    let text = text.trim().trim_end_matches("+0000").trim_end();
    let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(format_time(t.and_utc().with_timezone(&Utc)))
}

/// A sample as Vonage sends it, unsigned: `Provider::sign_body` adds the
/// `timestamp` and `sig`.
fn sample(event_type: &str, ids: &SampleIds) -> Value {
    // 16 hex digits, as Vonage's ids; the same for the same message.
    let id = hex::encode_upper(&Sha256::digest(&ids.message_id)[..8]);
    let when = ids
        .now
        .get(..19)
        .unwrap_or("2026-01-01T00:00:00")
        .replace('T', " ");
    let nonce = ids.event_id.trim_start_matches("evt_").to_lowercase();
    if event_type == INBOUND {
        return json!({
            "msisdn": "447700900001", "to": "447700900000", "messageId": id,
            "text": super::SAMPLE_TEXT, "type": "text",
            "keyword": "CAN", "api-key": "abcd1234", "message-timestamp": when,
            "nonce": nonce,
        });
    }
    let err_code = match event_type {
        "delivered" | "accepted" | "buffered" => "0",
        "rejected" => "6",
        _ => "1",
    };
    json!({
        "msisdn": "447700900001", "to": "AcmeInc", "network-code": "23410",
        "messageId": id, "price": "0.03330000", "status": event_type,
        "scts": "2001011400", "err-code": err_code, "api-key": "abcd1234",
        "client-ref": "order-1234", "message-timestamp": format!("{when} +0000"),
        "nonce": nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_is_received_from_its_msisdn() {
        let sample = sample(INBOUND, &SampleIds::fresh());
        let id = sample["messageId"].as_str().expect("id").to_string();
        let n = PROVIDER.norm(sample);
        assert_eq!(n.dedupe_key, Some(format!("{id}:inbound")));
        let f = n.fields;
        assert_eq!(f.provider_type.as_deref(), Some("inbound"));
        crate::providers::assert_received(&f, "447700900001", Some("447700900000"));
        assert_eq!(f.error_code, None);
        assert!(f.occurred_at.is_some(), "from message-timestamp");
    }

    #[test]
    fn receipts_normalize_and_each_status_is_its_own_event() {
        let ids = SampleIds::fresh();
        let delivered = PROVIDER.norm(sample("delivered", &ids));
        assert_eq!(delivered.fields.event_type, "message.delivered");
        assert_eq!(delivered.fields.from.as_deref(), Some("AcmeInc"));
        assert_eq!(delivered.fields.to.as_deref(), Some("447700900001"));
        assert_eq!(delivered.fields.error_code, None, "err-code 0 is no error");
        let rejected = PROVIDER.norm(sample("rejected", &ids));
        assert_eq!(rejected.fields.event_type, "message.failed");
        assert_eq!(rejected.fields.error_code.as_deref(), Some("6"));
        assert_ne!(delivered.dedupe_key, rejected.dedupe_key);
        assert_eq!(
            PROVIDER.norm(sample("accepted", &ids)).fields.event_type,
            "message.sent"
        );
        assert_eq!(
            PROVIDER.norm(sample("buffered", &ids)).fields.event_type,
            "buffered"
        );
    }

    #[test]
    fn the_time_is_the_signed_timestamp_or_message_timestamp() {
        let mut receipt = sample("delivered", &SampleIds::fresh());
        receipt["message-timestamp"] = json!("2020-01-01 12:00:00 +0000");
        assert_eq!(
            PROVIDER.norm(receipt.clone()).fields.occurred_at.as_deref(),
            Some("2020-01-01T12:00:00.000Z")
        );
        receipt["timestamp"] = json!("1582650446");
        assert_eq!(
            PROVIDER.norm(receipt.clone()).fields.occurred_at.as_deref(),
            Some("2020-02-25T17:07:26.000Z")
        );
        receipt["timestamp"] = json!("soon");
        receipt["message-timestamp"] = json!("yesterday");
        assert_eq!(PROVIDER.norm(receipt).fields.occurred_at, None);
    }

    #[test]
    fn a_stop_message_opts_its_sender_out() {
        let mut stop = sample(INBOUND, &SampleIds::fresh());
        stop["text"] = json!("STOP");
        let n = PROVIDER.norm(stop);
        assert_eq!(crate::optout::classify(&n.fields, n.consent), Some(true));
    }

    #[test]
    fn a_part_of_a_long_message_is_a_part_until_joined() {
        let mut inbound = sample(INBOUND, &SampleIds::fresh());
        for (key, value) in [
            ("concat", "true"),
            ("concat-ref", "108"),
            ("concat-total", "3"),
        ] {
            inbound[key] = json!(value);
        }
        inbound["concat-part"] = json!("2");
        let n = PROVIDER.norm(inbound.clone());
        assert_eq!(n.fields.event_type, crate::join::PART);
        assert_eq!(n.fields.provider_type.as_deref(), Some("inbound"));
        let part = n.part.expect("a part");
        assert_eq!(
            (part.reference.as_str(), part.total, part.number),
            ("108", 3, 2)
        );
        assert_eq!(crate::optout::classify(&n.fields, n.consent), None);
        // Numbers that make no sense, or no `concat`: a message of its own.
        for (key, value) in [
            ("concat-part", "4"),
            ("concat-part", "0"),
            ("concat-total", "1"),
            ("concat", "false"),
        ] {
            let mut odd = inbound.clone();
            odd[key] = json!(value);
            let n = PROVIDER.norm(odd);
            assert_eq!(
                (n.fields.event_type.as_str(), n.part),
                ("message.received", None),
                "{key}={value}"
            );
        }
    }
}
