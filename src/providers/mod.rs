//! The provider table: how each SMS provider signs, names and shapes its
//! webhooks. A provider is data plus two small functions; adding one means a
//! new file here and one line in [`ALL`].

use std::time::Duration;

use serde_json::Value;

use chrono::{DateTime, Datelike, Utc};

use crate::event::{Normalized, format_time};
use crate::signature::Secret;
use crate::signature::ed25519::{self, KeyPair};
use payload::{Node, Object};

pub mod aws_sns;
pub mod bandwidth;
pub mod bird;
pub mod integify;
pub mod msgine;
pub mod notifly;
pub mod payload;
pub mod plivo;
pub mod private_number;
pub mod sinch;
pub mod sinch_sms;
pub mod telesign;
pub mod telnyx;
pub mod textus;
pub mod twilio;
pub mod twilio_events;
pub mod vonage;
pub mod vonage_sms;

#[cfg(test)]
mod hostile;

/// Every provider smshook understands.
pub static ALL: &[&Provider] = &[
    &integify::PROVIDER,
    &msgine::PROVIDER,
    &textus::PROVIDER,
    &private_number::PROVIDER,
    &notifly::PROVIDER,
    &telnyx::PROVIDER,
    &vonage::PROVIDER,
    &twilio::PROVIDER,
    &vonage_sms::PROVIDER,
    &twilio_events::PROVIDER,
    &bandwidth::PROVIDER,
    &sinch::PROVIDER,
    &sinch_sms::PROVIDER,
    &bird::PROVIDER,
    &telesign::PROVIDER,
    &plivo::PROVIDER,
    &aws_sns::PROVIDER,
];

/// How one provider's webhooks look.
#[derive(Debug)]
pub struct Provider {
    pub name: &'static str,
    /// Header carrying the signature (matched case-insensitively).
    pub signature_header: &'static str,
    /// What the provider puts before the hex digest (`sha256=` or nothing).
    pub signature_prefix: &'static str,
    /// HMAC of the body, Ed25519 with a timestamp (Telnyx), a JWT (Vonage),
    /// HMAC-SHA1 of the URL and form parameters (Twilio), a `sig`
    /// parameter among the others (Vonage's SMS API), Basic credentials
    /// (Bandwidth), HMAC with a nonce and a timestamp (Sinch), HMAC of a
    /// timestamp, the URL and the body's hash (Bird), HMAC under a base64
    /// API key (Telesign), HMAC of the URL and a nonce (Plivo), or an RSA
    /// signature by AWS's certificate inside the body (Amazon SNS).
    pub scheme: Scheme,
    /// Provider event types `smshook send` can make a sample of.
    pub event_types: &'static [&'static str],
    /// Status to answer when the event cannot be stored in time: one the
    /// provider treats as transient and retries.
    pub retry_status: u16,
    /// How long the provider waits for an answer, where its documentation
    /// says: a source's `ack_deadline` stays below it ([`Provider::ack_deadline`]).
    pub answer_timeout: Option<std::time::Duration>,
    /// The provider's documentation asks not to filter its webhooks by
    /// address (they change): `allowed_ips` on its source is warned about.
    pub addresses_change: bool,
    /// What a stored webhook is answered with.
    pub ack: Ack,
    /// What its bodies are: one event, or a batch of them.
    pub format: Format,
    /// One event's fields (a batch's each event's).
    pub normalize: fn(&Object) -> Normalized,
    pub sample: fn(&str, &SampleIds) -> Value,
}

