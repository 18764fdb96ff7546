//! Schema compatibility: would records written under the old schema still be read under the
//! new one, and would partners who read the old one still read what the new one writes?
//!
//! Both directions must hold for a type that already has records in the log or readers
//! outside, so the rules are the intersection: no field removed or renamed, no type changed
//! (`null` included: `T` to `Option<T>` is a change), no enum value or variant removed or added
//! (a reader of the old schema refuses a value it does not know, as serde does), no field
//! required that the old schema did not require (a new field needs a default:
//! `#[serde(default)]`, which takes it out of `required`) nor one left out that it required, no
//! `format`, `pattern` or bound (`minimum`, `maximum`, lengths) changed either way, no field
//! added where the old schema refuses unknown ones (`#[serde(deny_unknown_fields)]`). Adding an
//! optional field elsewhere is the change that breaks nobody. One exception: a string that becomes personal data (`String` to
//! `Personal<String>`, pattern `^pii1:`) is compatible, because the codec reads the plain text
//! of records written before as is.
//!
//! A new value or variant in a message is a new contract: raise the message's version (with an
//! upcaster), so that readers of the old one see a version they do not know rather than a value.
//! A new event type (a new variant of a module's event enum) is a message of its own, with no
//! schema to break; but a reader built before it knows no such type and dead-letters its
//! records (nothing is lost: they can be replayed once the reader is upgraded). Upgrade the
//! readers of a topic before its writer.
//!
//! Alternatives (`anyOf`/`oneOf`: an `Option`, an enum with data) are compared one by one:
//! unit variants (`enum`, `const`) as one set of values, the others paired by their type and,
//! for objects, by their tag or their required fields.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// One change between two schemas that breaks a reader or a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A field of the old schema is gone (removed or renamed).
    Removed {
        /// The field's path (`total`, `lines[].price`, `prices.*`).
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
    /// A field the old schema requires may be left out: readers of the old schema refuse such
    /// records.
    NoLongerRequired {
        /// The field's path.
        field: String,
    },
    /// A field is new where the old schema refuses fields it does not list.
    AddedToClosed {
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
    /// One of the shapes a field could take is gone (a variant of an enum with data).
    AlternativeRemoved {
        /// The field's path.
        field: String,
        /// The shape (`an object with `Cash``).
        alternative: String,
    },
    /// A value of an enumeration is new: readers of the old schema refuse it.
    ValueAdded {
        /// The field's path.
        field: String,
        /// The value.
        value: String,
    },
    /// A field can take a new shape (a new variant of an enum with data): readers of the old
    /// schema refuse it.
    AlternativeAdded {
        /// The field's path.
        field: String,
        /// The shape.
        alternative: String,
    },
    /// A `format`, `pattern` or bound (`minimum`, `maximum`, …) changed, or the pattern of a
    /// map's keys.
    ConstraintChanged {
        /// The field's path.
        field: String,
        /// The JSON Schema keyword (`format`, `pattern`, `maximum`).
        keyword: String,
        /// The old value, `none` when absent.
        from: String,
        /// The new value, `none` when absent.
        to: String,
    },
    /// The record key's schema changed: records of one entity go to other partitions than
    /// before, and readers who parse the key (or `ce_subject`) meet another shape.
    KeyChanged {
        /// How, as the key's own schema compares (fields named from the key's root).
        changes: Vec<Change>,
    },
    /// A committed message type has no current type (removed, renamed, or moved to another
    /// module): its records already on the log would no longer be read.
    MessageRemoved,
    /// The current version is lower than a committed one.
    VersionLowered {
        /// The highest committed version.
        committed: u32,
        /// The current version.
        current: u32,
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
            Change::NoLongerRequired { field } => write!(
                f,
                "field `{field}` may now be left out, but readers of the old schema require it (a default or \
                 `skip_serializing_if` on an existing field)"
            ),
            Change::AddedToClosed { field } => write!(
                f,
                "field `{field}` is new, but readers of the old schema refuse fields it does not list \
                 (#[serde(deny_unknown_fields)])"
            ),
            Change::ValueRemoved { field, value } => write!(f, "field `{field}` no longer accepts {value}"),
            Change::AlternativeRemoved { field, alternative } => {
                write!(f, "field `{field}` no longer accepts {alternative}")
            }
            Change::ValueAdded { field, value } => {
                write!(f, "field `{field}` accepts a new value {value}, which readers of the old schema refuse")
            }
            Change::AlternativeAdded { field, alternative } => {
                write!(f, "field `{field}` accepts {alternative}, which readers of the old schema refuse")
            }
            Change::ConstraintChanged { field, keyword, from, to } => {
                write!(f, "field `{field}` changed `{keyword}` from {from} to {to}")
            }
            Change::KeyChanged { changes } => {
                let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "the record key changed ({}): one entity's records would go to other partitions, and readers of \
                     the key would meet another shape",
                    changes.join("; ")
                )
            }
            Change::MessageRemoved => write!(
                f,
                "no current message type has this name and module (removed, renamed or moved): its records already \
                 on the log would no longer be read; keep the type, or delete this snapshot if no record of it exists"
            ),
            Change::VersionLowered { committed, current } => write!(
                f,
                "the current version {current} is lower than the committed version {committed}: records of version \
                 {committed} would be refused; versions only go up (raise it above {committed})"
            ),
        }
    }
}

