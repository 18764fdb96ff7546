//! The typed Rust DSL, with Kafka Streams' names, compiling into the same [`Plan`] as SQL.
//!
//! ```
//! use std::time::Duration;
//! use tramline::stream::{Agg, Query, TimeWindows, col};
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//! # #[derive(tramline::ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
//! #[derive(tramline::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
//! #[event(module = "order", key = order_id)]
//! pub enum OrderEvent { Confirmed { order_id: OrderId, customer_id: String, quantity: u32 } }
//!
//! let plan = Query::stream::<OrderEvent>(&["OrderConfirmed"])
//!     .filter(col("quantity").gt(0))
//!     .group_by(["customer_id"])
//!     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(600), Duration::from_secs(60)))
//!     .aggregate([Agg::count().named("orders"), Agg::sum("quantity").named("tickets")])
//!     .filter(col("orders").gt(4))
//!     .to_stream("suspicious_sales")
//!     .unwrap();
//! assert_eq!(plan.select.len(), 3);
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use schemars::JsonSchema;

use super::aggregate::Function;
use super::catalog::{Catalog, Field, NameCase, StreamInfo};
use super::expr::Expr;
use super::expr::build::Operand;
use super::plan::{AggregateCall, Column, Emit, Named, OutputKind, Plan, Sink, Source};
use super::window::{WindowError, WindowKind, Windowing};
use crate::model::Event;

pub use super::expr::build::{call, case, col, lit};

/// Why a DSL query cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    /// An event type the enum does not have.
    #[error("`{enum_name}` has no event type `{found}`; its types: {known}")]
    UnknownType {
        /// The event enum.
        enum_name: &'static str,
        /// The type asked for.
        found: String,
        /// Its types.
        known: String,
    },
    /// A column the event types do not have.
    #[error("{clause}: no column `{column}`; the columns here: {known}")]
    UnknownColumn {
        /// Where it was used.
        clause: &'static str,
        /// The name.
        column: String,
        /// The names that exist there.
        known: String,
    },
    /// Windows that cannot be made.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// Two output columns with one name.
    #[error("the output column `{0}` is named twice; rename one with `named`")]
    DuplicateName(String),
    /// A plan that no query can run: no column to group by or to select.
    #[error("{0}")]
    Invalid(&'static str),
    /// A step that needs windows, on an aggregation without them.
    #[error("`{0}` needs windows (`windowed_by`): an aggregation without them has no window bounds and never closes")]
    NeedsWindows(&'static str),
}

/// The entry point of the DSL.
#[derive(Debug, Clone, Copy)]
pub struct Query;

impl Query {
    /// The stream of these event types of `E` (`&["OrderConfirmed"]`); columns are checked
    /// against the fields of those types.
    pub fn stream<E: Event + JsonSchema>(types: &[&str]) -> StreamBuilder<E> {
        let catalog = Catalog::new().with::<E>();
        let mut infos = Vec::new();
        let mut error = None;
        for name in types {
            match catalog.of_type(name) {
                Some(info) => infos.push(info.clone()),
                None => {
                    error.get_or_insert(DslError::UnknownType {
                        enum_name: E::NAME,
                        found: (*name).to_owned(),
                        known: E::TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
        StreamBuilder { infos, error, filter: None, _event: PhantomData }
    }
}

/// A stream of events, maybe filtered.
#[derive(Debug)]
pub struct StreamBuilder<E> {
    infos: Vec<StreamInfo>,
    error: Option<DslError>,
    filter: Option<Operand>,
    _event: PhantomData<fn() -> E>,
}

impl<E> StreamBuilder<E> {
    /// Keeps the records for which `condition` holds (SQL's WHERE); filters combine with AND.
    pub fn filter(mut self, condition: Operand) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(previous) => previous.and(condition),
            None => condition,
        });
        self
    }

    /// Re-keys by these columns (through a repartition topic when run in an app).
    pub fn group_by<'a>(self, columns: impl IntoIterator<Item = &'a str>) -> GroupedStream<E> {
        GroupedStream { stream: self, group_by: columns.into_iter().map(str::to_owned).collect() }
    }

    /// Selects these columns of each record the filters keep, as a row under the record's
    /// key, without grouping (SQL's SELECT without GROUP BY and WINDOW; Kafka Streams'
    /// `filter` and `mapValues`).
    pub fn select<'a>(self, columns: impl IntoIterator<Item = &'a str>) -> SelectedStream<E> {
        let columns = columns.into_iter().map(|name| (name.to_owned(), col(name))).collect();
        SelectedStream { stream: self, columns, key: Vec::new() }
    }
}

/// Columns of each record of a stream: a stateless query ([`Plan::is_stateless`]).
#[derive(Debug)]
pub struct SelectedStream<E> {
    stream: StreamBuilder<E>,
    /// The output columns: names and what they compute.
    columns: Vec<(String, Operand)>,
    key: Vec<String>,
}

impl<E> SelectedStream<E> {
    /// Adds an output column `name` that computes `value` from the record (SQL's `value AS
    /// name`; Kafka Streams' `mapValues`): `.with_column("large", col("total").gt(500))`.
    pub fn with_column(mut self, name: &str, value: Operand) -> Self {
        self.columns.push((name.to_owned(), value));
        self
    }

    /// Keys each row by these columns of its record instead of the record's key (Kafka
    /// Streams' `selectKey`; SQL's PARTITION BY): rows of one value go to one partition.
    pub fn select_key<'a>(mut self, columns: impl IntoIterator<Item = &'a str>) -> Self {
        self.key = columns.into_iter().map(str::to_owned).collect();
        self
    }

    /// The stream of rows, on the sink topic `name` (SQL's CREATE STREAM).
    pub fn to_stream(self, name: &str) -> Result<Plan, DslError> {
        let SelectedStream { stream, columns, key } = self;
        if let Some(error) = stream.error {
            return Err(error);
        }
        let mut inputs = Inputs::of(&stream.infos);
        let known_names = inputs.names();
        let filter = (stream.filter.map(|f| f.resolve(&mut |name: &str| inputs.input(name))).transpose())
            .map_err(|c| unknown("filter", c, &known_names))?;
        let mut select: Vec<Named> = Vec::new();
        for (name, value) in columns {
            // As SQL's: names that differ in case only are one name.
            if select.iter().any(|named| named.name.eq_ignore_ascii_case(&name)) {
                return Err(DslError::DuplicateName(name));
            }
            let expr = value
                .resolve(&mut |column: &str| inputs.input(column))
                .map_err(|c| unknown("select", c, &known_names))?;
            select.push(Named { name, expr });
        }
        let partition_by = key
            .into_iter()
            .map(|column| inputs.input(&column).ok_or_else(|| unknown("select_key", column, &known_names)))
            .collect::<Result<_, _>>()?;
        let plan = Plan {
            name: name.to_owned(),
            sink: Sink::default(),
            output: OutputKind::Stream,
            source: source(&stream.infos),
            columns: inputs.columns,
            filter,
            group_by: Vec::new(),
            partition_by,
            windowing: Windowing::global(),
            aggregates: Vec::new(),
            select,
            having: None,
            emit: Emit::Changes,
        };
        plan.check().map_err(DslError::Invalid)?;
        Ok(plan)
    }
}

