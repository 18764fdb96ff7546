//! The data-module processor: one writer per entity. It owns the partitions of
//! `<module>.commands` assigned to it, holds their entities' state in memory (restored from
//! `<module>.state`), runs `decide`, and writes the events, the new snapshots and the command
//! positions in one atomic write. Replies go out after the write is committed.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::gateway::{Accepted, CommandError, Outcome, Replies};
use super::processor::Processor;
use super::progress::ProgressBoard;
use super::remote::{self, Reply, ReplyEvent};
use super::{RuntimeError, Settings, dead_letter};
use crate::codec;
use crate::log::{EventLog, Headers, OutRecord, Record, StartFrom, TopicPartition, partition_for};
use crate::model::{Aggregate, Clock, Envelope, Message, Position};
use crate::privacy::{self, KeyStore};

type Key<A> = <<A as Aggregate>::Command as Message>::Key;

/// The entities of one partition. Keys are reference IDs chosen by the platform, not by an
/// attacker, so a fast hasher serves (SipHash cost a percent of the whole chain).
type Entities<A> = HashMap<Key<A>, Entity<A>, foldhash::fast::RandomState>;

/// One entity as held by its writer and snapshotted on `<module>.state`.
struct Entity<A> {
    state: A,
    /// The ids of the latest commands applied, so that a repeated command is not applied twice.
    seen: VecDeque<Uuid>,
}

impl<A: Default> Default for Entity<A> {
    fn default() -> Self {
        Entity { state: A::default(), seen: VecDeque::new() }
    }
}

impl<A> Entity<A> {
    fn remember(&mut self, command: Uuid, limit: usize) {
        self.seen.push_back(command);
        self.forget_beyond(limit);
    }

    fn forget_beyond(&mut self, limit: usize) {
        while self.seen.len() > limit {
            self.seen.pop_front();
        }
    }
}

/// An entity's snapshot as written: the entity and the shape of the state it was written for.
#[derive(Serialize)]
#[serde(bound = "A: Serialize")]
struct SnapshotOf<'a, A> {
    shape: &'a str,
    state: &'a A,
    seen: &'a VecDeque<Uuid>,
}

/// An entity's snapshot as read (one written before snapshots had a shape has none).
#[derive(Deserialize)]
#[serde(bound = "A: DeserializeOwned")]
struct Snapshot<'a, A> {
    #[serde(default, borrow)]
    shape: Option<&'a str>,
    state: A,
    seen: VecDeque<Uuid>,
}

/// What the snapshots of `A` are written for: its [`Aggregate::STATE_VERSION`] and a digest of
/// its default state's structure (object keys and the kinds of their values, recursively), so
/// that a field added, removed or renamed makes the snapshots written before stale.
fn state_shape<A: Aggregate>() -> String {
    fn describe(value: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match value {
            Value::Null => out.push('n'),
            Value::Bool(_) => out.push('b'),
            Value::Number(n) if n.is_f64() => out.push('f'),
            Value::Number(_) => out.push('i'),
            Value::String(_) => out.push('s'),
            Value::Array(items) => {
                out.push('[');
                items.iter().for_each(|item| describe(item, out));
                out.push(']');
            }
            Value::Object(fields) => {
                let mut names: Vec<&String> = fields.keys().collect();
                names.sort();
                out.push('{');
                for name in names {
                    out.push_str(name);
                    out.push(':');
                    describe(&fields[name], out);
                    out.push(',');
                }
                out.push('}');
            }
        }
    }
    // Personal data in the default state is sealed with a throwaway key: only its kind counts.
    let keys = KeyStore::in_memory();
    let default = keys.scope(|| privacy::sealing("", || serde_json::to_value(A::default())).0);
    let mut structure = String::new();
    if let Ok(default) = &default {
        describe(default, &mut structure);
    }
    // FNV-1a: a digest that stays the same across builds and Rust versions.
    let digest = structure
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    format!("v{}-{digest:016x}", A::STATE_VERSION)
}

/// The snapshots of the entities a batch changed: each entity's latest, in the order the
/// entities first changed.
struct Snapshots<K> {
    records: Vec<OutRecord>,
    index: HashMap<(u32, K), usize>,
}

