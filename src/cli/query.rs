//! `smshook events` and `smshook requests`: read the database directly and
//! print a table, or one JSON object per line with `--json`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;

use super::ConfigArgs;
use crate::event::{Event, RequestRecord};
use crate::store::{self, EventQuery, Order, RequestQuery, StoreOptions, TimeRange};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only events from this source.
    #[arg(long)]
    source: Option<String>,
    /// Only events of this normalized type, e.g. message.delivered.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events about this provider message id.
    #[arg(long)]
    message_id: Option<String>,
    /// Only events from or to this number (with or without its leading +):
    /// a conversation. Every row of the listing's range is read, so give a
    /// --since on a large database.
    #[arg(long)]
    number: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only requests to this source.
    #[arg(long)]
    source: Option<String>,
    /// Only requests answered for this reason, e.g. invalid_signature,
    /// forbidden_address, malformed_json, storage_unavailable, duplicate.
    #[arg(long)]
    reason: Option<String>,
    /// Only requests not answered 200: why a provider's webhooks fail.
    #[arg(long)]
    refused: bool,
    #[command(flatten)]
    paging: Paging,
}

/// How `events` and `requests` list their rows: by default the newest
/// page, oldest first, like `tail`; `--after 0` from the very first,
/// `--since TIME` from a time.
#[derive(Debug, Args)]
struct Paging {
    /// Only rows received at or after this time: RFC 3339
    /// (2026-12-03T09:30:00Z), a date (2026-12-03, midnight UTC), a UTC date
    /// and time ("2026-12-03 09:30"), today, yesterday, or an age (15m, 2h,
    /// 7d: that long ago). Without --after or --before the listing starts
    /// there, in arrival order.
    #[arg(long, value_parser = super::when::parse)]
    since: Option<DateTime<Utc>>,
    /// Only rows received before this time (the forms of --since); without
    /// --since, the page is the newest before it.
    #[arg(long, value_parser = super::when::parse, conflicts_with = "follow")]
    until: Option<DateTime<Utc>>,
    /// The rows after this cursor, in arrival order (`--after 0`: from the
    /// first).
    #[arg(long)]
    after: Option<i64>,
    /// The rows just before this cursor: an earlier page (the cursor is
    /// printed when earlier rows remain).
    #[arg(long, conflicts_with_all = ["after", "follow"])]
    before: Option<i64>,
    /// At most this many rows (a page); with --follow, how many of the
    /// newest to print first (0: only rows stored from now on).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=1000))]
    limit: u32,
    /// One JSON object per line (an event with its original payload).
    #[arg(long)]
    json: bool,
    /// Every row from where the listing starts (--after, --since, or the
    /// first), in arrival order, read a page at a time, then exit: an
    /// export, e.g. `--since yesterday --until today --all --json`.
    #[arg(long, conflicts_with_all = ["before", "follow", "limit"])]
    all: bool,
    /// Print the newest page (or every row after --after or since
    /// --since), then keep printing rows as they are stored, until Ctrl-C.
    /// `-f --limit 0` prints only what is stored from now on, as `tail -f
    /// -n 0`.
    #[arg(long, short)]
    follow: bool,
}

impl Paging {
    /// Where the one page printed without `--follow` starts, and which way
    /// it runs.
    fn start(&self) -> (i64, Order) {
        match (self.after, self.before) {
            (Some(after), _) => (after, Order::Asc),
            (None, Some(before)) => (before, Order::Desc),
            (None, None) if self.since.is_some() => (Order::Asc.start(), Order::Asc),
            (None, None) => (Order::Desc.start(), Order::Desc),
        }
    }

    /// Where `--follow` starts reading on, if not from the newest row.
    fn follow_from(&self) -> Option<i64> {
        self.after
            .or_else(|| self.since.map(|_| Order::Asc.start()))
    }

