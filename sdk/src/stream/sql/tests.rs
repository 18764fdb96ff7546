//! The SQL front end: the reference query, the grammar's corners, and errors with positions.

use std::time::Duration;

use super::{SqlError, plan};
use crate::stream::{
    Agg, Catalog, DslError, Emit, Expr, NameCase, OutputKind, Query, Scalar, SqlType, TimeWindows, Value, WindowKind,
    Windowing, call, case, col, lit,
};

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
    let columns: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["customer_id"]);
    assert_eq!(plan.windowing.kind, WindowKind::Tumbling { size: Duration::from_secs(600) });
    assert_eq!(plan.windowing.grace, Duration::from_secs(24 * 3600), "ksqlDB's default grace");
    assert_eq!(plan.emit, Emit::Changes);
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "KSQL_COL_0"], "as ksqlDB names them");
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
fn is_not_distinct_from_and_like_escape_plan_alike_in_the_dsl_and_in_sql() {
    let sql = plan(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed
         WHERE quantity IS NOT DISTINCT FROM 1 AND customer_id LIKE 'cus!_%' ESCAPE '!'",
        &catalog(),
    )
    .unwrap();
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .filter(col("quantity").is_not_distinct_from(1).and(col("customer_id").like_escape("cus!_%", '!')))
        .select(["customer_id"])
        .to_stream("s")
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
        ["customer", "spent", "KSQL_COL_0", "KSQL_COL_1", "KSQL_COL_2", "KSQL_COL_3", "windowstart", "windowend"]
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
fn an_alias_may_go_without_as_and_unnamed_expressions_are_numbered_from_zero() {
    let plan = plan(
        "CREATE STREAM s AS SELECT o.customer_id customer, count(*) n, sum(total), count(*) AS KSQL_COL_1, max(total)
         FROM order_confirmed o WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY o.customer_id",
        &catalog(),
    )
    .unwrap();
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["customer", "n", "KSQL_COL_0", "KSQL_COL_1", "KSQL_COL_2"], "a written name is skipped");
}

/// The WHERE literal of a query over `order_confirmed`.
fn literal_of(condition: &str) -> Expr {
    let sql = format!(
        "CREATE STREAM q AS SELECT customer_id, COUNT(*) FROM order_confirmed WINDOW TUMBLING (SIZE 1 SECOND)
         WHERE {condition} GROUP BY customer_id"
    );
    match plan(&sql, &catalog()).unwrap().filter {
        Some(Expr::Binary(_, _, literal)) => *literal,
        other => panic!("a comparison: {other:?}"),
    }
}

#[test]
fn numbers_and_quoted_names_are_read_as_ksqldb_writes_them() {
    assert_eq!(literal_of("total > 10"), Expr::Literal(Value::Int(10)));
    assert_eq!(literal_of("total > 1E1"), Expr::Literal(Value::Float(10.0)));
    assert_eq!(literal_of("total > .5"), Expr::Literal(Value::Float(0.5)));
    assert_eq!(literal_of("total > 2."), Expr::Literal(Value::Float(2.0)));
    assert_eq!(literal_of("total > 2.5e-1"), Expr::Literal(Value::Float(0.25)));

    let open = Catalog::open();
    let plan = super::plan(
        "CREATE STREAM s AS SELECT `a``b`, \"Mixed\"\"Case\", COUNT(*) FROM e WINDOW TUMBLING (SIZE 1 SECOND)
         GROUP BY `a``b`, \"Mixed\"\"Case\"",
        &open,
    )
    .unwrap();
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a`b", "Mixed\"Case", "KSQL_COL_0"]);
}

#[test]
fn an_error_after_a_clause_lists_what_may_still_come() {
    let query = |tail: &str| {
        format!(
            "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE) {tail}"
        )
    };
    let e = error(&query("GRUOP BY customer_id"));
    assert_eq!(e.message, "expected `WHERE`, `GROUP BY`, `HAVING`, `EMIT`, `;` or the end of the query, found `GRUOP`");
    let e = error(&query("WHERE total ~ 2 GROUP BY customer_id"));
    assert_eq!(
        e.message,
        "expected an operator, `GROUP BY`, `PARTITION BY`, `HAVING`, `EMIT`, `;` or the end of the query, found `~`"
    );
    let e = error(&query("GROUP BY customer_id, HAVING count(*) > 1"));
    assert_eq!(e.message, "expected an expression, found `HAVING`");
    let e = error(&query("GROUP BY customer_id EMIT FINAL; GROUP"));
    assert_eq!(e.message, "expected the end of the query (one statement at a time), found `GROUP`");
    let e = error("CREATE STREAM s AS SELECT customer_id FROM order_confirmed AS WINDOW TUMBLING (SIZE 1 MINUTE)");
    assert_eq!(e.message, "expected a name, found `WINDOW`");
}

#[test]
fn an_unterminated_string_is_reported_where_it_opens() {
    let e = error(
        "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE)
WHERE customer_id = 'abc GROUP BY customer_id",
    );
    assert_eq!((e.line, e.column), (2, 21));
    assert_eq!(e.message, "expected a string closed with `'`, found `'`");
    let e = error(&format!("{REFERENCE} /* flagged\n-- customers"));
    assert_eq!((e.line, e.column), (6, 21), "at the `/*`");
    assert_eq!(e.message, "expected a comment closed with `*/`, found `/`");
}

/// What the token around it would have been is beside the point: the text is unclosed.
#[test]
fn an_unterminated_comment_or_string_is_all_the_error_says() {
    for (sql, column, expected) in [
        ("CREATE /* x", 8, "a comment closed with `*/`"),
        ("CREATE STREAM s AS SELECT customer_id /* x", 39, "a comment closed with `*/`"),
        ("CREATE STREAM s AS SELECT customer_id FROM order_confirmed /* x", 60, "a comment closed with `*/`"),
        ("CREATE STREAM s WITH (KAFKA_TOPIC = 'abc", 37, "a string closed with `'`"),
        (
            "CREATE STREAM s AS SELECT 1 FROM order_confirmed WHERE k LIKE 'a' ESCAPE 'abc",
            74,
            "a string closed with `'`",
        ),
    ] {
        let e = error(sql);
        assert_eq!((e.line, e.column), (1, column), "{sql}");
        assert_eq!(e.message.split(", found").next(), Some(&*format!("expected {expected}")), "{sql}");
    }
}

#[test]
fn a_window_error_points_at_the_value_at_fault() {
    let window = |window: &str| {
        error(&format!(
            "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed\nWINDOW {window} GROUP BY customer_id"
        ))
    };
    let e = window("TUMBLING (SIZE 0 MINUTES)");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 23, "the window SIZE must be at least one millisecond"));
    let e = window("HOPPING (SIZE 1 MINUTE, ADVANCE BY 0 SECONDS)");
    assert_eq!((e.line, e.column), (2, 43), "{e}");
    let e = window("HOPPING (SIZE 1 MINUTE, ADVANCE BY 2 MINUTES)");
    assert_eq!((e.line, e.column), (2, 43), "{e}");
    assert!(e.message.contains("must not exceed its SIZE"), "{e}");
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
    let e = error("CREATE STREAM s AS\nSELECT customer_id, count(*),\nFROM order_confirmed");
    assert_eq!((e.line, e.column), (3, 1));
    assert_eq!(e.message, "expected an expression, found `FROM`");
    // As in ksqlDB, a word after an expression is its alias: a misspelt FROM is one.
    let e = error("CREATE STREAM s AS\nSELECT customer_id, count(*)\nFORM order_confirmed");
    assert_eq!((e.line, e.column), (3, 6));
    assert_eq!(e.message, "expected `FROM`, found `order_confirmed`");

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

    let e = error("CREATE TABLE s AS SELECT customer_id, count(*) FROM order_confirmed");
    assert_eq!((e.line, e.column), (1, 68));
    assert!(e.message.starts_with("expected WINDOW TUMBLING, HOPPING or SESSION after FROM, or a GROUP BY"), "{e}");

    // Without WINDOW: no window closes, and none has bounds.
    let e =
        error("CREATE TABLE t AS SELECT customer_id, count(*) FROM order_confirmed GROUP BY customer_id\nEMIT  FINAL");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 7, "EMIT FINAL needs a WINDOW: without one no window ever closes; use EMIT CHANGES")
    );
    let e = error("CREATE TABLE t AS SELECT customer_id, windowEnd FROM order_confirmed GROUP BY customer_id");
    assert_eq!((e.line, e.column), (1, 39));
    assert_eq!(e.message, "WINDOWEND is a column of windowed queries; this one has no WINDOW");

    let e = error(
        "CREATE STREAM s AS SELECT customer_id, median(total) FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY customer_id",
    );
    assert_eq!(
        e.message,
        "unknown function `median`; the aggregates are COUNT, SUM, MIN, MAX and AVG, the scalar functions ABS, CEIL, \
         FLOOR, ROUND, UCASE, LCASE, TRIM, LEN, CONCAT, SUBSTRING, COALESCE, IFNULL"
    );

    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 2 MINUTES) GROUP BY customer_id",
    );
    assert!(e.message.contains("must not exceed its SIZE"), "{e}");

    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW HOPPING (SIZE 1 DAY, ADVANCE BY 1 MILLISECOND) GROUP BY customer_id",
    );
    assert_eq!((e.line, e.column), (1, 99), "at the advance");
    assert!(e.message.contains("puts each record in 86400000 windows"), "{e}");
}

