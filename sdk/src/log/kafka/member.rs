//! A member of a consumer group on Kafka: a subscribed consumer and one transactional producer,
//! both owned by one thread of the member's own.
//!
//! # Why a thread per member
//!
//! Every librdkafka call of a member blocks: `poll` waits for records, the rebalance callback
//! looks up committed offsets, and the transaction calls wait for the transaction coordinator.
//! They must not run on the async executor. A dedicated thread that owns the consumer and the
//! producer, fed by a channel, is chosen over `spawn_blocking` per call because:
//!
//! - librdkafka runs the rebalance callback inside `poll`, on the polling thread: with one owner
//!   thread, a rebalance can never interleave with a transaction, so "revoke while a transaction is
//!   open" cannot happen inside the process (the broker still fences a member whose generation
//!   is stale);
//! - a `poll` whose future is dropped (a `select!`, a timeout) must not lose the records it
//!   fetched: the thread leaves them in a mailbox that the next `poll` empties first, and it
//!   notices within [`SLICE`] that nobody waits any more, so a following `commit` or `leave`
//!   is not stuck behind a long poll;
//! - the consumer's positions travel in the mailbox with the records fetched before them, so
//!   [`GroupMember::position`] never runs ahead of what was delivered;
//! - the cost is one parked thread per member (a process runs one member per processor).
//!
//! # Reading ahead
//!
//! Turning librdkafka's messages into records (their headers parsed, their bytes copied) costs
//! about as much as the application's decoding. So once a poll has handed out records, the
//! thread goes on taking what librdkafka has fetched (every millisecond, without waiting, up to
//! the poll's `max`) until the next command comes: the next poll starts with those, and the
//! conversion overlaps with the application's work on the batch before. A commit or rewind
//! meanwhile is served at once; a rewind drops what was read ahead, and a rebalance read ahead
//! stops the reading and fences a commit until a poll has handed it out. While the
//! application polls nothing for longer (a long batch, a restore), the thread still polls
//! librdkafka once a second ([`KEEP_ALIVE`]): a consumer that does not poll for
//! `max.poll.interval.ms` is put out of its group, and the batch's commit would fail.
//!
//! # Rebalances
//!
//! The consumer's context implements the rebalance callback. On assignment it looks up the
//! group's committed offsets and, for partitions without one, the start ([`StartFrom`]) as a
//! concrete offset (`ListOffsets` earliest or latest; with `read_committed` "latest" is the last
//! stable offset), then assigns with those explicit offsets, so [`GroupMember::position`] is known
//! at once and a [`rewind`](GroupMember::rewind) can go back to where the member started. On
//! revocation it unassigns. Both are recorded and handed to the application by the next `poll`,
//! before any record; records fetched before a revocation are dropped (the new owner reads them
//! again from the committed position). The default assignors are eager (`range,roundrobin`); the
//! cooperative protocol works too (incremental assign and unassign).
//!
//! # Transactions and fencing
//!
//! [`GroupMember::commit`] is one transaction: `begin_transaction`, every output, then
//! `send_offsets_to_transaction` with the consumer's current group metadata, `commit_transaction`.
//! The returned positions come from the delivery reports. Before the transaction begins, the
//! write is checked: every position's partition must be assigned to this member, as the
//! application last saw it, with no rebalance pending in the mailbox (otherwise
//! [`LogError::Fenced`]), and every output's topic and partition must exist
//! ([`LogError::UnknownTopic`], [`LogError::UnknownPartition`]): a failed check writes nothing.
//!
//! - The broker fences a member whose generation is stale: `send_offsets_to_transaction` fails
//!   (`ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `REBALANCE_IN_PROGRESS`, `FENCED_INSTANCE_ID`);
//!   the transaction is aborted and the commit returns [`LogError::Fenced`].
//! - The transactional id is `<group>.<instance id>` (a second member of the same group in the same
//!   process gets `<group>.<instance id>#1`, and so on), stable across restarts. A newer producer
//!   with the same id fences this one (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`, or any fatal
//!   error): the producer is dropped, the commit returns [`LogError::Fenced`], and the next commit
//!   creates a new producer (`init_transactions`). It is re-created lazily rather than at once, so
//!   a fenced zombie that never writes again does not fence its successor in turn.
//! - Any other failure inside the transaction (a record the broker refuses, a timeout) aborts it
//!   and returns [`LogError::Backend`] ([`LogError::KeyRequired`] for a keyless record a compacted
//!   topic refused): nothing of the write is visible to `read_committed`
//!   readers, and the runtime rewinds and processes the batch again. The producer is re-created
//!   too: after a broker restart, librdkafka (2.12) can keep a partition without a leader for good
//!   (confluentinc/librdkafka#5430), so every later write to it would time out; a new client
//!   starts from fresh metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use tokio::sync::oneshot;

use super::convert::{RecordBatch, backend, send_all, too_large};
use super::logs::{ClientLogs, TELL_EVERY, Throttle};
use super::{Inner, Producer, client_config, client_error, lock, millis, retry};
use crate::log::{GroupMember, LogError, OutRecord, Polled, StartFrom, TopicPartition};
use crate::model::Position;

/// How long the member's thread waits in one librdkafka poll before it checks whether the
/// caller still waits.
const SLICE: Duration = Duration::from_millis(100);

/// How often the member's thread takes what librdkafka has fetched while it reads ahead.
const READ_AHEAD_TICK: Duration = Duration::from_millis(1);

/// How often the member's thread polls librdkafka while the application polls nothing (a long
/// batch, a restore): a consumer that does not poll for `max.poll.interval.ms` (5 minutes by
/// default, 6 s at the least) is put out of its group, and the batch's commit would fail and be
/// done again, forever if every attempt takes as long.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The transactional id of the member in `slot` of `group` on the instance `instance`.
pub(super) fn transactional_id(group: &str, instance: &str, slot: u32) -> String {
    match slot {
        0 => format!("{group}.{instance}"),
        n => format!("{group}.{instance}#{n}"),
    }
}