/// How a provider signs its webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HMAC-SHA256 of the raw body under a shared secret, as hex after
    /// `signature_prefix`.
    Hmac,
    /// Ed25519 over `{timestamp}|{raw body}` under the provider's private
    /// key, as base64; the Unix time in `timestamp_header`
    /// (`signature::ed25519`). A source keeps the public key.
    Ed25519 { timestamp_header: &'static str },
    /// An HS256 JWT in `signature_header` (`Authorization: Bearer …`) under
    /// a shared secret, whose `payload_hash` claim is the body's SHA-256
    /// (`signature::jwt`). A webhook without one is answered `retry_status`:
    /// Vonage sends one unsigned only after an internal error, and asks for
    /// a 5xx so it signs the retry.
    Jwt,
    /// Base64 HMAC of the URL the webhook was posted to, then its form
    /// parameters sorted (`signature::twilio`): SHA-1 under a shared secret,
    /// or the algorithm a settings header names. The body is form-encoded;
    /// the source names its public URL.
    SignedUrl,
    /// A `sig` parameter among the webhook's others (query, form or JSON),
    /// over the rest sorted, by the method the account chose
    /// (`signature::vonage_sms`). `signature_header` names the parameter.
    SignedParams,
    /// HTTP Basic credentials (`user:password`) in `signature_header`
    /// (`Authorization`), the same on every webhook (`signature::basic`).
    Basic,
    /// Base64 HMAC under a shared secret of the body, a nonce and a
    /// timestamp, each in a header of its own, by the algorithm a fourth
    /// names (`signature::sinch`).
    NonceHmac,
    /// HTTP Basic credentials in `signature_header`, or, from a sender that
    /// signs (Sinch's SMS API, once Sinch enables HMAC for the service
    /// plan), the [`Scheme::NonceHmac`] headers, which win when present. A
    /// source's secrets are credentials (`user:password`) or HMAC secrets.
    BasicOrNonceHmac,
    /// Base64 HMAC-SHA256 under a shared secret of a timestamp header, the
    /// URL the webhook was posted to and the body's SHA-256, joined by
    /// newlines (`signature::bird`). The source names its public URL.
    UrlDigestHmac,
    /// Base64 HMAC-SHA256 of the body under the base64-decoded API key,
    /// after `TSA <Customer ID>:` (`signature::telesign`).
    DecodedKeyHmac,
    /// Base64 HMAC-SHA256 under a shared secret of the URL the webhook was
    /// posted to (without its query) and a nonce header; the body is not
    /// signed (`signature::plivo`). The body is form-encoded; the source
    /// names its public URL.
    NonceUrlHmac,
    /// An Amazon SNS message: a JSON envelope carrying a base64 RSA
    /// signature of its fields by the key of the certificate it names on
    /// AWS (`signature::sns`). A source's secrets are the topic ARNs it
    /// takes; its keys are fetched from AWS, or pinned.
    SnsCertificate,
}

impl Scheme {
    /// What a provider signing so signs, in a few words (`smshook providers`).
    pub fn signs(self) -> &'static str {
        match self {
            Self::Hmac => "HMAC-SHA256 of the body",
            Self::Ed25519 { .. } => "Ed25519 over a timestamp and the body",
            Self::Jwt => "an HS256 JWT carrying the body's SHA-256",
            Self::SignedUrl => "HMAC of its URL and the form parameters",
            Self::SignedParams => "a signature among its parameters, over the others",
            Self::Basic => "nothing: Basic credentials, the same on every webhook",
            Self::NonceHmac => "HMAC of the body, a nonce and a timestamp",
            Self::BasicOrNonceHmac => {
                "HMAC of the body, a nonce and a timestamp, or nothing (Basic credentials)"
            }
            Self::UrlDigestHmac => "HMAC of a timestamp, its URL and the body's SHA-256",
            Self::DecodedKeyHmac => "HMAC-SHA256 of the body under a base64 API key",
            Self::NonceUrlHmac => "HMAC of its URL and a nonce, not the body",
            Self::SnsCertificate => "RSA signature of the message, by AWS's certificate",
        }
    }

    /// What a source of such a provider takes as a secret.
    pub fn secret(self) -> &'static str {
        match self {
            Self::Hmac => "the webhook secret",
            Self::Ed25519 { .. } => "the account's public key, base64",
            Self::Jwt | Self::SignedParams => "the account's signature secret",
            Self::SignedUrl => "the Auth Token, or a SharedKey's secret",
            Self::Basic => "the callback credentials, user:password",
            Self::NonceHmac => "the webhook's secret",
            Self::BasicOrNonceHmac => "the HMAC secret, or the credentials as user:password",
            Self::UrlDigestHmac => "the webhook subscription's signing key",
            Self::DecodedKeyHmac => "the API key, base64",
            Self::NonceUrlHmac => "the Auth Token (the account's, or the main account's)",
            Self::SnsCertificate => "the SNS topic ARN it takes",
        }
    }
}