/// The breaking changes of one message type against a committed schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    /// The message type (`OrderConfirmed`).
    pub message: String,
    /// The version of the committed schema.
    pub version: u32,
    /// The committed schema it was compared with.
    pub file: PathBuf,
    /// What breaks.
    pub changes: Vec<Change>,
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} version {} breaks {}:", self.message, self.version, self.file.display())?;
        for change in &self.changes {
            write!(f, "\n  - {change}")?;
        }
        Ok(())
    }
}

/// The changes from `old` to `new` that break readers of old records or readers of new ones.
/// A `$ref` resolves against the `definitions` of its own document (a recursive type).
pub fn compare(old: &Value, new: &Value) -> Vec<Change> {
    // A snapshot written before integers were bounded says the same range with a `format`.
    let mut old = old.clone();
    super::bound_integers(&mut old);
    let old = &old;
    let mut comparison = Comparison { old_root: old, new_root: new, comparing: Vec::new(), changes: Vec::new() };
    comparison.compare_at("", old, new);
    comparison.changes
}

/// The pattern of `Personal` data: turning a plain string into one is compatible.
const PERSONAL_PATTERN: &str = "^pii1:";

/// Bounds: narrowing one refuses old records, widening one writes values old readers refuse.
const BOUNDS: [&str; 8] =
    ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"];

struct Comparison<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    /// The pairs of definitions being compared: a recursive type ends where it recurs.
    comparing: Vec<(String, String)>,
    changes: Vec<Change>,
}

/// One shape a schema allows: the schema itself, or one of its `anyOf`/`oneOf` alternatives.
struct Alternative {
    schema: Value,
    /// The definition it came from (`#/definitions/Node`), if any.
    reference: Option<String>,
}

impl Alternative {
    /// A unit variant or a fixed set of values.
    fn is_enumerated(&self) -> bool {
        self.schema.get("enum").is_some() || self.schema.get("const").is_some()
    }

    /// Every `enum` value and `const` of an enumerated alternative.
    fn values(&self) -> Vec<&Value> {
        let listed = self.schema.get("enum").and_then(Value::as_array).into_iter().flatten();
        listed.chain(self.schema.get("const")).collect()
    }

    /// The JSON types it admits; `any` when it does not restrict them.
    fn kinds(&self) -> Vec<String> {
        let schema = &self.schema;
        match schema {
            Value::Bool(true) => return vec!["any".into()],
            Value::Bool(false) => return vec!["nothing".into()],
            _ => {}
        }
        match schema.get("type") {
            Some(Value::String(single)) => return vec![single.clone()],
            Some(Value::Array(several)) => {
                return several.iter().filter_map(Value::as_str).map(str::to_owned).collect();
            }
            _ => {}
        }
        if self.is_enumerated() {
            return self.values().into_iter().map(|value| json_type(value).to_owned()).collect();
        }
        let object = ["properties", "additionalProperties", "required"].iter().any(|k| schema.get(k).is_some());
        let kind = if object {
            "object"
        } else if schema.get("items").is_some() {
            "array"
        } else {
            "any"
        };
        vec![kind.into()]
    }