/// Joins `group`: starts the member's thread, which creates the consumer (subscribed to
/// `topics`) and the transactional producer (`init_transactions` aborts what a previous
/// incarnation with the same transactional id left open).
pub(super) async fn join(
    inner: Arc<Inner>,
    group: &str,
    topics: Vec<Arc<str>>,
    start: StartFrom,
) -> Result<KafkaMember, LogError> {
    let (commands, receiver) = mpsc::channel();
    let (ready, started) = oneshot::channel();
    let mailbox = Arc::new(Mutex::new(None));
    let slot = inner.claim_slot(group);
    let setup = Setup { inner: inner.clone(), group: group.to_owned(), topics, start, slot, mailbox: mailbox.clone() };
    let spawned = std::thread::Builder::new().name(format!("kafka-{group}")).spawn(move || {
        let worker = match Worker::new(setup) {
            Ok(worker) => worker,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        if ready.send(Ok(())).is_ok() {
            worker.run(receiver);
        }
    });
    if let Err(error) = spawned {
        inner.release_slot(group, slot);
        return Err(LogError::Backend(format!("kafka: group `{group}`: cannot start the member's thread: {error}")));
    }
    match started.await {
        Ok(Ok(())) => Ok(KafkaMember {
            group: group.to_owned(),
            commands,
            mailbox,
            assignment: Vec::new(),
            has_assignment: false,
            positions: HashMap::new(),
            fetched: HashMap::new(),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(LogError::Backend(format!("kafka: group `{group}`: the member's thread stopped while joining"))),
    }
}

/// What the member's thread hands to the application: assignment changes and records.
#[derive(Default)]
struct Outcome {
    /// Partitions the application had and lost.
    revoked: Vec<TopicPartition>,
    /// Partitions given to the member, with the offset it starts at (when known).
    assigned: Vec<(TopicPartition, Option<u64>)>,
    /// The whole assignment after the changes, when there were any.
    assignment: Option<Vec<TopicPartition>>,
    /// Whether the group handed out an assignment (possibly empty).
    handed: bool,
    /// Whether a revocation has not been followed by an assignment yet (eager protocol).
    awaiting: bool,
    /// Records of assigned partitions, fetched after the last change that concerned them.
    records: RecordBatch,
    /// A failure of the consumer that ends the member.
    error: Option<LogError>,
    /// Starts of assigned partitions that were unknown when they were assigned.
    resolved: Vec<(TopicPartition, u64)>,
    /// Where the consumer stands on each live partition once these records are delivered, when
    /// that changed (see [`Fetched`]).
    fetched: Option<Fetched>,
}

impl Outcome {
    fn changed(&self) -> bool {
        self.assignment.is_some()
    }

    fn is_empty(&self) -> bool {
        !self.changed()
            && self.records.is_empty()
            && self.error.is_none()
            && self.resolved.is_empty()
            && self.fetched.is_none()
    }
}

/// Where each assigned partition reads next after a rewind (`None`: a logical start).
type Rewound = Vec<(TopicPartition, Option<u64>)>;

/// Undelivered outcomes: filled by the member's thread, emptied by [`GroupMember::poll`].
type Mailbox = Arc<Mutex<Option<Outcome>>>;

enum Command {
    Poll {
        max: usize,
        timeout: Duration,
        done: oneshot::Sender<()>,
    },
    Commit {
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
        reply: oneshot::Sender<Result<Vec<Position>, LogError>>,
    },
    Rewind {
        reply: oneshot::Sender<Result<Rewound, LogError>>,
    },
    Leave {
        done: oneshot::Sender<()>,
    },
}

/// A member of a consumer group on Kafka (see the module documentation).
pub(super) struct KafkaMember {
    group: String,
    commands: mpsc::Sender<Command>,
    mailbox: Mailbox,
    /// The application's view: what the polls returned so far.
    assignment: Vec<TopicPartition>,
    has_assignment: bool,
    positions: HashMap<TopicPartition, u64>,
    /// The consumer's positions as of the last delivered outcome that had them.
    fetched: Fetched,
}

impl KafkaMember {
    fn stopped(&self) -> LogError {
        LogError::Backend(format!("kafka: group `{}`: the member's thread stopped (see the log for why)", self.group))
    }

    fn send(&self, command: Command) -> Result<(), LogError> {
        self.commands.send(command).map_err(|_| self.stopped())
    }

    /// Applies an outcome to the application's view and turns it into what `poll` returns.
    fn deliver(&mut self, outcome: Outcome) -> Result<Polled, LogError> {
        // A partition that changed hands starts afresh: where the consumer stood on it before
        // is no position of the new assignment (an outcome that holds records back carries no
        // new positions to replace it).
        for tp in outcome.revoked.iter().chain(outcome.assigned.iter().map(|(tp, _)| tp)) {
            self.fetched.remove(tp);
        }
        for tp in &outcome.revoked {
            self.positions.remove(tp);
        }
        for (tp, start) in &outcome.assigned {
            match start {
                Some(start) => self.positions.insert(tp.clone(), *start),
                None => self.positions.remove(tp),
            };
        }
        for (tp, start) in outcome.resolved {
            self.positions.entry(tp).or_insert(start);
        }
        if let Some(fetched) = outcome.fetched {
            self.fetched = fetched;
        }
        if let Some(assignment) = outcome.assignment {
            self.assignment = assignment;
        }
        self.has_assignment |= outcome.handed;
        if let Some(error) = outcome.error {
            return Err(error);
        }
        let records = outcome.records.into_records();
        // Records come in runs of one partition: one position update per run.
        for run in records.chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic) {
            let next = run.iter().map(|r| r.offset + 1).max().expect("a run is not empty");
            let tp = TopicPartition { topic: run[0].topic.clone(), partition: run[0].partition };
            self.positions.entry(tp).and_modify(|p| *p = (*p).max(next)).or_insert(next);
        }
        Ok(Polled {
            revoked: outcome.revoked,
            assigned: outcome.assigned.into_iter().map(|(tp, _)| tp).collect(),
            records,
        })
    }

    fn take_mailbox(&self) -> Option<Outcome> {
        lock(&self.mailbox).take()
    }
}

#[async_trait]
impl GroupMember for KafkaMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        // What an earlier poll fetched for a caller that did not wait for it comes first.
        if let Some(outcome) = self.take_mailbox() {
            return self.deliver(outcome);
        }
        let (done, finished) = oneshot::channel();
        self.send(Command::Poll { max: max.max(1), timeout, done })?;
        let stopped = finished.await.is_err();
        match self.take_mailbox() {
            Some(outcome) => self.deliver(outcome),
            None if stopped => Err(self.stopped()),
            None => Ok(Polled::default()),
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.clone()
    }

    fn has_assignment(&self) -> bool {
        self.has_assignment
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        let delivered = self.positions.get(partition).copied();
        let fetched = self.fetched.get(partition).copied();
        delivered.max(fetched).filter(|_| delivered.is_some())
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        let (reply, result) = oneshot::channel();
        self.send(Command::Rewind { reply })?;
        let positions = result.await.map_err(|_| self.stopped())??;
        self.fetched.clear();
        for (tp, position) in positions {
            match position {
                Some(position) => self.positions.insert(tp, position),
                None => self.positions.remove(&tp),
            };
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        let (reply, result) = oneshot::channel();
        self.send(Command::Commit { outputs, positions, reply })?;
        result.await.map_err(|_| self.stopped())?
    }

    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        let (done, finished) = oneshot::channel();
        if self.send(Command::Leave { done }).is_ok() {
            // The thread closes the consumer (leaving the group) and the producer, then answers.
            let _ = finished.await;
        }
        Ok(())
    }
}

/// A rebalance as the consumer's context saw it.
enum Change {
    Assigned(Vec<(String, i32, Option<u64>)>),
    Revoked(Vec<(String, i32)>),
}

/// The consumer's context: runs the rebalance callback (inside `poll`, on the member's thread).
struct MemberContext {
    group: String,
    start: StartFrom,
    timeout: Duration,
    changes: Mutex<Vec<Change>>,
    /// Whether `changes` has something: checked once per record, so without taking the lock.
    changed: AtomicBool,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        ClientLogs.log(level, facility, line);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ClientLogs.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.starts(consumer, tpl, self.timeout, true).unwrap_or_else(|_| {
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition(), None)).collect()
                });
                let mut assignment = TopicPartitionList::with_capacity(starts.len());
                for (topic, partition, start) in &starts {
                    let offset = start.map_or(Offset::Invalid, |s| Offset::Offset(s as i64));
                    if let Err(error) = assignment.add_partition_offset(topic, *partition, offset) {
                        tracing::error!(group = self.group, topic, partition, %error, "kafka: bad start offset");
                    }
                }
                let assigned = match cooperative {
                    true => consumer.incremental_assign(&assignment),
                    false => consumer.assign(&assignment),
                };
                if let Err(error) = assigned {
                    tracing::error!(group = self.group, %error, "kafka: assigning the partitions failed");
                }
                self.record(Change::Assigned(starts));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                let unassigned = match cooperative {
                    true => consumer.incremental_unassign(tpl),
                    false => consumer.unassign(),
                };
                if let Err(error) = unassigned {
                    tracing::error!(group = self.group, %error, "kafka: revoking the partitions failed");
                }
                self.record(Change::Revoked(revoked));
            }
            other => {
                tracing::error!(group = self.group, error = ?other, "kafka: rebalance failed; dropping the assignment");
                let current = consumer
                    .assignment()
                    .map(|a| a.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect());
                let _ = consumer.unassign();
                self.record(Change::Revoked(current.unwrap_or_default()));
            }
        }
    }
}

