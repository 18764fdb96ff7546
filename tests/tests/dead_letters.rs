//! Records a processor cannot handle go to its dead-letter topic, with the error and their
//! origin in the headers and their key and value intact; the records after them are still
//! processed. A handler that keeps failing is retried a bounded number of times, then
//! dead-lettered, and its partition goes on.

use std::sync::Arc;

use bytes::Bytes;
use customer_contract::CustomerId;
use order_contract::{OrderCommand, OrderEvent, OrderId};
use order_history::OrderStatus;
use payment_contract::PaymentEvent;
use product_contract::{Money, ProductId};
use reserve::Request;
use ticket_contract::TicketEvent;
use tramline::codec::{self, headers};
use tramline::log::{EventLog, OutRecord, TopicPartition, partition_for};
use tramline::runtime::Settings;
use tramline::runtime::dead_letter;
use tramline::{Envelope, MemoryLog, Message, Position, ReferenceId};
use tramline_platform_tests::{
    Running, ScriptedProvider, create_product, events_of, fast_settings, header_text, records_of, register_customer,
    reserve, settle, start_platform, start_platform_on,
};

/// What is wrong with a poison record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poison {
    /// No `ce_type` header.
    NoType,
    /// A `ce_type` the topic's enum does not have.
    UnknownType,
    /// A known type whose value is not its JSON.
    BadJson,
    /// No value at all.
    Tombstone,
}

const UNKNOWN_TYPE: &str = "SomethingTeleported";

impl Poison {
    const ALL: [Poison; 4] = [Poison::NoType, Poison::UnknownType, Poison::BadJson, Poison::Tombstone];

    /// The record made from a valid message: its key and headers, spoilt one way.
    fn record_from<M: Message>(self, message: &M) -> OutRecord {
        let mut record = codec::encode(&Envelope::new(message.clone(), jiff::Timestamp::now()));
        match self {
            Poison::NoType => {
                record.headers = record.headers.iter().filter(|(name, _)| *name != headers::TYPE).collect();
            }
            Poison::UnknownType => {
                assert!(record.headers.get(headers::TYPE).is_some(), "encoded with a type");
                record.headers = record
                    .headers
                    .iter()
                    .map(|(name, value)| match name == headers::TYPE {
                        true => (name, UNKNOWN_TYPE.as_bytes()),
                        false => (name, value),
                    })
                    .collect();
            }
            Poison::BadJson => record.value = Some(Bytes::from_static(b"{\"amount\": \"a lot\"")),
            Poison::Tombstone => record.value = None,
        }
        record
    }

    /// What the dead letter's error must say (besides the record's position).
    fn error_says<M: Message>(self, message: &M) -> String {
        match self {
            Poison::NoType => "header `ce_type` is missing".into(),
            Poison::UnknownType => format!("unknown {} type `{UNKNOWN_TYPE}`", M::NAME),
            Poison::BadJson => format!("payload of `{}` is not valid", message.type_name()),
            Poison::Tombstone => "no value (tombstone)".into(),
        }
    }
}

/// A poison record as appended: what is wrong, where it landed, and what was written.
struct Appended {
    poison: Poison,
    position: Position,
    record: OutRecord,
    error_says: String,
}

/// Appends the four poison records made from `message`, in one append, to its topic.
async fn append_poison<M: Message>(log: &dyn EventLog, message: &M) -> Vec<Appended> {
    let records: Vec<OutRecord> = Poison::ALL.iter().map(|p| p.record_from(message)).collect();
    let positions = log.append(records.clone()).await.expect("appended");
    Poison::ALL
        .iter()
        .zip(positions)
        .zip(records)
        .map(|((poison, position), record)| Appended {
            poison: *poison,
            position,
            record,
            error_says: poison.error_says(message),
        })
        .collect()
}

