//! Event evolution: a record written by an older version is upcast on read; one of an unknown
//! (newer) version, or an older one without an upcaster, is refused with a clear error and
//! dead-lettered by the processor that read it.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::codec::{self, DecodeError};
use tramline::log::{EventLog, TopicPartition, TopicSpec};
use tramline::prelude::*;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "shp")]
pub struct ShopOrderId(uuid::Uuid);

mod v1 {
    use super::*;
    /// What the shop wrote last year.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id)]
    pub enum ShopEvent {
        Ordered { order_id: ShopOrderId, qty: u32 },
    }
}

mod v2 {
    use super::*;
    /// `qty` became `quantity`, and a note was added.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id, version = 2, upcast = upcast)]
    pub enum ShopEvent {
        Ordered { order_id: ShopOrderId, quantity: u32, note: String },
    }

    fn upcast(message_type: &str, version: u32, mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        match (message_type, version) {
            ("ShopOrdered", 1) => {
                let fields = payload.as_object_mut().ok_or("not an object")?;
                let qty = fields.remove("qty").ok_or("no `qty`")?;
                fields.insert("quantity".into(), qty);
                fields.insert("note".into(), "".into());
                Ok(payload)
            }
            _ => Err(format!("unknown version {version} of {message_type}")),
        }
    }

    /// The same change, made without an upcaster.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id, version = 2)]
    pub enum CarelessShopEvent {
        #[event(rename = "ShopOrdered")]
        Ordered { order_id: ShopOrderId, quantity: u32, note: String },
    }
}

fn old_record(order_id: ShopOrderId) -> tramline::log::Record {
    let out = codec::encode(&Envelope::new(v1::ShopEvent::Ordered { order_id, qty: 3 }, jiff::Timestamp::now()));
    tramline::log::Record {
        topic: out.topic,
        partition: 0,
        offset: 7,
        key: out.key,
        value: out.value,
        headers: out.headers,
        timestamp: 0,
    }
}

#[test]
fn an_old_record_is_upcast_on_read() {
    let id = ShopOrderId::generate();
    let event = codec::decode::<v2::ShopEvent>(&old_record(id)).unwrap();
    assert_eq!(event.payload, v2::ShopEvent::Ordered { order_id: id, quantity: 3, note: String::new() });
    assert_eq!(event.version, 1, "the envelope tells which version was on the log");
    // Written again, it is a record of the current version: the next reader does not upcast it.
    let again = codec::encode(&event);
    let again = tramline::log::Record { value: again.value, headers: again.headers, ..old_record(id) };
    assert_eq!(again.header(codec::headers::SCHEMA_VERSION), Some(&b"2"[..]));
    assert_eq!(codec::decode::<v2::ShopEvent>(&again).unwrap().payload, event.payload);
}

#[test]
fn a_version_header_is_read_as_tramline_writes_it_or_refused() {
    for written in ["0", "01", "+2", "2.0", " 2", ""] {
        let mut record = old_record(ShopOrderId::generate());
        let mut headers = tramline::log::Headers::builder(256);
        for (name, value) in record.headers.iter().filter(|(name, _)| *name != codec::headers::SCHEMA_VERSION) {
            headers.push(name, value);
        }
        headers.push(codec::headers::SCHEMA_VERSION, written.as_bytes());
        record.headers = headers.build();
        let error = codec::decode::<v2::ShopEvent>(&record).unwrap_err().to_string();
        assert!(error.contains("`ce_schemaversion`") && error.contains("not a version"), "{written:?}: {error}");
    }
}

