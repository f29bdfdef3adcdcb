//! HMAC-SHA256 webhook signatures: computing them the way providers do, and
//! checking a received header against every secret of a source in constant time.
//! Telnyx's Ed25519 signatures are in [`ed25519`], Vonage's HS256 tokens in
//! [`jwt`], Twilio's HMAC-SHA1 (or -SHA256 under a SharedKey) over its URL and
//! parameters in [`twilio`],
//! the `sig` parameter of Vonage's SMS API in [`vonage_sms`], Bandwidth's
//! Basic credentials in [`basic`], Sinch's nonce-and-timestamp HMAC in
//! [`sinch`], Bird's HMAC over a timestamp, its URL and the body's hash in
//! [`bird`], Telesign's HMAC under a base64 API key in [`telesign`], Plivo's
//! HMAC of its URL and a nonce in [`plivo`], Amazon SNS's RSA signatures by
//! AWS's certificates in [`sns`]; the URL a provider that signs its URL posts
//! to in [`public_url`].

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

pub mod basic;
pub mod bird;
pub mod ed25519;
pub mod jwt;
pub mod plivo;
pub mod public_url;
pub mod sinch;
pub mod sns;
pub mod telesign;
pub mod twilio;
pub mod vonage_sms;

/// A form's (or query's) parameters, as sent (names and values decoded).
pub type Params<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// A shared secret (webhook secret or API token). `Debug` never shows it, so a
/// secret cannot leak through a log line or an error message.
///
/// It carries HMAC-SHA256 already keyed with it: HMAC hashes the key into two
/// blocks before the message, and doing that once here instead of for every
/// webhook saves two of the about nine SHA-256 blocks a typical webhook costs,
/// for every secret tried.
#[derive(Clone)]
pub struct Secret {
    value: String,
    keyed: Hmac<Sha256>,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let keyed = keyed(value.as_bytes());
        Self { value, keyed }
    }

    /// The raw value, for computing a MAC. Never log the result.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// HMAC-SHA256 of `body` under this secret.
    pub fn mac(&self, body: &[u8]) -> [u8; 32] {
        self.mac_parts(&[body])
    }

    /// HMAC-SHA256 under this secret of `parts`, one after the other (a
    /// signed text made of a timestamp, a URL, a digest, …).
    pub fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Constant-time equality against a candidate (used for bearer tokens).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.value.as_bytes().ct_eq(candidate).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Why a signature was refused. The text is safe to show to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is not a hex HMAC-SHA256")]
    Malformed,
    #[error("the signature does not match any configured secret")]
    Mismatch,
    #[error("the signature header is not a base64 Ed25519 signature")]
    MalformedEd25519,
    #[error("the timestamp header is missing or not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "the timestamp is more than 5 minutes away from this server's clock (a replayed webhook, or a clock that is off)"
    )]
    Stale,
    #[error("the Authorization header is not a Bearer JWT signed with HS256")]
    MalformedJwt,
    #[error("the token's payload_hash is not the SHA-256 of the body")]
    PayloadHash,
    #[error("the signature header is not a base64 HMAC-SHA1")]
    MalformedSha1,
    #[error(
        "the signature header is not a base64 HMAC-SHA256, the algorithm x-twilio-webhooks-signature-settings names"
    )]
    MalformedSha256,
    #[error(
        "x-twilio-webhooks-signature-settings does not name algorithm=HMAC_SHA1 or algorithm=HMAC_SHA256"
    )]
    BadSettings,
    #[error(
        "the signature matches no configured secret under the algorithm x-twilio-webhooks-signature-settings names: add the secret of the SharedKey it names (key=) to the source's secrets"
    )]
    SharedKeyMismatch,
    #[error("the query's bodySHA256 is not the SHA-256 of the body")]
    BodyHash,
    #[error(
        "the query has no bodySHA256, with which Twilio names the JSON body it signs: is the source's public_url the sink's destination?"
    )]
    NoBodyHash,
    #[error(
        "the sig parameter is missing: Vonage signs SMS API webhooks only once its support enables signed webhooks for the account"
    )]
    MissingSig,
    #[error("the sig parameter is not a hex MD5, SHA-1, SHA-256 or SHA-512 signature")]
    MalformedSig,
    #[error(
        "the Authorization header is missing: set the callback credentials to one of the source's secrets (user:password)"
    )]
    MissingCredentials,
    #[error("the Authorization header is not Basic credentials")]
    MalformedBasic,
    #[error(
        "neither Basic credentials (Authorization) nor Sinch's HMAC (x-sinch-webhook-signature) came: ask Sinch for either on the service plan's callbacks, and give the source its credentials (user:password) or HMAC secret"
    )]
    MissingCredentialsOrHmac,
    #[error(
        "the x-sinch-webhook-signature-nonce or -timestamp header is missing; Sinch signs with both"
    )]
    MissingNonce,
    #[error("the signature header is not a base64 HMAC of the algorithm named")]
    MalformedSinch,
    #[error("x-sinch-webhook-signature-algorithm names neither HmacSHA256 nor HmacSHA512")]
    SinchAlgorithm,
    #[error("the signature header is not a base64 HMAC-SHA256")]
    MalformedBase64Sha256,
    #[error(
        "the signature matches no configured secret for the source's public_url: is public_url exactly the URL the webhook subscription names, and each secret a signing key?"
    )]
    MismatchOverUrl,
    #[error(
        "x-ts-authorization is not TSA <Customer ID>:<base64 HMAC-SHA256>, as Telesign signs callbacks"
    )]
    MalformedTsa,
    #[error("x-plivo-signature-v2-nonce is missing; Plivo signs with it")]
    MissingPlivoNonce,
    #[error("a parameter is sent more than once; Vonage sends each once")]
    RepeatedParam,
    #[error("the body is neither a form nor a JSON object of plain values")]
    Unreadable,
    #[error(
        "the body is not a signed Amazon SNS message (Type, MessageId, TopicArn, Message, Timestamp, Signature, SigningCertURL): is the subscription's raw message delivery off?"
    )]
    NotSns,
    #[error("the SNS Signature is not base64")]
    MalformedSns,
    #[error("the SNS SignatureVersion is neither 1 nor 2")]
    SnsVersion,
    #[error("the message's TopicArn is not one of the topics this source takes (its secrets)")]
    UnknownTopic,
    #[error(
        "SigningCertURL is not an Amazon SNS certificate (https://sns.<region>.amazonaws.com/SimpleNotificationService-….pem)"
    )]
    SnsCertificateUrl,
    #[error("the SNS signing certificate could not be fetched yet; retry later")]
    CertificateUnavailable,
    #[error(
        "the signature matches none of the source's signing_certificates: has AWS moved to a new certificate (the message's SigningCertURL)?"
    )]
    MismatchPinned,
}

