//! The encoding of a query's internal records: the re-keyed rows on `<query>-repartition` and
//! the windows on `<query>-changelog`. They are private to the query, so they are written in a
//! compact binary form ([postcard](https://docs.rs/postcard)) rather than JSON.
//!
//! Every value starts with a byte that names its encoding, so that the encoding can change
//! without a reader mistaking one form for another:
//!
//! - `0x01`: postcard, version 1 (the wire types below; their variants are only ever appended
//!   to, never reordered);
//! - `0x02`: postcard, version 2, for windows: version 1's window and the latest event time of
//!   its records (a window of version 1 is still read, without it);
//! - `{`: JSON, as written before the binary form: still read, so that a changelog or a
//!   repartition topic written by an earlier version restores and drains.
//!
//! Anything else is refused with an error that names the first byte.

use std::fmt;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::aggregate::Accumulator;
use super::plan::Keyed;
use super::state::StoredWindow;
use super::value::Value;
use super::window::Window;

/// The first byte of a value in the binary form, version 1.
pub const BINARY_V1: u8 = 0x01;

/// The first byte of a window in the binary form, version 2 (with its latest event time).
pub const BINARY_V2: u8 = 0x02;

/// A value of an internal record that cannot be read.
#[derive(Debug)]
pub enum WireError {
    /// An empty value.
    Empty,
    /// The first byte names no encoding this version knows.
    UnknownEncoding(u8),
    /// The binary form (of this version) is damaged.
    Binary(u8, postcard::Error),
    /// The binary form (of this version) has this many bytes after its end.
    Trailing(u8, usize),
    /// The JSON form is damaged.
    Json(serde_json::Error),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("an empty value"),
            WireError::UnknownEncoding(byte) => write!(
                f,
                "an unknown encoding (first byte {byte:#04x}; known: {BINARY_V1:#04x} and {BINARY_V2:#04x} for binary \
                 versions 1 and 2, `{{` for JSON)"
            ),
            WireError::Binary(version, error) => write!(f, "a damaged binary value (version {version}): {error}"),
            WireError::Trailing(version, n) => {
                write!(f, "a binary value (version {version}) followed by {n} unexpected bytes")
            }
            WireError::Json(error) => write!(f, "a damaged JSON value: {error}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A [`Value`] as the binary form writes it (borrowed: no copy of a text).
#[derive(Serialize)]
enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(x) => ValueRef::Float(*x),
            Value::Text(t) => ValueRef::Text(t),
        }
    }
}

/// A [`Value`] as the binary form reads it.
#[derive(Deserialize)]
enum ValueOwned {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl From<ValueOwned> for Value {
    fn from(value: ValueOwned) -> Self {
        match value {
            ValueOwned::Null => Value::Null,
            ValueOwned::Bool(b) => Value::Bool(b),
            ValueOwned::Int(i) => Value::Int(i),
            ValueOwned::Float(x) => Value::Float(x),
            ValueOwned::Text(t) => Value::Text(t),
        }
    }
}

/// A [`Value`] as the binary form reads it, its text borrowed from the input.
#[derive(Deserialize)]
enum ValueBorrowed<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
}

impl ValueBorrowed<'_> {
    /// Writes the value over `slot`, reusing the room of a text already there.
    fn store(self, slot: &mut Value) {
        *slot = match self {
            ValueBorrowed::Text(text) => {
                if let Value::Text(old) = slot {
                    old.clear();
                    old.push_str(text);
                    return;
                }
                Value::Text(text.to_owned())
            }
            ValueBorrowed::Null => Value::Null,
            ValueBorrowed::Bool(b) => Value::Bool(b),
            ValueBorrowed::Int(i) => Value::Int(i),
            ValueBorrowed::Float(x) => Value::Float(x),
        }
    }
}

/// Reads a sequence of values over the values of a `Vec`, reusing its room and its texts'.
struct ValuesInto<'x>(&'x mut Vec<Value>);

impl<'de> DeserializeSeed<'de> for ValuesInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ValuesInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(value) = seq.next_element::<ValueBorrowed<'de>>()? {
            match self.0.get_mut(n) {
                Some(slot) => value.store(slot),
                None => {
                    let mut slot = Value::Null;
                    value.store(&mut slot);
                    self.0.push(slot);
                }
            }
            n += 1;
        }
        self.0.truncate(n);
        Ok(())
    }
}

/// Reads a re-keyed row over a [`Keyed`] (its fields in order: time, group, args).
struct KeyedInto<'x>(&'x mut Keyed);

impl<'de> DeserializeSeed<'de> for KeyedInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_tuple(3, self)
    }
}

