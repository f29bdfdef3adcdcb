//! Plivo's messaging callbacks (signature V2): `X-Plivo-Signature-V2` is
//! the base64 HMAC-SHA256, under the Auth Token of the account or
//! subaccount that owns the number, of the URL Plivo posted to (without its
//! query) followed by `X-Plivo-Signature-V2-Nonce`; `X-Plivo-Signature-Ma-V2`
//! is the same under the main account's Auth Token. Either matching any
//! secret of the source is enough, so a source may hold a subaccount's
//! token, the main account's, or both. Each is checked in constant time.
//!
//! V2 does not sign the body: a captured signature verifies with any body
//! posted to the same URL with the same nonce. Only HTTPS keeps the body
//! whole (Plivo's messaging callbacks carry no V3 signature, which would
//! cover the parameters).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::public_url::PublicUrl;
use super::{Secret, SignatureError};

pub const SIGNATURE_HEADER: &str = "x-plivo-signature-v2";
pub const MAIN_ACCOUNT_HEADER: &str = "x-plivo-signature-ma-v2";
pub const NONCE_HEADER: &str = "x-plivo-signature-v2-nonce";

/// The headers a Plivo callback is signed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub signature: Option<&'a [u8]>,
    pub main_account: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
}

/// Checks both signatures, each against every secret, over `url`.
pub fn verify(headers: Headers, url: &PublicUrl, secrets: &[Secret]) -> Result<(), SignatureError> {
    let signed = [headers.signature, headers.main_account]
        .into_iter()
        .filter_map(|header| super::present(header).ok())
        .collect::<Vec<_>>();
    if signed.is_empty() {
        return Err(SignatureError::Missing);
    }
    let nonce = super::present(headers.nonce).map_err(|_| SignatureError::MissingPlivoNonce)?;
    let computed: Vec<[u8; 32]> = secrets
        .iter()
        .map(|secret| mac(secret, &url.text, nonce))
        .collect();
    let mut outcome = Err(SignatureError::MalformedBase64Sha256);
    for value in signed {
        let Some(tag) = super::base64_tag(value, 32) else {
            continue;
        };
        let matched = super::any_matches(&computed, &tag);
        outcome = outcome.or(matched.map_err(|_| SignatureError::MismatchOverUrl));
    }
    outcome
}

/// The headers Plivo would send for a callback posted to `url` (its query
/// is not signed) with `nonce`, under `token` (`smshook send`, tests).
pub fn sign(token: &str, url: &str, nonce: &str) -> [(&'static str, String); 2] {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    let tag = mac(&Secret::new(token), base, nonce.as_bytes());
    [
        (SIGNATURE_HEADER, STANDARD.encode(tag)),
        (NONCE_HEADER, nonce.to_string()),
    ]
}

/// HMAC-SHA256 of the URL and then the nonce.
fn mac(secret: &Secret, url: &str, nonce: &[u8]) -> [u8; 32] {
    secret.mac_parts(&[url.as_bytes(), nonce])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    /// Plivo's Ruby library's test: this URL, nonce and token give this
    /// signature.
    const URL: &str = "https://answer.url";
    const NONCE: &str = "12345";
    const SIGNATURE: &str = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=";

    fn check(headers: Headers, keys: &[&str]) -> Result<(), SignatureError> {
        let url = PublicUrl::parse(URL).expect("a URL");
        verify(headers, &url, &secrets(keys))
    }

    fn v2(signature: &str) -> Headers<'_> {
        Headers {
            signature: Some(signature.as_bytes()),
            main_account: None,
            nonce: Some(NONCE.as_bytes()),
        }
    }

    #[test]
    fn signs_as_plivos_libraries_do() {
        let keys = ["old", "my_auth_token"];
        assert_eq!(check(v2(SIGNATURE), &keys), Ok(()));
        let [(_, sig), (_, nonce)] = sign("my_auth_token", "https://answer.url?x=1", NONCE);
        assert_eq!((sig.as_str(), nonce.as_str()), (SIGNATURE, NONCE));
        assert_eq!(
            check(v2(SIGNATURE), &["my_auth_tokens"]),
            Err(SignatureError::MismatchOverUrl)
        );
        let other_nonce = Headers {
            nonce: Some(b"12346"),
            ..v2(SIGNATURE)
        };
        assert_eq!(
            check(other_nonce, &keys),
            Err(SignatureError::MismatchOverUrl)
        );
    }

    /// A subaccount's number: V2 under its token, Ma-V2 under the main
    /// account's. A source holding either verifies.
    #[test]
    fn the_main_accounts_signature_verifies_too() {
        let [(_, main), _] = sign("main-token", URL, NONCE);
        let both = Headers {
            main_account: Some(main.as_bytes()),
            ..v2(SIGNATURE)
        };
        assert_eq!(check(both, &["main-token"]), Ok(()));
        assert_eq!(check(both, &["my_auth_token"]), Ok(()));
        assert_eq!(
            check(both, &["neither"]),
            Err(SignatureError::MismatchOverUrl)
        );
        let main_only = Headers {
            signature: None,
            ..both
        };
        assert_eq!(check(main_only, &["main-token"]), Ok(()));
        let garbled_v2 = Headers {
            signature: Some(b"abc"),
            ..both
        };
        assert_eq!(check(garbled_v2, &["main-token"]), Ok(()));
    }

    #[test]
    fn refuses_what_plivo_did_not_sign() {
        let keys = ["my_auth_token"];
        assert_eq!(
            check(Headers::default(), &keys),
            Err(SignatureError::Missing)
        );
        let no_nonce = Headers {
            nonce: None,
            ..v2(SIGNATURE)
        };
        assert_eq!(
            check(no_nonce, &keys),
            Err(SignatureError::MissingPlivoNonce)
        );
        assert_eq!(
            check(v2("abc"), &keys),
            Err(SignatureError::MalformedBase64Sha256)
        );
    }
}
