//! A webhook's JSON as normalization reads it: parsed once, borrowing its
//! strings from the body where it can, objects kept as lists of fields. The
//! stored payload is the body itself, byte for byte; this tree only feeds
//! the providers' `normalize` and is dropped with the request.
//!
//! Why not `serde_json::Value`: it allocates every key and string and sorts
//! every object into a `BTreeMap`; the per-webhook parse and the twenty-odd
//! path lookups were a tenth of the server's instructions.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// A JSON object's fields in the order sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'a> Object<'a> {
    /// The value of `key`; with duplicate keys the last wins, as in
    /// `serde_json::Value`.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every field, in the order sent (duplicates included).
    pub fn fields(&self) -> &[(Cow<'a, str>, Node<'a>)] {
        &self.0
    }
}

impl<'a> Node<'a> {
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }
}

/// Parses a body that must be a JSON object. It takes text: the caller
/// checks the body is UTF-8 once, where parsing bytes would check every
/// string again (and the stored payload needs the check anyway).
pub fn parse_object(text: &str) -> Result<Object<'_>, String> {
    match serde_json::from_str::<Node>(text) {
        Ok(Node::Object(o)) => Ok(o),
        Ok(_) => Err("expected an object at the top level".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        // JSON has no NaN or infinity, so serde_json never passes one.
        Ok(Number::from_f64(n).map_or(Node::Null, Node::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        // A key comes through the same visitor (borrowed unless escaped;
        // serde's own `Cow<str>` would always copy); JSON keys are strings.
        while let Some((key, v)) = map.next_entry::<Node, Node>()? {
            let Node::String(k) = key else {
                return Err(de::Error::custom("an object key that is not a string"));
            };
            fields.push((k, v));
        }
        Ok(Node::Object(Object(fields)))
    }
}

/// The JSON object stored for a form body (`json_from_form` of its
/// parameters).
pub fn form_body_json(body: &[u8]) -> String {
    json_from_form(&form_urlencoded::parse(body).collect::<Vec<_>>())
}

/// A form body's parameters as the JSON object stored for it: each name
/// once, in the order first sent, its value a string, or an array of
/// strings when the name was sent more than once. Every parameter is kept.
pub fn json_from_form(params: &[(Cow<str>, Cow<str>)]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut values: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for (name, value) in params {
        values
            .entry(name)
            .or_insert_with(|| {
                order.push(name);
                Vec::new()
            })
            .push(value);
    }
    let mut text = String::from("{");
    for name in order {
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(&serde_json::Value::from(name).to_string());
        text.push(':');
        let value = match values[name].as_slice() {
            [only] => serde_json::Value::from(*only),
            many => many.iter().map(|v| serde_json::Value::from(*v)).collect(),
        };
        text.push_str(&value.to_string());
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_kept_whole_as_a_json_object() {
        let text =
            form_body_json(b"To=%2B1555&Body=caf%C3%A9+%22ok%22&MediaUrl=a&To=%2B1666&Empty=");
        assert_eq!(
            text,
            r#"{"To":["+1555","+1666"],"Body":"café \"ok\"","MediaUrl":"a","Empty":""}"#
        );
        assert!(parse_object(&text).is_ok());
        assert_eq!(json_from_form(&[]), "{}");
    }

    #[test]
    fn borrows_plain_strings_and_unescapes_the_rest() {
        let body = r#"{"a":"plain","b\u0041":"tab\there","n":[1,-2,3.5,null,true]}"#;
        let o = parse_object(body).expect("object");
        assert!(matches!(
            o.get("a"),
            Some(Node::String(Cow::Borrowed("plain")))
        ));
        assert_eq!(
            o.get("bA"),
            Some(&Node::String(Cow::Owned("tab\there".into())))
        );
        let Some(Node::Array(items)) = o.get("n") else {
            panic!("array")
        };
        let text: Vec<String> = items
            .iter()
            .map(|n| match n {
                Node::Number(n) => n.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(text, ["1", "-2", "3.5", "Null", "Bool(true)"]);
    }

    #[test]
    fn last_duplicate_key_wins_and_non_objects_are_refused() {
        let o = parse_object(r#"{"k":1,"k":2}"#).expect("object");
        assert_eq!(o.get("k"), Some(&Node::Number(2.into())));
        assert!(parse_object("[1]").is_err());
        assert!(parse_object("{\"a\":").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_object(&deep).expect_err("too deep");
        assert!(err.contains("recursion limit"), "{err}");
    }
}