    /// Its one JSON type (an alternative that is not enumerated has one after splitting).
    fn kind(&self) -> String {
        self.kinds().into_iter().next().unwrap_or_else(|| "any".into())
    }

    /// What pairs it with its counterpart, and names it when it is gone: an object by its tag
    /// (a property with a constant: internally tagged enums) or its required fields (the variant
    /// name of an externally tagged enum); anything else by its type.
    fn key(&self) -> String {
        let kind = self.kind();
        if kind != "object" {
            return if kind == "null" { kind } else { format!("a value of type {kind}") };
        }
        let properties = self.schema.get("properties").and_then(Value::as_object);
        let tags: Vec<String> = properties
            .into_iter()
            .flatten()
            .filter_map(|(name, field)| {
                let value = field.get("const").or_else(|| match field.get("enum")?.as_array()?.as_slice() {
                    [only] => Some(only),
                    _ => None,
                })?;
                Some(format!("`{name}` = {value}"))
            })
            .collect();
        if !tags.is_empty() {
            return format!("an object with {}", tags.join(", "));
        }
        let mut fields = required(&self.schema);
        if fields.is_empty() {
            fields = properties.into_iter().flatten().map(|(name, _)| name.as_str()).collect();
        }
        fields.sort_unstable();
        match fields.as_slice() {
            [] => "an object".into(),
            _ => format!("an object with {}", fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")),
        }
    }

    /// Whether a value of an old enumeration is still admitted by this (open) alternative.
    fn admits_type_of(&self, value: &Value) -> bool {
        let kind = self.kind();
        let value_kind = json_type(value);
        kind == "any" || kind == value_kind || (kind == "number" && value_kind == "integer")
    }
}

impl Comparison<'_> {
    fn compare_at(&mut self, path: &str, old: &Value, new: &Value) {
        let old_alternatives = alternatives(self.old_root, old, None);
        let new_alternatives = alternatives(self.new_root, new, None);
        let (old_kinds, new_kinds) = (kinds(&old_alternatives), kinds(&new_alternatives));
        // New alternatives of another type (the first data variant of an enum of unit variants)
        // are compared as new variants; `null` is no variant (`T` to `Option<T>` changes type).
        let within = |few: &[String], many: &[String]| few.iter().all(|kind| many.contains(kind));
        let nullable = |kinds: &[String]| kinds.iter().any(|kind| kind == "null");
        let variants_changed = nullable(&old_kinds) == nullable(&new_kinds)
            && ((new_alternatives.len() > 1 && within(&old_kinds, &new_kinds))
                || (old_alternatives.len() > 1 && within(&new_kinds, &old_kinds)));
        if old_kinds != new_kinds && !variants_changed {
            let (from, to) = (old_kinds.join("|"), new_kinds.join("|"));
            self.changes.push(Change::TypeChanged { field: field_name(path), from, to });
            return;
        }
        self.compare_alternatives(path, old_alternatives, new_alternatives);
    }