impl<'de> Visitor<'de> for KeyedInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a re-keyed row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let missing = |what| serde::de::Error::custom(format_args!("the row ends before its {what}"));
        self.0.time = seq.next_element()?.ok_or_else(|| missing("time"))?;
        seq.next_element_seed(ValuesInto(&mut self.0.group))?.ok_or_else(|| missing("group"))?;
        seq.next_element_seed(ValuesInto(&mut self.0.args))?.ok_or_else(|| missing("arguments"))?;
        Ok(())
    }
}

/// Values written as a sequence of [`ValueRef`].
struct Values<'a>(&'a [Value]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for value in self.0 {
            seq.serialize_element(&ValueRef::from(value))?;
        }
        seq.end()
    }
}

fn values(owned: Vec<ValueOwned>) -> Vec<Value> {
    owned.into_iter().map(Value::from).collect()
}

#[derive(Serialize)]
enum AccumulatorRef<'a> {
    Count(i64),
    Sum(ValueRef<'a>),
    Min(ValueRef<'a>),
    Max(ValueRef<'a>),
    /// An average with a float sum, as written before `AvgOf`: read, no longer written.
    #[allow(dead_code)]
    Avg {
        sum: f64,
        count: i64,
    },
    /// An average whose sum is exact while it is whole.
    AvgOf {
        sum: ValueRef<'a>,
        count: i64,
    },
}

#[derive(Deserialize)]
enum AccumulatorOwned {
    Count(i64),
    Sum(ValueOwned),
    Min(ValueOwned),
    Max(ValueOwned),
    Avg { sum: f64, count: i64 },
    AvgOf { sum: ValueOwned, count: i64 },
}

struct Accumulators<'a>(&'a [Accumulator]);

impl Serialize for Accumulators<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for acc in self.0 {
            let acc = match acc {
                Accumulator::Count(n) => AccumulatorRef::Count(*n),
                Accumulator::Sum(v) => AccumulatorRef::Sum(v.into()),
                Accumulator::Min(v) => AccumulatorRef::Min(v.into()),
                Accumulator::Max(v) => AccumulatorRef::Max(v.into()),
                Accumulator::Avg { sum, count } => AccumulatorRef::AvgOf { sum: sum.into(), count: *count },
            };
            seq.serialize_element(&acc)?;
        }
        seq.end()
    }
}

impl From<AccumulatorOwned> for Accumulator {
    fn from(acc: AccumulatorOwned) -> Self {
        match acc {
            AccumulatorOwned::Count(n) => Accumulator::Count(n),
            AccumulatorOwned::Sum(v) => Accumulator::Sum(v.into()),
            AccumulatorOwned::Min(v) => Accumulator::Min(v.into()),
            AccumulatorOwned::Max(v) => Accumulator::Max(v.into()),
            AccumulatorOwned::Avg { sum, count } => Accumulator::Avg { sum: Value::Float(sum), count },
            AccumulatorOwned::AvgOf { sum, count } => Accumulator::Avg { sum: sum.into(), count },
        }
    }
}

#[derive(Serialize)]
struct KeyedRef<'a> {
    time: i64,
    group: Values<'a>,
    args: Values<'a>,
}

/// A window, version 2 (version 1 without `latest`).
#[derive(Serialize)]
struct WindowRef<'a> {
    group: Values<'a>,
    start: i64,
    end: i64,
    accumulators: Accumulators<'a>,
    latest: i64,
}

#[derive(Deserialize)]
struct WindowOwned {
    group: Vec<ValueOwned>,
    start: i64,
    end: i64,
    accumulators: Vec<AccumulatorOwned>,
}

/// Appends the binary form of `value`, of this version, to `out`.
fn encode<T: Serialize>(value: &T, version: u8, out: &mut Vec<u8>) {
    out.push(version);
    let buffer = postcard::to_extend(value, std::mem::take(out)).expect("postcard writes to a Vec without failing");
    *out = buffer;
}

/// Which form a value is in.
enum Form<'a> {
    /// The binary form of this version, without its first byte.
    Binary(u8, &'a [u8]),
    /// JSON.
    Json(&'a [u8]),
}

fn form(bytes: &[u8]) -> Result<Form<'_>, WireError> {
    match bytes.first() {
        None => Err(WireError::Empty),
        Some(&version @ (BINARY_V1 | BINARY_V2)) => Ok(Form::Binary(version, &bytes[1..])),
        Some(b'{') => Ok(Form::Json(bytes)),
        Some(&byte) => Err(WireError::UnknownEncoding(byte)),
    }
}

