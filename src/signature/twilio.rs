//! Twilio's `X-Twilio-Signature`: base64 of HMAC-SHA1, under the account's
//! Auth Token, of the URL Twilio posted to followed by every form parameter
//! of the body, sorted by name and then value, each written as name + value.
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
use super::{Secret, SignatureError};

/// The query parameter naming a JSON body's SHA-256.
const BODY_HASH: &str = "bodySHA256";

/// The URL a Twilio source is registered at, as Twilio signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// As configured, for messages.
    pub text: String,
    without_port: String,
    with_port: String,
}

impl PublicUrl {
    /// Reads a configured URL: `http://` or `https://`, a host, and neither
    /// query, fragment nor credentials (the error says why each is left out).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{text:?}: give the http:// or https:// URL Twilio posts to"
            ));
        }
        if url.query().is_some() {
            return Err(format!(
                "{text:?}: leave the query out; smshook appends the one each webhook's request carries"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "{text:?}: leave the #fragment (Twilio's connection overrides) out; Twilio neither sends nor signs it"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{text:?}: leave user:password@ out; Twilio does not sign it"
            ));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: write it as scheme://host/path"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_port(authority);
        let port = port.map_or_else(|| default_port(scheme), str::to_string);
        Ok(Self {
            text: text.to_string(),
            without_port: format!("{scheme}://{host}{path}"),
            with_port: format!("{scheme}://{host}:{port}{path}"),
        })
    }

    /// The URLs Twilio may have signed, for a request carrying `query`:
    /// without and with the port, each with the query as received and, where
    /// it differs, as Node's legacy `querystring` writes it (Twilio's Node
    /// library tries both, "since signature generation on the back end is
    /// inconsistent": `O'Brien` signed for a request carrying `O%27Brien`).
    fn candidates(&self, query: Option<&str>) -> Vec<String> {
        let bases = [&self.without_port, &self.with_port];
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

/// `host[:port]` as host and port; an IPv6 host keeps its brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    (host, rest.strip_prefix(':').filter(|p| !p.is_empty()))
}

fn default_port(scheme: &str) -> String {
    if scheme.eq_ignore_ascii_case("https") {
        "443".into()
    } else {
        "80".into()
    }
}

/// The form parameters of `body`; `None` for a JSON body, which the query
/// names by its hash instead (`bodySHA256`).
fn form<'a>(body_hash: Option<&str>, body: &'a [u8]) -> Option<Params<'a>> {
    match body_hash {
        Some(_) => None,
        None => Some(form_urlencoded::parse(body).collect()),
    }
}

fn body_hash(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == BODY_HASH)
        .map(|(_, value)| value.into_owned())
}

/// Checks `header` against every candidate URL under every secret, all of
/// them in constant time, then a JSON body against its `bodySHA256`.
/// Returns the form parameters it checked, in the order sent (`None` for a
/// JSON body): what is stored is exactly what was verified.
pub fn verify<'b>(
    header: Option<&[u8]>,
    url: &PublicUrl,
    query: Option<&str>,
    body: &'b [u8],
    secrets: &[Secret],
) -> Result<Option<Params<'b>>, SignatureError> {
    let tag: [u8; 20] = super::base64_array(&STANDARD, super::present(header)?)
        .ok_or(SignatureError::MalformedSha1)?;
    let claimed_hash = body_hash(query);
    let params = form(claimed_hash.as_deref(), body);
    let (urls, signed) = (&url.candidates(query), &signed_order(params.as_deref()));
    let computed = secrets.iter().flat_map(|secret| {
        let key = key(secret.expose());
        urls.iter().map(move |url| mac(&key, url, signed))
    });
    super::any_matches(computed, &tag)?;
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
    let query = url.split_once('?').map(|(_, q)| q);
    let params = form(body_hash(query).as_deref(), body);
    STANDARD.encode(mac(&key(token), url, &signed_order(params.as_deref())))
}

/// Parameters in the order Twilio signs them: by name, then by value.
fn signed_order<'p, 'a>(
    params: Option<&'p [(Cow<'a, str>, Cow<'a, str>)]>,
) -> Vec<&'p (Cow<'a, str>, Cow<'a, str>)> {
    let mut order: Vec<_> = params.unwrap_or_default().iter().collect();
    order.sort_unstable();
    order
}

fn key(token: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes())
}

/// HMAC-SHA1 of `url` and then each of `params` as name + value.
fn mac(key: &hmac::Key, url: &str, params: &[&(Cow<str>, Cow<str>)]) -> [u8; 20] {
    let mut context = hmac::Context::with_key(key);
    context.update(url.as_bytes());
    for (name, value) in params {
        context.update(name.as_bytes());
        context.update(value.as_bytes());
    }
    let mut tag = [0u8; 20];
    tag.copy_from_slice(context.sign().as_ref());
    tag
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
            Some(sig.as_bytes()),
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
            Some(EXPECTED.as_bytes()),
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
            v6.candidates(None),
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
            url.candidates(Some("a=1")).len(),
            2,
            "no legacy form to add"
        );
        assert_eq!(url.candidates(Some(received)).len(), 4);
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
            verify(None, &url, None, BODY, &secrets(&["12345"])),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn a_public_url_is_what_twilio_is_given() {
        for (bad, says) in [
            ("hooks.example.com/webhooks/twilio", "not a URL"),
            ("ftp://hooks.example.com/x", "http:// or https://"),
            (
                "https://hooks.example.com/x?tenant=1",
                "leave the query out",
            ),
            ("https://hooks.example.com/x#rc=3", "connection overrides"),
            ("https://u:p@hooks.example.com/x", "user:password@"),
        ] {
            let e = PublicUrl::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
