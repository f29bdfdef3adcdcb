//! Where an SNS source's signing keys come from: the certificates pinned in
//! its config (`signing_certificates`; no request ever leaves smshook), or
//! else SNS's own, fetched over HTTPS from the message's `SigningCertURL`
//! (checked to be AWS's first) and kept in memory. A fetch runs before the
//! webhook is verified ([`Certificates::prefetch`]), one at a time, only for
//! a message from one of the source's topics (a webhook waits at most
//! twice [`FETCH_TIMEOUT`] for it); a failed one is not tried
//! again for [`RETRY_FAILED_AFTER`], and a message that cannot be verified
//! for want of its certificate is answered 503, which SNS retries. The
//! `SubscribeURL` of a verified subscription confirmation is opened the
//! same way ([`Certificates::confirm`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Envelope, SignatureError};
use crate::signature::Secret;

/// How long a failed fetch keeps its URL from being fetched again.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);
/// Longest a certificate (or a subscription confirmation) may take, and
/// longest a webhook waits for another's fetch to end: a webhook waits at
/// most twice this for its certificate, within SNS's patience and most of
/// the default `ack_deadline`.
const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// Largest certificate read (SNS's are about 2 KB).
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Most certificate URLs remembered; SNS uses one per region at a time.
const MAX_CACHED: usize = 64;

/// An SNS source's signing keys.
#[derive(Debug)]
pub struct Certificates {
    keys: Keys,
}

#[derive(Debug)]
enum Keys {
    /// From the config: every message is checked against each.
    Pinned(Vec<Arc<[u8]>>),
    Fetched(Fetcher),
}

#[derive(Debug)]
struct Fetcher {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time, whatever the flood.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
enum Cached {
    Key(Arc<[u8]>),
    Failed(Instant),
}

/// Pinned keys are equal when they are the same keys; two sources that
/// fetch are equal whatever each has fetched (a reload keeps the old one).
impl PartialEq for Certificates {
    fn eq(&self, other: &Self) -> bool {
        match (&self.keys, &other.keys) {
            (Keys::Pinned(a), Keys::Pinned(b)) => a == b,
            (Keys::Fetched(_), Keys::Fetched(_)) => true,
            _ => false,
        }
    }
}

impl Certificates {
    /// Keys pinned in the config (SubjectPublicKeyInfo DER each).
    pub fn pinned(keys: Vec<Vec<u8>>) -> Self {
        let keys = keys.into_iter().map(Arc::from).collect();
        Self {
            keys: Keys::Pinned(keys),
        }
    }

    /// The keys of these certificates or public keys (PEM), pinned.
    pub fn from_pems<P: AsRef<[u8]>>(pems: &[P]) -> Result<Self, String> {
        let keys = pems
            .iter()
            .map(|pem| super::public_key_from_pem(pem.as_ref()));
        Ok(Self::pinned(keys.collect::<Result<_, _>>()?))
    }

