//! Vonage's SMS API (the older API beside the Messages API) signs a webhook
//! with a parameter, `sig`, among the others: in the query (the dashboard's
//! `GET`), the form body (`POST`) or the JSON body (`POST-JSON`). It is made
//! over every other parameter sorted by name, written `&name=value` with any
//! `&` or `=` in either as `_`, under the account's signature secret, by the
//! method chosen in the dashboard: MD5 of that text followed by the secret
//! ("MD5 hash", the default), or HMAC-MD5, -SHA1, -SHA256 or -SHA512 of it,
//! as hex in either case.
//!
//! The method is told by the signature's length: 32 hex digits are one of
//! the two MD5 methods (both are tried), 40 SHA-1, 64 SHA-256, 128 SHA-512.
//! A sender cannot choose a weaker method to forge one: every method needs
//! the secret. Vonage's own libraries differ on a parameter with an empty
//! value (PHP and Python sign `&name=`, Java leaves it out): both are tried.
//! So a parameter with no value is not bound by the signature (one could
//! be added to a signed webhook); it carries nothing, and normalization
//! reads an empty value as none. Each candidate under each secret is
//! compared, in constant time.

use std::borrow::Cow;

use aws_lc_rs::hmac as lc;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use super::{Params, Secret, SignatureError};
use crate::providers::payload::{Node, parse_object};

/// The parameter the signature is in.
pub const SIG: &str = "sig";
/// The Unix time Vonage signs with (and `sign` adds when it is missing).
const TIMESTAMP: &str = "timestamp";

/// The signing methods the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Md5Hash,
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha512,
}

impl Method {
    /// The methods whose signatures are `len` bytes long.
    fn of_length(len: usize) -> &'static [Method] {
        match len {
            16 => &[Method::Md5Hash, Method::HmacMd5],
            20 => &[Method::HmacSha1],
            32 => &[Method::HmacSha256],
            64 => &[Method::HmacSha512],
            _ => &[],
        }
    }

    fn mac(self, secret: &str, text: &str) -> Vec<u8> {
        let aws = |algorithm| {
            let key = lc::Key::new(algorithm, secret.as_bytes());
            lc::sign(&key, text.as_bytes()).as_ref().to_vec()
        };
        match self {
            Method::Md5Hash => Md5::new()
                .chain_update(text)
                .chain_update(secret)
                .finalize()
                .to_vec(),
            Method::HmacMd5 => <Hmac<Md5> as KeyInit>::new_from_slice(secret.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
                .chain_update(text)
                .finalize()
                .into_bytes()
                .to_vec(),
            Method::HmacSha1 => aws(lc::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            Method::HmacSha256 => aws(lc::HMAC_SHA256),
            Method::HmacSha512 => aws(lc::HMAC_SHA512),
        }
    }
}

/// A webhook's parameters, and whether they came as JSON: the JSON body's
/// members, else the form body's, else (no body: `GET`) the query's. The
/// query of a request with a body is not Vonage's: it is not read.
pub fn params<'a>(
    query: Option<&'a str>,
    body: &'a [u8],
) -> Result<(Params<'a>, bool), SignatureError> {
    let text = body.trim_ascii();
    if text.first() == Some(&b'{') {
        return json_params(text).map(|p| (p, true));
    }
    // Space around a form is no part of it (a file piped to `smshook sign`
    // ends with a newline; Vonage sends none).
    let source = if text.is_empty() {
        query.unwrap_or_default().as_bytes()
    } else {
        text
    };
    Ok((form_urlencoded::parse(source).collect(), false))
}

