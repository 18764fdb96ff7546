//! The SQL front end: the reference query, the grammar's corners, and errors with positions.

use std::time::Duration;

use super::{SqlError, plan};
use crate::stream::{Agg, Catalog, Emit, Expr, OutputKind, Query, TimeWindows, Value, WindowKind, col};

mod order {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(crate::ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "ord")]
    pub struct OrderId(uuid::Uuid);

    #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
    #[event(module = "order", key = order_id)]
    pub enum OrderEvent {
        Placed { order_id: OrderId, customer_id: String, total: i64 },
        Confirmed { order_id: OrderId, customer_id: String, quantity: u32, total: i64 },
    }
}
use order::OrderEvent;

const REFERENCE: &str = "CREATE STREAM suspicious_sales AS
SELECT customer_id, count(*)
FROM order_confirmed
WINDOW TUMBLING (SIZE 10 MINUTE)
GROUP BY customer_id
HAVING count(*) > 4";

fn catalog() -> Catalog {
    Catalog::new().with::<OrderEvent>()
}

fn error(sql: &str) -> SqlError {
    plan(sql, &catalog()).expect_err("the query is refused")
}

#[test]
fn the_reference_query_plans_as_written() {
    let plan = plan(REFERENCE, &catalog()).unwrap();
    assert_eq!(plan.name, "suspicious_sales");
    assert_eq!(plan.output, OutputKind::Stream);
    assert_eq!(plan.source.types, ["OrderConfirmed"]);
    assert_eq!(plan.source.subscription.map(|s| s.topic), Some("order.events"));
    assert_eq!(plan.columns, ["customer_id"]);
    assert_eq!(plan.windowing.kind, WindowKind::Tumbling { size: Duration::from_secs(600) });
    assert_eq!(plan.windowing.grace, Duration::from_secs(24 * 3600), "ksqlDB's default grace");
    assert_eq!(plan.emit, Emit::Changes);
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "KSQL_COL_1"]);
    assert_eq!(plan.aggregates.len(), 1, "count(*) in SELECT and HAVING is one aggregate");
}

#[test]
fn the_dsl_compiles_to_the_same_plan_as_sql() {
    let sql = plan(
        "CREATE STREAM suspicious_sales AS SELECT customer_id, COUNT(*) AS orders FROM order_confirmed
         WINDOW TUMBLING (SIZE 10 MINUTES, GRACE PERIOD 1 HOUR) WHERE quantity >= 1
         GROUP BY customer_id HAVING COUNT(*) > 4 EMIT FINAL",
        &catalog(),
    )
    .unwrap();
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .filter(col("quantity").gt_eq(1))
        .group_by(["customer_id"])
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(600), Duration::from_secs(3600)))
        .aggregate([Agg::count().named("orders")])
        .filter(col("orders").gt(4))
        .suppress_until_window_closes()
        .to_stream("suspicious_sales")
        .unwrap();
    assert_eq!(dsl, sql);
}

#[test]
fn the_dsl_checks_types_and_columns_against_the_event() {
    let unknown_type = Query::stream::<OrderEvent>(&["OrderShipped"])
        .group_by(["customer_id"])
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::ZERO))
        .count()
        .to_stream("q")
        .unwrap_err();
    assert_eq!(
        unknown_type.to_string(),
        "`OrderEvent` has no event type `OrderShipped`; its types: OrderPlaced, OrderConfirmed"
    );
    let unknown_column = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .group_by(["custmer_id"])
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::ZERO))
        .count()
        .to_stream("q")
        .unwrap_err();
    assert!(unknown_column.to_string().starts_with("group_by: no column `custmer_id`"), "{unknown_column}");
}

#[test]
fn windows_units_aliases_and_clauses() {
    let plan = plan(
        "create table big_spenders as
         select o.customer_id as customer, sum(total) AS spent, avg(total), min(total), max(total), count(quantity),
                windowstart, windowend
         from order_confirmed o
         window hopping (size 1 hour, advance by 15 minutes, grace period 2 days)
         where o.total > 100 and not (quantity is null)
         group by o.customer_id
         having sum(total) >= 10000 or count(*) > 3
         emit final;",
        &catalog(),
    )
    .unwrap();
    assert_eq!(plan.output, OutputKind::Table);
    assert_eq!(
        plan.windowing.kind,
        WindowKind::Hopping { size: Duration::from_secs(3600), advance: Duration::from_secs(900) }
    );
    assert_eq!(plan.windowing.grace, Duration::from_secs(2 * 86400));
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["customer", "spent", "KSQL_COL_2", "KSQL_COL_3", "KSQL_COL_4", "KSQL_COL_5", "windowstart", "windowend"]
    );
    assert_eq!(plan.select[6].expr, Expr::WindowStart);
    assert_eq!(plan.emit, Emit::Final);
    // SUM, AVG, MIN, MAX, COUNT(col) and the COUNT(*) of HAVING.
    assert_eq!(plan.aggregates.len(), 6);

    let session = super::plan(
        "CREATE TABLE s AS SELECT customer_id, COUNT(*) FROM order_placed WINDOW SESSION (30 SECONDS) GROUP BY customer_id",
        &catalog(),
    )
    .unwrap();
    assert_eq!(session.windowing.kind, WindowKind::Session { gap: Duration::from_secs(30) });
}

