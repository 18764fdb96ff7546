//! The whole chain through the platform: a reservation places an order and starts its payment;
//! the provider's decision confirms or cancels the order; a confirmed order gets exactly one
//! ticket and one mail.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use order_contract::{OrderCommand, OrderEvent, OrderId};
use order_history::OrderStatus;
use payment_contract::PaymentEvent;
use product_contract::Money;
use reserve::Request;
use ticket_contract::{TicketEvent, TicketId};
use ticketing_platform::{Simulation, Summary};
use tramline::{Message, ReferenceId};
use tramline_platform_tests::{
    Running, ScriptedProvider, commands_of, create_product, events_of, record_count, register_customer, reserve,
    settle, start_platform, within,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_reservation_ends_with_a_confirmed_order_one_ticket_and_one_mail() {
    let provider = ScriptedProvider::new();
    let Running { platform, mailer, log } = start_platform(provider.clone()).await;
    let ada = register_customer(&platform, "Ada").await;
    let day_pass = create_product(&platform, "Day pass", 800).await;

    let reservation = reserve(&platform, Request::new(ada, day_pass, 2)).await;
    assert_eq!(reservation.total, Money::cents(1_600));
    settle(&platform).await;

    let (order_id, payment_id) = (reservation.order_id, reservation.payment_id);
    let history = platform.history.read(|h| h.of(&ada).cloned()).expect("Ada has a history");
    assert_eq!(history.name.as_deref(), Some("Ada"));
    assert_eq!(history.orders.len(), 1);
    let order = &history.orders[0];
    assert_eq!((order.order_id, order.product_id, order.quantity), (order_id, day_pass, 2));
    assert_eq!(order.total, Money::cents(1_600));
    assert_eq!(order.status, OrderStatus::Confirmed);

    let orders: Vec<OrderEvent> = events_of::<OrderEvent>(&*log).await.into_iter().map(|e| e.payload).collect();
    assert_eq!(
        orders,
        [
            OrderEvent::Placed {
                order_id,
                customer_id: ada,
                product_id: day_pass,
                quantity: 2,
                total: Money::cents(1_600)
            },
            OrderEvent::Confirmed {
                order_id,
                customer_id: ada,
                product_id: day_pass,
                quantity: 2,
                total: Money::cents(1_600)
            },
        ]
    );
    let payments = events_of::<PaymentEvent>(&*log).await;
    let payment_events: Vec<PaymentEvent> = payments.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        payment_events,
        [
            PaymentEvent::Created { payment_id, order_id, amount: Money::cents(1_600) },
            PaymentEvent::Completed { payment_id, order_id, amount: Money::cents(1_600) },
        ]
    );

    let tickets = events_of::<TicketEvent>(&*log).await;
    let ticket_events: Vec<TicketEvent> = tickets.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        ticket_events,
        [TicketEvent::Issued {
            ticket_id: TicketId::derived_from(&order_id),
            order_id,
            customer_id: ada,
            product_id: day_pass,
            quantity: 2,
        }]
    );
    assert_eq!((mailer.sent(), mailer.attempts()), (1, 1), "one mail, sent once");

    // The provider was asked once, with the PaymentCreated event's id as idempotency key.
    let charges = provider.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].idempotency_key, payments[0].id);
    assert_eq!(charges[0].amount, Money::cents(1_600));

    // From the payment on, every step carries the flow's correlation id and its cause.
    assert_eq!(tickets[0].correlation_id, payments[0].correlation_id, "the ticket belongs to the payment's flow");
    assert_eq!(payments[1].correlation_id, payments[0].correlation_id);

    let counts = platform
        .statistics
        .read(|s| (s.orders_placed, s.payments_created, s.payments_completed, s.orders_confirmed, s.tickets_issued));
    assert_eq!(counts, (1, 1, 1, 1, 1));
    assert_eq!(platform.app.dead_letters().await.unwrap(), 0);
    platform.app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_cancels_the_order_without_ticket_or_mail() {
    let provider = ScriptedProvider::new();
    let Running { platform, mailer, log } = start_platform(provider.clone()).await;
    let bo = register_customer(&platform, "Bo").await;
    let ride = create_product(&platform, "Single ride", 250).await;

    let request = Request::new(bo, ride, 3);
    provider.decline(request.payment_id(), "insufficient funds");
    let reservation = reserve(&platform, request).await;
    settle(&platform).await;

    let (order_id, payment_id) = (reservation.order_id, reservation.payment_id);
    let status = platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::Cancelled("payment cancelled: insufficient funds".into())));

    let payments: Vec<PaymentEvent> = events_of::<PaymentEvent>(&*log).await.into_iter().map(|e| e.payload).collect();
    assert_eq!(
        payments,
        [
            PaymentEvent::Created { payment_id, order_id, amount: Money::cents(750) },
            PaymentEvent::Cancelled { payment_id, order_id, reason: "insufficient funds".into() },
        ]
    );
    let orders: Vec<OrderEvent> = events_of::<OrderEvent>(&*log).await.into_iter().map(|e| e.payload).collect();
    assert_eq!(orders.len(), 2);
    assert_eq!(
        orders[1],
        OrderEvent::Cancelled { order_id, customer_id: bo, reason: "payment cancelled: insufficient funds".into() }
    );

    assert_eq!(record_count(&*log, "ticket.commands").await, 0, "no ticket was even asked for");
    assert_eq!(record_count(&*log, "ticket.events").await, 0, "no ticket");
    assert_eq!((mailer.sent(), mailer.attempts()), (0, 0), "no mail");
    assert_eq!(provider.charges_of(payment_id).len(), 1);
    assert_eq!(platform.app.dead_letters().await.unwrap(), 0);
    platform.app.shutdown().await.expect("clean shutdown");
}

