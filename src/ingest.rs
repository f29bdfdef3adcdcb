//! The ingest pipeline: from a webhook's raw bytes to an event ready to
//! store — signature first, on the exact bytes, then parsing, then
//! normalization by the source's provider. Everything here is pure; the HTTP
//! layer reads the body and the store commits the result.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::config::Source;
use crate::event::{NewEvent, new_event_id};
use crate::providers::payload::{json_from_form, parse_object};
use crate::providers::{Format, Provider, Scheme};
use crate::signature::public_url::PublicUrl;
use crate::signature::{
    self, Params, SignatureError, basic, bird, ed25519, jwt, plivo, sinch, sns, telesign, twilio,
    vonage_sms,
};

/// Why a webhook was refused. Its HTTP answer is in `http::webhooks`.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no source is configured at this URL")]
    UnknownSource,
    /// The source takes webhooks only from its `allowed_ips`.
    #[error("this source does not take webhooks from {0}")]
    ForbiddenAddress(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A batch past [`MAX_BATCH_EVENTS`].
    #[error("the batch holds more than {limit} events; send it in smaller ones")]
    TooManyEvents { limit: usize },
    #[error("the body could not be read: {0}")]
    BadBody(String),
    /// Names the header the source's provider signs in and, when that is
    /// missing, the provider whose header the request carries instead: a
    /// source set up with the wrong provider says so.
    #[error("{cause} ({header}){}", signed_as_hint(*.signed_as))]
    InvalidSignature {
        header: &'static str,
        cause: SignatureError,
        signed_as: Option<&'static str>,
    },
    /// No signature from a provider that signs every webhook but one sent
    /// after an internal error of its own, and asks for a 5xx so that it
    /// signs the retry (Vonage).
    #[error("the webhook is not signed ({header}); send it again, signed")]
    Unsigned {
        header: &'static str,
        retry_status: u16,
    },
    #[error("the body is not a JSON object: {0}")]
    MalformedJson(String),
    /// A batch provider's body that is not an array of event objects.
    #[error("the body is not a JSON array of event objects: {0}")]
    MalformedBatch(String),
    /// An SNS message whose signing certificate could not be fetched (yet):
    /// not the sender's fault, so answered with a status it retries.
    #[error("{cause}")]
    Unverifiable {
        cause: SignatureError,
        retry_status: u16,
    },
    /// The bodies being read already hold `max_body_bytes_in_flight`.
    #[error(
        "the server is reading as many webhook bodies as it holds at once (a flood?); retry later"
    )]
    Busy { retry_status: u16 },
    /// Internal detail (`cause`) is logged, never sent.
    #[error("the event could not be stored in time; retry later")]
    StorageUnavailable { retry_status: u16, cause: String },
}

impl IngestError {
    /// Stable machine-readable code, used in answers and the request log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSource => "unknown_source",
            Self::ForbiddenAddress(_) => "forbidden_address",
            Self::PayloadTooLarge { .. } | Self::TooManyEvents { .. } => "payload_too_large",
            Self::BadBody(_) => "bad_body",
            Self::InvalidSignature { .. } => "invalid_signature",
            Self::Unsigned { .. } => "unsigned",
            Self::Unverifiable { .. } => "certificate_unavailable",
            Self::MalformedJson(_) | Self::MalformedBatch(_) => "malformed_json",
            Self::Busy { .. } => "server_busy",
            Self::StorageUnavailable { .. } => "storage_unavailable",
        }
    }
}

fn signed_as_hint(provider: Option<&str>) -> String {
    provider.map_or_else(String::new, |name| {
        format!("; it is signed as {name} signs: is the source's provider right?")
    })
}

/// How `source` refuses a webhook whose signature check failed with `cause`.
fn refusal(source: &Source, cause: SignatureError) -> IngestError {
    let provider = source.provider;
    match (provider.scheme, cause) {
        (Scheme::Jwt, SignatureError::Missing) => IngestError::Unsigned {
            header: provider.signature_header,
            retry_status: provider.retry_status,
        },
        (_, cause @ SignatureError::CertificateUnavailable) => IngestError::Unverifiable {
            cause,
            retry_status: provider.retry_status,
        },
        _ => IngestError::InvalidSignature {
            header: provider.signature_header,
            cause,
            signed_as: None,
        },
    }
}