impl MemberContext {
    fn record(&self, change: Change) {
        lock(&self.changes).push(change);
        self.changed.store(true, Ordering::Release);
    }

    /// Where each assigned partition starts: the group's committed offset, else the start the
    /// member asked for, as a concrete offset; `None` where that start could not be looked up.
    /// An error when the committed offsets could not be looked up: then nothing is known
    /// (librdkafka starts from the committed offset or `auto.offset.reset` itself).
    /// Each look-up waits at most `timeout`; failures are logged as warnings when `report`.
    fn starts(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        timeout: Duration,
        report: bool,
    ) -> Result<Vec<(String, i32, Option<u64>)>, KafkaError> {
        let mut starts: Vec<(String, i32, Option<u64>)> =
            tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition(), None)).collect();
        if starts.is_empty() {
            return Ok(starts);
        }
        let concrete = |offset: Offset| match offset {
            Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
            _ => None,
        };
        match retry(timeout, |timeout| consumer.committed_offsets(tpl.clone(), timeout)) {
            Ok(committed) => {
                for (topic, partition, start) in &mut starts {
                    *start = committed.find_partition(topic, *partition).and_then(|e| concrete(e.offset()));
                }
            }
            Err(error) => {
                if report {
                    tracing::warn!(group = self.group, %error, "kafka: committed offsets unknown; asked again later");
                }
                return Err(error);
            }
        }
        let mut missing = TopicPartitionList::new();
        let at = match self.start {
            StartFrom::Beginning => Offset::Beginning,
            StartFrom::End => Offset::End,
        };
        for (topic, partition, _) in starts.iter().filter(|(_, _, start)| start.is_none()) {
            let _ = missing.add_partition_offset(topic, *partition, at);
        }
        if missing.count() > 0 {
            // `ListOffsets` with the earliest (-2) or latest (-1) "timestamp".
            match retry(timeout, |timeout| consumer.offsets_for_times(missing.clone(), timeout)) {
                Ok(found) => {
                    for (topic, partition, start) in starts.iter_mut().filter(|(_, _, start)| start.is_none()) {
                        *start = found.find_partition(topic, *partition).and_then(|e| concrete(e.offset()));
                    }
                }
                Err(error) if report => {
                    tracing::warn!(group = self.group, %error, "kafka: start offsets unknown; asked again later")
                }
                Err(_) => {}
            }
        }
        Ok(starts)
    }
}

