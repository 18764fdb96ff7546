//! The whole platform on the durable backends: a seeded simulation on the embedded log (run
//! twice, the second continuing the first) and on a real Kafka broker, every invariant holding.

use std::sync::Arc;
use std::time::Duration;

use ticketing_platform::{CountingMailer, Platform, Services, Simulation, Summary};
use tramline::log::EventLog;
use tramline::log::embedded::EmbeddedLog;
use tramline::runtime::Settings;
use tramline_platform_tests::within;

async fn run(log: Arc<dyn EventLog>, simulation: &Simulation) -> Summary {
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };
    let settings = Settings { poll_timeout: Duration::from_millis(50), ..Settings::default() };
    let mut platform =
        within("the platform to start", Platform::start(log, settings, services)).await.expect("started");
    let summary = within("the simulation", simulation.run(&mut platform, &*mailer, |_| {})).await.expect("a summary");
    platform.app.shutdown().await.expect("a clean shutdown");
    for invariant in summary.invariants() {
        assert!(invariant.holds, "{}: {}", invariant.name, invariant.detail);
    }
    summary
}

fn simulation(orders: usize) -> Simulation {
    Simulation { seed: 5, customers: 20, orders, concurrency: 64, decline_percent: 10 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_durably_on_the_embedded_log_and_continues_after_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = run(Arc::new(EmbeddedLog::open(dir.path()).expect("opened")), &simulation(150)).await;
    assert_eq!(first.orders_placed, 150);
    // The directory lock goes with the last handle; the runtime's tasks have ended.
    let second = run(Arc::new(EmbeddedLog::open(dir.path()).expect("reopened")), &simulation(100)).await;
    assert_eq!((second.orders_placed_before, second.orders_placed), (150, 250));
    assert!(second.accounting_revenue > first.accounting_revenue, "accounting replays both runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_on_kafka() {
    // A namespace of its own on the shared broker: the figures are this run's.
    let (log, _) = tramline::testing::kafka::isolated_log("platform-test").await;
    let summary = run(log, &simulation(150)).await;
    assert_eq!((summary.orders_placed_before, summary.orders_placed), (0, 150));
    assert!(summary.tickets_issued > 0);
}