#[test]
fn a_where_literal_compares_as_written() {
    let plan = plan(
        "CREATE STREAM q AS SELECT customer_id, COUNT(*) FROM order_confirmed WINDOW TUMBLING (SIZE 1 SECOND)
         WHERE customer_id = 'it''s' GROUP BY customer_id",
        &catalog(),
    )
    .unwrap();
    let Some(Expr::Binary(_, _, literal)) = &plan.filter else {
        panic!("a comparison: {:?}", plan.filter)
    };
    assert_eq!(**literal, Expr::Literal(Value::Text("it's".into())));
}

#[test]
fn parse_errors_name_line_column_and_what_was_expected() {
    let e = error("CREATE STREAM s AS\nSELECT customer_id, count(*)\nFORM order_confirmed");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("`FROM`") && e.message.ends_with("found `FORM`"), "{e}");

    let e = error("CREATE STREAM s AS SELECT customer_id FROM order_confirmed\nWINDOW TUMBLING (SIZE 10 FORTNIGHTS)");
    assert_eq!((e.line, e.column), (2, 26));
    assert!(e.message.starts_with("expected a time unit"), "{e}");

    let e = error("CREATE VIEW v AS SELECT 1 FROM order_confirmed");
    assert_eq!((e.line, e.column), (1, 8));
    assert_eq!(e.message, "expected `STREAM` or `TABLE`, found `VIEW`");

    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY customer_id HAVING",
    );
    assert!(e.message.starts_with("expected an expression"), "{e}");
    assert!(e.message.ends_with("found the end of the query"), "{e}");
}

#[test]
fn planning_errors_name_line_column_and_the_fix() {
    let e = error(REFERENCE.replace("FROM order_confirmed", "FROM order_confirmd").as_str());
    assert_eq!((e.line, e.column), (3, 6));
    assert!(
        e.message
            .starts_with("unknown stream `order_confirmd`; known streams: order_placed, order_confirmed"),
        "{e}"
    );

    let e = error(REFERENCE.replace("GROUP BY customer_id", "GROUP BY custmer_id").as_str());
    assert_eq!((e.line, e.column), (5, 10));
    assert!(e.message.starts_with("stream `order_confirmed` has no column `custmer_id`; its columns: "), "{e}");

    let e = error(REFERENCE.replace("SELECT customer_id,", "SELECT total,").as_str());
    assert_eq!((e.line, e.column), (2, 8));
    assert_eq!(e.message, "`total` is neither in GROUP BY nor inside an aggregate function");

    let e =
        error(&format!("{REFERENCE}\nEMIT CHANGES").replace("GROUP BY customer_id", "GROUP BY customer_id, count(*)"));
    assert_eq!((e.line, e.column), (5, 23));
    assert_eq!(e.message, "aggregate functions belong in SELECT or HAVING, not in GROUP BY");

    let e = error("CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed GROUP BY customer_id");
    assert_eq!((e.line, e.column), (1, 69));
    assert!(e.message.starts_with("expected WINDOW"), "{e}");

    let e = error(
        "CREATE STREAM s AS SELECT customer_id, median(total) FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY customer_id",
    );
    assert_eq!(e.message, "unknown function `median`; expected COUNT, SUM, MIN, MAX or AVG");

    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 2 MINUTES) GROUP BY customer_id",
    );
    assert!(e.message.contains("must not exceed its SIZE"), "{e}");
}

#[test]
fn an_error_renders_with_its_line_and_a_caret() {
    let sql = "CREATE STREAM s AS\nSELECT customer_id\nFORM x";
    let e = error(sql);
    assert_eq!(e.render(sql).lines().nth(2), Some("  | ^"));
}
