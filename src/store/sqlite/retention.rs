//! Retention on SQLite: one batch of a pass (`store::retention`), as one
//! transaction on the writer's connection, between two batches of webhooks.

use rusqlite::{Connection, params};

use crate::store::retention::{CANDIDATES, Candidate, Pruned, choose};

/// Looks at up to `limit` events after `after` and deletes those `choose`
/// picks, with their attempts, deliveries and message statuses.
pub fn prune(conn: &Connection, after: i64, cutoff: &str, limit: u32) -> rusqlite::Result<Pruned> {
    let batch = conn
        .prepare_cached(CANDIDATES)?
        .query_map(params![after, limit], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                id: r.get(1)?,
                source: r.get(2)?,
                message_id: r.get(3)?,
                received_at: r.get(4)?,
                pending: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (doomed, pruned) = choose(batch, after, cutoff, limit as usize);
    for event in &doomed {
        delete(conn, event)?;
    }
    Ok(pruned)
}

fn delete(conn: &Connection, event: &Candidate) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
    )?
    .execute([&event.id])?;
    conn.prepare_cached("DELETE FROM deliveries WHERE event_id = ?1")?
        .execute([&event.id])?;
    if let Some(message_id) = &event.message_id {
        // Only a status this event set: a later event's status stays.
        conn.prepare_cached(
            "DELETE FROM messages WHERE message_id = ?1 AND source = ?2 AND event_id = ?3",
        )?
        .execute([message_id, &event.source, &event.id])?;
    }
    conn.prepare_cached("DELETE FROM events WHERE seq = ?1")?
        .execute([event.seq])?;
    Ok(())
}