impl<K: std::hash::Hash + Eq> Snapshots<K> {
    fn put(&mut self, partition: u32, key: K, record: OutRecord) {
        match self.index.entry((partition, key)) {
            std::collections::hash_map::Entry::Occupied(at) => self.records[*at.get()] = record,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(self.records.len());
                self.records.push(record);
            }
        }
    }

    fn clear(&mut self) {
        self.records.clear();
        self.index.clear();
    }
}

/// An outcome waiting for the commit.
enum Pending<A: Aggregate> {
    Accepted {
        id: Uuid,
        events: Vec<Envelope<A::Event>>,
        first_output: usize,
    },
    Duplicate {
        id: Uuid,
    },
    Rejected {
        id: Uuid,
        error: A::Error,
    },
    Failed {
        id: Uuid,
        reason: String,
    },
    /// Not decided: the module's projections had not read the positions it named in time.
    NotCaughtUp {
        id: Uuid,
        reason: String,
    },
}

impl<A: Aggregate> Pending<A> {
    fn id(&self) -> Uuid {
        match self {
            Pending::Accepted { id, .. }
            | Pending::Duplicate { id }
            | Pending::Rejected { id, .. }
            | Pending::Failed { id, .. }
            | Pending::NotCaughtUp { id, .. } => *id,
        }
    }

    /// The outcome for a caller in this process.
    fn into_outcome(self) -> Outcome<A> {
        match self {
            Pending::Accepted { events, .. } => Ok(Accepted { events, duplicate: false }),
            Pending::Duplicate { .. } => Ok(Accepted { events: Vec::new(), duplicate: true }),
            Pending::Rejected { error, .. } => Err(CommandError::Rejected(error)),
            Pending::Failed { id, reason } => Err(CommandError::Failed { id, reason }),
            Pending::NotCaughtUp { id, reason } => Err(CommandError::NotCaughtUp { id, reason }),
        }
    }

    /// The record that carries the outcome to a caller in another process, on `topic`.
    fn into_reply(self, topic: Arc<str>) -> OutRecord {
        let id = self.id();
        let reply: Reply<A::Event, A::Error> = match self {
            // Personal data stays on the module's own topics, where it can be erased: a caller
            // elsewhere hears that the command was accepted.
            Pending::Accepted { events, .. } => match <A::Event as Message>::PERSONAL {
                true => Reply::Accepted { events: Vec::new(), duplicate: false },
                false => Reply::Accepted { events: events.iter().map(ReplyEvent::from).collect(), duplicate: false },
            },
            Pending::Duplicate { .. } => Reply::Accepted { events: Vec::new(), duplicate: true },
            Pending::Rejected { error, .. } => Reply::Rejected { error },
            Pending::Failed { reason, .. } => Reply::Failed { reason },
            Pending::NotCaughtUp { reason, .. } => Reply::NotCaughtUp { reason },
        };
        remote::reply_record(topic, id, &reply)
    }
}

/// The projections of the module's own, which a command carrying positions waits for (see
/// `remote.rs`).
pub(crate) struct OwnProjections {
    pub(crate) board: Arc<ProgressBoard>,
    /// Consumer group and topics of each.
    pub(crate) projections: Vec<(String, Vec<&'static str>)>,
}

pub(crate) struct AggregateProcessor<A: Aggregate> {
    group: String,
    events: Arc<str>,
    snapshots: Arc<str>,
    dead_letters: Arc<str>,
    services: Arc<A::Services>,
    replies: Arc<Replies<A>>,
    own_projections: OwnProjections,
    keys: KeyStore,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// The data subjects forgotten in the current batch.
    forgetting: Vec<String>,
    /// Entities per owned partition.
    partitions: HashMap<u32, Entities<A>>,
    /// Outcomes to reveal after the commit, with the reply topic of commands from other
    /// processes.
    pending: Vec<(Pending<A>, Option<Arc<str>>)>,
    /// The reply topic of the command being handled.
    reply_to: Option<Arc<str>>,
    /// The snapshots of the entities changed in the current batch.
    changed: Snapshots<Key<A>>,
    /// The partition count of the commands topic, once known.
    partition_count: Option<u32>,
    /// What the snapshots are written for (see [`state_shape`]).
    shape: Arc<str>,
}

impl<A: Aggregate> Drop for AggregateProcessor<A> {
    fn drop(&mut self) {
        // Nobody will answer the callers still waiting: tell them now.
        self.replies.close();
    }
}

/// The topic names of a data module.
pub(crate) fn state_topic(module: &str) -> String {
    format!("{module}.state")
}

pub(crate) fn group_of(module: &str) -> String {
    format!("{module}.{GROUP_SUFFIX}")
}

/// The last part of a data module's group.
pub(crate) const GROUP_SUFFIX: &str = "aggregate";

impl<A: Aggregate> AggregateProcessor<A> {
    pub(crate) fn new(
        services: Arc<A::Services>,
        replies: Arc<Replies<A>>,
        own_projections: OwnProjections,
        keys: KeyStore,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        let module = <A::Command as Message>::MODULE;
        let group = group_of(module);
        AggregateProcessor {
            events: Arc::from(<A::Event as Message>::TOPIC),
            snapshots: Arc::from(state_topic(module)),
            dead_letters: Arc::from(dead_letter::topic_of(&group)),
            group,
            services,
            replies,
            own_projections,
            keys,
            clock,
            settings,
            forgetting: Vec::new(),
            partitions: HashMap::new(),
            pending: Vec::new(),
            reply_to: None,
            changed: Snapshots { records: Vec::new(), index: HashMap::new() },
            partition_count: None,
            shape: Arc::from(state_shape::<A>()),
        }
    }

