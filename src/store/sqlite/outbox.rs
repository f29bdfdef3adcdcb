//! The outbox on SQLite: claiming due deliveries under a lease, recording
//! attempts, listing, replay and bulk retry. Writes run on the writer thread
//! (one transaction per call); reads on the reader connection.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{EVENT_COLUMNS, cursor_range, event_from_row, filters};
use crate::event::now_rfc3339;
use crate::store::{
    AttemptRecord, BacklogCount, DELIVERY_BACKLOG, Delivery, DeliveryQuery, DeliveryUpdate,
    DueDelivery, Order, millis_to_rfc3339,
};

/// `INDEXED BY`: left to itself, SQLite's planner picks `deliveries_state`
/// and sorts every pending delivery to take the first few, so each claim
/// cost O(backlog) on the writer thread and stalled ingestion while a flood
/// was queued (webhook p99 28 ms with a destination; 5-8 ms with this). The
/// partial index is already in claim order.
const CLAIM: &str = "UPDATE deliveries SET locked_until = ?1 + ?2 WHERE id IN (SELECT id FROM deliveries \
    INDEXED BY deliveries_due WHERE state = 'pending' AND next_attempt_at <= ?1 AND (locked_until IS NULL OR locked_until < ?1) \
    ORDER BY next_attempt_at, id LIMIT ?3) RETURNING id, event_id, destination, attempts";
const INSERT_ATTEMPT: &str =
    "INSERT INTO attempts (delivery_id, at, status, latency_ms, error) VALUES (?1, ?2, ?3, ?4, ?5)";
const UPDATE_DELIVERY: &str = "UPDATE deliveries SET state = ?2, attempts = attempts + 1, next_attempt_at = ?3, \
    locked_until = NULL, last_status = ?4, last_error = ?5, updated_at = ?6 WHERE id = ?1";
const DELIVERY_COLUMNS: &str = "id, event_id, destination, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at";

pub fn claim(
    conn: &Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> rusqlite::Result<Vec<DueDelivery>> {
    let claimed: Vec<(i64, String, String, i64)> = conn
        .prepare_cached(CLAIM)?
        .query_map(params![now_ms, lease_ms, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1");
    let mut find = conn.prepare_cached(&sql)?;
    let mut due = Vec::with_capacity(claimed.len());
    for (id, event_id, destination, attempts) in claimed {
        if let Some(event) = find.query_row([&event_id], event_from_row).optional()? {
            due.push(DueDelivery {
                id,
                destination,
                attempts,
                event,
            });
        }
    }
    Ok(due)
}

pub fn finish(conn: &Connection, updates: &[DeliveryUpdate]) -> rusqlite::Result<()> {
    let now = now_rfc3339();
    for u in updates {
        let a = &u.attempt;
        conn.prepare_cached(INSERT_ATTEMPT)?.execute(params![
            u.id,
            a.at,
            a.status,
            a.latency_ms,
            a.error
        ])?;
        conn.prepare_cached(UPDATE_DELIVERY)?.execute(params![
            u.id,
            u.state,
            u.next_attempt_at,
            a.status,
            a.error,
            now
        ])?;
    }
    Ok(())
}

/// Deliveries in id order; by state, a search of `deliveries_state`.
pub fn backlog(conn: &Connection) -> rusqlite::Result<Vec<BacklogCount>> {
    let mut statement = conn.prepare_cached(DELIVERY_BACKLOG)?;
    let rows = statement.query_map([], |r| {
        Ok(BacklogCount {
            destination: r.get(0)?,
            state: r.get(1)?,
            count: r.get::<_, i64>(2)? as u64,
        })
    })?;
    rows.collect()
}

pub fn list(conn: &Connection, q: &DeliveryQuery) -> rusqlite::Result<Vec<Delivery>> {
    let (sql, values) = list_sql(q);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), delivery_from_row)?;
    rows.collect()
}

fn list_sql(q: &DeliveryQuery) -> (String, Vec<SqlValue>) {
    let (clause, mut values) = filters(
        cursor_range("id", (q.after, Order::Asc), Vec::new(), Vec::new()),
        &[("state", &q.state), ("destination", &q.destination)],
        Vec::new(),
    );
    values.push(SqlValue::Integer(q.limit.into()));
    let sql =
        format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {clause} ORDER BY id LIMIT ?");
    (sql, values)
}

pub fn attempts(conn: &Connection, delivery_id: i64) -> rusqlite::Result<Vec<AttemptRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, status, latency_ms, error FROM attempts WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([delivery_id], |r| {
        Ok(AttemptRecord {
            at: r.get(0)?,
            status: r.get(1)?,
            latency_ms: r.get(2)?,
            error: r.get(3)?,
        })
    })?;
    rows.collect()
}

pub fn enqueue(
    conn: &Connection,
    event_id: &str,
    destination: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let exists = conn
        .query_row("SELECT 1 FROM events WHERE id = ?1", [event_id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO deliveries (event_id, destination, next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![event_id, destination, now_ms, now],
    )?;
    Ok(Some(conn.last_insert_rowid()))
}

pub fn retry_dead(
    conn: &Connection,
    destination: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    let changed = conn.execute(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, locked_until = NULL, \
         updated_at = ?2 WHERE state = 'dead' AND (?3 IS NULL OR destination = ?3)",
        params![now_ms, now_rfc3339(), destination],
    )?;
    Ok(changed as u64)
}

fn delivery_from_row(r: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        destination: r.get(2)?,
        state: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt_at: millis_to_rfc3339(r.get(5)?),
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::query_plan;
    use super::*;

    /// A claim must read the due index in order and stop at the limit, not
    /// sort the whole backlog: a flood queues hundreds of thousands.
    #[test]
    fn claims_walk_the_due_index_without_sorting_the_backlog() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        super::super::migrate(&mut conn).expect("migrations");
        let plan = query_plan(&conn, CLAIM, params![0, 0, 1]);
        assert!(plan.contains("USING INDEX deliveries_due"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// Listing by state searches `deliveries_state` in id order; listing
    /// everything walks the table in id order. Neither sorts.
    #[test]
    fn a_listing_by_state_searches_its_index() {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite");
        super::super::migrate(&mut conn).expect("migrations");
        let plan = |state: Option<&str>| {
            let (sql, values) = list_sql(&DeliveryQuery {
                state: state.map(String::from),
                destination: None,
                after: None,
                limit: 10,
            });
            query_plan(&conn, &sql, params_from_iter(values))
        };
        let (by_state, all) = (plan(Some("dead")), plan(None));
        assert!(
            by_state.contains("USING INDEX deliveries_state (state=? AND id>?)"),
            "{by_state}"
        );
        assert!(all.contains("USING INTEGER PRIMARY KEY (rowid>?)"), "{all}");
        for plan in [by_state, all] {
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
