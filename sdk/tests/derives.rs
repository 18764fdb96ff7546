//! What the derives generate, used as a module author uses it.

use std::any::TypeId;
use std::convert::Infallible;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::codec::{self, DecodeError, headers};
use tramline::log::Record;
use tramline::privacy::{KeyStore, Personal};
use tramline::{
    Command, DispatchError, Envelope, Event, Handle, Message, MessageType, NoCommand, ParseIdError, Projection, React,
    Reaction, ReferenceId, StartFrom, Subscription,
};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "ord")]
pub struct OrderId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "payment", key = payment_id, version = 2)]
pub enum PaymentEvent {
    Completed {
        payment_id: PaymentId,
        order_id: OrderId,
    },
    #[event(rename = "PaymentVoided")]
    Cancelled {
        payment_id: PaymentId,
        reason: String,
    },
}

/// An event enum without the `Event` suffix.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "order", key = order_id)]
pub enum Order {
    Placed { order_id: OrderId },
}

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "order", key = order_id)]
pub enum OrderCommand {
    Confirm {
        order_id: OrderId,
    },
    #[command(rename = "VoidOrder")]
    Cancel {
        order_id: OrderId,
        reason: String,
    },
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the payment provider is down")]
pub struct ProviderError;

#[derive(Reaction)]
#[reaction(
    module = "order",
    commands = OrderCommand,
    error = ProviderError,
    name = "confirm-paid-orders",
    start = beginning,
    subscribe(PaymentEvent, Order),
)]
pub struct ConfirmPaidOrders;

impl React<PaymentEvent> for ConfirmPaidOrders {
    async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<OrderCommand>, ProviderError> {
        match &event.payload {
            PaymentEvent::Completed { order_id, .. } => Ok(vec![OrderCommand::Confirm { order_id: *order_id }]),
            PaymentEvent::Cancelled { .. } => Err(ProviderError),
        }
    }
}

impl React<Order> for ConfirmPaidOrders {
    async fn react(&self, _: &Envelope<Order>) -> Result<Vec<OrderCommand>, ProviderError> {
        Ok(vec![])
    }
}

/// A reaction with every default.
#[derive(Reaction)]
#[reaction(module = "audit", subscribe(Order))]
pub struct AuditOrders;

impl React<Order> for AuditOrders {
    async fn react(&self, _: &Envelope<Order>) -> Result<Vec<NoCommand>, Infallible> {
        Ok(vec![])
    }
}

#[derive(Projection, Default)]
#[projection(name = "order-history", subscribe(Order, PaymentEvent))]
pub struct OrderHistory {
    lines: Vec<String>,
}

impl Handle<Order> for OrderHistory {
    fn handle(&mut self, event: &Envelope<Order>) {
        let Order::Placed { order_id } = &event.payload;
        self.lines.push(format!("placed {order_id}"));
    }
}

impl Handle<PaymentEvent> for OrderHistory {
    fn handle(&mut self, event: &Envelope<PaymentEvent>) {
        self.lines.push(format!("paid with {}", event.payload.type_name()));
    }
}

/// A projection named after its type, inside the `sales` module.
#[derive(Projection, Default)]
#[projection(module = "sales", subscribe(Order))]
pub struct PlacedOrders(u64);

impl Handle<Order> for PlacedOrders {
    fn handle(&mut self, _: &Envelope<Order>) {
        self.0 += 1;
    }
}

/// Personal data the derive cannot see in a field's type: inside a struct of the user's, and
/// behind a type alias.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Address {
    street: Personal<String>,
    city: String,
}

/// What lets a field of this type be marked `#[pii]`.
impl tramline::privacy::HoldsPersonal for Address {}

pub type FullName = Personal<String>;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(module = "customer", key = customer_id)]
pub enum CustomerEvent {
    Moved {
        customer_id: CustomerId,
        #[pii]
        address: Address,
    },
    Renamed {
        customer_id: CustomerId,
        #[pii]
        name: FullName,
    },
}

/// The same personal data, the fields not marked `#[pii]`.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(module = "customer", key = customer_id)]
pub enum UnmarkedCustomerEvent {
    Moved { customer_id: CustomerId, address: Address },
}

/// Reference ID types named like what their generated code names.
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "vis")]
pub struct Visitor(uuid::Uuid);

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "e")]
pub struct E(uuid::Uuid);

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "d")]
pub struct D(uuid::Uuid);