    /// SNS's certificates, fetched when first needed.
    pub fn fetched() -> Self {
        Self {
            keys: Keys::Fetched(Fetcher {
                client: client(),
                cache: Mutex::new(HashMap::new()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Whether keys are pinned (nothing is fetched, nothing confirmed).
    pub fn is_pinned(&self) -> bool {
        matches!(self.keys, Keys::Pinned(_))
    }

    /// The keys a message whose certificate is at `url` may be signed by;
    /// `CertificateUnavailable` when it has not been fetched.
    pub fn keys_for(&self, url: &str) -> Result<Vec<Arc<[u8]>>, SignatureError> {
        match &self.keys {
            Keys::Pinned(keys) => Ok(keys.clone()),
            Keys::Fetched(fetcher) => match fetcher.cached(url) {
                Some(Cached::Key(key)) => Ok(vec![key]),
                _ => Err(SignatureError::CertificateUnavailable),
            },
        }
    }

    /// Fetches the certificate of the message in `body`, unless it is
    /// cached, pinned, failed lately, or the message is not from one of
    /// `topics` with an AWS certificate URL (verification then says why).
    pub async fn prefetch(&self, body: &[u8], topics: &[Secret]) {
        let Keys::Fetched(fetcher) = &self.keys else {
            return;
        };
        let Ok(envelope) = Envelope::parse(body) else {
            return;
        };
        if let Ok(url) = super::admitted(&envelope, topics) {
            fetcher.fetch(url).await;
        }
    }

    /// Opens the `SubscribeURL` of a subscription confirmation in `body`
    /// (already verified and stored), which confirms the subscription, in
    /// the background; with pinned keys, logs how to confirm it by hand.
    /// An unsubscribe confirmation is logged: nothing more will come.
    pub fn confirm(&self, body: &[u8], source: &str) {
        let Ok(envelope) = Envelope::parse(body) else {
            return;
        };
        let topic = envelope
            .topic_arn
            .as_deref()
            .unwrap_or_default()
            .to_string();
        match envelope.kind.as_deref() {
            Some("SubscriptionConfirmation") => {}
            Some("UnsubscribeConfirmation") => {
                tracing::warn!(%source, %topic, "SNS says this endpoint was unsubscribed from the topic: nothing more comes from it until it is subscribed again");
                return;
            }
            _ => return,
        }
        let Some(url) = envelope
            .subscribe_url
            .as_deref()
            .and_then(super::subscribe_url)
        else {
            tracing::warn!(%source, %topic, "SNS subscription confirmation without an SNS SubscribeURL; not confirmed");
            return;
        };
        let Keys::Fetched(fetcher) = &self.keys else {
            tracing::warn!(%source, %topic, "SNS subscription confirmation stored; this source pins its certificates and opens no URL: confirm it by opening the SubscribeURL in the stored event's payload");
            return;
        };
        let client = fetcher.client.clone();
        let source = source.to_string();
        tokio::spawn(async move {
            match open(&client, url).await {
                Ok(()) => {
                    tracing::info!(%source, %topic, "SNS subscription confirmed")
                }
                Err(e) => {
                    tracing::warn!(%source, %topic, error = %e, "SNS subscription not confirmed; confirm it by opening the SubscribeURL in the stored event's payload")
                }
            }
        });
    }
}

impl Fetcher {
    fn cached(&self, url: &str) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(url).cloned()
    }

    /// Fetches `url`'s key into the cache, unless it is there already or
    /// failed less than [`RETRY_FAILED_AFTER`] ago.
    async fn fetch(&self, url: &str) {
        if !self.wanted(url) {
            return;
        }
        let Ok(_one) = tokio::time::timeout(FETCH_TIMEOUT, self.fetching.lock()).await else {
            return; // Others' fetches are slow: answered 503, retried.
        };
        if !self.wanted(url) {
            return; // Fetched while this one waited.
        }
        let entry = match fetch_key(&self.client, url).await {
            Ok(key) => Cached::Key(Arc::from(key)),
            Err(e) => {
                tracing::warn!(%url, error = %e, "SNS signing certificate not fetched; its messages are answered 503 until it is");
                Cached::Failed(Instant::now())
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, cached| matches!(cached, Cached::Key(_)));
        }
        if cache.len() < MAX_CACHED {
            cache.insert(url.to_string(), entry);
        }
    }

    fn wanted(&self, url: &str) -> bool {
        match self.cached(url) {
            Some(Cached::Key(_)) => false,
            Some(Cached::Failed(at)) => at.elapsed() >= RETRY_FAILED_AFTER,
            None => true,
        }
    }
}

/// What went wrong, with its causes (a DNS failure, a refused connection),
/// without the URL: a confirmation's carries its token.
fn causes(e: reqwest::Error) -> String {
    crate::dispatch::http::with_causes(&e.without_url())
}

/// The client that fetches certificates and opens confirmation URLs:
/// HTTPS checked against the platform's roots (as every HTTPS request of
/// smshook's), no redirect followed, [`FETCH_TIMEOUT`] at most.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("smshook/", env!("CARGO_PKG_VERSION")))
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The public key of the certificate at `url`, fetched by `client`. The
/// caller checks that `url` is AWS's ([`super::certificate_url`]).
pub async fn fetch_key(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().await.map_err(causes)?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let mut pem = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(causes)? {
        pem.extend_from_slice(&chunk);
        if pem.len() > MAX_CERTIFICATE_BYTES {
            return Err(format!("larger than {MAX_CERTIFICATE_BYTES} bytes"));
        }
    }
    super::public_key_from_pem(&pem)
}

/// Opens a subscription's confirmation URL.
pub(crate) async fn open(client: &reqwest::Client, url: url::Url) -> Result<(), String> {
    let response = client.get(url).send().await.map_err(causes)?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("SNS answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CERTIFICATE: &str = include_str!("testdata/certificate.pem");

    /// A server on 127.0.0.1 answering every request with `status` and
    /// `body`, once per connection; its URL.
    async fn serving(status: &'static str, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0; 4096];
                let _ = stream.read(&mut head).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            }
        });
        format!("http://{addr}/SimpleNotificationService-test.pem")
    }

    #[tokio::test]
    async fn a_fetched_certificate_gives_its_key_and_a_bad_answer_says_why() {
        let client = reqwest::Client::new();
        let url = serving("200 OK", CERTIFICATE.into()).await;
        let key = fetch_key(&client, &url).await.expect("a key");
        let pinned = crate::signature::sns::public_key_from_pem(CERTIFICATE.as_bytes());
        assert_eq!(Ok(key), pinned);
        let missing = serving("404 Not Found", Vec::new()).await;
        let e = fetch_key(&client, &missing).await.expect_err("404");
        assert!(e.contains("404"), "{e}");
        let huge = serving("200 OK", vec![b'A'; MAX_CERTIFICATE_BYTES + 1]).await;
        let e = fetch_key(&client, &huge).await.expect_err("too large");
        assert!(e.contains("larger"), "{e}");
        let junk = serving("200 OK", b"<html>maintenance</html>".to_vec()).await;
        assert!(fetch_key(&client, &junk).await.is_err());
    }

    #[tokio::test]
    async fn opening_a_confirmation_url_succeeds_only_on_a_2xx() {
        let client = reqwest::Client::new();
        let ok = serving("200 OK", b"<ConfirmSubscriptionResponse/>".to_vec()).await;
        assert_eq!(
            open(&client, url::Url::parse(&ok).expect("url")).await,
            Ok(())
        );
        let refused = serving("403 Forbidden", Vec::new()).await;
        let e = open(&client, url::Url::parse(&refused).expect("url"))
            .await
            .expect_err("403");
        assert!(e.contains("403"), "{e}");
    }

    #[test]
    fn a_failed_fetch_waits_before_the_next_and_a_key_is_kept() {
        let certificates = Certificates::fetched();
        let Keys::Fetched(fetcher) = &certificates.keys else {
            panic!("fetched");
        };
        let url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem";
        assert!(fetcher.wanted(url));
        assert_eq!(
            certificates.keys_for(url),
            Err(SignatureError::CertificateUnavailable)
        );
        let insert = |cached| {
            fetcher
                .cache
                .lock()
                .expect("lock")
                .insert(url.into(), cached)
        };
        insert(Cached::Failed(Instant::now()));
        assert!(!fetcher.wanted(url), "tried again at once");
        assert_eq!(
            certificates.keys_for(url),
            Err(SignatureError::CertificateUnavailable)
        );
        let long_ago = Instant::now().checked_sub(RETRY_FAILED_AFTER);
        insert(Cached::Failed(long_ago.expect("an instant")));
        assert!(fetcher.wanted(url), "tried again after the wait");
        insert(Cached::Key(Arc::from(vec![1u8, 2, 3])));
        assert!(!fetcher.wanted(url));
        assert_eq!(certificates.keys_for(url).map(|k| k.len()), Ok(1));
        assert!(!certificates.is_pinned());
        assert!(Certificates::pinned(Vec::new()).is_pinned());
    }
}