/// DESIGN.md defines the correlation id as "the id shared by every message of one business flow
/// (the first message's id)". A reservation is one flow: from the order it places to the
/// ticket that flow ends with, every event carries the correlation id of the Place command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_is_one_flow_with_one_correlation_id() {
    let Running { platform, log, .. } = start_platform(ScriptedProvider::new()).await;
    let ada = register_customer(&platform, "Ada").await;
    let ride = create_product(&platform, "Single ride", 250).await;
    reserve(&platform, Request::new(ada, ride, 1)).await;
    settle(&platform).await;

    let place = commands_of::<OrderCommand>(&*log).await;
    assert!(matches!(place[0].payload, OrderCommand::Place { .. }));
    let flow = place[0].correlation_id;
    let mut steps: Vec<(&'static str, uuid::Uuid)> = Vec::new();
    steps.extend(events_of::<OrderEvent>(&*log).await.iter().map(|e| (e.payload.type_name(), e.correlation_id)));
    steps.extend(events_of::<PaymentEvent>(&*log).await.iter().map(|e| (e.payload.type_name(), e.correlation_id)));
    steps.extend(events_of::<TicketEvent>(&*log).await.iter().map(|e| (e.payload.type_name(), e.correlation_id)));
    assert_eq!(steps.len(), 5, "{steps:?}");
    let strays: Vec<&'static str> = steps.iter().filter(|(_, id)| *id != flow).map(|(name, _)| *name).collect();
    assert!(strays.is_empty(), "not in the reservation's flow {flow}: {strays:?}");
    platform.app.shutdown().await.expect("clean shutdown");
}

