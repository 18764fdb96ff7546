//! The Apache Kafka log: the port on a real cluster, through rdkafka (librdkafka).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tramline::log::LogError> {
//! use tramline::log::EventLog;
//! use tramline::log::kafka::{KafkaConfig, KafkaLog};
//!
//! let log = KafkaLog::connect(KafkaConfig::new("127.0.0.1:9092").with_instance_id("ticketing-1")).await?;
//! log.create_topic(&tramline::log::TopicSpec::keep("payment.events", 6)).await?;
//! # Ok(()) }
//! ```
//!
//! # How the port maps onto Kafka
//!
//! | port | Kafka |
//! | --- | --- |
//! | [`create_topic`](EventLog::create_topic) | `CreateTopics` through the admin client; `Keep` sets `retention.ms=-1`, `Compact` sets `cleanup.policy=compact`, `CompactAndExpire` sets `cleanup.policy=compact,delete` and `retention.ms`; every topic takes event times ahead of the broker's clock (`message.timestamp.after.max.ms`); returns once the metadata shows the topic with a leader for every partition |
//! | [`append`](EventLog::append) | an idempotent producer (`enable.idempotence=true`, `partitioner=murmur2_random`: keyed records land where Java clients put them) |
//! | [`read`](EventLog::read) | a consumer without group, `assign`ed at the offset, `isolation.level=read_committed` |
//! | [`end_offset`](EventLog::end_offset) | the high watermark (`ListOffsets` with `read_uncommitted`) |
//! | [`committed`](EventLog::committed) | the group's committed offset (`OffsetFetch` with `require_stable`) |
//! | [`delete_before`](EventLog::delete_before) | `DeleteRecords` through the admin client (the partition's log start offset moves up) |
//! | [`delete_topic`](EventLog::delete_topic) | `DeleteTopics` through the admin client; returns once the metadata no longer shows the topic |
//! | [`delete_group`](EventLog::delete_group) | `DeleteGroups` through the admin client (refused while the group has members) |
//! | [`join`](EventLog::join) | a subscribed consumer (`read_committed`, no auto-commit) plus one transactional producer per member |
//! | [`GroupMember::commit`] | one transaction: the outputs, then `send_offsets_to_transaction` with the consumer's group metadata |
//!
//! # What differs from the memory log, and why
//!
//! - **`append` is not atomic across records.** Kafka has no all-or-nothing write outside a
//!   transaction. Every destination (topic, partition) is checked before anything is sent, so a
//!   missing topic or partition fails the whole batch with nothing written. A failure after that
//!   (broker down past `message.timeout.ms`, a record larger than the broker accepts) returns
//!   [`LogError::Backend`] naming the first failed record, how many of the batch were written
//!   and how many timed out: the written ones stay written (per partition a prefix of the
//!   batch's records, thanks to idempotence and ordering), and a timed-out one may have been
//!   written too (librdkafka cannot tell), so resending it can duplicate it. Use a group
//!   member's [`commit`](GroupMember::commit) when outputs must be atomic.
//! - **`read` may return fewer records than asked** before the end: it returns what is already
//!   fetched once it has at least one record, and stops at the high watermark seen when it
//!   started. It returns nothing only at or past the high watermark, or when everything from
//!   `offset` to the high watermark is transaction markers or records of aborted transactions
//!   (a `read_committed` reader skips those). So the restore loop
//!   `while offset < end { let page = read(offset); if page.is_empty() { break } ... }` with
//!   `end = end_offset()` terminates, and reads every committed record below `end`. When a
//!   transaction is still open below the high watermark (a previous owner that died), `read`
//!   waits for it to end (at most [`KafkaConfig::read_timeout`], then it fails naming the
//!   partition and its last stable offset): restoring only up to the last stable offset would
//!   miss that transaction's records if it commits.
//! - **Offsets are not dense**: transaction markers take an offset. Positions are still "the next
//!   offset to read", and a member's [`position`](GroupMember::position) is the offset after the
//!   last record it received.
//! - **Rebalances are the broker's** (eager by default, `partition.assignment.strategy` may pick
//!   `cooperative-sticky`): a member learns about one only when it polls, as in every Kafka client.
//!
//! # Threads
//!
//! librdkafka's calls block (transactions, offset look-ups, metadata), so none runs on the async
//! executor: the log's own calls go to tokio's blocking pool, and each group member owns one
//! thread that owns its consumer and its transactional producer (see `member.rs` for why).

mod config;
mod convert;
mod logs;
mod member;
mod reader;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

