//! The partner mailer against the platform's public feeds: killed on purpose in the middle and
//! restarted, it writes exactly one e-mail per confirmed order, on the embedded log and on Kafka.
//! (The platform is a dev-dependency only: it produces the feeds the binary reads.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use ticketing_platform::{CountingMailer, Platform, Services, Simulation};
use tramline::log::embedded::EmbeddedLog;
use tramline::log::{EventLog, Headers, OutRecord, TopicPartition};
use tramline::runtime::Settings;

const FEEDS: [&str; 3] = ["public.orders.citybus", "public.orders.airlink", "public.orders.metro"];

/// Runs a simulation; returns how many orders it confirmed (over the whole log).
async fn run_platform(log: Arc<dyn EventLog>, orders: usize) -> u64 {
    let simulation = Simulation { seed: 11, customers: 15, orders, concurrency: 32, decline_percent: 20 };
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };
    let settings = Settings { poll_timeout: Duration::from_millis(50), ..Settings::default() };
    let mut platform = Platform::start(log, settings, services).await.expect("the platform starts");
    let summary = simulation.run(&mut platform, &*mailer, |_| {}).await.expect("a summary");
    platform.app.settle().await.expect("the exports catch up");
    platform.app.shutdown().await.expect("a clean shutdown");
    assert!(summary.holds());
    summary.orders_confirmed
}

/// The order ids on the feeds, per feed.
async fn published(log: &dyn EventLog) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut feeds = BTreeMap::new();
    for feed in FEEDS {
        let mut orders = BTreeSet::new();
        for partition in 0..log.partition_count(feed).await.unwrap().expect("the feed exists") {
            let tp = TopicPartition::new(feed, partition);
            let end = log.end_offset(&tp).await.unwrap();
            let mut offset = 0;
            while offset < end {
                let records = log.read(&tp, offset, 1000).await.unwrap();
                let Some(last) = records.last() else { break };
                offset = last.offset + 1;
                for record in records {
                    let json: serde_json::Value = match serde_json::from_slice(record.value.as_deref().unwrap()) {
                        Ok(json) => json,
                        Err(_) => continue,
                    };
                    if let Some(order) = json["order_id"].as_str() {
                        orders.insert(order.to_owned());
                    }
                }
            }
        }
        feeds.insert(feed, orders);
    }
    feeds
}

