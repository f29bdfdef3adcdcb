//! Any body, correctly signed, through `ingest::prepare` for every provider:
//! nothing may panic; a body that is a JSON object is stored byte for byte
//! with a dedupe key and a type, and any other is `malformed_json`, exactly
//! when serde_json refuses it as an object (for Twilio, whose bodies are
//! forms, any body is stored as a JSON object). Vonage's SMS API signs
//! inside the body: a body it could sign is signed, then stored (a form as
//! its parameters' JSON object) or refused as unsigned (a parameter sent
//! twice); one it could not is refused as unsigned. The first byte picks
//! the provider.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smshook::config::Source;
use smshook::ingest;
use smshook::providers::ALL;
use smshook::signature::Secret;
use smshook::signature::twilio::PublicUrl;

/// Where a source of a provider that signs its URL (Twilio) is registered.
const URL: &str = "https://hooks.smshook.test/webhooks/fuzz";
/// Signs for every provider: an HMAC secret, and an Ed25519 seed in base64.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let provider = ALL[usize::from(pick) % ALL.len()];
    let source = Source {
        name: "fuzz".into(),
        provider,
        secrets: vec![Secret::new(provider.verifier_for(KEY).expect("key"))],
        allowed: None,
        public_url: provider
            .signs_url()
            .then(|| PublicUrl::parse(URL).expect("a URL")),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = "2026-12-03T00:00:00.000Z".to_string();
    let in_params = provider.signs_in_body();
    let Ok(body) = provider.sign_body(KEY, body, now) else {
        let e = ingest::prepare(&source, ingest::Signed::default(), body, at);
        assert_eq!(e.expect_err("unsigned").code(), "invalid_signature");
        return;
    };
    let body = &body[..];
    let headers = provider.sign(KEY, body, now, URL).expect("signed");
    let signed = ingest::Signed::from_pairs(provider, &headers);
    let result = ingest::prepare(&source, signed, body, at);
    let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body);
    match result {
        // Any bytes are a form: stored as the JSON object of its parameters.
        Ok(event) if provider.signs_url() || (in_params && object.is_err()) => {
            let stored = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&event.payload);
            assert!(stored.is_ok(), "a form stored as something else");
            assert!(!event.dedupe_key.contains('\0'));
        }
        Ok(event) => {
            assert!(object.is_ok(), "stored what serde_json refuses");
            assert_eq!(event.payload.as_bytes(), body);
            assert!(!event.dedupe_key.is_empty());
            assert!(!event.fields.event_type.is_empty());
            assert!(!event.dedupe_key.contains('\0'));
        }
        Err(e) if in_params => assert_eq!(e.code(), "invalid_signature", "{e}"),
        Err(e) => {
            assert_eq!(e.code(), "malformed_json", "{e}");
            assert!(object.is_err(), "refused what serde_json takes: {e}");
        }
    }
});
