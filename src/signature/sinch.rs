//! Sinch's Conversation API callbacks: `x-sinch-webhook-signature` is the
//! base64 HMAC, under the app's webhook secret, of the raw body, a `.`,
//! the `x-sinch-webhook-signature-nonce`, a `.` and the
//! `x-sinch-webhook-signature-timestamp`, by the algorithm
//! `x-sinch-webhook-signature-algorithm` names (`HmacSHA256`, the one Sinch
//! uses, or `HmacSHA512`; SHA-256 when the header is absent). Every secret
//! is tried in constant time.
//!
//! The timestamp is signed but not checked against the clock: Sinch
//! retries a callback for almost 23 hours, and does not document whether a
//! retry is signed anew. A replayed callback is the same body, and the same
//! event: it is stored once.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Secret, SignatureError};

pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
pub const ALGORITHM_HEADER: &str = "x-sinch-webhook-signature-algorithm";

/// The headers a Sinch callback is signed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub signature: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
    pub timestamp: Option<&'a [u8]>,
    pub algorithm: Option<&'a [u8]>,
}

/// Checks the signature of `body` under every secret.
pub fn verify(headers: Headers, body: &[u8], secrets: &[Secret]) -> Result<(), SignatureError> {
    let value = super::present(headers.signature)?;
    let nonce = super::present(headers.nonce).map_err(|_| SignatureError::MissingNonce)?;
    let timestamp = super::present(headers.timestamp).map_err(|_| SignatureError::MissingNonce)?;
    let algorithm = algorithm(headers.algorithm)?;
    let len = algorithm.digest_algorithm().output_len();
    let tag = super::base64_tag(value, len).ok_or(SignatureError::MalformedSinch)?;
    let computed = secrets
        .iter()
        .map(|secret| mac(algorithm, secret.expose(), body, nonce, timestamp));
    super::any_matches(computed, &tag)
}

/// The headers Sinch would send with `body` under `secret` (HmacSHA256;
/// `smshook send`, tests).
pub fn sign(secret: &str, body: &[u8], nonce: &str, now: i64) -> [(&'static str, String); 4] {
    let timestamp = now.to_string();
    let tag = mac(
        hmac::HMAC_SHA256,
        secret,
        body,
        nonce.as_bytes(),
        timestamp.as_bytes(),
    );
    [
        (SIGNATURE_HEADER, STANDARD.encode(tag.as_ref())),
        (NONCE_HEADER, nonce.to_string()),
        (TIMESTAMP_HEADER, timestamp),
        (ALGORITHM_HEADER, "HmacSHA256".to_string()),
    ]
}

fn algorithm(header: Option<&[u8]>) -> Result<hmac::Algorithm, SignatureError> {
    match header.map(<[u8]>::trim_ascii) {
        None => Ok(hmac::HMAC_SHA256),
        Some(name) if name.eq_ignore_ascii_case(b"HmacSHA256") => Ok(hmac::HMAC_SHA256),
        Some(name) if name.eq_ignore_ascii_case(b"HmacSHA512") => Ok(hmac::HMAC_SHA512),
        Some(_) => Err(SignatureError::SinchAlgorithm),
    }
}

/// HMAC of `body.nonce.timestamp`.
fn mac(
    algorithm: hmac::Algorithm,
    secret: &str,
    body: &[u8],
    nonce: &[u8],
    timestamp: &[u8],
) -> hmac::Tag {
    let key = hmac::Key::new(algorithm, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    for part in [body, b".", nonce, b".", timestamp] {
        context.update(part);
    }
    context.sign()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    /// Sinch's .NET SDK's test: this callback, nonce, timestamp and secret
    /// give this signature.
    const BODY: &str = r#"{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}"#;
    const NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
    const SIGNATURE: &str = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=";

    fn check(
        body: &str,
        sig: &str,
        algorithm: Option<&str>,
        keys: &[&str],
    ) -> Result<(), SignatureError> {
        let headers = Headers {
            signature: Some(sig.as_bytes()),
            nonce: Some(NONCE.as_bytes()),
            timestamp: Some(b"1634579353"),
            algorithm: algorithm.map(str::as_bytes),
        };
        verify(headers, body.as_bytes(), &secrets(keys))
    }

    #[test]
    fn signs_as_sinchs_sdk_does() {
        let keys = ["old", "foo_secret1234"];
        assert_eq!(check(BODY, SIGNATURE, None, &keys), Ok(()));
        assert_eq!(check(BODY, SIGNATURE, Some("HmacSHA256"), &keys), Ok(()));
        let [(_, sig), ..] = sign("foo_secret1234", BODY.as_bytes(), NONCE, 1634579353);
        assert_eq!(sig, SIGNATURE);
        let changed = BODY.replace("New Test", "Old Test");
        assert_eq!(
            check(&changed, SIGNATURE, None, &keys),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(BODY, SIGNATURE, None, &["old"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_what_sinch_did_not_sign() {
        let keys = ["foo_secret1234"];
        assert_eq!(
            check(BODY, SIGNATURE, Some("HmacMD5"), &keys),
            Err(SignatureError::SinchAlgorithm)
        );
        assert_eq!(
            check(BODY, SIGNATURE, Some("HmacSHA512"), &keys),
            Err(SignatureError::MalformedSinch),
            "a SHA-256 tag is no SHA-512 one"
        );
        assert_eq!(
            check(BODY, "abc", None, &keys),
            Err(SignatureError::MalformedSinch)
        );
        let unsigned = Headers::default();
        assert_eq!(
            verify(unsigned, b"{}", &secrets(&keys)),
            Err(SignatureError::Missing)
        );
        let no_nonce = Headers {
            signature: Some(SIGNATURE.as_bytes()),
            ..Headers::default()
        };
        assert_eq!(
            verify(no_nonce, b"{}", &secrets(&keys)),
            Err(SignatureError::MissingNonce)
        );
    }
}