#[test]
fn an_old_record_without_an_upcaster_is_refused_clearly() {
    let error = codec::decode::<v2::CarelessShopEvent>(&old_record(ShopOrderId::generate())).unwrap_err();
    assert!(matches!(error, DecodeError::Upcast { found: 1, current: 2, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "record shop.events/0@7: `ShopOrdered` of schema version 1 cannot be read as version 2: CarelessShopEvent \
         has no upcaster from version 1 of `ShopOrdered` to version 2: declare #[event(upcast = ...)]"
    );
}

#[test]
fn a_record_of_an_unknown_version_is_refused_clearly() {
    // A record of version 2 read by a program that knows version 1.
    let record = {
        let mut record = old_record(ShopOrderId::generate());
        let out = codec::encode(&Envelope::new(
            v2::ShopEvent::Ordered { order_id: ShopOrderId::generate(), quantity: 1, note: "x".into() },
            jiff::Timestamp::now(),
        ));
        (record.value, record.headers) = (out.value, out.headers);
        record
    };
    let error = codec::decode::<v1::ShopEvent>(&record).unwrap_err();
    assert_eq!(
        error.to_string(),
        "record shop.events/0@7: `ShopOrdered` has schema version 2, this program knows up to 1; upgrade the reader"
    );
}

#[derive(Projection, Default)]
#[projection(name = "shop-totals", subscribe(v2::CarelessShopEvent))]
pub struct Totals {
    quantity: u32,
}

impl Handle<v2::CarelessShopEvent> for Totals {
    fn handle(&mut self, event: &Envelope<v2::CarelessShopEvent>) {
        let v2::CarelessShopEvent::Ordered { quantity, .. } = event.payload;
        self.quantity += quantity;
    }
}

#[tokio::test]
async fn records_that_cannot_be_read_go_to_the_dead_letter_topic() {
    let log = Arc::new(MemoryLog::new());
    log.create_topic(&TopicSpec::keep("shop.events", 1)).await.unwrap();
    let now = jiff::Timestamp::now();
    let id = ShopOrderId::generate();
    log.append(vec![
        codec::encode(&Envelope::new(v1::ShopEvent::Ordered { order_id: id, qty: 5 }, now)),
        codec::encode(&Envelope::new(
            v2::CarelessShopEvent::Ordered { order_id: id, quantity: 2, note: "ok".into() },
            now,
        )),
    ])
    .await
    .unwrap();
    let mut app = App::new(log.clone());
    let totals = app.projection(Totals::default()).await.unwrap();
    app.start().await.unwrap();
    app.settle().await.unwrap();
    assert_eq!(totals.read(|t| t.quantity), 2, "the readable record counts, the other is not guessed at");
    assert_eq!(app.dead_letters().await.unwrap(), 1);
    let mut letters = Vec::new();
    for partition in 0..log.partition_count("shop-totals.dlq").await.unwrap().unwrap() {
        letters.extend(log.read(&TopicPartition::new("shop-totals.dlq", partition), 0, 10).await.unwrap());
    }
    let error = letters.iter().find_map(|l| l.header("dlq_error")).map(|e| String::from_utf8_lossy(e).into_owned());
    assert!(error.as_deref().unwrap_or_default().contains("has no upcaster from version 1"), "{error:?}");
    app.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// State evolution: a snapshot written for an older state is not used; the entities are rebuilt
// from their events.

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "acc")]
pub struct AccountId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "account", key = id)]
pub enum AccountCommand {
    Deposit {
        id: AccountId,
        cents: u64,
    },
    /// Refused unless the account has seen exactly `deposits` deposits.
    Audit {
        id: AccountId,
        deposits: u32,
    },
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "account", key = id)]
pub enum AccountEvent {
    Deposited { id: AccountId, cents: u64 },
    Audited { id: AccountId },
}

#[derive(Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("the account has seen {0} deposits")]
pub struct AuditFailed(u32);

/// Last year's account: a balance.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct AccountV1 {
    cents: u64,
}

impl Aggregate for AccountV1 {
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AuditFailed;
    type Services = ();

    /// As this year's, with no deposits counted.
    fn decide(&self, command: &AccountCommand, services: &()) -> Result<Vec<AccountEvent>, AuditFailed> {
        AccountV2 { cents: self.cents, deposits: 0 }.decide(command, services)
    }

    fn evolve(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { cents, .. } = event {
            self.cents += cents;
        }
    }
}

/// This year's: the deposits are counted too, a field with a default as serde would have it.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct AccountV2 {
    cents: u64,
    #[serde(default)]
    deposits: u32,
}

impl Aggregate for AccountV2 {
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AuditFailed;
    type Services = ();