/// An upcaster named like a parameter of the generated `upcast`.
fn version(message_type: &str, version: u32, payload: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(serde_json::json!({ "type": message_type, "from": version, "payload": payload }))
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(module = "visit", key = visitor, version = 2, upcast = version)]
pub enum VisitEvent {
    Started { visitor: Visitor },
}

/// The record a log would return for `message`, at offset 0 of partition 0.
fn record<M: Message>(message: M) -> Record {
    let out = codec::encode(&Envelope::new(message, jiff::Timestamp::now()));
    Record {
        topic: out.topic,
        partition: 0,
        offset: 0,
        key: out.key,
        value: out.value,
        headers: out.headers,
        timestamp: out.timestamp.expect("encode sets the event time"),
    }
}

/// The record with its `ce_type` header replaced.
fn with_type(record: Record, type_name: &'static str) -> Record {
    with_header(record, headers::TYPE, type_name.as_bytes())
}

/// The record with header `name` set to `value`.
fn with_header(record: Record, name: &str, value: &'static [u8]) -> Record {
    let headers = record.headers.iter().map(|(n, v)| if n == name { (n, value) } else { (n, v) }).collect();
    Record { headers, ..record }
}

#[test]
fn records_of_another_cloudevents_version_or_format_are_refused_naming_the_header() {
    let refused = |record: Record| codec::decode::<PaymentEvent>(&record).unwrap_err().to_string();
    let error = refused(with_header(record(completed()), headers::SPEC_VERSION, b"0.3"));
    assert!(error.contains("ce_specversion") && error.contains("`0.3`") && error.contains("1.0"), "{error}");
    let error = refused(with_header(record(completed()), headers::CONTENT_TYPE, b"application/avro"));
    assert!(error.contains("content-type") && error.contains("application/avro"), "{error}");
    // A structured-mode event has no ce_* headers at all: the content type says why.
    let structured = Record {
        headers: [(headers::CONTENT_TYPE, &b"application/cloudevents+json"[..])].into_iter().collect(),
        ..record(completed())
    };
    assert!(refused(structured).contains("structured mode"));
    let charset = with_header(record(completed()), headers::CONTENT_TYPE, b"application/json; charset=utf-8");
    assert!(codec::decode::<PaymentEvent>(&charset).is_ok(), "a parameter of the JSON media type is fine");
}

fn completed() -> PaymentEvent {
    PaymentEvent::Completed { payment_id: PaymentId::generate(), order_id: OrderId::generate() }
}

#[test]
fn reference_id_text_form_round_trips() {
    let uuid = uuid::Uuid::now_v7();
    let id = PaymentId::from_uuid(uuid);
    assert_eq!(id.as_uuid(), &uuid);
    assert_eq!(id.to_string(), format!("pay_{}", uuid.simple()));
    assert_eq!(format!("{id:?}"), id.to_string());
    assert_eq!(id.to_string().parse::<PaymentId>(), Ok(id));
    assert_eq!((PaymentId::PREFIX, PaymentId::NAME), ("pay", "PaymentId"));
    assert_eq!(OrderId::derived_from(&id).to_string(), format!("ord_{}", uuid.simple()));
}

#[test]
fn reference_id_parse_errors_name_the_problem() {
    let error =
        |input: &str, problem| ParseIdError { id_type: "PaymentId", prefix: "pay", input: input.to_owned(), problem };
    let hex = "0193b1a2c3d47e8f9a0b1c2d3e4f5a6b";
    let cases = [
        (format!("ord_{hex}"), "wrong or missing prefix"),
        (hex.to_owned(), "wrong or missing prefix"),
        (format!("pay_{}", hex.replace('b', "g")), "the part after the prefix has characters other than 0-9 and a-f"),
        (format!("pay_{}", hex.to_uppercase()), "the part after the prefix has characters other than 0-9 and a-f"),
        (format!("pay_{}", &hex[1..]), "the part after the prefix is not 32 characters long"),
        (format!("pay_{hex}0"), "the part after the prefix is not 32 characters long"),
    ];
    for (input, problem) in cases {
        assert_eq!(input.parse::<PaymentId>(), Err(error(&input, problem)), "{input}");
    }
}