/// How long a poll spends asking again for starts a rebalance could not look up.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the member's thread starts from.
struct Setup {
    inner: Arc<Inner>,
    group: String,
    topics: Vec<Arc<str>>,
    start: StartFrom,
    slot: u32,
    mailbox: Mailbox,
}

/// The consumer's position per live partition after a poll. It moves past transaction markers,
/// which are never delivered as records: without it a member reading a transactional topic to
/// its end would seem short of the high watermark forever. It travels with the records fetched
/// before it, so it never runs ahead of what the application has been given.
type Fetched = HashMap<TopicPartition, u64>;

/// The member's thread: owns the consumer and the transactional producer.
struct Worker {
    inner: Arc<Inner>,
    group: String,
    slot: u32,
    transactional_id: String,
    start: StartFrom,
    /// The subscribed topics' shared names.
    topics: HashMap<String, Arc<str>>,
    consumer: Option<BaseConsumer<MemberContext>>,
    /// `None` after a fatal error (fencing): the next commit creates a new one.
    producer: Option<Producer>,
    /// The consumer's assignment, with where each partition started.
    live: BTreeMap<TopicPartition, Option<u64>>,
    /// The assignment as handed to the application.
    handed: BTreeSet<TopicPartition>,
    mailbox: Mailbox,
    /// The positions last put in an outcome.
    noted: Fetched,
    /// Records (and rebalances) taken from librdkafka after the last poll, for the next one.
    ahead: Outcome,
    /// While the application handles what the last poll returned, the thread reads up to this
    /// many records ahead, so that converting them overlaps with the application's work.
    reading_ahead: Option<usize>,
    /// Since when the group has taken every partition away without handing any out again.
    orphaned_since: Option<Instant>,
    /// Since when the group's committed offsets could not be read, and when that was last told.
    unreadable: Option<(Instant, Option<Instant>)>,
    /// The consumer errors told lately: a broker away makes one per poll, which told each would
    /// flood the log.
    consumer_errors: Throttle,
}

/// After how long unreadable committed offsets are reported as a probable hanging transaction.
const HANGING_AFTER: Duration = Duration::from_secs(60);

/// How long a member may stay without partitions after the group took them away before it
/// starts over with a new consumer. librdkafka sometimes never rejoins a group whose session
/// timed out while the coordinator was away (a broker restart; confluentinc/librdkafka#3396).
const REJOIN_AFTER: Duration = Duration::from_secs(30);

impl Worker {
    fn new(setup: Setup) -> Result<Self, LogError> {
        let Setup { inner, group, topics, start, slot, mailbox } = setup;
        let transactional_id = transactional_id(&group, &inner.config.instance_id, slot);
        let mut worker = Worker {
            topics: topics.iter().map(|t| (t.to_string(), t.clone())).collect(),
            inner,
            group,
            slot,
            transactional_id,
            start,
            consumer: None,
            producer: None,
            live: BTreeMap::new(),
            handed: BTreeSet::new(),
            mailbox,
            noted: Fetched::new(),
            ahead: Outcome::default(),
            reading_ahead: None,
            orphaned_since: None,
            unreadable: None,
            consumer_errors: Throttle::new(TELL_EVERY),
        };
        // Dropping `worker` on an error below releases the slot.
        worker.producer = Some(worker.new_producer()?);
        worker.consumer = Some(worker.new_consumer(&topics)?);
        Ok(worker)
    }