    fn decide(&self, command: &AccountCommand, _: &()) -> Result<Vec<AccountEvent>, AuditFailed> {
        match *command {
            AccountCommand::Deposit { id, cents } => Ok(vec![AccountEvent::Deposited { id, cents }]),
            AccountCommand::Audit { id, deposits } if deposits == self.deposits => {
                Ok(vec![AccountEvent::Audited { id }])
            }
            AccountCommand::Audit { .. } => Err(AuditFailed(self.deposits)),
        }
    }

    fn evolve(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { cents, .. } = event {
            self.cents += cents;
            self.deposits += 1;
        }
    }
}

/// The same state, but `evolve` counts only large deposits now: its version says so.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct AccountV3 {
    cents: u64,
    #[serde(default)]
    deposits: u32,
}

impl Aggregate for AccountV3 {
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AuditFailed;
    type Services = ();
    const STATE_VERSION: u32 = 2;

    fn decide(&self, command: &AccountCommand, services: &()) -> Result<Vec<AccountEvent>, AuditFailed> {
        AccountV2 { cents: self.cents, deposits: self.deposits }.decide(command, services)
    }

    fn evolve(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { cents, .. } = event
            && *cents >= 100
        {
            self.cents += cents;
            self.deposits += 1;
        }
    }
}

/// Runs `A` on `log` for one command.
async fn send<A: Aggregate<Command = AccountCommand, Services = ()>>(
    log: &Arc<MemoryLog>,
    command: AccountCommand,
) -> Result<(), String> {
    let mut app = App::new(log.clone());
    let accounts = app.aggregate::<A>(()).await.unwrap();
    app.start().await.unwrap();
    let outcome = accounts.send(command).await.map(|_| ()).map_err(|error| error.to_string());
    app.shutdown().await.unwrap();
    outcome
}

#[tokio::test]
async fn a_snapshot_of_an_older_state_is_not_used_the_entities_are_rebuilt_from_events() {
    let log = MemoryLog::shared();
    let id = AccountId::generate();
    send::<AccountV1>(&log, AccountCommand::Deposit { id, cents: 50 }).await.unwrap();
    send::<AccountV1>(&log, AccountCommand::Deposit { id, cents: 500 }).await.unwrap();
    // The V1 snapshot would read as 0 deposits (the field's default); the events say 2.
    send::<AccountV2>(&log, AccountCommand::Audit { id, deposits: 2 })
        .await
        .expect("two deposits, as the events say");
    // V3's evolve counts differently under the same fields: its STATE_VERSION makes V2's
    // snapshots stale too.
    send::<AccountV3>(&log, AccountCommand::Audit { id, deposits: 1 }).await.expect("one large deposit");
    // The rebuilt entities were snapshotted again, for the shape they were rebuilt for.
    let mut states = Vec::new();
    for partition in 0..log.partition_count("account.state").await.unwrap().unwrap() {
        states.extend(log.read(&TopicPartition::new("account.state", partition), 0, 100).await.unwrap());
    }
    let latest = states.iter().rev().find(|r| r.key_text() == id.to_string()).and_then(|r| r.value.clone());
    let latest = latest.expect("a snapshot of the account");
    let snapshot: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(snapshot["state"]["deposits"], 1, "{snapshot}");
    assert!(snapshot["shape"].as_str().is_some_and(|shape| shape.starts_with("v2-")), "{snapshot}");
}

#[test]
fn the_harness_decides_on_the_state_as_its_snapshot_restores_it() {
    /// A state that keeps its deposits out of its snapshot: a restart loses them.
    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Forgetful {
        #[serde(skip)]
        deposits: u32,
    }
    impl Aggregate for Forgetful {
        type Command = AccountCommand;
        type Event = AccountEvent;
        type Error = AuditFailed;
        type Services = ();
        fn decide(&self, command: &AccountCommand, services: &()) -> Result<Vec<AccountEvent>, AuditFailed> {
            AccountV2 { cents: 0, deposits: self.deposits }.decide(command, services)
        }
        fn evolve(&mut self, event: &AccountEvent) {
            if let AccountEvent::Deposited { .. } = event {
                self.deposits += 1;
            }
        }
    }
    let id = AccountId::generate();
    tramline::testing::AggregateTest::<Forgetful>::new()
        .given([AccountEvent::Deposited { id, cents: 5 }])
        .when(AccountCommand::Audit { id, deposits: 1 })
        .then_rejected_with(AuditFailed(0));
}
