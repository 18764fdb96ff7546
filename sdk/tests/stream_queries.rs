//! Stream queries in an app, on every backend: the reference query over several partitions
//! (through the repartition topic), late records, and a restart in the middle of a window that
//! neither loses nor double-counts. Event times are set on each event (virtual time): nothing
//! here waits for the wall clock.
//!
//! Memory and embedded always; Kafka with the `kafka` feature (`scripts/test` runs it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::log::{EventLog, Headers, LogError, OutRecord, TopicPartition, TopicSpec, partition_for};
use tramline::runtime::{RuntimeError, Settings, dead_letter};
use tramline::stream::{Catalog, Keyed, Plan, QueryRow, Value, repartition_topic, sql};
use tramline::{App, Envelope, Event, MemoryLog, Message, ReferenceId, codec};

mod faults;

use faults::FaultyLog;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "ord")]
pub struct OrderId(uuid::Uuid);

/// Orders of a shop (module `shop`, topic `shop.events`), with the platform's field names.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "shop", key = order_id)]
pub enum OrderEvent {
    Placed { order_id: OrderId, customer_id: String },
    Confirmed { order_id: OrderId, customer_id: String, total: i64 },
}

const PATIENCE: Duration = Duration::from_secs(60);
const MINUTE: i64 = 60_000;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The repartition topic is purged after every batch: every test checks that what the
/// aggregation still needs is never deleted.
fn settings() -> Settings {
    Settings {
        partitions: 4,
        poll_timeout: Duration::from_millis(20),
        repartition_purge_interval: Duration::ZERO,
        ..Settings::default()
    }
}

fn query(sql: &str, name: &str) -> Plan {
    let sql = sql.replacen("suspicious_sales", name, 1);
    sql::plan(&sql, &Catalog::new().with::<OrderEvent>()).unwrap_or_else(|e| panic!("{}", e.render(&sql)))
}

const REFERENCE: &str = "CREATE STREAM suspicious_sales AS
SELECT customer_id, count(*)
FROM order_confirmed
WINDOW TUMBLING (SIZE 10 MINUTE)
GROUP BY customer_id
HAVING count(*) > 4";

/// An hour that starts a window, far from others' data on a shared broker.
fn base() -> i64 {
    Timestamp::now().as_millisecond() / (60 * MINUTE) * (60 * MINUTE) - 24 * 60 * MINUTE
}

async fn append(log: &dyn EventLog, events: &[(i64, OrderEvent)]) {
    let records = events
        .iter()
        .map(|(time, event)| {
            codec::encode(&Envelope::new(event.clone(), Timestamp::from_millisecond(*time).expect("a time")))
        })
        .collect();
    log.append(records).await.expect("appended");
}

fn confirmed(customer: &str, total: i64) -> OrderEvent {
    OrderEvent::Confirmed { order_id: OrderId::generate(), customer_id: customer.to_owned(), total }
}

async fn start(log: Arc<dyn EventLog>, plan: Plan) -> (App, tramline::stream::QueryHandle) {
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, 4)).await.expect("the source topic");
    let mut app = App::new(log).with_settings(settings());
    let handle = app.query(plan).await.expect("registered");
    within("the app to start", app.start()).await.expect("started");
    (app, handle)
}

fn rows_of<'a>(rows: &'a [QueryRow], keys: &BTreeSet<String>) -> Vec<&'a QueryRow> {
    rows.iter().filter(|r| keys.contains(&r.key)).collect()
}

/// A column of a row that is not a deletion.
fn column<'a>(row: &'a QueryRow, name: &str) -> &'a serde_json::Value {
    let columns = row.columns.as_ref().unwrap_or_else(|| panic!("a row, not a deletion: {row:?}"));
    &columns[name]
}

/// The reference query as written: customers keyed by order (spread over four partitions) are
/// re-keyed by customer; those with more than four confirmed orders in one ten-minute window
/// are flagged, others not; a record at a window's end counts in the next window.
async fn reference_query_flags_exactly_the_customers_over_four_in_a_window(log: Arc<dyn EventLog>) {
    let name = format!("suspicious_sales_{}", uuid::Uuid::now_v7().simple());
    let (app, handle) = start(log.clone(), query(REFERENCE, &name)).await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let customer = |n: &str| format!("cus_{n}_{run}");
    let t0 = base();
    let mut events = Vec::new();
    // Six orders within minutes: flagged.
    events.extend((0..6).map(|i| (t0 + i * MINUTE, confirmed(&customer("burst"), 100))));
    // Four in one window and four in the next (the fifth lands exactly at the window end).
    events.extend((0..4).map(|i| (t0 + 10 * MINUTE - 4 + i, confirmed(&customer("edge"), 100))));
    events.extend((0..4).map(|i| (t0 + 10 * MINUTE + i, confirmed(&customer("edge"), 100))));
    // Many orders, days apart.
    events.extend((0..8).map(|i| (t0 + i * 30 * MINUTE, confirmed(&customer("steady"), 100))));
    // Quiet customers, one order each: with them, a dozen keys to spread over the partitions.
    events.extend((0..9).map(|i| (t0 + i, confirmed(&customer(&format!("quiet{i}")), 100))));
    // Placed, never confirmed: another event type of the same topic.
    events.extend(
        (0..9).map(|i| (t0 + i, OrderEvent::Placed { order_id: OrderId::generate(), customer_id: customer("placer") })),
    );
    append(&*log, &events).await;
    within("the query to settle", app.settle()).await.expect("settled");

    let keys: BTreeSet<String> = ["burst", "edge", "steady", "placer"].iter().map(|n| customer(n)).collect();
    let rows = handle.rows().await.expect("rows");
    let rows = rows_of(&rows, &keys);
    let flagged: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(flagged, BTreeSet::from([customer("burst").as_str()]));
    // EMIT CHANGES: one row per update past HAVING, counts 5 and 6.
    let counts: Vec<i64> = rows.iter().map(|r| column(r, "KSQL_COL_0").as_i64().expect("a count")).collect();
    assert_eq!(counts, [5, 6]);
    assert_eq!(column(rows[0], "customer_id"), customer("burst").as_str());
    assert_eq!(rows[0].window.map(|w| w.start), Some(t0));

    // The records went through the repartition topic, spread over its partitions.
    let mut used = 0;
    for partition in 0..4 {
        let end = log.end_offset(&TopicPartition::new(repartition_topic(&name), partition)).await.expect("an end");
        used += u32::from(end > 0);
    }
    // A dozen keys all on one of four partitions: once in 4^11 runs.
    assert!(used > 1, "records of several customers use several partitions");
    // Counted, they were deleted from it (the embedded log keeps each partition's last one).
    let left = records_of(&*log, &repartition_topic(&name)).await;
    assert!(left.len() <= 4, "31 records re-keyed, {} left on the repartition topic", left.len());
    app.shutdown().await.expect("a clean shutdown");
}

