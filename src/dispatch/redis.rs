//! Redis Streams destinations. Each event becomes one stream entry
//! (`XADD`) of four fields: `event_id`, `source`, `type` and `event` (the
//! JSON an HTTP destination receives). A delivery counts once Redis has
//! the entry.
//!
//! One script writes the entry and a marker naming the delivery, which lives
//! for [`MARKER_TTL`]: a retry of a delivery whose answer was lost (Redis
//! wrote the entry, the reply never came) finds the marker and adds
//! nothing. A replay is a new delivery and is added again, on purpose.
//! Past the marker's hour, or when a consumer fails mid-entry, delivery is
//! at least once, as with every destination: consumers deduplicate on
//! `event_id`.

use std::sync::OnceLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Answer;
use crate::event::Event;

/// How long a delivery's marker stops a second entry for it. The retries
/// that follow a lost answer soonest (after 5 s, 30 s, 2 min, 10 min and 30
/// min with the default schedule, or when a 5-minute lease runs out) fall
/// inside it; a marker costs Redis about 130 bytes (measured with 20,000
/// of them), so at a steady 100 events/s an hour of them is about 47 MB.
pub const MARKER_TTL: Duration = Duration::from_secs(3600);

/// `KEYS[1]` the stream, `KEYS[2]` the delivery's marker; `ARGV`: the
/// marker's lifetime in seconds, the stream's approximate maximum length
/// (0: none), then the entry's four values. Returns 1 when it added the
/// entry, 0 when the marker said it was there already.
const ADD: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local fields = {'event_id', ARGV[3], 'source', ARGV[4], 'type', ARGV[5], 'event', ARGV[6]}
if ARGV[2] ~= '0' then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
else
  redis.call('XADD', KEYS[1], '*', unpack(fields))
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return 1
";

/// A self-reconnecting connection to the server, made at the first delivery.
pub struct Connection {
    url: Option<String>,
    manager: OnceLock<ConnectionManager>,
    script: ::redis::Script,
}

/// Where one destination's entries go.
pub struct Stream<'a> {
    pub key: &'a str,
    /// Trims the stream to about this many entries (`MAXLEN ~`).
    pub max_len: Option<u64>,
}

impl Connection {
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            manager: OnceLock::new(),
            script: ::redis::Script::new(ADD),
        }
    }

    /// Adds `event`, delivery `delivery`, to `stream`, waiting at most
    /// `timeout` for Redis.
    pub async fn add(
        &self,
        stream: &Stream<'_>,
        timeout: Duration,
        delivery: i64,
        event: &Event,
    ) -> Answer {
        let added = tokio::time::timeout(timeout, self.try_add(stream, delivery, event)).await;
        let error = match added {
            Ok(Ok(())) => return Answer::Success(None),
            Ok(Err(error)) => error,
            Err(_) => format!("no answer from Redis within {timeout:?}"),
        };
        Answer::Failure {
            status: None,
            retry_after: None,
            error,
        }
    }

    async fn try_add(
        &self,
        stream: &Stream<'_>,
        delivery: i64,
        event: &Event,
    ) -> Result<(), String> {
        let mut connection = self.manager()?;
        self.script
            .key(stream.key)
            .key(marker_key(stream.key, &event.id, delivery))
            .arg(MARKER_TTL.as_secs())
            .arg(stream.max_len.unwrap_or(0))
            .arg(&event.id)
            .arg(&event.source)
            .arg(&event.fields.event_type)
            .arg(super::body(event))
            .invoke_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| self.describe(&e))
    }

    /// The connection manager, made on first use; it connects lazily and
    /// reconnects by itself, so a Redis that is down fails attempts (which
    /// are retried) rather than the server's start.
    fn manager(&self) -> Result<ConnectionManager, String> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let url = self.url.as_deref().ok_or("no redis_url is configured")?;
        // `rediss://` builds its rustls config from the process's default
        // provider, which two providers in the build leave unchosen (a panic
        // at the first TLS connection). The one the rest of smshook uses;
        // an error only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = ::redis::Client::open(url).map_err(|_| "redis_url is not a Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| self.describe(&e))?;
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    /// What went wrong, as recorded with the attempt. The crate's errors do
    /// not carry the URL; the password is masked all the same, should one
    /// ever appear.
    fn describe(&self, e: &::redis::RedisError) -> String {
        let what = if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            "cannot reach Redis"
        } else {
            "Redis refused the entry"
        };
        let text = format!("{what}: {e}");
        let password = self
            .url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok());
        match password.as_ref().and_then(|u| u.password()) {
            Some(p) if !p.is_empty() => text.replace(p, "***"),
            _ => text,
        }
    }
}

/// The marker of delivery `delivery` of event `event_id` to `stream`: in
/// the stream's Redis Cluster slot, since a script's keys must share one
/// (through a cluster proxy, say). The event id is a ULID, so two smshook
/// databases writing to one stream never share a marker, though their
/// delivery ids may be the same.
pub fn marker_key(stream: &str, event_id: &str, delivery: i64) -> String {
    let tag = slot_tag(stream).unwrap_or(stream);
    format!("{{{tag}}}:smshook:{event_id}:{delivery}")
}

/// What Redis hashes `stream` by: its `{hash tag}`, or the whole name. `None`
/// for a name with a `}` and no tag, which no other key can be put in the
/// slot of without computing it (the config refuses such a name).
pub fn slot_tag(stream: &str) -> Option<&str> {
    let tag = stream
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty());
    match tag {
        Some(tag) => Some(tag),
        None if stream.contains('}') => None,
        None => Some(stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_shares_its_streams_cluster_slot() {
        assert_eq!(
            marker_key("sms:events", "evt_1", 7),
            "{sms:events}:smshook:evt_1:7"
        );
        assert_eq!(marker_key("{app}:sms", "evt_1", 7), "{app}:smshook:evt_1:7");
        assert_eq!(marker_key("a{b", "evt_1", 7), "{a{b}:smshook:evt_1:7");
        // `{}` is no tag: Redis hashes the whole name, which no braces
        // around it can reproduce.
        assert_eq!(slot_tag("a{}b"), None);
    }
}
