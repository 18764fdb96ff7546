//! The partner feed on an app of its own: source events appended by hand, the public feeds read
//! back record by record.

use std::sync::Arc;

use customer_contract::CustomerId;
use order_contract::{OrderEvent, OrderId};
use partner_feed::OrderConfirmed;
use product_contract::{Money, ProductEvent, ProductId};
use tramline::log::{EventLog, Record, TopicPartition, TopicSpec};
use tramline::prelude::*;
use tramline::{codec, runtime::dead_letter};

async fn all(log: &dyn EventLog, topic: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for partition in 0..log.partition_count(topic).await.unwrap().unwrap_or(0) {
        records.extend(log.read(&TopicPartition::new(topic, partition), 0, usize::MAX).await.unwrap());
    }
    records
}

fn time() -> jiff::Timestamp {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

async fn source_log() -> (Arc<MemoryLog>, ProductId, ProductId, ProductId) {
    let log = Arc::new(MemoryLog::new());
    for topic in [ProductEvent::TOPIC, OrderEvent::TOPIC] {
        log.create_topic(&TopicSpec::keep(topic, 4)).await.unwrap();
    }
    let (shuttle, ride, unknown) = (ProductId::generate(), ProductId::generate(), ProductId::generate());
    let products = [(shuttle, "Airport shuttle"), (ride, "Single ride")].map(|(id, name)| {
        codec::encode(&Envelope::new(
            ProductEvent::Created { product_id: id, name: name.into(), price: Money::cents(1200) },
            time(),
        ))
    });
    log.append(products.to_vec()).await.unwrap();
    (log, shuttle, ride, unknown)
}

fn confirmed(product_id: ProductId, quantity: u32) -> OrderEvent {
    OrderEvent::Confirmed {
        order_id: OrderId::generate(),
        customer_id: CustomerId::generate(),
        product_id,
        quantity,
        total: Money::cents(1200 * i64::from(quantity)),
    }
}

async fn append(log: &dyn EventLog, events: Vec<OrderEvent>) {
    log.append(events.into_iter().map(|e| codec::encode(&Envelope::new(e, time()))).collect())
        .await
        .unwrap();
}

#[tokio::test]
async fn confirmed_orders_reach_their_operator_and_nothing_else_does() {
    let (log, shuttle, ride, unknown) = source_log().await;
    let shuttle_order = confirmed(shuttle, 2);
    let OrderEvent::Confirmed { order_id, customer_id, .. } = shuttle_order.clone() else {
        unreachable!()
    };
    let placed = OrderEvent::Placed {
        order_id: OrderId::generate(),
        customer_id,
        product_id: shuttle,
        quantity: 1,
        total: Money::cents(1200),
    };
    append(&*log, vec![placed, shuttle_order, confirmed(ride, 1), confirmed(unknown, 1)]).await;

    let mut app = App::new(log.clone());
    partner_feed::register(&mut app, None).await.unwrap();
    app.start().await.unwrap();
    app.settle().await.unwrap();

    let airlink = all(&*log, "public.orders.airlink").await;
    assert_eq!(airlink.len(), 1, "one confirmed shuttle order; the placed one stays inside");
    let public: OrderConfirmed = serde_json::from_slice(airlink[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(public.order_id, order_id);
    assert_eq!(
        (public.product.as_str(), public.quantity, public.unit_price_cents, public.total_cents),
        ("Airport shuttle", 2, 1200, 2400)
    );
    assert_eq!(airlink[0].header("ce_type"), Some(&b"OrderConfirmed"[..]));
    assert_eq!(airlink[0].header("ce_schemaversion"), Some(&b"1"[..]));
    assert_eq!(airlink[0].header("ce_correlationid"), None, "no internal ids on a public feed");
    let text = String::from_utf8_lossy(airlink[0].value.as_ref().unwrap()).into_owned();
    assert!(!text.contains(&customer_id.to_string()), "no customer on a public feed: {text}");

    assert_eq!(all(&*log, "public.orders.citybus").await.len(), 1);
    assert_eq!(all(&*log, "public.orders.metro").await.len(), 0);
    // The order of a product nobody knows is dead-lettered by every operator's export, not dropped.
    for operator in partner_feed::OPERATORS {
        let letters = all(&*log, &dead_letter::topic_of(&format!("partner-feed.export.{}", operator.feed()))).await;
        assert_eq!(letters.len(), 1, "{}", operator.id);
        let error = String::from_utf8_lossy(letters[0].header(dead_letter::headers::ERROR).unwrap()).into_owned();
        assert!(error.contains(&format!("product {unknown} is not among the products")), "{error}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_feed_on_another_log_has_stable_event_ids() {
    let (log, shuttle, _, _) = source_log().await;
    append(&*log, vec![confirmed(shuttle, 1), confirmed(shuttle, 3)]).await;
    let mut source = all(&*log, ProductEvent::TOPIC).await;
    source.extend(all(&*log, OrderEvent::TOPIC).await);

    // Exports the same source records twice from scratch, as after a crash before the input
    // positions were committed: the same events get the same ids, so a partner deduplicating by
    // `ce_id` sees each once.
    let mut exported = Vec::new();
    for _ in 0..2 {
        let log = Arc::new(MemoryLog::new());
        for topic in [ProductEvent::TOPIC, OrderEvent::TOPIC] {
            log.create_topic(&TopicSpec::keep(topic, 4)).await.unwrap();
        }
        let copies = source.iter().map(|r| tramline::log::OutRecord {
            topic: r.topic.clone(),
            partition: Some(r.partition),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: Some(r.timestamp),
        });
        log.append(copies.collect()).await.unwrap();
        let public: Arc<dyn EventLog> = MemoryLog::shared();
        let mut app = App::new(log.clone());
        app.export(partner_feed::export(&partner_feed::OPERATORS[1]).to_log(public.clone())).await.unwrap();
        app.start().await.unwrap();
        app.settle().await.unwrap();
        app.shutdown().await.unwrap();
        assert_eq!(
            log.partition_count("public.orders.airlink").await.unwrap(),
            None,
            "the source log has no public topic"
        );
        let mut ids: Vec<Vec<u8>> = all(&*public, "public.orders.airlink")
            .await
            .iter()
            .map(|r| r.header("ce_id").unwrap().to_vec())
            .collect();
        ids.sort();
        assert_eq!(ids.len(), 2);
        exported.push(ids);
    }
    assert_eq!(exported[0], exported[1]);
}