/// A stream grouped by key.
#[derive(Debug)]
pub struct GroupedStream<E> {
    stream: StreamBuilder<E>,
    group_by: Vec<String>,
}

impl<E> GroupedStream<E> {
    /// Windows the groups.
    pub fn windowed_by(self, windows: impl Into<Windowing>) -> WindowedStream<E> {
        WindowedStream { grouped: self, windowing: windows.into() }
    }

    /// Counts the records per key over all time, without windows, in a column named `count`
    /// (Kafka Streams' `KGroupedStream::count`; SQL's GROUP BY without WINDOW).
    pub fn count(self) -> WindowedTable<E> {
        self.aggregate([Agg::count()])
    }

    /// Computes these aggregates per key over all time, without windows: one row per key,
    /// updated by every record (its window is [`Window::ALL`](super::Window::ALL)).
    pub fn aggregate(self, aggregates: impl IntoIterator<Item = Agg>) -> WindowedTable<E> {
        self.windowed_by(Windowing::global()).aggregate(aggregates)
    }
}

/// Tumbling and hopping windows, as Kafka Streams' `TimeWindows`: the grace is explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size: Duration,
    advance: Duration,
    grace: Duration,
}

impl TimeWindows {
    /// Tumbling windows of `size`; late records are taken until `grace` after a window's end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows { size, advance: size, grace }
    }

    /// Hopping windows: a new window every `advance`.
    pub fn advance_by(self, advance: Duration) -> Self {
        TimeWindows { advance, ..self }
    }
}

impl From<TimeWindows> for Windowing {
    fn from(w: TimeWindows) -> Self {
        let kind = match w.advance == w.size {
            true => WindowKind::Tumbling { size: w.size },
            false => WindowKind::Hopping { size: w.size, advance: w.advance },
        };
        Windowing { kind, grace: w.grace }
    }
}

/// Session windows, as Kafka Streams' `SessionWindows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap: Duration,
    grace: Duration,
}

