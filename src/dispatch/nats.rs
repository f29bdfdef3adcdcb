//! NATS JetStream destinations. Each event is published on a subject built
//! from the destination's template (`sms.{source}.{type}`), with
//! `Nats-Msg-Id` set to the event id so JetStream drops a redelivery inside
//! its duplicate window. A delivery counts only once JetStream acknowledges
//! it (an ack that says "duplicate" counts too: the stream has it).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, Context};
use tokio::sync::OnceCell;

use super::Answer;
use crate::event::Event;

/// A lazily made, self-reconnecting JetStream connection.
pub struct Connection {
    url: Option<String>,
    context: OnceCell<Context>,
    /// Streams already checked or created, so it is done once each.
    streams: Mutex<HashSet<String>>,
}

impl Connection {
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            context: OnceCell::new(),
            streams: Mutex::new(HashSet::new()),
        }
    }

    async fn context(&self) -> Result<&Context, String> {
        let url = self.url.as_deref().ok_or("no nats_url is configured")?;
        self.context
            .get_or_try_init(|| async {
                let client = async_nats::connect(url)
                    .await
                    .map_err(|e| format!("cannot reach NATS: {e}"))?;
                Ok(jetstream::new(client))
            })
            .await
    }

    /// Publishes `event` and waits (at most `timeout`) for JetStream's ack.
    pub async fn publish(
        &self,
        template: &str,
        stream: Option<&str>,
        timeout: Duration,
        event: &Event,
    ) -> Answer {
        match tokio::time::timeout(timeout, self.try_publish(template, stream, event)).await {
            Ok(Ok(())) => Answer::Success(None),
            Ok(Err(error)) => Answer::Failure {
                status: None,
                retry_after: None,
                error,
            },
            Err(_) => Answer::Failure {
                status: None,
                retry_after: None,
                error: format!("no JetStream ack within {timeout:?}"),
            },
        }
    }

    async fn try_publish(
        &self,
        template: &str,
        stream: Option<&str>,
        event: &Event,
    ) -> Result<(), String> {
        let js = self.context().await?;
        if let Some(name) = stream {
            self.ensure_stream(js, name, template).await?;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        let body = super::body(event);
        let ack = js
            .publish_with_headers(subject(template, event), headers, body.into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await
            .map_err(|e| format!("JetStream did not acknowledge: {e}"))?;
        Ok(())
    }

    /// Creates `name` (capturing everything under the template's fixed
    /// prefix) unless it exists.
    async fn ensure_stream(&self, js: &Context, name: &str, template: &str) -> Result<(), String> {
        if self
            .streams
            .lock()
            .map(|s| s.contains(name))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let prefix = template
            .split('{')
            .next()
            .unwrap_or("")
            .trim_end_matches('.');
        let subjects = vec![if prefix.is_empty() {
            ">".to_string()
        } else {
            format!("{prefix}.>")
        }];
        let config = jetstream::stream::Config {
            name: name.to_string(),
            subjects,
            ..Default::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| format!("cannot create stream {name}: {e}"))?;
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(name.to_string());
        }
        Ok(())
    }
}

/// The template with `{source}`, `{provider}` and `{type}` filled in; a value
/// cannot add wildcards or spaces to the subject.
pub fn subject(template: &str, event: &Event) -> String {
    let clean = |v: &str| v.replace([' ', '*', '>', '\t'], "_");
    template
        .replace("{source}", &clean(&event.source))
        .replace("{provider}", &clean(&event.provider))
        .replace("{type}", &clean(&event.fields.event_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventFields;

    #[test]
    fn subjects_fill_the_template_safely() {
        let event = Event {
            seq: 1,
            id: "evt".into(),
            source: "ig main".into(),
            provider: "integify".into(),
            fields: EventFields {
                event_type: "message.delivered".into(),
                ..Default::default()
            },
            opt_out: None,
            received_at: String::new(),
            payload: serde_json::value::RawValue::from_string("{}".into()).expect("json"),
        };
        assert_eq!(
            subject("sms.{source}.{type}", &event),
            "sms.ig_main.message.delivered"
        );
        let mut wild = event;
        wild.source = "a*b>".into();
        assert_eq!(subject("sms.{source}", &wild), "sms.a_b_");
    }
}
