//! Bird's (formerly MessageBird's) Channels API webhooks: `messagebird-signature`
//! is the base64 HMAC-SHA256, under the webhook subscription's signing key,
//! of the `messagebird-request-timestamp` header, a newline, the URL the
//! webhook was posted to, a newline, and the raw SHA-256 (32 bytes, not hex)
//! of the body. Every secret is tried in constant time.
//!
//! The URL is the subscription's, which smshook cannot rebuild behind a
//! proxy: a source names it (`public_url`), and the query the request
//! carries is appended.
//!
//! The timestamp is signed but not held against the clock: Bird retries for
//! 8 hours with the timestamp of the first attempt (receivers that refused
//! old timestamps have lost those retries). A replayed webhook is the same
//! body, and the same event: it is stored once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::public_url::PublicUrl;
use super::{Secret, SignatureError};

pub const SIGNATURE_HEADER: &str = "messagebird-signature";
pub const TIMESTAMP_HEADER: &str = "messagebird-request-timestamp";

/// The headers a Bird webhook is signed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub signature: Option<&'a [u8]>,
    pub timestamp: Option<&'a [u8]>,
}

/// Checks the signature of `body`, posted to `url` with `query`, under
/// every secret.
pub fn verify(
    headers: Headers,
    url: &PublicUrl,
    query: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let value = super::present(headers.signature)?;
    let timestamp = timestamp(headers.timestamp)?;
    let tag = super::base64_tag(value, 32).ok_or(SignatureError::MalformedBase64Sha256)?;
    let url = url.with_query(query);
    let digest = Sha256::digest(body);
    let computed = secrets
        .iter()
        .map(|secret| mac(secret, timestamp, &url, &digest));
    super::any_matches(computed, &tag).map_err(|_| SignatureError::MismatchOverUrl)
}

/// The headers Bird would send with `body` posted to `url` (the whole URL,
/// query included) under `secret` at Unix time `now` (`smshook send`, tests).
pub fn sign(secret: &str, url: &str, body: &[u8], now: i64) -> [(&'static str, String); 2] {
    let timestamp = now.to_string();
    let tag = mac(
        &Secret::new(secret),
        timestamp.as_bytes(),
        url,
        &Sha256::digest(body),
    );
    [
        (SIGNATURE_HEADER, STANDARD.encode(tag)),
        (TIMESTAMP_HEADER, timestamp),
    ]
}

/// The timestamp header: Unix seconds, as Bird sends them.
fn timestamp(header: Option<&[u8]>) -> Result<&[u8], SignatureError> {
    let value = header.map(<[u8]>::trim_ascii).unwrap_or_default();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::BadTimestamp);
    }
    Ok(value)
}

/// HMAC-SHA256 of `timestamp\nurl\n` and the body's digest.
fn mac(secret: &Secret, timestamp: &[u8], url: &str, digest: &[u8]) -> [u8; 32] {
    secret.mac_parts(&[timestamp, b"\n", url.as_bytes(), b"\n", digest])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    const URL: &str = "https://hooks.example.com/webhooks/bird";
    const BODY: &str = r#"{"service":"channels","event":"sms.inbound","payload":{"id":"2f0ec1a1-7bd4-4a4f-a5e0-4f8c2a9f6c11"}}"#;
    const TIMESTAMP: &str = "1719823259";
    /// Computed apart from this code, with Python's hmac and hashlib:
    /// `b64encode(hmac.new(b"secureSigningKey", b"1719823259\n" + URL.encode()
    /// + b"\n" + sha256(BODY).digest(), sha256).digest())`.
    const SIGNATURE: &str = "eVsgm5GfbPi0+6m4HIuxhtR5yQ/1koPWYqmnp2viK+s=";

    fn check(
        sig: &str,
        query: Option<&str>,
        body: &str,
        keys: &[&str],
    ) -> Result<(), SignatureError> {
        let url = PublicUrl::parse(URL).expect("a URL");
        let headers = Headers {
            signature: Some(sig.as_bytes()),
            timestamp: Some(TIMESTAMP.as_bytes()),
        };
        verify(headers, &url, query, body.as_bytes(), &secrets(keys))
    }

    #[test]
    fn signs_as_birds_documentation_says() {
        let keys = ["old", "secureSigningKey"];
        assert_eq!(check(SIGNATURE, None, BODY, &keys), Ok(()));
        let [(_, sig), (_, ts)] = sign("secureSigningKey", URL, BODY.as_bytes(), 1719823259);
        assert_eq!((sig.as_str(), ts.as_str()), (SIGNATURE, TIMESTAMP));
        let changed = BODY.replace("inbound", "outbound");
        assert_eq!(
            check(SIGNATURE, None, &changed, &keys),
            Err(SignatureError::MismatchOverUrl)
        );
        assert_eq!(
            check(SIGNATURE, None, BODY, &["old"]),
            Err(SignatureError::MismatchOverUrl)
        );
    }

    #[test]
    fn the_query_is_part_of_the_signed_url() {
        let keys = ["k"];
        let [(_, sig), _] = sign("k", &format!("{URL}?tenant=7"), BODY.as_bytes(), 1719823259);
        assert_eq!(check(&sig, Some("tenant=7"), BODY, &keys), Ok(()));
        assert_eq!(
            check(&sig, None, BODY, &keys),
            Err(SignatureError::MismatchOverUrl)
        );
        assert_eq!(
            check(&sig, Some("tenant=8"), BODY, &keys),
            Err(SignatureError::MismatchOverUrl)
        );
    }

    #[test]
    fn refuses_what_bird_did_not_sign() {
        let keys = ["secureSigningKey"];
        assert_eq!(
            check("abc", None, BODY, &keys),
            Err(SignatureError::MalformedBase64Sha256)
        );
        let url = PublicUrl::parse(URL).expect("a URL");
        let verify_with = |signature: Option<&str>, timestamp: Option<&str>| {
            let headers = Headers {
                signature: signature.map(str::as_bytes),
                timestamp: timestamp.map(str::as_bytes),
            };
            verify(headers, &url, None, BODY.as_bytes(), &secrets(&keys))
        };
        assert_eq!(
            verify_with(None, Some(TIMESTAMP)),
            Err(SignatureError::Missing)
        );
        for timestamp in [None, Some(""), Some("2024-07-01T08:40:59Z")] {
            assert_eq!(
                verify_with(Some(SIGNATURE), timestamp),
                Err(SignatureError::BadTimestamp),
                "{timestamp:?}"
            );
        }
        assert_eq!(
            verify_with(Some(SIGNATURE), Some("1719823260")),
            Err(SignatureError::MismatchOverUrl),
            "the timestamp is signed"
        );
    }
}