    /// Every old value must still be admitted and no new one appear, and every shape must have
    /// its counterpart on the other side (compared in turn).
    fn compare_alternatives(&mut self, path: &str, old: Vec<Alternative>, new: Vec<Alternative>) {
        let (old_enumerated, old_open): (Vec<_>, Vec<_>) = old.into_iter().partition(Alternative::is_enumerated);
        let (new_enumerated, new_open): (Vec<_>, Vec<_>) = new.into_iter().partition(Alternative::is_enumerated);
        let old_values: Vec<&Value> = old_enumerated.iter().flat_map(Alternative::values).collect();
        let new_values: Vec<&Value> = new_enumerated.iter().flat_map(Alternative::values).collect();
        for &value in &old_values {
            if !new_values.contains(&value) && !new_open.iter().any(|a| a.admits_type_of(value)) {
                self.changes.push(Change::ValueRemoved { field: field_name(path), value: value.to_string() });
            }
        }
        for &value in &new_values {
            if !old_values.contains(&value) && !old_open.iter().any(|a| a.admits_type_of(value)) {
                self.changes.push(Change::ValueAdded { field: field_name(path), value: value.to_string() });
            }
        }

        let mut unpaired_new: Vec<Option<Alternative>> = new_open.into_iter().map(Some).collect();
        let mut unpaired_old = Vec::new();
        for old in old_open {
            let key = old.key();
            match unpaired_new.iter_mut().find(|n| n.as_ref().is_some_and(|n| n.key() == key)) {
                Some(slot) => {
                    let new = slot.take().expect("found unpaired");
                    self.compare_pair(path, &old, &new);
                }
                None => unpaired_old.push(old),
            }
        }
        // A shape whose key changed (a field of an `Option<Struct>` removed) still pairs with
        // the one left of its type, if there is exactly one on each side.
        for old in &unpaired_old {
            let kind = old.kind();
            let old_of_kind = unpaired_old.iter().filter(|o| o.kind() == kind).count();
            let mut new_of_kind = unpaired_new.iter_mut().filter(|n| n.as_ref().is_some_and(|n| n.kind() == kind));
            match (old_of_kind, new_of_kind.next(), new_of_kind.next()) {
                (1, Some(slot), None) => {
                    let new = slot.take().expect("filtered unpaired");
                    self.compare_pair(path, old, &new);
                }
                _ => self.changes.push(Change::AlternativeRemoved { field: field_name(path), alternative: old.key() }),
            }
        }
        for new in unpaired_new.into_iter().flatten() {
            self.changes.push(Change::AlternativeAdded { field: field_name(path), alternative: new.key() });
        }
    }

    fn compare_pair(&mut self, path: &str, old: &Alternative, new: &Alternative) {
        let recursion = match (&old.reference, &new.reference) {
            (Some(old), Some(new)) => Some((old.clone(), new.clone())),
            _ => None,
        };
        if let Some(pair) = recursion.clone() {
            if self.comparing.contains(&pair) {
                return;
            }
            self.comparing.push(pair);
        }
        self.compare_shape(path, &old.schema, &new.schema);
        if recursion.is_some() {
            self.comparing.pop();
        }
    }

    /// Two paired shapes: their constraints, then their fields, items and map values.
    fn compare_shape(&mut self, path: &str, old: &Value, new: &Value) {
        self.compare_constraints(path, old, new);
        let child = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
        let old_properties = old.get("properties").and_then(Value::as_object);
        let new_properties = new.get("properties").and_then(Value::as_object);
        // An object without `properties` (a map, a unit variant) has no fields to keep.
        if old_properties.is_some() || new_properties.is_some() {
            let none = Map::new();
            let new_properties = new_properties.unwrap_or(&none);
            for (name, old_field) in old_properties.unwrap_or(&none) {
                match new_properties.get(name) {
                    Some(new_field) => self.compare_at(&child(name), old_field, new_field),
                    None => self.changes.push(Change::Removed { field: child(name) }),
                }
            }
            let (old_required, new_required) = (required(old), required(new));
            for name in new_required.iter().filter(|name| !old_required.contains(name)) {
                self.changes.push(Change::NewRequired { field: child(name) });
            }
            // A field that became an `Option` is left out of `required` too: its type change
            // says so already.
            for name in old_required.iter().filter(|name| !new_required.contains(name)) {
                let admits_null = |field| alternatives(self.new_root, field, None).iter().any(|a| a.kind() == "null");
                if new_properties.get(*name).is_some_and(|field| !admits_null(field)) {
                    self.changes.push(Change::NoLongerRequired { field: child(name) });
                }
            }
            if old.get("additionalProperties") == Some(&Value::Bool(false)) {
                let old_properties = old_properties.unwrap_or(&none);
                for name in new_properties.keys().filter(|name| !old_properties.contains_key(*name)) {
                    self.changes.push(Change::AddedToClosed { field: child(name) });
                }
            }
        }
        match (old.get("items"), new.get("items")) {
            // A tuple: its elements by position.
            (Some(Value::Array(old_items)), Some(Value::Array(new_items))) => {
                for (i, old_item) in old_items.iter().enumerate() {
                    match new_items.get(i) {
                        Some(new_item) => self.compare_at(&format!("{path}[{i}]"), old_item, new_item),
                        None => self.changes.push(Change::Removed { field: format!("{path}[{i}]") }),
                    }
                }
            }
            (Some(old_items), Some(new_items)) => self.compare_at(&format!("{path}[]"), old_items, new_items),
            _ => {}
        }
        // The values of a map, and the pattern of its keys.
        let (old_values, new_values) = (map_values(old), map_values(new));
        if old_values.is_some() || new_values.is_some() {
            let anything = (None, &Value::Bool(true));
            let ((old_keys, old_values), (new_keys, new_values)) =
                (old_values.unwrap_or(anything), new_values.unwrap_or(anything));
            if old_keys != new_keys {
                let pattern = |keys: Option<&str>| keys.map(|k| Value::String(k.to_owned()));
                let (from, to) = (shown(pattern(old_keys).as_ref()), shown(pattern(new_keys).as_ref()));
                let field = field_name(&child("*"));
                self.changes.push(Change::ConstraintChanged { field, keyword: "key pattern".into(), from, to });
            }
            self.compare_at(&child("*"), old_values, new_values);
        }
    }