impl SessionWindows {
    /// Sessions closed by `gap` without records, taking late records until `grace` after that.
    pub fn with_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows { gap, grace }
    }
}

impl From<SessionWindows> for Windowing {
    fn from(w: SessionWindows) -> Self {
        Windowing { kind: WindowKind::Session { gap: w.gap }, grace: w.grace }
    }
}

/// An aggregate for [`WindowedStream::aggregate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    function: Function,
    column: Option<String>,
    name: String,
}

impl Agg {
    fn of(function: Function, column: &str) -> Self {
        Agg { function, column: Some(column.to_owned()), name: format!("{}_{column}", function.name()) }
    }
    /// `COUNT(*)`, named `count` unless renamed.
    pub fn count() -> Self {
        Agg { function: Function::CountAll, column: None, name: "count".into() }
    }
    /// `COUNT(column)`.
    pub fn count_of(column: &str) -> Self {
        Agg::of(Function::Count, column)
    }
    /// `SUM(column)`.
    pub fn sum(column: &str) -> Self {
        Agg::of(Function::Sum, column)
    }
    /// `MIN(column)`.
    pub fn min(column: &str) -> Self {
        Agg::of(Function::Min, column)
    }
    /// `MAX(column)`.
    pub fn max(column: &str) -> Self {
        Agg::of(Function::Max, column)
    }
    /// `AVG(column)`.
    pub fn avg(column: &str) -> Self {
        Agg::of(Function::Avg, column)
    }
    /// The output column's name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }
}

/// A windowed, grouped stream.
#[derive(Debug)]
pub struct WindowedStream<E> {
    grouped: GroupedStream<E>,
    windowing: Windowing,
}

impl<E> WindowedStream<E> {
    /// Counts the records per key and window, in a column named `count`.
    pub fn count(self) -> WindowedTable<E> {
        self.aggregate([Agg::count()])
    }

    /// Computes these aggregates per key and window.
    pub fn aggregate(self, aggregates: impl IntoIterator<Item = Agg>) -> WindowedTable<E> {
        WindowedTable {
            windowed: self,
            aggregates: aggregates.into_iter().collect(),
            having: None,
            emit: Emit::Changes,
            window_bounds: false,
        }
    }
}

/// The aggregates per key and window (or per key, without windows): filter it (HAVING),
/// suppress it to final rows, and send it to a sink.
#[derive(Debug)]
pub struct WindowedTable<E> {
    windowed: WindowedStream<E>,
    aggregates: Vec<Agg>,
    having: Option<Operand>,
    emit: Emit,
    window_bounds: bool,
}

impl<E> WindowedTable<E> {
    /// Keeps the rows for which `condition` holds (SQL's HAVING), over the output columns.
    pub fn filter(mut self, condition: Operand) -> Self {
        self.having = Some(match self.having.take() {
            Some(previous) => previous.and(condition),
            None => condition,
        });
        self
    }

    /// One row per window, when it closes (SQL's EMIT FINAL). Needs windows.
    pub fn suppress_until_window_closes(mut self) -> Self {
        self.emit = Emit::Final;
        self
    }

    /// Adds the columns `WINDOWSTART` and `WINDOWEND` to the output. Needs windows.
    pub fn with_window_bounds(mut self) -> Self {
        self.window_bounds = true;
        self
    }

    /// The stream of rows, on the sink topic `name` (SQL's CREATE STREAM).
    pub fn to_stream(self, name: &str) -> Result<Plan, DslError> {
        self.build(name, OutputKind::Stream)
    }

    /// The table of rows per key and window, on the sink topic `name` (SQL's CREATE TABLE).
    pub fn to_table(self, name: &str) -> Result<Plan, DslError> {
        self.build(name, OutputKind::Table)
    }

