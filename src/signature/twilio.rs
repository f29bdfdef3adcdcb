//! Twilio's `X-Twilio-Signature`: base64 of HMAC-SHA1, under the account's
//! Auth Token, of the URL Twilio posted to followed by every form parameter
//! of the body, sorted by name and then value, each written as name + value.
//!
//! Where a Webhook Rule (Twilio's Webhooks configuration API) matches the
//! URL, Twilio signs under a SharedKey instead, with the algorithm its
//! Setting names, and says so in `X-Twilio-Webhooks-Signature-Settings:
//! key=<SharedKey SID>,algorithm=HMAC_SHA256`. Only the hash changes: the
//! signed text is the same. The header picks the algorithm ([`Algorithm`]);
//! every secret of the source is tried under it, so a source may hold the
//! Auth Token and SharedKeys at once, as while moving to a SharedKey or
//! rotating one (a Rule may name two Settings during a rotation). The
//! header cannot weaken the check: every algorithm needs a secret.
//!
//! The URL is the one registered with Twilio, which smshook cannot rebuild
//! from the request behind a reverse proxy or a TLS terminator: a source
//! names it (`public_url`, [`PublicUrl`]), and smshook appends the query the
//! request carries. As Twilio's own libraries do, the URL is tried without a
//! port and with one (the default port when it names none): Twilio signs one
//! way or the other; and a query is also tried as Node's legacy
//! `querystring` writes it. A JSON body (Twilio's newer products) is signed
//! with no parameters and named by a `bodySHA256` query parameter instead,
//! which must be the body's SHA-256.

use std::borrow::Cow;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::Params;
use super::public_url::PublicUrl;
use super::{Secret, SignatureError};

/// The query parameter naming a JSON body's SHA-256.
const BODY_HASH: &str = "bodySHA256";

/// The header naming the SharedKey and algorithm a Webhook Rule signs with.
pub const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// The HMAC a webhook is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Twilio's default, under the Auth Token (or a SharedKey set to it).
    Sha1,
    /// A SharedKey's Setting that names `HMAC_SHA256`.
    Sha256,
}

impl Algorithm {
    /// The algorithm `settings` (the [`SETTINGS_HEADER`]) names, or SHA-1
    /// without one. Its `key` is the SharedKey's SID, which the source's
    /// secrets do not need: each is tried.
    pub fn from_settings(settings: Option<&[u8]>) -> Result<Self, SignatureError> {
        let Some(settings) = settings else {
            return Ok(Self::Sha1);
        };
        let text = std::str::from_utf8(settings).map_err(|_| SignatureError::BadSettings)?;
        let named = text
            .split(',')
            .filter_map(|part| part.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("algorithm"))
            .map(|(_, value)| value.trim());
        match named {
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Self::Sha1),
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Self::Sha256),
            _ => Err(SignatureError::BadSettings),
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
        }
    }

    /// The signature header's value as the tag's bytes.
    fn decode(self, header: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let (len, malformed) = match self {
            Self::Sha1 => (20, SignatureError::MalformedSha1),
            Self::Sha256 => (32, SignatureError::MalformedSha256),
        };
        super::base64_tag(header, len).ok_or(malformed)
    }
}

/// The URLs Twilio may have signed, for a request carrying `query`:
/// without and with the port, each with the query as received and, where
/// it differs, as Node's legacy `querystring` writes it (Twilio's Node
/// library tries both, "since signature generation on the back end is
/// inconsistent": `O'Brien` signed for a request carrying `O%27Brien`).
fn candidates(url: &PublicUrl, query: Option<&str>) -> Vec<String> {
    let bases = [&url.without_port, &url.with_port];
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return bases.map(|base| base.to_string()).to_vec();
    };
    let mut queries = vec![query.to_string()];
    let legacy = legacy_query(query);
    if legacy != query {
        queries.push(legacy);
    }
    queries
        .iter()
        .flat_map(|q| bases.map(|base| format!("{base}?{q}")))
        .collect()
}

