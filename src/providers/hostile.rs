//! Hostile payloads against every provider (tests only): each field of every
//! sample replaced by every kind of JSON value or removed, and the raw bytes
//! mangled at random (seeded, so a failure repeats). Nothing may panic; a
//! body that is a JSON object is stored byte for byte with a dedupe key and a
//! type and no NUL in any column, and any other body is `malformed_json` —
//! exactly when serde_json also refuses it as an object. A form provider's
//! (Twilio's) samples go as forms: every body is one, and is stored as the
//! JSON object of its parameters. A batch provider's (Twilio Event
//! Streams') go in an array: each object of a non-empty array, or a lone
//! object, is stored byte for byte, and anything else is `malformed_json`. Vonage's SMS API signs its parameters
//! themselves, so its webhooks are signed after the damage (JSON or form):
//! a body it could have signed is stored, any other is refused as unsigned.

use serde_json::{Map, Value, json};

use crate::config::Source;
use crate::event::NewEvent;
use crate::ingest::{IngestError, Signed, prepare};
use crate::providers::{ALL, Format, Provider, SampleIds};

fn source(provider: &'static Provider) -> Source {
    super::test_source(provider)
}

/// Its events, signed as the provider signs and posted as it posts (a
/// JSON body named in the query by its hash, where the URL is signed).
fn ingest_all(source: &Source, body: &[u8]) -> Result<Vec<NewEvent>, IngestError> {
    let url = source.provider.url_for(super::TEST_URL, body);
    let now = chrono::Utc::now().timestamp();
    let headers = source
        .provider
        .sign(super::TEST_SIGNING_KEY, body, now, &url)
        .expect("signed");
    let mut signed = Signed::from_pairs(source.provider, &headers);
    signed.query = url.split_once('?').map(|(_, query)| query);
    let at = "2026-12-02T00:00:00.000Z".into();
    prepare(source, signed, body, at).map(|prepared| prepared.into_events())
}

/// The one event of a provider that sends one per webhook.
fn ingest(source: &Source, body: &[u8]) -> Result<NewEvent, IngestError> {
    ingest_all(source, body).map(|mut events| events.remove(0))
}

/// What is stored of `body`: the object, a form's parameters as a JSON
/// object, or a batch's objects each.
fn expected_payloads(provider: &Provider, body: &[u8]) -> Vec<String> {
    let text = || String::from_utf8(body.to_vec()).expect("a JSON object is UTF-8");
    match provider.format {
        Format::Form => vec![super::payload::form_body_json(body)],
        Format::Object => vec![text()],
        Format::Batch if serde_json::from_slice::<Map<String, Value>>(body).is_ok() => {
            vec![text()]
        }
        Format::Batch => serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body)
            .expect("an array")
            .iter()
            .map(|item| item.get().to_string())
            .collect(),
    }
}

/// Whether `provider` stores `body`: any form, a JSON object, and for a
/// batch provider a non-empty array of them too.
fn takes(provider: &Provider, body: &[u8]) -> bool {
    let object = |b: &[u8]| serde_json::from_slice::<Map<String, Value>>(b).is_ok();
    match provider.format {
        Format::Form => true,
        Format::Object => object(body),
        Format::Batch => {
            object(body)
                || serde_json::from_slice::<Vec<Map<String, Value>>>(body)
                    .is_ok_and(|items| !items.is_empty())
        }
    }
}

fn samples(provider: &Provider) -> Vec<Value> {
    let ids = SampleIds {
        event_id: "evt_01HOSTILE".into(),
        message_id: "msg_01HOSTILE".into(),
        number: 2207654321,
        now: "2026-12-02T00:00:00.000Z".into(),
    };
    let samples: Vec<Value> = provider
        .event_types
        .iter()
        .map(|t| (provider.sample)(t, &ids))
        .collect();
    assert!(!samples.is_empty(), "{} has no samples", provider.name);
    samples
}

/// Every kind of value a field might hold instead of the expected one.
fn hostile_values() -> Vec<Value> {
    let mut deep = json!("bottom");
    for _ in 0..100 {
        deep = json!({ "d": deep });
    }
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e308),
        json!(-1.5),
        json!(""),
        json!(" "),
        json!("STOP"),
        json!("\u{0}\u{1f}\"\\\u{2028}é😀"),
        json!("9999-12-31T23:59:59Z"),
        json!("-100000000000000"),
        json!("x".repeat(10_000)),
        json!([]),
        json!([1, "a", null, {}]),
        json!({}),
        json!({ "id": { "id": [] } }),
        deep,
    ]
}

