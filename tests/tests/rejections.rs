//! Every refusal reaches the caller as the refusing module's own error, through the gateways
//! and through reserve; a refused command leaves no event and no half-applied state behind.

use customer::CustomerError;
use customer_contract::{CustomerCommand, CustomerEvent, CustomerId};
use order::OrderError;
use order_contract::{OrderCommand, OrderEvent, OrderId};
use order_history::OrderStatus;
use payment::PaymentError;
use payment_contract::{PaymentCommand, PaymentEvent, PaymentId};
use product_contract::{Money, ProductId};
use reserve::{Request, ReserveError};
use tramline::ReferenceId;
use tramline::runtime::CommandError;
use tramline_platform_tests::{
    Running, ScriptedProvider, create_product, personal_events_of, record_count, register_customer, reserve, settle,
    start_platform, within,
};

/// Places an order straight through the order module.
async fn place(
    running: &Running,
    customer_id: CustomerId,
    product_id: ProductId,
    quantity: u32,
    cents: i64,
) -> OrderId {
    let order_id = OrderId::generate();
    let place = OrderCommand::Place { order_id, customer_id, product_id, quantity, unit_price: Money::cents(cents) };
    within("an order", running.platform.orders.send(place)).await.expect("placed");
    order_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_refuses_an_unknown_customer_and_places_nothing() {
    let running = start_platform(ScriptedProvider::new()).await;
    let ride = create_product(&running.platform, "Single ride", 250).await;
    let stranger = CustomerId::generate();

    let refused = within("a reservation", running.platform.reserve.reserve(Request::new(stranger, ride, 1))).await;
    match refused {
        Err(ReserveError::UnknownCustomer(id)) => assert_eq!(id, stranger),
        other => panic!("expected UnknownCustomer({stranger}), got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "order.commands").await, 0, "no order was even sent");
    assert_eq!(record_count(&*running.log, "payment.commands").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_refuses_an_unknown_product_and_places_nothing() {
    let running = start_platform(ScriptedProvider::new()).await;
    let ada = register_customer(&running.platform, "Ada").await;
    let nothing = ProductId::generate();

    let refused = within("a reservation", running.platform.reserve.reserve(Request::new(ada, nothing, 1))).await;
    match refused {
        Err(ReserveError::UnknownProduct(id)) => assert_eq!(id, nothing),
        other => panic!("expected UnknownProduct({nothing}), got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "order.commands").await, 0);
    assert_eq!(record_count(&*running.log, "payment.commands").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_reports_which_module_refused() {
    let running = start_platform(ScriptedProvider::new()).await;
    let platform = &running.platform;
    let ada = register_customer(platform, "Ada").await;
    let ride = create_product(platform, "Single ride", 250).await;

    // No tickets at all: the order module refuses, and nothing is paid.
    let nothing = Request::new(ada, ride, 0);
    let refused = within("a reservation", platform.reserve.reserve(nothing)).await;
    match refused {
        Err(ReserveError::Order(CommandError::Rejected(OrderError::NoQuantity))) => {}
        other => panic!("expected the order module's NoQuantity, got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "order.events").await, 0);
    assert_eq!(record_count(&*running.log, "payment.commands").await, 0, "no payment was started");
    // (Reserve's payment step is refused only when the order changed in between, or reports a
    // module away: the order it placed has one payment, of its total.)
}

/// A second payment of a paid order, with an ID of its own: the payment module refuses it, so
/// the customer is not charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_payment_of_an_order_is_refused() {
    let running = start_platform(ScriptedProvider::new()).await;
    let platform = &running.platform;
    let ada = register_customer(platform, "Ada").await;
    let ride = create_product(platform, "Single ride", 250).await;
    let first = Request::new(ada, ride, 1);
    reserve(platform, first.clone()).await;
    settle(platform).await;
    let (order_id, other) = (first.order_id, PaymentId::generate());
    let second = PaymentCommand::Create { payment_id: other, order_id, amount: Money::cents(250) };
    match within("a payment", platform.payments.gateway().send(second)).await {
        Err(CommandError::Rejected(PaymentError::NotTheOrdersPayment { payment_id, order_id: id, expected })) => {
            assert_eq!((payment_id, id, expected), (other, order_id, first.payment_id()));
        }
        other => panic!("expected the payment module's NotTheOrdersPayment, got {other:?}"),
    }
    settle(platform).await;
    assert_eq!(
        platform.history.read(|h| h.order(&first.order_id).map(|o| o.status.clone())),
        Some(OrderStatus::Confirmed)
    );
    assert_eq!(platform.statistics.read(|s| (s.payments_created, s.orders_placed)), (1, 1));
}

/// `reserve::Request` says: "The order ID is the caller's, so that a retry is recognised." A caller
/// whose first attempt succeeded but whose answer was lost retries with the same request: that
/// is not a refusal, and nothing is placed or paid twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_recognises_a_retried_request() {
    let running = start_platform(ScriptedProvider::new()).await;
    let platform = &running.platform;
    let ada = register_customer(platform, "Ada").await;
    let ride = create_product(platform, "Single ride", 250).await;
    let request = Request::new(ada, ride, 2);
    let first = reserve(platform, request.clone()).await;

    let retried = within("a retried reservation", platform.reserve.reserve(request.clone())).await;
    settle(platform).await;
    assert_eq!(platform.statistics.read(|s| (s.orders_placed, s.payments_created)), (1, 1), "nothing twice");
    match retried {
        Ok(reservation) => assert_eq!(reservation, first),
        Err(error) => panic!("a retry of a reservation that succeeded was refused: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_an_unknown_order_is_rejected_without_an_event() {
    let running = start_platform(ScriptedProvider::new()).await;
    let order_id = OrderId::generate();
    let payment_id = PaymentId::of_order(order_id);

    let create = PaymentCommand::Create { payment_id, order_id, amount: Money::cents(250) };
    let outcome = within("a payment", running.platform.payments.gateway().send(create)).await;
    match outcome {
        Err(CommandError::Rejected(PaymentError::UnknownOrder(id))) => assert_eq!(id, order_id),
        other => panic!("expected UnknownOrder({order_id}), got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "payment.commands").await, 1, "the command itself is on the log");
    assert_eq!(record_count(&*running.log, "payment.events").await, 0, "but no event");
    assert_eq!(record_count(&*running.log, "payment.state").await, 0, "and no state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_a_cancelled_order_is_rejected() {
    let running = start_platform(ScriptedProvider::new()).await;
    let (customer_id, product_id) = (CustomerId::generate(), ProductId::generate());
    let order_id = place(&running, customer_id, product_id, 2, 400).await;
    let cancel = OrderCommand::Cancel { order_id, reason: "changed my mind".into() };
    let cancelled = within("a cancellation", running.platform.orders.send(cancel)).await.expect("cancelled");

    // `start` waits until the payment module has seen the cancellation.
    let payments = &running.platform.payments;
    let outcome =
        within("a payment", payments.start(order_id, Money::cents(800), &cancelled.events[0], &cancelled.positions()))
            .await;
    match outcome {
        Err(CommandError::Rejected(PaymentError::OrderCancelled(id))) => assert_eq!(id, order_id),
        other => panic!("expected OrderCancelled({order_id}), got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "payment.events").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_of_the_wrong_amount_is_rejected_and_the_right_one_then_accepted() {
    let running = start_platform(ScriptedProvider::new()).await;
    let (customer_id, product_id) = (CustomerId::generate(), ProductId::generate());
    let order = OrderCommand::Place {
        order_id: OrderId::generate(),
        customer_id,
        product_id,
        quantity: 2,
        unit_price: Money::cents(250),
    };
    let OrderCommand::Place { order_id, .. } = order else { unreachable!() };
    let placed = within("an order", running.platform.orders.send(order)).await.expect("placed");

    let payments = &running.platform.payments;
    let payment_id = PaymentId::of_order(order_id);
    let wrong =
        within("a payment", payments.start(order_id, Money::cents(499), &placed.events[0], &placed.positions())).await;
    match wrong {
        Err(CommandError::Rejected(PaymentError::WrongAmount { order_id: id, total, offered })) => {
            assert_eq!((id, total, offered), (order_id, Money::cents(500), Money::cents(499)));
        }
        other => panic!("expected WrongAmount, got {other:?}"),
    }
    assert_eq!(record_count(&*running.log, "payment.events").await, 0);
    assert_eq!(record_count(&*running.log, "payment.state").await, 0);

    // The order's payment is still free: the refused command created nothing.
    let right =
        within("a payment", payments.start(order_id, Money::cents(500), &placed.events[0], &placed.positions()))
            .await
            .expect("the right amount is accepted");
    assert!(!right.duplicate);
    // Started again (a retry, a second device, a run resumed after a crash): the same payment.
    let again =
        within("a payment", payments.start(order_id, Money::cents(500), &placed.events[0], &placed.positions()))
            .await
            .expect("a repeat");
    assert!(again.duplicate, "the second start is a repeat of the first: {again:?}");
    let created: Vec<PaymentEvent> = right.events.into_iter().map(|e| e.payload).collect();
    assert_eq!(created, [PaymentEvent::Created { payment_id, order_id, amount: Money::cents(500) }]);
    settle(&running.platform).await;
    let status = running.platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::Confirmed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirming_a_cancelled_order_is_rejected_without_an_event() {
    let running = start_platform(ScriptedProvider::new()).await;
    let orders = &running.platform.orders;
    let order_id = place(&running, CustomerId::generate(), ProductId::generate(), 1, 800).await;
    within("a cancellation", orders.send(OrderCommand::Cancel { order_id, reason: "too late".into() }))
        .await
        .expect("cancelled");
    let events_before = record_count(&*running.log, "order.events").await;
    let states_before = record_count(&*running.log, "order.state").await;

    let outcome = within("a confirmation", orders.send(OrderCommand::Confirm { order_id })).await;
    match &outcome {
        Err(error) => assert_eq!(error.rejection(), Some(&OrderError::Cancelled(order_id)), "{error}"),
        Ok(accepted) => panic!("a cancelled order was confirmed: {accepted:?}"),
    }
    assert_eq!(record_count(&*running.log, "order.events").await, events_before);
    assert_eq!(record_count(&*running.log, "order.state").await, states_before);
    settle(&running.platform).await;
    let status = running.platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::Cancelled("too late".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_command_leaves_no_half_applied_state() {
    let running = start_platform(ScriptedProvider::new()).await;
    let customers = &running.platform.customers;
    let customer_id = CustomerId::generate();
    let register =
        |name: &str, email: &str| CustomerCommand::Register { customer_id, name: name.into(), email: email.into() };
    within("a registration", customers.send(register("Ada", "ada@example.org")))
        .await
        .expect("registered");

    // A second registration, with other details, is refused...
    let again = within("a registration", customers.send(register("Eve", "eve@example.org"))).await;
    assert_eq!(again.as_ref().err().and_then(|e| e.rejection()), Some(&CustomerError::AlreadyRegistered(customer_id)));
    // ...and so is a registration with a bad e-mail for a new customer, which stays unknown.
    let other = CustomerId::generate();
    let bad = CustomerCommand::Register { customer_id: other, name: "Bo".into(), email: "bo at home".into() };
    let refused = within("a registration", customers.send(bad)).await;
    assert_eq!(
        refused.as_ref().err().and_then(|e| e.rejection()),
        Some(&CustomerError::InvalidEmail(customer::EmailProblem::WhiteSpace))
    );
    assert_eq!(record_count(&*running.log, "customer.events").await, 1, "only the first registration");

    // The refused commands changed nothing: an update keeps the first name, and the customer
    // with the bad e-mail is still unknown.
    let update = CustomerCommand::Update { customer_id, name: None, email: Some("ada@new.example.org".into()) };
    let updated = within("an update", customers.send(update)).await.expect("updated");
    let events: Vec<CustomerEvent> = updated.events.into_iter().map(|e| e.payload).collect();
    assert_eq!(
        events,
        [CustomerEvent::Updated { customer_id, name: "Ada".into(), email: "ada@new.example.org".into() }]
    );
    let update_other = CustomerCommand::Update { customer_id: other, name: Some("Bo".into()), email: None };
    let unknown = within("an update", customers.send(update_other)).await;
    assert_eq!(unknown.as_ref().err().and_then(|e| e.rejection()), Some(&CustomerError::Unknown(other)));

    // The same for an order refused for its quantity: the id stays free.
    let orders = &running.platform.orders;
    let order_id = OrderId::generate();
    let place = |quantity| OrderCommand::Place {
        order_id,
        customer_id,
        product_id: ProductId::generate(),
        quantity,
        unit_price: Money::cents(300),
    };
    let zero = within("an order", orders.send(place(0))).await;
    assert_eq!(zero.as_ref().err().and_then(|e| e.rejection()), Some(&OrderError::NoQuantity));
    assert_eq!(record_count(&*running.log, "order.events").await, 0);
    let placed = within("an order", orders.send(place(2))).await.expect("placed after the refusal");
    assert!(matches!(placed.events[..], [ref e] if matches!(e.payload, OrderEvent::Placed { quantity: 2, .. })));
    let logged = personal_events_of::<CustomerEvent>(running.log.clone()).await;
    assert_eq!(logged.len(), 2, "Registered and Updated, nothing of the refused commands");
}
