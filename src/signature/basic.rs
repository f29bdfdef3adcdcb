//! HTTP Basic credentials, as Bandwidth authenticates its callbacks:
//! `Authorization: Basic base64(user:password)`, the application's callback
//! credentials. A source's secrets are those credentials, each written
//! `user:password` (several at once while they are changed). The check
//! compares SHA-256 digests in constant time, every secret whatever
//! matched, so neither timing nor length says anything about a secret.
//! The credentials are the same on every webhook: they prove the sender
//! knows them, not that the body is the one sent, which only HTTPS keeps.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::{Secret, SignatureError};

/// Checks the `Authorization` header against every secret.
pub fn verify(header: Option<&[u8]>, secrets: &[Secret]) -> Result<(), SignatureError> {
    let value = super::present(header).map_err(|_| SignatureError::MissingCredentials)?;
    let encoded = super::credentials(value, "basic").ok_or(SignatureError::MalformedBasic)?;
    let credentials = STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::MalformedBasic)?;
    let claimed = Sha256::digest(&credentials);
    let configured = secrets
        .iter()
        .map(|secret| Sha256::digest(secret.expose().as_bytes()));
    super::any_matches(configured, &claimed)
}

/// The header a sender with `credentials` (`user:password`) sends.
pub fn header_value(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

/// Whether `secret` can be Basic credentials: a user and a password.
pub fn is_credentials(secret: &str) -> bool {
    secret
        .split_once(':')
        .is_some_and(|(user, _)| !user.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    fn check(header: &str, keys: &[&str]) -> Result<(), SignatureError> {
        verify(Some(header.as_bytes()), &secrets(keys))
    }

    #[test]
    fn credentials_verify_in_any_case_of_the_scheme() {
        // RFC 7617's example: Aladdin / open sesame.
        let aladdin = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
        assert_eq!(header_value("Aladdin:open sesame"), aladdin);
        let keys = ["old:one", "Aladdin:open sesame"];
        assert_eq!(check(aladdin, &keys), Ok(()));
        assert_eq!(check("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &keys), Ok(()));
        assert_eq!(
            check(aladdin, &["Aladdin:open sesame!"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn what_is_not_basic_credentials_is_refused() {
        let keys = ["user:pass"];
        assert_eq!(
            verify(None, &secrets(&keys)),
            Err(SignatureError::MissingCredentials)
        );
        assert_eq!(check("  ", &keys), Err(SignatureError::MissingCredentials));
        for bad in ["Bearer abc", "Basic", "Basic !!!", "dXNlcjpwYXNz"] {
            assert_eq!(
                check(bad, &keys),
                Err(SignatureError::MalformedBasic),
                "{bad}"
            );
        }
        assert!(is_credentials("user:pass") && is_credentials("user:"));
        assert!(!is_credentials("password") && !is_credentials(":password"));
    }
}
