//! The values a query computes with: what a JSON payload field holds, reduced to SQL's scalar
//! types, and the reading of only the columns a query needs from a payload.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::catalog::NameCase;
use super::plan::Column;

/// The type of a column or expression, as far as the planner knows it (ksqlDB's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `BOOLEAN`
    Boolean,
    /// `BIGINT`: a whole number.
    Bigint,
    /// `DOUBLE`: a floating-point number.
    Double,
    /// `STRING` (named `Text` here: an item named `String` in this crate makes rustc spell
    /// out `std::string::String` in every user's error messages).
    Text,
}

impl SqlType {
    /// The name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::Bigint => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::Text => "STRING",
        }
    }

    /// Whether it is a number.
    pub fn is_numeric(self) -> bool {
        matches!(self, SqlType::Bigint | SqlType::Double)
    }

    /// Whether values of the two types compare (otherwise a comparison is always NULL).
    pub fn compares_with(self, other: SqlType) -> bool {
        self == other || (self.is_numeric() && other.is_numeric())
    }
}

/// A scalar value of a column, an aggregate or an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL: an absent field, JSON `null`, or an aggregate over no values.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text. A nested JSON object or array is held as its JSON text.
    Text(String),
}

impl Value {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// SQL truth: only TRUE is true (NULL and everything else filter out).
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// Compares two values of comparable types; `None` when either is NULL or the types differ.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }

    /// Whether it is a value of a column of type `sql_type`: NULL is of every type, and a whole
    /// number also a DOUBLE (a JSON number without a fraction).
    pub fn fits(&self, sql_type: SqlType) -> bool {
        match (self, sql_type) {
            (Value::Null, _)
            | (Value::Bool(_), SqlType::Boolean)
            | (Value::Int(_), SqlType::Bigint | SqlType::Double)
            | (Value::Float(_), SqlType::Double)
            | (Value::Text(_), SqlType::Text) => true,
            // A whole number beyond i64 (a `u64` field) is read as a float.
            (Value::Float(x), SqlType::Bigint) => x.fract() == 0.0,
            _ => false,
        }
    }

    /// The name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        self.sql_type().map_or("NULL", SqlType::name)
    }

    /// The value's type; `None` for NULL, which has every type.
    pub fn sql_type(&self) -> Option<SqlType> {
        match self {
            Value::Null => None,
            Value::Bool(_) => Some(SqlType::Boolean),
            Value::Int(_) => Some(SqlType::Bigint),
            Value::Float(_) => Some(SqlType::Double),
            Value::Text(_) => Some(SqlType::Text),
        }
    }

    /// Writes the value as text, as it appears in a record key.
    pub fn write_key(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Text(text) => out.push_str(text),
            Value::Null => out.push_str("null"),
            other => {
                let _ = write!(out, "{other}");
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(t) => write!(f, "'{}'", t.replace('\'', "''")),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s),
            other => Value::Text(other.to_string()),
        }
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Reads any JSON value straight into a [`Value`] (serde's untagged enums buffer first).
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        let json = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Value::Text(json.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let json = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Value::Text(json.to_string()))
    }
}

/// Reads the top-level fields named in `columns` from a JSON object into `out` (one slot per
/// column, NULL where the field is absent), skipping every other field without building it.
pub(crate) fn read_columns(json: &[u8], columns: &[Column], out: &mut Vec<Value>) -> serde_json::Result<()> {
    out.clear();
    // A column matched in any case takes a field of its exact name over the others, in
    // whatever order they come: slots after the values mark the columns read exactly. They
    // live in `out`, which callers reuse, so that no record allocates.
    let any_case = columns.iter().any(|c| c.case == NameCase::Any);
    out.resize(if any_case { 2 * columns.len() } else { columns.len() }, Value::Null);
    let mut de = serde_json::Deserializer::from_slice(json);
    let read = Picker { columns, any_case, out }.deserialize(&mut de).and_then(|()| de.end());
    out.truncate(columns.len());
    read
}

/// Reads the wanted fields of one JSON object.
struct Picker<'a> {
    columns: &'a [Column],
    any_case: bool,
    /// The values, then (with `any_case`) a TRUE for each column read from its exact name.
    out: &'a mut [Value],
}

