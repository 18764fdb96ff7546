//! The right to erasure, on the memory log, the embedded log and Kafka: a customer's name and
//! e-mail are sealed wherever they are written (commands, events, snapshots), forgetting the
//! customer erases every copy in the log (past records and replays alike) while orders,
//! accounting and order history keep working through the customer's ID, and the public feeds
//! never carry personal data.
//!
//! Each run uses customers of its own (unique names and e-mails), so that the assertions hold on
//! a Kafka broker shared with other runs.

use std::sync::Arc;

use customer::CustomerError;
use customer_contract::{CustomerCommand, CustomerEvent, CustomerId};
use order_contract::OrderId;
use reserve::{Request, ReserveError};
use ticketing_platform::{CountingMailer, Platform, Services};
use tramline::log::embedded::EmbeddedLog;
use tramline::log::kafka::{KafkaConfig, KafkaLog};
use tramline::log::{EventLog, Namespaced, Record};
use tramline::privacy::{ERASED, KEYS_TOPIC, KeyStore};
use tramline::{MemoryLog, Message as _, ReferenceId};
use tramline_platform_tests::{
    ScriptedProvider, create_product, fast_settings, personal_events_of, records_of, reserve, settle, within,
};

/// A customer of this run: texts no other run writes.
struct Person {
    id: CustomerId,
    name: String,
    email: String,
    new_email: String,
}

impl Person {
    fn new(first: &str) -> Self {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        Person {
            id: CustomerId::generate(),
            name: format!("{first} Privacy-{tag}"),
            email: format!("{}.{tag}@example.org", first.to_lowercase()),
            new_email: format!("{}.{tag}@new.example.org", first.to_lowercase()),
        }
    }

    /// Every piece of personal data the run gives for this person.
    fn texts(&self) -> [&str; 3] {
        [&self.name, &self.email, &self.new_email]
    }
}

enum Backend {
    Memory(Arc<MemoryLog>),
    Embedded(EmbeddedLog),
    /// The broker, and the namespace of this run on it.
    Kafka(Arc<KafkaLog>, String),
}

impl Backend {
    fn log(&self) -> Arc<dyn EventLog> {
        match self {
            Backend::Memory(log) => log.clone(),
            Backend::Embedded(log) => Arc::new(log.clone()),
            Backend::Kafka(log, namespace) => Arc::new(Namespaced::new(log.clone(), namespace).expect("a namespace")),
        }
    }

    async fn topics(&self) -> Vec<String> {
        match self {
            Backend::Memory(log) => log.topics(),
            Backend::Embedded(log) => log.topics(),
            Backend::Kafka(log, namespace) => (log.topics().await.expect("the topics").into_iter())
                .filter_map(|topic| topic.strip_prefix(&format!("{namespace}.")).map(str::to_owned))
                .collect(),
        }
    }
}

