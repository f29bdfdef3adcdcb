//! HTTP destinations, signed the Standard Webhooks way so the application can
//! verify with any Standard Webhooks library: `webhook-id` (our event id),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the decoded
//! `whsec_…` secret. With several secrets (an application rotating its
//! own), the header carries one signature per secret, space-separated, as
//! the spec provides: any one verifying is enough.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Answer;
use crate::event::Event;
use crate::signature::hmac_sha256;

/// Longest `Retry-After` honoured; a larger one is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A Standard Webhooks signing key (the bytes behind `whsec_`). `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional).
    pub fn parse(secret: &str) -> Result<Self> {
        let encoded = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        let bytes = STANDARD
            .decode(encoded)
            .context("expected whsec_ followed by base64")?;
        anyhow::ensure!(bytes.len() >= 16, "the key must be at least 16 bytes");
        Ok(Self(bytes))
    }

    /// `v1,<base64 signature>` of `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        format!("v1,{}", STANDARD.encode(hmac_sha256(&self.0, &signed)))
    }
}

/// The `webhook-signature` value: each key's signature, space-separated.
pub fn signatures(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    let each: Vec<String> = keys.iter().map(|k| k.sign(id, timestamp, body)).collect();
    each.join(" ")
}

pub async fn send(
    client: &reqwest::Client,
    url: &str,
    keys: &[SigningKey],
    timeout: Duration,
    event: &Event,
    now_secs: i64,
) -> Answer {
    let body = super::body(event);
    let signature = signatures(keys, &event.id, now_secs, &body);
    let sent = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", now_secs.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Answer::Success(Some(r.status().as_u16())),
        Ok(r) => Answer::Failure {
            status: Some(r.status().as_u16()),
            retry_after: retry_after(r.headers()),
            error: format!("HTTP {}", r.status()),
        },
        Err(e) if e.is_timeout() => Answer::Failure {
            status: None,
            retry_after: None,
            error: format!("no answer within {timeout:?}"),
        },
        // Without the URL: it may carry credentials.
        Err(e) => Answer::Failure {
            status: None,
            retry_after: None,
            error: with_causes(&e.without_url()),
        },
    }
}

/// An error and its causes ("error sending request: … Connection refused"),
/// so the attempt record says what actually went wrong.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date, capped at a day.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_signature() {
        // The Standard Webhooks specification's test vector.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(SigningKey::parse("whsec_short").is_err());
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "120".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(300)).to_rfc2822();
        h.insert(reqwest::header::RETRY_AFTER, later.parse().expect("value"));
        let wait = retry_after(&h).expect("date");
        assert!(
            wait > Duration::from_secs(290) && wait <= Duration::from_secs(300),
            "{wait:?}"
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            "999999999".parse().expect("value"),
        );
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