impl Picker<'_> {
    /// Whether column `i` takes `field`: by its exact name, or in any case unless a field of
    /// its exact name was read already.
    fn wants(&self, i: usize, field: &str) -> bool {
        let column = &self.columns[i];
        match column.case {
            NameCase::Exact => column.name == field,
            NameCase::Any => {
                column.name == field
                    || (column.name.eq_ignore_ascii_case(field) && !self.out[self.columns.len() + i].is_true())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of the event's fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let n = self.columns.len();
        while let Some(field) = map.next_key::<FieldName<'de>>()? {
            let field = &*field.0;
            let Some(first) = (0..n).find(|&i| self.wants(i, field)) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            self.out[first] = map.next_value::<Value>()?;
            // Several columns may read one field (`k` and `` `k` ``): each gets its value.
            for i in first + 1..n {
                if self.wants(i, field) {
                    self.out[i] = self.out[first].clone();
                }
            }
            if self.any_case {
                for i in (first..n).filter(|&i| self.columns[i].name == field) {
                    self.out[n + i] = Value::Bool(true);
                }
            }
        }
        Ok(())
    }
}

/// A field name, borrowed from the input where it has no escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(names: &[&str]) -> Vec<Column> {
        names
            .iter()
            .map(|name| Column { name: (*name).to_owned(), case: NameCase::Exact, sql_type: None })
            .collect()
    }

    #[test]
    fn reads_only_the_named_columns_and_nulls_the_absent_ones() {
        let columns = exact(&["total", "customer_id", "missing"]);
        let mut out = Vec::new();
        read_columns(
            br#"{"order_id":"ord_1","customer_id":"cus_7","nested":{"a":[1]},"total":1250}"#,
            &columns,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![Value::Int(1250), Value::Text("cus_7".into()), Value::Null]);
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_an_error() {
        let mut out = Vec::new();
        assert!(read_columns(b"[1,2]", &exact(&["a"]), &mut out).is_err());
        assert!(read_columns(b"{\"a\":1", &exact(&["a"]), &mut out).is_err());
    }

    #[test]
    fn a_column_in_any_case_prefers_the_field_of_its_exact_name() {
        let columns = vec![
            Column { name: "k".into(), case: NameCase::Any, sql_type: None },
            Column { name: "K".into(), case: NameCase::Exact, sql_type: None },
            Column { name: "Amount".into(), case: NameCase::Any, sql_type: None },
        ];
        let mut out = Vec::new();
        read_columns(br#"{"AMOUNT":1,"k":null,"K":"upper"}"#, &columns, &mut out).unwrap();
        assert_eq!(out, [Value::Null, Value::from("upper"), Value::Int(1)]);
        read_columns(br#"{"K":"upper","Amount":2,"amount":3,"k":"lower"}"#, &columns, &mut out).unwrap();
        assert_eq!(out, [Value::from("lower"), Value::from("upper"), Value::Int(2)]);
        let capacity = out.capacity();
        read_columns(br#"{"K":"upper"}"#, &columns, &mut out).unwrap();
        assert_eq!(out.capacity(), capacity, "the buffer is reused");
        read_columns(br#"{"K":"upper"}"#, &columns[..1], &mut out).unwrap();
        assert_eq!(out, [Value::from("upper")], "another case when there is no exact match");
    }

    #[test]
    fn every_column_that_names_a_field_reads_it() {
        // `SELECT K ... WHERE `k` = 'a'` on an open catalog: two columns, one field.
        let columns = vec![
            Column { name: "K".into(), case: NameCase::Any, sql_type: None },
            Column { name: "k".into(), case: NameCase::Exact, sql_type: None },
        ];
        let mut out = Vec::new();
        read_columns(br#"{"k":"a"}"#, &columns, &mut out).unwrap();
        assert_eq!(out, [Value::from("a"), Value::from("a")]);
        let columns = vec![
            Column { name: "k".into(), case: NameCase::Any, sql_type: None },
            Column { name: "k".into(), case: NameCase::Exact, sql_type: None },
        ];
        read_columns(br#"{"k":"a"}"#, &columns, &mut out).unwrap();
        assert_eq!(out, [Value::from("a"), Value::from("a")]);
    }

    #[test]
    fn numbers_compare_across_int_and_float_and_null_compares_with_nothing() {
        assert_eq!(Value::Int(2).compare(&Value::Float(2.5)), Some(Ordering::Less));
        assert_eq!(Value::Null.compare(&Value::Int(1)), None);
        assert_eq!(Value::Text("a".into()).compare(&Value::Int(1)), None);
    }
}
