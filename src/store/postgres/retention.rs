//! Retention on PostgreSQL: one batch of a pass (`store::retention`): the
//! events are read, then deleted in one transaction with their attempts,
//! deliveries and message statuses. Replicas each run passes, but one batch
//! at a time: a batch first takes the retention lock, and a replica that
//! finds it taken ends its pass (another replica is deleting; its own next
//! pass comes a minute later). Without it, every replica read the same
//! candidates and queued the same deletes behind one another's.

use deadpool_postgres::Object;

use crate::store::retention::{CANDIDATES, Candidate, Pruned, choose};

/// The retention lock's key, as arguments of PostgreSQL's advisory lock
/// functions: "smrt" and the schema's hash, so deployments sharing a
/// database in different schemas do not wait for each other.
pub const RETENTION_LOCK: &str = "1936552564, hashtext(current_schema())";

/// Deletes the chosen events that still have no pending delivery (one may
/// have been replayed since they were read), returning those deleted.
const DELETE_EVENTS: &str = "DELETE FROM events e WHERE e.seq = ANY($1) AND NOT EXISTS \
    (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state = 'pending') \
    RETURNING e.id, e.source, e.message_id";
const DELETE_ATTEMPTS: &str = "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ANY($1))";
const DELETE_DELIVERIES: &str = "DELETE FROM deliveries WHERE event_id = ANY($1)";
/// Only statuses these events set: a later event's status stays.
const DELETE_MESSAGES: &str = "DELETE FROM messages m \
    USING unnest($1::text[], $2::text[], $3::text[]) AS g(message_id, source, event_id) \
    WHERE m.message_id = g.message_id AND m.source = g.source AND m.event_id = g.event_id";

pub async fn prune(
    client: &mut Object,
    after: i64,
    cutoff: &str,
    limit: u32,
) -> Result<Pruned, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // The lock for this transaction, or word that another replica holds it.
    let try_lock = format!("SELECT pg_try_advisory_xact_lock({RETENTION_LOCK})");
    let locked: bool = tx.query_one(&try_lock, &[]).await?.get(0);
    if !locked {
        return Ok(Pruned {
            deleted: 0,
            through: after,
            done: true,
        });
    }
    let rows = tx.query(CANDIDATES, &[&after, &i64::from(limit)]).await?;
    let batch = rows
        .iter()
        .map(|r| {
            Ok(Candidate {
                seq: r.try_get(0)?,
                id: r.try_get(1)?,
                source: r.try_get(2)?,
                message_id: r.try_get(3)?,
                received_at: r.try_get(4)?,
                pending: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let (doomed, mut pruned) = choose(batch, after, cutoff, limit as usize);
    if doomed.is_empty() {
        tx.commit().await?;
        return Ok(pruned);
    }
    let seqs: Vec<i64> = doomed.iter().map(|c| c.seq).collect();
    tx.batch_execute(super::BEGIN_WRITE).await?;
    let deleted = tx.query(DELETE_EVENTS, &[&seqs]).await?;
    let ids: Vec<&str> = deleted.iter().map(|r| r.get(0)).collect();
    tx.execute(DELETE_ATTEMPTS, &[&ids]).await?;
    tx.execute(DELETE_DELIVERIES, &[&ids]).await?;
    let (mut messages, mut sources, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for row in &deleted {
        if let Some(message_id) = row.get::<_, Option<&str>>(2) {
            messages.push(message_id);
            sources.push(row.get::<_, &str>(1));
            events.push(row.get::<_, &str>(0));
        }
    }
    tx.execute(DELETE_MESSAGES, &[&messages, &sources, &events])
        .await?;
    tx.commit().await?;
    pruned.deleted = deleted.len() as u64;
    Ok(pruned)
}