    /// The snapshot of an entity; an error when its state does not serialise as JSON.
    fn snapshot(
        (topic, shape): (&Arc<str>, &str),
        partition: u32,
        key: &Key<A>,
        entity: &Entity<A>,
    ) -> Result<OutRecord, String> {
        // The entity is the subject of the personal data its state holds.
        let subject = key.to_string();
        let snapshot = SnapshotOf { shape, state: &entity.state, seen: &entity.seen };
        let (value, sealed_with) = privacy::sealing(&subject, || serde_json::to_vec(&snapshot));
        let value = value.map_err(|error| {
            format!(
                "the state of {key} cannot be serialised as JSON for its snapshot ({error}); the command is not applied"
            )
        })?;
        let headers = match sealed_with.is_empty() {
            true => Headers::new(),
            false => {
                let mut headers = Headers::builder(64);
                headers.push_with(privacy::KEY_IDS_HEADER, |b| codec::write_key_ids(b, &sealed_with));
                headers.build()
            }
        };
        Ok(OutRecord {
            topic: topic.clone(),
            partition: Some(partition),
            key: Some(subject.into()),
            value: Some(value.into()),
            headers,
            timestamp: None,
        })
    }

    /// Restores one partition from its snapshots, or from its events when it has none or when
    /// a snapshot cannot be read (the state's type changed, say).
    /// Whether the entities were rebuilt from events comes with them.
    async fn restore(&self, log: &dyn EventLog, partition: u32) -> Result<(Entities<A>, bool), RuntimeError> {
        let mut entities = Entities::<A>::default();
        let snapshots = TopicPartition::new(self.snapshots.clone(), partition);
        let mut restored_any = false;
        let from_snapshots = for_each_record(log, Some(&self.keys), &snapshots, |record| {
            restored_any = true;
            let key: Key<A> = record.key_text().parse().map_err(|error| restore_error(record, &error))?;
            match &record.value {
                None => {
                    entities.remove(&key);
                }
                Some(value) => {
                    let snapshot: Snapshot<A> =
                        privacy::opening_state(&record.key_text(), || serde_json::from_slice(value))
                            .map_err(|error| restore_error(record, &error))?;
                    if snapshot.shape != Some(&*self.shape) {
                        let written = snapshot.shape.unwrap_or("none");
                        let reason = format!(
                            "written for another state (shape {written}, now {}): a field of the state or its \
                             STATE_VERSION changed",
                            self.shape
                        );
                        return Err(restore_error(record, &reason));
                    }
                    entities.insert(key, Entity { state: snapshot.state, seen: snapshot.seen });
                }
            }
            Ok(())
        })
        .await;
        match from_snapshots {
            Ok(()) if restored_any => return Ok((entities, false)),
            Ok(()) => {}
            Err(error @ RuntimeError::Restore { .. }) => {
                tracing::warn!(group = self.group, %error, "a snapshot cannot be used; rebuilding the partition from its events");
                entities.clear();
            }
            Err(error) => return Err(error),
        }
        let events = TopicPartition::new(self.events.clone(), partition);
        let limit = self.settings.seen_commands;
        for_each_record(log, Some(&self.keys), &events, |record| {
            let envelope = codec::decode::<A::Event>(record).map_err(|error| restore_error(record, &error))?;
            let entity: &mut Entity<A> = entities.entry(envelope.payload.key().clone()).or_default();
            // Said with the record at fault, rather than as a processor that panicked.
            std::panic::catch_unwind(AssertUnwindSafe(|| entity.state.evolve(&envelope.payload)))
                .map_err(|panic| restore_error(record, &format_args!("evolve panicked: {}", panic_message(&*panic))))?;
            if let Some(command) = envelope.causation_id
                && entity.seen.back() != Some(&command)
            {
                entity.remember(command, limit);
            }
            Ok(())
        })
        .await?;
        Ok((entities, true))
    }