pub use self::config::{INSTANCE_ID_ENV, KafkaConfig, parse_setting, read_settings};
use self::convert::{DeliveryResult, backend, send_all, too_large};
use self::logs::ClientLogs;
use super::{Cleanup, EventLog, GroupMember, LogError, OutRecord, Record, StartFrom, TopicPartition, TopicSpec};
use crate::model::Position;

/// How many idle readers (consumers used by [`EventLog::read`]) the log keeps.
const IDLE_READERS: usize = 4;

/// How many groups' offset look-up consumers the log keeps.
const OFFSET_CONSUMERS: usize = 16;

/// The Kafka log. Cheap to clone: clones share the same clients.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// What the clones of a [`KafkaLog`] and its members share.
struct Inner {
    config: KafkaConfig,
    admin: AdminClient<ClientLogs>,
    /// The idempotent producer of [`EventLog::append`]; replaced after a fatal error.
    producer: Mutex<Producer>,
    /// Metadata and high watermarks (`read_uncommitted`, no group); renewed when it keeps failing.
    meta: Mutex<Meta>,
    /// Known partition counts. A topic's count never shrinks; a miss or a partition past the
    /// known count asks the cluster again.
    partitions: Mutex<HashMap<String, u32>>,
    /// Idle readers, each possibly positioned where the last read stopped.
    readers: Mutex<Vec<reader::Reader>>,
    /// Per partition, the last read that found only transaction markers or aborted records: from
    /// the offset it asked for to the position it reached. A reader that reads up to the end
    /// asks for the offset after its last record again and again, and the marker after that
    /// record would cost a fetch each time.
    skipped: Mutex<HashMap<TopicPartition, (u64, u64)>>,
    /// Consumers with a group id (never subscribed) that look up a group's committed offsets.
    offsets: Mutex<HashMap<String, Arc<PlainConsumer>>>,
    /// Per group, the transactional-id slots the members of this process hold (see
    /// [`member::transactional_id`]).
    slots: Mutex<HashMap<String, BTreeSet<u32>>>,
}

/// The metadata client, and since when its calls have been failing.
struct Meta {
    client: Arc<PlainConsumer>,
    failing_since: Option<Instant>,
}

/// How long the metadata client may keep failing before it is replaced: after a broker was
/// paused (SIGSTOP) and resumed, librdkafka kept answering one client's every call with
/// "UnknownPartition" and "AllBrokersDown" for good while new clients read the partitions.
const META_RENEW_AFTER: Duration = Duration::from_secs(30);

/// The log's producers and its consumers outside groups, with librdkafka's errors told through
/// [`logs`].
type Producer = FutureProducer<ClientLogs>;
type PlainConsumer = BaseConsumer<ClientLogs>;

/// Locks a mutex; a panic while holding one of the log's locks leaves nothing half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The settings of one client: bootstrap, the log's `tunables` (which the user's pass-through
/// settings may override), the user's settings, then the `enforced` settings the log's guarantees
/// rest on.
fn client_config(
    config: &KafkaConfig,
    role: &str,
    tunables: &[(&str, &str)],
    enforced: &[(&str, &str)],
) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap_servers);
    client.set("client.id", format!("tramline-{}-{role}", config.instance_id));
    // Latency: Nagle's algorithm with delayed ACKs stalls small requests by up to 40 ms.
    client.set("socket.nagle.disable", "true");
    for (key, value) in tunables {
        client.set(*key, *value);
    }
    for (key, value) in &config.client {
        client.set(key, value);
    }
    for (key, value) in enforced {
        client.set(*key, *value);
    }
    client
}

/// What is wrong with one bootstrap server (`HOST:PORT`, `[::1]:PORT`, an optional
/// `PROTOCOL://` before), if anything. Without a port librdkafka would pick 9092 in silence.
fn server_problem(server: &str) -> Option<String> {
    let server = server.trim();
    let address = server.split_once("://").map_or(server, |(_, address)| address);
    match address.rsplit_once(':') {
        _ if server.is_empty() => Some("an entry is empty".into()),
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => match port.parse::<u16>() {
            Ok(port) if port > 0 => None,
            _ => Some(format!("`{server}` has no port number from 1 to 65535")),
        },
        _ => Some(format!("`{server}` names no port")),
    }
}

/// Why a client setting is tramline's to set, if it is: the log's guarantees rest on it, or it
/// is given otherwise. Set by the user, it was overridden in silence or broke a client.
fn reserved(key: &str) -> Option<(&str, &'static str)> {
    let why = match key {
        "bootstrap.servers" | "metadata.broker.list" => {
            "give the brokers to KafkaConfig::new, `--brokers` in the binaries"
        }
        "transactional.id" => "each member's producer has its own, made of the instance id",
        "transaction.timeout.ms" => "KafkaConfig::with_transaction_timeout sets it",
        "group.id" => "each processor is a consumer group of its own",
        "enable.idempotence" | "isolation.level" | "enable.auto.commit" | "enable.auto.offset.store" => {
            "exactly-once rests on it"
        }
        "partitioner" => "keys go to the partition Kafka's Java client would pick",
        "auto.offset.reset" | "enable.partition.eof" => "each processor says where it starts",
        _ => return None,
    };
    Some((key, why))
}

