//! Opt-outs: which events change a number's consent to receive messages. An
//! inbound message that is exactly a standard keyword (STOP, START, …; case
//! and surrounding space ignored), a provider's `contact.opted_out` /
//! `contact.opted_in` event, or a provider's own verdict on an inbound
//! message (Twilio's `OptOutType`, which knows a service's custom keywords)
//! changes it for the sender's number.

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

/// Keywords carriers, CTIA guidelines and the FCC's 2025 revocation rule
/// treat as "stop sending to me" (Twilio and Telnyx honour the same).
const STOP_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
];
/// Keywords that undo an opt-out.
const START_WORDS: &[&str] = &["START", "UNSTOP"];

/// `Some(true)`: the event opts its number out; `Some(false)`: back in;
/// `None`: no change (or no number to apply it to). A provider's own
/// verdict (`consent`) wins over the keyword list: its keywords may be
/// another language's, and it has told the sender the result.
pub fn classify(fields: &EventFields, consent: Option<bool>) -> Option<bool> {
    fields.from.as_ref()?;
    match fields.event_type.as_str() {
        "contact.opted_out" => Some(true),
        "contact.opted_in" => Some(false),
        "message.received" => consent.or_else(|| keyword(fields.body.as_deref()?)),
        _ => None,
    }
}

/// The body as a keyword: trimmed, upper case, inner runs of space as one.
fn keyword(body: &str) -> Option<bool> {
    let word = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
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

    fn classify_words(f: &EventFields) -> Option<bool> {
        classify(f, None)
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
            "revoke",
            "OptOut",
            "opt  out",
            " Stop All",
        ] {
            assert_eq!(
                classify_words(&fields("message.received", Some(body))),
                Some(true),
                "{body:?}"
            );
        }
        for body in ["start", " UNSTOP "] {
            assert_eq!(
                classify_words(&fields("message.received", Some(body))),
                Some(false),
                "{body:?}"
            );
        }
        for body in ["please stop", "STOP!", "stopped", ""] {
            assert_eq!(
                classify_words(&fields("message.received", Some(body))),
                None,
                "{body:?}"
            );
        }
    }

    #[test]
    fn contact_events_and_direction() {
        assert_eq!(
            classify_words(&fields("contact.opted_out", None)),
            Some(true)
        );
        assert_eq!(
            classify_words(&fields("contact.opted_in", None)),
            Some(false)
        );
        assert_eq!(
            classify_words(&fields("message.delivered", Some("STOP"))),
            None,
            "only inbound messages count"
        );
        let mut no_number = fields("contact.opted_out", None);
        no_number.from = None;
        assert_eq!(classify_words(&no_number), None);
    }

    #[test]
    fn a_providers_verdict_wins_over_the_keyword_list() {
        // A custom keyword (Twilio Advanced Opt-Out), not in the list.
        let arret = fields("message.received", Some("ARRET"));
        assert_eq!(classify(&arret, Some(true)), Some(true));
        assert_eq!(classify(&arret, Some(false)), Some(false));
        // No verdict: the list decides, as for every other provider.
        assert_eq!(classify(&arret, None), None);
        let stop = fields("message.received", Some("STOP"));
        assert_eq!(classify(&stop, None), Some(true));
        // A verdict on anything but an inbound message changes nothing.
        let status = fields("message.delivered", Some("ARRET"));
        assert_eq!(classify(&status, Some(true)), None);
        let mut anonymous = arret.clone();
        anonymous.from = None;
        assert_eq!(classify(&anonymous, Some(true)), None);
    }
}