    /// Queues a snapshot of every entity of a partition rebuilt from its events, for the write
    /// that follows the restore ([`Processor::upkeep`]): the stale or unreadable snapshots are
    /// not read at every start.
    fn snapshot_all(&mut self, partition: u32, entities: &Entities<A>) {
        for (key, entity) in entities {
            match Self::snapshot((&self.snapshots, &self.shape), partition, key, entity) {
                Ok(record) => self.changed.put(partition, key.clone(), record),
                Err(error) => {
                    tracing::warn!(group = self.group, %error, "an entity rebuilt from its events keeps no snapshot")
                }
            }
        }
    }

    /// Waits until the module's own projections have read these positions, at most half the
    /// command timeout (so that the caller, who waits the whole timeout, hears the outcome).
    /// `None` when they did; else why not.
    async fn wait_for_projections(&self, after: &[Position]) -> Option<String> {
        let OwnProjections { board, projections } = &self.own_projections;
        let reached = async {
            for position in after {
                let tp = TopicPartition { topic: position.topic.clone(), partition: position.partition };
                for (group, _) in projections.iter().filter(|(_, topics)| topics.contains(&&*position.topic)) {
                    if board.reached(group, &tp, position.offset + 1).await.is_err() {
                        return Some(format!("projection `{group}` of the module stopped before reading {position}"));
                    }
                }
            }
            None
        };
        let patience = self.settings.command_timeout / 2;
        let behind = tokio::time::timeout(patience, reached)
            .await
            .unwrap_or_else(|_| Some(format!("the module's projections did not read {after:?} within {patience:?}")));
        if let Some(reason) = &behind {
            tracing::warn!(group = self.group, reason, "commands that name positions are not decided");
        }
        behind
    }

    fn push(&mut self, pending: Pending<A>) {
        self.pending.push((pending, self.reply_to.clone()));
    }