/// Records that break the contract, put on a feed by someone careless.
async fn poison(log: &dyn EventLog) {
    let record = |version: &str, payload: &str| {
        let mut headers = Headers::builder(200);
        headers.push("ce_specversion", b"1.0");
        headers.push("ce_id", uuid::Uuid::now_v7().to_string().as_bytes());
        headers.push("ce_type", b"OrderConfirmed");
        headers.push("ce_schemaversion", version.as_bytes());
        OutRecord {
            topic: Arc::from("public.orders.metro"),
            partition: Some(0),
            key: None,
            value: Some(payload.as_bytes().to_vec().into()),
            headers: headers.build(),
            timestamp: None,
        }
    };
    let order = |operator: &str, product: &str| {
        serde_json::json!({
            "order_id": "ord_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b", "operator": operator,
            "product_id": "prd_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b", "product": product,
            "quantity": 1, "unit_price_cents": 250, "total_cents": 250, "confirmed_at": "2030-01-01T08:00:00Z",
        })
        .to_string()
    };
    log.append(vec![
        record("1", r#"{"order_id": "ord_1", "total_cents": "ten"}"#),
        record("7", r#"{"order_id": "ord_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b"}"#),
        record("1", &order("citybus", "Day pass")),
        record("1", &order("metro", "Day pass\r\nBcc: someone@example.org")),
    ])
    .await
    .unwrap();
}

fn mailer(source: &[&str], out: &Path, group: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_partner-mailer"))
        .args(source)
        .arg("--out")
        .arg(out)
        .args(["--group", group, "--until-caught-up"])
        .args(extra)
        .output()
        .expect("the mailer runs")
}

/// The e-mails written: order id -> how many files name it; fails on a half-written file.
fn mails(out: &Path) -> BTreeMap<String, usize> {
    let mut mails = BTreeMap::new();
    for operator in std::fs::read_dir(out).into_iter().flatten() {
        for file in std::fs::read_dir(operator.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            assert_eq!(path.extension().unwrap(), "eml", "a half-written e-mail: {}", path.display());
            let text = std::fs::read_to_string(&path).unwrap();
            // An RFC 5322 message: CRLF line endings, a date, MIME headers.
            assert!(text.split("\r\n").all(|line| !line.contains('\n')), "a bare LF in {}", path.display());
            let date = text.lines().find_map(|line| line.strip_prefix("Date: ")).expect("a Date header");
            jiff::fmt::rfc2822::parse(date).unwrap_or_else(|e| panic!("`{date}` in {}: {e}", path.display()));
            assert!(text.contains("\r\nMIME-Version: 1.0\r\n"), "{text}");
            let order = text.split("confirms reservation ").nth(1).and_then(|rest| rest.split('.').next());
            *mails.entry(order.expect("an order reference").to_owned()).or_insert(0) += 1;
        }
    }
    mails
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Crashes the mailer twice mid-way, then lets it finish, and checks one e-mail per order.
fn kill_restart_and_check(source: &[&str], group: &str, expected: &BTreeSet<String>) {
    let out = tempfile::tempdir().unwrap();
    for crash in 1..=2 {
        let crashed = mailer(source, out.path(), group, &["--crash-after", "4"]);
        assert!(!crashed.status.success(), "crash {crash} was meant to kill it: {}", stderr(&crashed));
        assert_eq!(mails(out.path()).len(), 4 * crash, "each run wrote 4 new e-mails before dying");
    }
    let finished = mailer(source, out.path(), group, &[]);
    assert!(finished.status.success(), "{}", stderr(&finished));
    let written = mails(out.path());
    assert_eq!(written.keys().cloned().collect::<BTreeSet<_>>(), *expected, "one e-mail per confirmed order");
    assert!(written.values().all(|&count| count == 1), "duplicates: {written:?}");

    let again = mailer(source, out.path(), group, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("0 e-mails written"), "{}", stderr(&again));
    assert_eq!(mails(out.path()), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mail_per_confirmed_order_on_the_embedded_log_across_crashes() {
    let data = tempfile::tempdir().unwrap();
    let expected = {
        let log = Arc::new(EmbeddedLog::open(data.path()).unwrap());
        let confirmed = run_platform(log.clone(), 60).await;
        let expected = published(&*log).await;
        poison(&*log).await;
        (confirmed, expected)
    };
    let (confirmed, expected) = expected;
    let all: BTreeSet<String> = expected.values().flatten().cloned().collect();
    assert_eq!(all.len() as u64, confirmed, "every confirmed order is on its operator's feed");
    assert!(all.len() > 8, "enough confirmed orders to crash twice: {}", all.len());
    let source = ["--data", data.path().to_str().unwrap()];
    kill_restart_and_check(&source, "partner-mailer", &all);

    // The four broken records went to the mailer's dead-letter topic, with their reasons.
    let log = EmbeddedLog::open(data.path()).unwrap();
    let letters = log.read(&TopicPartition::new("partner-mailer.dlq", 0), 0, 10).await.unwrap();
    let reasons: Vec<String> = letters
        .iter()
        .map(|l| String::from_utf8_lossy(l.header("dlq_error").unwrap()).into_owned())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("breaks the OrderConfirmed v1 schema")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("version `7` is unknown")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("for operator `citybus`, but it is on `public.orders.metro`")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("`product` holds a control character")), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mail_per_confirmed_order_on_kafka_across_crashes() {
    let brokers = tramline::testing::kafka::bootstrap();
    // A namespace of its own on the shared broker, which the mailer is pointed at too.
    let (log, namespace) = tramline::testing::kafka::isolated_log("mailer-test").await;
    run_platform(log.clone(), 40).await;
    let all: BTreeSet<String> = published(&*log).await.values().flatten().cloned().collect();
    assert!(all.len() > 8, "enough confirmed orders to crash twice: {}", all.len());
    drop(log);
    let group = format!("partner-mailer-{}", uuid::Uuid::now_v7().simple());
    kill_restart_and_check(&["--brokers", &brokers, "--namespace", &namespace], &group, &all);
}
