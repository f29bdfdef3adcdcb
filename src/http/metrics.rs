//! Prometheus metrics, `GET /metrics` (behind the API token): how each
//! source's webhooks were answered, the events they stored, how long a 200
//! took, and the deliveries the application has yet to receive.
//!
//! Counters live in this process and start at zero: with several replicas,
//! Prometheus sums them. The delivery backlog is read from the store at each
//! scrape, so every replica reports the same, shared backlog.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::dispatch::ATTEMPT_RESULTS;
use crate::store::BacklogCount;

/// The statuses a webhook is answered with; any other is counted as `other`.
/// 200 first: [`Metrics::accepted`] counts it at index 0.
const STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 405, 413, 503, 504];
/// Upper bounds of the answer-time buckets, in seconds: providers give up
/// after 5 s (MsGine) to 10 s (Integify).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Answers by status, in [`STATUSES`] order, then `other`.
type Answers = [AtomicU64; STATUSES.len() + 1];

#[derive(Default)]
struct SourceCounters {
    answers: Answers,
    stored: AtomicU64,
    duplicates: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); beyond the last, none.
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// How many of a webhook's events were new and how many stored before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcomes {
    pub new: u64,
    pub duplicates: u64,
}

impl Outcomes {
    /// One event's.
    pub fn of(duplicate: bool) -> Self {
        Self {
            new: u64::from(!duplicate),
            duplicates: u64::from(duplicate),
        }
    }

    /// Each of a batch's.
    pub fn of_all(inserted: &[crate::event::Inserted]) -> Self {
        let duplicates = inserted.iter().filter(|i| i.duplicate).count() as u64;
        Self {
            new: inserted.len() as u64 - duplicates,
            duplicates,
        }
    }
}

/// The counters; cheap to update from every request (a map lookup and a
/// few relaxed atomic additions).
#[derive(Default)]
pub struct Metrics {
    sources: HashMap<String, SourceCounters>,
    /// Requests to a name no source has, counted apart so that a scan of
    /// random URLs cannot add a label value per name.
    unknown: Answers,
    acknowledged: Histogram,
    /// Events retention deleted (`crate::retention` adds to it).
    pub retention_deleted: Arc<AtomicU64>,
}

impl Metrics {
    pub fn new<'a>(sources: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|name| (name.to_string(), SourceCounters::default()))
                .collect(),
            ..Self::default()
        }
    }

    /// A webhook answered `status` at `/webhooks/<source>`.
    pub fn answered(&self, source: &str, status: u16) {
        let answers = self
            .sources
            .get(source)
            .map_or(&self.unknown, |c| &c.answers);
        let slot = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        answers[slot].fetch_add(1, Relaxed);
    }

    /// A webhook answered 200, its events committed (or found stored
    /// before): `events` of one, or a batch's, `took` after the request
    /// arrived. (One call, one map lookup: this runs for every webhook.)
    pub fn accepted(&self, source: &str, events: Outcomes, took: Duration) {
        if let Some(c) = self.sources.get(source) {
            c.answers[0].fetch_add(1, Relaxed);
            c.stored.fetch_add(events.new, Relaxed);
            c.duplicates.fetch_add(events.duplicates, Relaxed);
        }
        let h = &self.acknowledged;
        let secs = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&le| secs <= le) {
            h.buckets[bucket].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text format (version 0.0.4), with what the scrape read
    /// from the store and the dispatcher's attempts.
    pub fn render(
        &self,
        capacity: &Capacity,
        store: &StoreReadings,
        attempts: &[(String, [u64; 3])],
    ) -> String {
        let mut out = String::new();
        self.render_answers(&mut out);
        self.render_events(&mut out);
        self.render_histogram(&mut out);
        render_capacity(&mut out, capacity);
        render_store(&mut out, store);
        render_attempts(&mut out, attempts);
        out
    }

    fn sorted_sources(&self) -> Vec<(&String, &SourceCounters)> {
        let mut sources: Vec<_> = self.sources.iter().collect();
        sources.sort_by_key(|(name, _)| *name);
        sources
    }

    fn render_answers(&self, out: &mut String) {
        header(
            out,
            "smshook_webhooks_total",
            "counter",
            "Webhook requests answered, by source and HTTP status.",
        );
        for (name, c) in self.sorted_sources() {
            for (status, n) in status_labels().zip(&c.answers) {
                let n = n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "smshook_webhooks_total{{source=\"{name}\",status=\"{status}\"}} {n}"
                );
            }
        }
        header(
            out,
            "smshook_webhooks_unknown_source_total",
            "counter",
            "Requests to a webhook URL no source has, by HTTP status.",
        );
        for (status, n) in status_labels().zip(&self.unknown) {
            let _ = writeln!(
                out,
                "smshook_webhooks_unknown_source_total{{status=\"{status}\"}} {}",
                n.load(Relaxed)
            );
        }
    }

    fn render_events(&self, out: &mut String) {
        header(
            out,
            "smshook_events_total",
            "counter",
            "Events stored from webhooks (each of a batch's): new, or a provider's retry of one stored before (duplicate).",
        );
        for (name, c) in self.sorted_sources() {
            for (outcome, n) in [("new", &c.stored), ("duplicate", &c.duplicates)] {
                let n = n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "smshook_events_total{{source=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        header(
            out,
            "smshook_events_deleted_total",
            "counter",
            "Events deleted by retention, as older than it.",
        );
        let deleted = self.retention_deleted.load(Relaxed);
        let _ = writeln!(out, "smshook_events_deleted_total {deleted}");
    }

    fn render_histogram(&self, out: &mut String) {
        let h = &self.acknowledged;
        header(
            out,
            "smshook_ack_seconds",
            "histogram",
            "Time from a webhook's arrival to its 200, the event committed.",
        );
        let mut cumulative = 0;
        for (le, n) in BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "smshook_ack_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Relaxed);
        let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "smshook_ack_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "smshook_ack_seconds_sum {sum}");
        let _ = writeln!(out, "smshook_ack_seconds_count {count}");
    }
}

