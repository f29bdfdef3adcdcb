//! `smshook stats`: what arrived in a time range, counted: events by source
//! and type, requests by source and answer, and each source's share of
//! messages reported delivered.

use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;

use super::ConfigArgs;
use super::query::{open, print_table};
use crate::store::{Counts, Outcomes, TimeRange};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// From this time (the forms of `events --since`: RFC 3339, a date,
    /// today, yesterday, or an age such as 7d).
    #[arg(long, default_value = "24h", value_parser = super::when::parse)]
    since: DateTime<Utc>,
    /// Up to this time (the same forms); now by default.
    #[arg(long, value_parser = super::when::parse)]
    until: Option<DateTime<Utc>>,
    /// One JSON object: the range, the counts and the outcomes.
    #[arg(long)]
    json: bool,
}

pub async fn stats(args: &StatsArgs) -> Result<ExitCode> {
    let range = TimeRange {
        since: Some(args.since),
        until: args.until,
    };
    let store = open(&args.config).await?;
    let counts = store.counts(&range).await;
    store.close().await;
    let counts = counts?;
    if args.json {
        println!("{}", counts.report(&range));
        return Ok(ExitCode::SUCCESS);
    }
    print_counts(&range, &counts);
    Ok(ExitCode::SUCCESS)
}

fn print_counts(range: &TimeRange, counts: &Counts) {
    let time = |t: Option<DateTime<Utc>>| t.map_or("now".into(), crate::event::format_time);
    println!(
        "received from {} to {}",
        time(range.since),
        time(range.until)
    );
    let events = counts
        .events
        .iter()
        .map(|c| vec![c.source.clone(), c.event_type.clone(), c.count.to_string()]);
    section("no events", &["SOURCE", "TYPE", "EVENTS"], events.collect());
    let requests = counts.requests.iter().map(|c| {
        let status = c.status.to_string();
        vec![
            c.source.clone(),
            status,
            c.reason.clone(),
            c.count.to_string(),
        ]
    });
    let headers = ["SOURCE", "STATUS", "REASON", "REQUESTS"];
    section("no requests", &headers, requests.collect());
    let outcomes = counts.outcomes();
    if !outcomes.is_empty() {
        println!();
    }
    for o in &outcomes {
        println!("{}", outcome_line(o));
    }
}

/// A blank line, then a table, or what to say when it has no rows.
fn section(none: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    println!();
    if rows.is_empty() {
        println!("{none}");
    } else {
        print_table(headers, rows.into_iter());
    }
}

/// `integify: 98.8% delivered (1204 delivered, 15 failed)`.
fn outcome_line(o: &Outcomes) -> String {
    let reported = o.delivered + o.failed;
    let share = 100.0 * o.delivered as f64 / reported.max(1) as f64;
    format!(
        "{}: {share:.1}% delivered ({} delivered, {} failed)",
        o.source, o.delivered, o.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventCount;

    #[test]
    fn outcomes_are_each_sources_delivered_and_failed_reports() {
        let count = |source: &str, event_type: &str, count| EventCount {
            source: source.into(),
            event_type: event_type.into(),
            count,
        };
        let counts = Counts {
            events: vec![
                count("ig", "message.delivered", 1204),
                count("ig", "message.failed", 15),
                count("ig", "message.received", 40),
                count("tx", "contact.opted_out", 2),
                count("tx", "message.failed", 3),
            ],
            requests: Vec::new(),
        };
        let lines: Vec<String> = counts.outcomes().iter().map(outcome_line).collect();
        assert_eq!(
            lines,
            [
                "ig: 98.8% delivered (1204 delivered, 15 failed)",
                "tx: 0.0% delivered (0 delivered, 3 failed)"
            ]
        );
    }
}