/// ksqlDB's non-windowed aggregation: one row per key over all time, which the DSL writes
/// without `windowed_by`.
#[test]
fn a_group_by_without_window_aggregates_over_all_time_in_sql_and_in_the_dsl() {
    let sql = plan(
        "CREATE TABLE spent AS SELECT customer_id, count(*) AS orders FROM order_confirmed GROUP BY customer_id",
        &catalog(),
    )
    .unwrap();
    assert_eq!(sql.windowing, Windowing::global());
    assert!(!sql.windowing.is_windowed());
    assert!(sql.state_shape().ends_with("|GLOBAL|`customer_id`"), "{}", sql.state_shape());
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .group_by(["customer_id"])
        .aggregate([Agg::count().named("orders")])
        .to_table("spent")
        .unwrap();
    assert_eq!(dsl.windowing, sql.windowing);
    assert_eq!(dsl.state_shape(), sql.state_shape());

    let grouped = || Query::stream::<OrderEvent>(&["OrderConfirmed"]).group_by(["customer_id"]);
    let final_rows = grouped().count().suppress_until_window_closes().to_table("t").unwrap_err();
    assert_eq!(final_rows, DslError::NeedsWindows("suppress_until_window_closes"));
    let bounds = grouped().count().with_window_bounds().to_table("t").unwrap_err();
    assert_eq!(bounds, DslError::NeedsWindows("with_window_bounds"));
}

/// ksqlDB's stream of selected records: without GROUP BY and WINDOW, each record that passes
/// WHERE is a row, and nothing is aggregated.
#[test]
fn a_query_without_group_by_or_window_selects_from_each_record() {
    let plan = plan(
        "CREATE STREAM big_orders AS SELECT order_id, total AS amount, ROWTIME, total > 500 AS large
         FROM order_confirmed WHERE total > 100 EMIT CHANGES",
        &catalog(),
    )
    .unwrap();
    assert!(plan.is_stateless());
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["order_id", "amount", "ROWTIME", "large"]);
    let (mut columns, mut values) = (Vec::new(), Vec::new());
    let payload = br#"{"order_id":"ord_1","customer_id":"c","total":700}"#;
    assert!(plan.select_into(42, payload, &mut columns, &mut values).unwrap());
    assert_eq!(values, [Value::Text("ord_1".into()), Value::Int(700), Value::Int(42), Value::Bool(true)]);
    let small = br#"{"order_id":"ord_2","customer_id":"c","total":50}"#;
    assert!(!plan.select_into(42, small, &mut columns, &mut values).unwrap(), "WHERE drops it");
    assert!(!self::plan(REFERENCE, &catalog()).unwrap().is_stateless());

    let sql =
        super::plan("CREATE STREAM big AS SELECT order_id, total FROM order_confirmed WHERE total > 100", &catalog());
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .filter(col("total").gt(100))
        .select(["order_id", "total"])
        .to_stream("big");
    assert_eq!(dsl.unwrap(), sql.unwrap());
    // What SQL refuses, the DSL and a plan built by hand cannot do either.
    let nothing = Query::stream::<OrderEvent>(&["OrderConfirmed"]).select([]).to_stream("big").unwrap_err();
    assert!(matches!(nothing, DslError::Invalid(reason) if reason.contains("selects at least one column")));
    let keyless = Query::stream::<OrderEvent>(&["OrderConfirmed"]).group_by([]).count().to_table("t").unwrap_err();
    assert!(matches!(keyless, DslError::Invalid(reason) if reason.contains("groups by at least one key")));
    let mut by_hand = plan.clone();
    by_hand.having = Some(Expr::Literal(Value::Bool(true)));
    assert_eq!(by_hand.check(), Err("HAVING and EMIT FINAL need a GROUP BY"));
    by_hand.having = None;
    by_hand.output = OutputKind::Table;
    assert!(by_hand.check().unwrap_err().starts_with("a TABLE aggregates per key"));
    by_hand.output = OutputKind::Stream;
    by_hand.select[0].expr = Expr::WindowStart;
    assert!(by_hand.check().is_err());
    assert_eq!(plan.check(), Ok(()));
    let misspelt = Query::stream::<OrderEvent>(&["OrderConfirmed"]).select(["totl"]).to_stream("big").unwrap_err();
    assert!(misspelt.to_string().starts_with("select: no column `totl`; the columns here: "), "{misspelt}");

    let refused = |sql: &str| {
        let e = error(sql);
        (e.column, e.message)
    };
    assert_eq!(
        refused("CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed"),
        (40, "aggregate functions need a GROUP BY".into())
    );
    let unknown = refused("CREATE STREAM s AS SELECT upper(customer_id) FROM order_confirmed");
    assert_eq!(unknown.0, 27);
    assert!(unknown.1.starts_with("unknown function `upper`; the aggregates are"), "{}", unknown.1);
    assert_eq!(
        refused("CREATE STREAM s AS SELECT customer_id FROM order_confirmed HAVING total > 1"),
        (67, "HAVING needs a GROUP BY; WHERE filters records".into())
    );
    assert_eq!(
        refused("CREATE STREAM s AS SELECT customer_id, WINDOWSTART FROM order_confirmed"),
        (40, "WINDOWSTART is a column of windowed queries; this one has no WINDOW".into())
    );
    assert_eq!(
        refused("CREATE STREAM s AS SELECT customer_id FROM order_confirmed WHERE windowstart > 0"),
        (66, "WINDOWSTART is a column of windowed queries; this one has no WINDOW".into())
    );
    let (column, message) = refused("CREATE TABLE s AS SELECT customer_id FROM order_confirmed");
    assert_eq!(column, 58);
    assert!(message.contains("a TABLE aggregates per key (CREATE STREAM selects from each record"), "{message}");
    let (column, message) = refused("CREATE STREAM s AS SELECT customer_id FROM order_confirmed EMIT FINAL");
    assert_eq!(
        (column, message.as_str()),
        (65, "EMIT FINAL needs a WINDOW: without one no window ever closes; use EMIT CHANGES")
    );
}

#[test]
fn an_error_renders_with_its_line_and_a_caret() {
    let sql = "CREATE STREAM s AS\nSELECT customer_id,\nFROM x";
    let e = error(sql);
    assert_eq!(e.render(sql).lines().nth(2), Some("  | ^"));
}

/// The error of a query against the open catalog (the CLI's).
fn open_error(sql: &str) -> SqlError {
    plan(sql, &Catalog::open()).expect_err("the query is refused")
}

#[test]
fn an_error_after_a_quoted_name_points_after_its_backticks_and_never_panics() {
    let e = open_error("CREATE TABLE s AS SELECT k, count(*) FROM `éé`");
    assert_eq!((e.line, e.column), (1, 47), "just after the closing backtick: {e}");
    assert!(e.message.starts_with("expected WINDOW"), "{e}");
    let e = open_error("CREATE TABLE s AS SELECT k, count(*) FROM `ab`");
    assert_eq!((e.line, e.column), (1, 47), "after `ab`, not inside it: {e}");
    let e = open_error("CREATE TABLE s AS SELECT k, count(*) FROM e AS `éé`");
    assert_eq!((e.line, e.column), (1, 52), "{e}");
    // An offset inside a character stands for the character.
    let e = SqlError::at("`é`", 2, "m");
    assert_eq!((e.line, e.column), (1, 2));
}

