//! The data-module processor: one writer per entity. It owns the partitions of
//! `<module>.commands` assigned to it, holds their entities' state in memory (restored from
//! `<module>.state`), runs `decide`, and writes the events, the new snapshots and the command
//! positions in one atomic write. Replies go out after the write is committed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::gateway::{Accepted, CommandError, Replies};
use super::processor::Processor;
use super::{RuntimeError, Settings, dead_letter};
use crate::codec::{self, DecodeError};
use crate::log::{EventLog, Headers, OutRecord, Record, StartFrom, TopicPartition};
use crate::model::{Aggregate, Clock, Envelope, Message, Position};

type Key<A> = <<A as Aggregate>::Command as Message>::Key;

/// The entities of one partition. Keys are reference IDs chosen by the platform, not by an
/// attacker, so a fast hasher serves (SipHash cost a percent of the whole chain).
type Entities<A> = HashMap<Key<A>, Entity<A>, foldhash::fast::RandomState>;

/// One entity as held by its writer and snapshotted on `<module>.state`.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
struct Entity<A> {
    state: A,
    /// How many events the entity has had.
    version: u64,
    /// The ids of the latest commands applied, so that a repeated command is not applied twice.
    seen: VecDeque<Uuid>,
}

impl<A: Default> Default for Entity<A> {
    fn default() -> Self {
        Entity { state: A::default(), version: 0, seen: VecDeque::new() }
    }
}

impl<A> Entity<A> {
    fn remember(&mut self, command: Uuid, limit: usize) {
        self.seen.push_back(command);
        while self.seen.len() > limit {
            self.seen.pop_front();
        }
    }
}

/// An outcome waiting for the commit.
enum Pending<A: Aggregate> {
    Accepted { id: Uuid, events: Vec<Envelope<A::Event>>, first_output: usize },
    Duplicate { id: Uuid },
    Rejected { id: Uuid, error: A::Error },
    Failed { id: Uuid, reason: String },
}

pub(crate) struct AggregateProcessor<A: Aggregate> {
    group: String,
    events: Arc<str>,
    snapshots: Arc<str>,
    dead_letters: Arc<str>,
    services: Arc<A::Services>,
    replies: Arc<Replies<A>>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// Entities per owned partition.
    partitions: HashMap<u32, Entities<A>>,
    pending: Vec<Pending<A>>,
    /// Entities changed in the current batch.
    changed: Vec<(u32, Key<A>)>,
}

/// The topic names of a data module.
pub(crate) fn state_topic(module: &str) -> String {
    format!("{module}.state")
}

pub(crate) fn group_of(module: &str) -> String {
    format!("{module}.aggregate")
}

impl<A: Aggregate> AggregateProcessor<A> {
    pub(crate) fn new(
        services: Arc<A::Services>,
        replies: Arc<Replies<A>>,
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
            clock,
            settings,
            partitions: HashMap::new(),
            pending: Vec::new(),
            changed: Vec::new(),
        }
    }

    fn snapshot(&self, partition: u32, key: &Key<A>, entity: &Entity<A>) -> OutRecord {
        let value = serde_json::to_vec(entity)
            .unwrap_or_else(|error| panic!("cannot serialise the state of {key} as JSON: {error}"));
        OutRecord {
            topic: self.snapshots.clone(),
            partition: Some(partition),
            key: Some(key.to_string().into()),
            value: Some(value.into()),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// Restores one partition from its snapshots, or from its events when it has none.
    async fn restore(&self, log: &dyn EventLog, partition: u32) -> Result<Entities<A>, RuntimeError> {
        let mut entities = Entities::<A>::default();
        let snapshots = TopicPartition::new(self.snapshots.clone(), partition);
        let mut restored_any = false;
        for_each_record(log, &snapshots, |record| {
            restored_any = true;
            let key: Key<A> = record.key_text().parse().map_err(|error| restore_error(record, &error))?;
            match &record.value {
                None => {
                    entities.remove(&key);
                }
                Some(value) => {
                    let entity = serde_json::from_slice(value).map_err(|error| restore_error(record, &error))?;
                    entities.insert(key, entity);
                }
            }
            Ok(())
        })
        .await?;
        if restored_any {
            return Ok(entities);
        }
        let events = TopicPartition::new(self.events.clone(), partition);
        let limit = self.settings.seen_commands;
        for_each_record(log, &events, |record| {
            let envelope = codec::decode::<A::Event>(record).map_err(|error| restore_error(record, &error))?;
            let entity: &mut Entity<A> = entities.entry(envelope.payload.key().clone()).or_default();
            entity.state.evolve(&envelope.payload);
            entity.version += 1;
            if let Some(command) = envelope.causation_id
                && entity.seen.back() != Some(&command)
            {
                entity.remember(command, limit);
            }
            Ok(())
        })
        .await?;
        Ok(entities)
    }

    fn handle(&mut self, record: &Record, now: jiff::Timestamp, outputs: &mut Vec<OutRecord>) {
        let command = match codec::decode::<A::Command>(record) {
            Ok(command) => command,
            Err(error) => return self.dead_letter(record, error.to_string(), outputs),
        };
        let id = command.id;
        let partition = record.partition;
        let key = command.payload.key().clone();
        let entity = self.partitions.entry(partition).or_default().entry(key.clone()).or_default();
        if entity.seen.contains(&id) {
            self.pending.push(Pending::Duplicate { id });
            return;
        }
        let events = match A::decide(&entity.state, &command.payload, &self.services) {
            Ok(events) => events,
            Err(error) => {
                self.pending.push(Pending::Rejected { id, error });
                return;
            }
        };
        if let Some(stray) = events.iter().find(|e| e.key() != &key) {
            let reason = format!(
                "decide returned an event for {} while handling a command for {key}: an entity may only change itself",
                stray.key()
            );
            return self.dead_letter(record, reason, outputs);
        }
        let first_output = outputs.len();
        let events: Vec<_> = events
            .into_iter()
            .map(|event| {
                entity.state.evolve(&event);
                Envelope::caused_by(event, &command, now)
            })
            .collect();
        entity.version += events.len() as u64;
        entity.remember(id, self.settings.seen_commands);
        outputs.extend(events.iter().map(|e| codec::encode_to(e, self.events.clone()).to_partition(partition)));
        self.pending.push(Pending::Accepted { id, events, first_output });
        self.changed.push((partition, key));
    }

    fn dead_letter(&mut self, record: &Record, reason: String, outputs: &mut Vec<OutRecord>) {
        outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &reason));
        if let Some(id) = codec::lineage(record).map(|l| l.id) {
            self.pending.push(Pending::Failed { id, reason });
        }
    }
}

