//! Telesign's callbacks: `Authorization` and `X-TS-Authorization` (both on
//! every callback) carry `TSA <Customer ID>:<signature>`, the signature
//! being the base64 HMAC-SHA256 of the raw body under the account's API
//! key, base64-decoded first. smshook reads `X-TS-Authorization`, a header
//! no other provider sends, and takes the signature after the last `:`
//! (or the whole value, should it be bare). A source's secrets are API
//! keys as Telesign's portal shows them (base64); every one is tried in
//! constant time. The Customer ID is not secret and not signed: it is not
//! checked. Nothing else is signed either (no URL, no time): a replayed
//! callback is the same body, and the same event, stored once.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use super::{Secret, SignatureError};

pub const SIGNATURE_HEADER: &str = "x-ts-authorization";

/// The Customer ID `smshook send` and `sign` put before the signature.
pub const TEST_CUSTOMER_ID: &str = "00000000-0000-0000-0000-000000000000";

/// API keys as written by hand or copied: padding optional, trailing bits
/// allowed.
const KEY: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks `header` (`X-TS-Authorization`) against the HMAC of `body` under
/// every secret.
pub fn verify(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let value = super::present(header)?;
    let encoded = signature_part(value);
    let tag = super::base64_tag(encoded, 32).ok_or(SignatureError::MalformedTsa)?;
    let computed = secrets
        .iter()
        .filter_map(|secret| api_key(secret.expose()))
        .map(|key| mac(&key, body));
    super::any_matches(computed, &tag)
}

/// The header value Telesign would send with `body` under the API key
/// `secret`
/// (`smshook send`, tests).
pub fn sign(secret: &str, body: &[u8]) -> Result<String, String> {
    let key = api_key(secret).ok_or_else(not_a_key)?;
    let tag = STANDARD.encode(mac(&key, body).as_ref());
    Ok(format!("TSA {TEST_CUSTOMER_ID}:{tag}"))
}

/// Whether `secret` can be an API key: base64 of at least one byte.
pub fn is_api_key(secret: &str) -> bool {
    api_key(secret).is_some()
}

/// Why a secret is not an API key.
pub fn not_a_key() -> String {
    "telesign signs with its API key: give it as Telesign's portal shows it (base64)".into()
}

fn api_key(secret: &str) -> Option<Vec<u8>> {
    KEY.decode(secret.trim()).ok().filter(|key| !key.is_empty())
}

/// What follows `TSA <Customer ID>:`, or the whole value without a colon.
fn signature_part(value: &[u8]) -> &[u8] {
    let value = super::credentials(value, "tsa").unwrap_or(value);
    match value.iter().rposition(|&b| b == b':') {
        Some(colon) => value[colon + 1..].trim_ascii(),
        None => value,
    }
}

fn mac(key: &[u8], body: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    /// The API key of Telesign's own example.
    const API_KEY: &str =
        "ABC12345yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const BODY: &str = r#"{"reference_id":"B56259E45884010488343BAA15FB0002","status":{"code":200,"description":"Delivered to handset","updated_on":"2016-10-21T14:05:36.181346Z"},"submit_timestamp":"2016-10-21T14:05:35.000000Z"}"#;
    /// Computed apart from this code, with Python's hmac and base64:
    /// `b64encode(hmac.new(b64decode(API_KEY), BODY, sha256).digest())`.
    const SIGNATURE: &str = "OFkI2zoXDg8bkWSC94QAExjf7Z87HkLWajpx5xM1T3s=";

    fn check(header: &str, body: &str, keys: &[&str]) -> Result<(), SignatureError> {
        verify(Some(header.as_bytes()), body.as_bytes(), &secrets(keys))
    }

    #[test]
    fn signs_as_telesigns_documentation_says() {
        let keys = ["b2xk", API_KEY];
        let header = format!("TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:{SIGNATURE}");
        assert_eq!(check(&header, BODY, &keys), Ok(()));
        assert_eq!(check(&format!("tsa x:{SIGNATURE}"), BODY, &keys), Ok(()));
        assert_eq!(check(SIGNATURE, BODY, &keys), Ok(()), "a bare signature");
        let signed = sign(API_KEY, BODY.as_bytes()).expect("a key");
        assert_eq!(signed, format!("TSA {TEST_CUSTOMER_ID}:{SIGNATURE}"));
        let changed = BODY.replace("200", "203");
        assert_eq!(
            check(&header, &changed, &keys),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&header, BODY, &["b2xk"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_what_is_not_a_signature() {
        let keys = [API_KEY];
        assert_eq!(
            verify(None, BODY.as_bytes(), &secrets(&keys)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check("TSA id:abc", BODY, &keys),
            Err(SignatureError::MalformedTsa)
        );
        assert_eq!(
            check("Basic dTpw", BODY, &keys),
            Err(SignatureError::MalformedTsa)
        );
    }

    #[test]
    fn api_keys_are_base64() {
        assert!(is_api_key(API_KEY));
        assert!(is_api_key(
            "ABC12345yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw"
        ));
        assert!(!is_api_key("not base64!"));
        assert!(!is_api_key(""));
        assert!(sign("not base64!", b"{}").is_err());
    }
}
