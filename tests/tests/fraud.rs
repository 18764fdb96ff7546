//! The fraud module on the whole platform: the seeded simulation's bulk buyers, and only they,
//! are flagged by the reference query, and the summary's figure (also in its JSON) equals the
//! simulation's ground truth.

use std::sync::Arc;

use ticketing_platform::{CountingMailer, Platform, Services, Simulation};
use tramline::MemoryLog;
use tramline_platform_tests::{fast_settings, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulation_flags_its_bulk_buyers_and_matches_the_ground_truth() {
    let simulation = Simulation { seed: 11, customers: 80, orders: 400, concurrency: 64, decline_percent: 10 };
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };
    let mut platform = within("the platform to start", Platform::start(MemoryLog::shared(), fast_settings(), services))
        .await
        .unwrap();
    let summary = within("the simulation", simulation.run(&mut platform, &*mailer, |_| {})).await.unwrap();
    platform.app.shutdown().await.unwrap();

    // Two bulk buyers (one per forty customers), each with a burst of eight orders.
    assert!(summary.suspicious_customers_expected >= Some(1), "{summary:?}");
    assert_eq!(Some(summary.suspicious_customers), summary.suspicious_customers_expected);
    for invariant in summary.invariants() {
        assert!(invariant.holds, "{}: {}", invariant.name, invariant.detail);
    }
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["suspicious_customers"], summary.suspicious_customers);
}