/// How much of the server's limits is in use, read at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capacity {
    pub connections_open: usize,
    pub connections_max: usize,
    pub body_bytes_reading: usize,
    pub body_bytes_max: usize,
}

/// What a scrape reads from the store.
pub struct StoreReadings {
    /// `None` when the store could not be read: `smshook_store_up` is 0.
    pub backlog: Option<Vec<BacklogCount>>,
    pub log_dropped: u64,
}

fn render_attempts(out: &mut String, attempts: &[(String, [u64; 3])]) {
    header(
        out,
        "smshook_delivery_attempts_total",
        "counter",
        "Delivery attempts by destination and what they left the delivery as: delivered, retrying (failed, tried again later) or dead.",
    );
    for (destination, counts) in attempts {
        let destination = escape(destination);
        for (result, n) in ATTEMPT_RESULTS.iter().zip(counts) {
            let _ = writeln!(
                out,
                "smshook_delivery_attempts_total{{destination=\"{destination}\",result=\"{result}\"}} {n}"
            );
        }
    }
}

fn render_capacity(out: &mut String, c: &Capacity) {
    let gauges = [
        (
            "smshook_connections_open",
            "Connections open now.",
            c.connections_open,
        ),
        (
            "smshook_connections_max",
            "max_connections: past it, new connections wait.",
            c.connections_max,
        ),
        (
            "smshook_body_bytes_reading",
            "Body bytes reserved by the webhooks being read now.",
            c.body_bytes_reading,
        ),
        (
            "smshook_body_bytes_reading_max",
            "max_body_bytes_in_flight: past it, webhooks are answered 503 server_busy.",
            c.body_bytes_max,
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn render_store(out: &mut String, store: &StoreReadings) {
    header(
        out,
        "smshook_request_log_dropped_total",
        "counter",
        "Refused requests left out of the request log under a flood, which bounds it.",
    );
    let _ = writeln!(
        out,
        "smshook_request_log_dropped_total {}",
        store.log_dropped
    );
    header(
        out,
        "smshook_store_up",
        "gauge",
        "1 if the store answered this scrape's query, else 0.",
    );
    let _ = writeln!(
        out,
        "smshook_store_up {}",
        u8::from(store.backlog.is_some())
    );
    header(
        out,
        "smshook_deliveries",
        "gauge",
        "Deliveries the application has yet to receive, by destination and state (pending, dead).",
    );
    for b in store.backlog.as_deref().unwrap_or_default() {
        let _ = writeln!(
            out,
            "smshook_deliveries{{destination=\"{}\",state=\"{}\"}} {}",
            escape(&b.destination),
            escape(&b.state),
            b.count
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn status_labels() -> impl Iterator<Item = String> {
    STATUSES
        .iter()
        .map(u16::to_string)
        .chain(std::iter::once("other".to_string()))
}

/// A label value as the text format writes it (destination names come from
/// the config, which restricts them, but the store is not the config).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn counts_answers_events_and_answer_times() {
        let m = Metrics::new(["ig", "tx"]);
        m.answered("ig", 401);
        m.answered("ig", 418);
        m.answered("nope", 404);
        m.accepted("ig", Outcomes::of(false), Duration::from_micros(800));
        m.accepted("ig", Outcomes::of(true), Duration::from_millis(30));
        m.accepted("ig", Outcomes::of(false), Duration::from_secs(7));
        m.retention_deleted.fetch_add(3, Relaxed);
        let store = StoreReadings {
            backlog: Some(vec![BacklogCount {
                destination: "app".into(),
                state: "pending".into(),
                count: 12,
            }]),
            log_dropped: 5,
        };
        let capacity = Capacity {
            connections_open: 3,
            connections_max: 1024,
            body_bytes_reading: 2048,
            body_bytes_max: 1 << 26,
        };
        let text = m.render(&capacity, &store, &[("app".into(), [7, 2, 1])]);
        for (series, value) in [
            (r#"smshook_webhooks_total{source="ig",status="200"}"#, "3"),
            (r#"smshook_webhooks_total{source="ig",status="401"}"#, "1"),
            (r#"smshook_webhooks_total{source="ig",status="other"}"#, "1"),
            (r#"smshook_webhooks_total{source="tx",status="200"}"#, "0"),
            (
                r#"smshook_webhooks_unknown_source_total{status="404"}"#,
                "1",
            ),
            (r#"smshook_events_total{source="ig",outcome="new"}"#, "2"),
            (
                r#"smshook_events_total{source="ig",outcome="duplicate"}"#,
                "1",
            ),
            (r#"smshook_ack_seconds_bucket{le="0.001"}"#, "1"),
            (r#"smshook_ack_seconds_bucket{le="0.025"}"#, "1"),
            (r#"smshook_ack_seconds_bucket{le="0.05"}"#, "2"),
            (r#"smshook_ack_seconds_bucket{le="5"}"#, "2"),
            (r#"smshook_ack_seconds_bucket{le="+Inf"}"#, "3"),
            ("smshook_ack_seconds_count", "3"),
            ("smshook_events_deleted_total", "3"),
            ("smshook_ack_seconds_sum", "7.0308"),
            ("smshook_store_up", "1"),
            (
                r#"smshook_deliveries{destination="app",state="pending"}"#,
                "12",
            ),
            ("smshook_request_log_dropped_total", "5"),
            ("smshook_connections_open", "3"),
            ("smshook_connections_max", "1024"),
            ("smshook_body_bytes_reading", "2048"),
            ("smshook_body_bytes_reading_max", "67108864"),
            (
                r#"smshook_delivery_attempts_total{destination="app",result="delivered"}"#,
                "7",
            ),
            (
                r#"smshook_delivery_attempts_total{destination="app",result="retrying"}"#,
                "2",
            ),
            (
                r#"smshook_delivery_attempts_total{destination="app",result="dead"}"#,
                "1",
            ),
        ] {
            assert_eq!(line(&text, series), format!("{series} {value}"));
        }
        assert!(!text.contains("nope"), "unknown names never become labels");
    }

    #[test]
    fn a_store_that_cannot_be_read_is_down_and_the_counters_still_show() {
        let m = Metrics::new(["ig"]);
        m.answered("ig", 503);
        let store = StoreReadings {
            backlog: None,
            log_dropped: 0,
        };
        let text = m.render(&Capacity::default(), &store, &[]);
        assert_eq!(line(&text, "smshook_store_up"), "smshook_store_up 0");
        let series = r#"smshook_webhooks_total{source="ig",status="503"}"#;
        assert_eq!(line(&text, series), format!("{series} 1"));
    }
}
