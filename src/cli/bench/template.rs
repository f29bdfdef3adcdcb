//! The load generator's request bodies: a provider's sample made once with
//! marker ids, then copied for each request with fresh ids written over the
//! markers. Building and serializing a JSON tree per request cost the load
//! generator more CPU than a bare hyper server spends answering, so on a
//! slow machine the client, not the server under test, set the rate.

use anyhow::{Result, ensure};

use crate::cli::send::sample_body;
use crate::providers::{Provider, SampleIds};

/// Stands for a ULID (26 characters) in the event and message ids.
const ULID_MARK: &str = "0BENCHBENCHBENCHBENCHBENCH";
/// Stands for the sample's number (a private-number message id, a Notifly
/// object id): ten digits, as every number [`Template::fill`] writes.
const NUMBER_MARK: u64 = 3_141_592_653;
/// Numbers written over [`NUMBER_MARK`] stay within ten digits.
const NUMBERS: std::ops::Range<u64> = 1_000_000_000..10_000_000_000;

pub struct Template {
    body: Vec<u8>,
    /// Where a ULID goes.
    ulids: Vec<usize>,
    /// Where the number goes.
    numbers: Vec<usize>,
}

impl Template {
    /// `provider`'s sample of `event_type`, timestamped now.
    pub fn new(provider: &Provider, event_type: &str) -> Result<Self> {
        let ids = SampleIds {
            event_id: format!("evt_{ULID_MARK}"),
            message_id: format!("msg_{ULID_MARK}"),
            number: NUMBER_MARK,
            now: crate::event::now_rfc3339(),
        };
        let body = sample_body(provider, event_type, &ids)?;
        let ulids = find_all(&body, ULID_MARK.as_bytes());
        let numbers = find_all(&body, NUMBER_MARK.to_string().as_bytes());
        ensure!(
            !ulids.is_empty() || !numbers.is_empty(),
            "{}'s {event_type} sample carries no id to make each event distinct",
            provider.name
        );
        Ok(Self {
            body,
            ulids,
            numbers,
        })
    }

    /// A body with a fresh ULID and `number` (kept within ten digits) in
    /// place of the markers: a distinct event, where `number` differs from
    /// every other request's.
    pub fn fill(&self, number: u64) -> Vec<u8> {
        let mut body = self.body.clone();
        let mut buffer = [0u8; ulid::ULID_LEN];
        let ulid = ulid::Ulid::generate().array_to_str(&mut buffer);
        for &at in &self.ulids {
            body[at..at + ulid.len()].copy_from_slice(ulid.as_bytes());
        }
        let span = NUMBERS.end - NUMBERS.start;
        let digits = (NUMBERS.start + number % span).to_string();
        for &at in &self.numbers {
            body[at..at + digits.len()].copy_from_slice(digits.as_bytes());
        }
        body
    }
}

/// Where `needle` starts in `haystack`, each time.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(haystack, needle).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Signed, prepare};
    use crate::providers::TEST_SIGNING_KEY;

    #[test]
    fn every_sample_fills_into_distinct_valid_events() {
        // `bench` refuses a provider that signs its URL (it floods one URL)
        // or parameters in the body (which a filled template would break).
        let templated = |p: &&&crate::providers::Provider| !p.signs_url() && !p.signs_in_body();
        for provider in crate::providers::ALL.iter().filter(templated) {
            let source = crate::providers::test_source(provider);
            for event_type in provider.event_types {
                let template = Template::new(provider, event_type).expect("template");
                let keys: Vec<String> = (0..3)
                    .map(|n| {
                        let body = template.fill(n);
                        let headers = provider
                            .sign(TEST_SIGNING_KEY, &body, chrono::Utc::now().timestamp(), "")
                            .expect("signed");
                        let signed = Signed::from_pairs(provider, &headers);
                        let now = "2026-12-02T00:00:00.000Z".to_string();
                        let events = prepare(&source, signed, &body, now)
                            .unwrap_or_else(|e| panic!("{} {event_type}: {e:?}", provider.name))
                            .into_events();
                        assert!(!String::from_utf8_lossy(&body).contains("BENCH"));
                        events[0].dedupe_key.clone()
                    })
                    .collect();
                assert!(
                    keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2],
                    "{} {event_type}: {keys:?}",
                    provider.name
                );
            }
        }
    }

    #[test]
    fn numbers_stay_ten_digits() {
        let template = Template {
            body: b"{\"n\":3141592653}".to_vec(),
            ulids: vec![],
            numbers: vec![5],
        };
        for n in [0, 1, 8_999_999_999, 9_000_000_000, u64::MAX] {
            let body = template.fill(n);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            let n = v["n"].as_u64().expect("number");
            assert!(NUMBERS.contains(&n), "{n}");
        }
    }
}