fn millis(duration: Duration) -> String {
    duration.as_millis().max(1).to_string()
}

/// The error for a client that cannot be created (a bad setting, most likely).
fn client_error(config: &KafkaConfig, role: &str, error: KafkaError) -> LogError {
    LogError::Backend(format!(
        "kafka: cannot create the {role} client for `{}`: {error} (check the client settings)",
        config.bootstrap_servers
    ))
}

impl KafkaLog {
    /// Connects to the cluster at [`KafkaConfig::bootstrap_servers`] and checks that it answers
    /// (within [`KafkaConfig::connect_timeout`]); fails with a [`LogError::Backend`] that names
    /// the address otherwise.
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        tokio::task::spawn_blocking(move || Self::connect_blocking(config))
            .await
            .map_err(|e| LogError::Backend(format!("kafka: connecting failed: {e}")))?
    }

    /// [`connect`](Self::connect), blocking the calling thread.
    pub fn connect_blocking(config: KafkaConfig) -> Result<Self, LogError> {
        if let Some(problem) = config.bootstrap_servers.split(',').find_map(server_problem) {
            return Err(LogError::Backend(format!(
                "kafka: bootstrap servers `{}`: {problem}; give HOST:PORT[,HOST:PORT...]",
                config.bootstrap_servers
            )));
        }
        if let Some((key, why)) = config.client.iter().find_map(|(key, _)| reserved(key)) {
            return Err(LogError::Backend(format!(
                "kafka: the client setting `{key}` is tramline's to set ({why}); remove it"
            )));
        }
        let admin: AdminClient<ClientLogs> = client_config(&config, "admin", &[], &[])
            .create_with_context(ClientLogs)
            .map_err(|e| client_error(&config, "admin", e))?;
        let meta = Self::meta_client(&config)?;
        if let Err(error) = meta.fetch_metadata(None, config.connect_timeout) {
            return Err(LogError::Backend(format!(
                "kafka: no broker answered at `{}` within {:?} ({error}); is the broker running? \
                 (a local one for development and tests starts with `scripts/kafka start`)",
                config.bootstrap_servers, config.connect_timeout
            )));
        }
        let producer = Self::append_producer(&config)?;
        Ok(KafkaLog {
            inner: Arc::new(Inner {
                config,
                admin,
                producer: Mutex::new(producer),
                meta: Mutex::new(Meta { client: Arc::new(meta), failing_since: None }),
                partitions: Mutex::default(),
                readers: Mutex::default(),
                skipped: Mutex::default(),
                offsets: Mutex::default(),
                slots: Mutex::default(),
            }),
        })
    }

    /// The settings the log was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The names of the cluster's topics, Kafka's internal ones (`__consumer_offsets`, ...)
    /// aside, in no particular order.
    pub async fn topics(&self) -> Result<Vec<String>, LogError> {
        self.blocking(|inner| {
            let metadata = inner
                .with_meta(|meta| meta.fetch_metadata(None, inner.config.request_timeout))
                .map_err(|e| backend(format_args!("metadata of the topics"), e))?;
            Ok(metadata
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|name| !name.starts_with("__"))
                .collect())
        })
        .await
    }

    fn meta_client(config: &KafkaConfig) -> Result<PlainConsumer, LogError> {
        client_config(
            config,
            "meta",
            &[],
            &[
                ("isolation.level", "read_uncommitted"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
            ],
        )
        .create_with_context(ClientLogs)
        .map_err(|e| client_error(config, "metadata", e))
    }

    fn append_producer(config: &KafkaConfig) -> Result<Producer, LogError> {
        client_config(
            config,
            "producer",
            &[("linger.ms", "5"), ("message.timeout.ms", &millis(config.request_timeout))],
            &[("enable.idempotence", "true"), ("partitioner", "murmur2_random")],
        )
        .create_with_context(ClientLogs)
        .map_err(|e| client_error(config, "producer", e))
    }

    /// Runs `f` on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| LogError::Backend(format!("kafka: a blocking call failed: {e}")))?
    }

    /// Checks every record's destination, asking the cluster only about topics not known yet.
    async fn check_destinations(&self, records: &[OutRecord]) -> Result<(), LogError> {
        let mut unknown: Vec<String> = Vec::new();
        {
            let known = lock(&self.inner.partitions);
            for record in records {
                let fits = known.get(&*record.topic).is_some_and(|&count| record.partition.is_none_or(|p| p < count));
                if !fits && !unknown.iter().any(|t| **t == *record.topic) {
                    unknown.push(record.topic.to_string());
                }
            }
        }
        if !unknown.is_empty() {
            self.blocking(move |inner| {
                for topic in &unknown {
                    inner.fetch_partitions(topic)?;
                }
                Ok(())
            })
            .await?;
        }
        let known = lock(&self.inner.partitions);
        for record in records {
            check(&record.topic, record.partition, known.get(&*record.topic).copied())?;
        }
        Ok(())
    }

    async fn check_partition(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let cached = lock(&self.inner.partitions).get(&*tp.topic).copied();
        if cached.is_some_and(|count| tp.partition < count) {
            return Ok(());
        }
        let topic = tp.topic.to_string();
        let count = self.blocking(move |inner| inner.fetch_partitions(&topic)).await?;
        check(&tp.topic, Some(tp.partition), count)
    }
}

