//! A second run continues where a killed one left off: `ticketing` on an embedded directory is
//! killed with SIGKILL three times in the middle of a round of orders (orders placed whose
//! payments had not started, a transaction cut short), started again on the same directory each
//! time, and a last run then ends with every invariant holding over the whole log. A run
//! stopped while it sets up ends there.

mod common;

use std::time::Duration;

use common::{Process, run_dir, start_logging};
use serde_json::Value;
use tramline::Message;
use tramline::log::embedded::EmbeddedLog;
use tramline::log::{EventLog, TopicPartition};

const KILLS: u64 = 3;
const LOG: &str = "warn,ticketing_platform=info";
const ROUND: &str = "a round of orders starts";
const RESUMED: &str = "paying for the orders an earlier run left without a payment";

#[test]
fn a_run_after_kills_finds_every_invariant_holding() {
    let dir = run_dir("killed-driver");
    let data = dir.join("data");
    let mut args: Vec<String> = vec!["--data".into(), data.display().to_string()];
    args.extend(["--seed", "41", "--customers", "400", "--concurrency", "64"].map(String::from));

    let mut killed: Vec<Process> = Vec::new();
    for kill in 0..KILLS {
        let mut run = args.clone();
        run.extend(["--orders", "100000"].map(String::from));
        let mut driver = start_logging("killed", &dir, &run, LOG);
        // In the second round (the first has settled), with 64 reservations in flight.
        driver.wait_log(ROUND, 2, Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(300 + 200 * kill));
        assert!(driver.running(), "run {kill} ended before it was killed: {}", driver.log_tail());
        driver.kill();
        killed.push(driver);
    }

    args.extend(["--orders", "200", "--json"].map(String::from));
    let mut last = start_logging("last", &dir, &args, LOG);
    let (status, line) = last.finish(Duration::from_secs(600));
    eprintln!("logs of the runs: {}", dir.display());
    let line = line.unwrap_or_else(|| panic!("no summary from the last run ({status}); log:\n{}", last.log_tail()));
    let summary: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON summary ({e}): {line}"));
    let broken: Vec<&Value> =
        summary["invariants"].as_array().into_iter().flatten().filter(|i| i["holds"] != true).collect();
    assert!(broken.is_empty(), "invariants broken after {KILLS} kills: {broken:?}\n{summary}");
    assert!(status.success(), "the last run failed ({status}): {summary}; log:\n{}", last.log_tail());
    // The kills hit where they should: runs found orders a killed one had left unpaid.
    let resumed = killed.iter().skip(1).chain([&last]).filter(|run| run.log_lines(RESUMED) > 0).count();
    assert!(resumed > 0, "no run found an order a killed run had left unpaid: the kills came too late or early");
    eprintln!("{resumed} of {KILLS} later runs paid for orders left unpaid; summary: {summary}");

    // What the killed runs left was done on the simulation's timeline, not at the machine's time:
    // the stream queries' windows take every order as the rest of its round.
    let log = EmbeddedLog::open(&data).expect("the log opens after the last run");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let early = runtime.block_on(records_before(&log, order_contract::OrderEvent::TOPIC, SIMULATION_EPOCH_MS));
    let first: Vec<_> = early.iter().take(5).collect();
    assert!(early.is_empty(), "{} order events stamped before the simulation's epoch, first {first:?}", early.len());
}

/// SIGTERM while customers register (a million would take the debug build half an hour) stops
/// the run there: no order is placed, and the summary says the run stopped early.
#[test]
fn a_stop_during_set_up_ends_the_run_there() {
    let dir = run_dir("stopped-set-up");
    let args: Vec<String> =
        ["--memory", "--customers", "1000000", "--orders", "100", "--json"].map(String::from).into();
    let mut driver = start_logging("stopped", &dir, &args, LOG);
    driver.wait_log("registering the customers", 1, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    driver.terminate();
    let (status, line) = driver.finish(Duration::from_secs(120));
    let line = line.unwrap_or_else(|| panic!("no summary ({status}); log:\n{}", driver.log_tail()));
    let summary: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON summary ({e}): {line}"));
    assert_eq!(summary["stopped_early"], true, "{summary}");
    assert_eq!(summary["orders_placed"], 0, "{summary}");
}

/// 2030-01-01T00:00:00Z, where the simulation's timeline starts.
const SIMULATION_EPOCH_MS: i64 = 1_893_456_000_000;

/// The positions and times of the records of `topic` stamped before `millis`.
async fn records_before(log: &EmbeddedLog, topic: &str, millis: i64) -> Vec<(String, i64)> {
    let mut early = Vec::new();
    for partition in 0..log.partition_count(topic).await.expect("readable").unwrap_or(0) {
        let tp = TopicPartition::new(topic, partition);
        let mut offset = 0;
        loop {
            let records = log.read(&tp, offset, 1024).await.expect("readable");
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            let stamped_early = records.iter().filter(|record| record.timestamp < millis);
            early.extend(stamped_early.map(|record| (format!("{tp}@{}", record.offset), record.timestamp)));
        }
    }
    early
}