/// Checks the signed headers the way `source`'s provider signs. A provider
/// that signs form parameters gives back the ones it checked.
fn verify<'b>(
    source: &Source,
    signed: Signed<'b>,
    body: &'b [u8],
) -> Result<Option<Params<'b>>, SignatureError> {
    match source.provider.scheme {
        Scheme::Hmac => signature::verify(signed.signature, body, &source.secrets).map(|()| None),
        Scheme::Ed25519 { .. } => {
            let now = chrono::Utc::now().timestamp();
            ed25519::verify(
                signed.signature,
                signed.timestamp,
                body,
                &source.secrets,
                now,
            )
            .map(|()| None)
        }
        Scheme::Jwt => jwt::verify(signed.signature, body, &source.secrets).map(|()| None),
        Scheme::SignedUrl => signed_url(source, signed, body),
        Scheme::SignedParams => signed_params(signed.query, body, &source.secrets),
        Scheme::Basic => basic::verify(signed.signature, &source.secrets).map(|()| None),
        Scheme::NonceHmac => sinch_hmac(signed.signature, signed, body, source).map(|()| None),
        // Sinch's HMAC headers win; without them, Basic credentials.
        Scheme::BasicOrNonceHmac => match signed.alternate {
            Some(hmac) => sinch_hmac(Some(hmac), signed, body, source),
            None => basic::verify(signed.signature, &source.secrets).map_err(|e| match e {
                SignatureError::MissingCredentials => SignatureError::MissingCredentialsOrHmac,
                other => other,
            }),
        }
        .map(|()| None),
        Scheme::UrlDigestHmac => bird_url(source, signed, body).map(|()| None),
        Scheme::DecodedKeyHmac => {
            telesign::verify(signed.signature, body, &source.secrets).map(|()| None)
        }
        Scheme::NonceUrlHmac => plivo_url(source, signed, body),
        Scheme::SnsCertificate => {
            let certificates = source.certificates.as_deref();
            sns::verify(body, &source.secrets, certificates).map(|()| None)
        }
    }
}

/// Bird: the timestamp, the URL and the body's hash.
fn bird_url(source: &Source, signed: Signed, body: &[u8]) -> Result<(), SignatureError> {
    let url = public_url(source)?;
    let headers = bird::Headers {
        signature: signed.signature,
        timestamp: signed.timestamp,
    };
    bird::verify(headers, url, signed.query, body, &source.secrets)
}

/// Sinch: `signature` over the body, the nonce and the timestamp.
fn sinch_hmac(
    signature: Option<&[u8]>,
    signed: Signed,
    body: &[u8],
    source: &Source,
) -> Result<(), SignatureError> {
    let headers = sinch::Headers {
        signature,
        nonce: signed.nonce,
        timestamp: signed.timestamp,
        algorithm: signed.algorithm,
    };
    sinch::verify(headers, body, &source.secrets)
}

/// The URL a source of a provider that signs its URL is posted to. Config
/// refuses such a source without one; should one slip through, nothing
/// verifies.
fn public_url(source: &Source) -> Result<&PublicUrl, SignatureError> {
    source.public_url.as_ref().ok_or(SignatureError::Mismatch)
}

/// Twilio: the URL and the form, or a JSON body's hash in the query (which
/// a batch, always JSON, must carry).
fn signed_url<'b>(
    source: &Source,
    signed: Signed<'b>,
    body: &'b [u8],
) -> Result<Option<Params<'b>>, SignatureError> {
    let url = public_url(source)?;
    let batch = source.provider.format == Format::Batch;
    if batch
        && signature::present(signed.signature).is_ok()
        && !twilio::names_body_hash(signed.query)
    {
        return Err(SignatureError::NoBodyHash);
    }
    let headers = twilio::Headers {
        signature: signed.signature,
        settings: signed.algorithm,
    };
    twilio::verify(headers, url, signed.query, body, &source.secrets)
}