fn assert_invariants(summary: &Summary) {
    let broken: Vec<String> = summary
        .invariants()
        .into_iter()
        .filter(|i| !i.holds)
        .map(|i| format!("{} ({})", i.name, i.detail))
        .collect();
    assert!(broken.is_empty(), "broken invariants: {broken:#?}\nsummary: {summary:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_simulation_keeps_every_invariant_and_matches_its_provider() {
    let simulation = Simulation { seed: 3, customers: 40, orders: 500, concurrency: 64, decline_percent: 10 };
    let provider = simulation.provider();
    let Running { mut platform, mailer, log } = start_platform(Arc::new(provider)).await;

    let summary = within("the simulation", simulation.run(&mut platform, &*mailer, |_| {}))
        .await
        .expect("the simulation runs");

    assert_invariants(&summary);
    assert_eq!((summary.reservations, summary.reservations_rejected), (500, 0));
    assert_eq!(summary.orders_placed, 500);
    assert_eq!(summary.payments_cancelled, summary.payments_declined_expected);
    assert_eq!(summary.payments_completed, 500 - summary.payments_declined_expected);
    assert!(
        (20..=80).contains(&summary.payments_declined_expected),
        "about 10% of 500 payments are declined, not {}",
        summary.payments_declined_expected
    );

    // The log agrees with the provider payment by payment, not only in number.
    let payments = events_of::<PaymentEvent>(&*log).await;
    let mut created = 0;
    for event in &payments {
        match &event.payload {
            PaymentEvent::Created { .. } => created += 1,
            PaymentEvent::Completed { payment_id, .. } => {
                assert!(!provider.declines(payment_id), "{payment_id} completed but the provider declines it")
            }
            PaymentEvent::Cancelled { payment_id, .. } => {
                assert!(provider.declines(payment_id), "{payment_id} cancelled but the provider approves it")
            }
        }
    }
    assert_eq!(created, 500);

    // Exactly one ticket per confirmed order, with the order's derived id, and the revenue of
    // the confirmed orders on the log is what accounting and order history say.
    let orders = events_of::<OrderEvent>(&*log).await;
    let confirmed: HashMap<OrderId, Money> = orders
        .iter()
        .filter_map(|e| match e.payload {
            OrderEvent::Confirmed { order_id, total, .. } => Some((order_id, total)),
            _ => None,
        })
        .collect();
    assert_eq!(confirmed.len() as u64, summary.orders_confirmed);
    let revenue: Money = confirmed.values().copied().sum();
    assert_eq!(revenue.as_cents(), summary.confirmed_revenue);
    assert_eq!(revenue.as_cents(), summary.accounting_revenue);
    let tickets = events_of::<TicketEvent>(&*log).await;
    let ticketed: HashSet<OrderId> = tickets
        .iter()
        .map(|e| {
            let TicketEvent::Issued { ticket_id, order_id, .. } = e.payload;
            assert_eq!(ticket_id, TicketId::derived_from(&order_id));
            order_id
        })
        .collect();
    assert_eq!(tickets.len(), confirmed.len(), "one ticket per confirmed order");
    assert_eq!(ticketed, confirmed.keys().copied().collect::<HashSet<_>>());
    assert_eq!(mailer.sent(), confirmed.len() as u64);
    platform.app.shutdown().await.expect("clean shutdown");
}

/// A run stopped half-way (Ctrl-C) places no more orders, finishes those in flight and checks
/// what it did: no order is left half-placed for the next run to trip on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_simulation_finishes_what_it_started_and_keeps_every_invariant() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let simulation = Simulation { seed: 5, customers: 40, orders: 2_000, concurrency: 64, decline_percent: 10 };
    let Running { mut platform, mailer, .. } = start_platform(Arc::new(simulation.provider())).await;
    let stop = AtomicBool::new(false);
    let stop_after_100 = |done| {
        if done >= 100 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let summary = within("the simulation", simulation.run_until(&mut platform, &*mailer, None, stop_after_100, &stop))
        .await
        .expect("the simulation runs");
    assert_invariants(&summary);
    assert!(summary.stopped_early, "{summary:?}");
    assert!((100..2_000).contains(&summary.reservations), "{}", summary.reservations);
    assert_eq!(summary.orders_placed, summary.reservations);
}
