//! The one logical plan that both front ends (SQL and the Rust DSL) compile into:
//! source -> WHERE -> re-key for GROUP BY -> windowed aggregate -> HAVING -> emit -> sink, or,
//! for a stateless query (no GROUP BY, no WINDOW), source -> WHERE -> SELECT -> sink.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use super::aggregate::Function;
use super::catalog::{NameCase, names_type};
use super::expr::{Expr, Scope};
use super::value::{SqlType, Value, read_columns};
use super::window::{MAX_WINDOWS_PER_RECORD, WindowError, Windowing};
use crate::model::Subscription;

/// What a query's sink holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// `CREATE STREAM`: the rows that pass HAVING, keyed by the group key (a stateless query's
    /// rows: by their record's key, or by PARTITION BY).
    Stream,
    /// `CREATE TABLE`: the same rows keyed by group key and window (`key@windowstart`; the
    /// group key alone without windows), so that compaction of the sink, where it is compacted,
    /// keeps the latest row per window.
    Table,
}

/// When rows are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Emit {
    /// On every update of a window (`EMIT CHANGES`, the default).
    Changes,
    /// Once per window, when it closes (`EMIT FINAL`; Kafka Streams' `suppress(untilWindowCloses)`).
    Final,
}

/// Where a query reads: event types, and the topic that carries them when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The stream's name in SQL (`order_confirmed`).
    pub stream: String,
    /// The event types read (`OrderConfirmed`); records of other types are skipped. With
    /// `by_name`, the names of the types as written instead.
    pub types: Vec<String>,
    /// Set when the catalog did not know the event types (an open catalog): a record is read
    /// when its type is named by one of `types`, the type itself or its snake case, matched as
    /// this says (`order_confirmed` reads `OrderConfirmed`).
    pub by_name: Option<NameCase>,
    /// The event enum and topic, when the catalog knows them. A plan without one runs on
    /// input handed to it (the CLI) but cannot be registered in an app.
    pub subscription: Option<Subscription>,
}

/// A payload field a plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The field's name.
    pub name: String,
    /// How it matches the names of the payload's fields: [`NameCase::Any`] for a name written
    /// without backticks that no catalog resolved (the CLI's open catalog).
    pub case: NameCase,
    /// Its SQL type when the event's schema tells it: a value of another type is refused, as
    /// the event's other readers refuse it.
    pub sql_type: Option<SqlType>,
}

/// One aggregate of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    /// The function.
    pub function: Function,
    /// Its argument over the input row (`None` for `COUNT(*)`).
    pub argument: Option<Expr>,
}

/// A named output column or group column.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// The name.
    pub name: String,
    /// The expression.
    pub expr: Expr,
}

/// Where a query's rows go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sink {
    /// The topic, when it is not the query's name (SQL's `WITH (KAFKA_TOPIC = '...')`).
    pub topic: Option<String>,
    /// Its partitions, when not the app's (`WITH (PARTITIONS = n)`).
    pub partitions: Option<u32>,
}

/// A stream query, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The query's name: its sink topic unless [`Sink::topic`] names another, and the prefix of
    /// its internal topics and consumer groups.
    pub name: String,
    /// Where its rows go.
    pub sink: Sink,
    /// Stream or table.
    pub output: OutputKind,
    /// What it reads.
    pub source: Source,
    /// The payload fields it reads, in the order [`Expr::Column`] indexes them.
    pub columns: Vec<Column>,
    /// WHERE, over the input row.
    pub filter: Option<Expr>,
    /// GROUP BY, over the input row; their values make the key.
    pub group_by: Vec<Named>,
    /// PARTITION BY, over the input row, for a [stateless](Plan::is_stateless) query: their
    /// values make each row's key instead of its record's ([`Plan::partition_key`]).
    pub partition_by: Vec<Expr>,
    /// The windows ([`Windowing::global`] for an aggregation without `WINDOW`).
    pub windowing: Windowing,
    /// The aggregates, over the input row.
    pub aggregates: Vec<AggregateCall>,
    /// The output columns, over the group, the aggregates and the window.
    pub select: Vec<Named>,
    /// HAVING, over the same.
    pub having: Option<Expr>,
    /// When rows come out.
    pub emit: Emit,
}

/// A record after WHERE and re-keying: what travels on the repartition topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    /// Its event time.
    pub time: i64,
    /// The GROUP BY values.
    pub group: Vec<Value>,
    /// The aggregates' arguments (NULL for `COUNT(*)`).
    pub args: Vec<Value>,
}

/// Separates the values of a composite group key, as ksqlDB does.
pub const KEY_SEPARATOR: &str = "|+|";

