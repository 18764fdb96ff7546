//! Accounting joins a platform that has been selling for a while: it replays the order events
//! from the beginning, books exactly what happened, and nothing else changes.

use std::collections::BTreeMap;

use accounting::Sales;
use order_contract::{OrderEvent, OrderId};
use product_contract::{Money, ProductId};
use reserve::Request;
use tramline::log::{EventLog, TopicPartition};
use tramline::runtime::{ProcessorInfo, ProcessorKind};
use tramline_platform_tests::{
    Running, ScriptedProvider, create_product, events_of, partitions_of, register_customer, reserve, settle,
    start_platform, within,
};

/// Every topic of the platform's modules and their dead-letter topics.
const TOPICS: [&str; 28] = [
    "customer.commands",
    "customer.events",
    "customer.state",
    "product.commands",
    "product.events",
    "product.state",
    "order.commands",
    "order.events",
    "order.state",
    "payment.commands",
    "payment.events",
    "payment.state",
    "ticket.commands",
    "ticket.events",
    "ticket.state",
    "customer.aggregate.dlq",
    "product.aggregate.dlq",
    "order.aggregate.dlq",
    "order.follow-payments.dlq",
    "payment.aggregate.dlq",
    "payment.charge-payments.dlq",
    "ticket.aggregate.dlq",
    "ticket.issue-tickets.dlq",
    "ticket.mail-tickets.dlq",
    "order-history.dlq",
    "platform.statistics.dlq",
    "payment.orders.dlq",
    "reserve.catalog.dlq",
];

/// The consumer groups of the platform's aggregates and reactions.
const GROUPS: [&str; 9] = [
    "customer.aggregate",
    "product.aggregate",
    "order.aggregate",
    "order.follow-payments",
    "payment.aggregate",
    "payment.charge-payments",
    "ticket.aggregate",
    "ticket.issue-tickets",
    "ticket.mail-tickets",
];

/// End offsets of every topic and committed positions of every group, to compare.
async fn log_state(log: &dyn EventLog) -> BTreeMap<String, Option<u64>> {
    let mut state = BTreeMap::new();
    for topic in TOPICS {
        let partitions = partitions_of(log, topic).await;
        assert!(!partitions.is_empty(), "topic {topic} exists");
        for tp in partitions {
            state.insert(format!("end {tp}"), Some(log.end_offset(&tp).await.unwrap()));
        }
    }
    for group in GROUPS {
        for topic in ["customer.commands", "order.commands", "payment.events", "order.events", "ticket.events"] {
            for partition in 0..4 {
                let tp = TopicPartition::new(topic, partition);
                state.insert(format!("committed {group} {tp}"), log.committed(group, &tp).await.unwrap());
            }
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_added_late_books_exactly_what_happened_and_changes_nothing_else() {
    let provider = ScriptedProvider::new();
    let Running { mut platform, log, .. } = start_platform(provider.clone()).await;
    let ada = register_customer(&platform, "Ada").await;
    let bo = register_customer(&platform, "Bo").await;
    let ride = create_product(&platform, "Single ride", 250).await;
    let day = create_product(&platform, "Day pass", 800).await;
    let week = create_product(&platform, "Week pass", 2_900).await;
    let shuttle = create_product(&platform, "Airport shuttle", 1_200).await;

    // (customer, product, quantity, declined)
    let sales = [
        (ada, ride, 1, false),
        (bo, ride, 3, false),
        (ada, day, 2, true),
        (bo, day, 1, false),
        (ada, week, 1, true),
        (bo, week, 2, false),
        (ada, ride, 2, true),
        (bo, shuttle, 1, true),
    ];
    for (customer_id, product_id, quantity, declined) in sales {
        let request = Request::new(customer_id, product_id, quantity);
        if declined {
            provider.decline(request.payment_id(), "card declined");
        }
        reserve(&platform, request).await;
    }
    settle(&platform).await;

    let topology_before = platform.app.topology().clone();
    let log_before = log_state(&*log).await;
    let accounting = within("accounting to join", platform.add_accounting()).await.expect("accounting joins");
    within("accounting to catch up", accounting.caught_up()).await.expect("caught up");

    let sale = |orders, tickets, cents| Sales { orders, tickets, revenue: Money::cents(cents) };
    let expected: BTreeMap<ProductId, Sales> =
        [(ride, sale(2, 4, 1_000)), (day, sale(1, 1, 800)), (week, sale(1, 2, 5_800))].into();
    let (total, by_product, by_day) =
        accounting.read(|books| (books.total(), books.by_product().clone(), books.by_day().clone()));
    assert_eq!(total, sale(4, 7, 7_600));
    assert_eq!(by_product, expected, "per product; the shuttle sold nothing confirmed");
    assert_eq!(by_day.values().map(|s| s.orders).sum::<u64>(), 4);
    assert_eq!(by_day.values().map(|s| s.revenue).sum::<Money>(), Money::cents(7_600));

    // The same figures as the modules that watched from the start.
    assert_eq!(platform.history.read(|h| h.confirmed_revenue()), total.revenue);
    let statistics = platform.statistics.read(|s| (s.orders_confirmed, s.orders_cancelled, s.confirmed_revenue));
    assert_eq!(statistics, (total.orders, 4, total.revenue));

    // Joining added one projection and wrote nothing: no topic and no group moved.
    let topology_after = platform.app.topology().clone();
    assert_eq!(topology_after.processors.len(), topology_before.processors.len() + 1);
    assert_eq!(topology_after.processors[..topology_before.processors.len()], topology_before.processors[..]);
    assert_eq!(
        topology_after.processors.last(),
        Some(&ProcessorInfo {
            kind: ProcessorKind::Projection,
            module: "accounting".into(),
            name: "accounting".into(),
            reads: vec![("order".into(), "OrderEvent".into())],
            commands: None,
        })
    );
    assert_eq!(log_state(&*log).await, log_before);

    // From now on it follows along.
    let late = reserve(&platform, Request::new(ada, shuttle, 3)).await;
    settle(&platform).await;
    within("accounting to catch up", accounting.caught_up()).await.expect("caught up");
    assert_eq!(accounting.read(|books| books.total()), sale(5, 10, 11_200));
    assert_eq!(accounting.read(|books| books.by_product().get(&shuttle).copied()), Some(sale(1, 3, 3_600)));
    let confirmed: Vec<OrderId> = events_of::<OrderEvent>(&*log)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            OrderEvent::Confirmed { order_id, .. } => Some(order_id),
            _ => None,
        })
        .collect();
    assert_eq!(confirmed.len(), 5);
    assert!(confirmed.contains(&late.order_id));
    assert_eq!(platform.app.dead_letters().await.unwrap(), 0);
    platform.app.shutdown().await.expect("clean shutdown");
}