#[test]
fn reference_id_is_a_json_string() {
    let id = PaymentId::generate();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"{id}\""));
    assert_eq!(serde_json::from_str::<PaymentId>(&json).unwrap(), id);
    // From a borrowed and from an owned string.
    assert_eq!(serde_json::from_value::<PaymentId>(serde_json::json!(id.to_string())).unwrap(), id);

    let wrong = serde_json::from_str::<PaymentId>(&format!("\"{}\"", OrderId::derived_from(&id))).unwrap_err();
    assert!(wrong.to_string().starts_with("invalid PaymentId `ord_"), "{wrong}");
    let not_a_string = serde_json::from_str::<PaymentId>("42").unwrap_err();
    assert!(
        not_a_string.to_string().contains("expected an ID of type PaymentId: `pay_` followed by"),
        "{not_a_string}"
    );
}

#[test]
fn reference_id_schema_is_a_string_with_the_pattern() {
    let schema = schemars::schema_for!(PaymentId);
    assert_eq!(schema.get("type"), Some(&serde_json::json!("string")));
    assert_eq!(schema.get("pattern"), Some(&serde_json::json!("^pay_[0-9a-f]{32}$")));

    // Inside a message, a named definition.
    let schema = schemars::schema_for!(PaymentEvent).to_value();
    assert_eq!(schema["$defs"]["PaymentId"]["pattern"], "^pay_[0-9a-f]{32}$");
}

#[test]
fn event_constants() {
    assert_eq!(PaymentEvent::MODULE, "payment");
    assert_eq!(PaymentEvent::TOPIC, "payment.events");
    assert_eq!(PaymentEvent::NAME, "PaymentEvent");
    assert_eq!(PaymentEvent::VERSION, 2);
    assert_eq!(
        PaymentEvent::TYPES,
        [
            MessageType { name: "PaymentCompleted", variant: "Completed" },
            MessageType { name: "PaymentVoided", variant: "Cancelled" },
        ]
    );
    assert_eq!(Order::TOPIC, "order.events");
    assert_eq!(Order::VERSION, 1);
    assert_eq!(Order::TYPES, [MessageType { name: "OrderPlaced", variant: "Placed" }]);
    assert_eq!(TypeId::of::<<PaymentEvent as Message>::Key>(), TypeId::of::<PaymentId>());
}

#[test]
fn event_type_name_and_key() {
    let (payment_id, order_id) = (PaymentId::generate(), OrderId::generate());
    let completed = PaymentEvent::Completed { payment_id, order_id };
    let cancelled = PaymentEvent::Cancelled { payment_id, reason: "duplicate".into() };
    assert_eq!((completed.type_name(), completed.key()), ("PaymentCompleted", &payment_id));
    assert_eq!((cancelled.type_name(), cancelled.key()), ("PaymentVoided", &payment_id));
    assert_eq!(PaymentEvent::message_type("PaymentVoided").map(|t| t.variant), Some("Cancelled"));
}

#[test]
fn command_constants_type_names_and_key() {
    fn is_command<C: Command>() {}
    is_command::<OrderCommand>();
    assert_eq!(OrderCommand::MODULE, "order");
    assert_eq!(OrderCommand::TOPIC, "order.commands");
    assert_eq!(OrderCommand::NAME, "OrderCommand");
    assert_eq!(
        OrderCommand::TYPES,
        [
            MessageType { name: "ConfirmOrder", variant: "Confirm" },
            MessageType { name: "VoidOrder", variant: "Cancel" },
        ]
    );
    let order_id = OrderId::generate();
    let cancel = OrderCommand::Cancel { order_id, reason: "changed my mind".into() };
    assert_eq!((cancel.type_name(), cancel.key()), ("VoidOrder", &order_id));
}

#[test]
fn messages_survive_the_codec() {
    let event = PaymentEvent::Cancelled { payment_id: PaymentId::generate(), reason: "fraud".into() };
    let decoded = codec::decode::<PaymentEvent>(&record(event.clone())).unwrap();
    assert_eq!(decoded.payload, event);
}

#[test]
fn reaction_constants_and_subscriptions() {
    assert_eq!(ConfirmPaidOrders::NAME, "confirm-paid-orders");
    assert_eq!(ConfirmPaidOrders::MODULE, "order");
    assert_eq!(ConfirmPaidOrders::START, StartFrom::Beginning);
    assert_eq!(TypeId::of::<<ConfirmPaidOrders as Reaction>::Command>(), TypeId::of::<OrderCommand>());
    assert_eq!(TypeId::of::<<ConfirmPaidOrders as Reaction>::Error>(), TypeId::of::<ProviderError>());
    assert_eq!(ConfirmPaidOrders::subscriptions(), [Subscription::of::<PaymentEvent>(), Subscription::of::<Order>()]);
    assert_eq!(ConfirmPaidOrders::subscriptions()[0].topic, "payment.events");
}