    fn handle(&mut self, record: &Record, now: jiff::Timestamp, outputs: &mut Vec<OutRecord>) {
        remote::read_reply_to(record, &mut self.reply_to);
        let command = match codec::decode::<A::Command>(record) {
            Ok(command) => command,
            Err(error) => return self.letter(record, error.to_string(), outputs),
        };
        let id = command.id;
        let partition = record.partition;
        let key = command.payload.key().clone();
        // One writer per entity: a command on another partition than its key's (another key on
        // the record, another partitioner) would fork the entity's history.
        let key_text = key.to_string();
        if let Some(count) = self.partition_count
            && partition_for(key_text.as_bytes(), count) != partition
        {
            let expected = partition_for(key_text.as_bytes(), count);
            let reason = format!(
                "command for {key} arrived on partition {partition}, but its key belongs on partition {expected}: send commands keyed by their entity's ID with Kafka's partitioner"
            );
            return self.letter(record, reason, outputs);
        }
        let entities = self.partitions.entry(partition).or_default();
        if entities.get(&key).is_some_and(|entity| entity.seen.contains(&id)) {
            self.push(Pending::Duplicate { id });
            return;
        }
        // The module's code runs guarded: a panic dead-letters the command instead of stopping
        // the module on the same record forever.
        let (services, events_topic, snapshots, limit) =
            (&self.services, &self.events, (&self.snapshots, &*self.shape), self.settings.seen_commands);
        let decided = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let fresh;
            let state = match entities.get(&key) {
                Some(entity) => &entity.state,
                None => {
                    fresh = A::default();
                    &fresh
                }
            };
            let events = match A::decide(state, &command.payload, services) {
                Ok(events) => events,
                Err(error) => return Ok(Err(error)),
            };
            if let Some(stray) = events.iter().find(|e| e.key() != &key) {
                return Err(format!(
                    "decide returned an event for {} while handling a command for {key}: an entity may only change itself",
                    stray.key()
                ));
            }
            // Evolved on a copy and encoded, then swapped in: a panicking `evolve` or encoding
            // leaves the entity as it was, not changed by events that are never written.
            let mut next = state.clone();
            let events: Vec<_> = events
                .into_iter()
                .map(|event| {
                    next.evolve(&event);
                    Envelope::caused_by(event, &command, now)
                })
                .collect();
            // An event that no one could read back (a NaN, written as null) would stop its
            // entity's rebuild and every reader: the command fails instead.
            let records = events
                .iter()
                .map(|event| {
                    let record = codec::encode_to(event, events_topic.clone());
                    codec::check_reads_back(&event.payload, &record)?;
                    Ok(record.to_partition(partition))
                })
                .collect::<Result<Vec<_>, String>>()?;
            // The snapshot too is made before the entity is left changed: a state that does not
            // serialise (a map with keys that are not text) fails this command, not the module.
            let existed = entities.contains_key(&key);
            let entity = entities.entry(key.clone()).or_default();
            let previous = std::mem::replace(&mut entity.state, next);
            entity.seen.push_back(id);
            let evicted = if entity.seen.len() > limit { entity.seen.pop_front() } else { None };
            let snapshot =
                std::panic::catch_unwind(AssertUnwindSafe(|| Self::snapshot(snapshots, partition, &key, entity)))
                    .unwrap_or_else(|panic| {
                        Err(format!("serialising the state of {key} panicked: {}", panic_message(&*panic)))
                    });
            match snapshot {
                Ok(snapshot) => {
                    entity.forget_beyond(limit);
                    Ok(Ok((events, records, snapshot)))
                }
                Err(reason) => {
                    // Back as it was: the command is not remembered (with a window of no
                    // commands, it evicted itself).
                    entity.state = previous;
                    if evicted != Some(id) {
                        entity.seen.pop_back();
                        if let Some(evicted) = evicted {
                            entity.seen.push_front(evicted);
                        }
                    }
                    if !existed {
                        entities.remove(&key);
                    }
                    Err(reason)
                }
            }
        }));
        match decided {
            Ok(Ok(Ok((events, records, snapshot)))) => {
                if events.iter().any(|event| event.payload.forgets()) {
                    self.forgetting.push(key.to_string());
                }
                self.push(Pending::Accepted { id, events, first_output: outputs.len() });
                outputs.extend(records);
                self.changed.put(partition, key, snapshot);
            }
            Ok(Ok(Err(error))) => self.push(Pending::Rejected { id, error }),
            Ok(Err(reason)) => self.letter(record, reason, outputs),
            Err(panic) => {
                let reason = format!("decide, evolve or encoding panicked: {}", panic_message(&*panic));
                self.letter(record, reason, outputs);
            }
        }
    }

    fn not_caught_up(&mut self, record: &Record, reason: String) {
        remote::read_reply_to(record, &mut self.reply_to);
        if let Some(id) = codec::lineage(record).map(|l| l.id) {
            self.push(Pending::NotCaughtUp { id, reason });
        }
    }

    /// Letters a command that cannot be decided; its caller hears that it failed.
    fn letter(&mut self, record: &Record, reason: String, outputs: &mut Vec<OutRecord>) {
        outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &reason));
        if let Some(id) = codec::lineage(record).map(|l| l.id) {
            self.push(Pending::Failed { id, reason });
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn restore_error(record: &Record, error: &dyn std::fmt::Display) -> RuntimeError {
    RuntimeError::Restore { position: codec::position_of(record), reason: error.to_string() }
}

/// Reads a partition from the beginning to its current end, with the keys of its personal data
/// at hand when `keys` is given.
pub(crate) async fn for_each_record(
    log: &dyn EventLog,
    keys: Option<&KeyStore>,
    partition: &TopicPartition,
    mut each: impl FnMut(&Record) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    let end = log.end_offset(partition).await?;
    let mut offset = 0;
    while offset < end {
        let records = log.read(partition, offset, 4096).await?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        if let Some(keys) = keys {
            keys.prepare(&records).await?;
        }
        for record in records.iter().filter(|r| r.offset < end) {
            each(record)?;
        }
    }
    Ok(())
}

impl<A: Aggregate> Processor for AggregateProcessor<A> {
    fn group(&self) -> &str {
        &self.group
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![<A::Command as Message>::TOPIC]
    }

    fn start(&self) -> StartFrom {
        StartFrom::Beginning
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    fn dead_letter(&mut self, record: &Record, reason: String, outputs: &mut Vec<OutRecord>) -> bool {
        remote::read_reply_to(record, &mut self.reply_to);
        self.letter(record, reason, outputs);
        true
    }

    async fn assigned(&mut self, log: &dyn EventLog, partitions: &[TopicPartition]) -> Result<(), RuntimeError> {
        if self.partition_count.is_none() {
            self.partition_count = log.partition_count(<A::Command as Message>::TOPIC).await?;
        }
        for tp in partitions {
            let (entities, rebuilt) = self.restore(log, tp.partition).await?;
            if rebuilt {
                self.snapshot_all(tp.partition, &entities);
            }
            self.partitions.insert(tp.partition, entities);
        }
        Ok(())
    }

    fn upkeep(&mut self) -> Vec<OutRecord> {
        // Only the snapshots `assigned` queued: no record has been handled since.
        let rebuilt = std::mem::take(&mut self.changed.records);
        self.changed.clear();
        rebuilt
    }

    fn revoked(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.partitions.remove(&tp.partition);
        }
        // Outcomes of an uncommitted batch are not revealed: the new owner answers, in memory or
        // on the reply topic the command names.
        self.pending.clear();
        self.changed.clear();
        self.forgetting.clear();
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        // Commands that name positions are decided once the module's projections have read
        // them: one wait for the whole batch.
        let after: Vec<Position> = records.iter().flat_map(remote::after_of).collect();
        let behind = match after.is_empty() {
            true => None,
            false => self.wait_for_projections(&after).await,
        };
        let now = self.clock.now();
        for record in records {
            // Decided on what the projections show before they read the positions, the command
            // could be refused wrongly (an order "unknown" that is on the log): its caller
            // hears that it was not decided, and may send it again.
            if let Some(reason) = &behind
                && !remote::after_of(record).is_empty()
            {
                self.not_caught_up(record, reason.clone());
                continue;
            }
            self.handle(record, now, outputs);
        }
        // One snapshot per changed entity per batch, in the same atomic write as its events.
        outputs.append(&mut self.changed.records);
        self.changed.clear();
        // Forgetting deletes the subject's keys in the same write as the event that says so.
        for subject in &self.forgetting {
            outputs.extend(self.keys.forget(subject));
        }
    }

    async fn committed(&mut self, log: &dyn EventLog, written: Vec<Position>, _read: &[(TopicPartition, u64)]) {
        for subject in self.forgetting.drain(..) {
            self.keys.forgotten(&subject);
        }
        let mut remote_replies = Vec::new();
        for (mut pending, reply_to) in std::mem::take(&mut self.pending) {
            if let Pending::Accepted { events, first_output, .. } = &mut pending {
                for (event, position) in events.iter_mut().zip(&written[*first_output..]) {
                    event.position = Some(position.clone());
                }
            }
            // A caller in this process hears the outcome in memory. Any other hears it on the
            // topic its command names: it runs where the module does not, or where another
            // instance of the module runs (that instance does not own the command's partition).
            let id = pending.id();
            match (self.replies.caller(&id), reply_to) {
                (Some(caller), _) => {
                    let _ = caller.send(pending.into_outcome());
                }
                (None, Some(topic)) => remote_replies.push(pending.into_reply(topic)),
                (None, None) => {
                    // A command nobody waits for (a reaction's) is rejected in silence otherwise.
                    if let Pending::Rejected { error, .. } = pending {
                        tracing::info!(group = self.group, command = %id, reason = %error, "command rejected");
                    }
                }
            }
        }
        // Published after the commit, so that only committed outcomes are revealed. A reply lost
        // here (a crash, the log away) is asked for again: the caller repeats the command.
        if !remote_replies.is_empty()
            && let Err(error) = log.append(remote_replies).await
        {
            tracing::warn!(group = self.group, %error, "cannot publish the outcomes of commands from other processes; their callers will repeat them");
        }
    }
}
