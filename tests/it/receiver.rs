//! `TestReceiver`: a small axum server standing in for the user's
//! application. It hands every request to the test over a channel and
//! answers from a script (then 200).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use smshook::dispatch::http::SigningKey;
use smshook::dispatch::{Destination, Filter, Target};
use tokio::sync::mpsc;

/// A test-only Standard Webhooks secret (24 random-looking bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// 429 or 503 with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Never answer.
    Hang,
}

#[derive(Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: tokio::time::Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Checks the Standard Webhooks signature against `SECRET`.
    pub fn assert_signed(&self) {
        self.assert_signed_by(&[SECRET]);
    }

    /// Checks that the signature header holds one signature per secret, in
    /// order, each verifying as a Standard Webhooks library would.
    pub fn assert_signed_by(&self, secrets: &[&str]) {
        assert!(
            self.signed_by(secrets),
            "{:?} is not signed by exactly these {} secrets",
            self.headers["webhook-signature"],
            secrets.len()
        );
    }

    /// Whether the signature header holds one signature per secret, in
    /// order, each verifying.
    pub fn signed_by(&self, secrets: &[&str]) -> bool {
        let header = |n: &str| self.headers[n].to_str().expect("ascii").to_string();
        let ts: i64 = header("webhook-timestamp").parse().expect("timestamp");
        let signatures = header("webhook-signature");
        let each: Vec<&str> = signatures.split(' ').collect();
        each.len() == secrets.len()
            && each.iter().zip(secrets).all(|(signature, secret)| {
                let key = SigningKey::parse(secret).expect("key");
                *signature == key.sign(&header("webhook-id"), ts, &self.body)
            })
    }
}

type Script = Arc<Mutex<VecDeque<Reply>>>;

pub struct TestReceiver {
    pub url: String,
    pub requests: mpsc::UnboundedReceiver<Received>,
}

impl TestReceiver {
    pub async fn start(script: Vec<Reply>) -> TestReceiver {
        let (tx, requests) = mpsc::unbounded_channel();
        let state = (tx, Arc::new(Mutex::new(VecDeque::from(script))));
        let app = axum::Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestReceiver { url, requests }
    }

    /// A destination for this receiver with a short schedule.
    pub fn destination(&self, name: &str, schedule: &[u64]) -> Destination {
        Destination {
            name: name.into(),
            target: Target::http(&self.url, vec![SigningKey::parse(SECRET).expect("key")]),
            filter: Filter::default(),
            timeout: Duration::from_secs(5),
            schedule: schedule.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }

    /// The next request (fails the test after 10 s of real or virtual time).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(600), self.requests.recv())
            .await
            .expect("a delivery arrives")
            .expect("receiver running")
    }
}

async fn answer(
    State((tx, script)): State<(mpsc::UnboundedSender<Received>, Script)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Reply::Status(200));
    let _ = tx.send(Received {
        headers,
        body,
        at: tokio::time::Instant::now(),
    });
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).expect("status").into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).expect("status"),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Hang => std::future::pending().await,
    }
}