/// The path (object keys and array indices) of every value in `v`.
fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    let children: Vec<(PathStep, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (PathStep::Key(k.clone()), c))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (PathStep::Index(i), c))
            .collect(),
        _ => return,
    };
    for (step, child) in children {
        prefix.push(step);
        out.push(prefix.clone());
        paths(child, prefix, out);
        prefix.pop();
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_mut<'v>(v: &'v mut Value, path: &[PathStep]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// Checks what must hold of any body that is a JSON object (a batch's
/// each object).
fn assert_stored(provider: &Provider, body: &[u8], result: Result<Vec<NewEvent>, IngestError>) {
    let events = result.unwrap_or_else(|e| {
        panic!(
            "{}: refused a JSON object ({}): {}",
            provider.name,
            e,
            String::from_utf8_lossy(body)
        )
    });
    let expected = expected_payloads(provider, body);
    assert_eq!(
        events.len(),
        expected.len(),
        "{}: one event each",
        provider.name
    );
    for (event, expected) in events.iter().zip(expected) {
        assert_event(provider, event, &expected);
    }
}

fn assert_event(provider: &Provider, event: &NewEvent, expected: &str) {
    assert_eq!(
        event.payload, expected,
        "{}: payload not kept whole",
        provider.name
    );
    assert!(
        !event.dedupe_key.is_empty(),
        "{}: empty dedupe key",
        provider.name
    );
    assert!(
        !event.fields.event_type.is_empty(),
        "{}: empty type",
        provider.name
    );
    let fields = serde_json::to_string(&event.fields).expect("serializes");
    assert!(
        !fields.contains("\\u0000") && !event.dedupe_key.contains('\0'),
        "{}: a NUL reached a stored column (PostgreSQL's text refuses it): {fields}",
        provider.name
    );
    if let Some(t) = &event.fields.occurred_at {
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{}: occurred_at {t:?} is not RFC 3339",
            provider.name
        );
    }
}

/// The providers that sign the body or the URL, not parameters in the body.
fn signing_apart() -> impl Iterator<Item = &'static &'static Provider> {
    ALL.iter().filter(|p| !p.signs_in_body())
}

#[test]
fn every_field_replaced_by_every_kind_of_value_or_removed() {
    let values = hostile_values();
    for provider in signing_apart() {
        let source = source(provider);
        for sample in samples(provider) {
            let mut all = Vec::new();
            paths(&sample, &mut Vec::new(), &mut all);
            for path in &all {
                for value in &values {
                    let mut v = sample.clone();
                    *at_mut(&mut v, path) = value.clone();
                    let body = provider.encode(&v);
                    assert_stored(provider, &body, ingest_all(&source, &body));
                }
                if let Some((PathStep::Key(key), parent)) = path.split_last() {
                    let mut v = sample.clone();
                    if let Value::Object(m) = at_mut(&mut v, parent) {
                        m.remove(key);
                    }
                    let body = provider.encode(&v);
                    assert_stored(provider, &body, ingest_all(&source, &body));
                }
            }
        }
    }
}

/// xorshift64*: a fixed sequence, so a failing body can be found again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to four random edits: a byte changed, a range cut or doubled, or one
/// of JSON's own characters (or a byte that is not UTF-8) put in.
fn mangle(body: &mut Vec<u8>, rng: &mut Rng) {
    const SPECIAL: &[u8] = b"{}[]\",:\\0123456789-+.eEtfnul \t\n\xff\xc3%&=";
    for _ in 0..1 + rng.below(4) {
        if body.is_empty() {
            body.push(b'{');
        }
        let i = rng.below(body.len());
        match rng.below(5) {
            0 => body[i] = rng.next() as u8,
            1 => body[i] = SPECIAL[rng.below(SPECIAL.len())],
            2 => body.insert(i, SPECIAL[rng.below(SPECIAL.len())]),
            3 => {
                let end = (i + 1 + rng.below(16)).min(body.len());
                body.drain(i..end);
            }
            _ => {
                let end = (i + 1 + rng.below(16)).min(body.len());
                let copy = body[i..end].to_vec();
                body.splice(i..i, copy);
            }
        }
    }
}

