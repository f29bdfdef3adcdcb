//! Amazon SNS's message signatures. AWS End User Messaging SMS publishes
//! inbound messages and delivery events to an SNS topic, and SNS posts each
//! to an HTTPS subscription as a JSON envelope that carries its own
//! signature: `Signature` is the base64 RSA signature (PKCS #1 v1.5;
//! SHA-1 under `SignatureVersion` 1, SHA-256 under 2) of the envelope's
//! fields, each as `Name\nvalue\n` in a fixed order, by the key of the X.509
//! certificate at `SigningCertURL`.
//!
//! A source's secrets are the topic ARNs it takes: a message from another
//! topic is refused before any certificate is looked at, as AWS asks ("reject
//! any message with an unexpected TopicArn"). The certificate's URL must be
//! `https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-….pem`;
//! where its key comes from (fetched from AWS, or pinned in the config) is
//! [`certificates`]'s business.

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::{Secret, SignatureError};

pub mod certificates;

pub use certificates::Certificates;

/// Where an SNS message carries its signature (a field of the body).
pub const SIGNATURE_FIELD: &str = "Signature";

/// The topic `smshook send`'s samples come from.
pub const SAMPLE_TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:smshook-sms";

/// The fields of an SNS message its signature covers or names. Any may be
/// missing from a body that is not one; [`Envelope::signed_text`] says which.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub message_id: Option<String>,
    pub topic_arn: Option<String>,
    pub subject: Option<String>,
    pub message: Option<String>,
    pub timestamp: Option<String>,
    pub signature_version: Option<String>,
    pub signature: Option<String>,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: Option<String>,
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
}

impl Envelope {
    /// The envelope of `body`; `NotSns` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, SignatureError> {
        serde_json::from_slice(body).map_err(|_| SignatureError::NotSns)
    }

    /// The text SNS signs for a message of this type: `Name\nvalue\n` for
    /// each field it covers, in the order AWS documents. `Subject` only when
    /// the message has one.
    pub fn signed_text(&self) -> Result<String, SignatureError> {
        let names: &[&str] = match self.kind.as_deref() {
            Some("Notification") => &["Message", "MessageId", "Subject", "Timestamp"],
            Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
                &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"]
            }
            _ => return Err(SignatureError::NotSns),
        };
        let mut text = String::with_capacity(512);
        for &name in names.iter().chain(&["TopicArn", "Type"]) {
            match self.field(name) {
                Some(value) => {
                    for part in [name, "\n", value, "\n"] {
                        text.push_str(part);
                    }
                }
                None if name == "Subject" => {}
                None => return Err(SignatureError::NotSns),
            }
        }
        Ok(text)
    }

    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "Message" => self.message.as_deref(),
            "MessageId" => self.message_id.as_deref(),
            "Subject" => self.subject.as_deref(),
            "Timestamp" => self.timestamp.as_deref(),
            "TopicArn" => self.topic_arn.as_deref(),
            "Type" => self.kind.as_deref(),
            "SubscribeURL" => self.subscribe_url.as_deref(),
            "Token" => self.token.as_deref(),
            _ => None,
        }
    }
}

/// Checks an SNS message in `body`: from one of `topics`, its certificate
/// URL AWS's, and signed by a key `certificates` holds for that URL.
pub fn verify(
    body: &[u8],
    topics: &[Secret],
    certificates: Option<&Certificates>,
) -> Result<(), SignatureError> {
    let envelope = Envelope::parse(body)?;
    // Unsigned is no SNS message: raw message delivery sends the carried
    // message alone.
    let signature = super::present(envelope.signature.as_deref().map(str::as_bytes))
        .map_err(|_| SignatureError::NotSns)?;
    let url = admitted(&envelope, topics)?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| SignatureError::MalformedSns)?;
    let algorithm = match envelope.signature_version.as_deref() {
        Some("1") => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        Some("2") => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(SignatureError::SnsVersion),
    };
    let text = envelope.signed_text()?;
    let certificates = certificates.ok_or(SignatureError::Mismatch)?;
    let keys = certificates.keys_for(url)?;
    let verifies = |key: &std::sync::Arc<[u8]>| {
        UnparsedPublicKey::new(algorithm, &key[..])
            .verify(text.as_bytes(), &signature)
            .is_ok()
    };
    // Pinned keys are few; each is tried, as each secret is elsewhere.
    let matched = keys.iter().filter(|key| verifies(key)).count();
    match (matched, certificates.is_pinned()) {
        (0, true) => Err(SignatureError::MismatchPinned),
        (0, false) => Err(SignatureError::Mismatch),
        _ => Ok(()),
    }
}