/// Runs a blocking librdkafka call (given the time left) until it succeeds, fails for good, or
/// `timeout` is over; retries what a partition's leadership in motion answers (right after the
/// topic's creation, or during a leader change).
fn retry<T>(timeout: Duration, mut call: impl FnMut(Duration) -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(5);
    loop {
        match call(deadline.saturating_duration_since(Instant::now())) {
            Err(error) if is_transient(&error) && Instant::now() + backoff < deadline => {
                tracing::debug!(%error, "kafka: retried");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// Whether a librdkafka error is one that goes away by itself (a leader moving or being elected).
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                // The client's metadata lacks the partition for a moment (a broker restarting).
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::FencedLeaderEpoch
                | RDKafkaErrorCode::OffsetNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
        )
    )
}

/// Whether `partition` (or any, when `None`) of `topic` exists, given its partition `count`.
fn check(topic: &str, partition: Option<u32>, count: Option<u32>) -> Result<(), LogError> {
    let count = count.ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?;
    match partition {
        Some(partition) if partition >= count => {
            Err(LogError::UnknownPartition { topic: topic.to_owned(), partition, partitions: count })
        }
        _ => Ok(()),
    }
}

impl Inner {
    /// The partition count of `topic` from the cluster's metadata (`None`: no such topic), and
    /// remembers it.
    fn fetch_partitions(&self, topic: &str) -> Result<Option<u32>, LogError> {
        let count = self.metadata(topic, false)?;
        if let Some(count) = count {
            lock(&self.partitions).insert(topic.to_owned(), count);
        }
        Ok(count)
    }

    /// The partition count of `topic`; with `ready`, only once every partition has a leader.
    fn metadata(&self, topic: &str, ready: bool) -> Result<Option<u32>, LogError> {
        let metadata = self
            .with_meta(|meta| meta.fetch_metadata(Some(topic), self.config.request_timeout))
            .map_err(|e| backend(format_args!("metadata of topic `{topic}`"), e))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if let Some(error) = found.error() {
            let code = RDKafkaErrorCode::from(error);
            return match code {
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Ok(None),
                RDKafkaErrorCode::LeaderNotAvailable if ready => Ok(None),
                RDKafkaErrorCode::LeaderNotAvailable if !found.partitions().is_empty() => {
                    Ok(Some(found.partitions().len() as u32))
                }
                _ => Err(backend(format_args!("metadata of topic `{topic}`"), code)),
            };
        }
        let partitions = found.partitions();
        if partitions.is_empty() || (ready && partitions.iter().any(|p| p.leader() < 0 || p.error().is_some())) {
            return Ok(None);
        }
        Ok(Some(partitions.len() as u32))
    }

    /// Checks one destination, asking the cluster when the cache does not know enough.
    fn check_destination(&self, topic: &str, partition: Option<u32>) -> Result<(), LogError> {
        let cached = lock(&self.partitions).get(topic).copied();
        if cached.is_some_and(|count| partition.is_none_or(|p| p < count)) {
            return Ok(());
        }
        check(topic, partition, self.fetch_partitions(topic)?)
    }

    /// Runs `call` on the metadata client, after serving the events librdkafka queues for it
    /// (errors while a broker is away), which nothing else polls. A client that has kept failing
    /// for [`META_RENEW_AFTER`] is replaced.
    fn with_meta<T>(&self, call: impl FnOnce(&PlainConsumer) -> KafkaResult<T>) -> KafkaResult<T> {
        let client = lock(&self.meta).client.clone();
        while let Some(event) = client.poll(Duration::ZERO) {
            if let Err(error) = event {
                tracing::debug!(%error, "kafka: metadata client");
            }
        }
        let result = call(&client);
        let mut meta = lock(&self.meta);
        if !Arc::ptr_eq(&meta.client, &client) {
            return result; // replaced meanwhile
        }
        match (&result, meta.failing_since) {
            (Ok(_), _) => meta.failing_since = None,
            (Err(_), None) => meta.failing_since = Some(Instant::now()),
            (Err(error), Some(since)) if since.elapsed() >= META_RENEW_AFTER => {
                match KafkaLog::meta_client(&self.config) {
                    Ok(fresh) => {
                        tracing::warn!(%error, failing_for = ?since.elapsed(), "kafka: the metadata client keeps failing; it is re-created");
                        *meta = Meta { client: Arc::new(fresh), failing_since: None };
                    }
                    Err(error) => tracing::warn!(%error, "kafka: the metadata client keeps failing; no new one yet"),
                }
            }
            (Err(_), Some(_)) => {}
        }
        result
    }

    /// The high watermark of a partition.
    fn high_watermark(&self, tp: &TopicPartition) -> Result<u64, LogError> {
        let (_, high) = self
            .with_meta(|meta| {
                retry(self.config.request_timeout, |timeout| {
                    meta.fetch_watermarks(&tp.topic, tp.partition as i32, timeout)
                })
            })
            .map_err(|e| backend(format_args!("end offset of {tp}"), e))?;
        Ok(high.max(0) as u64)
    }

    /// The offset `group` committed for `tp`, if any.
    fn committed_offset(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let consumer = self.offsets_consumer(group)?;
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(&tp.topic, tp.partition as i32);
        let found = retry(self.config.request_timeout, |timeout| consumer.committed_offsets(tpl.clone(), timeout))
            .map_err(|e| backend(format_args!("committed offset of group `{group}` on {tp}"), e))?;
        // Nothing is ever fetched by this consumer; serve what librdkafka queued (errors, logs).
        let _ = consumer.poll(Duration::ZERO);
        let offset = found.find_partition(&tp.topic, tp.partition as i32).map(|e| e.offset());
        Ok(match offset {
            Some(Offset::Offset(offset)) if offset >= 0 => Some(offset as u64),
            _ => None,
        })
    }

    fn offsets_consumer(&self, group: &str) -> Result<Arc<PlainConsumer>, LogError> {
        if let Some(consumer) = lock(&self.offsets).get(group) {
            return Ok(consumer.clone());
        }
        let consumer: PlainConsumer = client_config(
            &self.config,
            "offsets",
            &[],
            &[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // Makes the offset look-up wait for pending transactional commits (require_stable).
                ("isolation.level", "read_committed"),
            ],
        )
        .create_with_context(ClientLogs)
        .map_err(|e| client_error(&self.config, "offsets", e))?;
        let consumer = Arc::new(consumer);
        let mut offsets = lock(&self.offsets);
        if offsets.len() >= OFFSET_CONSUMERS {
            offsets.clear();
        }
        offsets.insert(group.to_owned(), consumer.clone());
        Ok(consumer)
    }

    /// A free transactional-id slot for a new member of `group` in this process: the lowest,
    /// so a restarted process's members take the same ids as before.
    fn claim_slot(&self, group: &str) -> u32 {
        let mut slots = lock(&self.slots);
        let taken = slots.entry(group.to_owned()).or_default();
        let slot = (0..).find(|slot| !taken.contains(slot)).expect("a free slot");
        taken.insert(slot);
        slot
    }

    fn release_slot(&self, group: &str, slot: u32) {
        let mut slots = lock(&self.slots);
        if let Some(taken) = slots.get_mut(group) {
            taken.remove(&slot);
            if taken.is_empty() {
                slots.remove(group);
            }
        }
    }

    /// The append producer, replaced first when a fatal error made it unusable.
    fn append_producer(&self) -> Result<Producer, LogError> {
        let mut producer = lock(&self.producer);
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::warn!(?code, reason, "kafka: the append producer failed for good; creating a new one");
            *producer = KafkaLog::append_producer(&self.config)?;
        }
        Ok(producer.clone())
    }

    /// Replaces the append producer `stale` after one of its deliveries timed out: after a broker
    /// restart librdkafka (2.12) can keep a partition without a leader for good
    /// (confluentinc/librdkafka#5430), and a new client starts from fresh metadata. Appends still
    /// in flight on the old producer finish on it.
    fn retire_append_producer(&self, stale: &Producer) {
        let mut producer = lock(&self.producer);
        if producer.client().native_ptr() != stale.client().native_ptr() {
            return; // another append replaced it already
        }
        match KafkaLog::append_producer(&self.config) {
            Ok(fresh) => {
                tracing::warn!("kafka: a record to append timed out; the append producer is re-created");
                *producer = fresh;
            }
            Err(error) => tracing::warn!(%error, "kafka: a record to append timed out; no new producer yet"),
        }
    }
}

