//! HS256 JSON Web Tokens as Vonage's Messages API signs its webhooks: a
//! `Authorization: Bearer <JWT>` header whose signature is HMAC-SHA256 of
//! `<header>.<claims>` under the account's signature secret, and whose
//! `payload_hash` claim is the SHA-256 (hex) of the body, which binds the
//! token to the exact bytes received.
//!
//! Only the signature and `payload_hash` are checked. Vonage's token also
//! carries `iat`, but its documentation does not say a retry is signed
//! anew, so refusing old tokens could refuse a legitimate retry; a replayed
//! webhook is the same event again and is stored once anyway.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Secret, SignatureError};

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    payload_hash: Option<String>,
}

/// Checks the `Authorization` header's token against each secret (all of
/// them, in constant time, as HMAC signatures are), then its `payload_hash`
/// against `body`.
pub fn verify(
    authorization: Option<&[u8]>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let token = bearer(super::present(authorization)?).ok_or(SignatureError::MalformedJwt)?;
    let (signed, signature) = token.rsplit_once('.').ok_or(SignatureError::MalformedJwt)?;
    let (header, claims) = signed.split_once('.').ok_or(SignatureError::MalformedJwt)?;
    let header: Header = decode_json(header).ok_or(SignatureError::MalformedJwt)?;
    if header.alg != "HS256" {
        return Err(SignatureError::MalformedJwt);
    }
    let tag: [u8; 32] =
        super::base64_array(&URL_SAFE_NO_PAD, signature).ok_or(SignatureError::MalformedJwt)?;
    let computed = secrets.iter().map(|secret| secret.mac(signed.as_bytes()));
    super::any_matches(computed, &tag)?;
    let claims: Claims = decode_json(claims).ok_or(SignatureError::MalformedJwt)?;
    let hash = hex::encode(Sha256::digest(body));
    match claims.payload_hash {
        Some(claimed) if claimed.eq_ignore_ascii_case(&hash) => Ok(()),
        _ => Err(SignatureError::PayloadHash),
    }
}

/// The token after `Bearer ` (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(super::credentials(value, "bearer")?).ok()
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The `Authorization` value Vonage would send with `body` at Unix time
/// `now` (`smshook send`, tests).
pub fn sign(secret: &Secret, body: &[u8], now: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iat": now,
        "jti": ulid::Ulid::generate().to_string(),
        "iss": "Vonage",
        "payload_hash": hex::encode(Sha256::digest(body)),
        "api_key": "smshook-send",
        "application_id": "00000000-0000-0000-0000-000000000000",
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let tag = URL_SAFE_NO_PAD.encode(secret.mac(signed.as_bytes()));
    format!("Bearer {signed}.{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    /// The token from jwt.io's HS256 example (secret `your-256-bit-secret`)
    /// has a valid signature but no `payload_hash`: this reads JWTs as
    /// others write them, and a token without the hash is refused.
    #[test]
    fn reads_a_token_written_elsewhere() {
        let token = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
            SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let s = secrets(&["your-256-bit-secret"]);
        assert_eq!(
            verify(Some(token.as_bytes()), b"{}", &s),
            Err(SignatureError::PayloadHash)
        );
        let other = secrets(&["another-secret"]);
        assert_eq!(
            verify(Some(token.as_bytes()), b"{}", &other),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signs_and_verifies_with_any_secret_and_binds_the_body() {
        let s = secrets(&["old", "new"]);
        let header = sign(&s[1], b"{\"a\":1}", 1_764_806_400);
        assert_eq!(verify(Some(header.as_bytes()), b"{\"a\":1}", &s), Ok(()));
        let lower = header.replacen("Bearer", "bearer", 1);
        assert_eq!(verify(Some(lower.as_bytes()), b"{\"a\":1}", &s), Ok(()));
        assert_eq!(
            verify(Some(header.as_bytes()), b"{\"a\":2}", &s),
            Err(SignatureError::PayloadHash)
        );
        assert_eq!(
            verify(Some(header.as_bytes()), b"{\"a\":1}", &secrets(&["other"])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_missing_malformed_and_other_algorithms() {
        let s = secrets(&["k"]);
        assert_eq!(verify(None, b"{}", &s), Err(SignatureError::Missing));
        assert_eq!(verify(Some(b"  "), b"{}", &s), Err(SignatureError::Missing));
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer nodots",
            "Bearer a.b",
            "Bearer a.b.c",
        ] {
            assert_eq!(
                verify(Some(bad.as_bytes()), b"{}", &s),
                Err(SignatureError::MalformedJwt),
                "{bad}"
            );
        }
        // `alg: none` with an empty signature, the classic forgery.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"payload_hash":"x"}"#);
        let forged = format!("Bearer {none}.{claims}.");
        assert_eq!(
            verify(Some(forged.as_bytes()), b"{}", &s),
            Err(SignatureError::MalformedJwt)
        );
    }
}
