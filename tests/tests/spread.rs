//! The platform spread over several apps on one log, as over several processes: each app runs
//! some modules ([`App::run_only`]); commands to a module elsewhere travel through the log and
//! their outcomes come back on `<module>.replies`; the driver settles on the others' committed
//! positions. On the memory log, so that it runs in a blink; the child-process version on Kafka
//! is in `examples/tests`.

use std::sync::Arc;
use std::time::Duration;

use product_contract::{Money, ProductCommand, ProductId};
use reserve::{Request, ReserveError};
use ticketing_platform::{CountingMailer, Platform, Services, Simulation};
use tramline::log::EventLog;
use tramline::runtime::{CommandError, RuntimeError, Settings};
use tramline::{App, MemoryLog, ReferenceId};
use tramline_platform_tests::{create_product, fast_settings, register_customer, within};

async fn part(log: &Arc<dyn EventLog>, modules: &[&str], services: &Services) -> Platform {
    let app = App::new(log.clone()).with_settings(fast_settings()).run_only(modules.iter().copied());
    let mut platform = Platform::register_in(app, services.clone()).await.expect("registered");
    within("the app to start", platform.app.start()).await.expect("started");
    platform
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_spread_over_three_apps_keeps_every_invariant() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let simulation = Simulation { seed: 11, customers: 10, orders: 300, concurrency: 32, decline_percent: 20 };
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };

    let orders = part(&log, &["customer", "product", "order"], &services).await;
    let payments_and_tickets = part(&log, &["payment", "ticket"], &services).await;
    let driver_modules = ["reserve", "order-history", "platform", "accounting", "partner-feed", fraud::QUERY];
    let mut driver = part(&log, &driver_modules, &services).await;
    assert!(driver.customers.is_remote() && !orders.customers.is_remote());

    let summary = within("the simulation", simulation.run(&mut driver, &*mailer, |_| {})).await.expect("a summary");
    for invariant in summary.invariants() {
        assert!(invariant.holds, "{}: {}", invariant.name, invariant.detail);
    }
    assert_eq!((summary.reservations, summary.orders_placed), (300, 300));
    assert!(summary.payments_cancelled > 0 && summary.tickets_issued > 0);

    // A rejection crosses the log with the module's own error.
    let create =
        ProductCommand::Create { product_id: ProductId::generate(), name: "Tram tour".into(), price: Money::cents(1) };
    within("a product", driver.products.send(create.clone())).await.expect("created");
    match within("a rejection", driver.products.send(create)).await {
        Err(CommandError::Rejected(product::ProductError::AlreadyExists(_))) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A projection built elsewhere cannot be waited for here.
    assert!(matches!(orders.history.caught_up().await, Err(RuntimeError::Elsewhere(_))));

    for platform in [driver, payments_and_tickets, orders] {
        platform.app.shutdown().await.expect("a clean shutdown");
    }
}

/// The payment module away: reserve places the order and says that its payment did not start
/// (a transient error, naming the order); once the module is back, the same request again pays
/// the order once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_payment_module_is_away_names_the_unpaid_order_and_a_retry_pays_it_once() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let mailer = Arc::new(CountingMailer::default());
    let approves = Simulation { decline_percent: 0, ..Simulation::default() };
    let services = Services { provider: Arc::new(approves.provider()), mailer: mailer.clone() };
    let settings = Settings { command_timeout: Duration::from_secs(1), ..fast_settings() };
    let everything_but_payment = [
        "customer",
        "product",
        "order",
        "ticket",
        "reserve",
        "order-history",
        "platform",
        "accounting",
        "partner-feed",
        fraud::QUERY,
    ];
    let app = App::new(log.clone()).with_settings(settings).run_only(everything_but_payment);
    let mut driver = Platform::register_in(app, services.clone()).await.expect("registered");
    within("the app to start", driver.app.start()).await.expect("started");
    let ada = register_customer(&driver, "Ada").await;
    let ride = create_product(&driver, "Single ride", 250).await;

    let request = Request::new(ada, ride, 2);
    match within("a reservation", driver.reserve.reserve(request.clone())).await {
        Err(error @ ReserveError::Payment { order_id, .. }) => {
            assert_eq!(order_id, request.order_id);
            assert!(error.is_transient(), "a module away is worth a retry: {error}");
        }
        other => panic!("expected the payment step to fail for want of the payment module, got {other:?}"),
    }

    let payments = part(&log, &["payment"], &services).await;
    let reservation = within("a retried reservation", driver.reserve.reserve(request.clone())).await.expect("reserved");
    assert_eq!(reservation.payment_id, request.payment_id());
    within("the platform to settle", driver.app.settle()).await.expect("settled");
    let (placed, created, confirmed) =
        driver.statistics.read(|s| (s.orders_placed, s.payments_created, s.orders_confirmed));
    assert_eq!((placed, created, confirmed), (1, 1, 1), "one order, paid once");
    for platform in [driver, payments] {
        platform.app.shutdown().await.expect("a clean shutdown");
    }
}