/// Plivo: the URL and the nonce. The parameters, a POST's form or a GET's
/// query, are not signed; they are what is stored.
fn plivo_url<'b>(
    source: &Source,
    signed: Signed<'b>,
    body: &'b [u8],
) -> Result<Option<Params<'b>>, SignatureError> {
    let url = public_url(source)?;
    let headers = plivo::Headers {
        signature: signed.signature,
        main_account: signed.alternate,
        nonce: signed.nonce,
    };
    plivo::verify(headers, url, &source.secrets)?;
    let form = match (body, signed.query) {
        (b"", Some(query)) => query.as_bytes(),
        _ => body,
    };
    Ok(Some(form_urlencoded::parse(form).collect()))
}

/// Vonage's SMS API: the `sig` among the parameters. A JSON body is stored
/// as sent; a form's or query's parameters as their JSON object.
fn signed_params<'b>(
    query: Option<&'b str>,
    body: &'b [u8],
    secrets: &[signature::Secret],
) -> Result<Option<Params<'b>>, SignatureError> {
    let (params, is_json) = vonage_sms::params(query, body)?;
    vonage_sms::verify(&params, secrets)?;
    Ok((!is_json).then_some(params))
}

/// The JSON text stored for a verified body: the body itself, or the form
/// parameters verified, as a JSON object.
fn payload_text<'b>(form: Option<Params>, body: &'b [u8]) -> Result<Cow<'b, str>, IngestError> {
    if let Some(params) = form {
        return Ok(Cow::Owned(json_from_form(&params)));
    }
    // JSON is UTF-8: checked once here, for the parser and the stored text.
    std::str::from_utf8(body)
        .map(Cow::Borrowed)
        .map_err(|e| IngestError::MalformedJson(format!("the body is not UTF-8: {e}")))
}

/// Lowercase hex SHA-256 of the body: request-log fingerprint and the
/// dedupe key of last resort.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The headers a webhook's signature came in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed<'a> {
    pub signature: Option<&'a [u8]>,
    /// The Unix time an Ed25519 provider signs with the body.
    pub timestamp: Option<&'a [u8]>,
    /// The request's query string, which a provider signing its URL signs.
    pub query: Option<&'a str>,
    /// The header naming the algorithm: Twilio's signature settings (the
    /// SharedKey and algorithm a Webhook Rule signs with), Sinch's algorithm.
    pub algorithm: Option<&'a [u8]>,
    /// The nonce a provider signs with the body (Sinch) or the URL (Plivo).
    pub nonce: Option<&'a [u8]>,
    /// A second signature: under another secret (Plivo's main account's),
    /// or by another scheme (Sinch's SMS API's HMAC, beside Basic).
    pub alternate: Option<&'a [u8]>,
}

impl<'a> Signed<'a> {
    /// An HMAC provider's one header.
    pub fn header(signature: Option<&'a [u8]>) -> Self {
        Self {
            signature,
            timestamp: None,
            query: None,
            algorithm: None,
            nonce: None,
            alternate: None,
        }
    }

    /// The headers `provider` signs in, looked up with `get`.
    pub fn from_headers(provider: &Provider, get: impl Fn(&str) -> Option<&'a [u8]>) -> Self {
        Self {
            signature: get(provider.signature_header),
            timestamp: match provider.scheme {
                Scheme::Ed25519 { timestamp_header } => get(timestamp_header),
                Scheme::NonceHmac | Scheme::BasicOrNonceHmac => get(sinch::TIMESTAMP_HEADER),
                Scheme::UrlDigestHmac => get(bird::TIMESTAMP_HEADER),
                _ => None,
            },
            query: None,
            algorithm: match provider.scheme {
                Scheme::SignedUrl => get(twilio::SETTINGS_HEADER),
                Scheme::NonceHmac | Scheme::BasicOrNonceHmac => get(sinch::ALGORITHM_HEADER),
                _ => None,
            },
            nonce: match provider.scheme {
                Scheme::NonceHmac | Scheme::BasicOrNonceHmac => get(sinch::NONCE_HEADER),
                Scheme::NonceUrlHmac => get(plivo::NONCE_HEADER),
                _ => None,
            },
            alternate: match provider.scheme {
                Scheme::NonceUrlHmac => get(plivo::MAIN_ACCOUNT_HEADER),
                Scheme::BasicOrNonceHmac => get(sinch::SIGNATURE_HEADER),
                _ => None,
            },
        }
    }