/// Reads a `T` and then the `latest` of version 2, if it is of that version.
fn binary<'de, T: Deserialize<'de>>(version: u8, bytes: &'de [u8]) -> Result<(T, Option<i64>), WireError> {
    let damaged = |error| WireError::Binary(version, error);
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(damaged)?;
    let (latest, rest) = match version {
        BINARY_V2 => {
            postcard::take_from_bytes::<i64>(rest).map(|(latest, rest)| (Some(latest), rest)).map_err(damaged)?
        }
        _ => (None, rest),
    };
    match rest.len() {
        0 => Ok((value, latest)),
        n => Err(WireError::Trailing(version, n)),
    }
}

/// Appends a re-keyed row (a [`Keyed`], from its parts) to `out`.
pub fn encode_keyed(time: i64, group: &[Value], args: &[Value], out: &mut Vec<u8>) {
    encode(&KeyedRef { time, group: Values(group), args: Values(args) }, BINARY_V1, out);
}

/// Reads a re-keyed row, in either form.
#[cfg(test)]
pub fn decode_keyed(bytes: &[u8]) -> Result<Keyed, WireError> {
    let mut keyed = Keyed { time: 0, group: Vec::new(), args: Vec::new() };
    decode_keyed_into(bytes, &mut keyed)?;
    Ok(keyed)
}

/// Reads a re-keyed row over `keyed`, reusing its room (no allocation per row in the binary
/// form). After an error `keyed` holds parts of the row: read the next one over it.
pub fn decode_keyed_into(bytes: &[u8], keyed: &mut Keyed) -> Result<(), WireError> {
    match form(bytes)? {
        Form::Binary(BINARY_V1, bytes) => {
            let damaged = |error| WireError::Binary(BINARY_V1, error);
            let mut deserializer = postcard::Deserializer::from_bytes(bytes);
            KeyedInto(keyed).deserialize(&mut deserializer).map_err(damaged)?;
            match deserializer.finalize().map_err(damaged)?.len() {
                0 => Ok(()),
                n => Err(WireError::Trailing(BINARY_V1, n)),
            }
        }
        // Version 2 is a window's.
        Form::Binary(version, _) => Err(WireError::UnknownEncoding(version)),
        Form::Json(json) => {
            *keyed = serde_json::from_slice(json).map_err(WireError::Json)?;
            Ok(())
        }
    }
}

/// Appends a window of a key (a [`StoredWindow`], from its parts) to `out`.
pub fn encode_window(group: &[Value], window: Window, accumulators: &[Accumulator], latest: i64, out: &mut Vec<u8>) {
    let window = WindowRef {
        group: Values(group),
        start: window.start,
        end: window.end,
        accumulators: Accumulators(accumulators),
        latest,
    };
    encode(&window, BINARY_V2, out);
}