#[test]
fn mangled_bytes_are_stored_or_refused_as_malformed_never_a_panic() {
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let (mut stored, mut refused) = (0, 0);
    for provider in signing_apart() {
        let source = source(provider);
        for sample in samples(provider) {
            let original = provider.encode(&sample);
            for _ in 0..600 {
                let mut body = original.clone();
                mangle(&mut body, &mut rng);
                let is_object = takes(provider, &body);
                let result = ingest_all(&source, &body);
                if is_object {
                    assert_stored(provider, &body, result);
                    stored += 1;
                } else {
                    let e = result.expect_err("serde_json refused it as an object");
                    assert_eq!(e.code(), "malformed_json", "{}: {e}", provider.name);
                    refused += 1;
                }
            }
        }
    }
    // Both outcomes were exercised, not only one.
    assert!(
        stored > 1000 && refused > 1000,
        "stored {stored}, refused {refused}"
    );
}

/// Nesting past serde_json's limit of 128 levels is refused, not followed
/// down the stack: a body of 1 MiB could otherwise nest 500,000 deep.
#[test]
fn nesting_beyond_the_parser_limit_is_malformed_not_a_stack_overflow() {
    for provider in signing_apart().filter(|p| p.format != Format::Form) {
        let source = source(provider);
        for open in ["[", "{\"a\":"] {
            let body = format!("{{\"id\":\"x\",\"d\":{}", open.repeat(200_000));
            let e = ingest(&source, body.as_bytes()).expect_err("refused");
            assert_eq!(e.code(), "malformed_json", "{}", provider.name);
        }
    }
}

/// Vonage's SMS API: every field of every sample replaced by every plain
/// value (Vonage sends only those) or removed, signed, as JSON and as a
/// form: stored, as sent. A nested value cannot be signed: refused.
#[test]
fn vonage_sms_fields_replaced_by_every_plain_value_are_signed_and_stored() {
    let provider = &super::vonage_sms::PROVIDER;
    let source = source(provider);
    let sign = |body: &[u8]| {
        provider
            .sign_body(super::TEST_SIGNING_KEY, body, 1_700_000_000)
            .expect("signed")
    };
    for sample in samples(provider) {
        for (key, _) in sample.as_object().expect("an object") {
            for value in hostile_values() {
                let mut v = sample.clone();
                v[key.as_str()] = value.clone();
                let body = provider.encode(&v);
                if value.is_array() || value.is_object() {
                    let e = provider.sign_body(super::TEST_SIGNING_KEY, &body, 0);
                    assert!(e.is_err(), "{key}: {value}");
                    let refused = ingest(&source, &body).expect_err("unsigned");
                    assert_eq!(refused.code(), "invalid_signature");
                    continue;
                }
                let json = sign(&body);
                assert_stored(provider, &json, ingest_all(&source, &json));
                let form = sign(&form_of(&v));
                let event = ingest(&source, &form).expect("a signed form is stored");
                assert_eq!(
                    event.payload,
                    super::payload::form_body_json(&form),
                    "{key}: {value}"
                );
            }
            let mut v = sample.clone();
            v.as_object_mut().expect("object").remove(key);
            let json = sign(&provider.encode(&v));
            assert_stored(provider, &json, ingest_all(&source, &json));
        }
    }
}

/// Vonage's SMS API: signed webhooks damaged in transit are refused as not
/// signed, never a panic; one is stored only where the damage left every
/// parameter as signed.
#[test]
fn vonage_sms_bodies_damaged_after_signing_are_refused() {
    let provider = &super::vonage_sms::PROVIDER;
    let source = source(provider);
    let mut rng = Rng(0x0b0e_5eed_0b0e_5eed);
    let mut refused = 0;
    for sample in samples(provider) {
        for body in [provider.encode(&sample), form_of(&sample)] {
            let signed = provider
                .sign_body(super::TEST_SIGNING_KEY, &body, 1_700_000_000)
                .expect("signed");
            // Damage no parameter feels may be stored: space between JSON
            // tokens, an empty `&&` in a form, `%41` for `A`; or a
            // parameter with no value put in, which the check that leaves
            // blank ones out (as Vonage's Java library signs) lets
            // through: it says nothing (normalization reads an empty value
            // as none).
            refused += damaged_copies(&source, &signed, 300, &mut rng, signed_params);
        }
    }
    assert!(refused > 1000, "refused {refused}");
}