/// What a provider's webhook bodies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One event, a JSON object.
    Object,
    /// One event, a form (Twilio; a JSON object named by `bodySHA256` is
    /// taken too).
    Form,
    /// A JSON array of events (Twilio's Event Streams: CloudEvents), each
    /// an object stored as an event of its own, deduplicated on its own;
    /// a lone object is a batch of one.
    Batch,
}

/// The body of a `200` for a stored webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `{"ok":true,"event_id":…,"duplicate":…}`.
    Json,
    /// An empty `<Response/>` XML document (Twilio reads the answer to an
    /// inbound message as TwiML, Plivo as Plivo XML: instructions, here
    /// none); the event id and whether it was a duplicate in the
    /// `Smshook-Event-Id` and `Smshook-Duplicate` headers.
    EmptyXml,
}

/// How much sooner than a provider's documented answer timeout a source
/// answers when storage is slow, so the provider sees a status to retry on
/// rather than its own timeout (network and queueing take the rest).
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

impl Provider {
    /// The environment variable whose value enables a source for this
    /// provider when no config file is given, e.g. `SMSHOOK_PRIVATE_NUMBER_SECRET`,
    /// or `SMSHOOK_TELNYX_PUBLIC_KEY` where the source verifies with a public key.
    pub fn secret_env_var(&self) -> String {
        let what = if self.verifies_with_public_key() {
            "PUBLIC_KEY"
        } else if self.scheme == Scheme::SnsCertificate {
            "TOPIC_ARN"
        } else {
            "SECRET"
        };
        format!("SMSHOOK_{}_{what}", self.env_name())
    }

    /// Whether its signature covers the URL, so a source names the URL the
    /// provider posts to (`public_url`).
    pub fn signs_url(&self) -> bool {
        matches!(
            self.scheme,
            Scheme::SignedUrl | Scheme::UrlDigestHmac | Scheme::NonceUrlHmac
        )
    }

    /// Whether a source checks its webhooks with the provider's public key
    /// (Ed25519) rather than a secret shared with it.
    pub fn verifies_with_public_key(&self) -> bool {
        matches!(self.scheme, Scheme::Ed25519 { .. })
    }

    /// Whether its signature is inside the webhook rather than in a header
    /// ([`Provider::sign_body`]): a parameter (Vonage's SMS API), or a field
    /// of the message (Amazon SNS).
    pub fn signs_in_body(&self) -> bool {
        matches!(self.scheme, Scheme::SignedParams | Scheme::SnsCertificate)
    }

    /// Whether its webhooks may come as `GET`, their parameters in the
    /// query: those of a provider that signs its parameters (Vonage's SMS
    /// API), or that signs none of them (Plivo: its URL and a nonce).
    pub fn takes_get(&self) -> bool {
        matches!(self.scheme, Scheme::SignedParams | Scheme::NonceUrlHmac)
    }

    /// Its source's `public_url` without a config file, e.g.
    /// `SMSHOOK_TWILIO_PUBLIC_URL`.
    pub fn public_url_env_var(&self) -> String {
        format!("SMSHOOK_{}_PUBLIC_URL", self.env_name())
    }

