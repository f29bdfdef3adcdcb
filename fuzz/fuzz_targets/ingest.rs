//! Any body, correctly signed, through `ingest::prepare` for every provider:
//! nothing may panic; a body that is a JSON object is stored byte for byte
//! with a dedupe key and a type, and any other is `malformed_json`, exactly
//! when serde_json refuses it as an object (for Twilio and Plivo, whose
//! bodies are forms, any body is stored as a JSON object). Vonage's SMS API signs
//! inside the body: a body it could sign is signed, then stored (a form as
//! its parameters' JSON object) or refused as unsigned (a parameter sent
//! twice); one it could not is refused as unsigned. A batch provider's
//! (Twilio Event Streams') body is stored as one event per object of a
//! non-empty array (or a lone object), each byte for byte, and refused
//! otherwise. Amazon SNS signs inside the body too, with an RSA key the
//! source pins: a body it could sign is signed, then stored or refused as
//! not from the source's topic or AWS's certificate URL; one it could not is
//! refused. The first byte picks the provider.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use smshook::config::Source;
use smshook::event::NewEvent;
use smshook::ingest;
use smshook::providers::{ALL, Format, Scheme};
use smshook::signature::Secret;
use smshook::signature::public_url::PublicUrl;
use smshook::signature::sns;

/// Where a source of a provider that signs its URL (Twilio, Bird) is registered.
const URL: &str = "https://hooks.smshook.test/webhooks/fuzz";
/// Signs for every provider: an HMAC secret, and an Ed25519 seed in base64.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let provider = ALL[usize::from(pick) % ALL.len()];
    let sns = provider.scheme == Scheme::SnsCertificate;
    let key = if sns { rsa_key() } else { KEY };
    let verifier = provider.verifier_for(key).expect("key");
    let source = Source {
        name: "fuzz".into(),
        provider,
        secrets: vec![Secret::new(if sns {
            sns::SAMPLE_TOPIC_ARN
        } else {
            &verifier
        })],
        allowed: None,
        public_url: provider
            .signs_url()
            .then(|| PublicUrl::parse(URL).expect("a URL")),
        certificates: sns
            .then(|| Arc::new(sns::Certificates::from_pems(&[&verifier]).expect("a key"))),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = "2026-12-03T00:00:00.000Z".to_string();
    let in_params = provider.signs_in_body();
    let Ok(body) = provider.sign_body(key, body, now) else {
        let e = ingest::prepare(&source, ingest::Signed::default(), body, at);
        assert_eq!(e.expect_err("unsigned").code(), "invalid_signature");
        return;
    };
    let body = &body[..];
    let url = provider.url_for(URL, body);
    let headers = provider.sign(key, body, now, &url).expect("signed");
    let mut signed = ingest::Signed::from_pairs(provider, &headers);
    signed.query = url.split_once('?').map(|(_, query)| query);
    let result = ingest::prepare(&source, signed, body, at).map(ingest::Prepared::into_events);
    let object = serde_json::from_slice::<Map<String, Value>>(body);
    match result {
        // Any bytes are a form: stored as the JSON object of its parameters.
        Ok(events) if provider.format == Format::Form || (in_params && object.is_err()) => {
            let stored = serde_json::from_str::<Map<String, Value>>(&events[0].payload);
            assert!(stored.is_ok(), "a form stored as something else");
            assert!(!events[0].dedupe_key.contains('\0'));
        }
        Ok(events) => {
            let expected = match (provider.format, &object) {
                (Format::Batch, Err(_)) => serde_json::from_slice::<Vec<&RawValue>>(body)
                    .expect("stored what serde_json refuses as an array")
                    .iter()
                    .map(|item| item.get().as_bytes())
                    .collect(),
                _ => vec![body],
            };
            assert_eq!(events.len(), expected.len());
            for (event, expected) in events.iter().zip(expected) {
                stored_whole(event, expected);
            }
        }
        Err(e) if in_params => assert_eq!(e.code(), "invalid_signature", "{e}"),
        Err(e) => {
            assert_eq!(e.code(), "malformed_json", "{e}");
            assert!(object.is_err(), "refused what serde_json takes: {e}");
            if provider.format == Format::Batch {
                let items = serde_json::from_slice::<Vec<Map<String, Value>>>(body);
                assert!(
                    items.is_err() || items.is_ok_and(|i| i.is_empty()),
                    "refused a batch: {e}"
                );
            }
        }
    }
});

/// The RSA key (PEM) the SNS source pins, made once per run.
fn rsa_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| sns::new_private_key().expect("an RSA key"))
}

/// An event stored from exactly `text`, a JSON object.
fn stored_whole(event: &NewEvent, text: &[u8]) {
    assert!(
        serde_json::from_slice::<Map<String, Value>>(text).is_ok(),
        "stored what serde_json refuses as an object"
    );
    assert_eq!(event.payload.as_bytes(), text);
    assert!(!event.dedupe_key.is_empty());
    assert!(!event.fields.event_type.is_empty());
    assert!(!event.dedupe_key.contains('\0'));
}