/// The certificate URL of a message from one of `topics`, once it is
/// AWS's: checked before any certificate is looked up or fetched, so a
/// message from elsewhere costs no request to AWS.
pub fn admitted<'e>(envelope: &'e Envelope, topics: &[Secret]) -> Result<&'e str, SignatureError> {
    let topic = envelope
        .topic_arn
        .as_deref()
        .ok_or(SignatureError::NotSns)?;
    if !topics.iter().any(|t| t.expose() == topic) {
        return Err(SignatureError::UnknownTopic);
    }
    let url = envelope
        .signing_cert_url
        .as_deref()
        .ok_or(SignatureError::NotSns)?;
    certificate_url(url)?;
    Ok(url)
}

/// `url` when it is where SNS keeps its signing certificates:
/// `https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-<id>.pem`,
/// no port, credentials, query or fragment.
pub fn certificate_url(url: &str) -> Result<url::Url, SignatureError> {
    let parsed = aws_url(url).ok_or(SignatureError::SnsCertificateUrl)?;
    let name = parsed
        .path()
        .strip_prefix("/SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"));
    let named = name.is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if named && parsed.query().is_none() {
        Ok(parsed)
    } else {
        Err(SignatureError::SnsCertificateUrl)
    }
}

/// A subscription confirmation's `SubscribeURL`, when it is SNS's own
/// `ConfirmSubscription` action: the only URL smshook ever opens for one.
pub fn subscribe_url(url: &str) -> Option<url::Url> {
    let parsed = aws_url(url)?;
    let confirms = parsed
        .query_pairs()
        .any(|(name, value)| name == "Action" && value == "ConfirmSubscription");
    confirms.then_some(parsed)
}

/// `url` on `https://sns.<region>.amazonaws.com` (or `.com.cn`), with
/// nothing but a path and a query.
fn aws_url(url: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let region = host
        .strip_prefix("sns.")?
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_prefix("sns.")?.strip_suffix(".amazonaws.com.cn"))?;
    let plain = parsed.scheme() == "https"
        && parsed.port().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.fragment().is_none();
    (plain && is_region(region)).then_some(parsed)
}

/// Whether `name` is written as AWS's regions are: `us-east-1`,
/// `us-gov-west-1`, `cn-north-1`. Stricter than "letters, digits and
/// dashes", which would take `sns.s3-us-west-2.amazonaws.com`: the legacy
/// S3 endpoint of a bucket named `sns`, whose files anyone holding that
/// bucket writes.
fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [country, middle @ .., number] if !middle.is_empty() => {
            country.len() == 2
                && letters(country)
                && middle.iter().all(letters)
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A public key as [`verify`] takes it (SubjectPublicKeyInfo, DER) from a
/// PEM certificate, as SNS serves it, or a PEM public key (`openssl x509
/// -pubkey`); an RSA key only.
pub fn public_key_from_pem(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls_pemfile::Item;
    use x509_cert::der::{Decode, Encode};
    let mut rest = pem;
    while let Some((item, after)) =
        rustls_pemfile::read_one_from_slice(rest).map_err(|e| format!("not PEM: {e:?}"))?
    {
        rest = after;
        let spki = match item {
            Item::X509Certificate(der) => x509_cert::Certificate::from_der(&der)
                .map_err(|e| format!("not an X.509 certificate: {e}"))?
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| e.to_string())?,
            Item::SubjectPublicKeyInfo(der) => der.as_ref().to_vec(),
            _ => continue,
        };
        return rsa_only(spki);
    }
    Err("no CERTIFICATE or PUBLIC KEY in it".into())
}