    fn build(self, name: &str, output: OutputKind) -> Result<Plan, DslError> {
        let WindowedTable { windowed, aggregates, having, emit, window_bounds } = self;
        let WindowedStream { grouped, windowing } = windowed;
        let GroupedStream { stream, group_by } = grouped;
        if let Some(error) = stream.error {
            return Err(error);
        }
        let windowing = match windowing.kind {
            WindowKind::Tumbling { size } => Windowing::tumbling(size, windowing.grace),
            WindowKind::Hopping { size, advance } => Windowing::hopping(size, advance, windowing.grace),
            WindowKind::Session { gap } => Windowing::session(gap, windowing.grace),
            WindowKind::Global => Ok(Windowing::global()),
        }?;
        if !windowing.is_windowed() {
            if emit == Emit::Final {
                return Err(DslError::NeedsWindows("suppress_until_window_closes"));
            }
            if window_bounds {
                return Err(DslError::NeedsWindows("with_window_bounds"));
            }
        }
        let mut inputs = Inputs::of(&stream.infos);
        let known_names = inputs.names();
        let mut input = |name: &str| inputs.input(name);
        let filter = stream
            .filter
            .map(|f| f.resolve(&mut input))
            .transpose()
            .map_err(|c| unknown("filter", c, &known_names))?;
        let mut groups = Vec::new();
        for column in &group_by {
            let expr = input(column).ok_or_else(|| unknown("group_by", column.clone(), &known_names))?;
            groups.push(Named { name: column.clone(), expr });
        }
        let mut calls = Vec::new();
        let mut select: Vec<Named> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| Named { name: g.name.clone(), expr: Expr::Group(i) })
            .collect();
        for agg in &aggregates {
            let argument = match &agg.column {
                Some(column) => Some(input(column).ok_or_else(|| unknown("aggregate", column.clone(), &known_names))?),
                None => None,
            };
            let call = AggregateCall { function: agg.function, argument };
            let slot = calls.iter().position(|c| *c == call).unwrap_or_else(|| {
                calls.push(call);
                calls.len() - 1
            });
            select.push(Named { name: agg.name.clone(), expr: Expr::Aggregate(slot) });
        }
        if window_bounds {
            select.push(Named { name: "WINDOWSTART".into(), expr: Expr::WindowStart });
            select.push(Named { name: "WINDOWEND".into(), expr: Expr::WindowEnd });
        }
        for (i, named) in select.iter().enumerate() {
            if select[..i].iter().any(|n| n.name == named.name) {
                return Err(DslError::DuplicateName(named.name.clone()));
            }
        }
        let output_names: Vec<String> = select.iter().map(|n| n.name.clone()).collect();
        let having = having
            .map(|h| h.resolve(&mut |name: &str| select.iter().find(|n| n.name == name).map(|n| n.expr.clone())))
            .transpose()
            .map_err(|c| unknown("filter after aggregate", c, &output_names))?;
        let plan = Plan {
            name: name.to_owned(),
            sink: Sink::default(),
            output,
            source: source(&stream.infos),
            columns: inputs.columns,
            filter,
            group_by: groups,
            partition_by: Vec::new(),
            windowing,
            aggregates: calls,
            select,
            having,
            emit,
        };
        plan.check().map_err(DslError::Invalid)?;
        Ok(plan)
    }
}

/// The columns a DSL query reads, checked against the fields of the event types it reads.
struct Inputs {
    /// The fields of every type read; a field whose types disagree has no type to check.
    known: Option<Vec<Field>>,
    /// The columns read so far, in the order [`Expr::Column`] indexes them.
    columns: Vec<Column>,
}

impl Inputs {
    fn of(infos: &[StreamInfo]) -> Self {
        let known = infos.iter().try_fold(Vec::new(), |mut all: Vec<Field>, info| {
            for field in info.columns.as_ref()? {
                match all.iter_mut().find(|known| known.name == field.name) {
                    Some(known) if known.sql_type != field.sql_type => known.sql_type = None,
                    Some(_) => {}
                    None => all.push(field.clone()),
                }
            }
            Some(all)
        });
        Inputs { known, columns: Vec::new() }
    }

    /// The expression reading the column `name`: `None` if the types read have no such field.
    fn input(&mut self, name: &str) -> Option<Expr> {
        if name.eq_ignore_ascii_case("ROWTIME") {
            return Some(Expr::RowTime);
        }
        let sql_type = match &self.known {
            Some(known) => known.iter().find(|field| field.name == name)?.sql_type,
            None => None,
        };
        Some(Expr::Column(match self.columns.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.columns.push(Column { name: name.to_owned(), case: NameCase::Exact, sql_type });
                self.columns.len() - 1
            }
        }))
    }

    /// The names of the columns there are, for an error.
    fn names(&self) -> Vec<String> {
        self.known.iter().flatten().map(|field| field.name.clone()).chain(["ROWTIME".to_owned()]).collect()
    }
}

fn unknown(clause: &'static str, column: String, names: &[String]) -> DslError {
    DslError::UnknownColumn { clause, column, known: names.join(", ") }
}

fn source(infos: &[StreamInfo]) -> Source {
    let first = infos.first();
    Source {
        stream: first.map(|i| i.stream.clone()).unwrap_or_default(),
        types: infos.iter().map(|i| i.type_name.clone()).collect(),
        by_name: None,
        subscription: first.and_then(|i| i.subscription),
    }
}