#[test]
fn a_duration_beyond_i64_milliseconds_is_too_large_where_it_is_written() {
    let query = |window: &str| {
        format!(
            "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed\nWINDOW {window} GROUP BY customer_id"
        )
    };
    let e = error(&query("TUMBLING (SIZE 106751991168 DAYS)"));
    assert_eq!((e.line, e.column), (2, 23), "at the number: {e}");
    assert!(e.message.starts_with("the SIZE is too large"), "{e}");
    let e = error(&query("HOPPING (SIZE 1 DAY, ADVANCE BY 99999999999999999999999 SECONDS)"));
    assert_eq!((e.line, e.column), (2, 40), "{e}");
    assert!(e.message.starts_with("the ADVANCE BY is too large"), "{e}");
    let e = error(&query("SESSION (1 SECOND, GRACE PERIOD 9223372036854776 SECONDS)"));
    assert!(e.message.starts_with("the GRACE PERIOD is too large"), "{e}");
    // The largest that fits plans.
    plan(&query("HOPPING (SIZE 106751991167 DAYS, ADVANCE BY 53375995583 DAYS)"), &catalog()).unwrap();
    plan(&query("TUMBLING (SIZE 9223372036854775807 MILLISECONDS)"), &catalog()).unwrap();
}

#[test]
fn unquoted_names_match_in_any_case_and_quoted_names_exactly() {
    let plan = plan(
        "CREATE STREAM s AS SELECT CUSTOMER_ID, COUNT(*) FROM Order_Confirmed WINDOW TUMBLING (SIZE 1 SECOND)
         WHERE Total > 1 GROUP BY Customer_Id",
        &catalog(),
    )
    .unwrap();
    assert_eq!(plan.source.types, ["OrderConfirmed"]);
    let columns: Vec<(&str, NameCase)> = plan.columns.iter().map(|c| (c.name.as_str(), c.case)).collect();
    assert_eq!(columns, [("total", NameCase::Exact), ("customer_id", NameCase::Exact)]);
    assert_eq!(plan.select[0].expr, Expr::Group(0), "CUSTOMER_ID is the GROUP BY's Customer_Id");

    let e = error(REFERENCE.replace("FROM order_confirmed", "FROM `Order_Confirmed`").as_str());
    assert!(e.message.starts_with("unknown stream `Order_Confirmed`"), "{e}");
    let e = error(REFERENCE.replace("GROUP BY customer_id", "GROUP BY `Customer_Id`").as_str());
    assert!(e.message.starts_with("stream `order_confirmed` has no column `Customer_Id`"), "{e}");
}

