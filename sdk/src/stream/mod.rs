//! Stream queries: continuous aggregations over event streams, per key and window (or per key
//! over all time, without `WINDOW`), that produce a new stream (DESIGN.md, "Stream queries");
//! without `GROUP BY` either, a query selects columns of each record that passes `WHERE`.
//!
//! Two front ends compile to one [`Plan`]: SQL in the ksqlDB grammar subset ([`sql::plan`]) and
//! a typed Rust DSL with Kafka Streams' names ([`Query`]). A plan runs in an [`App`](crate::App)
//! with [`App::query`](crate::App::query): a first processor filters the source topic and
//! re-keys each record by its GROUP BY key onto `<query>-repartition`; a second aggregates per
//! key and window and writes the rows to the sink topic `<query>`, its state to the compacted
//! `<query>-changelog`, and its input positions, in one atomic write. [`PartitionState`] is
//! that aggregate, pure, for tests and for the `tramline` CLI. A query without GROUP BY has
//! only the first processor, which writes each record's row to the sink.
//!
//! ```
//! use tramline::stream::{Catalog, sql};
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//! # #[derive(tramline::ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
//! #[derive(tramline::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
//! #[event(module = "order", key = order_id)]
//! pub enum OrderEvent { Confirmed { order_id: OrderId, customer_id: String } }
//!
//! let catalog = Catalog::new().with::<OrderEvent>();
//! let plan = sql::plan(
//!     "CREATE STREAM suspicious_sales AS
//!      SELECT customer_id, count(*)
//!      FROM order_confirmed
//!      WINDOW TUMBLING (SIZE 10 MINUTE)
//!      GROUP BY customer_id
//!      HAVING count(*) > 4",
//!     &catalog,
//! )
//! .unwrap();
//! assert_eq!(plan.source.types, ["OrderConfirmed"]);
//!
//! let misspelt = "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed
//! WINDOW TUMBLING (SIZE 1 MINUTE) GRUOP BY customer_id";
//! assert_eq!(
//!     sql::plan(misspelt, &catalog).unwrap_err().to_string(),
//!     "line 2, column 33: expected `WHERE`, `GROUP BY`, `HAVING`, `EMIT`, `;` or the end of the query, found `GRUOP`"
//! );
//! ```

mod aggregate;
mod catalog;
mod dsl;
mod expr;
mod plan;
mod scalar;
pub mod sql;
mod state;
mod value;
mod window;
pub(crate) mod wire;

pub use crate::runtime::{Columns, QueryHandle, QueryRow, changelog_topic, query_headers, repartition_topic};
pub use aggregate::{Accumulator, Function};
pub use catalog::{Catalog, Field, NameCase, StreamInfo, names_type, pascal_case, snake_case};
pub use dsl::{
    Agg, DslError, GroupedStream, Query, SelectedStream, SessionWindows, StreamBuilder, TimeWindows, WindowedStream,
    WindowedTable, call, case, col, lit,
};
pub use expr::build::Operand;
pub use expr::{BinaryOp, Expr, Scope};
pub use plan::{
    AggregateCall, Column, Emit, KEY_SEPARATOR, Keyed, Named, OutputKind, Plan, RowJson, Sink, Source, write_key,
};
pub use scalar::Scalar;
pub use state::{Change, ChangeRef, Emitted, PartitionState, StoredWindow};
pub use value::{SqlType, Value};
pub use window::{
    DEFAULT_GRACE, MAX_WINDOWS_PER_RECORD, SessionMerge, Window, WindowError, WindowKind, Windowing, merge_session,
};
