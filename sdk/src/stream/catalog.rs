//! The streams a query may read: each event type is a stream named in snake case
//! (`OrderConfirmed` is `order_confirmed`) whose columns are the event's fields plus ROWTIME.
//!
//! Names written without backticks match in any case, as ksqlDB's do (an exact match first);
//! names in backticks match exactly.

use schemars::JsonSchema;

use super::value::SqlType;
use crate::model::{Event, Subscription};

/// One stream: an event type, its topic and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The name in SQL (`order_confirmed`).
    pub stream: String,
    /// The event type (`OrderConfirmed`); with `by_name`, the name as written instead.
    pub type_name: String,
    /// Set when the catalog does not know the event type (an open catalog): the records whose
    /// type the name names are read ([`names_type`]), matched as this says.
    pub by_name: Option<NameCase>,
    /// The event enum and its topic, if known.
    pub subscription: Option<Subscription>,
    /// The payload's fields, if known; unknown fields are then refused at planning.
    pub columns: Option<Vec<Field>>,
}

/// A field of an event, as its JSON Schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its SQL type, when the schema tells plainly.
    pub sql_type: Option<SqlType>,
}

/// How a name written in a query matches a name in the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameCase {
    /// Exactly: a name in backticks.
    Exact,
    /// In any (ASCII) case, an exact match first: a name without backticks.
    Any,
}

impl NameCase {
    /// How a name written this way matches.
    pub fn of(quoted: bool) -> Self {
        if quoted { NameCase::Exact } else { NameCase::Any }
    }

    /// Whether two names match.
    pub fn matches(self, written: &str, name: &str) -> bool {
        match self {
            NameCase::Exact => written == name,
            NameCase::Any => written.eq_ignore_ascii_case(name),
        }
    }
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
                by_name: None,
                subscription: Some(subscription),
                columns: variant_fields(schema.as_value(), message_type.variant),
            });
        }
        self
    }

    /// The stream of this name: exact first, then ignoring case (SQL names are not
    /// case-sensitive).
    pub fn stream(&self, name: &str) -> Option<StreamInfo> {
        self.lookup(name, NameCase::Any)
    }

    /// The stream of this name, matched as `case` says. An open catalog makes any name a
    /// stream of the event types it names.
    pub fn lookup(&self, name: &str, case: NameCase) -> Option<StreamInfo> {
        let known = self.streams.iter().find(|s| s.stream == name);
        let known = known.or_else(|| self.streams.iter().find(|s| case.matches(name, &s.stream)));
        match known {
            Some(info) => Some(info.clone()),
            None if self.open => Some(StreamInfo {
                stream: name.to_owned(),
                type_name: name.to_owned(),
                by_name: Some(case),
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
    snake_case_chars(name).collect()
}

fn snake_case_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.char_indices().flat_map(|(i, c)| {
        let separator = (c.is_uppercase() && i > 0).then_some('_');
        separator.into_iter().chain(c.to_lowercase())
    })
}

/// Whether a stream name of an open catalog names an event type: the type itself or its snake
/// case (`OrderConfirmed` or `order_confirmed` for `OrderConfirmed`), matched as `case` says.
/// Compares without allocating: it runs for every record.
pub fn names_type(name: &str, type_name: &str, case: NameCase) -> bool {
    let fold = move |c: char| match case {
        NameCase::Exact => c,
        NameCase::Any => c.to_ascii_lowercase(),
    };
    name.chars().map(fold).eq(type_name.chars().map(fold))
        || name.chars().map(fold).eq(snake_case_chars(type_name).map(fold))
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
fn variant_fields(schema: &serde_json::Value, variant: &str) -> Option<Vec<Field>> {
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
            let field = |(name, schema): (&String, &serde_json::Value)| Field {
                name: name.clone(),
                sql_type: resolve(schema).and_then(|schema| sql_type(&schema, &resolve)),
            };
            return Some(fields.iter().map(field).collect());
        }
    }
    None
}

/// The SQL type of a field's schema when it says plainly: one JSON type, maybe nullable
/// (`Option`). Objects and arrays, and mixes, are not checked.
fn sql_type(
    schema: &serde_json::Value,
    resolve: &dyn Fn(&serde_json::Value) -> Option<serde_json::Value>,
) -> Option<SqlType> {
    let not_null = |type_name: &&str| *type_name != "null";
    let type_name = match schema.get("type") {
        Some(serde_json::Value::String(one)) => one.as_str(),
        Some(serde_json::Value::Array(types)) => {
            let mut types = types.iter().filter_map(|t| t.as_str()).filter(not_null);
            match (types.next(), types.next()) {
                (Some(one), None) => one,
                _ => return None,
            }
        }
        // `Option<T>` of a named type: `anyOf: [{"$ref": T}, {"type": "null"}]`.
        _ => {
            let branches = schema.get("anyOf").or_else(|| schema.get("oneOf"))?.as_array()?;
            let mut branches = branches.iter().filter(|b| b.get("type").and_then(|t| t.as_str()) != Some("null"));
            return match (branches.next(), branches.next()) {
                (Some(one), None) => sql_type(&resolve(one)?, resolve),
                _ => None,
            };
        }
    };
    match type_name {
        "string" => Some(SqlType::Text),
        "integer" => Some(SqlType::Bigint),
        "number" => Some(SqlType::Double),
        "boolean" => Some(SqlType::Boolean),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(snake_case("OrderConfirmed"), "order_confirmed");
        assert_eq!(pascal_case("order_confirmed"), "OrderConfirmed");
    }

    #[test]
    fn an_open_stream_name_names_its_type_in_any_case_unless_quoted() {
        for name in ["OrderConfirmed", "order_confirmed", "ORDER_CONFIRMED", "orderconfirmed"] {
            assert!(names_type(name, "OrderConfirmed", NameCase::Any), "{name}");
        }
        assert!(!names_type("order_confirmed", "OrderPlaced", NameCase::Any));
        assert!(!names_type("order", "OrderConfirmed", NameCase::Any));
        assert!(names_type("OrderConfirmed", "OrderConfirmed", NameCase::Exact));
        assert!(names_type("order_confirmed", "OrderConfirmed", NameCase::Exact));
        assert!(!names_type("Order_Confirmed", "OrderConfirmed", NameCase::Exact));
        assert!(names_type("com.example.Ordered", "com.example.Ordered", NameCase::Exact));
    }
}
