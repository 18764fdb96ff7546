//! The platform rides out a broker crash: `ticketing` runs the whole platform on Kafka while the
//! broker (the repository's, `scripts/kafka`) is killed in the middle of the run, stays away for
//! a while, and is started again; the run ends on its own with every invariant holding.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{check_summary, run_dir, shared_args, start};

const ORDERS: u64 = 3_000;

fn kafka_script(action: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
    let output = Command::new(&script).arg(action).output().expect("scripts/kafka runs");
    assert!(
        output.status.success(),
        "`scripts/kafka {action}` failed: this test restarts the repository's broker (scripts/test starts it)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The transactions of `namespace` that the coordinator has not completed yet, as
/// `kafka-transactions.sh list` shows them (id and state).
fn transactions_in_flight(bootstrap: &str, namespace: &str) -> Vec<String> {
    let classpath = kafka_script("classpath");
    let java = std::env::var("JAVA_HOME").map_or("java".into(), |home| format!("{home}/bin/java"));
    let output = Command::new(java)
        .args(["-cp", classpath.trim(), "org.apache.kafka.tools.TransactionsCommand"])
        .args(["--bootstrap-server", bootstrap, "list"])
        .output()
        .expect("Kafka's kafka-transactions tool runs");
    assert!(output.status.success(), "kafka-transactions list failed: {}", String::from_utf8_lossy(&output.stderr));
    let prefix = format!("{namespace}.");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter(|line| !["Empty", "CompleteCommit", "CompleteAbort"].iter().any(|done| line.contains(done)))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

// The platform is paused (SIGSTOP) until the coordinator has completed or aborted every
// transaction it had open, and only then does the broker die. A single broker that dies while it
// completes a transaction (or restarts after a crash before its old session has expired) leaves
// the transaction hanging for good: Kafka skips the commit markers of partitions that have no
// leader at that moment, and one broker has no other replica to hand the leadership to. No client
// can end such a transaction (an operator can: `kafka-transactions.sh abort`), so a crash at an
// arbitrary instant would test Kafka's single-node limit, not the platform. Everything else
// happens as in a crash: the platform's clients find the broker gone, their group sessions and
// open transactions expired, and the broker recovering its logs.
#[test]
fn the_platform_rides_out_a_broker_crash() {
    let bootstrap = tramline::testing::kafka::bootstrap();
    kafka_script("status");
    let dir = run_dir("broker-restart");
    let mut args = shared_args(&bootstrap, &dir.join("mail"), 41);
    let namespace = args[args.iter().position(|a| a == "--namespace").expect("a namespace") + 1].clone();
    args.extend(["--json", "--customers", "50", "--concurrency", "64"].map(String::from));
    args.extend(["--orders".into(), ORDERS.to_string()]);
    let mut platform = start("platform", &dir, &args);

    std::thread::sleep(Duration::from_secs(5));
    assert!(platform.running(), "the run ended before the crash: {}", platform.log_tail());
    platform.pause();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = transactions_in_flight(&bootstrap, &namespace);
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "transactions still open 90 s after the pause: {open:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    kafka_script("kill");
    platform.resume();
    std::thread::sleep(Duration::from_secs(5)); // the platform without a broker
    kafka_script("start");

    let (status, last_line) = platform.finish(Duration::from_secs(600));
    eprintln!("logs of the run: {}", dir.display());
    assert!(status.success(), "the run failed ({status}); summary: {last_line:?}; log:\n{}", platform.log_tail());
    check_summary(last_line, ORDERS);
}