#[test]
fn reaction_defaults() {
    assert_eq!(AuditOrders::NAME, "audit-orders");
    assert_eq!(AuditOrders::START, StartFrom::End);
    assert_eq!(TypeId::of::<<AuditOrders as Reaction>::Command>(), TypeId::of::<NoCommand>());
    assert_eq!(TypeId::of::<<AuditOrders as Reaction>::Error>(), TypeId::of::<Infallible>());
    assert_eq!(AuditOrders::subscriptions(), [Subscription::of::<Order>()]);
}

#[tokio::test]
async fn reaction_dispatches_by_topic() {
    let event = completed();
    let PaymentEvent::Completed { order_id, .. } = event else { unreachable!() };
    let commands = ConfirmPaidOrders.dispatch(&record(event)).await.unwrap();
    assert_eq!(commands, [OrderCommand::Confirm { order_id }]);

    let placed = ConfirmPaidOrders.dispatch(&record(Order::Placed { order_id })).await.unwrap();
    assert_eq!(placed, []);
    assert_eq!(AuditOrders.dispatch(&record(Order::Placed { order_id })).await.unwrap(), []);
}

#[tokio::test]
async fn reaction_dispatch_errors() {
    let cancelled = PaymentEvent::Cancelled { payment_id: PaymentId::generate(), reason: "fraud".into() };
    let error = ConfirmPaidOrders.dispatch(&record(cancelled)).await.unwrap_err();
    assert!(matches!(error, DispatchError::Handler(ProviderError)), "{error:?}");

    let command = record(OrderCommand::Confirm { order_id: OrderId::generate() });
    let error = ConfirmPaidOrders.dispatch(&command).await.unwrap_err();
    let expected =
        DecodeError::NotSubscribed { position: codec::position_of(&command), processor: "confirm-paid-orders" };
    assert!(matches!(error, DispatchError::Decode(ref e) if *e == expected), "{error:?}");

    let unknown = with_type(record(completed()), "PaymentRefunded");
    let error = ConfirmPaidOrders.dispatch(&unknown).await.unwrap_err();
    let DispatchError::Decode(DecodeError::UnknownType { expected, found, known, .. }) = error else {
        panic!("expected an unknown type, got {error:?}")
    };
    assert_eq!(
        (expected, found.as_str(), known.as_str()),
        ("PaymentEvent", "PaymentRefunded", "PaymentCompleted, PaymentVoided")
    );
}

#[test]
fn projection_constants_and_subscriptions() {
    assert_eq!(OrderHistory::NAME, "order-history");
    assert_eq!(OrderHistory::MODULE, "order-history", "without a module, its own function module");
    assert_eq!(OrderHistory::subscriptions(), [Subscription::of::<Order>(), Subscription::of::<PaymentEvent>()]);
    assert_eq!((PlacedOrders::MODULE, PlacedOrders::NAME), ("sales", "placed-orders"));
    assert_eq!(PlacedOrders::subscriptions(), [Subscription::of::<Order>()]);
}

#[test]
fn projection_applies_by_topic() {
    let order_id = OrderId::generate();
    let mut history = OrderHistory::default();
    history.apply(&record(Order::Placed { order_id })).unwrap();
    history.apply(&record(completed())).unwrap();
    assert_eq!(history.lines, [format!("placed {order_id}"), "paid with PaymentCompleted".to_owned()]);

    let mut placed = PlacedOrders::default();
    placed.apply(&record(Order::Placed { order_id })).unwrap();
    assert_eq!(placed.0, 1);
}

#[test]
fn projection_apply_errors() {
    let mut history = OrderHistory::default();
    let command = record(OrderCommand::Confirm { order_id: OrderId::generate() });
    assert_eq!(
        history.apply(&command),
        Err(DecodeError::NotSubscribed { position: codec::position_of(&command), processor: "order-history" })
    );
    let unknown = with_type(record(Order::Placed { order_id: OrderId::generate() }), "OrderShipped");
    assert!(matches!(history.apply(&unknown), Err(DecodeError::UnknownType { found, .. }) if found == "OrderShipped"));
    assert_eq!(history.lines, Vec::<String>::new());
}