/// Checks that `group`'s dead-letter topic holds exactly the poison records, each with its
/// error, origin and processor in the headers and its key, value and headers preserved.
async fn assert_dead_lettered(log: &dyn EventLog, group: &str, poisoned: &[Appended]) {
    let topic = dead_letter::topic_of(group);
    let mut letters = records_of(log, &topic).await;
    letters.sort_by_key(|l| header_text(l, dead_letter::headers::OFFSET).parse::<u64>().expect("an offset"));
    assert_eq!(letters.len(), poisoned.len(), "{topic} holds the {} poison records", poisoned.len());
    for (letter, appended) in letters.iter().zip(poisoned) {
        let Appended { poison, position, record, error_says } = appended;
        let context = format!("{poison:?} record in {topic}");
        assert_eq!(header_text(letter, dead_letter::headers::TOPIC), &*position.topic, "{context}");
        assert_eq!(header_text(letter, dead_letter::headers::PARTITION), position.partition.to_string(), "{context}");
        assert_eq!(header_text(letter, dead_letter::headers::OFFSET), position.offset.to_string(), "{context}");
        assert_eq!(header_text(letter, dead_letter::headers::PROCESSOR), group, "{context}");
        let error = header_text(letter, dead_letter::headers::ERROR);
        assert!(error.contains(error_says.as_str()), "{context}: `{error}` should say `{error_says}`");
        let place = format!("record {position}");
        assert!(error.contains(&place), "{context}: `{error}` should name `{place}`");
        assert_eq!(letter.key, record.key, "{context}: key preserved");
        assert_eq!(letter.value, record.value, "{context}: value preserved");
        let kept: Vec<_> = letter.headers.iter().take(record.headers.len()).collect();
        assert_eq!(kept, record.headers.iter().collect::<Vec<_>>(), "{context}: headers preserved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_commands_are_dead_lettered_and_the_next_command_is_applied() {
    let Running { platform, log, .. } = start_platform(ScriptedProvider::new()).await;
    let order_id = OrderId::generate();
    let place = OrderCommand::Place {
        order_id,
        customer_id: CustomerId::generate(),
        product_id: ProductId::generate(),
        quantity: 2,
        unit_price: Money::cents(250),
    };
    let poisoned = append_poison(&*log, &place).await;
    let partition = poisoned[0].position.partition;
    assert!(poisoned.iter().all(|p| p.position.partition == partition), "one key, one partition");

    // The same order, now well-formed, right behind the poison on the same partition.
    let placed = tramline_platform_tests::within("an order", platform.orders.send(place))
        .await
        .expect("the command after the poison is applied");
    let event = &placed.events[0];
    assert!(matches!(event.payload, OrderEvent::Placed { quantity: 2, .. }));
    assert_eq!(event.position.as_ref().map(|p| p.partition), Some(partition));
    settle(&platform).await;

    assert_dead_lettered(&*log, "order.aggregate", &poisoned).await;
    assert_eq!(platform.app.dead_letters().await.unwrap(), 4);
    let commands = TopicPartition::new("order.commands", partition);
    assert_eq!(log.committed("order.aggregate", &commands).await.unwrap(), Some(5), "past all five commands");
    let status = platform.history.read(|h| h.order(&order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::AwaitingPayment));
    platform.app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_are_dead_lettered_by_every_subscriber_and_the_flow_goes_on() {
    let Running { platform, log, mailer } = start_platform(ScriptedProvider::new()).await;
    let ada = register_customer(&platform, "Ada").await;
    let ride = create_product(&platform, "Single ride", 250).await;
    let request = Request::new(ada, ride, 2);
    let completed = PaymentEvent::Completed {
        payment_id: request.payment_id(),
        order_id: request.order_id,
        amount: Money::cents(500),
    };
    let poisoned = append_poison(&*log, &completed).await;

    // The real payment of the same id comes after the poison, on the same partition.
    let reservation = reserve(&platform, request).await;
    settle(&platform).await;

    for group in ["order.follow-payments", "payment.charge-payments", "platform.statistics"] {
        assert_dead_lettered(&*log, group, &poisoned).await;
    }
    assert_eq!(platform.app.dead_letters().await.unwrap(), 12);

    // payment.events holds the poison, then the real payment's events on the same partition.
    let records = records_of(&*log, "payment.events").await;
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.partition == poisoned[0].position.partition));
    let real: Vec<PaymentEvent> = records[4..]
        .iter()
        .map(|r| codec::decode::<PaymentEvent>(r).expect("a real event").payload)
        .collect();
    let (payment_id, order_id) = (reservation.payment_id, reservation.order_id);
    assert_eq!(
        real,
        [
            PaymentEvent::Created { payment_id, order_id, amount: Money::cents(500) },
            PaymentEvent::Completed { payment_id, order_id, amount: Money::cents(500) },
        ]
    );
    let status = platform.history.read(|h| h.order(&reservation.order_id).map(|o| o.status.clone()));
    assert_eq!(status, Some(OrderStatus::Confirmed));
    let tickets = events_of::<TicketEvent>(&*log).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(mailer.sent(), 1);
    let counted = platform.statistics.read(|s| (s.payments_created, s.payments_completed, s.orders_confirmed));
    assert_eq!(counted, (1, 1, 1), "the poison counted for nothing");
    platform.app.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_keeps_failing_is_retried_then_dead_lettered_and_the_partition_goes_on() {
    let provider = ScriptedProvider::new();
    let settings = Settings { handler_attempts: 4, ..fast_settings() };
    let partitions = settings.partitions;
    let Running { platform, log, mailer } =
        start_platform_on(MemoryLog::shared(), provider.clone() as Arc<_>, settings).await;
    let ada = register_customer(&platform, "Ada").await;
    let ride = create_product(&platform, "Single ride", 250).await;

    let failing = Request::new(ada, ride, 1);
    provider.fail(failing.payment_id());
    let partition = partition_for(failing.payment_id().to_string().as_bytes(), partitions);
    // The next payment on the same partition of payment.events, so that it queues behind.
    let next = std::iter::repeat_with(|| Request::new(ada, ride, 2))
        .find(|r| partition_for(r.payment_id().to_string().as_bytes(), partitions) == partition)
        .expect("some payment id lands on the same partition");
    reserve(&platform, failing.clone()).await;
    reserve(&platform, next.clone()).await;
    settle(&platform).await;

    let payments = events_of::<PaymentEvent>(&*log).await;
    let created = payments
        .iter()
        .find(|e| matches!(e.payload, PaymentEvent::Created { payment_id, .. } if payment_id == failing.payment_id()))
        .expect("the failing payment was created");
    let charges = provider.charges_of(failing.payment_id());
    assert_eq!(charges.len(), 4, "tried handler_attempts times");
    assert!(charges.iter().all(|c| c.idempotency_key == created.id), "every retry with the same idempotency key");
    assert_eq!(provider.charges_of(next.payment_id()).len(), 1);

    let letters = records_of(&*log, "payment.charge-payments.dlq").await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    let position = created.position.clone().expect("read from the log");
    assert_eq!(
        header_text(letter, dead_letter::headers::ERROR),
        "handler failed 4 times; last error: payment service provider failed: provider unreachable"
    );
    assert_eq!(header_text(letter, dead_letter::headers::TOPIC), "payment.events");
    assert_eq!(header_text(letter, dead_letter::headers::PARTITION), partition.to_string());
    assert_eq!(header_text(letter, dead_letter::headers::OFFSET), position.offset.to_string());
    let original = log.read(&TopicPartition::new("payment.events", partition), position.offset, 1).await.unwrap();
    assert_eq!((&letter.key, &letter.value), (&original[0].key, &original[0].value));
    assert_eq!(platform.app.dead_letters().await.unwrap(), 1);

    let statuses = platform
        .history
        .read(|h| [failing.order_id, next.order_id].map(|id| h.order(&id).map(|o| o.status.clone())));
    assert_eq!(statuses, [Some(OrderStatus::AwaitingPayment), Some(OrderStatus::Confirmed)]);
    let tickets: Vec<OrderId> = events_of::<TicketEvent>(&*log)
        .await
        .into_iter()
        .map(|e| {
            let TicketEvent::Issued { order_id, .. } = e.payload;
            order_id
        })
        .collect();
    assert_eq!(tickets, [next.order_id]);
    assert_eq!(mailer.sent(), 1);
    platform.app.shutdown().await.expect("clean shutdown");
}
