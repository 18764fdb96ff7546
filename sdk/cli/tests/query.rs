//! The `tramline query` command end to end: the reference query over CloudEvents JSON lines
//! and over a topic of an embedded log in use, EMIT FINAL with --until-end, a TABLE's
//! deletions, and how bad queries and bad lines are reported.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const REFERENCE: &str = "CREATE STREAM suspicious_sales AS
SELECT customer_id, count(*)
FROM order_confirmed
WINDOW TUMBLING (SIZE 10 MINUTE)
GROUP BY customer_id
HAVING count(*) > 4
";

fn event(event_type: &str, time: &str, customer: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{customer}-{time}","source":"order","type":"{event_type}","time":"{time}","datacontenttype":"application/json","data":{{"order_id":"ord_1","customer_id":"{customer}","total":250}}}}"#
    )
}

fn run(sql: &str, input: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let query = dir.path().join("query.sql");
    std::fs::write(&query, sql).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tramline"))
        .args(["query", "--sql"])
        .arg(&query)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn orders() -> String {
    let mut input = Vec::new();
    for minute in 0..6 {
        input.push(event("OrderConfirmed", &format!("2030-01-01T10:0{minute}:00Z"), "cus_bulk"));
    }
    for minute in 0..3 {
        input.push(event("OrderConfirmed", &format!("2030-01-01T10:0{minute}:30Z"), "cus_ok"));
        input.push(event("OrderPlaced", &format!("2030-01-01T10:0{minute}:30Z"), "cus_ok"));
    }
    input.join("\n")
}

#[test]
fn the_reference_query_runs_as_written_over_json_lines_from_stdin() {
    let output = run(REFERENCE, &orders(), &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows = lines(&output.stdout);
    assert_eq!(rows.len(), 2, "counts 5 and 6 of the bulk buyer");
    assert_eq!(rows[0]["customer_id"], "cus_bulk");
    assert_eq!(rows[1]["KSQL_COL_0"], 6);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("9 events read, 3 of other types skipped, 0 bad"), "{stderr}");
}

#[test]
fn emit_final_rows_come_out_at_the_end_of_the_input_with_until_end() {
    let sql = "CREATE TABLE per_customer AS SELECT customer_id, COUNT(*) AS orders, WINDOWSTART AS ws
               FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id EMIT FINAL";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), orders()).unwrap();
    let path = file.path().to_str().unwrap();
    let without = run(sql, "", &["--input", path]);
    assert!(lines(&without.stdout).is_empty(), "windows are open at the end of the input");
    let with = run(sql, "", &["--input", path, "--until-end"]);
    let mut rows = lines(&with.stdout);
    rows.sort_by_key(|r| r["customer_id"].as_str().unwrap().to_owned());
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0]["customer_id"].as_str(), rows[0]["orders"].as_i64()), (Some("cus_bulk"), Some(6)));
    assert_eq!((rows[1]["customer_id"].as_str(), rows[1]["orders"].as_i64()), (Some("cus_ok"), Some(3)));
    assert_eq!(rows[0]["ws"], 1_893_492_000_000i64);
}

#[test]
fn a_table_prints_a_tombstone_when_a_row_stops_passing_having() {
    let sql = "CREATE TABLE light_buyers AS SELECT customer_id, COUNT(*) AS orders
               FROM order_confirmed WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY customer_id HAVING COUNT(*) < 5";
    let output = run(sql, &orders(), &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows = lines(&output.stdout);
    let bulk: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["customer_id"] == "cus_bulk" || r["key"] == "cus_bulk").collect();
    // Counts 1 to 4, then the fifth order deletes the row, once.
    assert_eq!(bulk.len(), 5, "{bulk:?}");
    assert_eq!(bulk[3]["orders"], 4);
    assert_eq!(bulk[4]["TOMBSTONE"], true);
    assert_eq!(bulk[4]["WINDOWSTART"], 1_893_492_000_000i64);
    assert_eq!(rows.iter().filter(|r| r["TOMBSTONE"] == true).count(), 1, "cus_ok stays under five");
}