/// `query` decoded and written again as `encodeURIComponent` writes each
/// name and value: every byte percent-encoded but letters, digits and
/// `-_.!~*'()`.
fn legacy_query(query: &str) -> String {
    let component = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    };
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| format!("{}={}", component(&name), component(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The form parameters of `body`; `None` for a JSON body, which the query
/// names by its hash instead (`bodySHA256`).
fn form<'a>(body_hash: Option<&str>, body: &'a [u8]) -> Option<Params<'a>> {
    match body_hash {
        Some(_) => None,
        None => Some(form_urlencoded::parse(body).collect()),
    }
}

/// Whether `query` names a JSON body by its hash.
pub fn names_body_hash(query: Option<&str>) -> bool {
    body_hash(query).is_some()
}

fn body_hash(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == BODY_HASH)
        .map(|(_, value)| value.into_owned())
}

/// The headers a Twilio webhook is signed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    /// `X-Twilio-Signature`.
    pub signature: Option<&'a [u8]>,
    /// [`SETTINGS_HEADER`], where a Webhook Rule signs with a SharedKey.
    pub settings: Option<&'a [u8]>,
}

/// Checks the signature against every candidate URL under every secret,
/// all of them in constant time, with the algorithm the settings name,
/// then a JSON body against its `bodySHA256`. Returns the form parameters
/// it checked, in the order sent (`None` for a JSON body): what is stored
/// is exactly what was verified.
pub fn verify<'b>(
    headers: Headers,
    url: &PublicUrl,
    query: Option<&str>,
    body: &'b [u8],
    secrets: &[Secret],
) -> Result<Option<Params<'b>>, SignatureError> {
    let value = super::present(headers.signature)?;
    let algorithm = Algorithm::from_settings(headers.settings)?;
    let tag = algorithm.decode(value)?;
    let claimed_hash = body_hash(query);
    let params = form(claimed_hash.as_deref(), body);
    let (urls, signed) = (&candidates(url, query), &signed_order(params.as_deref()));
    let computed = secrets.iter().flat_map(|secret| {
        let key = hmac::Key::new(algorithm.hmac(), secret.expose().as_bytes());
        urls.iter().map(move |url| mac(&key, url, signed))
    });
    super::any_matches(computed, &tag).map_err(|e| match headers.settings {
        Some(_) => SignatureError::SharedKeyMismatch,
        None => e,
    })?;
    match claimed_hash {
        Some(claimed) if !claimed.eq_ignore_ascii_case(&hex::encode(Sha256::digest(body))) => {
            Err(SignatureError::BodyHash)
        }
        _ => Ok(params),
    }
}

/// The header Twilio would send with `body` posted to `url` (the whole URL,
/// query included) under `token` (`smshook send`, tests).
pub fn sign(token: &str, url: &str, body: &[u8]) -> String {
    sign_with(Algorithm::Sha1, token, url, body)
}

/// The signature under `secret` by `algorithm`.
fn sign_with(algorithm: Algorithm, secret: &str, url: &str, body: &[u8]) -> String {
    let query = url.split_once('?').map(|(_, q)| q);
    let params = form(body_hash(query).as_deref(), body);
    let key = hmac::Key::new(algorithm.hmac(), secret.as_bytes());
    STANDARD.encode(mac(&key, url, &signed_order(params.as_deref())))
}

/// The headers Twilio would send with `body` posted to `url` where a
/// Webhook Rule signs it with the SharedKey `sid` whose secret is `secret`,
/// by HMAC-SHA256 (`smshook send --shared-key`, tests).
pub fn sign_shared(sid: &str, secret: &str, url: &str, body: &[u8]) -> [(&'static str, String); 2] {
    [
        (
            "x-twilio-signature",
            sign_with(Algorithm::Sha256, secret, url, body),
        ),
        (SETTINGS_HEADER, format!("key={sid},algorithm=HMAC_SHA256")),
    ]
}

/// Parameters in the order Twilio signs them: by name, then by value.
fn signed_order<'p, 'a>(
    params: Option<&'p [(Cow<'a, str>, Cow<'a, str>)]>,
) -> Vec<&'p (Cow<'a, str>, Cow<'a, str>)> {
    let mut order: Vec<_> = params.unwrap_or_default().iter().collect();
    order.sort_unstable();
    order
}