/// A JSON body's members as parameters: strings as they are, numbers and
/// booleans as JSON writes them, `null` as empty.
fn json_params(body: &[u8]) -> Result<Params<'_>, SignatureError> {
    let text = std::str::from_utf8(body).map_err(|_| SignatureError::Unreadable)?;
    let object = parse_object(text).map_err(|_| SignatureError::Unreadable)?;
    object
        .fields()
        .iter()
        .map(|(name, value)| {
            let value: Cow<str> = match value {
                Node::String(s) => s.clone(),
                Node::Number(n) => n.to_string().into(),
                Node::Bool(b) => b.to_string().into(),
                Node::Null => "".into(),
                Node::Array(_) | Node::Object(_) => return Err(SignatureError::Unreadable),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// Checks the `sig` among `params` against every method its length allows,
/// under every secret. A parameter sent twice is refused: only one of its
/// values could have been signed, and the other would be stored.
pub fn verify(params: &[(Cow<str>, Cow<str>)], secrets: &[Secret]) -> Result<(), SignatureError> {
    let sig = params
        .iter()
        .find(|(name, _)| name == SIG)
        .map(|(_, value)| value.as_bytes());
    let sig = super::present(sig).map_err(|_| SignatureError::MissingSig)?;
    let tag = hex::decode(sig).map_err(|_| SignatureError::MalformedSig)?;
    let methods = Method::of_length(tag.len());
    if methods.is_empty() {
        return Err(SignatureError::MalformedSig);
    }
    if repeats_a_name(params) {
        return Err(SignatureError::RepeatedParam);
    }
    let texts = signed_texts(params);
    let computed = secrets.iter().flat_map(|secret| {
        let texts = &texts;
        methods.iter().flat_map(move |method| {
            texts
                .iter()
                .map(move |text| method.mac(secret.expose(), text))
        })
    });
    super::any_matches(computed, &tag)
}

fn repeats_a_name(params: &[(Cow<str>, Cow<str>)]) -> bool {
    let mut names: Vec<&str> = params.iter().map(|(name, _)| name.as_ref()).collect();
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
}

/// The texts Vonage may have signed: with every parameter, and (when some
/// value is blank) without the blank ones.
fn signed_texts(params: &[(Cow<str>, Cow<str>)]) -> Vec<String> {
    let mut texts = vec![signed_text(params, false)];
    if params.iter().any(|(_, value)| value.trim().is_empty()) {
        texts.push(signed_text(params, true));
    }
    texts
}

/// `&name=value` for each parameter but `sig`, sorted by name, with `&` and
/// `=` written `_`.
fn signed_text(params: &[(Cow<str>, Cow<str>)], skip_blank: bool) -> String {
    let mut sorted: Vec<_> = params
        .iter()
        .filter(|(name, value)| name != SIG && !(skip_blank && value.trim().is_empty()))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let clean = |text: &str| text.replace(['&', '='], "_");
    sorted
        .iter()
        .map(|(name, value)| format!("&{}={}", clean(name), clean(value)))
        .collect()
}

/// `params` with a `timestamp` (`now`, when they have none) and the `sig`
/// Vonage would send under `secret` by `method`, in upper case as Vonage
/// writes HMACs (`smshook send`, tests).
pub fn sign(
    params: &[(Cow<str>, Cow<str>)],
    secret: &str,
    method: Method,
    now: i64,
) -> Vec<(String, String)> {
    let mut signed: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| name != SIG)
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if !signed.iter().any(|(name, _)| name == TIMESTAMP) {
        signed.push((TIMESTAMP.into(), now.to_string()));
    }
    let as_params: Params = signed
        .iter()
        .map(|(n, v)| (Cow::from(n.as_str()), Cow::from(v.as_str())))
        .collect();
    let tag = hex::encode_upper(method.mac(secret, &signed_text(&as_params, false)));
    signed.push((SIG.into(), tag));
    signed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    fn owned(pairs: &[(&str, &str)]) -> Params<'static> {
        pairs
            .iter()
            .map(|(n, v)| (Cow::Owned(n.to_string()), Cow::Owned(v.to_string())))
            .collect()
    }

    fn with_sig(pairs: &[(&str, &str)], sig: &str) -> Params<'static> {
        let mut params = owned(pairs);
        params.push((SIG.into(), sig.to_string().into()));
        params
    }

    /// An inbound message of Vonage's PHP library's tests.
    const INBOUND: &[(&str, &str)] = &[
        ("message-timestamp", "2013-11-21 15:27:30"),
        ("messageId", "020000001B0FE827"),
        ("msisdn", "14843472194"),
        ("text", "Test again"),
        ("timestamp", "1385047698"),
        ("to", "13239877404"),
        ("type", "text"),
    ];
    const SECRET: &str = "my_secret_key_for_testing";

    /// Vonage's PHP library's vectors, one per method.
    #[test]
    fn every_dashboard_method_as_vonages_libraries_sign() {
        for sig in [
            "d2e7b1dc968737c5998ad624e02f90b7",
            "DDEBD46008C2D4E93CCE578A332A52D5",
            "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
            "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
            "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481C\
             D3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
        ] {
            let params = with_sig(INBOUND, sig);
            assert_eq!(verify(&params, &secrets(&[SECRET])), Ok(()), "{sig}");
            let lower = with_sig(INBOUND, &sig.to_lowercase());
            assert_eq!(verify(&lower, &secrets(&[SECRET])), Ok(()), "either case");
            let wrong = verify(&params, &secrets(&["another"]));
            assert_eq!(wrong, Err(SignatureError::Mismatch), "{sig}");
        }
    }

    /// A real inbound webhook (PHP library's tests): `&` and `=` in the text
    /// are signed as `_`, and the order of the parameters does not matter.
    #[test]
    fn ampersands_and_equals_are_signed_as_underscores() {
        let mut params = with_sig(
            &[
                ("type", "text"),
                ("keyword", "TEST"),
                ("message-timestamp", "2017-04-04 22:57:47"),
                ("messageId", "0B00000042AC53BD"),
                ("msisdn", "14843472194"),
                ("nonce", "929d6744-bd28-42c8-b6cf-31d5b4f43732"),
                ("text", "Test with & and ="),
                ("timestamp", "1491346667"),
                ("to", "12192259404"),
            ],
            "e06d9763e3fd0b9c31beb5fc2fcb011c",
        );
        let keys = secrets(&["old", SECRET]);
        assert_eq!(verify(&params, &keys), Ok(()));
        params[6].1 = "Test with _ and _!".into();
        assert_eq!(verify(&params, &keys), Err(SignatureError::Mismatch));
    }

    /// Python library's vector, and a blank value signed either way.
    #[test]
    fn blank_values_are_tried_with_and_without() {
        let base = [("a", "1"), ("b", "2"), ("timestamp", "1461605396")];
        let python = with_sig(&base, "6af838ef94998832dbfc29020b564830");
        assert_eq!(verify(&python, &secrets(&["secret"])), Ok(()));
        let mut blank = base.to_vec();
        blank.push(("client-ref", ""));
        let dropped = with_sig(&blank, "6af838ef94998832dbfc29020b564830");
        assert_eq!(verify(&dropped, &secrets(&["secret"])), Ok(()), "Java");
        let kept = sign(&owned(&blank), "secret", Method::HmacSha256, 0);
        let kept: Params = kept
            .iter()
            .map(|(n, v)| (Cow::from(n.as_str()), Cow::from(v.as_str())))
            .collect();
        assert_eq!(verify(&kept, &secrets(&["secret"])), Ok(()), "PHP");
    }

    #[test]
    fn refuses_what_vonage_did_not_sign() {
        let keys = secrets(&[SECRET]);
        let check = |params: Params| verify(&params, &keys);
        assert_eq!(check(owned(INBOUND)), Err(SignatureError::MissingSig));
        assert_eq!(
            check(with_sig(INBOUND, " ")),
            Err(SignatureError::MissingSig)
        );
        for bad in ["zz", "abcd", &"a".repeat(33), &"0".repeat(48)] {
            assert_eq!(
                check(with_sig(INBOUND, bad)),
                Err(SignatureError::MalformedSig),
                "{bad}"
            );
        }
        let mut twice = with_sig(INBOUND, "d2e7b1dc968737c5998ad624e02f90b7");
        twice.push(("text".into(), "another text".into()));
        assert_eq!(check(twice), Err(SignatureError::RepeatedParam));
    }

    #[test]
    fn params_come_from_json_a_form_or_the_query() {
        let json = br#"{"msisdn":"447700900001","timestamp":1582650446,"concat":true,"x":null}"#;
        let (params, is_json) = params(Some("ignored=1"), json).expect("json");
        assert!(is_json);
        assert_eq!(
            params,
            owned(&[
                ("msisdn", "447700900001"),
                ("timestamp", "1582650446"),
                ("concat", "true"),
                ("x", "")
            ])
        );
        let (form, is_json) = super::params(Some("ignored=1"), b"text=a+b%26c").expect("form");
        assert_eq!((form, is_json), (owned(&[("text", "a b&c")]), false));
        let (query, _) = super::params(Some("msisdn=1&sig=ab"), b"").expect("query");
        assert_eq!(query, owned(&[("msisdn", "1"), ("sig", "ab")]));
        for unreadable in [&b"{not json"[..], br#"{"a":[1]}"#, b"{\"a\":\"\xff\"}"] {
            assert_eq!(
                super::params(None, unreadable).map(|_| ()),
                Err(SignatureError::Unreadable)
            );
        }
    }

    #[test]
    fn signing_adds_a_timestamp_and_the_sig() {
        for method in [
            Method::Md5Hash,
            Method::HmacMd5,
            Method::HmacSha1,
            Method::HmacSha256,
            Method::HmacSha512,
        ] {
            let signed = sign(&owned(&[("msisdn", "1")]), "s", method, 1700000000);
            assert_eq!(signed[1], ("timestamp".into(), "1700000000".into()));
            assert_eq!(signed[2].0, "sig");
            let params: Params = signed
                .iter()
                .map(|(n, v)| (Cow::from(n.as_str()), Cow::from(v.as_str())))
                .collect();
            assert_eq!(verify(&params, &secrets(&["s"])), Ok(()), "{method:?}");
        }
    }
}
