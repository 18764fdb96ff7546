//! Shared set-up of the platform integration suites: the platform on a fresh memory log with
//! fast settings, a payment service provider whose answer each test scripts, and readers of
//! what ended up on the log.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use customer_contract::{CustomerCommand, CustomerId};
use payment::{Charge, ChargeDecision, PaymentProvider, ProviderError};
use payment_contract::PaymentId;
use product_contract::{Money, ProductCommand, ProductId};
use reserve::{Request, Reservation};
use ticketing_platform::{CountingMailer, Platform, Services};
use tramline::codec;
use tramline::log::{EventLog, Record, TopicPartition};
use tramline::privacy::KeyStore;
use tramline::runtime::Settings;
use tramline::{Command, Envelope, Event, MemoryLog, Message, ReferenceId};

/// How long any wait of a suite may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Settings for tests: short polls and back-offs, so that waits end quickly.
pub fn fast_settings() -> Settings {
    Settings {
        poll_timeout: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(2),
        command_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

/// A platform running on a memory log, with the mail service it mails through.
pub struct Running {
    /// Every module, started.
    pub platform: Platform,
    /// Counts the ticket mails.
    pub mailer: Arc<CountingMailer>,
    /// The log it runs on (a clone of the `Arc` the platform holds).
    pub log: Arc<MemoryLog>,
}

/// Starts the whole platform on a fresh memory log, charging through `provider`.
pub async fn start_platform(provider: Arc<dyn PaymentProvider>) -> Running {
    start_platform_on(MemoryLog::shared(), provider, fast_settings()).await
}

/// Starts the whole platform on `log` with `settings`, charging through `provider`.
pub async fn start_platform_on(log: Arc<MemoryLog>, provider: Arc<dyn PaymentProvider>, settings: Settings) -> Running {
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider, mailer: mailer.clone() };
    let platform = within("the platform to start", Platform::start(log.clone(), settings, services))
        .await
        .expect("the platform starts");
    Running { platform, mailer, log }
}

/// Waits until every processor of the platform has handled everything on its topics.
pub async fn settle(platform: &Platform) {
    within("the platform to settle", platform.app.settle()).await.expect("the platform settles");
}

/// Registers a customer and waits until reserve and order history know it.
pub async fn register_customer(platform: &Platform, name: &str) -> CustomerId {
    let customer_id = CustomerId::generate();
    let email = format!("{}@example.org", name.to_lowercase().replace(' ', "."));
    let register = CustomerCommand::Register { customer_id, name: name.into(), email: email.into() };
    let accepted = within("a registration", platform.customers.send(register)).await.expect("registered");
    within("the catalog to see the customer", platform.reserve.catalog().wait_for(&accepted.positions()))
        .await
        .expect("the catalog runs");
    within("order history to see the customer", platform.history.wait_for(&accepted.positions()))
        .await
        .expect("order history runs");
    customer_id
}

/// Puts a product on sale and waits until reserve knows its price.
pub async fn create_product(platform: &Platform, name: &str, cents: i64) -> ProductId {
    let product_id = ProductId::generate();
    let create = ProductCommand::Create { product_id, name: name.into(), price: Money::cents(cents) };
    let accepted = within("a product", platform.products.send(create)).await.expect("product created");
    within("the catalog to see the product", platform.reserve.catalog().wait_for(&accepted.positions()))
        .await
        .expect("the catalog runs");
    product_id
}

/// Reserves through the reserve function; the reservation must succeed.
pub async fn reserve(platform: &Platform, request: Request) -> Reservation {
    within("a reservation", platform.reserve.reserve(request)).await.expect("the reservation succeeds")
}

/// A payment service provider that approves every charge, except for payments it was told to
/// decline or to fail on. It records every charge it receives.
#[derive(Debug, Default)]
pub struct ScriptedProvider {
    declined: Mutex<HashMap<PaymentId, String>>,
    failing: Mutex<HashSet<PaymentId>>,
    charges: Mutex<Vec<Charge>>,
}

impl ScriptedProvider {
    /// A provider that approves everything until told otherwise.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Declines this payment, for this reason.
    pub fn decline(&self, payment_id: PaymentId, reason: &str) {
        self.declined.lock().unwrap().insert(payment_id, reason.to_owned());
    }

    /// Fails (an unreachable provider) on every charge of this payment.
    pub fn fail(&self, payment_id: PaymentId) {
        self.failing.lock().unwrap().insert(payment_id);
    }

    /// Every charge received, retries included, in order.
    pub fn charges(&self) -> Vec<Charge> {
        self.charges.lock().unwrap().clone()
    }

    /// The charges received for one payment, retries included.
    pub fn charges_of(&self, payment_id: PaymentId) -> Vec<Charge> {
        self.charges().into_iter().filter(|c| c.payment_id == payment_id).collect()
    }
}

#[async_trait]
impl PaymentProvider for ScriptedProvider {
    async fn charge(&self, charge: &Charge) -> Result<ChargeDecision, ProviderError> {
        self.charges.lock().unwrap().push(charge.clone());
        if self.failing.lock().unwrap().contains(&charge.payment_id) {
            return Err(ProviderError("provider unreachable".into()));
        }
        Ok(match self.declined.lock().unwrap().get(&charge.payment_id) {
            Some(reason) => ChargeDecision::Declined { reason: reason.clone() },
            None => ChargeDecision::Approved,
        })
    }
}

/// Every partition of a topic.
pub async fn partitions_of(log: &dyn EventLog, topic: &str) -> Vec<TopicPartition> {
    let count = log.partition_count(topic).await.expect("the log answers").unwrap_or(0);
    (0..count).map(|partition| TopicPartition::new(topic, partition)).collect()
}

/// Every record of a topic, partition by partition, in offset order. Empty when the topic does
/// not exist.
pub async fn records_of(log: &dyn EventLog, topic: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for tp in partitions_of(log, topic).await {
        let mut offset = 0;
        loop {
            let batch = log.read(&tp, offset, 4096).await.expect("the log answers");
            let Some(last) = batch.last() else { break };
            offset = last.offset + 1;
            records.extend(batch);
        }
    }
    records
}

/// How many records a topic holds, over all its partitions.
pub async fn record_count(log: &dyn EventLog, topic: &str) -> u64 {
    let mut count = 0;
    for tp in partitions_of(log, topic).await {
        count += log.end_offset(&tp).await.expect("the log answers");
    }
    count
}

/// Every event of `E` on its topic, decoded; per entity in the order written.
pub async fn events_of<E: Event>(log: &dyn EventLog) -> Vec<Envelope<E>> {
    decoded(log).await
}

/// Every command of `C` on its topic, decoded; per entity in the order sent.
pub async fn commands_of<C: Command>(log: &dyn EventLog) -> Vec<Envelope<C>> {
    decoded(log).await
}

/// Every event of `E` on its topic, its personal data opened with the keys on the log (read as
/// erased for a forgotten subject).
pub async fn personal_events_of<E: Event>(log: Arc<dyn EventLog>) -> Vec<Envelope<E>> {
    let keys = KeyStore::on(log.clone());
    let mut events = Vec::new();
    for record in records_of(&*log, E::TOPIC).await {
        events
            .push(keys.decode::<E>(&record).await.unwrap_or_else(|e| panic!("a record on {} decodes: {e}", E::TOPIC)));
    }
    events
}

async fn decoded<M: Message>(log: &dyn EventLog) -> Vec<Envelope<M>> {
    records_of(log, M::TOPIC)
        .await
        .iter()
        .map(|record| codec::decode::<M>(record).unwrap_or_else(|e| panic!("a record on {} decodes: {e}", M::TOPIC)))
        .collect()
}

/// A header of a record as text.
pub fn header_text<'r>(record: &'r Record, name: &str) -> &'r str {
    let value = record.header(name).unwrap_or_else(|| {
        panic!("record {}/{}@{} has a `{name}` header", record.topic, record.partition, record.offset)
    });
    std::str::from_utf8(value).expect("the header is text")
}
