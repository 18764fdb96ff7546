//! Runtime guarantees, seen from the modules: a command is applied once, state survives a
//! restart, a graceful shutdown loses and doubles nothing, a missing publisher is an error,
//! projections give read-your-writes, and reactions start at the end once, then resume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use customer::{Customer, CustomerError};
use customer_contract::{CustomerCommand, CustomerEvent, CustomerId};
use order::{Order, OrderError};
use order_contract::{OrderCommand, OrderEvent, OrderId};
use order_history::OrderStatus;
use product_contract::{Money, ProductCommand, ProductId};
use ticket_contract::{TicketEvent, TicketId};
use ticketing_platform::CountingMailer;
use tramline::log::{EventLog, TopicPartition};
use tramline::privacy::KeyStore;
use tramline::runtime::{CommandError, CommandGateway, RuntimeError, Settings};
use tramline::{App, Envelope, MemoryLog, ReferenceId};
use tramline_platform_tests::{
    Running, ScriptedProvider, events_of, fast_settings, personal_events_of, record_count, settle, start_platform,
    start_platform_on, within,
};

fn registration(customer_id: CustomerId, name: &str) -> CustomerCommand {
    let email = format!("{}@example.org", name.to_lowercase().replace(' ', "."));
    CustomerCommand::Register { customer_id, name: name.into(), email: email.into() }
}

/// Starts an app with the customer module only.
async fn customer_app(log: Arc<MemoryLog>, settings: Settings) -> (App, CommandGateway<Customer>) {
    let mut app = App::new(log).with_settings(settings);
    let customers = customer::register(&mut app).await.expect("the customer module registers");
    within("the app to start", app.start()).await.expect("the app starts");
    (app, customers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_envelope_is_applied_once() {
    let log = MemoryLog::shared();
    let (app, customers) = customer_app(log.clone(), fast_settings()).await;
    let customer_id = CustomerId::generate();
    let envelope = Envelope::new(registration(customer_id, "Ada"), jiff::Timestamp::now());

    let first = within("the first send", customers.send_envelope(envelope.clone())).await.expect("accepted");
    assert!(!first.duplicate);
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].causation_id, Some(envelope.id), "the event names the command as its cause");
    let second = within("the second send", customers.send_envelope(envelope.clone())).await.expect("accepted");
    assert!(second.duplicate, "the repeat is recognised");
    assert!(second.events.is_empty(), "and applies nothing: {second:?}");
    assert_eq!(record_count(&*log, "customer.commands").await, 2, "both sends reached the log");
    assert_eq!(record_count(&*log, "customer.events").await, 1, "one event");

    // The same command in a new envelope is a new command, refused on its merits.
    let fresh = within("a new envelope", customers.send(envelope.payload.clone())).await;
    assert_eq!(fresh.as_ref().err().and_then(|e| e.rejection()), Some(&CustomerError::AlreadyRegistered(customer_id)));
    app.shutdown().await.expect("clean shutdown");
}

