//! An in-memory outbox for the dispatcher's timing tests. A paused tokio
//! clock jumps ahead whenever the runtime waits on another thread, so those
//! tests cannot use SQLite's writer thread or a database socket; this store
//! does everything in the runtime. The SQL outboxes are tested for real
//! elsewhere (replay, leases, replicas).

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;
use smshook::event::{Event, Inserted, NewEvent, RequestRecord};
use smshook::message::StatusRow;
use smshook::optout::Optout;
use smshook::store::retention::Pruned;
use smshook::store::{
    AttemptRecord, Delivery, DeliveryQuery, DeliveryUpdate, DueDelivery, EventQuery, OptoutQuery,
    RequestQuery, Store, StoreError, millis_to_rfc3339,
};

#[derive(Default)]
pub struct MemoryOutbox {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    events: Vec<Event>,
    deliveries: Vec<Row>,
    attempts: Vec<(i64, AttemptRecord)>,
}

struct Row {
    id: i64,
    event_id: String,
    destination: String,
    state: String,
    attempts: i64,
    next: i64,
    locked_until: Option<i64>,
    last_status: Option<u16>,
    last_error: Option<String>,
}

impl MemoryOutbox {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }
}

#[async_trait]
impl Store for MemoryOutbox {
    async fn insert_events(
        &self,
        events: Vec<NewEvent>,
        _: Option<RequestRecord>,
    ) -> Result<Vec<Inserted>, StoreError> {
        let mut inserted = Vec::new();
        for event in events {
            inserted.push(self.insert_event(event, RequestRecord::default()).await?);
        }
        Ok(inserted)
    }
    async fn insert_event(&self, e: NewEvent, _: RequestRecord) -> Result<Inserted, StoreError> {
        let now = smshook::event::unix_millis();
        self.with(|s| {
            for d in &e.destinations {
                let id = s.deliveries.len() as i64 + 1;
                s.deliveries.push(Row {
                    id,
                    event_id: e.id.clone(),
                    destination: d.clone(),
                    state: "pending".into(),
                    attempts: 0,
                    next: now,
                    locked_until: None,
                    last_status: None,
                    last_error: None,
                });
            }
            s.events.push(Event {
                seq: s.events.len() as i64 + 1,
                id: e.id.clone(),
                source: e.source,
                provider: e.provider,
                fields: e.fields,
                opt_out: e.opt_out,
                received_at: e.received_at,
                payload: RawValue::from_string(e.payload).expect("json"),
            });
        });
        Ok(Inserted {
            event_id: e.id,
            duplicate: false,
        })
    }
    fn record_request(&self, _: RequestRecord) {}
    async fn parts(
        &self,
        _: &str,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(Vec::new())
    }
    async fn events(&self, _: &EventQuery) -> Result<Vec<Event>, StoreError> {
        Ok(self.with(|s| s.events.clone()))
    }
    async fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        Ok(self.with(|s| s.events.iter().find(|e| e.id == id).cloned()))
    }
    async fn counts(
        &self,
        _: &smshook::store::TimeRange,
    ) -> Result<smshook::store::Counts, StoreError> {
        Err(StoreError::Unavailable("not kept in memory".into()))
    }

    async fn newest(&self) -> Result<smshook::store::Newest, StoreError> {
        let events = self.with(|s| s.events.last().map_or(0, |e| e.seq));
        Ok(smshook::store::Newest {
            events,
            requests: 0,
        })
    }
    async fn requests(&self, _: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn message_status(
        &self,
        _: Option<&str>,
        _: &str,
    ) -> Result<Option<StatusRow>, StoreError> {
        Ok(None)
    }
    async fn optouts(&self, _: &OptoutQuery) -> Result<Vec<Optout>, StoreError> {
        Ok(Vec::new())
    }
    async fn optout(&self, _: &str) -> Result<Option<Optout>, StoreError> {
        Ok(None)
    }
    async fn claim_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        Ok(self.with(|s| {
            let events = s.events.clone();
            s.deliveries
                .iter_mut()
                .filter(|d| {
                    d.state == "pending" && d.next <= now && d.locked_until.is_none_or(|l| l < now)
                })
                .take(limit as usize)
                .map(|d| {
                    d.locked_until = Some(now + lease);
                    let event = events
                        .iter()
                        .find(|e| e.id == d.event_id)
                        .expect("event")
                        .clone();
                    DueDelivery {
                        id: d.id,
                        destination: d.destination.clone(),
                        attempts: d.attempts,
                        event,
                    }
                })
                .collect()
        }))
    }
    async fn finish_deliveries(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        self.with(|s| {
            for u in updates {
                let d = s
                    .deliveries
                    .iter_mut()
                    .find(|d| d.id == u.id)
                    .expect("delivery");
                d.state = u.state;
                d.attempts += 1;
                d.next = u.next_attempt_at;
                d.locked_until = None;
                d.last_status = u.attempt.status;
                d.last_error = u.attempt.error.clone();
                s.attempts.push((u.id, u.attempt));
            }
        });
        Ok(())
    }
    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.with(|s| {
            s.deliveries
                .iter()
                .filter(|d| q.state.as_ref().is_none_or(|st| &d.state == st))
                .map(|d| Delivery {
                    id: d.id,
                    event_id: d.event_id.clone(),
                    destination: d.destination.clone(),
                    state: d.state.clone(),
                    attempts: d.attempts,
                    next_attempt_at: millis_to_rfc3339(d.next),
                    last_status: d.last_status,
                    last_error: d.last_error.clone(),
                    created_at: String::new(),
                    updated_at: String::new(),
                })
                .collect()
        }))
    }
    async fn attempts(&self, id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self.with(|s| {
            s.attempts
                .iter()
                .filter(|(d, _)| *d == id)
                .map(|(_, a)| a.clone())
                .collect()
        }))
    }
    async fn enqueue_delivery(&self, _: &str, _: &str, _: i64) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
    /// Retention is not this double's subject: it keeps every event.
    async fn prune(&self, after: i64, _: &str, _: u32) -> Result<Pruned, StoreError> {
        Ok(Pruned {
            deleted: 0,
            through: after,
            done: true,
        })
    }
    async fn retry_dead(&self, _: Option<&str>, now: i64) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let mut n = 0;
            for d in s.deliveries.iter_mut().filter(|d| d.state == "dead") {
                (d.state, d.attempts, d.next, n) = ("pending".into(), 0, now, n + 1);
            }
            n
        }))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn close(&self) {}
}