const FINAL: &str = "CREATE TABLE suspicious_sales AS
SELECT customer_id, count(*) AS orders, sum(total) AS spent, WINDOWSTART, WINDOWEND
FROM order_confirmed
WINDOW TUMBLING (SIZE 10 MINUTES, GRACE PERIOD 2 MINUTES)
GROUP BY customer_id
EMIT FINAL";

/// A restart in the middle of a window: the windows come back from the changelog, so the
/// final rows count every record once, each window is emitted once, and late records dropped
/// before the restart stay counted after it.
async fn a_restart_in_the_middle_of_a_window_neither_loses_nor_double_counts(
    open: impl AsyncFn() -> Arc<dyn EventLog>,
) {
    let name = format!("restart_{}", uuid::Uuid::now_v7().simple());
    let plan = query(FINAL, &name);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let customers: Vec<String> = (0..12).map(|i| format!("cus_{i}_{run}")).collect();
    let t0 = base();

    let log = open().await;
    let (app, handle) = start(log.clone(), plan.clone()).await;
    let first: Vec<(i64, OrderEvent)> = customers
        .iter()
        .enumerate()
        .flat_map(|(i, c)| (0..3).map(move |j| (t0 + j * MINUTE, confirmed(c, i as i64))))
        .collect();
    append(&*log, &first).await;
    // Records of one customer sit on several source partitions: settle before the next time
    // step so that they reach the repartition topic in event-time order.
    within("the first records", app.settle()).await.expect("settled");
    // Stream time reaches t0 + 13 min on customer 0's partition: its first window closes.
    append(&*log, &[(t0 + 13 * MINUTE, confirmed(&customers[0], 1))]).await;
    within("the first run to settle", app.settle()).await.expect("settled");
    let before_restart = handle.rows().await.expect("rows").len();
    app.shutdown().await.expect("a clean shutdown");
    drop(handle);
    drop(log);

    let log = open().await;
    let (app, handle) = start(log.clone(), plan).await;
    // A record for the window that closed before the restart: late by the restored stream
    // time alone (a fresh state would open the window again and emit it twice).
    append(&*log, &[(t0 + 5 * MINUTE, confirmed(&customers[0], 1))]).await;
    within("the late record", app.settle()).await.expect("settled");
    let second: Vec<(i64, OrderEvent)> =
        customers.iter().enumerate().map(|(i, c)| (t0 + 14 * MINUTE, confirmed(c, i as i64))).collect();
    append(&*log, &second).await;
    within("the second records", app.settle()).await.expect("settled");
    // Far ahead, on every customer's partition: every window closes.
    let closing: Vec<(i64, OrderEvent)> = customers.iter().map(|c| (t0 + 60 * MINUTE, confirmed(c, 0))).collect();
    append(&*log, &closing).await;
    within("the second run to settle", app.settle()).await.expect("settled");

    let keys: BTreeSet<String> = customers.iter().cloned().collect();
    let all = handle.rows().await.expect("rows");
    assert!(all.len() >= before_restart, "the sink keeps the first run's rows");
    let mut per_window: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for row in rows_of(&all, &keys) {
        per_window
            .entry((row.key.clone(), row.window.expect("a window").start))
            .or_default()
            .push(column(row, "orders").as_i64().expect("a count"));
        assert_eq!(column(row, "WINDOWSTART").as_i64(), row.window.map(|w| w.start));
        assert_eq!(column(row, "WINDOWEND").as_i64(), row.window.map(|w| w.end));
    }
    for (i, customer) in customers.iter().enumerate() {
        let first_window = &per_window[&(customer.clone(), t0)];
        assert_eq!(first_window, &[3], "{customer}: one final row for [t0, t0+10m), with its three orders");
        let second_window = &per_window[&(customer.clone(), t0 + 10 * MINUTE)];
        let expected = if i == 0 { 2 } else { 1 };
        assert_eq!(second_window, &[expected], "{customer}: one final row for [t0+10m, t0+20m)");
    }
    assert_eq!(handle.late_records(), 1, "the record for the closed window was dropped and counted");
    app.shutdown().await.expect("a clean shutdown");
}