#[test]
fn an_open_catalog_reads_fields_in_any_case_unless_quoted() {
    let open = |sql: &str| plan(sql, &Catalog::open()).unwrap();
    let mut columns = Vec::new();
    let plan = open("CREATE STREAM s AS SELECT K, count(*) FROM E WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY K");
    let keyed = plan.rekey(0, br#"{"k":"a","amount":1}"#, &mut columns).unwrap();
    assert_eq!(keyed.map(|k| k.group), Some(vec![Value::from("a")]));
    assert!(plan.reads_type(b"E"));

    let plan = open("CREATE STREAM s AS SELECT `K`, count(*) FROM e WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY `K`");
    assert_eq!(plan.rekey(0, br#"{"k":"a"}"#, &mut columns).unwrap(), None, "`K` is not k");
    // Written twice in two cases, read once.
    let plan = open(
        "CREATE STREAM s AS SELECT k, sum(AMOUNT) FROM e WINDOW TUMBLING (SIZE 1 SECOND) WHERE Amount > 0 GROUP BY k",
    );
    assert_eq!(plan.columns.len(), 2, "{:?}", plan.columns);
}

#[test]
fn a_word_that_starts_with_a_keyword_is_quoted_whole_where_it_starts() {
    let window = "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW";
    let cases = [
        ("CREATE STREAM s AS SELECTED k".to_owned(), "SELECTED", "`SELECT`"),
        ("CREATE TABLES s AS SELECT k".to_owned(), "TABLES", "`STREAM` or `TABLE`"),
        (format!("{window} TUMBLING (SIZES 1 MINUTE)"), "SIZES", "`SIZE`"),
        (format!("{window} HOPPING (SIZE 1 MINUTE, ADVANCED BY 1 MINUTE)"), "ADVANCED", "`ADVANCE`"),
        (format!("{window} TUMBLING (SIZE 1 MINUTE) GROUP BYE customer_id"), "BYE", "`BY`"),
        (
            format!("{window} TUMBLING (SIZE 1 MINUTE) GROUP BY customer_id EMIT FINALLY"),
            "FINALLY",
            "`CHANGES` or `FINAL`",
        ),
    ];
    for (sql, word, expected) in cases {
        let e = error(&sql);
        let column = sql.find(word).unwrap() + 1;
        assert_eq!((e.column, e.message), (column, format!("expected {expected}, found `{word}`")), "{sql}");
    }
}

#[test]
fn a_grace_without_period_says_period_is_expected() {
    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE, GRACE 1 MINUTE) GROUP BY customer_id",
    );
    assert_eq!((e.line, e.column, e.message.as_str()), (1, 98, "expected `PERIOD`, found `1`"));
    let e = error(
        "CREATE STREAM s AS SELECT customer_id FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE, ADVANCE BY 1 MINUTE) GROUP BY customer_id",
    );
    assert_eq!((e.line, e.column, e.message.as_str()), (1, 92, "expected `GRACE`, found `ADVANCE`"));
}

#[test]
fn a_typed_catalog_refuses_text_where_a_number_is_needed() {
    let query = |select: &str, rest: &str| {
        format!(
            "CREATE STREAM s AS SELECT customer_id, {select} FROM order_confirmed WINDOW TUMBLING (SIZE 1 MINUTE) {rest}"
        )
    };
    let sql = query("SUM(customer_id)", "GROUP BY customer_id");
    let e = error(&sql);
    assert_eq!(e.message, "Function 'SUM' does not accept parameters (STRING): it takes a number");
    assert_eq!(e.column, sql.find("customer_id)").unwrap() + 1, "at the argument");
    let e = error(&query("avg(order_id)", "GROUP BY customer_id"));
    assert!(e.message.starts_with("Function 'AVG' does not accept parameters (STRING)"), "{e}");
    let sql = query("COUNT(*)", "WHERE customer_id > 5 GROUP BY customer_id");
    let e = error(&sql);
    assert_eq!(e.message, "cannot compare `customer_id` (STRING) with 5 (BIGINT)");
    assert_eq!(e.column, sql.find("customer_id >").unwrap() + 1);
    let e = error(&query("COUNT(*)", "GROUP BY customer_id HAVING 'many' < COUNT(*)"));
    assert_eq!(e.message, "cannot compare 'many' (STRING) with COUNT(...) (BIGINT)");
    let e = error(&query("COUNT(*)", "GROUP BY customer_id HAVING SUM(total) = 'x'"));
    assert!(e.message.starts_with("cannot compare SUM(...) (BIGINT) with 'x' (STRING)"), "{e}");
    // Numbers compare with numbers, text with text; NULL with anything.
    plan(&query("SUM(quantity), AVG(total)", "WHERE total > 1.5 AND customer_id <> 'x' AND quantity IS NOT NULL AND total = NULL GROUP BY customer_id HAVING SUM(total) > 2.5"), &catalog()).unwrap();
    // The open catalog knows no types: nothing to refuse.
    plan(
        &query("SUM(customer_id)", "WHERE customer_id > 5 GROUP BY customer_id").replace("order_confirmed", "e"),
        &Catalog::open(),
    )
    .unwrap();
}

#[test]
fn bracketed_comments_a_byte_order_mark_and_tabs_are_read_as_ksqldb_and_editors_write_them() {
    let commented = "\u{feff}/* flags bulk buyers\n   (see the README) */ CREATE STREAM suspicious_sales AS
SELECT customer_id, /* the count */ count(*)
FROM order_confirmed -- confirmed only
WINDOW TUMBLING (SIZE 10 MINUTE)
GROUP BY customer_id
HAVING count(*) > 4";
    assert_eq!(plan(commented, &catalog()).expect("plans"), plan(REFERENCE, &catalog()).unwrap());

    let unterminated = "CREATE STREAM s AS /* never closed\nSELECT customer_id FROM order_confirmed";
    let refused = error(unterminated);
    assert!(refused.message.contains("*/"), "{refused}");

    let tabbed = "CREATE STREAM s AS\n\tSELECT\tcustmer_id, count(*) FROM order_confirmed\n\
                  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY customer_id";
    let rendered = error(tabbed).render(tabbed);
    assert!(rendered.contains("custmer_id") && rendered.ends_with("  | \t      \t^"), "{rendered:?}");
}

/// The state shape that guards a changelog tells apart queries whose windows hold other values
/// (other aggregate arguments, other group keys) and not queries that differ in how they are
/// written.
#[test]
fn the_state_shape_names_aggregate_arguments_and_group_keys() {
    let shape = |sql: &str| plan(sql, &catalog()).unwrap().state_shape();
    let sum = |argument: &str, key: &str| {
        shape(&format!(
            "CREATE TABLE t AS SELECT {key}, SUM({argument}) AS s FROM order_confirmed
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY {key}"
        ))
    };
    let original = sum("total", "customer_id");
    assert_eq!(original, "sum(`total`)|TUMBLING 10000|`customer_id`");
    assert_ne!(original, sum("total * 100", "customer_id"), "another argument");
    assert_ne!(original, sum("total", "order_id"), "another key");
    assert_eq!(original, sum("TOTAL", "Customer_Id"), "the same columns written in another case");
    assert_eq!(shape(REFERENCE), "count(*)|TUMBLING 600000|`customer_id`");
}

/// The reference query with a `WITH` clause after its name.
fn with(properties: &str) -> String {
    REFERENCE.replacen("suspicious_sales AS", &format!("suspicious_sales WITH ({properties}) AS"), 1)
}

#[test]
fn the_with_clause_names_the_sink_topic_and_its_partitions_as_ksqldb_writes_them() {
    let written = with("KAFKA_TOPIC = 'sales.suspicious-v2', partitions=2, VALUE_FORMAT='json', key_format='KAFKA'");
    let plan = plan(&written, &catalog()).unwrap();
    assert_eq!(plan.name, "suspicious_sales", "the query keeps its name (internal topics, groups)");
    assert_eq!(plan.sink_topic(), "sales.suspicious-v2");
    assert_eq!(plan.sink.partitions, Some(2));
    let plain = super::plan(REFERENCE, &catalog()).unwrap();
    assert_eq!((plain.sink_topic(), plain.sink.partitions), ("suspicious_sales", None));
    assert_eq!(
        plan.with_sink_topic("x").with_sink_partitions(3).sink,
        crate::stream::Sink { topic: Some("x".into()), partitions: Some(3) }
    );
    // FORMAT alone, and an empty list is not a clause.
    assert!(super::plan(&with("FORMAT = 'JSON'"), &catalog()).is_ok());
    let e = error(&with(""));
    assert_eq!((e.line, e.column), (1, with("").find(')').expect("the clause's end") + 1));
    assert_eq!(e.message, "expected a name, found `)`");
}

#[test]
fn a_with_property_tramline_cannot_honour_is_refused_where_it_is_written() {
    // Each error points at the text after `^` (the property's name, or its value).
    let cases = [
        (
            "^REPLICAS = 3",
            "unknown property `REPLICAS`; a query takes KAFKA_TOPIC, PARTITIONS, FORMAT, VALUE_FORMAT and KEY_FORMAT",
        ),
        ("PARTITIONS = ^0", "PARTITIONS takes a whole number of partitions, at least 1"),
        ("PARTITIONS = ^'4'", "PARTITIONS takes a whole number of partitions, at least 1"),
        ("PARTITIONS = ^1.5", "PARTITIONS takes a whole number of partitions, at least 1"),
        ("KAFKA_TOPIC = ^4", "KAFKA_TOPIC takes a topic's name in quotes"),
        (
            "KAFKA_TOPIC = ^'sales flags'",
            "`sales flags` cannot be a topic's name: use ASCII letters, digits, `.`, `_` and `-`",
        ),
        ("KAFKA_TOPIC = ^'..'", "`..` cannot be a topic's name: Kafka refuses `.` and `..`"),
        ("VALUE_FORMAT = ^'AVRO'", "VALUE_FORMAT takes 'JSON' only: tramline writes rows as JSON objects"),
        ("KEY_FORMAT = ^'JSON'", "KEY_FORMAT takes 'KAFKA' only: tramline writes a row's key as text"),
        ("PARTITIONS = 2, ^partitions = 3", "the property PARTITIONS is given twice"),
        ("PARTITIONS ^2", "expected `=`, found `2`"),
        ("PARTITIONS = ^-2", "expected a string or a number, found `-`"),
    ];
    let clause_at = with("").find("()").expect("the clause") + 2;
    for (marked, message) in cases {
        let properties = marked.replace('^', "");
        let column = clause_at + marked.find('^').expect("a marker");
        let e = error(&with(&properties));
        assert_eq!((e.line, e.column, e.message.as_str()), (1, column, message), "WITH ({properties})");
    }
}

#[test]
fn a_quoted_pseudo_column_in_lower_case_is_a_field_of_the_event() {
    let open = |sql: &str| plan(sql, &Catalog::open()).unwrap();
    let mut columns = Vec::new();
    let plan = open(
        "CREATE STREAM s AS SELECT k, count(*) FROM e WINDOW TUMBLING (SIZE 1 HOUR) WHERE `rowtime` = 5 GROUP BY k",
    );
    assert_eq!(plan.columns.len(), 2, "`rowtime` is read as a field: {:?}", plan.columns);
    let keyed = plan.rekey(1_000, br#"{"k":"a","rowtime":5}"#, &mut columns).unwrap();
    assert_eq!(keyed.map(|k| k.group), Some(vec![Value::from("a")]), "the field is 5, the record's time 1000");
    // Unquoted in any case, or quoted as ksqlDB names them, they are the pseudo-columns.
    for rowtime in ["rowtime", "RowTime", "`ROWTIME`"] {
        let plan = open(&format!(
            "CREATE STREAM s AS SELECT k, count(*) FROM e WINDOW TUMBLING (SIZE 1 HOUR) WHERE {rowtime} > 0 GROUP BY k"
        ));
        assert_eq!(plan.columns.len(), 1, "{rowtime} is the record's time: {:?}", plan.columns);
    }
    open("CREATE STREAM s AS SELECT k, count(*) FROM e WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k, `windowstart`");
}

#[test]
fn having_that_names_an_output_column_says_to_write_the_expression() {
    let e = error(&REFERENCE.replace("count(*)\nFROM", "count(*) AS n\nFROM").replace("HAVING count(*)", "HAVING n"));
    assert_eq!((e.line, e.column), (6, 8));
    assert_eq!(
        e.message,
        "`n` names an output column of SELECT, which HAVING cannot use: write its expression (COUNT(...)) instead"
    );
    let e = open_error(
        "CREATE STREAM s AS SELECT k, sum(x) AS N FROM e WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k HAVING n > 4",
    );
    assert!(e.message.starts_with("`n` names an output column of SELECT"), "in any case: {e}");
    assert!(e.message.contains("(SUM(...))"), "{e}");
}

#[test]
fn where_and_having_need_a_condition() {
    let e = error(&REFERENCE.replace("HAVING count(*) > 4", "HAVING count(*)"));
    assert_eq!((e.line, e.column), (6, 8));
    assert_eq!(e.message, "HAVING needs a condition (BOOLEAN), but COUNT(...) is BIGINT");
    let e = error(&REFERENCE.replace("GROUP BY", "WHERE total GROUP BY"));
    assert_eq!((e.line, e.column), (5, 7));
    assert_eq!(e.message, "WHERE needs a condition (BOOLEAN), but `total` is BIGINT");
    // A type only the data tells (the CLI's open catalog) is taken as written.
    let open = "CREATE STREAM s AS SELECT k, count(*) FROM e WINDOW TUMBLING (SIZE 1 HOUR) WHERE flag GROUP BY k";
    plan(open, &Catalog::open()).unwrap();
}

/// The scalar side of ksqlDB's SQL: functions, CASE, CAST, BETWEEN, IN and LIKE, over each
/// record of a stateless query.
#[test]
fn scalar_functions_case_and_cast_compute_each_row() {
    let plan = plan(
        "CREATE STREAM labelled AS SELECT
             UCASE(customer_id) AS customer,
             ROUND(total / 3.0, 1) AS third,
             CASE WHEN total > 500 THEN 'large' WHEN total > 100 THEN 'medium' ELSE 'small' END AS size,
             CONCAT(SUBSTRING(customer_id, 1, 3), '-', CAST(quantity AS STRING)) AS label,
             LEN(TRIM(customer_id)) AS length,
             ABS(0 - total) AS magnitude
         FROM order_confirmed
         WHERE customer_id LIKE 'cus%' AND total BETWEEN 100 AND 1000 AND quantity NOT IN (0, 13)",
        &catalog(),
    )
    .unwrap();
    assert!(plan.is_stateless());
    let row = |payload: &str| {
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        plan.select_into(0, payload.as_bytes(), &mut columns, &mut values).unwrap().then_some(values)
    };
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        row(r#"{"customer_id":"cus_7","quantity":2,"total":700}"#).unwrap(),
        [text("CUS_7"), Value::Float(233.3), text("large"), text("cus-2"), Value::Int(5), Value::Int(700)]
    );
    assert_eq!(row(r#"{"customer_id":"cus_7","quantity":2,"total":100}"#).unwrap()[2], text("small"));
    assert_eq!(row(r#"{"customer_id":"cus_7","quantity":2,"total":101}"#).unwrap()[2], text("medium"));
    assert!(row(r#"{"customer_id":"cus_7","quantity":2,"total":1001}"#).is_none(), "not BETWEEN");
    assert!(row(r#"{"customer_id":"abc","quantity":2,"total":700}"#).is_none(), "not LIKE");
    assert!(row(r#"{"customer_id":"cus_7","quantity":13,"total":700}"#).is_none(), "IN the excluded");
    assert!(row(r#"{"customer_id":"cus_7","total":700}"#).is_none(), "NOT IN of NULL is NULL");
}

/// As ksqlDB's concatenation operator: `FIRST_NAME + ' ' + LAST_NAME`.
#[test]
fn plus_concatenates_strings_as_in_ksqldb() {
    let plan = plan(
        "CREATE STREAM labelled AS SELECT customer_id + '-' + CAST(quantity AS STRING) AS label,
             LEN(customer_id + '!') AS length
         FROM order_confirmed WHERE customer_id + '' = 'cus_7'",
        &catalog(),
    )
    .unwrap();
    let row = |payload: &str| {
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        plan.select_into(0, payload.as_bytes(), &mut columns, &mut values).unwrap().then_some(values)
    };
    let values = row(r#"{"customer_id":"cus_7","quantity":2}"#);
    assert_eq!(values, Some(vec![Value::Text("cus_7-2".into()), Value::Int(6)]));
    assert_eq!(row(r#"{"customer_id":"cus_7"}"#).unwrap()[0], Value::Null, "NULL + text is NULL");
    // Its type is STRING: SUM of it is refused as SUM of a STRING column is.
    let e =
        error("CREATE TABLE t AS SELECT customer_id, SUM(customer_id + 'x') FROM order_confirmed GROUP BY customer_id");
    assert!(e.message.contains("SUM"), "{e}");
}

/// As ksqlDB's ("Unsupported arithmetic types", "Logical binary expects two boolean values"):
/// an operator over a type it never computes with would be NULL for every record.
#[test]
fn a_typed_catalog_refuses_arithmetic_and_logic_over_types_they_do_not_take() {
    let select = |expr: &str| format!("CREATE STREAM s AS SELECT {expr} AS x FROM order_confirmed");
    for (expr, at, message) in [
        (
            "customer_id + 1",
            "customer_id",
            "`+` takes numbers, or two strings, but `customer_id` is STRING and 1 is BIGINT",
        ),
        ("total * customer_id", "customer_id", "`*` takes numbers, but `customer_id` is STRING"),
        ("quantity - TRUE", "TRUE", "`-` takes numbers, but TRUE is BOOLEAN"),
        ("quantity AND TRUE", "quantity", "AND takes conditions (BOOLEAN), but `quantity` is BIGINT"),
        ("TRUE OR customer_id", "customer_id", "OR takes conditions (BOOLEAN), but `customer_id` is STRING"),
        ("NOT total", "total", "NOT takes a condition (BOOLEAN), but `total` is BIGINT"),
        ("-customer_id", "customer_id", "`-` takes a number, but `customer_id` is STRING"),
    ] {
        let sql = select(expr);
        let e = error(&sql);
        assert_eq!(e.message, message, "{sql}");
        assert_eq!(e.column, sql.rfind(at).unwrap() + 1, "{sql}");
    }
    for fine in ["quantity + 1.5", "customer_id + 'x'", "-total", "NOT (quantity > 1) OR NULL", "NULL + 1"] {
        plan(&select(fine), &catalog()).unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
}

/// `Windowing`'s fields are public: a plan built by hand may hold windows its constructors
/// refuse, and a window of no size would divide by zero on the first record.
#[test]
fn a_plan_built_by_hand_with_windows_the_constructors_refuse_is_refused() {
    let windowed = plan(REFERENCE, &catalog()).unwrap();
    let zero = Duration::ZERO;
    let (second, day) = (Duration::from_secs(1), Duration::from_secs(86_400));
    for (kind, reason) in [
        (WindowKind::Tumbling { size: zero }, "at least one millisecond"),
        (WindowKind::Hopping { size: second, advance: zero }, "at least one millisecond"),
        (WindowKind::Session { gap: zero }, "at least one millisecond"),
        (WindowKind::Hopping { size: second, advance: 2 * second }, "advances by at most its size"),
        (WindowKind::Hopping { size: day, advance: Duration::from_millis(1) }, "at most 10,000 windows"),
        (WindowKind::Tumbling { size: Duration::MAX }, "at most i64::MAX milliseconds"),
    ] {
        let mut by_hand = windowed.clone();
        by_hand.windowing = Windowing { kind, grace: zero };
        let refused = by_hand.check().expect_err("refused");
        assert!(refused.contains(reason), "{kind:?}: {refused}");
    }
    assert_eq!(windowed.check(), Ok(()));
}

#[test]
fn in_between_and_like_keep_sql_null_semantics() {
    let holds = |condition: &str, payload: &str| {
        let sql = format!("CREATE STREAM s AS SELECT x FROM e WHERE {condition}");
        let plan = plan(&sql, &Catalog::open()).unwrap_or_else(|e| panic!("{}", e.render(&sql)));
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        plan.select_into(0, payload.as_bytes(), &mut columns, &mut values).unwrap()
    };
    assert!(holds("x IN (1, NULL)", r#"{"x":1}"#));
    // 2 IN (1, NULL) is NULL, and so is its negation: neither passes.
    assert!(!holds("x IN (1, NULL)", r#"{"x":2}"#));
    assert!(!holds("x NOT IN (1, NULL)", r#"{"x":2}"#));
    assert!(holds("x NOT IN (1, 3)", r#"{"x":2}"#));
    assert!(holds("NOT x BETWEEN 1 AND 3", r#"{"x":4}"#));
    assert!(!holds("x BETWEEN 1 AND y", r#"{"x":2}"#), "an absent bound is NULL");
    assert!(holds("x NOT LIKE 'a_c'", r#"{"x":"abbc"}"#));
    assert!(holds("x LIKE '100!%' ESCAPE '!'", r#"{"x":"100%"}"#));
    assert!(!holds("x LIKE '100!%' ESCAPE '!'", r#"{"x":"1000"}"#));
    assert!(holds("x NOT LIKE 'a!_c' ESCAPE '!' AND x LIKE 'a_c'", r#"{"x":"abc"}"#));
    // IS [NOT] DISTINCT FROM: NULL is a value there.
    assert!(holds("x IS DISTINCT FROM 1", r#"{}"#));
    assert!(!holds("x IS DISTINCT FROM y", r#"{}"#));
    assert!(holds("x IS NOT DISTINCT FROM y", r#"{"x":null}"#));
    assert!(holds("x IS NOT DISTINCT FROM 2 + 1", r#"{"x":3}"#), "the right side is an expression");
    assert!(!holds("x IS NOT DISTINCT FROM 1", r#"{"x":2}"#));
    assert!(!holds("x LIKE 'a%'", r#"{"x":7}"#), "a number is not LIKE anything in an open catalog");
    assert!(holds("COALESCE(x, y) = 'b'", r#"{"y":"b"}"#));
    assert!(holds("IFNULL(x, 0) + 1 = 1", r#"{}"#));
    assert!(holds("CAST(x AS BIGINT) = 42", r#"{"x":" 42"}"#));
    assert!(!holds("CAST(x AS BIGINT) = 42", r#"{"x":"forty-two"}"#), "not a number: NULL");
    assert!(holds("CASE WHEN x > 1 THEN TRUE END", r#"{"x":2}"#));
    assert!(!holds("CASE WHEN x > 1 THEN TRUE END", r#"{"x":1}"#), "no branch and no ELSE: NULL");
}

/// Functions over groups and aggregates, as ksqlDB plans them: a GROUP BY expression written
/// again in SELECT is the group's value; a function of an aggregate is computed per row.
#[test]
fn functions_work_over_groups_and_aggregates() {
    let plan = plan(
        "CREATE TABLE spenders AS SELECT LCASE(customer_id) AS customer, ROUND(AVG(total)) AS typical,
             CASE WHEN COUNT(*) > 1 THEN 'regular' ELSE 'new' END AS kind, UCASE(LCASE(customer_id)) AS shout
         FROM order_confirmed WINDOW TUMBLING (SIZE 1 HOUR)
         GROUP BY LCASE(customer_id) HAVING LEN(LCASE(customer_id)) > 2",
        &catalog(),
    )
    .unwrap();
    assert_eq!(plan.select[0].expr, Expr::Group(0));
    assert_eq!(plan.state_shape(), "avg(`total`),count(*)|TUMBLING 3600000|LCASE(`customer_id`)");
    let mut state = crate::stream::PartitionState::default();
    let (mut columns, mut out) = (Vec::new(), Vec::new());
    for (time, payload) in [
        (1, r#"{"customer_id":"Cus_1","quantity":1,"total":10}"#),
        (2, r#"{"customer_id":"CUS_1","quantity":1,"total":15}"#),
        (3, r#"{"customer_id":"ab","quantity":1,"total":15}"#),
    ] {
        let keyed = plan.rekey(time, payload.as_bytes(), &mut columns).unwrap().unwrap();
        state.apply(&plan, &keyed, &mut out);
    }
    let rows: Vec<(&str, Option<&[Value]>)> = out.iter().map(|e| (e.key.as_str(), e.values.as_deref())).collect();
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(rows.len(), 2, "HAVING drops `ab`: {rows:?}");
    assert_eq!(rows[0].1.unwrap(), [text("cus_1"), Value::Int(10), text("new"), text("CUS_1")]);
    assert_eq!(rows[1].1.unwrap(), [text("cus_1"), Value::Int(13), text("regular"), text("CUS_1")]);
}

#[test]
fn functions_case_and_cast_are_refused_where_they_cannot_compute() {
    let refused = |select: &str| {
        let sql = format!("CREATE STREAM s AS SELECT {select} FROM order_confirmed");
        let e = error(&sql);
        (e.column - 27, e.message)
    };
    let taking = |function: &str, found: &str, wanted: &str| {
        format!("Function '{function}' does not accept parameters ({found}): it takes {wanted}")
    };
    assert_eq!(refused("UCASE(total)"), (6, taking("UCASE", "BIGINT", "strings")));
    assert_eq!(refused("ABS(customer_id)"), (4, taking("ABS", "STRING", "a number")));
    assert_eq!(refused("SUBSTRING(customer_id, 'x')"), (23, taking("SUBSTRING", "STRING", "a whole number (BIGINT)")));
    assert_eq!(refused("ROUND(total, 1.5)"), (13, taking("ROUND", "DOUBLE", "a whole number (BIGINT)")));
    assert_eq!(refused("SUBSTRING(customer_id)"), (0, "SUBSTRING takes 2 or 3 arguments, 1 given".into()));
    assert_eq!(refused("IFNULL(total)"), (0, "IFNULL takes 2 arguments, 1 given".into()));
    assert_eq!(refused("CONCAT()"), (0, "CONCAT takes at least 1 argument, 0 given".into()));
    assert_eq!(refused("LEN(*)"), (0, "LEN(*) is not a function; only COUNT takes *".into()));
    assert_eq!(
        refused("COALESCE(total, customer_id)"),
        (16, "COALESCE's arguments are of one type, but `total` is BIGINT and `customer_id` is STRING".into())
    );
    assert_eq!(
        refused("CASE WHEN total THEN 1 END"),
        (10, "WHEN needs a condition (BOOLEAN), but `total` is BIGINT".into())
    );
    assert_eq!(
        refused("CASE WHEN total > 1 THEN 1 ELSE 'none' END"),
        (32, "CASE's values are of one type, but 1 is BIGINT and 'none' is STRING".into())
    );
    assert_eq!(
        refused("CAST(total AS INT)"),
        (14, "whole numbers are BIGINT (64 bits) in tramline: cast to BIGINT".into())
    );
    assert!(refused("CAST(total AS MONEY)").1.starts_with("unknown type `MONEY`; expected BIGINT"));
    assert_eq!(refused("CAST(total AS BOOLEAN)"), (5, "cannot cast `total` (BIGINT) to BOOLEAN".into()));
    assert_eq!(refused("total LIKE 'a%'"), (0, "LIKE matches strings, but `total` is BIGINT".into()));
    assert_eq!(refused("total BETWEEN 'a' AND 'z'"), (0, "cannot compare `total` (BIGINT) with 'a' (STRING)".into()));
    // The grammar: what may follow, where.
    assert_eq!(refused("total NOT 1").1, "expected `BETWEEN`, `IN` or `LIKE`, found `1`");
    assert_eq!(refused("total IS 1").1, "expected `NULL` or `DISTINCT`, found `1`");
    assert_eq!(
        refused("customer_id LIKE 'a!%' ESCAPE '!!'"),
        (30, "expected one character in quotes, such as '!', found `'!!'`".into())
    );
    assert_eq!(refused("customer_id LIKE 'a' ESCAPE 1").1, "expected one character in quotes, such as '!', found `1`");
    assert!(refused("customer_id LIKE 'a' ESCAPE 'it''s'").1.ends_with("found `'it''s'`"));
    assert_eq!(refused("total IS NOT DISTINCT 1").1, "expected `FROM`, found `1`");
    assert_eq!(refused("total IS DISTINCT FROM 'a'"), (0, "cannot compare `total` (BIGINT) with 'a' (STRING)".into()));
    assert_eq!(refused("CASE total WHEN 1 THEN 2 END").1, "expected `WHEN`, found `total`");
    assert_eq!(refused("CASE WHEN total > 1 THEN 2 FROM").1, "expected `WHEN`, `ELSE` or `END`, found `FROM`");
    assert_eq!(refused("CASE WHEN total > 1 THEN 2 ELSE 3").1, "expected `END`, found `FROM`");
    assert_eq!(refused("total IN ()").1, "expected an expression, found `)`");
    assert_eq!(refused("CAST(total BIGINT)").1, "expected `AS`, found `BIGINT`");
    // An aggregate inside a scalar function of a stateless query, or in WHERE.
    assert_eq!(refused("UCASE(MAX(customer_id))"), (6, "aggregate functions need a GROUP BY".into()));
    let e = error("CREATE STREAM s AS SELECT customer_id FROM order_confirmed WHERE ABS(COUNT(*)) > 1");
    assert_eq!((e.column, e.message.as_str()), (70, "aggregate functions belong in SELECT or HAVING, not in WHERE"));
}

/// ksqlDB's PARTITION BY: a stream's rows keyed by a value of their record.
#[test]
fn partition_by_keys_each_row_by_its_values() {
    let plan = plan(
        "CREATE STREAM by_customer AS SELECT order_id, total FROM order_confirmed
         WHERE total > 0 PARTITION BY UCASE(customer_id), quantity",
        &catalog(),
    )
    .unwrap();
    assert!(plan.is_stateless());
    assert_eq!(plan.partition_by.len(), 2);
    let (mut columns, mut values, mut key) = (Vec::new(), Vec::new(), String::new());
    let payload = br#"{"order_id":"ord_1","customer_id":"cus_1","quantity":2,"total":7}"#;
    assert!(plan.select_into(5, payload, &mut columns, &mut values).unwrap());
    assert!(plan.partition_key(5, &columns, &mut key));
    assert_eq!(key, "CUS_1|+|2");
    let no_quantity = br#"{"order_id":"ord_1","customer_id":"cus_1","total":7}"#;
    assert!(plan.select_into(5, no_quantity, &mut columns, &mut values).unwrap());
    assert!(!plan.partition_key(5, &columns, &mut key), "a NULL value: a row without a key");

    let sql = super::plan(
        "CREATE STREAM big AS SELECT order_id, total FROM order_confirmed PARTITION BY customer_id",
        &catalog(),
    );
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .select(["order_id", "total"])
        .select_key(["customer_id"])
        .to_stream("big");
    assert_eq!(dsl.unwrap(), sql.unwrap());

    let e = error(
        "CREATE STREAM s AS SELECT customer_id, count(*) FROM order_confirmed GROUP BY customer_id PARTITION BY total",
    );
    assert_eq!(e.column, 104);
    assert!(e.message.starts_with("PARTITION BY re-keys the records of a query without WINDOW and GROUP BY"));
    let e = error("CREATE STREAM s AS SELECT order_id FROM order_confirmed PARTITION BY COUNT(*)");
    assert_eq!(e.message, "aggregate functions belong in SELECT or HAVING, not in PARTITION BY");
    let mut by_hand = plan.clone();
    by_hand.partition_by = vec![Expr::WindowStart];
    assert_eq!(by_hand.check(), Err("PARTITION BY reads its record only"));
}

/// `SELECT *`: every field of the event, for a query that selects from each record.
#[test]
fn select_star_selects_every_field_of_the_event() {
    let plan = plan("CREATE STREAM big AS SELECT *, total * 2 AS double FROM order_confirmed", &catalog()).unwrap();
    let names: Vec<&str> = plan.select.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["customer_id", "order_id", "quantity", "total", "double"], "the schema's fields, by name");
    let (mut columns, mut values) = (Vec::new(), Vec::new());
    let payload = br#"{"order_id":"ord_1","customer_id":"c","quantity":2,"total":7}"#;
    assert!(plan.select_into(0, payload, &mut columns, &mut values).unwrap());
    let json = serde_json::to_string(&plan.row_json(&values)).unwrap();
    assert_eq!(json, r#"{"customer_id":"c","order_id":"ord_1","quantity":2,"total":7,"double":14}"#);

    let e = error("CREATE STREAM s AS SELECT *, total FROM order_confirmed");
    assert_eq!(
        (e.column, e.message.as_str()),
        (30, "the output column `total` is named twice; give one an alias with AS")
    );
    let e = error("CREATE STREAM s AS SELECT customer_id, * FROM order_confirmed");
    assert_eq!((e.column, e.message.as_str()), (40, "the output column `customer_id` is named twice"));
    let e = error("CREATE TABLE s AS SELECT *, count(*) FROM order_confirmed GROUP BY customer_id");
    assert_eq!(
        (e.column, e.message.as_str()),
        (26, "SELECT * selects the columns of each record; an aggregation names its columns")
    );
    let e = super::plan("CREATE STREAM s AS SELECT * FROM e", &Catalog::open()).unwrap_err();
    assert_eq!(e.message, "SELECT * needs the event's fields, which are unknown here (no schema): name the columns");
    let e = error("CREATE STREAM s AS SELECT * AS everything FROM order_confirmed");
    assert_eq!(e.message, "expected `FROM`, found `AS`");
}

/// As ksqlDB: a GROUP BY without an aggregate is refused, and PARTITION BY is the way to re-key.
#[test]
fn a_group_by_without_an_aggregate_is_refused() {
    let e = error("CREATE TABLE t AS SELECT customer_id FROM order_confirmed GROUP BY customer_id");
    assert_eq!(e.column, 68);
    assert!(e.message.starts_with("a GROUP BY needs an aggregate function"), "{e}");
    assert!(e.message.ends_with("use PARTITION BY without WINDOW"), "{e}");
    // An aggregate in HAVING alone is one.
    plan(
        "CREATE TABLE t AS SELECT customer_id FROM order_confirmed GROUP BY customer_id HAVING COUNT(*) > 1",
        &catalog(),
    )
    .unwrap();
}

/// The DSL writes what SQL's expressions write, and compiles to the same plan.
#[test]
fn the_dsl_has_sqls_scalar_expressions() {
    let sql = plan(
        "CREATE STREAM big AS SELECT order_id, total FROM order_confirmed
         WHERE customer_id LIKE 'cus%' AND total BETWEEN 100 AND 1000 AND quantity IN (1, 2, 3)
           AND CAST(total AS STRING) <> '500' AND UCASE(customer_id) <> 'CUS_X'
           AND CASE WHEN quantity > 2 THEN total > 200 ELSE TRUE END",
        &catalog(),
    )
    .unwrap();
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .filter(col("customer_id").like("cus%"))
        .filter(col("total").between(100, 1000))
        .filter(col("quantity").is_in([1, 2, 3]))
        .filter(col("total").cast(SqlType::Text).not_eq("500"))
        .filter(call(Scalar::Ucase, [col("customer_id")]).not_eq("CUS_X"))
        .filter(case([(col("quantity").gt(2), col("total").gt(200))], Some(lit(true))))
        .select(["order_id", "total"])
        .to_stream("big")
        .unwrap();
    assert_eq!(dsl, sql);
    let sql = plan(
        "CREATE STREAM big AS SELECT order_id, total > 500 AS large, CONCAT(customer_id, '!') AS shout
         FROM order_confirmed",
        &catalog(),
    );
    let dsl = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .select(["order_id"])
        .with_column("large", col("total").gt(500))
        .with_column("shout", call(Scalar::Concat, [col("customer_id"), lit("!")]))
        .to_stream("big");
    assert_eq!(dsl.unwrap(), sql.unwrap());
    let twice = Query::stream::<OrderEvent>(&["OrderConfirmed"]).select(["total"]).with_column("total", lit(1));
    assert_eq!(twice.to_stream("big").unwrap_err(), DslError::DuplicateName("total".into()));
    let misspelt = Query::stream::<OrderEvent>(&["OrderConfirmed"])
        .filter(call(Scalar::Len, [col("custmer_id")]).gt(3))
        .select(["order_id"])
        .to_stream("big")
        .unwrap_err();
    assert!(misspelt.to_string().starts_with("filter: no column `custmer_id`"), "{misspelt}");
}

/// What a review found: ksqlDB's non-reserved PARTITION, long IN lists, mixed numbers, and
/// the messages around functions.
#[test]
fn corners_of_the_scalar_expressions() {
    let open = |sql: &str| super::plan(sql, &Catalog::open());
    // PARTITION names a column, and is never taken for an alias without AS.
    let plan = open("CREATE STREAM s AS SELECT partition FROM e PARTITION BY partition").unwrap();
    assert_eq!((plan.select[0].name.as_str(), plan.partition_by.len()), ("partition", 1));
    assert!(open("CREATE STREAM s AS SELECT x AS partition FROM e").is_ok());
    assert_eq!(open("CREATE STREAM s AS SELECT x partition FROM e").unwrap_err().column, 29);
    // Thousands of values nest a few levels deep: no stack overflow planning or evaluating.
    let values: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
    let sql = format!("CREATE STREAM s AS SELECT x FROM e WHERE x IN ({})", values.join(", "));
    let plan = open(&sql).unwrap();
    let (mut columns, mut row) = (Vec::new(), Vec::new());
    assert!(plan.select_into(0, br#"{"x":4999}"#, &mut columns, &mut row).unwrap());
    assert!(!plan.select_into(0, br#"{"x":5000}"#, &mut columns, &mut row).unwrap());
    // BIGINT and DOUBLE mixed make a DOUBLE, which SUBSTRING does not take as a position.
    let e = error("CREATE STREAM s AS SELECT SUBSTRING(customer_id, COALESCE(quantity, 1.5)) FROM order_confirmed");
    assert_eq!(e.message, "Function 'SUBSTRING' does not accept parameters (DOUBLE): it takes a whole number (BIGINT)");
    let e = error(
        "CREATE STREAM s AS SELECT SUBSTRING(customer_id, CASE WHEN total > 1 THEN 1 ELSE 2.5 END) FROM order_confirmed",
    );
    assert!(e.message.starts_with("Function 'SUBSTRING' does not accept parameters (DOUBLE)"), "{e}");
    // An unknown function inside an aggregate is named as unknown.
    let e = open("CREATE STREAM s AS SELECT k, SUM(FOO(y)) FROM e GROUP BY k").unwrap_err();
    assert!(e.message.starts_with("unknown function `FOO`"), "{e}");
    // ELSE NULL is no ELSE.
    let with_else = open("CREATE STREAM s AS SELECT CASE WHEN x > 1 THEN 1 ELSE NULL END AS c FROM e").unwrap();
    let without = open("CREATE STREAM s AS SELECT CASE WHEN x > 1 THEN 1 END AS c FROM e").unwrap();
    assert_eq!(with_else, without);
}

/// The DSL refuses what SQL refuses of functions and names, and plans `ELSE NULL` as SQL does.
#[test]
fn the_dsl_refuses_a_wrong_number_of_arguments_and_names_that_differ_in_case_only() {
    let stream = || Query::stream::<OrderEvent>(&["OrderConfirmed"]);
    let wrong = stream().filter(call(Scalar::Ifnull, [col("total")]).gt(1)).select(["order_id"]).to_stream("s");
    assert_eq!(
        wrong.unwrap_err(),
        DslError::Invalid("a scalar function is called with a number of arguments it does not take")
    );
    let nested = stream().select(["order_id"]).with_column("n", call(Scalar::Abs, [call(Scalar::Round, [])]));
    assert!(matches!(nested.to_stream("s"), Err(DslError::Invalid(_))));
    let twice = stream().select(["total"]).with_column("TOTAL", lit(1)).to_stream("s");
    assert_eq!(twice.unwrap_err(), DslError::DuplicateName("TOTAL".into()));
    let with_null = stream()
        .select(["order_id"])
        .with_column("c", case([(col("total").gt(1), lit(1))], Some(lit(Value::Null))))
        .to_stream("s");
    let sql = plan(
        "CREATE STREAM s AS SELECT order_id, CASE WHEN total > 1 THEN 1 ELSE NULL END AS c FROM order_confirmed",
        &catalog(),
    );
    assert_eq!(with_null.unwrap(), sql.unwrap());
}

#[test]
fn expressions_nested_past_the_limits_are_refused_instead_of_overflowing_the_stack() {
    let select = |expr: String| format!("CREATE STREAM s AS SELECT {expr} AS x FROM order_confirmed");
    let nested = |open: &str, inner: &str, close: &str, n: usize| select(open.repeat(n) + inner + &close.repeat(n));
    // At the limits: 32 levels inside the outermost expression, 256 operators deep.
    for sql in [
        nested("(", "quantity", ")", 32),
        nested("ABS(", "quantity", ")", 32),
        nested("ABS(", &format!("quantity{}", " + 1".repeat(255)), ")", 32),
        select(format!("quantity{}", " * 2".repeat(256))),
    ] {
        assert!(plan(&sql, &catalog()).is_ok(), "{sql}");
    }
    // Beyond them: an error at the first level or operator past the limit, not an abort. Every query here crashed the
    // test before the limits, on a test thread's 2 MiB stack.
    let deep = 100_000;
    for (sql, column, found) in [
        (nested("(", "1", ")", deep), 60, "`(`"),
        (nested("NOT ", "TRUE", "", deep), 159, "`NOT`"),
        (nested("- ", "1", "", deep), 93, "`-`"),
        (nested("CAST(", "1", " AS BIGINT)", deep), 192, "`CAST`"),
        (select(format!("1{}", " + 1".repeat(deep))), 1053, "`+`"),
        (select(format!("TRUE{}", " OR TRUE".repeat(deep))), 2080, "`OR`"),
    ] {
        let error = error(&sql);
        assert_eq!((error.line, error.column), (1, column), "{error}");
        assert!(error.message.ends_with(&format!("found {found}")), "{error}");
    }
}

mod fuzz {
    use proptest::prelude::*;

    use super::{SqlError, catalog, plan};
    use crate::stream::Catalog;

    /// The grammar's words and the pieces that trip a lexer: quotes and their escapes, comments,
    /// multibyte and blank characters, numbers at the ends of their ranges.
    const TOKENS: &[&str] = &[
        "CREATE",
        "STREAM",
        "TABLE",
        "WITH",
        "AS",
        "SELECT",
        "FROM",
        "WINDOW",
        "TUMBLING",
        "HOPPING",
        "SESSION",
        "SIZE",
        "ADVANCE",
        "BY",
        "GRACE",
        "PERIOD",
        "WHERE",
        "GROUP",
        "PARTITION",
        "HAVING",
        "EMIT",
        "CHANGES",
        "FINAL",
        "AND",
        "OR",
        "NOT",
        "IS",
        "NULL",
        "DISTINCT",
        "TRUE",
        "FALSE",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "CAST",
        "BIGINT",
        "DOUBLE",
        "STRING",
        "BOOLEAN",
        "IN",
        "LIKE",
        "ESCAPE",
        "BETWEEN",
        "COUNT",
        "SUM",
        "AVG",
        "MIN",
        "MAX",
        "ABS",
        "ROUND",
        "SUBSTRING",
        "CONCAT",
        "COALESCE",
        "LEN",
        "WINDOWSTART",
        "WINDOWEND",
        "ROWTIME",
        "MILLISECOND",
        "SECONDS",
        "MINUTE",
        "HOURS",
        "DAY",
        "KAFKA_TOPIC",
        "PARTITIONS",
        "FORMAT",
        "order_confirmed",
        "customer_id",
        "quantity",
        "total",
        "o",
        "s",
        "0",
        "1",
        "-1",
        "10",
        "1.5",
        ".5",
        "1.",
        "1E3",
        "2.5e-3",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "1e400",
        "'a'",
        "''",
        "'it''s'",
        "'%_!'",
        "'",
        "'é€😀'",
        "`customer_id`",
        "`a``b`",
        "``",
        "`",
        "\"total\"",
        "\"",
        "(",
        ")",
        ",",
        ";",
        ".",
        "*",
        "+",
        "-",
        "/",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "--",
        "/*",
        "*/",
        "\n",
        "\t",
        " ",
        "\r\n",
        "é",
        "€",
        "😀",
        "\u{feff}",
        "\u{0}",
        "\\",
    ];

    /// Every error points inside the query: a line it has, a column on that line or just
    /// after its end.
    fn check(sql: &str, catalog: &Catalog) -> Result<(), TestCaseError> {
        let Err(error) = plan(sql, catalog) else { return Ok(()) };
        let SqlError { line, column, .. } = &error;
        let text = sql.strip_prefix('\u{feff}').unwrap_or(sql);
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!((1..=lines.len()).contains(line), "{error} in {sql:?}");
        let width = lines[line - 1].chars().count();
        prop_assert!((1..=width + 1).contains(column), "{error} in {sql:?}");
        prop_assert!(!error.render(sql).is_empty());
        Ok(())
    }

    fn soup() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(TOKENS), 0..40).prop_map(|tokens| tokens.join(" "))
    }

    /// Starts as a query does, so that the soup reaches the clauses after SELECT.
    fn query_soup() -> impl Strategy<Value = String> {
        (soup(), soup())
            .prop_map(|(select, rest)| format!("CREATE TABLE t AS SELECT {select} FROM order_confirmed {rest}"))
    }

    /// A query whose clauses are soup: the planner's checks of each clause see odd input too.
    fn clause_soup() -> impl Strategy<Value = String> {
        let number =
            prop_oneof![Just("0"), Just("1"), Just("7"), Just("9223372036854775807"), Just("99999999999999999999")];
        let unit = prop_oneof![Just("MILLISECOND"), Just("SECONDS"), Just("DAYS"), Just("WEEKS")];
        let window = prop_oneof![
            (number.clone(), unit.clone()).prop_map(|(n, u)| format!("TUMBLING (SIZE {n} {u})")),
            (number.clone(), unit.clone(), number.clone(), unit.clone(), number.clone(), unit.clone()).prop_map(
                |(a, u, b, v, c, w)| format!("HOPPING (SIZE {a} {u}, ADVANCE BY {b} {v}, GRACE PERIOD {c} {w})")
            ),
            (number, unit).prop_map(|(n, u)| format!("SESSION ({n} {u})")),
        ];
        (soup(), window, soup(), soup(), soup()).prop_map(|(select, window, filter, group, having)| {
            format!(
                "CREATE TABLE t AS SELECT customer_id, {select} FROM order_confirmed o WINDOW {window} \
                 WHERE {filter} GROUP BY {group} HAVING {having} EMIT FINAL"
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

        #[test]
        fn any_text_plans_or_is_refused_at_a_place_inside_it(sql in any::<String>()) {
            check(&sql, &catalog())?;
        }

        #[test]
        fn any_token_soup_plans_or_is_refused_at_a_place_inside_it(sql in prop_oneof![soup(), query_soup(), clause_soup()]) {
            check(&sql, &catalog())?;
            check(&sql, &Catalog::open())?;
        }

        #[test]
        fn a_query_with_any_tokens_glued_together_is_refused_inside_it(sql in query_soup()) {
            check(&sql.replace(' ', ""), &catalog())?;
        }
    }
}