    /// A changed `format`, `pattern` (`u64` to `u8`, `String` to an ID) or bound.
    fn compare_constraints(&mut self, path: &str, old: &Value, new: &Value) {
        let mut changed = |keyword: &str, from: Option<&Value>, to: Option<&Value>| {
            let (from, to) = (shown(from), shown(to));
            self.changes
                .push(Change::ConstraintChanged { field: field_name(path), keyword: keyword.into(), from, to });
        };
        let (old_format, new_format) = (old.get("format"), new.get("format"));
        if old_format != new_format {
            changed("format", old_format, new_format);
        }
        let (old_pattern, new_pattern) = (old.get("pattern"), new.get("pattern"));
        let became_personal = old_pattern.is_none() && new_pattern.and_then(Value::as_str) == Some(PERSONAL_PATTERN);
        if old_pattern != new_pattern && !became_personal {
            changed("pattern", old_pattern, new_pattern);
        }
        for keyword in BOUNDS {
            let (from, to) = (old.get(keyword), new.get(keyword));
            if from.and_then(Value::as_f64) != to.and_then(Value::as_f64) {
                changed(keyword, from, to);
            }
        }
    }
}

/// The shapes a schema allows, `$ref`s resolved: its `anyOf`/`oneOf` alternatives (nested ones
/// flattened, as in `Option<Enum>`), its `type` array split by type (`Option<u32>`), or itself.
fn alternatives(root: &Value, schema: &Value, reference: Option<String>) -> Vec<Alternative> {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str)
        && let Some(definition) =
            target.strip_prefix("#/definitions/").and_then(|name| root.get("definitions")?.get(name))
    {
        return alternatives(root, definition, Some(target.to_owned()));
    }
    if let Some(listed) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
        return listed.iter().flat_map(|alternative| alternatives(root, alternative, reference.clone())).collect();
    }
    let enumerated = schema.get("enum").is_some() || schema.get("const").is_some();
    if let Some(Value::Array(types)) = schema.get("type")
        && types.len() > 1
        && !enumerated
    {
        let split = |kind: &Value| {
            let mut one = if kind == "null" { json!({}) } else { schema.clone() };
            one["type"] = kind.clone();
            Alternative { schema: one, reference: reference.clone() }
        };
        return types.iter().map(split).collect();
    }
    vec![Alternative { schema: schema.clone(), reference }]
}

/// The JSON types a set of alternatives admits, sorted; `any` for no restriction.
fn kinds(alternatives: &[Alternative]) -> Vec<String> {
    let mut kinds: Vec<String> = alternatives.iter().flat_map(Alternative::kinds).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.iter().any(|kind| kind == "any") {
        return vec!["any".into()];
    }
    kinds
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() { "<root>".to_owned() } else { path.to_owned() }
}