/// A TABLE's row that stops passing HAVING is deleted on the sink: a tombstone under the row's
/// key (`key@windowstart`), read back as a row without columns.
async fn a_table_deletes_a_row_that_stops_passing_having(log: Arc<dyn EventLog>) {
    let name = format!("small_spenders_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE TABLE suspicious_sales AS SELECT customer_id, SUM(total) AS spent
        FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id HAVING SUM(total) < 300";
    let (app, handle) = start(log.clone(), query(sql, &name)).await;
    let customer = format!("cus_big_{}", uuid::Uuid::now_v7().simple());
    let t0 = base();
    // One at a time: orders keyed by order id come from different partitions, in any order.
    for (i, total) in [100, 100, 150, 50].into_iter().enumerate() {
        append(&*log, &[(t0 + i as i64 * MINUTE, confirmed(&customer, total))]).await;
        within("the query to settle", app.settle()).await.expect("settled");
    }

    let rows = handle.rows().await.expect("rows");
    let rows = rows_of(&rows, &BTreeSet::from([customer.clone()]));
    let shown: Vec<Option<i64>> = rows
        .iter()
        .map(|r| r.columns.as_ref().map(|_| column(r, "spent").as_i64().expect("a sum")))
        .collect();
    // 100, 200, then 350 fails HAVING: the row goes, once (400 has nothing left to delete).
    assert_eq!(shown, [Some(100), Some(200), None]);
    assert!(rows.iter().all(|r| r.window.map(|w| w.start) == Some(t0)));
    let sink = records_of(&*log, &name).await;
    let tombstone = sink.iter().find(|r| r.value.is_none()).expect("a tombstone on the sink");
    assert_eq!(tombstone.key.as_deref(), Some(format!("{customer}@{t0}").as_bytes()));
    app.shutdown().await.expect("a clean shutdown");
}

/// GROUP BY without WINDOW: one row per customer over all time, keyed by the customer alone and
/// without window headers; an order a month older than the others still counts, and the sums
/// go on from the changelog after a restart.
async fn a_table_without_windows_sums_each_key_over_all_time_across_a_restart(
    open: impl AsyncFn() -> Arc<dyn EventLog>,
    compacts_on_open: bool,
) {
    let name = format!("spent_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE TABLE suspicious_sales AS SELECT customer_id, SUM(total) AS spent, COUNT(*) AS orders
        FROM order_confirmed GROUP BY customer_id";
    let plan = query(sql, &name);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (ada, bob) = (format!("cus_ada_{run}"), format!("cus_bob_{run}"));
    let t0 = base();
    let day = 24 * 60 * MINUTE;

    let customers = BTreeSet::from([ada.clone(), bob.clone()]);
    let shown = |rows: &[QueryRow], customer: &str| -> Vec<(i64, i64)> {
        (rows_of(rows, &customers).iter().filter(|r| r.key == customer))
            .map(|r| (column(r, "spent").as_i64().expect("a sum"), column(r, "orders").as_i64().expect("a count")))
            .collect()
    };

    let log = open().await;
    let (app, handle) = start(log.clone(), plan.clone()).await;
    // One at a time: orders keyed by order id come from different partitions, in any order.
    for (time, customer, total) in [(t0, &ada, 100), (t0 + 3 * day, &ada, 50), (t0 - 30 * day, &ada, 7), (t0, &bob, 1)]
    {
        append(&*log, &[(time, confirmed(customer, total))]).await;
        within("the query to settle", app.settle()).await.expect("settled");
    }
    assert_eq!(shown(&handle.rows().await.expect("rows"), &ada), [(100, 1), (150, 2), (157, 3)]);
    app.shutdown().await.expect("a clean shutdown");
    drop(handle);
    drop(log);

    let log = open().await;
    let (app, handle) = start(log.clone(), plan).await;
    append(&*log, &[(t0 + day, confirmed(&ada, 1_000))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    assert_eq!(handle.late_records(), 0, "nothing is late without windows");

    let rows = handle.rows().await.expect("rows");
    // The sink is compacted: a log that compacts when it opens (embedded) kept the latest row.
    let expected: &[(i64, i64)] = match compacts_on_open {
        true => &[(157, 3), (1_157, 4)],
        false => &[(100, 1), (150, 2), (157, 3), (1_157, 4)],
    };
    assert_eq!(shown(&rows, &ada), expected);
    assert_eq!(shown(&rows, &bob), [(1, 1)]);
    assert!(rows.iter().all(|r| r.window.is_none()), "{rows:?}");
    let sink = records_of(&*log, &name).await;
    let ada_row = sink.iter().find(|r| r.key.as_deref() == Some(ada.as_bytes())).expect("keyed by the customer alone");
    assert_eq!(ada_row.header("windowstart"), None);
    app.shutdown().await.expect("a clean shutdown");
}

/// Without GROUP BY and WINDOW, each record that passes WHERE is a row under its own key: one
/// processor, no repartition or changelog topic.
async fn a_query_without_group_by_selects_each_record_under_its_key(log: Arc<dyn EventLog>) {
    let name = format!("big_orders_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE STREAM suspicious_sales AS SELECT customer_id AS customer, total FROM order_confirmed WHERE total >= 100";
    let (app, handle) = start(log.clone(), query(sql, &name)).await;
    let customer = format!("cus_{}", uuid::Uuid::now_v7().simple());
    let t0 = base();
    let events = [
        (t0, confirmed(&customer, 250)),
        (t0 + 1, confirmed(&customer, 99)),
        (t0 + 2, OrderEvent::Placed { order_id: OrderId::generate(), customer_id: customer.clone() }),
        (t0 - 1, confirmed(&customer, 100)),
    ];
    append(&*log, &events).await;
    // A record without a key (written by another producer) makes a row without a key.
    let mut keyless =
        codec::encode(&Envelope::new(confirmed(&customer, 300), Timestamp::from_millisecond(t0 + 3).unwrap()));
    keyless.key = None;
    log.append(vec![keyless]).await.expect("appended");
    within("the query to settle", app.settle()).await.expect("settled");

    let mut sink = records_of(&*log, &name).await;
    let at = sink.iter().position(|r| r.key.is_none()).expect("the keyless record's row");
    let keyless_row = sink.remove(at);
    assert_eq!(keyless_row.header(codec::headers::SUBJECT), None, "no empty subject");
    let mut rows: Vec<(Vec<u8>, i64, i64)> = sink
        .iter()
        .map(|r| {
            let row: serde_json::Value = serde_json::from_slice(r.value.as_deref().expect("a row")).expect("JSON");
            assert_eq!(row["customer"], customer.as_str());
            assert_eq!(r.header("windowstart"), None);
            (r.key.as_deref().expect("a key").to_vec(), r.timestamp, row["total"].as_i64().expect("a total"))
        })
        .collect();
    rows.sort_by_key(|(_, time, _)| *time);
    let order_key =
        |i: usize| codec::encode(&Envelope::new(events[i].1.clone(), Timestamp::UNIX_EPOCH)).key.expect("a key");
    assert_eq!(rows, [(order_key(3).to_vec(), t0 - 1, 100), (order_key(0).to_vec(), t0, 250)]);
    assert_eq!(handle.rows().await.expect("rows").len(), 3);
    assert!(handle.rows().await.expect("rows").iter().all(|r| r.window.is_none()));
    for internal in [repartition_topic(&name), tramline::stream::changelog_topic(&name)] {
        assert_eq!(log.partition_count(&internal).await.expect("asked"), None, "no topic {internal}");
    }
    app.shutdown().await.expect("a clean shutdown");
}

/// A TABLE's sink is compacted, as ksqlDB's, and a windowed one's rows expire too; one made
/// before that, keeping rows longer, is used as it is. A STREAM's sink keeps every row: a
/// compacted one is refused, as it would lose rows.
async fn a_tables_sink_is_compacted_and_a_kept_one_is_still_used(log: Arc<dyn EventLog>) {
    let windowed = "CREATE TABLE suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
        FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id";
    let name = format!("expiring_{}", uuid::Uuid::now_v7().simple());
    let (app, _handle) = start(log.clone(), query(windowed, &name)).await;
    app.shutdown().await.expect("a clean shutdown");
    let partitions = log.partition_count(&name).await.expect("asked").expect("the sink");
    let compacted = log.create_topic(&TopicSpec::compact(&name, partitions)).await;
    assert!(
        matches!(compacted, Err(LogError::CleanupMismatch { .. })),
        "a windowed table's rows expire: {compacted:?}"
    );
    // A week at least, whatever the retention asked now (the existing one stands).
    let week = Duration::from_secs(7 * 24 * 3600);
    log.create_topic(&TopicSpec::compact_and_expire(&name, partitions, week))
        .await
        .expect("rows that expire");
    let name = format!("compacted_windows_{}", uuid::Uuid::now_v7().simple());
    log.create_topic(&TopicSpec::compact(&name, 4)).await.expect("an earlier tramline's sink");
    let (app, _handle) = start(log.clone(), query(windowed, &name)).await;
    app.shutdown().await.expect("a clean shutdown");

    let table = "CREATE TABLE suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
        FROM order_confirmed GROUP BY customer_id";
    let name = format!("compacted_{}", uuid::Uuid::now_v7().simple());
    let (app, _handle) = start(log.clone(), query(table, &name)).await;
    app.shutdown().await.expect("a clean shutdown");
    let partitions = log.partition_count(&name).await.expect("asked").expect("the sink");
    let kept = log.create_topic(&TopicSpec::keep(&name, partitions)).await;
    assert!(matches!(kept, Err(LogError::CleanupMismatch { .. })), "compacted: {kept:?}");

    let name = format!("kept_{}", uuid::Uuid::now_v7().simple());
    log.create_topic(&TopicSpec::keep(&name, 4)).await.expect("an earlier tramline's sink");
    let (app, handle) = start(log.clone(), query(table, &name)).await;
    let customer = format!("cus_{}", uuid::Uuid::now_v7().simple());
    append(&*log, &[(base(), confirmed(&customer, 1)), (base() + 1, confirmed(&customer, 2))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    let rows = handle.rows().await.expect("rows");
    assert_eq!(rows_of(&rows, &BTreeSet::from([customer])).len(), 2, "{rows:?}");
    app.shutdown().await.expect("a clean shutdown");

    let stream = table.replacen("TABLE", "STREAM", 1);
    let name = format!("stream_{}", uuid::Uuid::now_v7().simple());
    log.create_topic(&TopicSpec::compact(&name, 4)).await.expect("a compacted topic");
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, 4)).await.expect("the source topic");
    let mut app = App::new(log.clone()).with_settings(settings());
    let refused = app.query(query(&stream, &name)).await.map(|_| ()).unwrap_err();
    let said = refused.to_string();
    assert!(
        matches!(&refused, RuntimeError::SinkMismatch { mismatch, .. } if matches!(**mismatch, LogError::CleanupMismatch { .. })),
        "{said}"
    );
    assert!(said.contains(&format!("tramline reset-query --name {name} --delete-sink --data DIR")), "{said}");

    // A windowed TABLE that loses its windows would keep rows on a sink that expires them.
    let name = format!("unwindowed_{}", uuid::Uuid::now_v7().simple());
    let (app, _handle) = start(log.clone(), query(windowed, &name)).await;
    app.shutdown().await.expect("a clean shutdown");
    let mut app = App::new(log.clone()).with_settings(settings());
    let refused = app.query(query(table, &name)).await.map(|_| ()).unwrap_err();
    assert!(matches!(refused, RuntimeError::SinkMismatch { .. }), "{refused}");
    assert!(refused.to_string().contains("reset-query"), "{refused}");
}

/// A query that ran as an aggregation cannot run as a query without GROUP BY under the same
/// name, nor the other way: it would add rows of another shape to the same sink. Reset, it
/// starts over from the beginning of its source, into a new sink.
async fn a_query_that_changes_kind_under_its_name_is_refused(log: Arc<dyn EventLog>) {
    let stateless = "CREATE STREAM suspicious_sales AS SELECT customer_id FROM order_confirmed";
    let aggregation = "CREATE STREAM suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
        FROM order_confirmed GROUP BY customer_id";
    let customer = format!("cus_changing_{}", uuid::Uuid::now_v7().simple());
    let mut sent = 0;
    for (first, then, was, group) in [
        (stateless, aggregation, "a query without GROUP BY", "select"),
        (aggregation, stateless, "an aggregation", "rekey"),
    ] {
        let name = format!("changing_{}", uuid::Uuid::now_v7().simple());
        let (app, _handle) = start(log.clone(), query(first, &name)).await;
        append(&*log, &[(base(), confirmed(&customer, 1))]).await;
        sent += 1;
        within("the query to settle", app.settle()).await.expect("settled");
        app.shutdown().await.expect("a clean shutdown");

        let mut app = App::new(log.clone()).with_settings(settings());
        let refused = app.query(query(then, &name)).await.map(|_| ()).unwrap_err();
        let message = refused.to_string();
        assert!(matches!(&refused, RuntimeError::QueryKindChanged { was: w, .. } if *w == was), "{message}");
        assert!(message.contains(&format!("group `{name}.{group}` has positions")), "{message}");
        assert!(
            message.contains(&format!("`tramline reset-query --name {name} --delete-sink --data DIR`")),
            "{message}"
        );
        // The same kind again goes on where it was.
        let (app, _handle) = start(log.clone(), query(first, &name)).await;
        app.shutdown().await.expect("a clean shutdown");

        let reset = tramline::runtime::reset_query(&*log, &name, Some(&name)).await.expect("reset");
        let internal = match group {
            "select" => vec![],
            _ => vec![tramline::stream::changelog_topic(&name), repartition_topic(&name)],
        };
        assert_eq!(reset.topics, [internal, vec![name.clone()]].concat(), "what existed");
        let (app, handle) = start(log.clone(), query(then, &name)).await;
        within("the query to settle", app.settle()).await.expect("settled");
        let rows = handle.rows().await.expect("rows");
        let mine: Vec<_> = rows.iter().filter(|row| column(row, "customer_id") == customer.as_str()).collect();
        match then == aggregation {
            true => assert_eq!(column(mine.last().expect("a row"), "orders"), sent, "counted from the beginning"),
            false => assert_eq!(mine.len() as i64, sent, "each record from the beginning: {rows:?}"),
        }
        app.shutdown().await.expect("a clean shutdown");
    }
}

/// PARTITION BY keys each row by values of its record, so that one customer's rows share a
/// partition; scalar functions and CASE compute the row; a NULL key value makes a keyless row.
async fn a_partition_by_query_keys_each_row_by_its_values(log: Arc<dyn EventLog>) {
    let name = format!("by_customer_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE STREAM suspicious_sales AS
        SELECT LCASE(customer_id) AS customer, CASE WHEN total >= 100 THEN 'large' ELSE 'small' END AS size
        FROM order_confirmed WHERE customer_id NOT LIKE 'test%'
        PARTITION BY UCASE(CASE WHEN LEN(customer_id) > 0 THEN customer_id END)";
    let (app, _handle) = start(log.clone(), query(sql, &name)).await;
    let customers: Vec<String> = (0..6).map(|i| format!("Cus_{i}_{}", uuid::Uuid::now_v7().simple())).collect();
    let t0 = base();
    let mut events: Vec<(i64, OrderEvent)> = Vec::new();
    for (i, customer) in customers.iter().enumerate() {
        events.push((t0 + i as i64, confirmed(customer, 250)));
        events.push((t0 + 10 + i as i64, confirmed(customer, 50)));
    }
    events.push((t0 + 20, confirmed("test_customer", 500)));
    events.push((t0 + 21, confirmed("", 500)));
    append(&*log, &events).await;
    within("the query to settle", app.settle()).await.expect("settled");

    let sink = records_of(&*log, &name).await;
    assert_eq!(sink.len(), 13, "every record but the test customer's");
    let partitions = log.partition_count(&name).await.expect("asked").expect("the sink");
    for customer in &customers {
        let key = customer.to_uppercase();
        let rows: Vec<_> = sink.iter().filter(|r| r.key.as_deref() == Some(key.as_bytes())).collect();
        assert_eq!(rows.len(), 2, "both of {customer}'s orders, under the upper-case key");
        for row in rows {
            assert_eq!(row.partition, partition_for(key.as_bytes(), partitions));
            let value: serde_json::Value = serde_json::from_slice(row.value.as_deref().expect("a row")).expect("JSON");
            let size = if row.timestamp < t0 + 10 { "large" } else { "small" };
            assert_eq!(value, serde_json::json!({"customer": customer.to_lowercase(), "size": size}));
        }
    }
    let keyless: Vec<_> = sink.iter().filter(|r| r.key.is_none()).collect();
    assert_eq!(keyless.len(), 1, "the empty customer's row: PARTITION BY gave NULL");
    assert_eq!(keyless[0].header(codec::headers::SUBJECT), None);
    app.shutdown().await.expect("a clean shutdown");
}

/// The sink's rows are JSON objects with their columns in SELECT order (not sorted by name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sink_rows_keep_the_select_order() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("ordered_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE STREAM suspicious_sales AS SELECT SUM(total) AS spent, customer_id, COUNT(*) AS orders
        FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id";
    let (app, handle) = start(log.clone(), query(sql, &name)).await;
    append(&*log, &[(base(), confirmed("cus_ordered", 250))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    let sink = records_of(&*log, &name).await;
    let values: Vec<String> = sink
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(values, [r#"{"spent":250,"customer_id":"cus_ordered","orders":1}"#]);
    let rows = handle.rows().await.expect("rows");
    let columns = rows[0].columns.as_ref().expect("a row");
    assert_eq!(columns.iter().map(|(name, _)| name).collect::<Vec<_>>(), ["spent", "customer_id", "orders"]);
    assert_eq!((&columns["orders"], &columns["missing"]), (&serde_json::json!(1), &serde_json::Value::Null));
    app.shutdown().await.expect("a clean shutdown");
}

/// `WITH (KAFKA_TOPIC = ..., PARTITIONS = ...)`: the rows go to that topic, of that many
/// partitions, and the handle reads them there; nothing is written under the query's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_with_clause_sends_the_rows_to_its_topic() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("flagged_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE TABLE suspicious_sales WITH (KAFKA_TOPIC = 'partner.flags', PARTITIONS = 1, FORMAT = 'JSON')
        AS SELECT customer_id, COUNT(*) AS orders FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES)
        GROUP BY customer_id";
    let (app, handle) = start(log.clone(), query(sql, &name)).await;
    assert_eq!((handle.name(), handle.topic()), (name.as_str(), "partner.flags"));
    append(&*log, &[(base(), confirmed("cus_with", 250)), (base() + 1, confirmed("cus_with", 100))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    assert_eq!(log.partition_count("partner.flags").await.expect("a count"), Some(1));
    assert_eq!(log.partition_count(&name).await.expect("a count"), None, "no topic under the query's name");
    let rows = handle.rows().await.expect("rows");
    let orders: Vec<&serde_json::Value> = rows.iter().map(|row| column(row, "orders")).collect();
    assert_eq!(orders, [&serde_json::json!(1), &serde_json::json!(2)]);
    assert_eq!(records_of(&*log, "partner.flags").await.len(), 2);
    app.shutdown().await.expect("a clean shutdown");
}

/// A query changed under the same name (other aggregates) does not restore the old query's
/// windows into the new plan: it stops with an error that says so and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_changed_query_refuses_the_old_querys_changelog() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("changed_{}", uuid::Uuid::now_v7().simple());
    let (app, _) = start(log.clone(), query(REFERENCE, &name)).await;
    append(&*log, &[(base(), confirmed("cus_changed", 250))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    app.shutdown().await.expect("a clean shutdown");

    let changed = "CREATE STREAM suspicious_sales AS SELECT customer_id, SUM(total) AS spent, count(*) AS n
        FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id";
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, 4)).await.expect("the source topic");
    let mut app = App::new(log.clone()).with_settings(settings());
    app.query(query(changed, &name)).await.expect("registered");
    let started = within("the app to start or fail", app.start()).await;
    let error = match started {
        Err(error) => error.to_string(),
        Ok(()) => within("the query to fail", app.settle()).await.expect_err("the restore fails").to_string(),
    };
    assert!(error.contains("changed since its changelog was written") && error.contains("new name"), "{error}");
}

/// `record` with header `name` set to `value`, or without it.
fn with_header(mut record: OutRecord, name: &str, value: Option<&[u8]>) -> OutRecord {
    let mut headers = Headers::builder(256);
    for (n, v) in record.headers.iter().filter(|(n, _)| *n != name) {
        headers.push(n, v);
    }
    if let Some(value) = value {
        headers.push(name, value);
    }
    record.headers = headers.build();
    record
}

/// The query refuses what every other reader of the topic refuses (a newer schema version,
/// a missing or broken CloudEvents attribute, no type, a tombstone, a field it reads of
/// another type than the event's): dead-lettered, never counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_records_other_readers_refuse_are_dead_lettered_not_counted() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("refusing_{}", uuid::Uuid::now_v7().simple());
    let (app, handle) = start(log.clone(), query(REFERENCE, &name)).await;
    let customer = "cus_refused";
    let t0 = base();
    let good =
        |i: i64| codec::encode(&Envelope::new(confirmed(customer, 100), Timestamp::from_millisecond(t0 + i).unwrap()));
    let mut tombstone = good(5);
    tombstone.value = None;
    let mut numbered = good(10);
    let mut payload: serde_json::Value = serde_json::from_slice(numbered.value.as_deref().unwrap()).unwrap();
    payload["customer_id"] = serde_json::json!(42);
    numbered.value = Some(serde_json::to_vec(&payload).unwrap().into());
    let bad = vec![
        with_header(good(4), "ce_schemaversion", Some(b"99")),
        with_header(good(5), "ce_schemaversion", Some(b"0")),
        with_header(good(6), "ce_schemaversion", Some(b"x")),
        with_header(good(7), "ce_id", None),
        with_header(good(8), "ce_time", Some(b"yesterday")),
        with_header(good(9), "ce_type", None),
        tombstone,
        numbered,
    ];
    let letters = bad.len() as u64;
    // Four good orders: one short of being flagged, which any bad one counted would make.
    log.append((0..4).map(good).chain(bad).collect()).await.expect("appended");
    within("the query to settle", app.settle()).await.expect("settled");

    let rows = handle.rows().await.expect("rows");
    assert!(rows.iter().all(|r| r.key != customer), "not flagged: {rows:?}");
    let dlq = dead_letter::topic_of(&format!("{name}.rekey"));
    let lettered = records_of(&*log, &dlq).await;
    assert_eq!(lettered.len() as u64, letters, "one letter per refused record");
    let reasons: Vec<String> = lettered
        .iter()
        .map(|r| String::from_utf8_lossy(r.header("dlq_error").unwrap_or_default()).into_owned())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("schema version 99")), "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("not a version (1, 2, …)")).count(), 2, "0 and x: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("`ce_id` is missing")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("field `customer_id` holds a BIGINT, not a STRING")), "{reasons:?}");
    app.shutdown().await.expect("a clean shutdown");
}

/// A row the log refuses as too large (a huge group key, say) dead-letters the record that made
/// it; the window keeps what the log took: neither that record nor the others of its batch are
/// counted twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_row_the_log_refuses_as_too_large_dead_letters_its_record_and_the_query_goes_on() {
    let memory = MemoryLog::shared();
    let name = format!("too_large_{}", uuid::Uuid::now_v7().simple());
    let sink = name.clone();
    let refusing = Arc::new(AtomicBool::new(true));
    let refuses = refusing.clone();
    let log: Arc<dyn EventLog> = Arc::new(FaultyLog::over(memory.clone()).commit_fails(move |outputs, _| {
        let huge = |o: &OutRecord| o.key.as_deref().is_some_and(|k| k.windows(8).any(|w| w == b"cus_huge"));
        let refused =
            outputs.iter().find(|o| *o.topic == *sink && huge(o)).filter(|_| refuses.load(Ordering::SeqCst))?;
        Some(LogError::TooLarge { topic: refused.topic.to_string(), reason: "2000000 bytes".into() })
    }));
    let (app, handle) = start(log.clone(), query(REFERENCE, &name)).await;
    let t0 = base();
    // Both customers in one batch: the huge one's fifth and sixth orders make rows the log
    // refuses; its first four only change its window.
    let events: Vec<_> = (0..6)
        .flat_map(|i| [(t0 + i * MINUTE, confirmed("cus_burst", 100)), (t0 + i * MINUTE, confirmed("cus_huge", 100))])
        .collect();
    append(&*log, &events).await;
    within("the query to settle", app.settle()).await.expect("settled");

    let rows = handle.rows().await.expect("rows");
    let counts = |key: &str| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.key == key)
            .map(|r| column(r, "KSQL_COL_0").as_i64().expect("a count"))
            .collect()
    };
    assert_eq!(counts("cus_burst"), [5, 6], "{rows:?}");
    assert_eq!(counts("cus_huge"), Vec::<i64>::new(), "{rows:?}");
    let letters = records_of(&*log, &dead_letter::topic_of(&format!("{name}.aggregate"))).await;
    assert_eq!(letters.len(), 2, "the fifth and sixth orders are dead-lettered");
    for letter in &letters {
        let error = String::from_utf8_lossy(letter.header(dead_letter::headers::ERROR).unwrap()).into_owned();
        assert!(error.contains("larger than the log accepts"), "{error}");
    }

    // The window holds the four orders the log took, not the two it refused.
    refusing.store(false, Ordering::SeqCst);
    append(&*log, &[(t0 + 7 * MINUTE, confirmed("cus_huge", 100))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    let rows = handle.rows().await.expect("rows");
    let huge: Vec<i64> = rows
        .iter()
        .filter(|r| r.key == "cus_huge")
        .map(|r| column(r, "KSQL_COL_0").as_i64().unwrap())
        .collect();
    assert_eq!(huge, [5], "{rows:?}");
    app.shutdown().await.expect("a clean shutdown");
}

/// A reset that fails half-way says what it deleted and to run it again; run again, it
/// deletes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_reset_cut_short_says_to_run_it_again() {
    let memory = MemoryLog::shared();
    let name = format!("cut_short_{}", uuid::Uuid::now_v7().simple());
    let sql = "CREATE TABLE suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
        FROM order_confirmed GROUP BY customer_id";
    let (app, _handle) = start(memory.clone(), query(sql, &name)).await;
    app.shutdown().await.expect("a clean shutdown");
    let repartition = repartition_topic(&name);
    let failing = repartition.clone();
    let faulty = FaultyLog::over(memory.clone())
        .delete_topic_fails(move |topic| (topic == failing).then(|| LogError::Backend("the broker is away".into())));
    let error = tramline::runtime::reset_query(&faulty, &name, Some(&name)).await.expect_err("cut short");
    let said = error.to_string();
    let failed = format!("deleting `{repartition}` failed: log backend failed: the broker is away");
    assert!(said.starts_with(&format!("query `{name}` is not fully reset: {failed}")), "{said}");
    assert!(
        said.contains(&format!(
            "(those that existed): {name}.rekey, {name}.aggregate, {name}.select, {name}-changelog;"
        )),
        "{said}"
    );
    assert!(said.contains("run the reset again"), "{said}");
    // Nothing deleted yet: the log's own error, said as it is (a group with members on Kafka).
    let busy = FaultyLog::over(memory.clone())
        .delete_group_fails(|_| Some(LogError::Backend("the group is not empty".into())));
    let error = tramline::runtime::reset_query(&busy, &name, None).await.expect_err("refused");
    assert!(matches!(error, RuntimeError::Log(LogError::Backend(_))), "{error}");
    let reset = tramline::runtime::reset_query(&*memory, &name, Some(&name)).await.expect("run again");
    assert_eq!(reset.topics, [repartition, name.clone()]);
}

/// The memory log keeps records in segments of 4,096: a purge up to the end of a full one
/// frees it, and the next record still goes where it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_purge_at_a_segment_boundary_loses_nothing() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, 1)).await.expect("the source topic");
    let sql = "CREATE TABLE suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
        FROM order_confirmed GROUP BY customer_id";
    let mut app = App::new(log.clone()).with_settings(Settings { partitions: 1, ..settings() });
    let handle = app.query(query(sql, "boundary")).await.expect("registered");
    within("the app to start", app.start()).await.expect("started");
    let t0 = base();
    let events: Vec<(i64, OrderEvent)> = (0..4096).map(|i| (t0 + i, confirmed("cus_boundary", 1))).collect();
    append(&*log, &events).await;
    within("the query to settle", app.settle()).await.expect("settled");
    append(&*log, &[(t0 + 5000, confirmed("cus_boundary", 1))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    let rows = handle.rows().await.expect("rows");
    assert_eq!(column(rows.last().expect("a row"), "orders"), 4097);
    app.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_table_deletes_a_row() {
    a_table_deletes_a_row_that_stops_passing_having(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reference_query() {
    reference_query_flags_exactly_the_customers_over_four_in_a_window(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_query_without_group_by() {
    a_query_without_group_by_selects_each_record_under_its_key(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_table_sink() {
    a_tables_sink_is_compacted_and_a_kept_one_is_still_used(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_query_kind_change() {
    a_query_that_changes_kind_under_its_name_is_refused(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_partition_by() {
    a_partition_by_query_keys_each_row_by_its_values(MemoryLog::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_table_without_windows() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    a_table_without_windows_sums_each_key_over_all_time_across_a_restart(async || log.clone(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_restart_in_the_middle_of_a_window() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    a_restart_in_the_middle_of_a_window_neither_loses_nor_double_counts(async || log.clone()).await;
}

#[cfg(feature = "embedded")]
mod embedded {
    use super::*;
    use tramline::log::embedded::EmbeddedLog;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_reference_query() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        reference_query_flags_exactly_the_customers_over_four_in_a_window(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_table_deletes_a_row() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        a_table_deletes_a_row_that_stops_passing_having(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_query_without_group_by() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        a_query_without_group_by_selects_each_record_under_its_key(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_table_sink() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        a_tables_sink_is_compacted_and_a_kept_one_is_still_used(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_query_kind_change() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        a_query_that_changes_kind_under_its_name_is_refused(log).await;
    }

    /// A windowed TABLE's sink, compacted, keeps the latest row of each key and window.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_a_compacted_table_sink_keeps_the_latest_row_of_each_window() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        let name = format!("compacting_{}", uuid::Uuid::now_v7().simple());
        let sql = "CREATE TABLE suspicious_sales AS SELECT customer_id, COUNT(*) AS orders
            FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id";
        let (app, handle) = start(log.clone(), query(sql, &name)).await;
        let customer = format!("cus_{}", uuid::Uuid::now_v7().simple());
        let t0 = base();
        for time in [t0, t0 + MINUTE, t0 + 2 * MINUTE, t0 + 10 * MINUTE] {
            append(&*log, &[(time, confirmed(&customer, 1))]).await;
            within("the query to settle", app.settle()).await.expect("settled");
        }
        let counts = |rows: &[QueryRow]| -> Vec<(i64, i64)> {
            rows_of(rows, &BTreeSet::from([customer.clone()]))
                .iter()
                .map(|r| (r.window.expect("windowed").start, column(r, "orders").as_i64().expect("a count")))
                .collect()
        };
        // The windows' keys (`customer@start`) may sit on different partitions: sorted.
        let mut every = counts(&handle.rows().await.expect("rows"));
        every.sort();
        assert_eq!(every, [(t0, 1), (t0, 2), (t0, 3), (t0 + 10 * MINUTE, 1)]);
        log.compact().await.expect("compacted");
        let mut latest = counts(&handle.rows().await.expect("rows"));
        latest.sort();
        assert_eq!(latest, [(t0, 3), (t0 + 10 * MINUTE, 1)]);
        app.shutdown().await.expect("a clean shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_partition_by() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
        a_partition_by_query_keys_each_row_by_its_values(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_table_without_windows() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().to_owned();
        a_table_without_windows_sums_each_key_over_all_time_across_a_restart(
            async || {
                let log = EmbeddedLog::open_async(path.clone(), Default::default()).await.expect("opened");
                Arc::new(log) as Arc<dyn EventLog>
            },
            true,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_restart_in_the_middle_of_a_window() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().to_owned();
        // Each run opens the directory anew: the second process continues the first.
        a_restart_in_the_middle_of_a_window_neither_loses_nor_double_counts(async || {
            let log = EmbeddedLog::open_async(path.clone(), Default::default()).await.expect("opened");
            Arc::new(log) as Arc<dyn EventLog>
        })
        .await;
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;

    use tramline::log::Namespaced;
    use tramline::log::kafka::{KafkaConfig, KafkaLog};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_reference_query() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-queries").await;
        reference_query_flags_exactly_the_customers_over_four_in_a_window(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_query_without_group_by() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-select").await;
        a_query_without_group_by_selects_each_record_under_its_key(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_table_sink() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-table-sink").await;
        a_tables_sink_is_compacted_and_a_kept_one_is_still_used(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_query_kind_change() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-kind-change").await;
        a_query_that_changes_kind_under_its_name_is_refused(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_partition_by() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-partition-by").await;
        a_partition_by_query_keys_each_row_by_its_values(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_table_without_windows() {
        let namespace = format!("stream-global-{}", uuid::Uuid::now_v7().simple());
        a_table_without_windows_sums_each_key_over_all_time_across_a_restart(
            async || {
                let config = KafkaConfig::new(tramline::testing::kafka::bootstrap()).with_instance_id("stream-queries");
                let kafka: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(config).await.expect("connected"));
                Arc::new(Namespaced::new(kafka, &namespace).expect("a namespace")) as Arc<dyn EventLog>
            },
            false,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_table_deletes_a_row() {
        let (log, _) = tramline::testing::kafka::isolated_log("stream-tombstones").await;
        a_table_deletes_a_row_that_stops_passing_having(log).await;
    }

    /// The namespace of the restart test: the same across its "processes".
    fn restart_namespace() -> &'static str {
        static NAMESPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        NAMESPACE.get_or_init(|| format!("stream-restart-{}", uuid::Uuid::now_v7().simple()))
    }

    async fn reconnect() -> Arc<dyn EventLog> {
        let config = KafkaConfig::new(tramline::testing::kafka::bootstrap()).with_instance_id("stream-queries");
        let kafka: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(config).await.expect("connected"));
        Arc::new(Namespaced::new(kafka, restart_namespace()).expect("a namespace"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_restart_in_the_middle_of_a_window() {
        a_restart_in_the_middle_of_a_window_neither_loses_nor_double_counts(reconnect).await;
    }
}

/// Every record of a topic, read to its end: one read may return fewer (a fetch of Kafka's).
async fn records_of(log: &dyn EventLog, topic: &str) -> Vec<tramline::log::Record> {
    let mut records = Vec::new();
    for partition in 0..log.partition_count(topic).await.expect("a count").unwrap_or(0) {
        let tp = TopicPartition::new(topic, partition);
        let end = log.end_offset(&tp).await.expect("an end");
        let mut offset = 0;
        while offset < end {
            let read = log.read(&tp, offset, 10_000).await.expect("read");
            let Some(last) = read.last() else { break };
            offset = last.offset + 1;
            records.extend(read.into_iter().filter(|r| r.offset < end));
        }
    }
    records
}

fn internal(topic: &str, partition: u32, key: &str, value: Vec<u8>, time: i64) -> OutRecord {
    OutRecord {
        topic: Arc::from(topic),
        partition: Some(partition),
        key: Some(Bytes::from(key.to_owned())),
        value: Some(Bytes::from(value)),
        headers: Headers::new(),
        timestamp: Some(time),
    }
}

/// The internal records are binary now. A re-keyed row in the JSON of earlier versions still
/// counts; a record that is neither goes to the dead letters with a reason that says what is
/// wrong, and the records around it count all the same.
#[tokio::test]
async fn memory_json_and_damaged_rows_on_the_repartition_topic() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("damaged_{}", uuid::Uuid::now_v7().simple());
    let (app, handle) = start(log.clone(), query(REFERENCE, &name)).await;
    let repartition = repartition_topic(&name);
    let t0 = base();
    let json = |time: i64| {
        let keyed = Keyed { time, group: vec![Value::from("cus_json")], args: vec![Value::Null] };
        serde_json::to_vec(&keyed).expect("JSON")
    };
    let mut records: Vec<OutRecord> = (0..3)
        .map(|i| internal(&repartition, 0, "cus_json", json(t0 + i * MINUTE), t0 + i * MINUTE))
        .collect();
    records.push(internal(&repartition, 0, "cus_json", vec![0x01, 0xff, 0xff], t0));
    records.push(internal(&repartition, 0, "cus_json", b"\x07abc".to_vec(), t0));
    records.extend((3..5).map(|i| internal(&repartition, 0, "cus_json", json(t0 + i * MINUTE), t0 + i * MINUTE)));
    log.append(records).await.expect("appended");
    within("the query to settle", app.settle()).await.expect("settled");

    let rows = handle.rows().await.expect("rows");
    let counts: Vec<_> = rows.iter().filter(|r| r.key == "cus_json").map(|r| column(r, "KSQL_COL_0").clone()).collect();
    assert_eq!(counts, [serde_json::json!(5)], "the JSON rows counted, the damaged ones not: {rows:?}");
    let letters = records_of(&*log, &dead_letter::topic_of(&format!("{name}.aggregate"))).await;
    let errors: Vec<String> = letters
        .iter()
        .map(|l| String::from_utf8_lossy(l.header(dead_letter::headers::ERROR).unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("not a re-keyed row of query `{name}`: a damaged binary value")),
        "{errors:?}"
    );
    assert!(errors[1].contains("an unknown encoding (first byte 0x07"), "{errors:?}");
    app.shutdown().await.expect("a clean shutdown");
}

/// A changelog written in the JSON of earlier versions restores: the window goes on counting.
#[tokio::test]
async fn memory_a_changelog_in_json_restores() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let name = format!("legacy_{}", uuid::Uuid::now_v7().simple());
    let t0 = base();
    let customer = "cus_legacy";
    let partition = partition_for(customer.as_bytes(), settings().partitions);
    let changelog = tramline::stream::changelog_topic(&name);
    log.create_topic(&TopicSpec::compact(changelog.clone(), settings().partitions))
        .await
        .expect("a changelog");
    let stored = serde_json::json!({
        "group": [customer],
        "window": { "start": t0, "end": t0 + 10 * MINUTE },
        "accumulators": [{ "Count": 4 }],
    });
    let key = format!("w/{t0}/{customer}");
    let progress = serde_json::json!({ "stream_time": t0 + MINUTE, "late": 0 });
    log.append(vec![
        internal(&changelog, partition, &key, serde_json::to_vec(&stored).expect("JSON"), t0),
        internal(&changelog, partition, "progress", serde_json::to_vec(&progress).expect("JSON"), t0),
    ])
    .await
    .expect("appended");

    let (app, handle) = start(log.clone(), query(REFERENCE, &name)).await;
    append(&*log, &[(t0 + 2 * MINUTE, confirmed(customer, 1))]).await;
    within("the query to settle", app.settle()).await.expect("settled");
    let rows = handle.rows().await.expect("rows");
    let counts: Vec<_> = rows.iter().filter(|r| r.key == customer).map(|r| column(r, "KSQL_COL_0").clone()).collect();
    assert_eq!(counts, [serde_json::json!(5)], "four restored and one more: {rows:?}");
    app.shutdown().await.expect("a clean shutdown");
}