/// HMAC-SHA256 of `body` under `key`.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = keyed(key);
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The header value a provider would send: `prefix` + lowercase hex.
pub fn sign_hex(secret: &Secret, body: &[u8], prefix: &str) -> String {
    let tag = secret.mac(body);
    format!("{prefix}{}", hex::encode(tag))
}

/// Checks `header` (hex in either case, with or without a `sha256=` prefix)
/// against the HMAC of the exact `body` bytes under each secret. Every secret
/// is tried, whatever matched, so timing reveals neither the tag nor which
/// secret is in use.
pub fn verify(
    header: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let tag = decode_header(present(header)?)?;
    any_matches(secrets.iter().map(|secret| secret.mac(body)), &tag)
}

/// A signature header's value without surrounding space; `Missing` when
/// there is none, or only space (every scheme reads its header so).
pub(crate) fn present(header: Option<&[u8]>) -> Result<&[u8], SignatureError> {
    let value = header.map(<[u8]>::trim_ascii).unwrap_or_default();
    if value.is_empty() {
        Err(SignatureError::Missing)
    } else {
        Ok(value)
    }
}

/// `Ok` when any of the tags computed under a source's secrets is `tag`.
/// Every one is compared, in constant time, whatever matched, so timing
/// reveals neither the tag nor which secret is in use.
fn any_matches<T: AsRef<[u8]>>(
    computed: impl IntoIterator<Item = T>,
    tag: &[u8],
) -> Result<(), SignatureError> {
    let mut matched = Choice::from(0);
    for candidate in computed {
        matched |= candidate.as_ref().ct_eq(tag);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What follows the scheme of an `Authorization` value (`Bearer`, `Basic`,
/// in any case) and one space, without surrounding space; `None` for
/// another scheme.
pub(crate) fn credentials<'v>(value: &'v [u8], scheme: &str) -> Option<&'v [u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (named, rest) = value.split_at(space);
    named
        .eq_ignore_ascii_case(scheme.as_bytes())
        .then(|| rest.trim_ascii())
}

/// A tag of `len` bytes written in standard base64, or `None`.
fn base64_tag(value: &[u8], len: usize) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .filter(|tag| tag.len() == len)
}

