//! Message status: one current status per message, which never moves
//! backwards. Delivery reports arrive late, twice or out of order; a status
//! only replaces one of lower rank, and `delivered`/`failed` (and an inbound
//! `received`) are final: the first final report wins.

use serde::Serialize;

use crate::event::{Event, EventFields};

/// The status an event sets and its rank, for events that set one.
pub fn status_of(fields: &EventFields) -> Option<(&'static str, i64)> {
    fields.message_id.as_ref()?;
    match fields.event_type.as_str() {
        "message.sent" => Some(("sent", 1)),
        "message.delivered" => Some(("delivered", 2)),
        "message.failed" => Some(("failed", 2)),
        "message.received" => Some(("received", 2)),
        _ => None,
    }
}

/// A message's current state and every event about it, in arrival order.
#[derive(Debug, Serialize)]
pub struct MessageState {
    pub source: String,
    pub message_id: String,
    pub status: String,
    /// The event that set the current status.
    pub status_event_id: String,
    pub updated_at: String,
    /// One page of events ([`crate::store::Store::events`]): the first
    /// 1,000, or fewer if their payloads pass `PAGE_PAYLOAD_BYTES` (8 MiB).
    /// A message has a handful; anything past that is listed by
    /// `/api/events?message_id=`.
    pub timeline: Vec<Event>,
}

/// The current status row as stored.
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub source: String,
    pub message_id: String,
    pub status: String,
    pub status_event_id: String,
    pub updated_at: String,
}

/// A message's status and timeline, or `None` if no event named it.
pub async fn load(
    store: &dyn crate::store::Store,
    source: Option<&str>,
    message_id: &str,
) -> Result<Option<MessageState>, crate::store::StoreError> {
    let Some(row) = store.message_status(source, message_id).await? else {
        return Ok(None);
    };
    let query = crate::store::EventQuery {
        source: Some(row.source.clone()),
        message_id: Some(message_id.to_string()),
        limit: 1000,
        ..Default::default()
    };
    let timeline = store.events(&query).await?;
    Ok(Some(MessageState {
        source: row.source,
        message_id: row.message_id,
        status: row.status,
        status_event_id: row.status_event_id,
        updated_at: row.updated_at,
        timeline,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(t: &str) -> EventFields {
        EventFields {
            event_type: t.into(),
            message_id: Some("m".into()),
            ..EventFields::default()
        }
    }

    #[test]
    fn finals_outrank_sent() {
        let rank = |t: &str| status_of(&fields(t)).map(|s| s.1);
        assert!(rank("message.delivered") > rank("message.sent"));
        assert_eq!(
            rank("message.failed"),
            rank("message.delivered"),
            "neither final replaces the other"
        );
        assert_eq!(
            rank("message.updated"),
            None,
            "other types only join the timeline"
        );
        let mut no_id = fields("message.sent");
        no_id.message_id = None;
        assert_eq!(status_of(&no_id), None);
    }
}