    fn range(&self) -> TimeRange {
        TimeRange {
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Debug, Args)]
pub struct MessageArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The provider's message id.
    message_id: String,
    /// The source, when several use the same message id.
    #[arg(long)]
    source: Option<String>,
    /// One JSON object: the status and every event of the timeline.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct OptoutsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Start after this number (numbers are listed in order).
    #[arg(long)]
    after: Option<String>,
    /// At most this many numbers.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn message(args: &MessageArgs) -> Result<ExitCode> {
    let store = open(&args.config).await?;
    let state =
        crate::message::load(store.as_ref(), args.source.as_deref(), &args.message_id).await;
    store.close().await;
    let Some(state) = state? else {
        eprintln!("no event names message {:?}", args.message_id);
        return Ok(ExitCode::FAILURE);
    };
    if args.json {
        println!("{}", serde_json::to_string(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}): {} since {}",
        state.message_id, state.source, state.status, state.updated_at
    );
    print_table(
        &["ID", "RECEIVED", "TYPE", "STATUS", "ERROR"],
        state.timeline.iter().map(|e| {
            vec![
                e.id.clone(),
                e.received_at.clone(),
                e.fields.event_type.clone(),
                dash(&e.fields.status),
                dash(&e.fields.error_reason),
            ]
        }),
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn optouts(args: &OptoutsArgs) -> Result<ExitCode> {
    let store = open(&args.config).await?;
    let query = crate::store::OptoutQuery {
        after: args.after.clone(),
        limit: args.limit,
    };
    let optouts = store.optouts(&query).await;
    store.close().await;
    let optouts = optouts?;
    print_rows(
        args.json,
        &optouts,
        &["NUMBER", "SINCE", "SOURCE", "EVENT"],
        |o| {
            vec![
                o.number.clone(),
                o.changed_at.clone(),
                o.source.clone(),
                o.event_id.clone(),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// pending, delivered or dead.
    #[arg(long, value_parser = ["pending", "delivered", "dead"])]
    state: Option<String>,
    /// Only deliveries to this destination.
    #[arg(long)]
    destination: Option<String>,
    /// The deliveries after this id (the id is printed when more follow).
    #[arg(long)]
    after: Option<i64>,
    /// At most this many deliveries.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Make every dead delivery (of --destination, if given) pending again.
    #[arg(long)]
    retry_dead: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Event ids to send again.
    event_ids: Vec<String>,
    /// Or every event received at or after this time: RFC 3339, a date, a
    /// UTC date and time, or an age such as 2h (the forms of `events
    /// --since`).
    #[arg(long, conflicts_with = "event_ids", value_parser = super::when::parse)]
    since: Option<DateTime<Utc>>,
    /// The destination to send them to.
    #[arg(long)]
    destination: String,
}

pub async fn deliveries(args: &DeliveriesArgs) -> Result<ExitCode> {
    let store = open(&args.config).await?;
    if args.retry_dead {
        let retried = store
            .retry_dead(args.destination.as_deref(), crate::event::unix_millis())
            .await;
        store.close().await;
        println!("{} dead deliveries are pending again", retried?);
        return Ok(ExitCode::SUCCESS);
    }
    let query = crate::store::DeliveryQuery {
        state: args.state.clone(),
        destination: args.destination.clone(),
        after: args.after,
        limit: args.limit,
    };
    let deliveries = store.deliveries(&query).await;
    store.close().await;
    let deliveries = deliveries?;
    print_rows(
        args.json,
        &deliveries,
        &[
            "ID",
            "EVENT",
            "DESTINATION",
            "STATE",
            "ATTEMPTS",
            "NEXT",
            "LAST ERROR",
        ],
        |d| {
            vec![
                d.id.to_string(),
                d.event_id.clone(),
                d.destination.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                d.next_attempt_at.clone(),
                dash(&d.last_error),
            ]
        },
    )?;
    let pages = Pages {
        seq: |d: &store::Delivery| d.id,
        more: full,
    };
    more_hint(&deliveries, pages, Order::Asc, args.limit);
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(args: &ReplayArgs) -> Result<ExitCode> {
    let config = args.config.load()?;
    if !config
        .destinations
        .iter()
        .any(|d| d.name == args.destination)
    {
        anyhow::bail!(
            "--destination: {:?} is not a configured destination",
            args.destination
        );
    }
    let store = open(&args.config).await?;
    let ids = match &args.since {
        Some(since) => ids_since(store.as_ref(), *since).await,
        None => Ok(args.event_ids.clone()),
    };
    let mut queued = 0;
    let mut missing = Vec::new();
    for id in ids? {
        match store
            .enqueue_delivery(&id, &args.destination, crate::event::unix_millis())
            .await?
        {
            Some(_) => queued += 1,
            None => missing.push(id),
        }
    }
    store.close().await;
    println!("{queued} deliveries queued for {}", args.destination);
    if !missing.is_empty() {
        eprintln!("no such events: {}", missing.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ids of every event received at or after `since`, in arrival order.
async fn ids_since(store: &dyn store::Store, since: DateTime<Utc>) -> Result<Vec<String>> {
    let page = async |after: i64, order: Order, limit: u32| {
        let received = TimeRange {
            since: Some(since),
            until: None,
        };
        let query = EventQuery {
            after: Some(after),
            limit,
            order,
            received,
            ..Default::default()
        };
        store.events(&query).await
    };
    let mut ids = Vec::new();
    let from = (Order::Asc.start(), FOLLOW_PAGE);
    each_page(from, page, EVENTS.pages, |events: Vec<Event>| {
        ids.extend(events.into_iter().map(|e| e.id));
        Ok(true)
    })
    .await?;
    Ok(ids)
}

/// What a listing prints and how it pages: the events' or the request
/// log's.
struct Listing<T> {
    headers: &'static [&'static str],
    /// Columns wide enough for most values, so a followed table stays
    /// aligned as rows arrive (an id is 30 characters, a time 24).
    widths: &'static [usize],
    row: fn(&T) -> Vec<String>,
    pages: Pages<T>,
    /// The newest row's cursor: where `--follow` goes on from without
    /// `--after`.
    newest: fn(store::Newest) -> i64,
}

const EVENTS: Listing<Event> = Listing {
    headers: &[
        "ID", "RECEIVED", "SOURCE", "TYPE", "MESSAGE", "FROM", "TO", "STATUS",
    ],
    widths: &[30, 24, 14, 20, 20, 14, 14, 10],
    row: event_row,
    pages: Pages {
        seq: |e| e.seq,
        more: store::more_events,
    },
    newest: |n| n.events,
};
const REQUESTS: Listing<RequestRecord> = Listing {
    headers: &[
        "AT",
        "SOURCE",
        "STATUS",
        "REASON",
        "REMOTE",
        "SIZE",
        "EVENT OR WHY",
    ],
    widths: &[24, 14, 6, 19, 15, 7, 30],
    row: request_row,
    pages: Pages {
        seq: |r| r.seq,
        more: full,
    },
    newest: |n| n.requests,
};
/// How a listing's rows page.
struct Pages<T> {
    /// A row's cursor.
    seq: fn(&T) -> i64,
    /// Whether rows may follow a page read with a limit: it is full (a page
    /// of events also ends at its payload bytes, `PAGE_PAYLOAD_BYTES`).
    more: fn(&[T], u32) -> bool,
}

impl<T> Clone for Pages<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Pages<T> {}

/// Whether a page read with `limit` is full.
fn full<T>(page: &[T], limit: u32) -> bool {
    page.len() >= limit as usize
}

/// Rows `--follow` reads at a time as it catches up.
const FOLLOW_PAGE: u32 = 1000;
/// How often `--follow` looks for new rows.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

pub async fn events(args: &EventsArgs) -> Result<ExitCode> {
    let store = open(&args.config).await?;
    let page = async |after: i64, order: Order, limit: u32| {
        let query = EventQuery {
            source: args.source.clone(),
            event_type: args.event_type.clone(),
            message_id: args.message_id.clone(),
            number: args.number.clone(),
            after: Some(after),
            limit,
            order,
            received: args.paging.range(),
        };
        store.events(&query).await
    };
    let result = list(&*store, &EVENTS, &args.paging, page).await;
    store.close().await;
    result
}

pub async fn requests(args: &RequestsArgs) -> Result<ExitCode> {
    let store = open(&args.config).await?;
    let page = async |after: i64, order: Order, limit: u32| {
        let query = RequestQuery {
            source: args.source.clone(),
            reason: args.reason.clone(),
            refused: args.refused,
            after: Some(after),
            limit,
            order,
            at: args.paging.range(),
        };
        store.requests(&query).await
    };
    let result = list(&*store, &REQUESTS, &args.paging, page).await;
    store.close().await;
    result
}

/// One page of `page`'s rows, or with `--follow` every row from then on.
async fn list<T: serde::Serialize>(
    store: &dyn store::Store,
    listing: &Listing<T>,
    paging: &Paging,
    page: impl AsyncFn(i64, Order, u32) -> Result<Vec<T>, store::StoreError>,
) -> Result<ExitCode> {
    if paging.all {
        let rows = Rows::new(paging.json, listing.headers, listing.widths, listing.row);
        let from = paging.follow_from().unwrap_or(Order::Asc.start());
        return print_all((from, FOLLOW_PAGE), page, listing.pages, rows).await;
    }
    if paging.follow {
        let rows = Rows::new(paging.json, listing.headers, listing.widths, listing.row);
        let (from, first) = match paging.follow_from() {
            Some(after) => (after, Vec::new()),
            None => {
                // The newest page up to the newest cursor, then on from it:
                // nothing stored between the two reads is missed or doubled.
                let newest = (listing.newest)(store.newest().await?);
                let tail = newest_page(&page, newest.saturating_add(1), paging.limit).await?;
                (newest, tail)
            }
        };
        return follow(from, &first, page, listing.pages.seq, rows).await;
    }
    let (cursor, order) = paging.start();
    let items = match order {
        Order::Asc => page(cursor, order, paging.limit).await?,
        Order::Desc => newest_page(&page, cursor, paging.limit).await?,
    };
    print_rows(paging.json, &items, listing.headers, listing.row)?;
    more_hint(&items, listing.pages, order, paging.limit);
    Ok(ExitCode::SUCCESS)
}

/// The page of rows just before `cursor`, oldest first as printed.
async fn newest_page<T>(
    page: &impl AsyncFn(i64, Order, u32) -> Result<Vec<T>, store::StoreError>,
    cursor: i64,
    limit: u32,
) -> Result<Vec<T>, store::StoreError> {
    let mut items = page(cursor, Order::Desc, limit).await?;
    items.reverse();
    Ok(items)
}

/// Where rows are printed: JSON lines, or one table whose header is
/// printed once.
struct Rows<T> {
    json: bool,
    table: Table,
    row: fn(&T) -> Vec<String>,
}

impl<T: serde::Serialize> Rows<T> {
    fn new(json: bool, headers: &[&str], widths: &[usize], row: fn(&T) -> Vec<String>) -> Self {
        let table = Table::new(headers, widths);
        Self { json, table, row }
    }

    fn print(&mut self, items: &[T]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            for item in items {
                writeln!(out, "{}", serde_json::to_string(item)?)?;
            }
            return out.flush();
        }
        self.table
            .print(&mut out, items.iter().map(self.row).collect())
    }
}

/// Prints `first` (the newest page, when following from now), then the
/// rows after `cursor` as they are stored, a page at a time,
/// until Ctrl-C or until stdout closes (`| head`). A failed read (the
/// database restarting, say) is reported once and retried.
async fn follow<T: serde::Serialize>(
    mut cursor: i64,
    first: &[T],
    page: impl AsyncFn(i64, Order, u32) -> Result<Vec<T>, store::StoreError>,
    seq: fn(&T) -> i64,
    mut rows: Rows<T>,
) -> Result<ExitCode> {
    eprintln!("following after cursor {cursor}; Ctrl-C stops");
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    let mut failing = false;
    let mut printed = rows.print(first);
    loop {
        match printed {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other?,
        }
        let mut got_rows = false;
        printed = match page(cursor, Order::Asc, FOLLOW_PAGE).await {
            Ok(items) => {
                failing = false;
                got_rows = !items.is_empty();
                cursor = items.last().map_or(cursor, seq);
                rows.print(&items)
            }
            Err(e) => {
                if !failing {
                    eprintln!("smshook: {e}; trying again");
                }
                failing = true;
                Ok(())
            }
        };
        // Ctrl-C is looked at after every page, so a steady stream of rows
        // cannot keep it from being noticed.
        let wait = if got_rows {
            Duration::ZERO
        } else {
            FOLLOW_POLL
        };
        tokio::select! {
            biased;
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Every row after `cursor`, in arrival order, `size` at a time; a closed
/// stdout ends it quietly, as `head` closes it.
async fn print_all<T: serde::Serialize>(
    from: (i64, u32),
    page: impl AsyncFn(i64, Order, u32) -> Result<Vec<T>, store::StoreError>,
    pages: Pages<T>,
    mut rows: Rows<T>,
) -> Result<ExitCode> {
    each_page(from, page, pages, |items| match rows.print(&items) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        other => other.map(|()| true).map_err(Into::into),
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads every row after `cursor` in arrival order, `size` at a time,
/// handing each page to `each`, until a page is the last (`pages.more`) or
/// `each` says to stop (`false`).
async fn each_page<T>(
    (mut cursor, size): (i64, u32),
    page: impl AsyncFn(i64, Order, u32) -> Result<Vec<T>, store::StoreError>,
    pages: Pages<T>,
    mut each: impl FnMut(Vec<T>) -> Result<bool>,
) -> Result<()> {
    loop {
        let items = page(cursor, Order::Asc, size).await?;
        let next = items
            .last()
            .map(pages.seq)
            .filter(|_| (pages.more)(&items, size));
        if !each(items)? {
            return Ok(());
        }
        match next {
            Some(last) => cursor = last,
            None => return Ok(()),
        }
    }
}

pub(super) async fn open(config: &ConfigArgs) -> Result<std::sync::Arc<dyn store::Store>> {
    let config = config.load()?;
    store::open(
        &config.database,
        StoreOptions {
            server: false,
            request_log_max_rows: config.request_log_max_rows,
        },
    )
    .await
}

/// On stderr, where the next page starts when this one was full: later
/// rows after an `--after` page, earlier rows before the newest one.
fn more_hint<T>(items: &[T], pages: Pages<T>, order: Order, limit: u32) {
    if items.is_empty() || !(pages.more)(items, limit) {
        return;
    }
    let seq = pages.seq;
    match order {
        Order::Asc => eprintln!(
            "(more may follow: --after {})",
            seq(&items[items.len() - 1])
        ),
        Order::Desc => eprintln!("(earlier rows: --before {})", seq(&items[0])),
    }
}

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn event_row(e: &Event) -> Vec<String> {
    let f = &e.fields;
    vec![
        e.id.clone(),
        e.received_at.clone(),
        e.source.clone(),
        f.event_type.clone(),
        dash(&f.message_id),
        dash(&f.from),
        dash(&f.to),
        dash(&f.status),
    ]
}

fn request_row(r: &RequestRecord) -> Vec<String> {
    vec![
        r.at.clone(),
        r.source.clone(),
        r.status.to_string(),
        r.reason.clone(),
        dash(&r.remote_addr),
        r.size.to_string(),
        // The stored event's id, or why there is none.
        dash(&r.event_id.clone().or_else(|| r.message.clone())),
    ]
}

/// One JSON object per line, or a table. A closed stdout (`| head`) is
/// the reader's choice, not an error.
fn print_rows<T: serde::Serialize>(
    json: bool,
    items: &[T],
    headers: &[&str],
    row: fn(&T) -> Vec<String>,
) -> Result<()> {
    match Rows::new(json, headers, &[], row).print(items) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        printed => Ok(printed?),
    }
}

/// Left-aligned columns as wide as their widest cell.
pub(super) fn print_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let mut table = Table::new(headers, &[]);
    // As `println!` would: a closed stdout is the reader's choice.
    let _ = table.print(&mut std::io::stdout().lock(), rows.collect());
}

/// Left-aligned columns, at least as wide as given, widened to fit what is
/// printed; the header goes out with the first rows.
struct Table {
    headers: Vec<String>,
    widths: Vec<usize>,
    header_printed: bool,
}

impl Table {
    fn new(headers: &[&str], min_widths: &[usize]) -> Self {
        let widths = headers
            .iter()
            .enumerate()
            .map(|(i, h)| h.len().max(min_widths.get(i).copied().unwrap_or(0)))
            .collect();
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            widths,
            header_printed: false,
        }
    }

    fn print(&mut self, out: &mut impl Write, rows: Vec<Vec<String>>) -> std::io::Result<()> {
        for row in &rows {
            for (w, cell) in self.widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        if !self.header_printed {
            self.header_printed = true;
            self.line(out, &self.headers)?;
        }
        for row in &rows {
            self.line(out, row)?;
        }
        out.flush()
    }

    fn line(&self, out: &mut impl Write, cells: &[String]) -> std::io::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--all` reads page after page from the cursor and stops at the
    /// first short one.
    #[tokio::test]
    async fn all_reads_every_page_then_stops() {
        let stored: Vec<i64> = (1..=5).collect();
        let asked = std::sync::Mutex::new(Vec::new());
        let page = async |after: i64, order: Order, limit: u32| {
            asked.lock().expect("lock").push((after, order));
            let rows = stored.iter().filter(|s| **s > after).take(limit as usize);
            Ok::<_, store::StoreError>(rows.copied().collect::<Vec<i64>>())
        };
        let rows = Rows::new(true, &["SEQ"], &[], |s: &i64| vec![s.to_string()]);
        let pages = Pages {
            seq: |s: &i64| *s,
            more: full,
        };
        let done = print_all((0, 2), page, pages, rows).await.expect("all");
        assert_eq!(done, ExitCode::SUCCESS);
        let asked = asked.into_inner().expect("lock");
        assert_eq!(asked, [(0, Order::Asc), (2, Order::Asc), (4, Order::Asc)]);
    }
}