    /// The media type its webhooks' bodies are sent as.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            Format::Form => "application/x-www-form-urlencoded",
            Format::Object | Format::Batch => "application/json",
        }
    }

    /// `url` as this provider posts `body` to it: for one that signs its
    /// URL and parameters (Twilio) and sends JSON, with the body's SHA-256 as `bodySHA256` in the
    /// query (`smshook send`, tests).
    pub fn url_for(&self, url: &str, body: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        if self.scheme != Scheme::SignedUrl || self.format == Format::Form {
            return url.to_string();
        }
        let joiner = if url.contains('?') { '&' } else { '?' };
        let hash = hex::encode(Sha256::digest(body));
        format!("{url}{joiner}bodySHA256={hash}")
    }

    /// A sample payload as this provider sends it: JSON (in an array for a
    /// batch), or for a form provider each field as a parameter
    /// (`smshook send`, tests).
    pub fn encode(&self, sample: &Value) -> Vec<u8> {
        match self.format {
            Format::Object => return sample.to_string().into_bytes(),
            Format::Batch => return Value::Array(vec![sample.clone()]).to_string().into_bytes(),
            Format::Form => {}
        }
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in sample.as_object().into_iter().flatten() {
            match value {
                Value::String(text) => form.append_pair(name, text),
                other => form.append_pair(name, &other.to_string()),
            };
        }
        form.finish().into_bytes()
    }

    /// What a source of this provider verifies with, for messages.
    pub fn secret_noun(&self) -> &'static str {
        if self.verifies_with_public_key() {
            "public key"
        } else if self.scheme == Scheme::SnsCertificate {
            "topic ARN"
        } else {
            "secret"
        }
    }

    /// The headers this provider would send `body` with, posted to `url`,
    /// signed with `secret` at Unix time `now`: the shared secret, or for an
    /// Ed25519 provider the private key (`smshook send`, `sign`, tests).
    pub fn sign(
        &self,
        secret: &str,
        body: &[u8],
        now: i64,
        url: &str,
    ) -> Result<Vec<(&'static str, String)>, String> {
        Ok(match self.scheme {
            Scheme::Hmac => {
                let tag =
                    crate::signature::sign_hex(&Secret::new(secret), body, self.signature_prefix);
                vec![(self.signature_header, tag)]
            }
            Scheme::Ed25519 { timestamp_header } => {
                let key = KeyPair::from_seed(secret)?;
                vec![
                    (self.signature_header, key.sign(now, body)),
                    (timestamp_header, now.to_string()),
                ]
            }
            Scheme::Jwt => {
                let token = crate::signature::jwt::sign(&Secret::new(secret), body, now);
                vec![(self.signature_header, token)]
            }
            Scheme::SignedUrl => {
                let tag = crate::signature::twilio::sign(secret, url, body);
                vec![(self.signature_header, tag)]
            }
            // The signature is in the body ([`Provider::sign_body`]).
            Scheme::SignedParams | Scheme::SnsCertificate => Vec::new(),
            Scheme::Basic => {
                let credentials = crate::signature::basic::header_value(secret);
                vec![(self.signature_header, credentials)]
            }
            // Credentials are `user:password`; anything else is an HMAC secret.
            Scheme::BasicOrNonceHmac if crate::signature::basic::is_credentials(secret) => {
                let credentials = crate::signature::basic::header_value(secret);
                vec![(self.signature_header, credentials)]
            }
            Scheme::NonceHmac | Scheme::BasicOrNonceHmac => {
                let nonce = ulid::Ulid::generate().to_string();
                crate::signature::sinch::sign(secret, body, &nonce, now).to_vec()
            }
            Scheme::UrlDigestHmac => crate::signature::bird::sign(secret, url, body, now).to_vec(),
            Scheme::NonceUrlHmac => {
                let nonce = format!("{:020}", rand::random::<u64>());
                crate::signature::plivo::sign(secret, url, &nonce).to_vec()
            }
            Scheme::DecodedKeyHmac => {
                let value = crate::signature::telesign::sign(secret, body)?;
                vec![
                    (self.signature_header, value.clone()),
                    ("authorization", value),
                ]
            }
        })
    }

    /// `body` as this provider would send it under `secret` at Unix time
    /// `now`: unchanged where the signature is in headers ([`Provider::sign`]);
    /// for Vonage's SMS API, its parameters with a `timestamp` (when they
    /// have none) and the `sig`, by HMAC-SHA256 (any method verifies), as
    /// JSON or a form as `body` was; for Amazon SNS, the message signed by
    /// the private key (PEM) `secret`.
    pub fn sign_body(&self, secret: &str, body: &[u8], now: i64) -> Result<Vec<u8>, String> {
        use crate::signature::vonage_sms;
        if !self.signs_in_body() {
            return Ok(body.to_vec());
        }
        if self.scheme == Scheme::SnsCertificate {
            return crate::signature::sns::sign(secret, body);
        }
        let (params, is_json) = vonage_sms::params(None, body).map_err(|e| e.to_string())?;
        let signed = vonage_sms::sign(&params, secret, vonage_sms::Method::HmacSha256, now);
        Ok(if is_json {
            let object: serde_json::Map<String, Value> = signed
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            Value::Object(object).to_string().into_bytes()
        } else {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(&signed);
            form.finish().into_bytes()
        })
    }

    /// What a source of this provider takes to verify webhooks signed with
    /// `signing`: the same shared secret, or the private key's public key
    /// (for Amazon SNS, the key its source pins: its secrets are topics).
    pub fn verifier_for(&self, signing: &str) -> Result<String, String> {
        if self.verifies_with_public_key() {
            KeyPair::from_seed(signing).map(|k| k.public())
        } else if self.scheme == Scheme::SnsCertificate {
            crate::signature::sns::public_key_pem(signing)
        } else {
            Ok(signing.to_string())
        }
    }

    /// Checks one configured secret: an Ed25519 provider takes a public key,
    /// a Basic one credentials, Telesign a base64 API key.
    pub fn check_secret(&self, secret: &Secret) -> Result<(), String> {
        if self.verifies_with_public_key() && ed25519::public_key(secret.expose()).is_none() {
            return Err(format!(
                "{} signs with Ed25519: give its account's public key, base64 of 32 bytes (the provider's portal shows it)",
                self.name
            ));
        }
        if self.scheme == Scheme::DecodedKeyHmac
            && !crate::signature::telesign::is_api_key(secret.expose())
        {
            return Err(crate::signature::telesign::not_a_key());
        }
        if self.scheme == Scheme::SnsCertificate && !is_topic_arn(secret.expose()) {
            return Err(format!(
                "{} takes the ARNs of the SNS topics it subscribes to (arn:aws:sns:<region>:<account>:<topic>), not a secret",
                self.name
            ));
        }
        if self.scheme == Scheme::Basic && !crate::signature::basic::is_credentials(secret.expose())
        {
            return Err(format!(
                "{} authenticates with Basic credentials: give them as user:password, as set for its callbacks",
                self.name
            ));
        }
        Ok(())
    }

    /// How long a source of this provider may take to store a webhook
    /// before answering that it could not (`ack_deadline`): the configured
    /// deadline, but never past the provider's documented answer timeout
    /// less [`ANSWER_MARGIN`] (Telnyx waits 2 s: 1.5 s).
    pub fn ack_deadline(&self, configured: Duration) -> Duration {
        match self.answer_timeout {
            Some(limit) => configured.min(limit.saturating_sub(ANSWER_MARGIN)),
            None => configured,
        }
    }

    /// Its source's `signing_certificates` without a config file
    /// (`SMSHOOK_AWS_SNS_SIGNING_CERTIFICATES`).
    pub fn signing_certificates_env_var(&self) -> String {
        format!("SMSHOOK_{}_SIGNING_CERTIFICATES", self.env_name())
    }

    /// Its source's `allowed_ips` without a config file, e.g.
    /// `SMSHOOK_MSGINE_ALLOWED_IPS`.
    pub fn allowed_ips_env_var(&self) -> String {
        format!("SMSHOOK_{}_ALLOWED_IPS", self.env_name())
    }

    fn env_name(&self) -> String {
        self.name.to_uppercase().replace('-', "_")
    }
}

