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

/// A run killed between the two steps of a reservation leaves its order placed and its payment
/// never started: the next run pays for it, and every order settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_pays_for_the_orders_a_killed_run_left_unpaid() {
    use customer_contract::{CustomerCommand, CustomerId};
    use order_contract::{OrderCommand, OrderId};
    use product_contract::{Money, ProductCommand, ProductId};
    use tramline::ReferenceId;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = || Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
    run(open(), &simulation(40)).await;
    {
        let mailer = Arc::new(CountingMailer::default());
        let services = Services { provider: Arc::new(simulation(0).provider()), mailer };
        let settings = Settings { poll_timeout: Duration::from_millis(50), ..Settings::default() };
        let platform = within("the platform to start", Platform::start(open(), settings, services)).await.unwrap();
        let (customer_id, product_id) = (CustomerId::generate(), ProductId::generate());
        let register = CustomerCommand::Register { customer_id, name: "Ada".into(), email: "ada@example.org".into() };
        platform.customers.send(register).await.expect("registered");
        let price = Money::cents(300);
        let create = ProductCommand::Create { product_id, name: "Ride".into(), price };
        platform.products.send(create).await.expect("created");
        for _ in 0..3 {
            let order_id = OrderId::generate();
            let place = OrderCommand::Place { order_id, customer_id, product_id, quantity: 1, unit_price: price };
            platform.orders.send(place).await.expect("placed");
        }
        platform.app.shutdown().await.expect("a clean shutdown");
    }
    let second = run(open(), &simulation(40)).await;
    assert_eq!((second.orders_placed_before, second.orders_resumed), (43, 3));
    assert_eq!(second.orders_confirmed + second.orders_cancelled, 83, "every order settled");
}

/// A customer of the seed forgotten between two runs (the right to erasure) stays forgotten:
/// the next run with the same seed shops with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_goes_on_without_a_customer_forgotten_since() {
    use customer_contract::CustomerCommand;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = || Arc::new(EmbeddedLog::open(dir.path()).expect("opened"));
    run(open(), &simulation(40)).await;
    let forgotten = simulation(0).customer_ids()[0];
    {
        let mailer = Arc::new(CountingMailer::default());
        let services = Services { provider: Arc::new(simulation(0).provider()), mailer };
        let platform = within("the platform to start", Platform::start(open(), Settings::default(), services)).await;
        let platform = platform.expect("started");
        platform
            .customers
            .send(CustomerCommand::Forget { customer_id: forgotten })
            .await
            .expect("forgotten");
        platform.app.shutdown().await.expect("a clean shutdown");
    }
    let second = run(open(), &simulation(40)).await;
    assert_eq!((second.orders_placed_before, second.orders_placed), (40, 80));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_on_kafka() {
    // A namespace of its own on the shared broker: the figures are this run's.
    let (log, _) = tramline::testing::kafka::isolated_log("platform-test").await;
    let summary = run(log, &simulation(150)).await;
    assert_eq!((summary.orders_placed_before, summary.orders_placed), (0, 150));
    assert!(summary.tickets_issued > 0);
}