impl Keyed {
    /// The group key as record-key text, borrowed when it is one text value (the common case,
    /// without an allocation per record).
    pub fn key_text(&self) -> std::borrow::Cow<'_, str> {
        match self.group.as_slice() {
            [Value::Text(text)] => std::borrow::Cow::Borrowed(text),
            _ => std::borrow::Cow::Owned(self.key()),
        }
    }

    /// The group key as record-key text.
    pub fn key(&self) -> String {
        let mut key = String::new();
        write_key(&self.group, &mut key);
        key
    }
}

/// Writes GROUP BY values as record-key text: one value's text as it is; several with
/// [`KEY_SEPARATOR`] between, each value's own `|` and `\` escaped with a `\`, so that two
/// groups never share a key (`a|+|b`, `c` and `a`, `b|+|c` would), as the key names the group's
/// state.
pub fn write_key(group: &[Value], out: &mut String) {
    if let [value] = group {
        return value.write_key(out);
    }
    for (i, value) in group.iter().enumerate() {
        if i > 0 {
            out.push_str(KEY_SEPARATOR);
        }
        let start = out.len();
        value.write_key(out);
        if out[start..].contains(['|', '\\']) {
            let text = out.split_off(start);
            for c in text.chars() {
                if matches!(c, '|' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
}

impl Plan {
    /// The topic its rows go to: [`Sink::topic`], or else its name.
    pub fn sink_topic(&self) -> &str {
        self.sink.topic.as_deref().unwrap_or(&self.name)
    }

    /// The plan, with its rows going to `topic` instead of the topic named as the query.
    pub fn with_sink_topic(mut self, topic: impl Into<String>) -> Self {
        self.sink.topic = Some(topic.into());
        self
    }

    /// The plan, with a sink topic of `partitions` partitions instead of the app's count.
    pub fn with_sink_partitions(mut self, partitions: u32) -> Self {
        self.sink.partitions = Some(partitions);
        self
    }

    /// What the query's stored windows depend on: the aggregates and their arguments, the
    /// windows' shape and the GROUP BY expressions
    /// (``count(*),sum(`total`)|TUMBLING 600000|`customer_id` ``). A changelog written by a query
    /// of another shape cannot be restored into this one: its accumulators are of other
    /// functions or other values, its windows of another size, its keys of other columns.
    pub fn state_shape(&self) -> String {
        use super::window::WindowKind;
        use std::fmt::Write;
        let mut shape = String::new();
        for (i, call) in self.aggregates.iter().enumerate() {
            let separator = if i > 0 { "," } else { "" };
            let _ = write!(shape, "{separator}{}(", call.function.name());
            match &call.argument {
                Some(argument) => argument.write_sql(&self.columns, &mut shape),
                None => shape.push('*'),
            }
            shape.push(')');
        }
        let _ = match self.windowing.kind {
            WindowKind::Tumbling { size } => write!(shape, "|TUMBLING {}", size.as_millis()),
            WindowKind::Hopping { size, advance } => {
                write!(shape, "|HOPPING {} {}", size.as_millis(), advance.as_millis())
            }
            WindowKind::Session { gap } => write!(shape, "|SESSION {}", gap.as_millis()),
            WindowKind::Global => write!(shape, "|GLOBAL"),
        };
        for (i, named) in self.group_by.iter().enumerate() {
            shape.push(if i > 0 { ',' } else { '|' });
            named.expr.write_sql(&self.columns, &mut shape);
        }
        shape
    }

    /// Whether records of this event type feed the query.
    pub fn reads_type(&self, type_name: &[u8]) -> bool {
        match self.source.by_name {
            None => self.source.types.iter().any(|t| t.as_bytes() == type_name),
            Some(case) => std::str::from_utf8(type_name)
                .is_ok_and(|type_name| self.source.types.iter().any(|name| names_type(name, type_name, case))),
        }
    }

    /// WHERE and re-keying of one record of a read type: `None` when WHERE filters it out or
    /// a group value is NULL (no group for it, as in ksqlDB). `columns` is scratch space.
    pub fn rekey(&self, time: i64, payload: &[u8], columns: &mut Vec<Value>) -> serde_json::Result<Option<Keyed>> {
        let (mut group, mut args) = (Vec::with_capacity(self.group_by.len()), Vec::new());
        Ok(self
            .rekey_into(time, payload, columns, &mut group, &mut args)?
            .then_some(Keyed { time, group, args }))
    }

    /// [`Plan::rekey`] into buffers the caller reuses: `false` when WHERE filters the record
    /// out or a group value is NULL; otherwise `group` and `args` hold the [`Keyed`] values.
    pub fn rekey_into(
        &self,
        time: i64,
        payload: &[u8],
        columns: &mut Vec<Value>,
        group: &mut Vec<Value>,
        args: &mut Vec<Value>,
    ) -> serde_json::Result<bool> {
        group.clear();
        args.clear();
        if !self.read_and_filter(time, payload, columns)? {
            return Ok(false);
        }
        let scope = Scope { columns, row_time: time, ..Scope::default() };
        for named in &self.group_by {
            match named.expr.eval(&scope) {
                Value::Null => return Ok(false),
                value => group.push(value),
            }
        }
        args.extend(
            self.aggregates
                .iter()
                .map(|call| call.argument.as_ref().map_or(Value::Null, |arg| arg.eval(&scope))),
        );
        Ok(true)
    }

    /// Whether the query selects from each record, without GROUP BY and WINDOW: a record that
    /// passes WHERE is a row ([`Plan::select_into`]), and nothing is kept between records.
    pub fn is_stateless(&self) -> bool {
        self.group_by.is_empty() && self.aggregates.is_empty() && !self.windowing.is_windowed()
    }

    /// What the front ends make sure of, for a plan built by hand: a query with aggregates or
    /// windows groups by at least one key, and a stateless one selects input columns of each
    /// record, without HAVING, EMIT FINAL or a TABLE.
    pub fn check(&self) -> Result<(), &'static str> {
        let exprs = (self.filter.iter().chain(self.having.iter()))
            .chain(self.group_by.iter().chain(&self.select).map(|named| &named.expr))
            .chain(self.aggregates.iter().filter_map(|call| call.argument.as_ref()))
            .chain(&self.partition_by);
        if !exprs.into_iter().all(Expr::arities_fit) {
            return Err("a scalar function is called with a number of arguments it does not take");
        }
        // Windowing's fields are public: windows its constructors refuse (one of no size would
        // divide by zero) can be written by hand.
        if let Err(error) = self.windowing.checked() {
            return Err(match error {
                WindowError::Empty(_) => "a window's size, advance or gap is at least one millisecond",
                WindowError::TooLarge(_) => "a window's size, advance, gap and grace are at most i64::MAX milliseconds",
                WindowError::AdvanceExceedsSize { .. } => "a hopping window advances by at most its size",
                WindowError::TooManyWindows { .. } => "a hopping window puts a record in at most 10,000 windows",
            });
        }
        const _: () = assert!(MAX_WINDOWS_PER_RECORD == 10_000, "the message above says 10,000");
        if self.group_by.is_empty() && (!self.aggregates.is_empty() || self.windowing.is_windowed()) {
            return Err("an aggregation groups by at least one key (GROUP BY)");
        }
        if !self.is_stateless() {
            return match self.partition_by.is_empty() {
                true => Ok(()),
                false => Err("PARTITION BY re-keys a query without GROUP BY; an aggregation is keyed by its GROUP BY"),
            };
        }
        if !self.partition_by.iter().all(Expr::reads_input_only) {
            return Err("PARTITION BY reads its record only");
        }
        if self.output == OutputKind::Table {
            return Err("a TABLE aggregates per key: a query without GROUP BY is a STREAM");
        }
        if self.having.is_some() || self.emit == Emit::Final {
            return Err("HAVING and EMIT FINAL need a GROUP BY");
        }
        if self.select.is_empty() || !self.select.iter().all(|named| named.expr.reads_input_only()) {
            return Err("a query without GROUP BY selects at least one column, each over its record");
        }
        Ok(())
    }

    /// The row of one record of a read type for a [stateless](Plan::is_stateless) query, in
    /// `values` (SELECT over the record): `false` when WHERE filters it out.
    pub fn select_into(
        &self,
        time: i64,
        payload: &[u8],
        columns: &mut Vec<Value>,
        values: &mut Vec<Value>,
    ) -> serde_json::Result<bool> {
        values.clear();
        if !self.read_and_filter(time, payload, columns)? {
            return Ok(false);
        }
        let scope = Scope { columns, row_time: time, ..Scope::default() };
        values.extend(self.select.iter().map(|named| named.expr.eval(&scope)));
        Ok(true)
    }

    /// The key of a [stateless](Plan::is_stateless) query's row from PARTITION BY, over the
    /// record's `columns` as [`Plan::select_into`] left them, written into `key` as GROUP BY
    /// values are ([`write_key`]): `false` when a value is NULL, and the row has no key (as in
    /// ksqlDB). Without PARTITION BY a row keeps its record's key.
    pub fn partition_key(&self, time: i64, columns: &[Value], key: &mut String) -> bool {
        let scope = Scope { columns, row_time: time, ..Scope::default() };
        key.clear();
        // One value (the common case): its text, without a vector per row.
        if let [expr] = self.partition_by.as_slice() {
            let value = expr.eval(&scope);
            if value.is_null() {
                return false;
            }
            value.write_key(key);
            return true;
        }
        let values: Vec<Value> = self.partition_by.iter().map(|expr| expr.eval(&scope)).collect();
        if values.iter().any(Value::is_null) {
            return false;
        }
        write_key(&values, key);
        true
    }

    /// Reads the plan's columns of a payload into `columns`, checks their types and applies
    /// WHERE: `false` when it filters the record out.
    fn read_and_filter(&self, time: i64, payload: &[u8], columns: &mut Vec<Value>) -> serde_json::Result<bool> {
        read_columns(payload, &self.columns, columns)?;
        for (value, column) in columns.iter().zip(&self.columns) {
            if let Some(expected) = column.sql_type
                && !value.fits(expected)
            {
                // The value itself is not quoted: it may be personal data.
                return Err(serde::de::Error::custom(format_args!(
                    "field `{}` holds a {}, not a {}",
                    column.name,
                    value.type_name(),
                    expected.name()
                )));
            }
        }
        let scope = Scope { columns, row_time: time, ..Scope::default() };
        Ok(self.filter.as_ref().is_none_or(|filter| filter.holds(&scope)))
    }

    /// The output row, to serialise as a JSON object with its columns in SELECT order.
    pub fn row_json<'a>(&'a self, values: &'a [Value]) -> RowJson<'a> {
        RowJson { select: &self.select, values }
    }
}

/// An output row that serialises as a JSON object, columns in SELECT order ([`Plan::row_json`]);
/// a `serde_json::Map` would sort them.
#[derive(Debug, Clone, Copy)]
pub struct RowJson<'a> {
    select: &'a [Named],
    values: &'a [Value],
}

impl Serialize for RowJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut row = serializer.serialize_map(Some(self.select.len()))?;
        for (named, value) in self.select.iter().zip(self.values) {
            row.serialize_entry(&named.name, value)?;
        }
        row.end()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn composite_keys_of_different_groups_differ() {
        let key = |group: &[&str]| {
            let mut key = String::new();
            write_key(&group.iter().map(|t| Value::Text((*t).into())).collect::<Vec<_>>(), &mut key);
            key
        };
        assert_eq!(key(&["a|b"]), "a|b", "one value is its own text");
        assert_eq!(key(&["a", "b"]), "a|+|b", "ksqlDB's separator");
        assert_ne!(key(&["x|+|y", "z"]), key(&["x", "y|+|z"]));
        assert_ne!(key(&["x\\", "y"]), key(&["x\\|+|y"]));
        assert_eq!(key(&["x|+|y", "z\\"]), "x\\|+\\|y|+|z\\\\");
    }

    use super::*;
    use crate::stream::{Catalog, sql};

    #[test]
    fn a_row_keeps_the_select_order() {
        let plan = sql::plan(
            "CREATE STREAM s AS SELECT k, COUNT(*) AS n, WINDOWSTART AS ws, WINDOWEND AS we, 1.5 AS a FROM e
             WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY k",
            &Catalog::open(),
        )
        .unwrap();
        let values = [Value::from("x"), Value::Int(2), Value::Int(0), Value::Int(1000), Value::Float(1.5)];
        let json = serde_json::to_string(&plan.row_json(&values)).unwrap();
        assert_eq!(json, r#"{"k":"x","n":2,"ws":0,"we":1000,"a":1.5}"#);
    }

    #[test]
    fn an_open_source_reads_the_types_its_name_names_in_any_case_unless_quoted() {
        let plan = |from: &str| {
            let sql =
                format!("CREATE STREAM s AS SELECT k, COUNT(*) FROM {from} WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY k");
            sql::plan(&sql, &Catalog::open()).unwrap()
        };
        for from in ["OrderConfirmed", "order_confirmed", "ORDER_CONFIRMED", "`OrderConfirmed`"] {
            assert!(plan(from).reads_type(b"OrderConfirmed"), "{from}");
            assert!(!plan(from).reads_type(b"OrderPlaced"), "{from}");
        }
        assert!(!plan("`orderconfirmed`").reads_type(b"OrderConfirmed"));
        assert!(plan("`com.example.Ordered`").reads_type(b"com.example.Ordered"));
        assert!(plan("E").reads_type(b"e"));
    }
}
