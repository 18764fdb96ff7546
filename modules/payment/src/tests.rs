use std::collections::HashMap;

use customer_contract::CustomerId;
use order_contract::OrderEvent;
use product_contract::ProductId;
use tramline::ReferenceId;
use tramline::testing::{AggregateTest, ProjectionTest, ReactionTest};

use super::*;

/// A fixed view of orders.
struct Orders(HashMap<OrderId, KnownOrder>);

impl OrderLookup for Orders {
    fn order(&self, order_id: &OrderId) -> Option<KnownOrder> {
        self.0.get(order_id).copied()
    }
}

/// A new order and its payment's ID.
fn order_and_payment() -> (OrderId, PaymentId) {
    let order_id = OrderId::generate();
    (order_id, PaymentId::of_order(order_id))
}

fn with_order(order_id: OrderId, status: OrderStatus) -> AggregateTest<Payment> {
    let orders = Orders(HashMap::from([(order_id, KnownOrder { total: Money::cents(500), status })]));
    AggregateTest::with_services(Arc::new(orders) as Arc<dyn OrderLookup>)
}

#[test]
fn creates_completes_and_refuses_to_cancel_after() {
    let (order_id, payment_id) = order_and_payment();
    with_order(order_id, OrderStatus::AwaitingPayment)
        .when(PaymentCommand::Create { payment_id, order_id, amount: Money::cents(500) })
        .then_events([PaymentEvent::Created { payment_id, order_id, amount: Money::cents(500) }])
        .and_when(PaymentCommand::Complete { payment_id })
        .then_events([PaymentEvent::Completed { payment_id, order_id, amount: Money::cents(500) }])
        .and_when(PaymentCommand::Cancel { payment_id, reason: "changed my mind".into() })
        .then_rejected_with(PaymentError::AlreadyCompleted(payment_id));
}

#[test]
fn cancels_a_created_payment() {
    let (order_id, payment_id) = order_and_payment();
    with_order(order_id, OrderStatus::AwaitingPayment)
        .given([PaymentEvent::Created { payment_id, order_id, amount: Money::cents(500) }])
        .when(PaymentCommand::Cancel { payment_id, reason: "declined".into() })
        .then_events([PaymentEvent::Cancelled { payment_id, order_id, reason: "declined".into() }])
        .and_when(PaymentCommand::Complete { payment_id })
        .then_rejected_with(PaymentError::Cancelled(payment_id));
}

#[test]
fn rejects_payments_for_unknown_cancelled_or_paid_orders() {
    let (order_id, payment_id) = order_and_payment();
    let create = PaymentCommand::Create { payment_id, order_id, amount: Money::cents(500) };
    with_order(OrderId::generate(), OrderStatus::AwaitingPayment)
        .when(create.clone())
        .then_rejected_with(PaymentError::UnknownOrder(order_id))
        .then_rejected_saying("no such order");
    with_order(order_id, OrderStatus::Cancelled)
        .when(create.clone())
        .then_rejected_with(PaymentError::OrderCancelled(order_id));
    with_order(order_id, OrderStatus::Confirmed)
        .when(create)
        .then_rejected_with(PaymentError::OrderAlreadyPaid(order_id));
}

#[test]
fn an_order_has_one_payment_whose_id_derives_from_the_order() {
    let (order_id, payment_id) = order_and_payment();
    assert_eq!(PaymentId::of_order(order_id), payment_id, "the same order, the same payment");
    assert_ne!(PaymentId::of_order(OrderId::generate()), payment_id, "another order, another payment");
    let other = PaymentId::generate();
    with_order(order_id, OrderStatus::AwaitingPayment)
        .when(PaymentCommand::Create { payment_id: other, order_id, amount: Money::cents(500) })
        .then_rejected_with(PaymentError::NotTheOrdersPayment { payment_id: other, order_id, expected: payment_id })
        .then_rejected_saying("the payment of that order is");
}

#[test]
fn rejects_a_wrong_amount() {
    let (order_id, payment_id) = order_and_payment();
    with_order(order_id, OrderStatus::AwaitingPayment)
        .when(PaymentCommand::Create { payment_id, order_id, amount: Money::cents(499) })
        .then_rejected_with(PaymentError::WrongAmount {
            order_id,
            total: Money::cents(500),
            offered: Money::cents(499),
        });
}

#[test]
fn the_view_of_orders_follows_order_events() {
    let order_id = OrderId::generate();
    let customer_id = CustomerId::generate();
    let view = ProjectionTest::new(OrdersToPay::default())
        .given(OrderEvent::Placed {
            order_id,
            customer_id,
            product_id: ProductId::generate(),
            quantity: 1,
            total: Money::cents(700),
        })
        .given(OrderEvent::Cancelled { order_id, customer_id, reason: "too late".into() })
        .into_inner();
    assert_eq!(view.order(&order_id), Some(KnownOrder { total: Money::cents(700), status: OrderStatus::Cancelled }));
    assert_eq!(view.order(&OrderId::generate()), None);
}

#[tokio::test]
async fn charges_new_payments_with_the_event_id_as_idempotency_key() {
    let (order_id, payment_id) = order_and_payment();
    let mut provider = MockPaymentProvider::new();
    provider
        .expect_charge()
        .withf(move |charge| charge.payment_id == payment_id && charge.amount == Money::cents(500))
        .times(1)
        .returning(|_| Ok(ChargeDecision::Declined { reason: "card declined".into() }));
    let mut test = ReactionTest::new(ChargePayments::new(Arc::new(provider)));
    test.when(PaymentEvent::Created { payment_id, order_id, amount: Money::cents(500) })
        .await
        .then_commands([PaymentCommand::Cancel { payment_id, reason: "card declined".into() }]);
    test.when(PaymentEvent::Completed { payment_id, order_id, amount: Money::cents(500) })
        .await
        .then_nothing();
}

#[tokio::test]
async fn a_failing_provider_is_a_handler_error() {
    let mut provider = MockPaymentProvider::new();
    provider.expect_charge().returning(|_| Err(ProviderError("timeout".into())));
    let mut test = ReactionTest::new(ChargePayments::new(Arc::new(provider)));
    let (order_id, payment_id) = order_and_payment();
    test.when(PaymentEvent::Created { payment_id, order_id, amount: Money::cents(1) })
        .await
        .then_failed();
}