/// Reads a window of a key, in either form.
pub fn decode_window(bytes: &[u8]) -> Result<StoredWindow, WireError> {
    match form(bytes)? {
        Form::Binary(version, bytes) => {
            let (stored, latest): (WindowOwned, _) = binary(version, bytes)?;
            Ok(StoredWindow {
                group: values(stored.group),
                window: Window { start: stored.start, end: stored.end },
                accumulators: stored.accumulators.into_iter().map(Accumulator::from).collect(),
                latest,
            })
        }
        Form::Json(json) => serde_json::from_slice(json).map_err(WireError::Json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed() -> Keyed {
        Keyed {
            time: 1_893_456_000_123,
            group: vec![Value::from("cus_1"), Value::Int(-7), Value::Null, Value::Bool(true), Value::Float(2.5)],
            args: vec![Value::Null, Value::Int(250)],
        }
    }

    fn stored() -> StoredWindow {
        StoredWindow {
            group: vec![Value::from("cus_1")],
            window: Window { start: -600_000, end: 0 },
            accumulators: vec![
                Accumulator::Count(5),
                Accumulator::Sum(Value::Int(1250)),
                Accumulator::Min(Value::from("a")),
                Accumulator::Max(Value::Float(9.5)),
                Accumulator::Avg { sum: Value::Int(7), count: 2 },
                Accumulator::Sum(Value::Null),
            ],
            latest: Some(-1),
        }
    }

    #[test]
    fn binary_round_trips_and_is_smaller_than_json() {
        let keyed = keyed();
        let mut out = Vec::new();
        encode_keyed(keyed.time, &keyed.group, &keyed.args, &mut out);
        assert_eq!(out[0], BINARY_V1);
        assert_eq!(decode_keyed(&out).unwrap(), keyed);
        assert!(out.len() < serde_json::to_vec(&keyed).unwrap().len());

        let stored = stored();
        let mut out = Vec::new();
        encode_window(&stored.group, stored.window, &stored.accumulators, -1, &mut out);
        assert_eq!(out[0], BINARY_V2);
        assert_eq!(decode_window(&out).unwrap(), stored);
        assert!(out.len() < serde_json::to_vec(&stored).unwrap().len());
    }

    /// An average written with a float sum, as before sums were kept exact, reads as one.
    #[test]
    fn an_average_with_a_float_sum_is_still_read() {
        let stored = StoredWindow { accumulators: vec![Accumulator::Count(1)], ..stored() };
        let mut out = Vec::new();
        encode_window(&stored.group, stored.window, &stored.accumulators, -1, &mut out);
        // The same window with the old variant (index 4) in place of the count (index 0).
        let count = postcard::to_allocvec(&AccumulatorRef::Count(1)).unwrap();
        let old = postcard::to_allocvec(&AccumulatorRef::Avg { sum: 3.5, count: 2 }).unwrap();
        let at = out.windows(count.len()).rposition(|w| w == count).unwrap();
        out.splice(at..at + count.len(), old);
        let expected = vec![Accumulator::Avg { sum: Value::Float(3.5), count: 2 }];
        assert_eq!(decode_window(&out).unwrap().accumulators, expected);
    }

    /// A window of version 1, as written before windows carried their latest event time.
    #[test]
    fn a_window_of_version_1_is_read_without_its_latest_time() {
        #[derive(Serialize)]
        struct WindowV1<'a> {
            group: Values<'a>,
            start: i64,
            end: i64,
            accumulators: Accumulators<'a>,
        }
        let stored = stored();
        let v1 = WindowV1 {
            group: Values(&stored.group),
            start: stored.window.start,
            end: stored.window.end,
            accumulators: Accumulators(&stored.accumulators),
        };
        let mut out = Vec::new();
        encode(&v1, BINARY_V1, &mut out);
        assert_eq!(decode_window(&out).unwrap(), StoredWindow { latest: None, ..stored });
        out.push(0);
        assert_eq!(
            decode_window(&out).unwrap_err().to_string(),
            "a binary value (version 1) followed by 1 unexpected bytes"
        );
    }

    #[test]
    fn a_row_read_over_another_is_that_row_alone() {
        let rows = [
            keyed(),
            Keyed { time: 5, group: vec![Value::Int(1)], args: vec![] },
            Keyed {
                time: -5,
                group: vec![Value::from("a longer text than before"), Value::from("b")],
                args: vec![Value::Null],
            },
        ];
        let mut over = Keyed { time: 0, group: Vec::new(), args: Vec::new() };
        for row in rows.iter().chain(rows.iter().rev()) {
            let mut out = Vec::new();
            encode_keyed(row.time, &row.group, &row.args, &mut out);
            decode_keyed_into(&out, &mut over).unwrap();
            assert_eq!(&over, row);
            decode_keyed_into(&serde_json::to_vec(row).unwrap(), &mut over).unwrap();
            assert_eq!(&over, row);
        }
    }

    #[test]
    fn the_json_of_earlier_versions_is_still_read() {
        let keyed = keyed();
        assert_eq!(decode_keyed(&serde_json::to_vec(&keyed).unwrap()).unwrap(), keyed);
        let stored = StoredWindow { group: vec![Value::from("cus_1")], latest: None, ..stored() };
        let json = serde_json::to_vec(&stored).unwrap();
        assert!(!String::from_utf8_lossy(&json).contains("latest"), "as written before");
        assert_eq!(decode_window(&json).unwrap(), stored);
    }

    #[test]
    fn a_damaged_value_is_an_error_that_says_what_is_wrong() {
        let keyed = keyed();
        let mut out = Vec::new();
        encode_keyed(keyed.time, &keyed.group, &keyed.args, &mut out);
        let error = decode_keyed(&out[..out.len() - 1]).unwrap_err();
        assert!(error.to_string().starts_with("a damaged binary value (version 1)"), "{error}");
        out.push(0);
        assert_eq!(
            decode_keyed(&out).unwrap_err().to_string(),
            "a binary value (version 1) followed by 1 unexpected bytes"
        );
        let error = decode_window(&[0x03, 1, 2]).unwrap_err();
        assert!(error.to_string().starts_with("an unknown encoding (first byte 0x03"), "{error}");
        let error = decode_keyed(&[BINARY_V2, 1, 2]).unwrap_err();
        assert!(error.to_string().starts_with("an unknown encoding (first byte 0x02"), "{error}");
        assert_eq!(decode_window(&[]).unwrap_err().to_string(), "an empty value");
        assert!(decode_keyed(b"{\"time\":").unwrap_err().to_string().starts_with("a damaged JSON value"));
    }
}