    /// The headers `provider` signs in, from the pairs [`Provider::sign`] made.
    pub fn from_pairs(provider: &Provider, pairs: &'a [(&str, String)]) -> Self {
        Self::from_headers(provider, |name| {
            pairs
                .iter()
                .find(|(header, _)| *header == name)
                .map(|(_, value)| value.as_bytes())
        })
    }
}

/// Most events one batch may carry. A body holds at most `max_body_bytes`
/// (1 MiB by default): about 1,400 of Twilio's CloudEvents, but 350,000
/// empty objects, each of which would become an event of some 500 bytes
/// and a job in a store queue 8,192 deep. Twilio documents no batch size;
/// its batches are far smaller than this.
pub const MAX_BATCH_EVENTS: usize = 2_000;

/// What one webhook carried: an event, or a batch provider's events.
// `One` is every webhook but a batch: boxing it to shrink the enum would
// cost an allocation per webhook for a value that lives a moment on the
// stack before it is moved into the store's job.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Prepared {
    One(NewEvent),
    /// Never empty, in the order sent.
    Batch(Vec<NewEvent>),
}

impl Prepared {
    /// Its events, in the order sent.
    pub fn into_events(self) -> Vec<NewEvent> {
        match self {
            Self::One(event) => vec![event],
            Self::Batch(events) => events,
        }
    }
}

/// Verifies, parses and normalizes one webhook for `source`.
pub fn prepare<'a>(
    source: &Source,
    signed: Signed<'a>,
    body: &'a [u8],
    received_at: String,
) -> Result<Prepared, IngestError> {
    let form = verify(source, signed, body).map_err(|cause| refusal(source, cause))?;
    let text = payload_text(form, body)?;
    if source.provider.format == Format::Batch {
        return batch(source, &text, &received_at).map(Prepared::Batch);
    }
    event(source, text, received_at, IngestError::MalformedJson).map(Prepared::One)
}

/// Each event of a batch body, every one an object (a lone object is a
/// batch of one), stored as sent.
fn batch(source: &Source, text: &str, received_at: &str) -> Result<Vec<NewEvent>, IngestError> {
    if text.trim_start().starts_with('{') {
        // A lone object is stored as sent, space around it too, as one
        // provider's object is.
        let text = Cow::Borrowed(text);
        let malformed = IngestError::MalformedBatch;
        return event(source, text, received_at.to_string(), malformed).map(|e| vec![e]);
    }
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(malformed_batch)?;
    if items.is_empty() {
        return Err(IngestError::MalformedBatch("it holds no events".into()));
    }
    if items.len() > MAX_BATCH_EVENTS {
        let limit = MAX_BATCH_EVENTS;
        return Err(IngestError::TooManyEvents { limit });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let malformed =
                |e| IngestError::MalformedBatch(format!("event {} of {}: {e}", i + 1, items.len()));
            let text = Cow::Borrowed(item.get());
            event(source, text, received_at.to_string(), malformed)
        })
        .collect()
}

fn malformed_batch(e: serde_json::Error) -> IngestError {
    IngestError::MalformedBatch(e.to_string())
}