fn rsa_only(spki: Vec<u8>) -> Result<Vec<u8>, String> {
    use x509_cert::der::Decode;
    const RSA: x509_cert::der::oid::ObjectIdentifier =
        x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let info = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(&spki)
        .map_err(|e| format!("not a public key: {e}"))?;
    if info.algorithm.oid == RSA {
        Ok(spki)
    } else {
        Err("not an RSA key; SNS signs with RSA".into())
    }
}

/// `body`, an SNS message without a signature, as SNS would send it
/// signed by `private_key` (PEM, PKCS #8 or PKCS #1) under
/// `SignatureVersion` 2 (`smshook send`, tests). `Signature` is written
/// last.
pub fn sign(private_key: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let key = private_key_from_pem(private_key)?;
    let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an SNS message (a JSON object): {e}"))?;
    fields.insert("SignatureVersion".into(), "2".into());
    fields.remove(SIGNATURE_FIELD);
    let unsigned = serde_json::Value::Object(fields).to_string();
    let text = Envelope::parse(unsigned.as_bytes())
        .and_then(|e| e.signed_text())
        .map_err(|e| e.to_string())?;
    let mut signature = vec![0; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &rng,
        text.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing failed".to_string())?;
    let signature = serde_json::Value::from(STANDARD.encode(signature)).to_string();
    // An object with at least `SignatureVersion`: a field follows a comma.
    let open = unsigned.strip_suffix('}').unwrap_or(&unsigned);
    Ok(format!("{open},\"{SIGNATURE_FIELD}\":{signature}}}").into_bytes())
}

/// The public key (PEM) of a PEM private key: what a source pins to take
/// messages it signs (tests, `smshook send`'s instructions).
pub fn public_key_pem(private_key: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;
    let key = private_key_from_pem(private_key)?;
    let der: PublicKeyX509Der = key.public_key().as_der().map_err(|e| e.to_string())?;
    Ok(pem("PUBLIC KEY", der.as_ref()))
}

fn private_key_from_pem(text: &str) -> Result<aws_lc_rs::rsa::KeyPair, String> {
    use rustls_pemfile::Item;
    let not_a_key = || "give an RSA private key in PEM (openssl genrsa, or req -newkey rsa:2048)";
    match rustls_pemfile::read_one_from_slice(text.as_bytes()) {
        Ok(Some((Item::Pkcs8Key(der), _))) => {
            aws_lc_rs::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| e.to_string())
        }
        Ok(Some((Item::Pkcs1Key(der), _))) => {
            aws_lc_rs::rsa::KeyPair::from_der(der.secret_pkcs1_der()).map_err(|e| e.to_string())
        }
        _ => Err(not_a_key().into()),
    }
}

