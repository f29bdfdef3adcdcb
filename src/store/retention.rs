//! Which stored events retention deletes, decided the same way on every
//! backend: a pass walks the events in arrival order (`seq`) from a cursor,
//! a batch at a time, and stops at the first one received after the cutoff.
//! Walking by `seq` reads the primary key only, so a pass over a table with
//! nothing to delete costs one short read, however large the table; and no
//! index on `received_at` weighs on every insert.
//!
//! An event with a delivery still pending is kept (the application has not
//! received it yet) and stepped over; the cursor moves past it, so it is
//! looked at again only when a pass starts over from the beginning.

/// A batch's events after the cursor `$1`, at most `$2`, for [`choose`]
/// (the same text for both backends: SQLite reads `$1` as a parameter too).
/// `deliveries_event` makes the pending check an index probe.
pub const CANDIDATES: &str = "SELECT e.seq, e.id, e.source, e.message_id, e.received_at, \
    EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state = 'pending') \
    FROM events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2";

/// One event of a batch, as a backend read it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub seq: i64,
    pub id: String,
    pub source: String,
    pub message_id: Option<String>,
    pub received_at: String,
    /// A delivery of it is pending.
    pub pending: bool,
}

/// What one batch of a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted.
    pub deleted: u64,
    /// The cursor for the next batch: every event up to this `seq` was
    /// looked at.
    pub through: i64,
    /// The pass reached an event received after the cutoff, or the end.
    pub done: bool,
}

/// Of `batch` (events after the cursor `after`, in `seq` order, at most
/// `limit`), those to delete: every one before the first received at or
/// after `cutoff` (RFC 3339 UTC, which sorts as text), but none pending.
pub fn choose(
    batch: Vec<Candidate>,
    after: i64,
    cutoff: &str,
    limit: usize,
) -> (Vec<Candidate>, Pruned) {
    let full = batch.len() >= limit;
    let mut through = after;
    let mut reached_recent = false;
    let mut doomed = Vec::new();
    for candidate in batch {
        if candidate.received_at.as_str() >= cutoff {
            reached_recent = true;
            break;
        }
        through = candidate.seq;
        if !candidate.pending {
            doomed.push(candidate);
        }
    }
    let pruned = Pruned {
        deleted: doomed.len() as u64,
        through,
        done: reached_recent || !full,
    };
    (doomed, pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, received_at: &str, pending: bool) -> Candidate {
        Candidate {
            seq,
            id: format!("ev_{seq}"),
            source: "ig".into(),
            message_id: None,
            received_at: received_at.into(),
            pending,
        }
    }

    const CUTOFF: &str = "2026-11-01T00:00:00.000Z";

    #[test]
    fn deletes_up_to_the_first_recent_event_and_keeps_pending_ones() {
        let batch = vec![
            event(3, "2026-10-01T00:00:00.000Z", false),
            event(4, "2026-10-02T00:00:00.000Z", true),
            event(7, "2026-10-31T23:59:59.999Z", false),
            event(8, CUTOFF, false),
            // Later than an event already recent: left for a later pass.
            event(9, "2026-10-05T00:00:00.000Z", false),
        ];
        let (doomed, pruned) = choose(batch, 2, CUTOFF, 5);
        let ids: Vec<_> = doomed.iter().map(|c| c.seq).collect();
        assert_eq!(ids, [3, 7]);
        assert_eq!(
            pruned,
            Pruned {
                deleted: 2,
                through: 7,
                done: true
            }
        );
    }

    #[test]
    fn a_full_batch_of_old_events_asks_for_more_and_an_empty_one_is_done() {
        let batch = vec![
            event(1, "2026-10-01T00:00:00.000Z", false),
            event(2, "2026-10-01T00:00:01.000Z", true),
        ];
        let (_, pruned) = choose(batch.clone(), 0, CUTOFF, 2);
        assert_eq!((pruned.through, pruned.done), (2, false));
        let (_, pruned) = choose(batch, 0, CUTOFF, 3);
        assert!(pruned.done, "a short batch is the end of the table");
        let (doomed, pruned) = choose(Vec::new(), 41, CUTOFF, 100);
        assert!(doomed.is_empty());
        assert_eq!((pruned.through, pruned.done), (41, true));
    }
}