#[test]
fn a_group_by_without_window_keeps_one_row_per_key_over_all_time() {
    let sql = "CREATE TABLE light_buyers AS SELECT customer_id, COUNT(*) AS orders
               FROM order_confirmed GROUP BY customer_id HAVING COUNT(*) < 2";
    // Years apart: one row all the same.
    let input = [
        event("OrderConfirmed", "2030-01-01T10:00:00Z", "cus_a"),
        event("OrderConfirmed", "1990-06-01T10:00:00Z", "cus_b"),
        event("OrderConfirmed", "2040-01-01T10:00:00Z", "cus_a"),
    ];
    let output = run(sql, &input.join("\n"), &["--until-end"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"customer_id\":\"cus_a\",\"orders\":1}\n{\"customer_id\":\"cus_b\",\"orders\":1}\n\
         {\"key\":\"cus_a\",\"TOMBSTONE\":true}\n",
        "the second order of cus_a deletes its row, which has no window; the end of the input closes nothing"
    );
    assert!(stderr(&output).contains("0 late"), "{}", stderr(&output));

    let final_rows = run(&format!("{sql} EMIT FINAL"), "", &[]);
    assert_eq!(final_rows.status.code(), Some(2));
    assert!(stderr(&final_rows).contains("line 2, column 83: EMIT FINAL needs a WINDOW"), "{}", stderr(&final_rows));
}

#[test]
fn a_query_without_group_by_prints_a_row_per_record_that_passes_where() {
    let sql = "CREATE STREAM bulk_orders AS SELECT customer_id AS customer, ROWTIME AS at
               FROM order_confirmed WHERE customer_id = 'cus_bulk' AND ROWTIME >= 1893492120000";
    let output = run(sql, &orders(), &["--until-end"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = lines(&output.stdout);
    let times: Vec<i64> = rows.iter().map(|r| r["at"].as_i64().unwrap()).collect();
    // 10:02 to 10:05 of the bulk buyer; cus_ok's and the placed orders are not selected.
    assert_eq!(times, [1_893_492_120_000, 1_893_492_180_000, 1_893_492_240_000, 1_893_492_300_000]);
    assert!(rows.iter().all(|r| r["customer"] == "cus_bulk"), "{rows:?}");
    assert!(
        stderr(&output).contains("9 events read, 3 of other types skipped, 0 bad, 0 late (dropped), 4 rows"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn scalar_functions_and_case_compute_each_row_and_aggregates() {
    let sql = "CREATE STREAM labelled AS SELECT UCASE(SUBSTRING(customer_id, 5)) AS who,
               CASE WHEN customer_id LIKE '%bulk' THEN 'watch' ELSE 'ok' END AS verdict
               FROM order_confirmed WHERE customer_id IN ('cus_bulk', 'cus_ok') AND ROWTIME >= 1893492150000";
    let output = run(sql, &orders(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = lines(&output.stdout);
    let bulk = serde_json::json!({"who": "BULK", "verdict": "watch"});
    let ok = serde_json::json!({"who": "OK", "verdict": "ok"});
    // From 10:02:30 on, in input order: the bulk buyer's 10:03 to 10:05, cus_ok's 10:02:30.
    assert_eq!(rows, [bulk.clone(), bulk.clone(), bulk, ok]);

    let sql = "CREATE TABLE spend AS SELECT UCASE(customer_id) AS who, ROUND(AVG(total) / 3, 1) AS third
               FROM order_confirmed GROUP BY UCASE(customer_id) HAVING COUNT(*) = 3";
    let output = run(sql, &orders(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Each customer's row at its third order (the bulk buyer's is deleted at its fourth).
    let rows: Vec<_> = lines(&output.stdout).into_iter().filter(|row| row.get("third").is_some()).collect();
    let third = |who: &str| serde_json::json!({"who": who, "third": 83.3});
    assert_eq!(rows, [third("CUS_BULK"), third("CUS_OK")]);
}

#[test]
fn a_bad_query_names_line_and_column_and_exits_with_2() {
    let output = run(&REFERENCE.replace("GROUP BY", "GROUP BUY"), "", &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 5, column 7: expected `BY`, found `BUY`"), "{stderr}");
}

#[test]
fn bad_lines_are_reported_by_number_and_counted_while_the_others_go_on() {
    let mut input: Vec<String> = orders().lines().map(str::to_owned).collect();
    input.insert(2, "{not json".into());
    let untimed = r#"{"specversion":"1.0","id":"u","source":"o","type":"OrderConfirmed","data":{"customer_id":"c"}}"#;
    input.insert(4, untimed.into());
    // The column counts characters (`é` is two bytes): it points at the `x` after `"Zoé"`.
    input.insert(5, r#"{"type":"Zoé"x}"#.into());
    let output = run(REFERENCE, &input.join("\n"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("input line 3, column 2: not a CloudEvent in structured JSON: key must be a string"),
        "{stderr}"
    );
    assert!(stderr.contains("input line 5: no `time` attribute"), "{stderr}");
    assert!(
        stderr.contains("input line 6, column 14: not a CloudEvent in structured JSON: expected `,` or `}`"),
        "{stderr}"
    );
    assert!(stderr.contains("3 bad"), "{stderr}");
    assert_eq!(lines(&output.stdout).len(), 2, "the good lines still made their rows");
}

/// A CloudEvent of type `E` at `time` with data `{"k": key}`.
fn keyed(time: &str, key: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{key}-{time}","source":"x","type":"E","time":"{time}","data":{{"k":"{key}","amount":1}}}}"#
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_session_takes_a_record_at_its_end_plus_gap_after_other_keys_reached_that_time() {
    let sql = "CREATE TABLE s AS SELECT k, COUNT(*) AS n, WINDOWSTART AS ws, WINDOWEND AS we FROM e
               WINDOW SESSION (10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY k EMIT FINAL;";
    let input =
        [keyed("1970-01-01T00:00:00Z", "a"), keyed("1970-01-01T00:00:10Z", "b"), keyed("1970-01-01T00:00:10Z", "a")];
    let output = run(sql, &input.join("\n"), &["--until-end"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut rows = lines(&output.stdout);
    rows.sort_by_key(|r| r["k"].as_str().unwrap().to_owned());
    assert_eq!(
        rows,
        [
            serde_json::json!({"k":"a","n":2,"ws":0,"we":10000}),
            serde_json::json!({"k":"b","n":1,"ws":10000,"we":10000})
        ]
    );
}

/// A column has one type: `1` and `"1"` are not one key. A whole number is a DOUBLE too, and a
/// NULL is of every type.
#[test]
fn a_value_of_another_type_than_its_column_had_is_a_bad_line() {
    let sql = "CREATE TABLE s AS SELECT k, COUNT(*) AS n, SUM(amount) AS total FROM e
               WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k EMIT FINAL;";
    let line = |id: u32, k: &str, amount: &str| {
        format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"x","type":"E","time":"2030-01-01T00:00:0{id}Z","data":{{"k":{k},"amount":{amount}}}}}"#
        )
    };
    let input = [
        line(1, "1", "2"),
        line(2, "\"1\"", "2"),
        line(3, "1", "0.5"),
        line(4, "null", "1"),
        line(5, "1", "\"3\""),
        line(6, "1", "null"),
    ];
    let output = run(sql, &input.join("\n"), &["--until-end"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("input line 2: field `k` holds a STRING, where the events before gave it BIGINT values"),
        "{stderr}"
    );
    assert!(stderr.contains("input line 5: field `amount` holds a STRING, where the events before gave it DOUBLE"));
    assert!(stderr.contains("2 bad"), "{stderr}");
    assert_eq!(
        lines(&output.stdout),
        [serde_json::json!({"k":1,"n":3,"total":2.5})],
        "the bad lines are not counted (nor the NULL key, as in ksqlDB)"
    );
}

#[test]
fn columns_come_out_in_select_order() {
    let sql = "CREATE TABLE t AS SELECT k, COUNT(*) AS n, SUM(amount) AS s, WINDOWSTART AS ws, WINDOWEND AS we FROM e
               WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT FINAL;";
    let output = run(sql, &keyed("1970-01-01T00:00:01Z", "a"), &["--until-end"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"k\":\"a\",\"n\":1,\"s\":1,\"ws\":0,\"we\":10000}\n");
    let sql = "CREATE TABLE t AS SELECT k, COUNT(*) AS n FROM e WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k HAVING COUNT(*) < 2";
    let input = [keyed("1970-01-01T00:00:01Z", "a"), keyed("1970-01-01T00:00:02Z", "a")];
    let output = run(sql, &input.join("\n"), &[]);
    let tombstone = String::from_utf8_lossy(&output.stdout).lines().nth(1).map(str::to_owned);
    assert_eq!(tombstone.as_deref(), Some(r#"{"key":"a","WINDOWSTART":0,"WINDOWEND":10000,"TOMBSTONE":true}"#));
}

#[test]
fn a_time_before_1970_with_a_fraction_of_a_millisecond_rounds_down() {
    let sql = "CREATE TABLE t AS SELECT k, COUNT(*) AS n, WINDOWSTART AS ws FROM e
               WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT FINAL";
    let output = run(sql, &keyed("1969-12-31T23:59:59.9995Z", "a"), &["--until-end"]);
    assert_eq!(lines(&output.stdout)[0]["ws"], -10_000, "-0.5 ms is in [-10s, 0)");
}

const COUNT_PER_KEY: &str =
    "CREATE STREAM s AS SELECT k, COUNT(*) AS n FROM e WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k";

#[test]
fn a_json_array_is_a_bad_line() {
    let input = [keyed("1970-01-01T00:00:01Z", "a"), r#"["E","1970-01-01T00:00:01Z",{"k":"a"}]"#.to_owned()];
    let output = run(COUNT_PER_KEY, &input.join("\n"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(stderr.contains("input line 2: not a CloudEvent in structured JSON: expected a JSON object"), "{stderr}");
    assert!(stderr.contains("1 events read, 0 of other types skipped, 1 bad"), "{stderr}");
}

#[test]
fn an_event_whose_data_is_not_an_object_is_counted_once_as_bad() {
    let input = [
        keyed("1970-01-01T00:00:01Z", "a"),
        r#"{"type":"E","time":"1970-01-01T00:00:01Z","data":[1,2],"specversion":"1.0","id":"b","source":"x"}"#
            .to_owned(),
    ];
    let output = run(COUNT_PER_KEY, &input.join("\n"), &[]);
    let stderr = stderr(&output);
    // At the column where `data` holds an array, as other bad lines are told.
    assert!(stderr.contains("input line 2, column 50: `data` cannot be read as the event's fields"), "{stderr}");
    assert!(stderr.contains("1 events read, 0 of other types skipped, 1 bad"), "{stderr}");
}

#[test]
fn unquoted_stream_and_column_names_match_in_any_case() {
    let input = [keyed("1970-01-01T00:00:01Z", "a"), keyed("1970-01-01T00:00:02Z", "a")];
    let sql = "CREATE STREAM s AS SELECT K, count(*) AS n FROM E WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY K";
    let rows = lines(&run(sql, &input.join("\n"), &[]).stdout);
    assert_eq!(rows.last(), Some(&serde_json::json!({"K":"a","n":2})));
    let output = run(&REFERENCE.replace("FROM order_confirmed", "FROM OrderConfirmed"), &orders(), &[]);
    assert_eq!(lines(&output.stdout).len(), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("9 events read, 3 of other types skipped"), "{}", stderr(&output));
}

/// The CLI knows no schema: a misspelt stream or column reads nothing, and it says so.
#[test]
fn a_stream_or_column_that_matches_nothing_is_warned_about() {
    let output = run(&REFERENCE.replace("FROM order_confirmed", "FROM order_confirmd"), &orders(), &[]);
    assert!(output.status.success());
    let warning = "warning: no event of the query's stream `order_confirmd` among the 12 read: is its name right?";
    assert!(stderr(&output).contains(warning), "{}", stderr(&output));

    let misspelt = REFERENCE.replace("customer_id", "custmer_id");
    let output = run(&misspelt, &orders(), &[]);
    let warning = "warning: column `custmer_id` is missing or NULL in all 9 `order_confirmed` events";
    assert!(stderr(&output).contains(warning), "{}", stderr(&output));
    assert!(!stderr(&output).contains("`customer_id` is missing"), "{}", stderr(&output));

    let output = run(REFERENCE, &orders(), &[]);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

#[test]
fn data_may_come_as_base64_as_the_cloudevents_json_format_allows() {
    let plain = event("OrderConfirmed", "2030-01-01T10:00:00Z", "cus_bulk");
    let mut encoded: serde_json::Value = serde_json::from_str(&plain).unwrap();
    let data = encoded.as_object_mut().unwrap().remove("data").unwrap().to_string();
    encoded["data_base64"] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data).into();
    let mut both = encoded.clone();
    both["data"] = serde_json::json!({});
    let mut broken = encoded.clone();
    broken["data_base64"] = "not base64!".into();
    let input = [encoded, both, broken].map(|line| line.to_string()).join("\n");
    let output = run(REFERENCE, &input, &[]);
    let stderr = stderr(&output);
    assert!(stderr.contains("input line 2: both `data` and `data_base64`"), "{stderr}");
    assert!(stderr.contains("input line 3: `data_base64` is not base64"), "{stderr}");
    assert!(stderr.contains("1 events read, 0 of other types skipped, 2 bad"), "{stderr}");
}

#[test]
fn a_line_that_is_not_a_cloudevent_1_0_is_a_bad_line_whatever_its_type() {
    let good: serde_json::Value = serde_json::from_str(&keyed("1970-01-01T00:00:01Z", "a")).unwrap();
    let with = |attribute: &str, value: Option<&str>| {
        let mut event = good.clone();
        match value {
            Some(value) => event[attribute] = value.into(),
            None => drop(event.as_object_mut().unwrap().remove(attribute)),
        }
        event.to_string()
    };
    let input = [
        with("specversion", None),
        with("specversion", Some("0.3")),
        with("id", None),
        with("source", Some("")),
        with("type", Some("")),
        with("type", Some("Other")).replace(r#""id":"#, r#""ignored":1,"x":"#),
        good.to_string(),
    ];
    let output = run(COUNT_PER_KEY, &input.join("\n"), &[]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("input line 1: no `specversion` attribute"), "{stderr}");
    assert!(stderr.contains("input line 2: `specversion` is `0.3`: this command reads CloudEvents 1.0"), "{stderr}");
    assert!(stderr.contains("input line 3: no `id` attribute"), "{stderr}");
    assert!(stderr.contains("input line 4: no `source` attribute, or an empty one"), "{stderr}");
    assert!(stderr.contains("input line 5: no `type` attribute, or an empty one"), "{stderr}");
    assert!(stderr.contains("input line 6: no `id` attribute"), "another type is still no CloudEvent: {stderr}");
    assert!(stderr.contains("1 events read, 0 of other types skipped, 6 bad"), "{stderr}");
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_no_bad_line() {
    let output = run(REFERENCE, &format!("\u{feff}{}", orders()), &["--input", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("9 events read, 3 of other types skipped, 0 bad"), "{}", stderr(&output));
}

#[test]
fn a_query_that_does_not_plan_never_panics() {
    for sql in [
        "CREATE STREAM s AS SELECT k, count(*) FROM `éé`",
        "CREATE STREAM s AS SELECT k, count(*) FROM e WINDOW TUMBLING (SIZE 106751991168 DAYS) GROUP BY k",
    ] {
        let output = run(sql, "", &[]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("line 1, column "), "{}", stderr(&output));
    }
    // The largest windows, and a record before 1970.
    let sql = "CREATE TABLE h AS SELECT k, COUNT(*) AS n FROM e
               WINDOW HOPPING (SIZE 106751991167 DAYS, ADVANCE BY 53375995583 DAYS) GROUP BY k";
    let output = run(sql, &keyed("1969-12-31T23:59:59.999Z", "a"), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines(&output.stdout).len(), 2, "one row per window that holds it");
}

#[test]
fn a_log_flag_without_a_topic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    std::fs::write(&input, orders()).unwrap();
    for log in [["--data", "/tmp/tramline-cli-no-such-dir"], ["--brokers", "127.0.0.1:1"]] {
        let output = run(REFERENCE, "", &[&["--input", input.to_str().unwrap()][..], &log[..]].concat());
        assert_eq!(output.status.code(), Some(2), "{log:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("--topic"), "{}", stderr(&output));
    }
}

/// Client settings are for Kafka: with the embedded log they are refused, not ignored.
#[test]
fn kafka_settings_without_brokers_are_refused() {
    let query =
        run(REFERENCE, "", &["--data", "/tmp/tramline-cli-no-such-dir", "--topic", "t", "--kafka-set", "acks=all"]);
    let letters = dead_letters(&["--group", "g", "--data", "/tmp/tramline-cli-no-such-dir", "--kafka-set", "acks=all"]);
    let reset = reset_query(&["--name", "q", "--data", "/tmp/tramline-cli-no-such-dir", "--kafka-set", "acks=all"]);
    let file = reset_query(&["--name", "q", "--data", "/tmp/tramline-cli-no-such-dir", "--kafka-config", "f"]);
    for output in [query, letters, reset, file] {
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("--kafka-config and --kafka-set set up Kafka clients: they need --brokers"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn reading_a_directory_without_a_log_neither_makes_one_nor_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-a-log");
    let output = run(REFERENCE, "", &["--data", missing.to_str().unwrap(), "--topic", "order.events"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("holds no embedded log"), "{}", stderr(&output));
    assert!(!missing.exists(), "no directory made");
}

/// A record of `order.events` at `minute` past ten on 2030-01-01, with tramline's headers but
/// `skip`, and `extra` ones instead of those of their names.
fn confirmed(minute: i64, skip: &str, extra: &[(&str, &str)]) -> tramline::log::OutRecord {
    let (id, time) = (format!("0193a4b2-7c1d-7000-8000-00000000000{minute}"), format!("2030-01-01T10:0{minute}:00Z"));
    let standard = [
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", "order"),
        ("ce_type", "OrderConfirmed"),
        ("ce_time", time.as_str()),
        ("content-type", "application/json"),
    ];
    let mut headers = tramline::log::Headers::builder(256);
    let kept = standard.iter().filter(|(name, _)| *name != skip && extra.iter().all(|(other, _)| other != name));
    for (name, value) in kept.chain(extra) {
        headers.push(name, value.as_bytes());
    }
    let data = r#"{"order_id":"ord_1","customer_id":"cus_bulk","total":250}"#;
    tramline::log::OutRecord {
        topic: "order.events".into(),
        partition: Some(0),
        key: Some(bytes::Bytes::from_static(b"ord_1")),
        value: Some(bytes::Bytes::from_static(data.as_bytes())),
        headers: headers.build(),
        timestamp: Some(1_893_492_000_000 + minute * 60_000),
    }
}

/// An embedded log in a new directory with `records` on `order.events`.
fn embedded_log(records: Vec<tramline::log::OutRecord>) -> (tempfile::TempDir, tramline::log::embedded::EmbeddedLog) {
    use tramline::log::{EventLog, TopicSpec};
    let dir = tempfile::tempdir().unwrap();
    let log = tramline::log::embedded::EmbeddedLog::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        log.create_topic(&TopicSpec::keep("order.events", 2)).await.unwrap();
        log.append(records).await.unwrap();
    });
    (dir, log)
}

/// A platform's log is queried while the platform runs on it: the command opens the directory
/// read-only, beside the process that holds it.
#[test]
fn a_topic_of_an_embedded_log_in_use_is_read_beside_its_holder() {
    let (dir, log) = embedded_log((0..6).map(|minute| confirmed(minute, "", &[])).collect());
    let output = run(REFERENCE, "", &["--data", dir.path().to_str().unwrap(), "--topic", "order.events"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let counts: Vec<i64> = lines(&output.stdout).iter().map(|row| row["KSQL_COL_0"].as_i64().unwrap()).collect();
    assert_eq!(counts, [5, 6], "the bulk buyer's fifth and sixth orders pass HAVING");
    drop(log);
}

/// The records every reader of the topic refuses are refused here too, as the platform's own
/// query refuses them: counted, said, and the others go on.
#[test]
fn a_record_of_a_topic_that_readers_refuse_is_a_bad_one() {
    let structured = [("content-type", "application/cloudevents+json")];
    let records = vec![
        confirmed(0, "", &[]),
        confirmed(1, "ce_id", &[]),
        confirmed(2, "", &[("ce_specversion", "0.3")]),
        confirmed(3, "ce_type", &structured),
        confirmed(4, "", &[]),
    ];
    let (dir, _log) = embedded_log(records);
    let output = run(REFERENCE, "", &["--data", dir.path().to_str().unwrap(), "--topic", "order.events"]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("record order.events/0@1: header `ce_id` is missing"), "{stderr}");
    assert!(stderr.contains("header `ce_specversion` is `0.3`"), "{stderr}");
    assert!(stderr.contains("a CloudEvent in structured mode"), "says why it has no ce_type: {stderr}");
    assert!(stderr.contains("2 events read, 0 of other types skipped, 3 bad"), "{stderr}");
}

fn reset_query(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tramline")).arg("reset-query").args(args).output().unwrap()
}

/// `reset-query` deletes a query's groups and internal topics, and its sink when asked: what an
/// error about a changed query tells its user to run. It refuses a directory that holds no log
/// (making none) and one that an app holds.
#[test]
fn reset_query_deletes_a_querys_groups_and_topics() {
    use tramline::log::{EventLog, TopicPartition, TopicSpec};
    let (dir, log) = embedded_log(vec![confirmed(0, "", &[])]);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let source = TopicPartition::new("order.events", 0);
    runtime.block_on(async {
        for topic in ["sales-repartition", "sales", "other"] {
            log.create_topic(&TopicSpec::keep(topic, 1)).await.unwrap();
        }
        log.create_topic(&TopicSpec::compact("sales-changelog", 1)).await.unwrap();
        let mut member = log.join("sales.rekey", &["order.events"], tramline::log::StartFrom::Beginning).await.unwrap();
        while member.assignment().is_empty() {
            member.poll(10, std::time::Duration::from_millis(50)).await.unwrap();
        }
        member.commit(Vec::new(), vec![(source.clone(), 1)]).await.unwrap();
        member.leave().await.unwrap();
    });
    let data = dir.path().to_str().unwrap();
    let held = reset_query(&["--name", "sales", "--data", data]);
    assert_eq!(held.status.code(), Some(2), "{}", stderr(&held));
    assert!(stderr(&held).contains("already open"), "the app holds the log: {}", stderr(&held));
    drop(log);

    let output = reset_query(&["--name", "sales", "--data", data]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("topics sales-changelog, sales-repartition"), "{}", stderr(&output));
    let output = reset_query(&["--name", "sales", "--data", data, "--delete-sink"]);
    assert!(stderr(&output).contains("topics sales\n"), "the sink, asked for: {}", stderr(&output));
    let log = tramline::log::embedded::EmbeddedLog::open(dir.path()).unwrap();
    let mut topics = log.topics();
    topics.sort();
    assert_eq!(topics, ["order.events", "other"]);
    let committed = runtime.block_on(log.committed("sales.rekey", &source)).unwrap();
    assert_eq!(committed, None, "the query's group is gone");
    drop(log);

    let missing = dir.path().join("not-a-log");
    let output = reset_query(&["--name", "sales", "--data", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("holds no embedded log"), "{}", stderr(&output));
    assert!(!missing.exists(), "no directory made");
    let output = reset_query(&["--name", "sales"]);
    assert_eq!(output.status.code(), Some(2), "no log named: {}", stderr(&output));
}

fn dead_letters(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tramline")).arg("dead-letters").args(args).output().unwrap()
}

/// `dead-letters` lists a processor's letters, read-only beside the app that holds the log:
/// where each failed record came from, why, and its value when asked (base64 when it is not
/// text). A group without a dead-letter topic is said to be unknown.
#[test]
fn dead_letters_lists_where_each_failed_record_came_from_and_why() {
    use tramline::log::{EventLog, TopicSpec};
    use tramline::runtime::dead_letter::letter;
    let (dir, log) = embedded_log(vec![]);
    let dlq: std::sync::Arc<str> = "accounting.dlq".into();
    let failed = |offset, value: &'static [u8]| tramline::log::Record {
        topic: "order.events".into(),
        partition: 1,
        offset,
        key: Some(bytes::Bytes::from_static(b"ord_1")),
        value: Some(bytes::Bytes::from_static(value)),
        headers: confirmed(0, "", &[]).headers,
        timestamp: 1_893_492_000_000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        log.create_topic(&TopicSpec::keep(&*dlq, 1)).await.unwrap();
        let letters = vec![
            letter(&dlq, "accounting", &failed(7, b"{\"total\":\"x\"}"), &"invalid type: string \"x\", expected i64"),
            letter(&dlq, "accounting", &failed(9, &[0xff, 0x00]), &"not JSON"),
        ];
        log.append(letters).await.unwrap();
    });
    let data = dir.path().to_str().unwrap();
    let output = dead_letters(&["--group", "accounting", "--data", data, "--values"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let letters = lines(&output.stdout);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0]["letter"], "accounting.dlq/0@0");
    assert_eq!(letters[0]["origin"], "order.events/1@7");
    assert_eq!(letters[0]["processor"], "accounting");
    assert_eq!(letters[0]["error"], "invalid type: string \"x\", expected i64");
    assert_eq!(letters[0]["key"], "ord_1");
    assert_eq!(letters[0]["type"], "OrderConfirmed");
    assert_eq!(letters[0]["value"], "{\"total\":\"x\"}");
    assert_eq!(letters[1]["value_base64"], "/wA=");
    assert!(stderr(&output).contains("2 dead letters on `accounting.dlq`"), "{}", stderr(&output));
    let without = lines(&dead_letters(&["--group", "accounting", "--data", data]).stdout);
    assert!(without[0].get("value").is_none(), "values only when asked: {without:?}");

    let unknown = dead_letters(&["--group", "acounting", "--data", data]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("topic `acounting.dlq` does not exist"), "{}", stderr(&unknown));
    drop(log);
}

/// An app in a namespace keeps its letters under it: `--namespace` finds them. Letters that
/// cannot be written (a full disk) are an error, not a listing that looks empty.
#[test]
fn dead_letters_of_a_namespaced_app_are_found_and_a_full_disk_is_an_error() {
    use tramline::log::{EventLog, TopicSpec};
    let (dir, log) = embedded_log(vec![]);
    let dlq: std::sync::Arc<str> = "staging.accounting.dlq".into();
    let failed = tramline::log::Record {
        topic: "staging.order.events".into(),
        partition: 0,
        offset: 3,
        key: None,
        value: None,
        headers: tramline::log::Headers::new(),
        timestamp: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        log.create_topic(&TopicSpec::keep(&*dlq, 1)).await.unwrap();
        let letter = tramline::runtime::dead_letter::letter(&dlq, "staging.accounting", &failed, &"a tombstone");
        log.append(vec![letter]).await.unwrap();
    });
    let data = dir.path().to_str().unwrap();
    let output = dead_letters(&["--group", "accounting", "--namespace", "staging", "--data", data]);
    assert!(output.status.success(), "{}", stderr(&output));
    let letters = lines(&output.stdout);
    assert_eq!((letters.len(), &letters[0]["error"]), (1, &serde_json::json!("a tombstone")), "{letters:?}");

    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tramline"))
        .args(["dead-letters", "--group", "staging.accounting", "--data", data])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot write to stdout"), "{}", stderr(&output));
    let dir_sql = tempfile::tempdir().unwrap();
    let sql = dir_sql.path().join("q.sql");
    std::fs::write(&sql, REFERENCE).unwrap();
    let input = dir_sql.path().join("orders.jsonl");
    std::fs::write(&input, orders()).unwrap();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tramline"))
        .args(["query", "--sql", sql.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "the query's rows too: {}", stderr(&output));
    drop(log);
}

/// The three commands on a Kafka cluster (the repository's test broker), with client settings
/// passed through as a secured cluster needs them; a setting librdkafka does not know is an
/// error that names it.
#[test]
fn the_commands_read_and_reset_an_app_on_kafka_with_client_settings() {
    use tramline::log::{TopicPartition, TopicSpec};
    let brokers = tramline::testing::kafka::bootstrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (log, namespace) = runtime.block_on(tramline::testing::kafka::isolated_log("cli"));
    let source = TopicPartition::new("order.events", 0);
    runtime.block_on(async {
        log.create_topic(&TopicSpec::keep("order.events", 2)).await.unwrap();
        log.append((0..6).map(|minute| confirmed(minute, "", &[])).collect()).await.unwrap();
        for topic in ["sales-repartition", "accounting.dlq"] {
            log.create_topic(&TopicSpec::keep(topic, 1)).await.unwrap();
        }
        log.create_topic(&TopicSpec::compact("sales-changelog", 1)).await.unwrap();
        let failed = log.read(&source, 2, 1).await.unwrap().remove(0);
        let letter = tramline::runtime::dead_letter::letter(&"accounting.dlq".into(), "accounting", &failed, &"boom");
        log.append(vec![letter]).await.unwrap();
        let mut member = log.join("sales.rekey", &["order.events"], tramline::log::StartFrom::Beginning).await.unwrap();
        while member.assignment().is_empty() {
            member.poll(10, std::time::Duration::from_millis(50)).await.unwrap();
        }
        member.commit(Vec::new(), vec![(source.clone(), 6)]).await.unwrap();
        member.leave().await.unwrap();
    });
    // Settings from a file (as Kafka's client.properties), and on the command line.
    let settings = tempfile::tempdir().unwrap();
    let (client_file, unknown_file) = (settings.path().join("client.properties"), settings.path().join("bad"));
    std::fs::write(&client_file, "# the test cluster\nclient.rack = cli-test\n").unwrap();
    std::fs::write(&unknown_file, "client.rack=cli-test\nno.such.setting: 1\n").unwrap();
    let client_file = client_file.to_str().unwrap();
    let kafka = ["--brokers", &brokers, "--kafka-config", client_file, "--kafka-set", "socket.keepalive.enable=true"];

    let topic = format!("{namespace}.order.events");
    let output = run(REFERENCE, "", &[&kafka[..], &["--topic", &topic]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let counts: Vec<i64> = lines(&output.stdout).iter().map(|row| row["KSQL_COL_0"].as_i64().unwrap()).collect();
    assert_eq!(counts, [5, 6], "the bulk buyer's fifth and sixth orders pass HAVING");

    let output = dead_letters(&[&kafka[..], &["--group", "accounting", "--namespace", &namespace]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let letters = lines(&output.stdout);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((&letters[0]["error"], &letters[0]["type"]), (&"boom".into(), &"OrderConfirmed".into()));

    let unknown = reset_query(&["--name", "sales", "--brokers", &brokers, "--kafka-set", "no.such.setting=1"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("No such configuration property: \"no.such.setting\""), "{}", stderr(&unknown));
    let unknown =
        reset_query(&["--name", "sales", "--brokers", &brokers, "--kafka-config", unknown_file.to_str().unwrap()]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("No such configuration property: \"no.such.setting\""), "{}", stderr(&unknown));
    let missing = settings.path().join("none");
    let unread = reset_query(&["--name", "sales", "--brokers", &brokers, "--kafka-config", missing.to_str().unwrap()]);
    assert_eq!(unread.status.code(), Some(2), "{}", stderr(&unread));
    assert!(stderr(&unread).contains(&format!("cannot read `{}`", missing.display())), "{}", stderr(&unread));
    let output = reset_query(&[&kafka[..], &["--name", "sales", "--namespace", &namespace]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("topics sales-changelog, sales-repartition"), "{}", stderr(&output));
    runtime.block_on(async {
        assert_eq!(log.partition_count("sales-changelog").await.unwrap(), None, "the changelog is gone");
        assert_eq!(log.committed("sales.rekey", &source).await.unwrap(), None, "the query's group is gone");
        assert_eq!(log.partition_count("order.events").await.unwrap(), Some(2), "the source stays");
    });
}