/// Exactly `N` bytes written in base64 by `engine` (a key, a signature, a
/// tag), or `None`.
fn base64_array<const N: usize>(
    engine: &impl base64::Engine,
    text: impl AsRef<[u8]>,
) -> Option<[u8; N]> {
    engine.decode(text).ok()?.try_into().ok()
}

fn decode_header(value: &[u8]) -> Result<[u8; 32], SignatureError> {
    let hex_part = match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"sha256=") => &value[7..],
        _ => value,
    };
    decode_tag(hex_part).ok_or(SignatureError::Malformed)
}

/// 64 hex digits, in either case, as the 32 bytes of a tag. The digits are
/// the sender's, not a secret, so this need not run in constant time. (The
/// `hex` crate's decoder cost about 900 instructions per header here.)
fn decode_tag(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(tag)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets from their values (also for `jwt`'s tests).
    pub(super) fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::new(*v)).collect()
    }

    #[test]
    fn matches_openssl_reference_vector() {
        // echo -n 'hello' | openssl dgst -sha256 -hmac 'key'
        let sig = sign_hex(&Secret::new("key"), b"hello", "sha256=");
        assert_eq!(
            sig,
            "sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
        );
    }

    /// The pre-keyed state gives what keying afresh gives, for keys shorter
    /// and longer than SHA-256's block (those are hashed first), and one use
    /// does not leak into the next.
    #[test]
    fn keyed_secret_matches_keying_afresh() {
        for key in ["", "k", &"x".repeat(64), &"y".repeat(65), &"z".repeat(200)] {
            let secret = Secret::new(key);
            for body in [&b""[..], b"hello", &[7u8; 1000]] {
                assert_eq!(secret.mac(body), hmac_sha256(key.as_bytes(), body));
                assert_eq!(secret.mac(body), hmac_sha256(key.as_bytes(), body));
            }
        }
    }

    #[test]
    fn accepts_any_case_and_optional_prefix() {
        let s = secrets(&["k"]);
        let plain = sign_hex(&s[0], b"{}", "");
        for header in [
            plain.clone(),
            plain.to_uppercase(),
            format!("sha256={plain}"),
            format!("SHA256={}", plain.to_uppercase()),
            format!("  {plain}  "),
        ] {
            assert_eq!(
                verify(Some(header.as_bytes()), b"{}", &s),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn any_of_several_secrets_matches() {
        let s = secrets(&["old", "new"]);
        let sig = sign_hex(&Secret::new("new"), b"x", "");
        assert_eq!(verify(Some(sig.as_bytes()), b"x", &s), Ok(()));
        let wrong = sign_hex(&Secret::new("other"), b"x", "");
        assert_eq!(
            verify(Some(wrong.as_bytes()), b"x", &s),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_missing_malformed_and_tampered() {
        let s = secrets(&["k"]);
        assert_eq!(verify(None, b"x", &s), Err(SignatureError::Missing));
        assert_eq!(verify(Some(b""), b"x", &s), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some(b"sha256=zz"), b"x", &s),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(b"abcd"), b"x", &s),
            Err(SignatureError::Malformed)
        );
        let sig = sign_hex(&s[0], b"x", "");
        assert_eq!(
            verify(Some(sig.as_bytes()), b"y", &s),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tag_decoding_agrees_with_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        for chunk in bytes.chunks(32) {
            let lower = hex::encode(chunk);
            let expected: [u8; 32] = chunk.try_into().expect("32 bytes");
            assert_eq!(decode_tag(lower.as_bytes()), Some(expected));
            assert_eq!(decode_tag(lower.to_uppercase().as_bytes()), Some(expected));
        }
        let good = "0".repeat(64);
        // The characters either side of each range of digits, anywhere.
        for bad in [b'/', b':', b'@', b'G', b'`', b'g', b' '] {
            for at in [0, 1, 63] {
                let mut digits = good.clone().into_bytes();
                digits[at] = bad;
                assert_eq!(decode_tag(&digits), None, "{}", bad as char);
            }
        }
        assert_eq!(decode_tag(&good.as_bytes()[..63]), None);
        assert_eq!(decode_tag(format!("{good}0").as_bytes()), None);
    }

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