/// The HMAC of `url` and then each of `params` as name + value.
fn mac(key: &hmac::Key, url: &str, params: &[&(Cow<str>, Cow<str>)]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(url.as_bytes());
    for (name, value) in params {
        context.update(name.as_bytes());
        context.update(value.as_bytes());
    }
    context.sign()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::secrets;

    /// Twilio's own libraries' test: token `12345`, this URL and these
    /// parameters give this signature.
    const URL: &str = "https://mycompany.com/myapp.php";
    const QUERY: &str = "foo=1&bar=2";
    const BODY: &[u8] = b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309\
        &To=%2B18005551212&Caller=%2B14158675309";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn check(url: &str, query: Option<&str>, body: &[u8], sig: &str) -> Result<(), SignatureError> {
        let url = PublicUrl::parse(url).expect("a URL");
        verify(
            Headers {
                signature: Some(sig.as_bytes()),
                settings: None,
            },
            &url,
            query,
            body,
            &secrets(&["12345"]),
        )
        .map(|_| ())
    }

    #[test]
    fn signs_as_twilios_libraries_do() {
        assert_eq!(sign("12345", &format!("{URL}?{QUERY}"), BODY), EXPECTED);
        assert_eq!(check(URL, Some(QUERY), BODY, EXPECTED), Ok(()));
        // What was verified comes back to be stored, in the order sent.
        let url = PublicUrl::parse(URL).expect("a URL");
        let checked = verify(
            Headers {
                signature: Some(EXPECTED.as_bytes()),
                settings: None,
            },
            &url,
            Some(QUERY),
            BODY,
            &secrets(&["12345"]),
        );
        let names: Vec<_> = checked
            .expect("valid")
            .expect("a form")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["CallSid", "Digits", "From", "To", "Caller"]);
        // A parameter sent twice is signed once per value, values sorted.
        let repeated = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        assert_eq!(
            sign("12345", &format!("{URL}?{QUERY}"), repeated),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    /// Twilio signs with the port or without it, whichever the URL names.
    #[test]
    fn ports_are_tried_with_and_without() {
        let with_443 = "kvajT1Ptam85bY51eRf/AJRuM3w=";
        assert_eq!(check(URL, Some(QUERY), BODY, with_443), Ok(()));
        let on_1234 = "https://mycompany.com:1234/myapp.php";
        assert_eq!(check(on_1234, Some(QUERY), BODY, EXPECTED), Ok(()));
        let http = "http://mycompany.com/myapp.php";
        let with_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4=";
        assert_eq!(check(http, Some(QUERY), BODY, with_80), Ok(()));
        let http_1234 = "http://mycompany.com:1234/myapp.php";
        let signed_1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
        assert_eq!(check(http_1234, Some(QUERY), BODY, signed_1234), Ok(()));
        let v6 = PublicUrl::parse("http://[::1]:8080/hook").expect("a URL");
        assert_eq!(
            candidates(&v6, None),
            ["http://[::1]/hook", "http://[::1]:8080/hook"]
        );
    }

    /// A query with characters written one way in the request and another
    /// in what Twilio signed: the legacy form is tried too, under both ports.
    #[test]
    fn a_query_is_also_tried_as_nodes_legacy_querystring_writes_it() {
        assert_eq!(
            legacy_query("name=O%27Brien&q=a+b&x=%7E&e="),
            "name=O'Brien&q=a%20b&x=~&e="
        );
        assert_eq!(legacy_query("a=1&b=two"), "a=1&b=two", "nothing to change");
        let received = "name=O%27Brien&q=a+b";
        let signed_for = format!("{URL}?name=O'Brien&q=a%20b");
        let sig = sign("12345", &signed_for, BODY);
        assert_eq!(check(URL, Some(received), BODY, &sig), Ok(()));
        let with_port = "https://mycompany.com:443/myapp.php?name=O'Brien&q=a%20b";
        let sig = sign("12345", with_port, BODY);
        assert_eq!(check(URL, Some(received), BODY, &sig), Ok(()));
        let other = sign("12345", &format!("{URL}?name=OBrien&q=a%20b"), BODY);
        assert_eq!(
            check(URL, Some(received), BODY, &other),
            Err(SignatureError::Mismatch)
        );
        let url = PublicUrl::parse(URL).expect("a URL");
        assert_eq!(
            candidates(&url, Some("a=1")).len(),
            2,
            "no legacy form to add"
        );
        assert_eq!(candidates(&url, Some(received)).len(), 4);
    }

    /// A Webhook Rule's SharedKey: the same text, by the algorithm the
    /// settings header names, under any of the source's secrets.
    #[test]
    fn a_shared_key_signs_by_the_algorithm_its_settings_name() {
        // HMAC-SHA256 of Twilio's test text under "shared-secret" (Python's hmac).
        let sha256 = "iwOZCFCgsf1lZRuIVob5xh6MS+e56XvT2JyqSGp3ZtY=";
        let settings = "key=KS0123456789abcdef0123456789abcdef,algorithm=HMAC_SHA256";
        let url = PublicUrl::parse(URL).expect("a URL");
        let check = |sig: &str, settings: Option<&str>, keys: &[&str]| {
            let headers = Headers {
                signature: Some(sig.as_bytes()),
                settings: settings.map(str::as_bytes),
            };
            verify(headers, &url, Some(QUERY), BODY, &secrets(keys)).map(|_| ())
        };
        // The Auth Token and the SharedKey side by side, as while moving.
        let both = ["12345", "shared-secret"];
        assert_eq!(check(sha256, Some(settings), &both), Ok(()));
        assert_eq!(check(EXPECTED, None, &both), Ok(()));
        let [(_, made), (_, said)] = sign_shared(
            "KS0123456789abcdef0123456789abcdef",
            "shared-secret",
            &format!("{URL}?{QUERY}"),
            BODY,
        );
        assert_eq!((made.as_str(), said.as_str()), (sha256, settings));
        // Spacing and case in the header are Twilio's to choose.
        let loose = " algorithm = hmac_sha256 , key=KS1";
        assert_eq!(check(sha256, Some(loose), &both), Ok(()));
        let sha1 = Some("key=KS1,algorithm=HMAC_SHA1");
        assert_eq!(check(EXPECTED, sha1, &both), Ok(()));
        // Without the SharedKey's secret, the message says what to add.
        assert_eq!(
            check(sha256, Some(settings), &["12345"]),
            Err(SignatureError::SharedKeyMismatch)
        );
        // The header picks the algorithm: a SHA-256 tag needs it, a SHA-1
        // tag under a header naming SHA-256 is not one.
        assert_eq!(
            check(sha256, None, &both),
            Err(SignatureError::MalformedSha1)
        );
        assert_eq!(
            check(EXPECTED, Some(settings), &both),
            Err(SignatureError::MalformedSha256)
        );
        for bad in ["key=KS1", "key=KS1,algorithm=HMAC_SHA512", "", "algorithm"] {
            assert_eq!(
                check(sha256, Some(bad), &both),
                Err(SignatureError::BadSettings),
                "{bad:?}"
            );
        }
        assert_eq!(
            Algorithm::from_settings(Some(b"algorithm=HMAC_SHA256\xff")),
            Err(SignatureError::BadSettings)
        );
    }

    #[test]
    fn a_json_body_is_named_by_its_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let query = format!("{QUERY}&bodySHA256={hash}");
        let sig = "a9nBmqA0ju/hNViExpshrM61xv4=";
        assert_eq!(check(URL, Some(&query), body, sig), Ok(()));
        assert_eq!(
            check(URL, Some(&query), br#"{"property": "other"}"#, sig),
            Err(SignatureError::BodyHash)
        );
    }

    #[test]
    fn refuses_what_twilio_did_not_sign() {
        assert_eq!(
            check(URL, Some(QUERY), BODY, "x"),
            Err(SignatureError::MalformedSha1)
        );
        assert_eq!(
            check(URL, None, BODY, EXPECTED),
            Err(SignatureError::Mismatch)
        );
        let other_host = "https://other.example/myapp.php";
        assert_eq!(
            check(other_host, Some(QUERY), BODY, EXPECTED),
            Err(SignatureError::Mismatch)
        );
        let tampered = b"CallSid=CA1234567890ABCDE&Digits=9999&From=%2B14158675309\
            &To=%2B18005551212&Caller=%2B14158675309";
        assert_eq!(
            check(URL, Some(QUERY), tampered, EXPECTED),
            Err(SignatureError::Mismatch)
        );
        let url = PublicUrl::parse(URL).expect("a URL");
        assert_eq!(
            verify(Headers::default(), &url, None, BODY, &secrets(&["12345"])),
            Err(SignatureError::Missing)
        );
    }
}