fn restore_error(record: &Record, error: &dyn std::fmt::Display) -> RuntimeError {
    RuntimeError::Restore { position: codec::position_of(record), reason: error.to_string() }
}

/// Reads a partition from the beginning to its current end.
async fn for_each_record(
    log: &dyn EventLog,
    partition: &TopicPartition,
    mut each: impl FnMut(&Record) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    let end = log.end_offset(partition).await?;
    let mut offset = 0;
    while offset < end {
        let records = log.read(partition, offset, 4096).await?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
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

    async fn assigned(&mut self, log: &dyn EventLog, partitions: &[TopicPartition]) -> Result<(), RuntimeError> {
        for tp in partitions {
            let entities = self.restore(log, tp.partition).await?;
            self.partitions.insert(tp.partition, entities);
        }
        Ok(())
    }

    fn revoked(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.partitions.remove(&tp.partition);
        }
        // Outcomes of an uncommitted batch are not revealed: the new owner will reply.
        self.pending.clear();
        self.changed.clear();
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        let now = self.clock.now();
        for record in records {
            self.handle(record, now, outputs);
        }
        // One snapshot per changed entity per batch, in the same atomic write as its events.
        let mut seen = std::collections::HashSet::new();
        for (partition, key) in std::mem::take(&mut self.changed) {
            if seen.insert((partition, key.clone())) {
                let entity = &self.partitions[&partition][&key];
                outputs.push(self.snapshot(partition, &key, entity));
            }
        }
    }

    fn committed(&mut self, written: Vec<Position>) {
        for pending in self.pending.drain(..) {
            match pending {
                Pending::Accepted { id, mut events, first_output } => {
                    for (event, position) in events.iter_mut().zip(&written[first_output..]) {
                        event.position = Some(position.clone());
                    }
                    self.replies.reply(&id, || Ok(Accepted { events, duplicate: false }));
                }
                Pending::Duplicate { id } => {
                    self.replies.reply(&id, || Ok(Accepted { events: Vec::new(), duplicate: true }));
                }
                Pending::Rejected { id, error } => {
                    // A command nobody waits for (a reaction's) is rejected in silence otherwise.
                    let message = error.to_string();
                    if !self.replies.reply(&id, || Err(CommandError::Rejected(error))) {
                        tracing::info!(group = self.group, command = %id, reason = message, "command rejected");
                    }
                }
                Pending::Failed { id, reason } => {
                    self.replies.reply(&id, || Err(CommandError::Failed { id, reason }));
                }
            }
        }
    }
}

impl From<DecodeError> for RuntimeError {
    fn from(error: DecodeError) -> Self {
        RuntimeError::Restore { position: error.position().clone(), reason: error.to_string() }
    }
}