/// Whether the broker refused the record as invalid (a record without a key for a compacted
/// topic).
fn invalid_record(result: &DeliveryResult) -> bool {
    matches!(result, Ok(Err((error, _))) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidRecord))
}

/// A record's position from its delivery report.
fn delivered(record: &OutRecord, index: usize, count: usize, result: DeliveryResult) -> Result<Position, String> {
    match result {
        Ok(Ok(delivery)) => Ok(Position {
            topic: record.topic.clone(),
            partition: delivery.partition as u32,
            offset: delivery.offset as u64,
        }),
        Ok(Err((error, _))) => Err(format!("record {index} of {count} (to `{}`) failed: {error}", record.topic)),
        Err(_) => Err(format!("record {index} of {count} (to `{}`): the producer was closed", record.topic)),
    }
}

/// Options of an admin call that waits at most `timeout`, for the broker and for the operation.
fn admin_options(timeout: Duration) -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout))
}

impl KafkaLog {
    /// Asks the metadata for `topic`'s partition count (with `ready`, only once every partition
    /// has a leader) until `done` takes the answer, or the request timeout is over (`None`).
    async fn metadata_until(
        &self,
        topic: &str,
        ready: bool,
        done: impl Fn(Option<u32>) -> bool,
    ) -> Result<Option<Option<u32>>, LogError> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let name = topic.to_owned();
            let count = self.blocking(move |inner| inner.metadata(&name, ready)).await?;
            if done(count) {
                return Ok(Some(count));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a topic made before (by an earlier run, an operator, auto-creation) discards
    /// records as `spec` asks: a source of truth with the broker's default retention would lose
    /// its events after a week.
    async fn check_cleanup(&self, spec: &TopicSpec, options: &AdminOptions) -> Result<(), LogError> {
        let described = self
            .inner
            .admin
            .describe_configs([&ResourceSpecifier::Topic(&spec.name)], options)
            .await
            .map_err(|e| backend(format_args!("describe topic `{}`", spec.name), e))?;
        let config = match described.into_iter().next() {
            Some(Ok(config)) => config,
            Some(Err(code)) => return Err(backend(format_args!("describe topic `{}`", spec.name), code)),
            None => return Err(LogError::Backend(format!("kafka: describe topic `{}`: no answer", spec.name))),
        };
        let value = |name: &str| config.get(name).and_then(|entry| entry.value.clone()).unwrap_or_default();
        let (policy, retention_ms, retention_bytes) =
            (value("cleanup.policy"), value("retention.ms"), value("retention.bytes"));
        let policies: BTreeSet<&str> = policy.split(',').map(str::trim).collect();
        let fits = match spec.cleanup {
            Cleanup::Keep => policy == "delete" && retention_ms == "-1" && retention_bytes == "-1",
            Cleanup::Compact => policy == "compact",
            // The retention is the operator's to change.
            Cleanup::CompactAndExpire { .. } => policies == BTreeSet::from(["compact", "delete"]),
        };
        match fits {
            true => Ok(()),
            false => Err(LogError::CleanupMismatch {
                topic: spec.name.clone(),
                existing: format!(
                    "cleanup.policy={policy}, retention.ms={retention_ms}, retention.bytes={retention_bytes}"
                ),
                requested: spec.cleanup,
            }),
        }
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        let invalid = |problem: String| LogError::InvalidTopic { topic: spec.name.to_string(), problem };
        spec.check_partitions(i32::MAX as u32, "Kafka")?;
        // Kafka's own rule, said with the name (the broker answers a bare "Invalid topic").
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if spec.name.len() > 249 || !spec.name.chars().all(legal) || matches!(&*spec.name, "" | "." | "..") {
            return Err(invalid(format!(
                "its name has {} characters, and Kafka takes 1 to 249 ASCII letters, digits, `.`, `_` and `-` (a \
                 long namespace or query name?)",
                spec.name.chars().count()
            )));
        }
        let topic = NewTopic::new(
            &spec.name,
            spec.partitions as i32,
            TopicReplication::Fixed(self.inner.config.replication_factor),
        );
        let compaction_lag = self.inner.config.max_compaction_lag.as_millis().to_string();
        let retention_ms = match spec.cleanup {
            Cleanup::CompactAndExpire { retention } => retention.as_millis().min(i64::MAX as u128).to_string(),
            _ => String::new(),
        };
        let topic = match spec.cleanup {
            // The source of truth is kept forever.
            Cleanup::Keep => topic.set("retention.ms", "-1"),
            // Replaced records (a deleted key among them) are gone within a known time.
            Cleanup::Compact => topic.set("cleanup.policy", "compact").set("max.compaction.lag.ms", &compaction_lag),
            Cleanup::CompactAndExpire { .. } => topic
                .set("cleanup.policy", "compact,delete")
                .set("retention.ms", &retention_ms)
                .set("max.compaction.lag.ms", &compaction_lag),
        };
        // A record's timestamp is its event time, which may lie ahead of the broker's clock (a
        // simulation, a replay, a producer's clock): Kafka 4 refuses those more than an hour
        // ahead by default.
        let topic = topic.set("message.timestamp.after.max.ms", "9223372036854775807");
        let timeout = self.inner.config.request_timeout;
        let options = admin_options(timeout);
        let results = self
            .inner
            .admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| backend(format_args!("create topic `{}`", spec.name), e))?;
        let mut existed = false;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existed = true,
                Err((name, code)) => return Err(backend(format_args!("create topic `{name}`"), code)),
            }
        }
        // Created now or before: wait until the metadata shows it, then compare the counts.
        let Some(Some(existing)) = self.metadata_until(&spec.name, true, |count| count.is_some()).await? else {
            return Err(LogError::Backend(format!(
                "kafka: topic `{}` was created but the metadata does not show it ready after {timeout:?}",
                spec.name
            )));
        };
        lock(&self.inner.partitions).insert(spec.name.clone(), existing);
        if existing != spec.partitions {
            return Err(LogError::PartitionMismatch { topic: spec.name.clone(), existing, requested: spec.partitions });
        }
        match existed {
            true => self.check_cleanup(spec, &options).await,
            false => Ok(()),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
        let topic = topic.to_owned();
        self.blocking(move |inner| inner.fetch_partitions(&topic)).await
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.check_destinations(&records).await?;
        let producer = self.inner.append_producer()?;
        let count = records.len();
        let (results, refused) = send_all(&producer, &records).await;
        let timed_out = |result: &Option<DeliveryResult>| matches!(result, Some(Ok(Err((error, _)))) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut));
        // librdkafka cannot tell whether a timed-out record reached the log ("possibly persisted").
        let unknown = results.iter().filter(|result| timed_out(result)).count();
        if unknown > 0 {
            self.inner.retire_append_producer(&producer);
            // Its last handle may be this one, and closing a client blocks: not on the executor.
            tokio::task::spawn_blocking(move || drop(producer));
        }
        let size_refused = |record: &OutRecord, error: &KafkaError| {
            (error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge))
                .then(|| too_large(record, error))
        };
        let mut too_large_refused = refused.as_ref().and_then(|(index, error)| size_refused(&records[*index], error));
        let refused = refused.map(|(index, error)| {
            format!("record {index} of {count} (to `{}`) was refused: {error}", records[index].topic)
        });
        let mut positions = Vec::with_capacity(count);
        let mut failure = refused;
        let mut written = 0;
        let mut keyless_refused = None;
        for (index, (record, result)) in records.iter().zip(results).enumerate() {
            let Some(result) = result else { continue };
            if record.key.is_none() && invalid_record(&result) {
                keyless_refused.get_or_insert_with(|| record.topic.to_string());
            }
            if let Ok(Err((error, _))) = &result
                && too_large_refused.is_none()
            {
                too_large_refused = size_refused(record, error);
            }
            match delivered(record, index, count, result) {
                Ok(position) => {
                    written += 1;
                    positions.push(position);
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match (failure, keyless_refused, too_large_refused) {
            (None, ..) => Ok(positions),
            // Records refused for good with nothing written (a compacted topic's broker refuses a
            // record without a key): said as the other logs say it.
            (Some(_), Some(topic), _) if written == 0 && unknown == 0 => Err(LogError::KeyRequired { topic }),
            // One too large stays too large: said so, even after others were written (an
            // append is not atomic on Kafka), so that nobody sends the batch again for ever.
            (Some(_), _, Some(LogError::TooLarge { topic, mut reason })) if unknown == 0 => {
                if written > 0 {
                    reason.push_str(&format!("; {written} of the batch's {count} records were written"));
                }
                Err(LogError::TooLarge { topic, reason })
            }
            (Some(failure), ..) => {
                let unknown = match unknown {
                    0 => String::new(),
                    n => format!(", {n} timed out and may or may not have been written"),
                };
                Err(LogError::Backend(format!(
                    "kafka: append: {failure}; {written} of the batch's {count} records were written{unknown} \
                     (outside a transaction Kafka cannot take them back)"
                )))
            }
        }
    }

    async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        self.check_partition(partition).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let tp = partition.clone();
        self.blocking(move |inner| inner.read(&tp, offset, max)).await
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError> {
        self.check_partition(partition).await?;
        let tp = partition.clone();
        self.blocking(move |inner| inner.high_watermark(&tp)).await
    }

    async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError> {
        let (group, tp) = (group.to_owned(), partition.clone());
        self.blocking(move |inner| inner.committed_offset(&group, &tp)).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let timeout = self.inner.config.request_timeout;
        let options = admin_options(timeout);
        let results = (self.inner.admin.delete_topics(&[topic], &options).await)
            .map_err(|e| backend(format_args!("delete topic `{topic}`"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((_, code)) => return Err(backend(format_args!("delete topic `{topic}`"), code)),
            }
        }
        lock(&self.inner.partitions).remove(topic);
        // Gone once the metadata no longer shows it: a topic made again under the name meanwhile
        // would be refused as one being deleted.
        match self.metadata_until(topic, false, |count| count.is_none()).await? {
            Some(_) => Ok(()),
            None => Err(LogError::Backend(format!(
                "kafka: topic `{topic}` was deleted but the metadata still shows it after {timeout:?}"
            ))),
        }
    }

    async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError> {
        let end = self.end_offset(partition).await?;
        if offset > end {
            let (topic, partition) = (partition.topic.to_string(), partition.partition);
            return Err(LogError::OffsetPastEnd { topic, partition, offset, end });
        }
        let what = format!("delete the records of {partition} below offset {offset}");
        let mut below = TopicPartitionList::new();
        below
            .add_partition_offset(&partition.topic, partition.partition as i32, Offset::Offset(offset as i64))
            .map_err(|e| backend(&what, e))?;
        let timeout = self.inner.config.request_timeout;
        let options = admin_options(timeout);
        let deleted = self.inner.admin.delete_records(&below, &options).await.map_err(|e| backend(&what, e))?;
        match deleted.elements().iter().find_map(|element| element.error().err()) {
            Some(error) => Err(backend(&what, error)),
            None => Ok(()),
        }
    }

    fn instance_id(&self) -> Option<&str> {
        Some(&self.inner.config.instance_id)
    }

    async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        lock(&self.inner.offsets).remove(group);
        // Housekeeping, run as an app stops: a broker away does not hold the stop up for long.
        let timeout = self.inner.config.request_timeout.min(Duration::from_secs(5));
        let options = admin_options(timeout);
        let results = (self.inner.admin.delete_groups(&[group], &options).await)
            .map_err(|e| backend(format_args!("delete group `{group}`"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((_, code)) => return Err(backend(format_args!("delete group `{group}`"), code)),
            }
        }
        Ok(())
    }

    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        super::check_subscription(group, topics)?;
        for topic in topics {
            if self.partition_count(topic).await?.is_none() {
                return Err(LogError::UnknownTopic((*topic).to_owned()));
            }
        }
        let topics = topics.iter().map(|t| Arc::from(*t)).collect();
        let member = member::join(self.inner.clone(), group, topics, start).await?;
        Ok(Box::new(member))
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        // Destroying librdkafka clients blocks (a flush, thread joins): when this is the last
        // handle (members hold one too), the clients go on tokio's blocking pool.
        if Arc::strong_count(&self.inner) == 1
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let inner = self.inner.clone();
            runtime.spawn_blocking(move || drop(inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_name_a_host_and_a_port() {
        for good in ["127.0.0.1:9092", "a:1,b:2", "[::1]:9092", "SASL_SSL://broker:9093", " a:9092 "] {
            assert_eq!(good.split(',').find_map(server_problem), None, "{good}");
        }
        for (bad, problem) in [
            ("127.0.0.1", "names no port"),
            ("127.0.0.1:99999", "no port number"),
            ("host:0", "no port number"),
            ("a:1,,b:2", "empty"),
            (":9092", "names no port"),
            ("::1", "names no port"),
        ] {
            let found = bad.split(',').find_map(server_problem).unwrap_or_else(|| panic!("`{bad}` was accepted"));
            assert!(found.contains(problem), "{bad}: {found}");
        }
    }

    #[test]
    fn a_client_setting_the_log_rests_on_is_refused_before_connecting() {
        for (key, value) in [
            ("bootstrap.servers", "127.0.0.1:19999"),
            ("transactional.id", "mine"),
            ("isolation.level", "read_uncommitted"),
        ] {
            let config = KafkaConfig::new("127.0.0.1:1").set(key, value);
            let Err(error) = KafkaLog::connect_blocking(config) else { panic!("`{key}` was accepted") };
            let message = error.to_string();
            assert!(message.contains(&format!("`{key}` is tramline's to set")), "{message}");
        }
    }
}