async fn start(log: Arc<dyn EventLog>) -> Platform {
    let services = Services { provider: ScriptedProvider::new(), mailer: Arc::new(CountingMailer::default()) };
    within("the platform to start", Platform::start(log, fast_settings(), services))
        .await
        .expect("started")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// Whether a record holds `text` in its key, value or headers.
fn mentions(record: &Record, text: &str) -> bool {
    [record.key.as_deref(), record.value.as_deref(), Some(&record.headers.encoded()[..])]
        .into_iter()
        .flatten()
        .any(|bytes| contains(bytes, text))
}

/// Every record of every topic of the log.
async fn every_record(backend: &Backend) -> Vec<Record> {
    let log = backend.log();
    let mut records = Vec::new();
    for topic in backend.topics().await {
        records.extend(records_of(&*log, &topic).await);
    }
    records
}

/// What the run saw, for the checks that depend on the backend.
struct Run {
    forgotten: Person,
    kept: Person,
}

/// Registers two customers, orders for both, forgets one, and checks every record of every
/// topic, the decoded records, a restart and late replays.
async fn the_right_to_erasure(backend: &Backend) -> Run {
    let log = backend.log();
    let mut platform = start(log.clone()).await;
    let (ada, bo) = (Person::new("Ada"), Person::new("Bo"));
    for person in [&ada, &bo] {
        let register = CustomerCommand::Register {
            customer_id: person.id,
            name: person.name.clone().into(),
            email: person.email.clone().into(),
        };
        let accepted = within("a registration", platform.customers.send(register)).await.expect("registered");
        within("reserve to know the customer", platform.reserve.catalog().wait_for(&accepted.positions()))
            .await
            .expect("caught up");
        let update = CustomerCommand::Update {
            customer_id: person.id,
            name: None,
            email: Some(person.new_email.clone().into()),
        };
        within("an update", platform.customers.send(update)).await.expect("updated");
    }
    let product = create_product(&platform, "Day pass", 1250).await;
    for (person, quantity) in [(&ada, 2), (&bo, 3)] {
        let request = Request { order_id: OrderId::generate(), customer_id: person.id, product_id: product, quantity };
        reserve(&platform, request).await;
    }
    settle(&platform).await;
    let accounting = within("accounting", platform.add_accounting()).await.expect("accounting added");
    let sales_before = accounting.read(|books| books.by_product().get(&product).copied()).expect("sales");
    assert_eq!((sales_before.orders, sales_before.tickets), (2, 5));

    // Sealed from the start: no plain text of anyone's personal data anywhere.
    let records = every_record(backend).await;
    for text in ada.texts().into_iter().chain(bo.texts()) {
        let found: Vec<String> = records
            .iter()
            .filter(|r| mentions(r, text))
            .map(|r| format!("{}/{}@{}", r.topic, r.partition, r.offset))
            .collect();
        assert!(found.is_empty(), "`{text}` in plain text at {found:?}");
    }
    let sealed = records.iter().filter(|r| r.key_text() == ada.id.to_string() && mentions(r, "pii1:")).count();
    assert!(sealed >= 5, "Ada's commands, events and snapshots are sealed, not missing ({sealed} records)");

    // Forget Ada.
    let forget = CustomerCommand::Forget { customer_id: ada.id };
    let forgotten = within("forgetting", platform.customers.send(forget)).await.expect("forgotten");
    assert!(matches!(forgotten.events[..], [ref e] if matches!(e.payload, CustomerEvent::Forgotten { .. })));
    let late_update = CustomerCommand::Update { customer_id: ada.id, name: Some("Ada Again".into()), email: None };
    let refused = within("an update after forgetting", platform.customers.send(late_update)).await;
    assert!(matches!(refused.as_ref().err().and_then(|e| e.rejection()), Some(CustomerError::Forgotten(_))));
    settle(&platform).await;
    // Nothing new can be sold to her: her tickets would have no e-mail to go to.
    let request = Request { order_id: OrderId::generate(), customer_id: ada.id, product_id: product, quantity: 1 };
    let refused = within("a reservation after forgetting", platform.reserve.reserve(request)).await;
    assert!(matches!(refused, Err(ReserveError::UnknownCustomer(_))), "{refused:?}");
    let history = platform.history.read(|h| h.of(&ada.id).cloned()).expect("Ada's history");
    assert_eq!(history.name.as_deref(), Some(ERASED), "the running read model heard the forgetting");
    within("the shutdown", platform.app.shutdown()).await.expect("a clean shutdown");

    // Every copy of Ada's data reads as erased; Bo's does not.
    for event in personal_events_of::<CustomerEvent>(log.clone()).await {
        match &event.payload {
            CustomerEvent::Registered { customer_id, name, email }
            | CustomerEvent::Updated { customer_id, name, email }
                if *customer_id == ada.id =>
            {
                assert!(
                    name.is_erased() && email.is_erased(),
                    "Ada's {} at {:?}",
                    event.payload.type_name(),
                    event.position
                );
            }
            CustomerEvent::Registered { customer_id, name, .. } if *customer_id == bo.id => {
                assert_eq!(name.get(), Some(&bo.name));
            }
            _ => {}
        }
    }
    let keys = KeyStore::on(log.clone());
    for record in records_of(&*log, "customer.commands").await.iter().filter(|r| r.key_text() == ada.id.to_string()) {
        match keys.decode::<CustomerCommand>(record).await.expect("decodes").payload {
            CustomerCommand::Register { name, email, .. } => assert!(name.is_erased() && email.is_erased()),
            CustomerCommand::Update { name, email, .. } => {
                assert!(name.is_none_or(|n| n.is_erased()) && email.is_none_or(|e| e.is_erased()))
            }
            CustomerCommand::Forget { .. } => {}
        }
    }
    assert!(keys.is_forgotten(&ada.id.to_string()) && !keys.is_forgotten(&bo.id.to_string()));

    // No plain text of Ada's, nor of the update sent after she was forgotten; the public feeds
    // carry no personal data of anyone, sealed or not.
    let records = every_record(backend).await;
    for text in ada.texts().into_iter().chain(["Ada Again"]) {
        assert!(!records.iter().any(|r| mentions(r, text)), "`{text}` in plain text after forgetting");
    }
    let public: Vec<&Record> = records.iter().filter(|r| r.topic.starts_with("public.")).collect();
    assert!(public.iter().any(|r| mentions(r, &product.to_string())), "the feed carries the orders");
    for record in &public {
        for text in ada.texts().into_iter().chain(bo.texts()).chain(["pii1:", "@example.org"]) {
            assert!(!mentions(record, text), "`{text}` on {}", record.topic);
        }
    }
    // The keys: a tombstone for each of Ada's, and the marker.
    let ada_keys: Vec<&Record> = records
        .iter()
        .filter(|r| &*r.topic == KEYS_TOPIC && r.key_text().starts_with(&ada.id.to_string()))
        .collect();
    assert!(
        ada_keys
            .iter()
            .any(|r| r.key_text() == ada.id.to_string() && r.value.as_deref() == Some(b"forgotten"))
    );
    assert!(ada_keys.iter().any(|r| r.key_text().contains('/') && r.value.is_none()), "tombstones");

    // A restart (another process): the customer module restores from its snapshots, Bo can
    // change, Ada cannot; late projections replay the log to the same totals.
    let mut platform = start(log.clone()).await;
    let update =
        CustomerCommand::Update { customer_id: bo.id, name: Some(format!("{} Jr", bo.name).into()), email: None };
    within("an update after the restart", platform.customers.send(update)).await.expect("Bo changes");
    let again = CustomerCommand::Forget { customer_id: ada.id };
    let refused = within("forgetting twice", platform.customers.send(again)).await;
    assert!(matches!(refused.as_ref().err().and_then(|e| e.rejection()), Some(CustomerError::Forgotten(_))));
    let accounting = within("accounting replayed", platform.add_accounting()).await.expect("accounting added");
    let sales_after = accounting.read(|books| books.by_product().get(&product).copied()).expect("sales");
    assert_eq!(sales_after, sales_before, "a replay after forgetting gives the same totals");
    // The history is another module's projection: the update's answer does not wait for it.
    within("the history to catch up", platform.history.caught_up()).await.expect("caught up");
    let history = platform.history.read(|h| h.of(&ada.id).cloned()).expect("Ada's history, replayed");
    assert_eq!(history.name.as_deref(), Some(ERASED));
    assert_eq!(history.orders.len(), 1, "Ada's order stays, under her ID");
    let bo_history = platform.history.read(|h| h.of(&bo.id).cloned()).expect("Bo's history");
    assert_eq!(bo_history.name, Some(format!("{} Jr", bo.name)));
    if !matches!(backend, Backend::Kafka(..)) {
        // A shared broker holds other runs' letters: only a log of this run's own is checked.
        assert_eq!(within("dead letters", platform.app.dead_letters()).await.unwrap(), 0, "nothing dead-lettered");
    }
    within("the shutdown", platform.app.shutdown()).await.expect("a clean shutdown");
    Run { forgotten: ada, kept: bo }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_erases_every_copy_on_the_memory_log() {
    the_right_to_erasure(&Backend::Memory(MemoryLog::shared())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_erases_every_copy_on_the_embedded_log_and_compaction_removes_the_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EmbeddedLog::open(dir.path()).expect("opened");
    // Ada's keys as written, before they are deleted.
    let run = the_right_to_erasure(&Backend::Embedded(log.clone())).await;
    let _ = &run.kept;
    // Compaction removes the superseded key records, and overwrites them on disk.
    let removed = log.compact().await.expect("compacted");
    assert!(removed > 0);
    let subject = run.forgotten.id.to_string();
    let keys = records_of(&log, KEYS_TOPIC).await;
    assert!(
        keys.iter()
            .filter(|r| r.key_text().starts_with(&subject))
            .all(|r| r.value.is_none() || r.value.as_deref() == Some(b"forgotten")),
        "no key of Ada's is left on `{KEYS_TOPIC}`"
    );
    drop(log);
    // A reopened log (compacting on open) reads the same: Ada erased.
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(dir.path()).expect("reopened"));
    let erased = personal_events_of::<CustomerEvent>(log.clone()).await.into_iter().all(|event| match event.payload {
        CustomerEvent::Registered { customer_id, name, .. } | CustomerEvent::Updated { customer_id, name, .. } => {
            customer_id != run.forgotten.id || name.is_erased()
        }
        CustomerEvent::Forgotten { .. } => true,
    });
    assert!(erased);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_erases_every_copy_on_kafka() {
    let config = KafkaConfig::new(tramline::testing::kafka::bootstrap()).with_instance_id("privacy-test");
    let log = Arc::new(KafkaLog::connect(config).await.expect("connected"));
    // A namespace of its own on the shared broker: every topic scanned is this run's.
    let namespace = format!("privacy-{}", uuid::Uuid::now_v7().simple());
    the_right_to_erasure(&Backend::Kafka(log, namespace)).await;
}

/// A registration refused (a mistyped e-mail) left a name and an e-mail on the commands topic,
/// sealed: forgetting the ID, never registered, erases them as it erases a customer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_is_forgotten_too() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let platform = start(log.clone()).await;
    let zed = Person::new("Zed");
    let register =
        CustomerCommand::Register { customer_id: zed.id, name: zed.name.clone().into(), email: "zed at home".into() };
    let refused = within("a registration", platform.customers.send(register)).await;
    assert!(
        matches!(refused.as_ref().err().and_then(|e| e.rejection()), Some(CustomerError::InvalidEmail(_))),
        "{refused:?}"
    );
    let forget = CustomerCommand::Forget { customer_id: zed.id };
    let forgotten = within("forgetting", platform.customers.send(forget)).await.expect("forgotten");
    assert!(matches!(forgotten.events[..], [ref e] if matches!(e.payload, CustomerEvent::Forgotten { .. })));
    within("the shutdown", platform.app.shutdown()).await.expect("a clean shutdown");

    let keys = KeyStore::on(log.clone());
    let commands = records_of(&*log, "customer.commands").await;
    let mut registrations = 0;
    for record in commands.iter().filter(|r| r.key_text() == zed.id.to_string()) {
        if let CustomerCommand::Register { name, email, .. } = keys.decode(record).await.expect("decodes").payload {
            assert!(name.is_erased() && email.is_erased(), "the refused registration reads as erased");
            registrations += 1;
        }
    }
    assert_eq!(registrations, 1);
    assert!(keys.is_forgotten(&zed.id.to_string()));
}

/// Commands written by a producer without tramline's codec carry personal data in plain text:
/// the module seals it with a key of its own making. When the same batch forgets the subject,
/// the key goes to the keys topic before its tombstone, so that compaction removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_in_the_batch_that_forgets_its_subject_is_tombstoned_after_it() {
    mod plain {
        use customer_contract::CustomerId;
        use serde::{Deserialize, Serialize};

        /// The customer commands as plain JSON.
        #[derive(tramline::Command, Serialize, Deserialize, schemars::JsonSchema, Clone, Debug)]
        #[command(module = "customer", key = customer_id)]
        pub enum CustomerCommand {
            Register { customer_id: CustomerId, name: String, email: String },
            Forget { customer_id: CustomerId },
        }
    }
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let mut app = tramline::App::new(log.clone()).with_settings(fast_settings());
    customer::register(&mut app).await.expect("registered");
    let ada = Person::new("Ada");
    let register = plain::CustomerCommand::Register { customer_id: ada.id, name: ada.name, email: ada.email };
    let now = jiff::Timestamp::now();
    // Both on the log before the module starts: one batch.
    let commands = [register, plain::CustomerCommand::Forget { customer_id: ada.id }];
    let records = commands.into_iter().map(|command| tramline::codec::encode(&tramline::Envelope::new(command, now)));
    log.append(records.collect()).await.expect("appended");
    within("the start", app.start()).await.expect("started");
    within("the module to settle", app.settle()).await.expect("settled");
    within("the shutdown", app.shutdown()).await.expect("a clean shutdown");

    let subject = ada.id.to_string();
    let mut last_of_each_key = std::collections::HashMap::new();
    for record in records_of(&*log, KEYS_TOPIC).await.into_iter().filter(|r| r.key_text().starts_with(&subject)) {
        last_of_each_key.insert(record.key_text().into_owned(), record.value.clone());
    }
    let keys: Vec<_> = last_of_each_key.iter().filter(|(key, _)| key.contains('/')).collect();
    assert!(!keys.is_empty(), "the module made a key for the plain-text registration");
    assert!(keys.iter().all(|(_, value)| value.is_none()), "each key's last record is its tombstone: {keys:?}");

    // The plain-text command stays on the log, but reads as erased once its subject is forgotten.
    let keys = KeyStore::on(log.clone());
    let commands = records_of(&*log, CustomerCommand::TOPIC).await;
    match keys.decode::<CustomerCommand>(&commands[0]).await.expect("decodes").payload {
        CustomerCommand::Register { name, email, .. } => assert!(name.is_erased() && email.is_erased()),
        other => panic!("expected the registration, got {other:?}"),
    }
}