// On one thread, so that both sends are waiting before the module handles either: on more
// threads the module sometimes answers the first before the second is sent.
#[tokio::test(flavor = "current_thread")]
async fn the_same_envelope_sent_twice_at_once_is_applied_once_and_both_callers_hear_so() {
    let log = MemoryLog::shared();
    let (app, customers) = customer_app(log.clone(), fast_settings()).await;
    let envelope = Envelope::new(registration(CustomerId::generate(), "Ada"), jiff::Timestamp::now());

    // A caller retrying while its first attempt still waits, as a client library would.
    let (a, b) = within(
        "both sends",
        futures::future::join(customers.send_envelope(envelope.clone()), customers.send_envelope(envelope.clone())),
    )
    .await;
    assert_eq!(record_count(&*log, "customer.events").await, 1, "applied once");
    let a = a.unwrap_or_else(|e| panic!("the first caller got `{e}` although the module answered"));
    let b = b.unwrap_or_else(|e| panic!("the second caller got `{e}` although the module answered"));
    assert!(!(a.duplicate && b.duplicate), "one of them was applied");
    for outcome in [&a, &b].into_iter().filter(|o| !o.duplicate) {
        assert_eq!(outcome.events.len(), 1, "{outcome:?}");
    }
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_state_and_seen_commands_survive_a_restart() {
    let log = MemoryLog::shared();
    let provider = ScriptedProvider::new();
    let before = start_platform_on(log.clone(), provider.clone(), fast_settings()).await;
    let customer_id = CustomerId::generate();
    let registered = Envelope::new(registration(customer_id, "Ada"), jiff::Timestamp::now());
    within("a registration", before.platform.customers.send_envelope(registered.clone()))
        .await
        .expect("registered");
    let (order_id, product_id) = (OrderId::generate(), ProductId::generate());
    let place = OrderCommand::Place { order_id, customer_id, product_id, quantity: 3, unit_price: Money::cents(400) };
    within("an order", before.platform.orders.send(place.clone())).await.expect("placed");
    settle(&before.platform).await;
    within("the shutdown", before.platform.app.shutdown()).await.expect("clean shutdown");

    let Running { platform, log, mailer } = start_platform_on(log, provider, fast_settings()).await;
    let again = within("a registration", platform.customers.send(registration(customer_id, "Eve"))).await;
    assert_eq!(again.as_ref().err().and_then(|e| e.rejection()), Some(&CustomerError::AlreadyRegistered(customer_id)));
    let repeat = within("a repeated envelope", platform.customers.send_envelope(registered)).await.expect("answered");
    assert!(repeat.duplicate, "the command applied before the restart is recognised after it");
    let placed_again = within("an order", platform.orders.send(place)).await;
    assert_eq!(placed_again.as_ref().err().and_then(|e| e.rejection()), Some(&OrderError::AlreadyExists(order_id)));

    // The order placed before the restart can be confirmed after it, with its original line.
    let confirmed = within("a confirmation", platform.orders.send(OrderCommand::Confirm { order_id }))
        .await
        .expect("confirmed");
    let events: Vec<OrderEvent> = confirmed.events.into_iter().map(|e| e.payload).collect();
    assert_eq!(
        events,
        [OrderEvent::Confirmed { order_id, customer_id, product_id, quantity: 3, total: Money::cents(1_200) }]
    );
    settle(&platform).await;
    let status = platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::Confirmed), "order history was rebuilt and followed on");
    let tickets: Vec<TicketId> = events_of::<TicketEvent>(&*log)
        .await
        .into_iter()
        .map(|e| {
            let TicketEvent::Issued { ticket_id, .. } = e.payload;
            ticket_id
        })
        .collect();
    assert_eq!(tickets, [TicketId::derived_from(&order_id)]);
    assert_eq!(mailer.sent(), 1);
    assert_eq!(record_count(&*log, "customer.events").await, 1);
    platform.app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_loses_and_doubles_nothing() {
    const COMMANDS: usize = 400;
    let log = MemoryLog::shared();
    let settings = Settings { batch_size: 16, command_timeout: Duration::from_secs(2), ..fast_settings() };
    let (app, customers) = customer_app(log.clone(), settings.clone()).await;

    let ids: Vec<CustomerId> = (0..COMMANDS).map(|_| CustomerId::generate()).collect();
    let (answered, mut first_answer) = tokio::sync::mpsc::unbounded_channel();
    let sends: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (customers, answered, command) =
                (customers.clone(), answered.clone(), registration(*id, &format!("C{i}")));
            tokio::spawn(async move {
                let outcome = customers.send(command).await;
                let _ = answered.send(());
                outcome
            })
        })
        .collect();
    // Shut down while commands are in flight.
    within("a first outcome", first_answer.recv()).await;
    within("the shutdown", app.shutdown()).await.expect("clean shutdown");

    let mut accepted = Vec::new();
    for (send, id) in sends.into_iter().zip(&ids) {
        match within("an outcome", send).await.expect("the send task ends") {
            Ok(outcome) => {
                assert!(!outcome.duplicate);
                assert_eq!(outcome.events.len(), 1);
                accepted.push((*id, outcome.events[0].clone()));
            }
            Err(CommandError::Timeout { .. } | CommandError::Stopped { .. }) => {}
            Err(other) => panic!("{id}: unexpected outcome {other}"),
        }
    }
    assert!(!accepted.is_empty());
    // What was reported accepted is on the log, where the outcome said.
    for (id, event) in &accepted {
        let position = event.position.clone().expect("an accepted event has a position");
        let tp = TopicPartition::new(position.topic.clone(), position.partition);
        let records = log.read(&tp, position.offset, 1).await.unwrap();
        let on_log = KeyStore::on(log.clone()).decode::<CustomerEvent>(&records[0]).await.expect("decodes");
        assert_eq!(on_log.id, event.id, "{id}");
        assert_eq!(on_log.payload, event.payload, "{id}");
    }

    // A new app on the same log handles what the old one left, and nothing twice.
    let (app, _) = customer_app(log.clone(), settings).await;
    within("the new app to settle", app.settle()).await.expect("settled");
    let mut per_customer: HashMap<CustomerId, usize> = HashMap::new();
    for event in personal_events_of::<CustomerEvent>(log.clone()).await {
        let CustomerEvent::Registered { customer_id, .. } = event.payload else {
            panic!("only registrations")
        };
        *per_customer.entry(customer_id).or_default() += 1;
    }
    // A send after the shutdown is refused before anything is written (`Stopped`): every
    // command that reached the log is applied, once.
    let sent = record_count(&*log, "customer.commands").await as usize;
    assert!(sent >= accepted.len() && sent <= COMMANDS, "{sent} commands on the log");
    assert_eq!(per_customer.len(), sent, "every command sent was applied");
    assert!(per_customer.values().all(|n| *n == 1), "none twice");
    for (id, _) in &accepted {
        assert!(per_customer.contains_key(id), "{id} was reported accepted");
    }
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_nobody_publishes_stops_the_start() {
    let mut app = App::new(MemoryLog::shared()).with_settings(fast_settings());
    app.reaction(order::FollowPayments).await.expect("registration itself succeeds");
    let error = within("the start", app.start()).await.expect_err("no module publishes payment events");
    let message = error.to_string();
    match error {
        RuntimeError::NoPublisher { processor, event, module, topic } => {
            assert_eq!(
                (processor.as_str(), event, module, topic),
                ("order.follow-payments", "PaymentEvent", "payment", "payment.events")
            );
        }
        other => panic!("expected NoPublisher, got {other:?}"),
    }
    assert!(message.contains("`order.follow-payments`") && message.contains("`payment.events`"), "{message}");
    assert!(message.contains("TopicSpec::keep(PaymentEvent::TOPIC, partitions)"), "how a test makes it: {message}");

    // A projection is named as declared, without the id of its instance's consumer group.
    let mut app = App::new(MemoryLog::shared()).with_settings(fast_settings());
    app.projection(order_history::OrderHistory::default()).await.expect("registration itself succeeds");
    match within("the start", app.start()).await {
        Err(RuntimeError::NoPublisher { processor, .. }) => assert_eq!(processor, "order-history"),
        other => panic!("expected NoPublisher, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_nobody_publishes_is_refused_on_a_running_app_which_stays_as_it_was() {
    let log = MemoryLog::shared();
    let (mut app, customers) = customer_app(log.clone(), fast_settings()).await;
    let topology = app.topology().clone();

    let refused = within("a registration", app.reaction(order::FollowPayments)).await;
    assert!(
        matches!(&refused, Err(RuntimeError::NoPublisher { processor, topic: "payment.events", .. }) if processor == "order.follow-payments"),
        "{refused:?}"
    );
    assert_eq!(app.topology(), &topology, "the refused reaction is not part of the app");

    within("a registration", customers.send(registration(CustomerId::generate(), "Ada")))
        .await
        .expect("the app still works");
    within("the app to settle", app.settle()).await.expect("settled");
    app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_handle_reads_its_own_writes() {
    let Running { platform, .. } = start_platform(ScriptedProvider::new()).await;
    let product_id = ProductId::generate();
    for i in 0..25 {
        let customer_id = CustomerId::generate();
        let name = format!("Customer {i}");
        let registered = within("a registration", platform.customers.send(registration(customer_id, &name)))
            .await
            .expect("registered");
        within("order history", platform.history.wait_for(&registered.positions())).await.expect("running");
        assert_eq!(platform.history.read(|h| h.of(&customer_id).and_then(|c| c.name.clone())), Some(name));

        let order_id = OrderId::generate();
        let place =
            OrderCommand::Place { order_id, customer_id, product_id, quantity: 1, unit_price: Money::cents(100) };
        let placed = within("an order", platform.orders.send(place)).await.expect("placed");
        within("order history", platform.history.wait_for(&placed.positions())).await.expect("running");
        let status = platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
        assert_eq!(status, Some(OrderStatus::AwaitingPayment), "order {i} is visible at once");
    }
    // Positions on topics the projection does not read do not hold it up.
    let create = ProductCommand::Create { product_id, name: "Ride".into(), price: Money::cents(100) };
    let created = within("a product", platform.products.send(create)).await.expect("created");
    within("a wait on a topic order history does not read", platform.history.wait_for(&created.positions()))
        .await
        .expect("running");
    platform.app.shutdown().await.expect("clean shutdown");
}

/// Starts an app with the order module's aggregate and, if a mailer is given, the ticket module
/// (which reacts to order events).
async fn orders_app(log: Arc<MemoryLog>, tickets: Option<Arc<CountingMailer>>) -> (App, CommandGateway<Order>) {
    let mut app = App::new(log).with_settings(fast_settings());
    let orders = app.aggregate::<Order>(()).await.expect("the order module registers");
    if let Some(mailer) = tickets {
        ticket::register(&mut app, mailer).await.expect("the ticket module registers");
    }
    within("the app to start", app.start()).await.expect("the app starts");
    (app, orders)
}

async fn place_and_confirm(orders: &CommandGateway<Order>) -> OrderId {
    let order_id = OrderId::generate();
    let place = OrderCommand::Place {
        order_id,
        customer_id: CustomerId::generate(),
        product_id: ProductId::generate(),
        quantity: 1,
        unit_price: Money::cents(300),
    };
    within("an order", orders.send(place)).await.expect("placed");
    within("a confirmation", orders.send(OrderCommand::Confirm { order_id })).await.expect("confirmed");
    order_id
}

async fn ticketed_orders(log: &dyn EventLog) -> Vec<OrderId> {
    let mut orders: Vec<OrderId> = events_of::<TicketEvent>(log)
        .await
        .into_iter()
        .map(|e| {
            let TicketEvent::Issued { order_id, .. } = e.payload;
            order_id
        })
        .collect();
    orders.sort();
    orders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_start_at_the_end_once_then_resume_from_their_position() {
    let log = MemoryLog::shared();

    // Before the ticket module ever ran: an order confirmed that it will never ticket.
    let (app, orders) = orders_app(log.clone(), None).await;
    let before_tickets = place_and_confirm(&orders).await;
    app.shutdown().await.expect("clean shutdown");

    // Its first start: it begins at the end, and tickets what comes after.
    let first_mailer = Arc::new(CountingMailer::default());
    let (app, orders) = orders_app(log.clone(), Some(first_mailer.clone())).await;
    let with_tickets = place_and_confirm(&orders).await;
    within("the app to settle", app.settle()).await.expect("settled");
    assert_eq!(ticketed_orders(&*log).await, [with_tickets]);
    assert_eq!(first_mailer.sent(), 1);
    app.shutdown().await.expect("clean shutdown");

    // While it is down, another order is confirmed.
    let (app, orders) = orders_app(log.clone(), None).await;
    let while_down = place_and_confirm(&orders).await;
    app.shutdown().await.expect("clean shutdown");

    // Back up, it resumes where it was: that order is ticketed and mailed, nothing else again.
    let second_mailer = Arc::new(CountingMailer::default());
    let (app, _) = orders_app(log.clone(), Some(second_mailer.clone())).await;
    within("the app to settle", app.settle()).await.expect("settled");
    let mut expected = vec![with_tickets, while_down];
    expected.sort();
    assert_eq!(ticketed_orders(&*log).await, expected);
    assert!(!expected.contains(&before_tickets));
    assert_eq!(second_mailer.sent(), 1, "only the new ticket is mailed");
    app.shutdown().await.expect("clean shutdown");
}