#[tokio::test]
async fn personal_data_inside_a_struct_or_an_alias_is_sealed_when_marked() {
    const { assert!(CustomerEvent::PERSONAL) };
    let keys = KeyStore::in_memory();
    let customer_id = CustomerId::generate();
    let address = Address { street: "1 Analytical Row".into(), city: "London".into() };
    for event in [
        CustomerEvent::Moved { customer_id, address: address.clone() },
        CustomerEvent::Renamed { customer_id, name: "Ada Lovelace".into() },
    ] {
        let out = keys.scope(|| codec::encode(&Envelope::new(event.clone(), jiff::Timestamp::now())));
        let json = String::from_utf8(out.value.clone().unwrap().to_vec()).unwrap();
        assert!(!json.contains("Analytical") && !json.contains("Lovelace"), "sealed: {json}");
        assert!(json.contains("pii1:"), "sealed: {json}");
        let record = Record {
            topic: out.topic,
            partition: 0,
            offset: 0,
            key: out.key,
            value: out.value,
            headers: out.headers,
            timestamp: out.timestamp.unwrap(),
        };
        assert_eq!(keys.decode::<CustomerEvent>(&record).await.unwrap().payload, event);
    }
}

#[test]
#[should_panic(expected = "mark that field `#[pii]`")]
fn unmarked_personal_data_fails_to_encode_saying_to_mark_it() {
    const { assert!(!UnmarkedCustomerEvent::PERSONAL) };
    let address = Address { street: "1 Analytical Row".into(), city: "London".into() };
    let event = UnmarkedCustomerEvent::Moved { customer_id: CustomerId::generate(), address };
    KeyStore::in_memory().scope(|| codec::encode(&Envelope::new(event, jiff::Timestamp::now())));
}

#[test]
fn reference_ids_named_like_the_generated_code_work() {
    let (visitor, e, d) = (Visitor::generate(), E::generate(), D::generate());
    let json = serde_json::to_string(&(visitor, e, d)).unwrap();
    assert_eq!(serde_json::from_str::<(Visitor, E, D)>(&json).unwrap(), (visitor, e, d));
}

#[test]
fn upcast_may_be_named_like_its_parameters() {
    let upcast = VisitEvent::upcast("VisitStarted", 1, serde_json::json!({}));
    assert_eq!(upcast, Ok(serde_json::json!({ "type": "VisitStarted", "from": 1, "payload": {} })));
}

/// A crate of the user's that re-exports tramline, as a platform team's SDK would; its users
/// depend on it alone and name it in `crate = "..."`.
mod facade {
    pub use tramline as sdk;
}

/// Derives used through the facade only: nothing here names `tramline`.
mod through_the_facade {
    use crate::facade::sdk;

    #[derive(sdk::ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "lin", crate = "crate::facade::sdk")]
    pub struct LineId(uuid::Uuid);

    #[derive(sdk::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
    #[event(module = "line", key = line_id, crate = "crate::facade::sdk")]
    pub enum LineEvent {
        Opened { line_id: LineId },
    }

    #[derive(sdk::Projection, Default)]
    #[projection(subscribe(LineEvent), crate = "crate::facade::sdk")]
    pub struct OpenLines(pub usize);

    impl sdk::Handle<LineEvent> for OpenLines {
        fn handle(&mut self, _: &sdk::Envelope<LineEvent>) {
            self.0 += 1;
        }
    }
}

#[test]
fn derives_name_tramline_through_the_path_given_by_crate() {
    use through_the_facade::{LineEvent, LineId, OpenLines};
    assert_eq!(<LineEvent as Message>::TOPIC, "line.events");
    let id = LineId::generate();
    assert!(id.to_string().starts_with("lin_"));
    let mut lines = OpenLines::default();
    tramline::Projection::apply(&mut lines, &record(LineEvent::Opened { line_id: id })).expect("applied");
    assert_eq!(lines.0, 1);
}

/// One key type written three ways: by name, by path and through an alias.
mod key_written_three_ways {
    pub mod ids {
        #[derive(tramline::ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[reference(prefix = "stp")]
        pub struct StopId(uuid::Uuid);
    }
    use ids::StopId;
    pub type Stop = StopId;

    #[derive(tramline::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
    #[event(module = "stop", key = stop_id)]
    pub enum StopEvent {
        Opened { stop_id: StopId },
        Moved { stop_id: ids::StopId },
        Closed { stop_id: Stop },
    }
}

#[test]
fn a_key_type_may_be_written_by_path_or_alias() {
    use key_written_three_ways::{StopEvent, ids::StopId};
    let id = StopId::generate();
    for event in
        [StopEvent::Opened { stop_id: id }, StopEvent::Moved { stop_id: id }, StopEvent::Closed { stop_id: id }]
    {
        assert_eq!(*event.key(), id);
    }
}