/// The event the JSON object `text` is, as `source`'s provider normalizes
/// it; `malformed` says why when it is not an object.
fn event(
    source: &Source,
    text: Cow<str>,
    received_at: String,
    malformed: impl Fn(String) -> IngestError,
) -> Result<NewEvent, IngestError> {
    let payload = parse_object(&text).map_err(malformed)?;
    let mut normalized = (source.provider.normalize)(&payload);
    drop(payload);
    let mut dedupe_key = normalized
        .dedupe_key
        .unwrap_or_else(|| format!("sha256:{}", body_sha256(text.as_bytes())));
    // A NUL in a parsed string can only come from the escape `\u0000` (JSON
    // has no other way to write it): one search of the body instead of one
    // per field (about 700 instructions per webhook saved). An id differing
    // only by NUL against U+FFFD would share a key; no provider's ids do.
    if memchr::memmem::find(text.as_bytes(), br"\u0000").is_some() {
        normalized.fields.replace_nul();
        crate::event::replace_nul(&mut dedupe_key);
    }
    Ok(NewEvent {
        id: new_event_id(),
        source: source.name.clone(),
        provider: source.provider.name.to_string(),
        dedupe_key,
        opt_out: crate::optout::classify(&normalized.fields, normalized.consent),
        fields: normalized.fields,
        received_at,
        payload: text.into_owned(),
        destinations: Vec::new(),
        part: normalized.part,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers;
    use crate::signature::{Secret, sign_hex};

    fn source() -> Source {
        Source {
            name: "ig".into(),
            provider: &providers::integify::PROVIDER,
            secrets: vec![Secret::new("s")],
            allowed: None,
            public_url: None,
            certificates: None,
        }
    }

    fn run(body: &[u8], sig: Option<String>) -> Result<NewEvent, IngestError> {
        let prepared = prepare(
            &source(),
            Signed::header(sig.as_deref().map(str::as_bytes)),
            body,
            "t".into(),
        )?;
        match prepared {
            Prepared::One(event) => Ok(event),
            Prepared::Batch(_) => panic!("integify sends one event"),
        }
    }

    #[test]
    fn signature_is_checked_before_parsing() {
        let err = run(b"not json", None).expect_err("refused");
        assert!(matches!(
            err,
            IngestError::InvalidSignature {
                header: "x-integify-signature",
                cause: SignatureError::Missing,
                signed_as: None,
            }
        ));
        let sig = sign_hex(&Secret::new("s"), b"not json", "sha256=");
        assert_eq!(
            run(b"not json", Some(sig)).expect_err("refused").code(),
            "malformed_json"
        );
    }

    #[test]
    fn arrays_scalars_and_non_utf8_are_malformed() {
        for body in [&b"[1]"[..], b"42", b"\"x\"", b"{\"a\":\"\xff\"}"] {
            let sig = sign_hex(&Secret::new("s"), body, "");
            assert_eq!(
                run(body, Some(sig)).expect_err("refused").code(),
                "malformed_json"
            );
        }
    }

    /// A batch provider's events are each stored as they stood in the
    /// array; a lone object as sent, the space around it too (the fuzzer
    /// found it cut off once).
    #[test]
    fn a_batch_keeps_each_event_and_a_lone_object_whole() {
        let source = Source {
            name: "bw".into(),
            provider: &providers::bandwidth::PROVIDER,
            secrets: vec![Secret::new("u:p")],
            allowed: None,
            public_url: None,
            certificates: None,
        };
        let auth = signature::basic::header_value("u:p");
        let run = |body: &[u8]| {
            let signed = Signed::header(Some(auth.as_bytes()));
            prepare(&source, signed, body, "t".into()).map(Prepared::into_events)
        };
        let lone = b" {\"type\":\"message-sending\"}\t\n";
        let events = run(lone).expect("stored");
        assert_eq!(events[0].payload.as_bytes(), lone);
        let events = run(b"[ {\"a\":1} ,{\"b\":2}]").expect("stored");
        let payloads: Vec<_> = events.iter().map(|e| e.payload.as_str()).collect();
        assert_eq!(payloads, [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(
            run(b"{\"a\":1} x").expect_err("trailing").code(),
            "malformed_json"
        );
        assert_eq!(run(b"[]").expect_err("empty").code(), "malformed_json");
    }

    #[test]
    fn payload_without_id_is_keyed_by_body_hash() {
        let body = br#"{"type":"sms.delivered"}"#;
        let sig = sign_hex(&Secret::new("s"), body, "sha256=");
        let event = run(body, Some(sig)).expect("accepted");
        assert_eq!(event.dedupe_key, format!("sha256:{}", body_sha256(body)));
        assert_eq!(event.payload.as_bytes(), body);
    }
}