/// The values of a map and the pattern of its keys (`None`: any text): `additionalProperties`
/// (`BTreeMap<String, T>`), or a single `patternProperties` (keys that are numbers, say). A
/// boolean `additionalProperties` is about unknown fields, compared with the fields.
fn map_values(schema: &Value) -> Option<(Option<&str>, &Value)> {
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        return Some((None, values));
    }
    let patterns = schema.get("patternProperties")?.as_object()?;
    match patterns.iter().next() {
        Some((keys, values)) if patterns.len() == 1 => Some((Some(keys), values)),
        _ => None,
    }
}

/// A keyword's value as a change shows it: a string without quotes, `none` when absent.
fn shown(value: Option<&Value>) -> String {
    match value {
        None => "none".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
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
        // And a new value: a reader of the old schema refuses it.
        assert_eq!(compare(&new, &old), [Change::ValueAdded { field: "<root>".into(), value: "\"second\"".into() }]);
    }

    /// The schemas of two versions of one Rust type, as schemars writes them.
    mod versions {
        #![allow(dead_code)]
        use std::collections::BTreeMap;

        use schemars::JsonSchema;

        use crate::privacy::Personal;

        #[derive(JsonSchema)]
        pub struct Money {
            pub cents: i64,
            pub currency: String,
        }

        pub mod money_without_currency {
            #[derive(schemars::JsonSchema)]
            pub struct Money {
                pub cents: i64,
            }
        }

        /// An enum with data: `oneOf` of `{"Cash": {…}}`, `{"Card": …}` and `{"enum": ["Voucher"]}`.
        #[derive(JsonSchema)]
        pub enum Payment {
            Cash { cents: i64 },
            Card(String),
            Voucher,
        }

        pub mod payment_without_cash {
            #[derive(schemars::JsonSchema)]
            pub enum Payment {
                Card(String),
                Voucher,
            }
        }

        /// Partly documented unit variants: schemars writes `{"enum": [Open, Held]}` and
        /// `{"const": Closed}`.
        #[derive(JsonSchema)]
        pub enum Status {
            Open,
            Held,
            /// Done.
            Closed,
        }

        pub mod status_with_data {
            #[derive(schemars::JsonSchema)]
            pub enum Status {
                Open,
                Held,
                /// Done.
                Closed,
                Moved {
                    to: String,
                },
            }
        }

        pub mod status_without_held {
            #[derive(schemars::JsonSchema)]
            pub enum Status {
                Open,
                /// Done.
                Closed,
            }
        }

        #[derive(JsonSchema)]
        pub struct Node {
            pub name: String,
            pub children: Vec<Node>,
        }

        pub mod node_with_number {
            #[derive(schemars::JsonSchema)]
            pub struct Node {
                pub name: u32,
                pub children: Vec<Node>,
            }
        }

        #[derive(JsonSchema)]
        #[schemars(transparent)]
        pub struct OrderId(#[schemars(regex(pattern = "^ord_[0-9a-f]{32}$"))] pub String);

        #[derive(JsonSchema)]
        #[schemars(transparent)]
        pub struct CustomerId(#[schemars(regex(pattern = "^cus_[0-9a-f]{32}$"))] pub String);

        /// One field of type `T`.
        #[derive(JsonSchema)]
        pub struct Field<T> {
            pub field: T,
        }

        pub type Paid = Field<Money>;
        pub type MaybePaid = Field<Option<Money>>;
        pub type MaybePaidWithoutCurrency = Field<Option<money_without_currency::Money>>;
        pub type Paying = Field<Payment>;
        pub type PayingWithoutCash = Field<payment_without_cash::Payment>;
        pub type Counts = Field<BTreeMap<String, u32>>;
        pub type Labels = Field<BTreeMap<String, String>>;
        pub type CountsByNumber = Field<BTreeMap<u32, u32>>;
        pub type LabelsByNumber = Field<BTreeMap<u32, String>>;
        pub type Big = Field<u64>;
        pub type Small = Field<u8>;
        pub type Text = Field<String>;
        pub type Order = Field<OrderId>;
        pub type Customer = Field<CustomerId>;
        pub type Sealed = Field<Personal<String>>;
        pub type Anything = Field<serde_json::Value>;
        pub type State = Field<Status>;
        pub type StateWithoutHeld = Field<status_without_held::Status>;
        pub type StateWithData = Field<status_with_data::Status>;
        pub type Tree = Field<Node>;
        pub type NumberedTree = Field<node_with_number::Node>;
    }

    fn from_to<Old: schemars::JsonSchema, New: schemars::JsonSchema>() -> Vec<Change> {
        compare(&crate::schema::schema_of::<Old>(), &crate::schema::schema_of::<New>())
    }

    fn constraint(field: &str, keyword: &str, from: &str, to: &str) -> Change {
        Change::ConstraintChanged { field: field.into(), keyword: keyword.into(), from: from.into(), to: to.into() }
    }

    #[test]
    fn a_struct_that_becomes_optional_breaks() {
        use versions::*;
        // `anyOf: [{…}, {"type": "null"}]` has no `type` of its own: null appears.
        let type_changed =
            |from: &str, to: &str| Change::TypeChanged { field: "field".into(), from: from.into(), to: to.into() };
        assert_eq!(from_to::<Paid, MaybePaid>(), [type_changed("object", "null|object")]);
        // And an `Option` field is not required: records without it may exist.
        let required = Change::NewRequired { field: "field".into() };
        assert_eq!(from_to::<MaybePaid, Paid>(), [type_changed("null|object", "object"), required]);
        assert_eq!(from_to::<MaybePaid, MaybePaid>(), []);
    }

    #[test]
    fn a_field_removed_inside_an_option_breaks() {
        use versions::*;
        assert_eq!(
            from_to::<MaybePaid, MaybePaidWithoutCurrency>(),
            [Change::Removed { field: "field.currency".into() }]
        );
    }

    #[test]
    fn a_first_data_variant_added_to_unit_variants_breaks_as_removing_it_does() {
        use versions::*;
        let moved = "an object with `Moved`".to_owned();
        assert_eq!(
            from_to::<State, StateWithData>(),
            [Change::AlternativeAdded { field: "field".into(), alternative: moved.clone() }]
        );
        assert_eq!(
            from_to::<StateWithData, State>(),
            [Change::AlternativeRemoved { field: "field".into(), alternative: moved }]
        );
        assert!(!from_to::<Paid, MaybePaid>().is_empty(), "`T` to `Option<T>` stays a change");
    }

    #[test]
    fn a_variant_of_an_enum_with_data_removed_or_added_breaks() {
        use versions::*;
        let cash = "an object with `Cash`".to_owned();
        assert_eq!(
            from_to::<Paying, PayingWithoutCash>(),
            [Change::AlternativeRemoved { field: "field".into(), alternative: cash.clone() }]
        );
        assert_eq!(
            from_to::<PayingWithoutCash, Paying>(),
            [Change::AlternativeAdded { field: "field".into(), alternative: cash }]
        );
    }

    #[test]
    fn a_changed_map_value_breaks() {
        use versions::*;
        assert_eq!(
            from_to::<Counts, Labels>(),
            [Change::TypeChanged { field: "field.*".into(), from: "integer".into(), to: "string".into() }]
        );
    }

    #[test]
    fn a_changed_map_value_or_key_breaks_also_with_keys_that_are_numbers() {
        use versions::*;
        assert_eq!(
            from_to::<CountsByNumber, LabelsByNumber>(),
            [Change::TypeChanged { field: "field.*".into(), from: "integer".into(), to: "string".into() }]
        );
        let keys = from_to::<Counts, CountsByNumber>();
        assert!(
            matches!(&keys[..], [Change::ConstraintChanged { keyword, from, .. }] if keyword == "key pattern" && from == "none"),
            "{keys:?}"
        );
    }

    #[test]
    fn a_required_field_left_out_breaks_old_readers() {
        assert_eq!(
            changed(|s| s["required"] = json!(["order_id"])),
            [Change::NoLongerRequired { field: "quantity".into() }]
        );
    }

    #[test]
    fn a_field_added_to_a_closed_object_breaks_old_readers() {
        // `#[serde(deny_unknown_fields)]`.
        let mut closed = order();
        closed["additionalProperties"] = json!(false);
        let mut added = closed.clone();
        added["properties"]["note"] = json!({"type": ["string", "null"]});
        assert_eq!(compare(&closed, &added), [Change::AddedToClosed { field: "note".into() }]);
    }

    #[test]
    fn a_bound_changed_either_way_breaks() {
        let bounded = |max: u32| json!({"type": "integer", "maximum": max});
        assert_eq!(compare(&bounded(10), &bounded(5)), [constraint("<root>", "maximum", "10", "5")]);
        assert_eq!(compare(&bounded(10), &bounded(100)), [constraint("<root>", "maximum", "10", "100")]);
        assert_eq!(compare(&bounded(10), &json!({"type": "integer"})), [constraint("<root>", "maximum", "10", "none")]);
    }

    #[test]
    fn a_narrower_integer_breaks() {
        use versions::*;
        assert_eq!(from_to::<Big, Small>(), [constraint("field", "maximum", "18446744073709551615", "255")]);
    }

    #[test]
    fn integers_are_bounded_and_a_snapshot_that_says_it_with_a_format_is_the_same() {
        let bounded = crate::schema::schema_of::<Option<u32>>();
        assert_eq!(bounded.get("format"), None, "{bounded}");
        assert_eq!(bounded["maximum"], json!(u32::MAX), "{bounded}");
        // As schemars writes `Option<u32>` without tramline's bounds (snapshots made before them).
        let unbounded = json!({"type": ["integer", "null"], "format": "uint32", "minimum": 0});
        assert_eq!(compare(&unbounded, &bounded), []);
        let wider = json!({"type": ["integer", "null"], "format": "uint64", "minimum": 0});
        assert_eq!(compare(&wider, &bounded), [constraint("<root>", "maximum", "18446744073709551615", "4294967295")]);
    }

    #[test]
    fn a_changed_pattern_breaks_but_a_string_may_become_personal() {
        use versions::*;
        assert_eq!(from_to::<Text, Order>(), [constraint("field", "pattern", "none", "^ord_[0-9a-f]{32}$")]);
        assert_eq!(
            from_to::<Order, Customer>(),
            [constraint("field", "pattern", "^ord_[0-9a-f]{32}$", "^cus_[0-9a-f]{32}$")]
        );
        // Records written before the field was personal are read as plain text.
        assert_eq!(from_to::<Text, Sealed>(), []);
        // The other way the sealed text of old records would be read as the value.
        assert_eq!(from_to::<Sealed, Text>(), [constraint("field", "pattern", "^pii1:", "none")]);
    }

    #[test]
    fn a_struct_that_becomes_any_json_breaks_both_ways() {
        use versions::*;
        // New readers read the old records, but old readers (partners) would meet anything.
        let type_changed =
            |from: &str, to: &str| Change::TypeChanged { field: "field".into(), from: from.into(), to: to.into() };
        assert_eq!(from_to::<Paid, Anything>(), [type_changed("object", "any")]);
        assert_eq!(from_to::<Anything, Paid>(), [type_changed("any", "object")]);
    }

    #[test]
    fn every_value_of_a_partly_documented_enum_counts() {
        use versions::*;
        assert_eq!(
            from_to::<State, StateWithoutHeld>(),
            [Change::ValueRemoved { field: "field".into(), value: "\"Held\"".into() }]
        );
        assert_eq!(
            from_to::<StateWithoutHeld, State>(),
            [Change::ValueAdded { field: "field".into(), value: "\"Held\"".into() }]
        );
    }

    #[test]
    fn a_recursive_type_compares_where_it_recurs_and_ends() {
        use versions::*;
        assert_eq!(from_to::<Tree, Tree>(), []);
        assert_eq!(
            from_to::<Tree, NumberedTree>(),
            [
                Change::TypeChanged {
                    field: "field.children[].name".into(),
                    from: "string".into(),
                    to: "integer".into()
                },
                Change::TypeChanged { field: "field.name".into(), from: "string".into(), to: "integer".into() },
            ]
        );
    }
}
