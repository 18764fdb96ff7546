//! Schema compatibility: would records written under the old schema still be read under the
//! new one, and would partners who read the old one still read what the new one writes?
//!
//! Both directions must hold for a type that already has records in the log or readers
//! outside, so the rules are the intersection: no field removed or renamed, no type changed,
//! no enum value removed, and no field required that the old schema did not require (a new
//! field needs a default: `#[serde(default)]`, which takes it out of `required`). Adding an
//! optional field is the one change that breaks nobody.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// One change between two schemas that breaks a reader or a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A field of the old schema is gone (removed or renamed).
    Removed {
        /// The field's path (`total`, `lines[].price`).
        field: String,
    },
    /// A field's JSON type changed.
    TypeChanged {
        /// The field's path.
        field: String,
        /// The old type(s).
        from: String,
        /// The new type(s).
        to: String,
    },
    /// A field is required that old records do not carry.
    NewRequired {
        /// The field's path.
        field: String,
    },
    /// A value of an enumeration is gone.
    ValueRemoved {
        /// The field's path.
        field: String,
        /// The value.
        value: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Removed { field } => write!(f, "field `{field}` was removed or renamed"),
            Change::TypeChanged { field, from, to } => write!(f, "field `{field}` changed type from {from} to {to}"),
            Change::NewRequired { field } => {
                write!(f, "field `{field}` is required but old records lack it: give it a default (#[serde(default)])")
            }
            Change::ValueRemoved { field, value } => write!(f, "field `{field}` no longer accepts {value}"),
        }
    }
}

/// The breaking changes of one message type against its committed schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    /// The message type (`OrderConfirmed`).
    pub message: &'static str,
    /// The committed schema it was compared with.
    pub file: PathBuf,
    /// What breaks.
    pub changes: Vec<Change>,
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} breaks {}:", self.message, self.file.display())?;
        for change in &self.changes {
            write!(f, "\n  - {change}")?;
        }
        Ok(())
    }
}

/// The changes from `old` to `new` that break readers of old records or readers of new ones.
pub fn compare(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    compare_at("", old, new, &mut changes);
    changes
}

fn compare_at(path: &str, old: &Value, new: &Value, changes: &mut Vec<Change>) {
    let field = || if path.is_empty() { "<root>".to_owned() } else { path.to_owned() };
    let (old_types, new_types) = (types(old), types(new));
    if !old_types.is_empty() && !new_types.is_empty() && old_types != new_types {
        changes.push(Change::TypeChanged { field: field(), from: old_types.join("|"), to: new_types.join("|") });
        return;
    }
    if let (Some(old_values), Some(new_values)) = (enumeration(old), enumeration(new)) {
        for value in old_values.iter().filter(|v| !new_values.contains(v)) {
            changes.push(Change::ValueRemoved { field: field(), value: value.to_string() });
        }
    }
    let old_properties = old.get("properties").and_then(Value::as_object);
    let new_properties = new.get("properties").and_then(Value::as_object);
    if let (Some(old_properties), Some(new_properties)) = (old_properties, new_properties) {
        let child = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
        for (name, old_field) in old_properties {
            match new_properties.get(name) {
                Some(new_field) => compare_at(&child(name), old_field, new_field, changes),
                None => changes.push(Change::Removed { field: child(name) }),
            }
        }
        let old_required = required(old);
        for name in required(new).into_iter().filter(|name| !old_required.contains(name)) {
            changes.push(Change::NewRequired { field: child(name) });
        }
    }
    if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
        compare_at(&format!("{path}[]"), old_items, new_items, changes);
    }
}

/// The JSON types a schema allows, sorted; empty when it does not say.
fn types(schema: &Value) -> Vec<&str> {
    let mut types: Vec<&str> = match schema.get("type") {
        Some(Value::String(single)) => vec![single],
        Some(Value::Array(several)) => several.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    types.sort_unstable();
    types
}

fn enumeration(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.iter().collect());
    }
    // schemars writes a unit-only enum with documented variants as a oneOf of consts.
    let alternatives = schema.get("oneOf").and_then(Value::as_array)?;
    alternatives.iter().map(|a| a.get("const").or_else(|| a.get("enum")?.get(0))).collect()
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order() -> Value {
        json!({
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "quantity": {"type": "integer"},
                "lines": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "integer"}}}},
            },
            "required": ["order_id", "quantity"],
        })
    }

    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<Change> {
        let mut new = order();
        edit(&mut new);
        compare(&order(), &new)
    }

    #[test]
    fn an_optional_new_field_breaks_nothing() {
        assert_eq!(changed(|s| s["properties"]["note"] = json!({"type": ["string", "null"]})), []);
        assert_eq!(compare(&order(), &order()), []);
    }

    #[test]
    fn a_removed_or_renamed_field_breaks() {
        let removed = changed(|s| {
            let quantity = s["properties"].as_object_mut().unwrap().remove("quantity").unwrap();
            s["properties"]["count"] = quantity;
            s["required"] = json!(["order_id", "count"]);
        });
        assert_eq!(
            removed,
            [Change::Removed { field: "quantity".into() }, Change::NewRequired { field: "count".into() }]
        );
    }

    #[test]
    fn a_changed_type_breaks_also_inside_arrays() {
        assert_eq!(
            changed(|s| s["properties"]["lines"]["items"]["properties"]["price"] = json!({"type": "string"})),
            [Change::TypeChanged { field: "lines[].price".into(), from: "integer".into(), to: "string".into() }]
        );
        // Option<T> admits null: old readers would meet it.
        assert_eq!(
            changed(|s| s["properties"]["quantity"] = json!({"type": ["integer", "null"]})),
            [Change::TypeChanged { field: "quantity".into(), from: "integer".into(), to: "integer|null".into() }]
        );
    }

    #[test]
    fn a_new_required_field_breaks_and_a_removed_enum_value_too() {
        assert_eq!(
            changed(|s| {
                s["properties"]["seat"] = json!({"type": "string"});
                s["required"] = json!(["order_id", "quantity", "seat"]);
            }),
            [Change::NewRequired { field: "seat".into() }]
        );
        let old = json!({"type": "string", "enum": ["first", "second"]});
        let new = json!({"type": "string", "enum": ["first"]});
        assert_eq!(compare(&old, &new), [Change::ValueRemoved { field: "<root>".into(), value: "\"second\"".into() }]);
    }
}