    fn new_consumer(&self, topics: &[Arc<str>]) -> Result<BaseConsumer<MemberContext>, LogError> {
        let config = &self.inner.config;
        let reset = match self.start {
            StartFrom::Beginning => "earliest",
            StartFrom::End => "latest",
        };
        let context = MemberContext {
            group: self.group.clone(),
            start: self.start,
            timeout: config.request_timeout,
            changes: Mutex::default(),
            changed: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<MemberContext> = client_config(
            config,
            "member",
            // A member that dies is replaced after 10 s (librdkafka's default: 45 s); a clean
            // shutdown leaves the group at once. A full fetch queue pauses fetching for 10 ms
            // (librdkafka's default, 1 s, stalls a member that drains its queue in less).
            &[
                ("fetch.wait.max.ms", "100"),
                ("fetch.queue.backoff.ms", "10"),
                ("heartbeat.interval.ms", "500"),
                ("session.timeout.ms", "10000"),
            ],
            &[
                ("group.id", &self.group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", reset),
            ],
        )
        .create_with_context(context)
        .map_err(|e| client_error(config, "consumer", e))?;
        let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| backend(format_args!("group `{}`: subscribe to {names:?}", self.group), e))?;
        Ok(consumer)
    }

    /// A transactional producer, initialised: fences any older producer with the same
    /// transactional id and aborts the transaction it left open.
    fn new_producer(&self) -> Result<Producer, LogError> {
        let config = &self.inner.config;
        let timeout = millis(config.transaction_timeout);
        let producer: Producer = client_config(
            config,
            "transactions",
            &[("linger.ms", "1"), ("retry.backoff.ms", "10"), ("message.timeout.ms", &timeout)],
            &[
                ("transactional.id", &self.transactional_id),
                ("transaction.timeout.ms", &timeout),
                ("enable.idempotence", "true"),
                ("partitioner", "murmur2_random"),
            ],
        )
        .create_with_context(ClientLogs)
        .map_err(|e| client_error(config, "transactional producer", e))?;
        producer.init_transactions(config.request_timeout).map_err(|e| {
            backend(format_args!("group `{}`: init_transactions of `{}`", self.group, self.transactional_id), e)
        })?;
        Ok(producer)
    }

    fn consumer(&self) -> &BaseConsumer<MemberContext> {
        self.consumer.as_ref().expect("the consumer lives as long as the worker")
    }

    fn run(mut self, commands: mpsc::Receiver<Command>) {
        // Ends when the member leaves, or is dropped (its sender with it).
        loop {
            let command = match self.reading_ahead {
                None => commands.recv_timeout(KEEP_ALIVE),
                Some(_) => commands.recv_timeout(READ_AHEAD_TICK),
            };
            let command = match command {
                Ok(command) => command,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    match self.reading_ahead {
                        Some(_) => self.read_ahead(),
                        None => self.keep_alive(),
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            match command {
                Command::Poll { max, timeout, done } => {
                    self.poll(max, timeout, &done);
                    let _ = done.send(());
                    self.read_ahead();
                }
                Command::Commit { outputs, positions, reply } => {
                    let _ = reply.send(self.commit(outputs, positions));
                }
                Command::Rewind { reply } => {
                    let _ = reply.send(self.rewind());
                }
                Command::Leave { done } => {
                    drop(self); // closes the consumer and the producer
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    fn fenced(&self, reason: impl Into<String>) -> LogError {
        LogError::Fenced { group: self.group.clone(), reason: reason.into() }
    }

    // -----------------------------------------------------------------------------------------
    // poll

    /// Polls up to `max` records or an assignment change, at most `timeout`, and leaves the
    /// outcome in the mailbox. Returns early once nobody waits (`done` closed).
    fn poll(&mut self, max: usize, timeout: Duration, done: &oneshot::Sender<()>) {
        if lock(&self.mailbox).is_some() {
            return; // the application has not taken the last outcome yet
        }
        self.rejoin_if_orphaned();
        let deadline = Instant::now() + timeout;
        self.reading_ahead = None;
        let mut out = std::mem::take(&mut self.ahead);
        if out.records.len() > max {
            // Read ahead for a larger poll than this one.
            self.ahead.records = out.records.split_off(max);
        }
        let mut last = None;
        while out.records.len() < max {
            let settled = out.changed() && !out.awaiting;
            let wait = match out.records.is_empty() && !settled {
                true => deadline.saturating_duration_since(Instant::now()).min(SLICE),
                false => Duration::ZERO,
            };
            let received = self.receive(&mut out, &mut last, wait);
            if self.apply_changes(&mut out) {
                last = None; // liveness may have changed
            }
            if out.error.is_some() || out.records.len() >= max {
                break;
            }
            if received {
                continue; // drain what is already fetched
            }
            let settled = out.changed() && !out.awaiting;
            if !out.records.is_empty() || settled || Instant::now() >= deadline || done.is_closed() {
                break;
            }
        }
        let busy = !out.records.is_empty() && out.error.is_none();
        self.post(out);
        if busy {
            self.reading_ahead = Some(max);
        }
    }

    /// Takes what librdkafka has fetched so far, without waiting, into the next poll's outcome;
    /// stops reading ahead at `max` records, a rebalance or an error, which the next poll hands
    /// out. (A rebalance read ahead makes a commit before that poll [`LogError::Fenced`], as
    /// one the application has not polled yet always does.)
    fn read_ahead(&mut self) {
        let Some(max) = self.reading_ahead else { return };
        let mut ahead = std::mem::take(&mut self.ahead);
        let mut last = None;
        while ahead.records.len() < max && ahead.error.is_none() && !ahead.changed() {
            let received = self.receive(&mut ahead, &mut last, Duration::ZERO);
            if self.apply_changes(&mut ahead) {
                last = None;
            }
            if !received {
                break;
            }
        }
        if ahead.records.len() >= max || ahead.error.is_some() || ahead.changed() {
            self.reading_ahead = None;
        }
        self.ahead = ahead;
    }

    /// Polls librdkafka once, without waiting, so that the group keeps this member: a record
    /// that comes waits in the next poll's outcome, as one read ahead does (one a second at
    /// most). Not after a rebalance or an error that the application has not polled yet.
    fn keep_alive(&mut self) {
        if self.consumer.is_none() || self.ahead.changed() || self.ahead.error.is_some() {
            return;
        }
        let mut ahead = std::mem::take(&mut self.ahead);
        self.receive(&mut ahead, &mut None, Duration::ZERO);
        self.apply_changes(&mut ahead);
        self.ahead = ahead;
    }

    /// Starts over with a new consumer (which joins the group afresh) when the group has left
    /// this member without partitions for [`REJOIN_AFTER`].
    fn rejoin_if_orphaned(&mut self) {
        let Some(since) = self.orphaned_since else { return };
        if since.elapsed() < REJOIN_AFTER {
            return;
        }
        tracing::warn!(
            group = self.group,
            waited = ?since.elapsed(),
            "kafka: the group took this member's partitions away and handed none out again; re-joining with a new consumer"
        );
        self.orphaned_since = Some(Instant::now());
        let topics: Vec<Arc<str>> = self.topics.values().cloned().collect();
        match self.new_consumer(&topics) {
            // The old consumer leaves the group as it closes.
            Ok(consumer) => drop(self.consumer.replace(consumer)),
            Err(error) => tracing::warn!(group = self.group, %error, "kafka: cannot re-join yet"),
        }
    }

    /// Polls librdkafka once, waiting at most `wait`; a record of a live partition goes into
    /// `out`. Records come in runs of one partition: `last` keeps the last one's shared name and
    /// liveness, so they are not looked up per record. Tells whether a message came.
    fn receive(&self, out: &mut Outcome, last: &mut Option<(TopicPartition, bool)>, wait: Duration) -> bool {
        match self.consumer().poll(wait) {
            Some(Ok(message)) => {
                let partition = message.partition() as u32;
                // A member of one topic need not read the message's topic name (a C string).
                let one_topic = self.topics.len() == 1;
                let same = |(tp, _): &(TopicPartition, bool)| {
                    tp.partition == partition && (one_topic || *tp.topic == *message.topic())
                };
                if !last.as_ref().is_some_and(same) {
                    let tp = self.topic_partition(message.topic(), message.partition());
                    let live = self.live.contains_key(&tp);
                    *last = Some((tp, live));
                }
                if let Some((tp, true)) = last {
                    out.records.push(&message, tp.topic.clone());
                }
                true
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                out.error = Some(backend(format_args!("group `{}`: the consumer failed", self.group), code));
                false
            }
            Some(Err(error)) => {
                // librdkafka retries transient failures (a broker restart) by itself.
                if let Some(since) = self.consumer_errors.admit(&error.to_string()) {
                    tracing::warn!(group = self.group, %error, more_since_last = since, "kafka: consumer error");
                }
                false
            }
            None => false,
        }
    }

    /// Completes an outcome and leaves it in the mailbox, unless there is nothing in it.
    fn post(&mut self, mut out: Outcome) {
        if out.changed() {
            self.handed = self.live.keys().cloned().collect();
        }
        self.start_at_first_records(&out);
        self.resolve_starts(&mut out);
        // Records held back for the next poll lie below where the consumer stands.
        if self.ahead.records.is_empty() {
            self.note_positions(&mut out);
        }
        if !out.is_empty() {
            *lock(&self.mailbox) = Some(out);
        }
    }

    /// A partition assigned while its start could not be looked up (the coordinator was away)
    /// starts, as librdkafka resolved it, at the first record delivered from it: a rewind must
    /// come back there, not to an end offset read later, past records handed out meanwhile.
    fn start_at_first_records(&mut self, out: &Outcome) {
        if !self.live.values().any(Option::is_none) {
            return;
        }
        for (topic, partition, offset) in out.records.origins() {
            let tp = TopicPartition { topic: topic.clone(), partition };
            if let Some(start @ None) = self.live.get_mut(&tp) {
                *start = Some(offset);
            }
        }
    }

    /// Asks again for the starts a rebalance could not look up (the coordinator was away: a
    /// broker restarting). Until known, a partition with nothing new to read has no position,
    /// and a processor waiting to be caught up on it would wait forever.
    fn resolve_starts(&mut self, out: &mut Outcome) {
        let mut unknown = TopicPartitionList::new();
        for (tp, _) in self.live.iter().filter(|(_, start)| start.is_none()) {
            unknown.add_partition(&tp.topic, tp.partition as i32);
        }
        if unknown.count() == 0 {
            return;
        }
        let starts = self.consumer().context().starts(self.consumer(), &unknown, RESOLVE_TIMEOUT, false);
        self.note_offsets_read(starts.is_ok());
        // Not even the committed offsets yet: a start guessed now could be before them.
        let Ok(starts) = starts else { return };
        let consumer = self.consumer();
        let starts: Vec<(String, i32, Option<u64>)> = (starts.into_iter())
            .map(|(topic, partition, start)| {
                // Without a committed offset, librdkafka starts at the watermark `start` names.
                let start = start.or_else(|| {
                    let (low, high) = consumer.fetch_watermarks(&topic, partition, RESOLVE_TIMEOUT).ok()?;
                    u64::try_from(if self.start == StartFrom::Beginning { low } else { high }).ok()
                });
                (topic, partition, start)
            })
            .collect();
        for (topic, partition, start) in starts {
            let tp = self.topic_partition(&topic, partition);
            if let (Some(start), Some(live)) = (start, self.live.get_mut(&tp)) {
                tracing::info!(group = self.group, %tp, start, "kafka: start of an assigned partition resolved");
                *live = Some(start);
                out.resolved.push((tp, start));
            }
        }
    }

    /// Records in `out` where the consumer stands on each live partition once everything fetched
    /// so far is in `out` (past transaction markers too), when that changed.
    fn note_positions(&mut self, out: &mut Outcome) {
        let Ok(positions) = self.consumer().position() else { return };
        let mut fetched = Fetched::with_capacity(self.live.len());
        for element in positions.elements() {
            let Offset::Offset(offset) = element.offset() else { continue };
            let tp = self.topic_partition(element.topic(), element.partition());
            // A partition that changed hands in this outcome starts afresh.
            let changed = out.assigned.iter().any(|(t, _)| *t == tp) || out.revoked.contains(&tp);
            if offset >= 0 && !changed && self.live.contains_key(&tp) {
                fetched.insert(tp, offset as u64);
            }
        }
        if fetched != self.noted {
            self.noted = fetched.clone();
            out.fetched = Some(fetched);
        }
    }

    /// Takes the rebalances the context recorded and folds them into `out`; tells whether
    /// there were any.
    fn apply_changes(&mut self, out: &mut Outcome) -> bool {
        let context = self.consumer().context();
        // Checked after every record: a plain load first, the swap (a locked write) only when set.
        if !context.changed.load(Ordering::Relaxed) || !context.changed.swap(false, Ordering::Acquire) {
            return false;
        }
        let changes = std::mem::take(&mut *lock(&context.changes));
        if changes.is_empty() {
            return false;
        }
        for change in changes {
            match change {
                Change::Revoked(revoked) => {
                    for (topic, partition) in revoked {
                        let tp = self.topic_partition(&topic, partition);
                        self.live.remove(&tp);
                        out.assigned.retain(|(t, _)| *t != tp);
                        out.records.drop_partition(&tp.topic, tp.partition);
                        if self.handed.contains(&tp) && !out.revoked.contains(&tp) {
                            out.revoked.push(tp);
                        }
                    }
                    out.awaiting = true;
                    if self.live.is_empty() {
                        self.orphaned_since.get_or_insert_with(Instant::now);
                    }
                }
                Change::Assigned(assigned) => {
                    for (topic, partition, start) in assigned {
                        let tp = self.topic_partition(&topic, partition);
                        self.live.insert(tp.clone(), start);
                        out.assigned.retain(|(t, _)| *t != tp);
                        out.assigned.push((tp, start));
                    }
                    out.handed = true;
                    out.awaiting = false;
                    self.orphaned_since = None;
                }
            }
        }
        out.assignment = Some(self.live.keys().cloned().collect());
        true
    }

    fn topic_partition(&self, topic: &str, partition: i32) -> TopicPartition {
        let topic = self.topics.get(topic).cloned().unwrap_or_else(|| Arc::from(topic));
        TopicPartition { topic, partition: partition as u32 }
    }

    // -----------------------------------------------------------------------------------------
    // rewind

    fn rewind(&mut self) -> Result<Rewound, LogError> {
        // Records fetched but not handed out yet are from before the rewind.
        if let Some(outcome) = lock(&self.mailbox).as_mut() {
            outcome.records.clear();
            outcome.fetched = None;
        }
        self.ahead.records.clear();
        self.reading_ahead = None;
        self.noted.clear();
        if self.live.is_empty() {
            return Ok(Vec::new());
        }
        let timeout = self.inner.config.request_timeout;
        let mut tpl = TopicPartitionList::with_capacity(self.live.len());
        for tp in self.live.keys() {
            tpl.add_partition(&tp.topic, tp.partition as i32);
        }
        let committed = retry(timeout, |timeout| self.consumer().committed_offsets(tpl.clone(), timeout));
        self.note_offsets_read(committed.is_ok());
        let committed =
            committed.map_err(|e| backend(format_args!("group `{}`: rewind: committed offsets", self.group), e))?;
        let logical = match self.start {
            StartFrom::Beginning => Offset::Beginning,
            StartFrom::End => Offset::End,
        };
        let mut targets = TopicPartitionList::with_capacity(self.live.len());
        let mut positions = Vec::with_capacity(self.live.len());
        for (tp, origin) in &self.live {
            let committed = committed.find_partition(&tp.topic, tp.partition as i32).and_then(|e| match e.offset() {
                Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
                _ => None,
            });
            let target = committed.or(*origin);
            let offset = target.map_or(logical, |t| Offset::Offset(t as i64));
            targets
                .add_partition_offset(&tp.topic, tp.partition as i32, offset)
                .map_err(|e| backend(format_args!("group `{}`: rewind {tp}", self.group), e))?;
            positions.push((tp.clone(), target));
        }
        let sought = self.consumer().seek_partitions(targets.clone(), timeout);
        let failed = match &sought {
            Ok(result) => result.elements().iter().find_map(|e| e.error().err()),
            Err(error) => Some(error.clone()),
        };
        if let Some(error) = failed {
            // A partition whose fetch has not started (or whose broker is away) cannot seek yet.
            // Assigning the positions by hand instead would step outside the group's rebalance
            // protocol; the runtime retries the rewind after a pause instead.
            return Err(backend(format_args!("group `{}`: rewind: seek", self.group), error));
        }
        Ok(positions)
    }

    /// Keeps track of failed reads of the group's committed offsets. They fail while the group
    /// coordinator is away, and forever while a transaction hangs on the group's
    /// `__consumer_offsets` partition: Kafka skips the commit marker of a partition that has no
    /// leader at that moment (its only broker shutting down), so its offsets stay pending.
    /// No client can end such a transaction; an operator can, so the member says so.
    fn note_offsets_read(&mut self, read: bool) {
        if read {
            self.unreadable = None;
            return;
        }
        let now = Instant::now();
        let (since, told) = self.unreadable.get_or_insert((now, None));
        if now.duration_since(*since) >= HANGING_AFTER && told.is_none_or(|t| now.duration_since(t) >= HANGING_AFTER) {
            *told = Some(now);
            tracing::error!(
                group = self.group,
                unreadable_for = ?now.duration_since(*since),
                "kafka: the group's committed offsets cannot be read; if the brokers answer, a transaction probably \
                 hangs on its `__consumer_offsets` partition (Kafka drops the markers of transactions completed while \
                 a partition has no leader, as when a single broker shuts down): `kafka-transactions.sh find-hanging` \
                 finds it once it is older than the transaction timeout by its records' timestamps (records stamped in \
                 the future, as a simulation's, look young: `kafka-transactions.sh describe-producers` on the \
                 group's topics shows them), and `kafka-transactions.sh abort` ends it"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // commit

    fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        if self.ahead.changed() || lock(&self.mailbox).as_ref().is_some_and(Outcome::changed) {
            return Err(self.fenced("the group rebalanced and this member has not polled the new assignment yet"));
        }
        if let Some((tp, _)) = positions.iter().find(|(tp, _)| !self.live.contains_key(tp) || !self.handed.contains(tp))
        {
            return Err(self.fenced(format!("partition {tp} is not assigned to this member (the group rebalanced)")));
        }
        if outputs.is_empty() && positions.is_empty() {
            return Ok(Vec::new());
        }
        for record in &outputs {
            self.inner.check_destination(&record.topic, record.partition)?;
        }
        let producer = match &self.producer {
            Some(producer) => producer.clone(),
            None => {
                let producer = self.new_producer()?;
                self.producer = Some(producer.clone());
                producer
            }
        };
        if let Err(error) = producer.begin_transaction() {
            return Err(self.failed(&producer, "begin the transaction", error));
        }
        match self.transact(&producer, &outputs, &positions) {
            Ok(written) => Ok(written),
            Err(Failure { what, error, output }) => {
                // A record the broker refuses for good (a compacted topic's without a key, one
                // over the size limit): said as the other logs say it, once the transaction is
                // aborted.
                let refused =
                    output.and_then(|i| outputs.get(i)).and_then(|record| match error.rdkafka_error_code()? {
                        RDKafkaErrorCode::InvalidRecord if record.key.is_none() => {
                            Some(LogError::KeyRequired { topic: record.topic.to_string() })
                        }
                        RDKafkaErrorCode::MessageSizeTooLarge => Some(too_large(record, &error)),
                        _ => None,
                    });
                match (self.failed(&producer, &what, error), refused) {
                    (LogError::Backend(_), Some(refused)) => Err(refused),
                    (failure, _) => Err(failure),
                }
            }
        }
    }

    /// The transaction's body, after `begin_transaction`.
    fn transact(
        &self,
        producer: &Producer,
        outputs: &[OutRecord],
        positions: &[(TopicPartition, u64)],
    ) -> Result<Vec<Position>, Failure> {
        let timeout = self.inner.config.request_timeout;
        let count = outputs.len();
        let output = |output: usize, error: KafkaError| Failure {
            what: format!("write output {output} of {count} (to `{}`)", outputs[output].topic),
            error,
            output: Some(output),
        };
        // Every output delivered (inside the transaction) before the offsets and the commit: the
        // positions are known, and a failed record aborts before anything else is sent. (Sending
        // the offsets while outputs fly saves a round trip, but a produce request that reaches a
        // restarting broker after the abort can leave a transaction hanging on the partition.)
        let (results, refused) = futures::executor::block_on(send_all(producer, outputs));
        if let Some((index, error)) = refused {
            return Err(output(index, error));
        }
        let mut written = Vec::with_capacity(count);
        let mut failed = None;
        for (index, result) in results.into_iter().enumerate() {
            let error = match result.expect("every output was sent") {
                Ok(Ok(delivery)) => {
                    written.push(Position {
                        topic: outputs[index].topic.clone(),
                        partition: delivery.partition as u32,
                        offset: delivery.offset as u64,
                    });
                    continue;
                }
                Ok(Err((error, _))) => error,
                Err(_) => KafkaError::Canceled,
            };
            // The record the broker refused (keyless, too large) rather than one an earlier
            // failure took down with the transaction (whatever their order), as `append` finds it.
            let refused = match error.rdkafka_error_code() {
                Some(RDKafkaErrorCode::InvalidRecord) => outputs[index].key.is_none(),
                Some(RDKafkaErrorCode::MessageSizeTooLarge) => true,
                _ => false,
            };
            if refused || failed.is_none() {
                failed = Some(output(index, error));
            }
            if refused {
                break;
            }
        }
        if let Some(failure) = failed {
            return Err(failure);
        }
        if !positions.is_empty() {
            let mut offsets = TopicPartitionList::with_capacity(positions.len());
            for (tp, next) in positions {
                offsets
                    .add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(*next as i64))
                    .map_err(|error| Failure::new(format!("position {next} of {tp}"), error))?;
            }
            let metadata = self
                .consumer()
                .group_metadata()
                .ok_or_else(|| Failure::new("the consumer's group metadata", KafkaError::Canceled))?;
            producer
                .send_offsets_to_transaction(&offsets, &metadata, timeout)
                .map_err(|error| Failure::new("commit the input positions (send_offsets_to_transaction)", error))?;
        }
        settle(producer);
        let deadline = Instant::now() + timeout;
        loop {
            match producer.commit_transaction(deadline.saturating_duration_since(Instant::now())) {
                Ok(()) => break,
                Err(KafkaError::Transaction(error)) if error.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(group = self.group, %error, "kafka: commit_transaction retried");
                }
                Err(error) => return Err(Failure::new("commit the transaction", error)),
            }
        }
        Ok(written)
    }

    /// Cleans up after a failed transaction and says what happened.
    fn failed(&mut self, producer: &Producer, what: &str, error: KafkaError) -> LogError {
        let code = error.rdkafka_error_code();
        let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal())
            || matches!(
                code,
                Some(
                    RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                        | RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                )
            )
            || producer.client().fatal_error().is_some();
        if fatal {
            // Re-created by the next commit (init_transactions bumps the epoch).
            self.producer = None;
            return self.fenced(format!(
                "{what}: {error}: the transactional producer `{}` was fenced (another process with the instance id \
                 `{}` took over?); the transaction is void",
                self.transactional_id, self.inner.config.instance_id
            ));
        }
        let aborted = producer.abort_transaction(self.inner.config.request_timeout);
        if let Err(abort) = &aborted {
            tracing::warn!(group = self.group, %abort, "kafka: abort_transaction failed; the producer is re-created");
        }
        let stale = matches!(
            code,
            Some(
                RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::RebalanceInProgress
                    | RDKafkaErrorCode::FencedInstanceId
            )
        );
        if stale {
            if aborted.is_err() {
                self.producer = None;
            }
            return self.fenced(format!("{what}: {error}: the group rebalanced; the transaction was aborted"));
        }
        // The next commit starts a new producer, whose init_transactions also aborts the
        // transaction if the abort above did not make it.
        self.producer = None;
        LogError::Backend(format!(
            "kafka: group `{}`: {what}: {error}; the transaction was aborted, nothing of the write is visible",
            self.group
        ))
    }
}

/// Why a transaction failed: what was being done, librdkafka's error, and the output at fault.
struct Failure {
    what: String,
    error: KafkaError,
    /// The index of the output whose delivery failed, if that was the failure.
    output: Option<usize>,
}

impl Failure {
    fn new(what: impl Into<String>, error: KafkaError) -> Self {
        Failure { what: what.into(), error, output: None }
    }
}

/// Waits (briefly) until the producer has no delivery report left to serve, so that
/// `commit_transaction`'s flush finds nothing in flight: it otherwise waits in 100 ms steps.
fn settle(producer: &Producer) {
    let deadline = Instant::now() + Duration::from_millis(50);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(50));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the consumer leaves the group (its revocation runs the context's callback).
        drop(self.consumer.take());
        drop(self.producer.take());
        self.inner.release_slot(&self.group, self.slot);
    }
}