/// Whether `text` is an SNS topic's ARN: `arn:<partition>:sns:<region>:<account>:<topic>`.
fn is_topic_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    matches!(parts.as_slice(), ["arn", partition, "sns", region, account, topic]
        if partition.starts_with("aws")
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !topic.is_empty())
}

/// Looks a provider up by its config name.
pub fn find(name: &str) -> Option<&'static Provider> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// The provider whose signature a request carries, from `header` (a
/// header's value by name): the first whose header is there. Vonage's
/// `Authorization` must name `Bearer`; Basic credentials name no provider
/// (Bandwidth and Sinch's SMS API both send them).
pub fn signing_in<'h>(header: impl Fn(&str) -> Option<&'h [u8]>) -> Option<&'static Provider> {
    ALL.iter().copied().find(|p| {
        header(p.signature_header).is_some_and(|value| match p.scheme {
            Scheme::Jwt => crate::signature::credentials(value, "bearer").is_some(),
            // No header: Basic credentials, or a signature in the body.
            Scheme::Basic | Scheme::BasicOrNonceHmac | Scheme::SnsCertificate => false,
            _ => true,
        })
    })
}

/// The names of all providers, for error messages.
pub fn names() -> String {
    ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// Fresh identifiers for a sample payload (`smshook send`, tests, bench).
#[derive(Debug, Clone)]
pub struct SampleIds {
    pub event_id: String,
    pub message_id: String,
    pub number: u64,
    pub now: String,
}

impl SampleIds {
    /// The message id's ULID written as a UUID, the form of Bird's and
    /// Plivo's ids.
    pub fn message_uuid(&self) -> String {
        let ulid = self.message_id.trim_start_matches("msg_");
        let bits = ulid::Ulid::from_string(ulid).map_or(0, |u| u.0);
        let hex = format!("{bits:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    pub fn fresh() -> Self {
        let ulid = ulid::Ulid::generate();
        Self {
            event_id: format!("evt_{ulid}"),
            message_id: format!("msg_{ulid}"),
            number: rand::random::<u32>() as u64,
            now: crate::event::now_rfc3339(),
        }
    }
}

/// The value at a dotted path (`data.message_id`); keys may contain `@`.
/// Runs about twenty times per webhook, so the dots are found with a plain
/// byte scan: `str::split('.')` cost more than the lookups themselves.
pub fn at<'a, 'b>(obj: &'b Object<'a>, path: &str) -> Option<&'b Node<'a>> {
    let mut object = obj;
    let mut rest = path;
    loop {
        match rest.bytes().position(|b| b == b'.') {
            None => return object.get(rest),
            Some(dot) => {
                object = object.get(&rest[..dot])?.as_object()?;
                rest = &rest[dot + 1..];
            }
        }
    }
}

/// The first element of the array at `key`, when it is an object.
pub fn first<'b, 'a>(object: &'b Object<'a>, key: &str) -> Option<&'b Object<'a>> {
    match object.get(key)? {
        Node::Array(items) => items.first()?.as_object(),
        _ => None,
    }
}

/// The first path holding a non-empty string or a number, as text.
pub fn text(obj: &Object, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| match at(obj, p)? {
        Node::String(s) if !s.is_empty() => Some(s.to_string()),
        Node::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The first path holding a timestamp smshook can read, normalized.
pub fn time(obj: &Object, paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .find_map(|p| at(obj, p).and_then(normalize_time))
}

/// Reads a provider timestamp: RFC 3339 text, or Unix seconds (milliseconds
/// when the number is too large to be seconds). Anything else is `None`; the
/// original value stays in the payload. So is a time outside the years
/// 0000-9999, which RFC 3339 cannot write (chrono would print `+12345-…`).
pub fn normalize_time(value: &Node) -> Option<String> {
    let t = match value {
        Node::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| s.parse::<i64>().ok().and_then(from_unix)),
        Node::Number(n) => n.as_i64().and_then(from_unix),
        _ => None,
    }?;
    (0..=9999).contains(&t.year()).then(|| format_time(t))
}

fn from_unix(n: i64) -> Option<DateTime<Utc>> {
    if n.unsigned_abs() >= 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

/// The normalized type a delivery status word means, where it is clear.
pub fn type_for_status(status: &str) -> Option<&'static str> {
    match status.to_ascii_lowercase().as_str() {
        "delivered" | "delivrd" => Some("message.delivered"),
        "failed" | "undelivered" | "undeliverable" | "rejected" | "expired" | "error" => {
            Some("message.failed")
        }
        "sent" | "accepted" | "queued" | "sending" | "submitted" | "enroute" => {
            Some("message.sent")
        }
        "received" | "inbound" => Some("message.received"),
        _ => None,
    }
}

/// `key:event`, for providers whose ids name a message rather than an event.
pub fn compound_key(id: Option<&str>, event: Option<&str>) -> Option<String> {
    Some(format!("{}:{}", id?, event.unwrap_or("")))
}

/// What every provider's sample inbound message says (`smshook send`).
pub const SAMPLE_TEXT: &str = "Can I move my appointment to Friday?";

/// That `f` is a received message from `from` (to `to`, where given)
/// saying [`SAMPLE_TEXT`]: a provider's sample inbound message (tests).
#[cfg(test)]
pub fn assert_received(f: &crate::event::EventFields, from: &str, to: Option<&str>) {
    assert_eq!(f.event_type, "message.received");
    assert_eq!(f.from.as_deref(), Some(from));
    if let Some(to) = to {
        assert_eq!(f.to.as_deref(), Some(to));
    }
    assert_eq!(f.body.as_deref(), Some(SAMPLE_TEXT));
}

/// A key that signs for every provider in tests: an HMAC secret, and the
/// base64 of an Ed25519 seed (bytes 0 to 31).
#[cfg(test)]
pub const TEST_SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Where a test source of a provider that signs its URL says it is posted.
#[cfg(test)]
pub const TEST_URL: &str = "https://hooks.smshook.test/webhooks/src";

/// The key that signs as `provider` does in tests: [`TEST_SIGNING_KEY`],
/// or for Amazon SNS an RSA private key (PEM) made once per run.
#[cfg(test)]
pub fn test_key(provider: &Provider) -> &'static str {
    static RSA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if provider.scheme == Scheme::SnsCertificate {
        RSA.get_or_init(|| crate::signature::sns::new_private_key().expect("an RSA key"))
    } else {
        TEST_SIGNING_KEY
    }
}

/// A source named `src` of `provider`, verifying what [`test_key`] signs
/// (posted to [`TEST_URL`]); for Amazon SNS, taking
/// [`crate::signature::sns::SAMPLE_TOPIC_ARN`] with the key pinned.
#[cfg(test)]
pub fn test_source(provider: &'static Provider) -> crate::config::Source {
    use crate::signature::public_url::PublicUrl;
    use crate::signature::sns;
    let verifier = provider.verifier_for(test_key(provider)).expect("key");
    let sns = provider.scheme == Scheme::SnsCertificate;
    let certificates = sns.then(|| {
        let pinned = sns::Certificates::from_pems(&[&verifier]).expect("a public key");
        std::sync::Arc::new(pinned)
    });
    let secret = if sns {
        sns::SAMPLE_TOPIC_ARN.to_string()
    } else {
        verifier
    };
    crate::config::Source {
        name: "src".into(),
        provider,
        secrets: vec![Secret::new(secret)],
        allowed: None,
        public_url: provider
            .signs_url()
            .then(|| PublicUrl::parse(TEST_URL).expect("a URL")),
        certificates,
    }
}

#[cfg(test)]
impl Provider {
    /// Normalizes a JSON value as if it had arrived as this provider's
    /// body (tests).
    pub fn norm(&self, v: Value) -> Normalized {
        let body = v.to_string();
        (self.normalize)(&payload::parse_object(&body).expect("a JSON object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_provider_is_registered_once_and_findable() {
        for p in ALL {
            assert_eq!(find(p.name).map(|f| f.name), Some(p.name));
        }
        assert!(find("clicksend").is_none());
        assert_eq!(
            private_number::PROVIDER.secret_env_var(),
            "SMSHOOK_PRIVATE_NUMBER_SECRET"
        );
    }

    /// Vonage, Bandwidth and Sinch's SMS API all use `Authorization`: a
    /// Bearer token is Vonage's; Basic credentials could be either other's.
    #[test]
    fn the_provider_a_request_seems_to_come_from() {
        let seen = |name: &'static str, value: &'static str| {
            signing_in(move |h: &str| (h == name).then_some(value.as_bytes())).map(|p| p.name)
        };
        assert_eq!(seen("authorization", "Bearer eyJ0"), Some("vonage"));
        assert_eq!(seen("authorization", "basic dTpw"), None);
        assert_eq!(seen("authorization", "Digest x"), None);
        assert_eq!(seen("x-msgine-signature", "ab12"), Some("msgine"));
    }

    #[test]
    fn a_basic_source_takes_credentials() {
        let p = &bandwidth::PROVIDER;
        assert_eq!(p.check_secret(&Secret::new("app-user:s3cret")), Ok(()));
        let e = p
            .check_secret(&Secret::new("s3cret"))
            .expect_err("a password alone");
        assert!(e.contains("user:password"), "{e}");
        assert_eq!(p.secret_env_var(), "SMSHOOK_BANDWIDTH_SECRET");
    }

    #[test]
    fn sample_uuids_are_the_message_ids_ulid() {
        let ids = SampleIds {
            message_id: "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            ..SampleIds::fresh()
        };
        assert_eq!(ids.message_uuid(), "01563e3a-b5d3-d676-4c61-efb99302bd5b");
    }

    #[test]
    fn a_telesign_source_takes_a_base64_api_key() {
        let p = &telesign::PROVIDER;
        let key = "ABC12345yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
        assert_eq!(p.check_secret(&Secret::new(key)), Ok(()));
        let e = p
            .check_secret(&Secret::new("my api key"))
            .expect_err("not base64");
        assert!(e.contains("base64"), "{e}");
        let tsa = "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:abc=";
        assert_eq!(
            signing_in(|h| (h == "x-ts-authorization").then_some(tsa.as_bytes())).map(|p| p.name),
            Some("telesign")
        );
    }

    #[test]
    fn every_sample_normalizes_to_its_own_type() {
        for p in ALL {
            for t in p.event_types {
                let sample = (p.sample)(t, &SampleIds::fresh());
                let n = p.norm(sample.clone());
                assert_eq!(decode(p, &p.encode(&sample)), sample, "{} {t}", p.name);
                assert_eq!(n.fields.provider_type.as_deref(), Some(*t), "{}", p.name);
                assert!(n.dedupe_key.is_some(), "{} {t} has no dedupe key", p.name);
            }
        }
    }

    /// A body as `encode` wrote it, read back as the JSON value it came
    /// from (a form's values are all strings, as the samples' are; a
    /// batch holds the one sample).
    fn decode(p: &Provider, body: &[u8]) -> Value {
        let text = match p.format {
            Format::Form => payload::form_body_json(body),
            Format::Object | Format::Batch => String::from_utf8(body.to_vec()).expect("UTF-8"),
        };
        let value: Value = serde_json::from_str(&text).expect("JSON");
        match (p.format, value) {
            (Format::Batch, Value::Array(mut items)) if items.len() == 1 => items.remove(0),
            (_, value) => value,
        }
    }

    /// Storage that is slow is answered before the provider gives up:
    /// MsGine waits 5 s, Telnyx 2 s, Integify 10 s, Twilio 15 s.
    #[test]
    fn an_ack_deadline_stays_below_each_providers_answer_timeout() {
        let secs = Duration::from_secs_f64;
        assert_eq!(msgine::PROVIDER.ack_deadline(secs(4.0)), secs(4.0));
        assert_eq!(msgine::PROVIDER.ack_deadline(secs(9.0)), secs(4.5));
        assert_eq!(telnyx::PROVIDER.ack_deadline(secs(4.0)), secs(1.5));
        assert_eq!(telnyx::PROVIDER.ack_deadline(secs(1.0)), secs(1.0));
        assert_eq!(integify::PROVIDER.ack_deadline(secs(9.0)), secs(9.0));
        assert_eq!(twilio::PROVIDER.ack_deadline(secs(20.0)), secs(14.5));
        assert_eq!(notifly::PROVIDER.answer_timeout, None);
        assert_eq!(notifly::PROVIDER.ack_deadline(secs(60.0)), secs(60.0));
    }

    #[test]
    fn times_normalize_to_utc_millis() {
        let time = |json: &str| {
            let node: Node = serde_json::from_str(json).expect("JSON");
            normalize_time(&node)
        };
        assert_eq!(
            time(r#""2026-04-10T14:01:28+02:00""#).as_deref(),
            Some("2026-04-10T12:01:28.000Z")
        );
        assert_eq!(
            time("692233200").as_deref(),
            Some("1991-12-08T23:00:00.000Z")
        );
        assert_eq!(
            time("1700000000123").as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(time(r#""yesterday""#), None);
        assert_eq!(time("null"), None);
        // Times RFC 3339 cannot write, and the one number with no absolute
        // value, are left to the payload rather than stored as `+12345-…`.
        assert_eq!(time("-9223372036854775808"), None);
        assert_eq!(time("9223372036854775807"), None);
        assert_eq!(time("253402300800000"), None); // 10000-01-01, in ms
        assert_eq!(time(r#""9999-12-31T23:00:00-05:00""#), None);
        assert_eq!(
            time("253402300799999").as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
    }

    #[test]
    fn paths_and_text() {
        let body = json!({"data": {"messageId": 42, "s": "", "@id": "/x"}}).to_string();
        let obj = payload::parse_object(&body).expect("object");
        let obj = &obj;
        assert_eq!(text(obj, &["data.messageId"]).as_deref(), Some("42"));
        assert_eq!(text(obj, &["data.s", "data.@id"]).as_deref(), Some("/x"));
        assert_eq!(text(obj, &["nope.deeper"]), None);
    }
}
