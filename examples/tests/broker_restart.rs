//! The platform rides out a broker restart: `ticketing` runs the whole platform on Kafka while
//! the broker (the repository's, `scripts/kafka`) is stopped and started again in the middle of
//! the run; the run ends on its own with every invariant holding.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

// Run by hand (`cargo test -p tramline-examples --test broker_restart -- --ignored`) until the
// hang it finds is fixed: in about a third of the runs, a processor stays stuck after the
// restart on a transaction that never completes on one partition (its last stable offset stays
// below the high watermark), so the committed offsets of its group stay unstable and its
// rewinds time out. See CHANGELOG ("Known issues").
#[test]
#[ignore = "hangs in about a third of the runs on a Kafka transaction left open by the restart"]
fn the_platform_rides_out_a_broker_restart() {
    let bootstrap = tramline::testing::kafka::bootstrap();
    kafka_script("status");
    let dir = run_dir("broker-restart");
    let mut args = shared_args(&bootstrap, &dir.join("mail"), 41);
    args.extend(["--json", "--customers", "50", "--concurrency", "64"].map(String::from));
    args.extend(["--orders".into(), ORDERS.to_string()]);
    let mut platform = start("platform", &dir, &args);

    std::thread::sleep(Duration::from_secs(5));
    assert!(platform.running(), "the run ended before the restart: {}", platform.log_tail());
    kafka_script("restart");

    let (status, last_line) = platform.finish(Duration::from_secs(600));
    eprintln!("logs of the run: {}", dir.display());
    assert!(status.success(), "the run failed ({status}); summary: {last_line:?}; log:\n{}", platform.log_tail());
    check_summary(last_line, ORDERS);
}
