//! A second run continues where a killed one left off: `ticketing` on an embedded directory is
//! killed with SIGKILL three times in the middle of a round of orders (orders placed whose
//! payments had not started, a transaction cut short), started again on the same directory each
//! time, and a last run then ends with every invariant holding over the whole log.

mod common;

use std::time::Duration;

use common::{Process, run_dir, start_logging};
use serde_json::Value;

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
}