/// Ingests `times` randomly damaged copies of `signed` (which is stored):
/// each is refused as unsigned, or stored only when `read` reads of it what
/// it read of `signed` (the signed parameters or fields). How many were
/// refused.
fn damaged_copies<T: PartialEq + std::fmt::Debug>(
    source: &Source,
    signed: &[u8],
    times: usize,
    rng: &mut Rng,
    read: impl Fn(&[u8]) -> Option<T>,
) -> usize {
    assert!(ingest(source, signed).is_ok(), "the undamaged one");
    let sent = read(signed).expect("readable");
    let mut refused = 0;
    for _ in 0..times {
        let mut damaged = signed.to_vec();
        mangle(&mut damaged, rng);
        match ingest(source, &damaged) {
            Err(e) => {
                assert_eq!(e.code(), "invalid_signature", "{e}");
                refused += 1;
            }
            Ok(_) => assert_eq!(
                read(&damaged).as_ref(),
                Some(&sent),
                "stored with other parameters or fields than were signed: {}",
                String::from_utf8_lossy(&damaged)
            ),
        }
    }
    refused
}

/// Amazon SNS: every field of every carried message (JSON in the
/// envelope's `Message` string) replaced by every kind of value or removed,
/// and every field of the envelope replaced by every kind of value, signed
/// after the damage. A message SNS could have signed is stored as sent,
/// with a key and a type, unless its topic or certificate URL is not the
/// source's (refused); one it could not sign is refused as unsigned. Never
/// a panic.
#[test]
fn aws_sns_messages_with_hostile_fields_are_signed_and_stored_or_refused() {
    let provider = &super::aws_sns::PROVIDER;
    let source = source(provider);
    let key = super::test_key(provider);
    let sign_and_take =
        |v: &Value, admitted: bool| match provider.sign_body(key, &provider.encode(v), 0) {
            Ok(body) if admitted => assert_stored(provider, &body, ingest_all(&source, &body)),
            Ok(body) => {
                let refused = ingest(&source, &body).expect_err("another topic or certificate");
                assert_eq!(refused.code(), "invalid_signature", "{v}");
            }
            Err(_) => {
                let unsigned = provider.encode(v);
                let refused = ingest(&source, &unsigned).expect_err("unsigned");
                assert_eq!(refused.code(), "invalid_signature", "{v}");
            }
        };
    for sample in samples(provider) {
        let carried = sample["Message"]
            .as_str()
            .map(serde_json::from_str::<Value>);
        if let Some(Ok(message)) = carried {
            let mut all = Vec::new();
            paths(&message, &mut Vec::new(), &mut all);
            for path in &all {
                for value in hostile_values() {
                    let mut m = message.clone();
                    *at_mut(&mut m, path) = value;
                    let mut v = sample.clone();
                    v["Message"] = json!(m.to_string());
                    sign_and_take(&v, true);
                }
            }
        }
        for (field, _) in sample.as_object().expect("an object") {
            for value in hostile_values() {
                let mut v = sample.clone();
                v[field.as_str()] = value;
                let admitted = !matches!(field.as_str(), "TopicArn" | "SigningCertURL");
                sign_and_take(&v, admitted);
            }
        }
    }
}

/// Amazon SNS: signed messages damaged in transit are refused, never a
/// panic; one is stored only where the damage left every signed field as
/// signed (space between JSON tokens, an unsigned URL changed).
#[test]
fn aws_sns_messages_damaged_after_signing_are_refused() {
    let provider = &super::aws_sns::PROVIDER;
    let source = source(provider);
    let key = super::test_key(provider);
    let mut rng = Rng(0x5e55_ba5e_5e55_ba5e);
    let mut refused = 0;
    for sample in samples(provider) {
        let signed = provider
            .sign_body(key, &provider.encode(&sample), 0)
            .expect("signed");
        let fields = |b: &[u8]| {
            let envelope = crate::signature::sns::Envelope::parse(b).ok()?;
            let signed = envelope.signed_text().ok()?;
            Some((signed, envelope.signature.map(|s| s.to_string())))
        };
        refused += damaged_copies(&source, &signed, 100, &mut rng, fields);
    }
    assert!(refused > 300, "refused {refused}");
}

/// A body's parameters with a value, sorted, as `signature::vonage_sms`
/// reads them.
fn signed_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let (params, _) = crate::signature::vonage_sms::params(None, body).ok()?;
    let mut params: Vec<(String, String)> = params
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    params.sort();
    Some(params)
}

/// A sample's values as a form, as the dashboard's `POST` sends them.
fn form_of(sample: &Value) -> Vec<u8> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in sample.as_object().expect("an object") {
        match value {
            Value::String(text) => form.append_pair(name, text),
            Value::Null => form.append_pair(name, ""),
            other => form.append_pair(name, &other.to_string()),
        };
    }
    form.finish().into_bytes()
}
