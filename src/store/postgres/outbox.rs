//! The outbox on PostgreSQL. Replicas claim due deliveries with
//! `FOR UPDATE SKIP LOCKED` and a lease (`locked_until`), so each pending
//! delivery is worked by one replica at a time, and one that dies mid-delivery
//! releases it when the lease runs out.

use std::collections::HashMap;

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{EVENT_COLUMNS, event_from_row, unavailable};
use crate::event::now_rfc3339;
use crate::store::{
    AttemptRecord, BacklogCount, DELIVERY_BACKLOG, Delivery, DeliveryQuery, DeliveryUpdate,
    DueDelivery, StoreError, millis_to_rfc3339,
};

const CLAIM: &str = "UPDATE deliveries d SET locked_until = $1 + $2 FROM (SELECT id FROM deliveries \
    WHERE state = 'pending' AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until < $1) \
    ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) due \
    WHERE d.id = due.id RETURNING d.id, d.event_id, d.destination, d.attempts";
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (delivery_id, at, status, latency_ms, error) \
    SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::int8[], $5::text[])";
const UPDATE_DELIVERIES: &str = "UPDATE deliveries d SET state = u.state, attempts = d.attempts + 1, \
    next_attempt_at = u.next, locked_until = NULL, last_status = u.status, last_error = u.error, updated_at = $6 \
    FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::int4[], $5::text[]) AS u(id, state, next, status, error) \
    WHERE d.id = u.id";
const DELIVERY_COLUMNS: &str = "id, event_id, destination, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at";

pub async fn claim(
    client: &Object,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    let rows = client
        .query(CLAIM, &[&now_ms, &lease_ms, &i64::from(limit)])
        .await
        .map_err(unavailable)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ANY($1)");
    let events = client.query(&sql, &[&ids]).await.map_err(unavailable)?;
    let mut by_id: HashMap<String, _> = HashMap::new();
    for row in &events {
        let event = event_from_row(row)?;
        by_id.insert(event.id.clone(), event);
    }
    Ok(rows
        .iter()
        .filter_map(|r| {
            let event = by_id.get(&r.get::<_, String>(1))?.clone();
            Some(DueDelivery {
                id: r.get(0),
                destination: r.get(2),
                attempts: i64::from(r.get::<_, i32>(3)),
                event,
            })
        })
        .collect())
}

pub async fn finish(
    client: &mut Object,
    updates: &[DeliveryUpdate],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
    let at: Vec<&str> = updates.iter().map(|u| u.attempt.at.as_str()).collect();
    let status: Vec<Option<i32>> = updates
        .iter()
        .map(|u| u.attempt.status.map(i32::from))
        .collect();
    let latency: Vec<i64> = updates.iter().map(|u| u.attempt.latency_ms).collect();
    let error: Vec<Option<&str>> = updates.iter().map(|u| u.attempt.error.as_deref()).collect();
    let state: Vec<&str> = updates.iter().map(|u| u.state.as_str()).collect();
    let next: Vec<i64> = updates.iter().map(|u| u.next_attempt_at).collect();
    let tx = client.transaction().await?;
    tx.execute(INSERT_ATTEMPTS, &[&ids, &at, &status, &latency, &error])
        .await?;
    tx.execute(
        UPDATE_DELIVERIES,
        &[&ids, &state, &next, &status, &error, &now_rfc3339()],
    )
    .await?;
    tx.commit().await
}

pub async fn backlog(client: &Object) -> Result<Vec<BacklogCount>, StoreError> {
    let rows = client
        .query(DELIVERY_BACKLOG, &[])
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|r| {
            Ok(BacklogCount {
                destination: r.try_get(0).map_err(unavailable)?,
                state: r.try_get(1).map_err(unavailable)?,
                count: r.try_get::<_, i64>(2).map_err(unavailable)? as u64,
            })
        })
        .collect()
}

pub async fn list(client: &Object, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id > $1 AND ($2::text IS NULL OR state = $2) \
         AND ($3::text IS NULL OR destination = $3) ORDER BY id LIMIT $4"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &q.after.unwrap_or(0),
        &q.state,
        &q.destination,
        &i64::from(q.limit),
    ];
    let rows = client.query(&sql, &params).await.map_err(unavailable)?;
    rows.iter().map(delivery_from_row).collect()
}

pub async fn attempts(client: &Object, delivery_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
    let sql =
        "SELECT at, status, latency_ms, error FROM attempts WHERE delivery_id = $1 ORDER BY id";
    let rows = client
        .query(sql, &[&delivery_id])
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|r| {
            Ok(AttemptRecord {
                at: r.try_get(0).map_err(unavailable)?,
                status: r
                    .try_get::<_, Option<i32>>(1)
                    .map_err(unavailable)?
                    .map(|s| s as u16),
                latency_ms: r.try_get(2).map_err(unavailable)?,
                error: r.try_get(3).map_err(unavailable)?,
            })
        })
        .collect()
}

pub async fn enqueue(
    client: &Object,
    event_id: &str,
    destination: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = "INSERT INTO deliveries (event_id, destination, next_attempt_at, created_at, updated_at) \
               SELECT id, $2, $3, $4, $4 FROM events WHERE id = $1 RETURNING id";
    let row = client
        .query_opt(sql, &[&event_id, &destination, &now_ms, &now_rfc3339()])
        .await
        .map_err(unavailable)?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn retry_dead(
    client: &Object,
    destination: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let sql = "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, locked_until = NULL, \
               updated_at = $2 WHERE state = 'dead' AND ($3::text IS NULL OR destination = $3)";
    client
        .execute(sql, &[&now_ms, &now_rfc3339(), &destination])
        .await
        .map_err(unavailable)
}

fn delivery_from_row(r: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.try_get(0).map_err(unavailable)?,
        event_id: r.try_get(1).map_err(unavailable)?,
        destination: r.try_get(2).map_err(unavailable)?,
        state: r.try_get(3).map_err(unavailable)?,
        attempts: i64::from(r.try_get::<_, i32>(4).map_err(unavailable)?),
        next_attempt_at: millis_to_rfc3339(r.try_get(5).map_err(unavailable)?),
        last_status: r
            .try_get::<_, Option<i32>>(6)
            .map_err(unavailable)?
            .map(|s| s as u16),
        last_error: r.try_get(7).map_err(unavailable)?,
        created_at: r.try_get(8).map_err(unavailable)?,
        updated_at: r.try_get(9).map_err(unavailable)?,
    })
}
