//! Opt-outs: which events change a number's consent to receive messages. An
//! inbound message that is exactly a standard keyword (STOP, START, …; case
//! and surrounding space ignored), or a provider's `contact.opted_out` /
//! `contact.opted_in` event, changes it for the sender's number.

use serde::Serialize;

use crate::event::EventFields;

/// A number's consent as last changed. `opted_out: false` means it opted
/// back in (kept, so a late-arriving older STOP cannot win).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Optout {
    pub number: String,
    pub opted_out: bool,
    pub source: String,
    /// The event that made the change.
    pub event_id: String,
    /// The provider's time for it (receipt time when it gave none).
    pub changed_at: String,
}

/// Keywords carriers and CTIA guidelines treat as "stop sending to me".
const STOP_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Keywords that undo an opt-out.
const START_WORDS: &[&str] = &["START", "UNSTOP"];

/// `Some(true)`: the event opts its number out; `Some(false)`: back in;
/// `None`: no change (or no number to apply it to).
pub fn classify(fields: &EventFields) -> Option<bool> {
    fields.from.as_ref()?;
    match fields.event_type.as_str() {
        "contact.opted_out" => Some(true),
        "contact.opted_in" => Some(false),
        "message.received" => keyword(fields.body.as_deref()?),
        _ => None,
    }
}

fn keyword(body: &str) -> Option<bool> {
    let word = body.trim().to_ascii_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        Some(true)
    } else if START_WORDS.contains(&word.as_str()) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(event_type: &str, body: Option<&str>) -> EventFields {
        EventFields {
            event_type: event_type.into(),
            from: Some("+15550001".into()),
            body: body.map(String::from),
            ..EventFields::default()
        }
    }

    #[test]
    fn keywords_ignore_case_and_space() {
        for body in [
            "STOP",
            " stop ",
            "Unsubscribe",
            "quit\n",
            "StopAll",
            "END",
            "cancel",
        ] {
            assert_eq!(
                classify(&fields("message.received", Some(body))),
                Some(true),
                "{body:?}"
            );
        }
        for body in ["start", " UNSTOP "] {
            assert_eq!(
                classify(&fields("message.received", Some(body))),
                Some(false),
                "{body:?}"
            );
        }
        for body in ["please stop", "STOP!", "stopped", ""] {
            assert_eq!(
                classify(&fields("message.received", Some(body))),
                None,
                "{body:?}"
            );
        }
    }

    #[test]
    fn contact_events_and_direction() {
        assert_eq!(classify(&fields("contact.opted_out", None)), Some(true));
        assert_eq!(classify(&fields("contact.opted_in", None)), Some(false));
        assert_eq!(
            classify(&fields("message.delivered", Some("STOP"))),
            None,
            "only inbound messages count"
        );
        let mut no_number = fields("contact.opted_out", None);
        no_number.from = None;
        assert_eq!(classify(&no_number), None);
    }
}
