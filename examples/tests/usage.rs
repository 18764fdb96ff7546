//! Flags that do not go together are refused before anything runs, with clap's status 2.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn refused(binary: &str, args: &[&str], says: &str) {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Accepted flags would start a platform that serves until stopped.
    let started = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().expect("killed");
            panic!("{args:?} was accepted: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("its output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?} should say `{says}`: {stderr}");
}

#[test]
fn kafka_only_flags_need_brokers_whatever_log_is_chosen() {
    let ticketing = env!("CARGO_BIN_EXE_ticketing");
    for log in [&["--memory"][..], &["--data", "/nonexistent/tramline-usage-test"]] {
        let with = |extra: &[&'static str]| [log, extra].concat();
        refused(ticketing, &with(&["--modules", "order"]), "needs `--brokers`");
        refused(ticketing, &with(&["--kafka-set", "acks=all"]), "they need `--brokers`");
        refused(ticketing, &with(&["--kafka-config", "client.properties"]), "they need `--brokers`");
    }
    let bench_chain = env!("CARGO_BIN_EXE_bench-chain");
    refused(bench_chain, &["--data", "/nonexistent/tramline-usage-test", "--kafka-set", "acks=all"], "--brokers");
    refused(bench_chain, &["--data", "/nonexistent/tramline-usage-test", "--kafka-config", "f"], "--brokers");
}

#[test]
fn counts_that_cannot_be_zero_are_refused() {
    refused(env!("CARGO_BIN_EXE_bench-chain"), &["--runs", "0"], "--runs");
    refused(env!("CARGO_BIN_EXE_bench-query"), &["--customers", "0"], "--customers");
    let ticketing = env!("CARGO_BIN_EXE_ticketing");
    refused(ticketing, &["--memory", "--customers", "0"], "--customers");
    refused(ticketing, &["--memory", "--concurrency", "0"], "--concurrency");
}

#[test]
fn counts_beyond_what_a_run_can_plan_are_refused() {
    let ticketing = env!("CARGO_BIN_EXE_ticketing");
    refused(ticketing, &["--memory", "--orders", "18446744073709551615"], "--orders");
    refused(ticketing, &["--memory", "--orders", "1000000000000"], "--orders");
    refused(ticketing, &["--memory", "--customers", "100000000000000000"], "--customers");
}

#[test]
fn flags_that_would_be_ignored_or_name_nothing_are_refused() {
    let ticketing = env!("CARGO_BIN_EXE_ticketing");
    refused(ticketing, &["--brokers", "", "--orders", "1"], "names no broker");
    refused(ticketing, &["--memory", "topology"], "cannot be used with");
    refused(ticketing, &["catalog", "--server", "127.0.0.1:9092"], "--asyncapi");
    refused(ticketing, &["--memory", "--kafka-set", "acks=all"], "Usage: ticketing");
}

#[test]
fn an_empty_namespace_is_none() {
    // `TRAMLINE_NAMESPACE=` is how a script unsets it; `--namespace ''` says the same.
    let output = Command::new(env!("CARGO_BIN_EXE_ticketing"))
        .args(["--memory", "--orders", "3", "--customers", "2", "--namespace", ""])
        .env("TRAMLINE_NAMESPACE", "")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("namespace"), "no namespace is named: {stdout}");
}
