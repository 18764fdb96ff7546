//! The streams a query may read: each event type is a stream named in snake case
//! (`OrderConfirmed` is `order_confirmed`) whose columns are the event's fields plus ROWTIME.

use schemars::JsonSchema;

use crate::model::{Event, Subscription};

/// One stream: an event type, its topic and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The name in SQL (`order_confirmed`).
    pub stream: String,
    /// The event type (`OrderConfirmed`).
    pub type_name: String,
    /// The event enum and its topic, if known.
    pub subscription: Option<Subscription>,
    /// The payload's fields, if known; unknown fields are then refused at planning.
    pub columns: Option<Vec<String>>,
}

/// The streams known to the planner.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    streams: Vec<StreamInfo>,
    open: bool,
}

impl Catalog {
    /// A catalog that knows no streams; add event enums with [`Catalog::with`].
    pub fn new() -> Self {
        Catalog::default()
    }

    /// A catalog in which every stream name is an event type with unknown fields (any column
    /// reads as NULL when absent): for input that is not on a topic of a known enum.
    pub fn open() -> Self {
        Catalog { streams: Vec::new(), open: true }
    }

    /// Adds every event type of `E`, with its fields from the enum's JSON Schema.
    pub fn with<E: Event + JsonSchema>(mut self) -> Self {
        let schema = schemars::schema_for!(E);
        let subscription = Subscription::of::<E>();
        for message_type in E::TYPES {
            self.streams.push(StreamInfo {
                stream: snake_case(message_type.name),
                type_name: message_type.name.to_owned(),
                subscription: Some(subscription),
                columns: variant_fields(schema.as_value(), message_type.variant),
            });
        }
        self
    }

    /// The stream of this name: exact first, then ignoring case (SQL names are not
    /// case-sensitive).
    pub fn stream(&self, name: &str) -> Option<StreamInfo> {
        let known = self.streams.iter().find(|s| s.stream == name);
        let known = known.or_else(|| self.streams.iter().find(|s| s.stream.eq_ignore_ascii_case(name)));
        match known {
            Some(info) => Some(info.clone()),
            None if self.open => Some(StreamInfo {
                stream: name.to_owned(),
                type_name: pascal_case(name),
                subscription: None,
                columns: None,
            }),
            None => None,
        }
    }

    /// The names of the known streams, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.streams.iter().map(|s| s.stream.as_str()).collect()
    }

    /// The stream of an event type.
    pub fn of_type(&self, type_name: &str) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.type_name == type_name)
    }
}

/// `OrderConfirmed` -> `order_confirmed`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.char_indices() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `order_confirmed` -> `OrderConfirmed`.
pub fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// The fields of one variant of an externally tagged enum's schema: `oneOf` entries of the
/// form `{"properties": {"Variant": {"properties": {...}}}}`, following `$ref`s.
fn variant_fields(schema: &serde_json::Value, variant: &str) -> Option<Vec<String>> {
    let resolve = |value: &'_ serde_json::Value| -> Option<serde_json::Value> {
        match value.get("$ref").and_then(|r| r.as_str()) {
            Some(reference) => {
                let path = reference.strip_prefix('#')?;
                schema.pointer(path).cloned()
            }
            None => Some(value.clone()),
        }
    };
    let root = resolve(schema)?;
    let entries = root.get("oneOf").or_else(|| root.get("anyOf"))?.as_array()?;
    for entry in entries {
        let entry = resolve(entry)?;
        if let Some(body) = entry.get("properties").and_then(|p| p.get(variant)) {
            let body = resolve(body)?;
            let fields = body.get("properties")?.as_object()?;
            return Some(fields.keys().cloned().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(snake_case("OrderConfirmed"), "order_confirmed");
        assert_eq!(pascal_case("order_confirmed"), "OrderConfirmed");
    }
}