/// `der` in PEM under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A fresh 2048-bit RSA private key in PEM (PKCS #8), for tests and
/// trying smshook out.
pub fn new_private_key() -> Result<String, String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| e.to_string())?;
    let der: Pkcs8V1Der = key.as_der().map_err(|e| e.to_string())?;
    Ok(pem("PRIVATE KEY", der.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages signed by `openssl dgst` over texts Python built from AWS's
    /// documentation (`testdata/README.md`).
    const NOTIFICATION_V1: &str = include_str!("sns/testdata/notification_v1.json");
    const NOTIFICATION_V2: &str = include_str!("sns/testdata/notification_v2.json");
    const CONFIRMATION_V1: &str = include_str!("sns/testdata/confirmation_v1.json");
    const CERTIFICATE: &str = include_str!("sns/testdata/certificate.pem");
    const PUBLIC_KEY: &str = include_str!("sns/testdata/public_key.pem");
    const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";

    fn topics() -> Vec<Secret> {
        vec![
            Secret::new("arn:aws:sns:us-west-2:123456789012:Other"),
            Secret::new(TOPIC),
        ]
    }

    fn pinned(pems: &[&str]) -> Certificates {
        Certificates::from_pems(pems).expect("keys")
    }

    fn check(body: &str) -> Result<(), SignatureError> {
        verify(body.as_bytes(), &topics(), Some(&pinned(&[CERTIFICATE])))
    }

    /// `body` with `field` set to `value` (a JSON value).
    fn with(body: &str, field: &str, value: serde_json::Value) -> String {
        let mut message: serde_json::Value = serde_json::from_str(body).expect("json");
        message[field] = value;
        message.to_string()
    }

    #[test]
    fn openssls_signatures_verify_under_both_versions() {
        assert_eq!(
            check(NOTIFICATION_V1),
            Ok(()),
            "SHA1withRSA, with a Subject"
        );
        assert_eq!(check(NOTIFICATION_V2), Ok(()), "SHA256withRSA, no Subject");
        assert_eq!(check(CONFIRMATION_V1), Ok(()), "SubscribeURL and Token");
        // The certificate and its bare public key are the same key.
        let by_key = pinned(&[PUBLIC_KEY]);
        assert_eq!(
            verify(NOTIFICATION_V1.as_bytes(), &topics(), Some(&by_key)),
            Ok(())
        );
    }

    #[test]
    fn every_signed_field_is_bound() {
        for (body, fields) in [
            (
                NOTIFICATION_V1,
                &["Message", "MessageId", "Subject", "Timestamp", "TopicArn"][..],
            ),
            (
                CONFIRMATION_V1,
                &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"][..],
            ),
        ] {
            for field in fields {
                let mut message: serde_json::Value = serde_json::from_str(body).expect("json");
                let changed = format!("{}x", message[field].as_str().expect("text"));
                message[*field] = changed.clone().into();
                let topics = [Secret::new(TOPIC), Secret::new(changed)];
                let result = verify(
                    message.to_string().as_bytes(),
                    &topics,
                    Some(&pinned(&[CERTIFICATE])),
                );
                assert_eq!(result, Err(SignatureError::MismatchPinned), "{field}");
            }
        }
        // Unsigned: where to unsubscribe, and the Subject of a confirmation.
        let moved = with(NOTIFICATION_V1, "UnsubscribeURL", "https://x.test/".into());
        assert_eq!(check(&moved), Ok(()));
        let removed = with(NOTIFICATION_V1, "Subject", serde_json::Value::Null);
        assert_eq!(check(&removed), Err(SignatureError::MismatchPinned));
        let v1 = with(NOTIFICATION_V2, "SignatureVersion", "1".into());
        assert_eq!(
            check(&v1),
            Err(SignatureError::MismatchPinned),
            "SHA-1 of a SHA-256 signature"
        );
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(check("[1]"), Err(SignatureError::NotSns));
        assert_eq!(check("not json"), Err(SignatureError::NotSns));
        let unsigned = with(NOTIFICATION_V1, "Signature", serde_json::Value::Null);
        assert_eq!(check(&unsigned), Err(SignatureError::NotSns));
        let other_topic = with(
            NOTIFICATION_V1,
            "TopicArn",
            "arn:aws:sns:us-west-2:1:X".into(),
        );
        assert_eq!(check(&other_topic), Err(SignatureError::UnknownTopic));
        let elsewhere = with(
            NOTIFICATION_V1,
            "SigningCertURL",
            "https://evil.test/SimpleNotificationService-1.pem".into(),
        );
        assert_eq!(check(&elsewhere), Err(SignatureError::SnsCertificateUrl));
        let version = with(NOTIFICATION_V1, "SignatureVersion", "3".into());
        assert_eq!(check(&version), Err(SignatureError::SnsVersion));
        let garbled = with(NOTIFICATION_V1, "Signature", "not base64!".into());
        assert_eq!(check(&garbled), Err(SignatureError::MalformedSns));
        let kind = with(NOTIFICATION_V1, "Type", "Surprise".into());
        assert_eq!(check(&kind), Err(SignatureError::NotSns));
        let no_token = with(CONFIRMATION_V1, "Token", serde_json::Value::Null);
        assert_eq!(check(&no_token), Err(SignatureError::NotSns));
        let other_key = pinned(&[&public_key_pem(&new_private_key().expect("key")).expect("pem")]);
        let by_other = verify(NOTIFICATION_V1.as_bytes(), &topics(), Some(&other_key));
        assert_eq!(by_other, Err(SignatureError::MismatchPinned));
        assert_eq!(
            verify(NOTIFICATION_V1.as_bytes(), &topics(), None),
            Err(SignatureError::Mismatch),
            "a source without keys verifies nothing"
        );
    }

    #[test]
    fn only_snss_certificate_urls_are_taken() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-6209c161c6221fdf56ec1eb5c821d112.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc_D-1.pem",
            "https://sns.eu-central-2.amazonaws.com/SimpleNotificationService-x.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        ] {
            assert!(certificate_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-a.pem",
            "https://evil.test/sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-a.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem#f",
            "https://sns.us-east-1.amazonaws.com/other/SimpleNotificationService-a.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.crt",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a%2F.pem",
            "https://sns..amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.US-EAST-1.amazonaws.com.evil/SimpleNotificationService-a.pem",
            "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
            // A bucket named `sns` on S3's legacy endpoints.
            "https://sns.s3-us-west-2.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.s3-external-1.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.s3.amazonaws.com/SimpleNotificationService-a.pem",
            "https://sns.us-east.amazonaws.com/SimpleNotificationService-a.pem",
            "not a url",
        ] {
            assert!(certificate_url(bad).is_err(), "{bad}");
        }
        let confirm =
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=x";
        assert!(subscribe_url(confirm).is_some());
        for bad in [
            "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=t",
            "https://evil.test/?Action=ConfirmSubscription&Token=x",
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        ] {
            assert!(subscribe_url(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn what_send_signs_verifies_and_tampering_does_not() {
        let key = new_private_key().expect("key");
        let public = public_key_pem(&key).expect("public");
        let old = new_private_key().expect("key");
        let old_public = public_key_pem(&old).expect("public");
        let rotated = pinned(&[&old_public, &public]);
        let unsigned = with(NOTIFICATION_V1, "Signature", serde_json::Value::Null);
        for signer in [&key, &old] {
            let signed = sign(signer, unsigned.as_bytes()).expect("signed");
            assert_eq!(verify(&signed, &topics(), Some(&rotated)), Ok(()));
            let text = String::from_utf8(signed).expect("utf-8");
            assert!(text.contains(r#""SignatureVersion":"2""#));
            let tampered = text.replace("first message", "first massage");
            assert_eq!(
                verify(tampered.as_bytes(), &topics(), Some(&rotated)),
                Err(SignatureError::MismatchPinned)
            );
        }
        assert!(sign("not a key", unsigned.as_bytes()).is_err());
        assert!(sign(&key, b"[]").is_err());
    }

    #[test]
    fn pem_files_give_an_rsa_key_or_say_why_not() {
        let from_certificate = public_key_from_pem(CERTIFICATE.as_bytes()).expect("key");
        let from_key = public_key_from_pem(PUBLIC_KEY.as_bytes()).expect("key");
        assert_eq!(from_certificate, from_key);
        assert!(public_key_from_pem(b"").is_err());
        assert!(public_key_from_pem(b"hello").is_err());
        let private_only = new_private_key().expect("key");
        assert!(public_key_from_pem(private_only.as_bytes()).is_err());
        // An Ed25519 public key: not RSA.
        let ed25519 = pem("PUBLIC KEY", &ed25519_spki());
        let e = public_key_from_pem(ed25519.as_bytes()).expect_err("not RSA");
        assert!(e.contains("RSA"), "{e}");
    }

    /// An Ed25519 SubjectPublicKeyInfo (RFC 8410): its prefix, then 32 bytes.
    fn ed25519_spki() -> Vec<u8> {
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend([7u8; 32]);
        der
    }
}
