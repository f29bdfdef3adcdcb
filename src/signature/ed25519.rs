//! Ed25519 webhook signatures, as Telnyx signs: base64 of an Ed25519
//! signature over `{timestamp}|{raw body}`, with the Unix time in a header of
//! its own, checked against the account's public key and refused outside a
//! five-minute window so a captured webhook cannot be replayed later.
//!
//! A source keeps public keys where HMAC providers keep shared secrets (in
//! its `secrets`, so rotation works the same way: any key matching is
//! enough). A public key is no secret, but it is held in the same
//! [`Secret`] type and never logged all the same. Signing needs the private
//! key, which only the provider has: [`sign`] and [`KeyPair`] are for tests,
//! `smshook send` and `smshook keypair`.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Secret, SignatureError};

/// How far a webhook's timestamp may be from the server's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// The 32 bytes of a public key given as base64, or `None` when it is not one.
pub fn public_key(value: &str) -> Option<[u8; 32]> {
    base64_32(value)
}

/// 32 bytes given as base64 (a public key, or a private key's seed).
fn base64_32(value: &str) -> Option<[u8; 32]> {
    super::base64_array(&STANDARD, value.trim())
}

/// Checks `signature` (base64) over `timestamp|body` against each key, and
/// that `timestamp` (Unix seconds) is within [`TOLERANCE_SECS`] of `now`.
/// Every key is tried; none is secret, so this need not be constant-time.
pub fn verify(
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    keys: &[Secret],
    now: i64,
) -> Result<(), SignatureError> {
    let signature: [u8; 64] = super::base64_array(&STANDARD, super::present(signature)?)
        .ok_or(SignatureError::MalformedEd25519)?;
    let timestamp = timestamp.map(<[u8]>::trim_ascii).unwrap_or_default();
    let seconds = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(SignatureError::BadTimestamp)?;
    if now.abs_diff(seconds) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let message = signed_message(timestamp, body);
    let matched = keys.iter().filter_map(|k| public_key(k.expose())).any(|k| {
        UnparsedPublicKey::new(&ED25519, k)
            .verify(&message, &signature)
            .is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn signed_message(timestamp: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp);
    message.push(b'|');
    message.extend_from_slice(body);
    message
}

/// A signing key made from a 32-byte seed, given as base64.
pub struct KeyPair(Ed25519KeyPair);

impl KeyPair {
    /// Reads a private key: base64 of its 32-byte seed.
    pub fn from_seed(value: &str) -> Result<Self, String> {
        let seed = base64_32(value).ok_or(
            "an Ed25519 private key is the base64 of its 32-byte seed (see `smshook keypair`)",
        )?;
        Ed25519KeyPair::from_seed_unchecked(&seed)
            .map(Self)
            .map_err(|e| format!("not an Ed25519 seed: {e}"))
    }

    /// A fresh key pair: (private key, public key), both base64.
    pub fn generate() -> (String, String) {
        let seed: [u8; 32] = rand::random();
        let seed = STANDARD.encode(seed);
        let public = Self::from_seed(&seed)
            .map(|k| k.public())
            .unwrap_or_else(|e| unreachable!("any 32 bytes are a seed: {e}"));
        (seed, public)
    }

    /// The public key, base64: what a source takes in `secrets`.
    pub fn public(&self) -> String {
        STANDARD.encode(self.0.public_key().as_ref())
    }

    /// The signature header's value for `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let message = signed_message(timestamp.to_string().as_bytes(), body);
        STANDARD.encode(self.0.sign(&message).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_806_400;

    fn pair() -> (KeyPair, Secret) {
        let (seed, public) = KeyPair::generate();
        (
            KeyPair::from_seed(&seed).expect("seed"),
            Secret::new(public),
        )
    }

    fn check(sig: &str, ts: &str, body: &[u8], keys: &[Secret]) -> Result<(), SignatureError> {
        verify(Some(sig.as_bytes()), Some(ts.as_bytes()), body, keys, NOW)
    }

    /// RFC 8032, section 7.1, test 2: this implementation signs and
    /// verifies as the standard says (the message there is one byte, 0x72).
    #[test]
    fn matches_rfc8032_test_vector() {
        let seed = hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
            .expect("hex");
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        assert_eq!(
            hex::encode(key.public_key().as_ref()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        assert_eq!(
            hex::encode(key.sign(&[0x72]).as_ref()),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
    }

    #[test]
    fn signs_timestamp_bar_body_and_verifies_with_any_key() {
        let (key, public) = pair();
        let (_, other) = pair();
        let sig = key.sign(NOW, b"{}");
        let ts = NOW.to_string();
        assert_eq!(
            check(&sig, &ts, b"{}", &[other.clone(), public.clone()]),
            Ok(())
        );
        assert_eq!(
            check(&sig, &ts, b"{ }", std::slice::from_ref(&public)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&sig, &ts, b"{}", &[other]),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = (NOW + 1).to_string();
        assert_eq!(
            check(&sig, &moved, b"{}", &[public]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_missing_malformed_and_stale() {
        let (key, public) = pair();
        let keys = [public];
        let sig = key.sign(NOW, b"x");
        let ts = NOW.to_string();
        assert_eq!(
            verify(None, Some(ts.as_bytes()), b"x", &keys, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check("not base64!", &ts, b"x", &keys),
            Err(SignatureError::MalformedEd25519)
        );
        assert_eq!(
            check("AAAA", &ts, b"x", &keys),
            Err(SignatureError::MalformedEd25519)
        );
        assert_eq!(
            verify(Some(sig.as_bytes()), None, b"x", &keys, NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            check(&sig, "yesterday", b"x", &keys),
            Err(SignatureError::BadTimestamp)
        );
        for skew in [TOLERANCE_SECS, -TOLERANCE_SECS] {
            let at = NOW + skew;
            assert_eq!(
                check(&key.sign(at, b"x"), &at.to_string(), b"x", &keys),
                Ok(())
            );
        }
        for skew in [TOLERANCE_SECS + 1, -TOLERANCE_SECS - 1] {
            let at = NOW + skew;
            let stale = check(&key.sign(at, b"x"), &at.to_string(), b"x", &keys);
            assert_eq!(stale, Err(SignatureError::Stale), "{skew}");
        }
    }

    #[test]
    fn keys_are_base64_of_32_bytes() {
        let (_, public) = KeyPair::generate();
        assert!(public_key(&public).is_some());
        assert!(public_key(&format!(" {public}\n")).is_some());
        assert!(public_key("c2hvcnQ=").is_none());
        assert!(public_key("whsec-not-a-key").is_none());
        assert!(KeyPair::from_seed("c2hvcnQ=").is_err());
    }
}
