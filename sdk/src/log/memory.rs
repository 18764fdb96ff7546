//! The in-memory log: every semantic of the port, nothing durable. For tests, benchmarks and
//! demos. One lock guards everything, which makes the atomic write trivially atomic.
//!
//! Consumer groups rebalance eagerly: when a member joins or leaves, every member's partitions
//! are revoked and the new assignment is handed out; a write by a member of an older generation
//! is fenced.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    EventLog, GroupMember, LogError, OutRecord, Polled, Record, StartFrom, TopicPartition, TopicSpec, partition_for,
};
use crate::model::Position;

/// The in-memory log. Cheap to clone: clones share the same topics.
#[derive(Clone, Default)]
pub struct MemoryLog {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every append and every group change.
    changed: Notify,
    next_member: AtomicU64,
}

#[derive(Default)]
struct State {
    topics: HashMap<Arc<str>, Topic>,
    groups: HashMap<String, Group>,
    /// Round-robin counter for records with neither key nor partition.
    unkeyed: u32,
}

struct Topic {
    spec: TopicSpec,
    name: Arc<str>,
    partitions: Vec<Vec<Record>>,
}

#[derive(Default)]
struct Group {
    generation: u64,
    /// Member id -> the topics it subscribes to.
    members: BTreeMap<u64, Vec<Arc<str>>>,
    committed: HashMap<TopicPartition, u64>,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("MemoryLog")
            .field("topics", &state.topics.len())
            .field("groups", &state.groups.len())
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written batch (each write is
        // applied after all checks), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemoryLog {
    /// A new, empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty log behind an `Arc`, ready to be shared by an [`App`](crate::App).
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }
}

impl State {
    fn topic(&self, name: &str) -> Result<&Topic, LogError> {
        self.topics.get(name).ok_or_else(|| LogError::UnknownTopic(name.to_owned()))
    }

    fn partition(&self, tp: &TopicPartition) -> Result<&Vec<Record>, LogError> {
        let topic = self.topic(&tp.topic)?;
        topic.partitions.get(tp.partition as usize).ok_or_else(|| LogError::UnknownPartition {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            partitions: topic.spec.partitions,
        })
    }

    /// Checks every record's destination before anything is written, so a batch is all or nothing.
    fn destinations(&mut self, records: &[OutRecord]) -> Result<Vec<u32>, LogError> {
        let mut partitions = Vec::with_capacity(records.len());
        for record in records {
            let count = self.topic(&record.topic)?.spec.partitions;
            let partition = match (record.partition, &record.key) {
                (Some(p), _) if p < count => p,
                (Some(p), _) => {
                    return Err(LogError::UnknownPartition {
                        topic: record.topic.to_string(),
                        partition: p,
                        partitions: count,
                    });
                }
                (None, Some(key)) => partition_for(key, count),
                (None, None) => {
                    self.unkeyed = self.unkeyed.wrapping_add(1);
                    self.unkeyed % count
                }
            };
            partitions.push(partition);
        }
        Ok(partitions)
    }

    fn write(&mut self, records: Vec<OutRecord>, partitions: Vec<u32>) -> Vec<Position> {
        let now = jiff::Timestamp::now().as_millisecond();
        records
            .into_iter()
            .zip(partitions)
            .map(|(record, partition)| {
                let topic = self.topics.get_mut(&record.topic).expect("checked by destinations");
                let log = &mut topic.partitions[partition as usize];
                let offset = log.len() as u64;
                log.push(Record {
                    topic: topic.name.clone(),
                    partition,
                    offset,
                    key: record.key,
                    value: record.value,
                    headers: record.headers.into(),
                    timestamp: record.timestamp.unwrap_or(now),
                });
                Position { topic: topic.name.clone(), partition, offset }
            })
            .collect()
    }

    /// Round-robin assignment of every partition of the subscribed topics to the members that
    /// subscribe to its topic.
    fn assignment(&self, group: &str, member: u64) -> Vec<TopicPartition> {
        let Some(group) = self.groups.get(group) else { return Vec::new() };
        let mut topics: Vec<&Arc<str>> = group.members.values().flatten().collect();
        topics.sort();
        topics.dedup();
        let mut turn = 0usize;
        let mut mine = Vec::new();
        for topic in topics {
            let subscribers: Vec<u64> =
                group.members.iter().filter(|(_, t)| t.contains(topic)).map(|(id, _)| *id).collect();
            let count = self.topics.get(topic).map_or(0, |t| t.spec.partitions);
            for partition in 0..count {
                if subscribers[turn % subscribers.len()] == member {
                    mine.push(TopicPartition { topic: topic.clone(), partition });
                }
                turn += 1;
            }
        }
        mine
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        if spec.partitions == 0 {
            return Err(LogError::Backend(format!("topic `{}` needs at least one partition", spec.name)));
        }
        let mut state = self.shared.lock();
        if let Some(existing) = state.topics.get(spec.name.as_str()) {
            return match existing.spec.partitions == spec.partitions {
                true => Ok(()),
                false => Err(LogError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing: existing.spec.partitions,
                    requested: spec.partitions,
                }),
            };
        }
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let partitions = (0..spec.partitions).map(|_| Vec::new()).collect();
        state.topics.insert(name.clone(), Topic { spec: spec.clone(), name, partitions });
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
        Ok(self.shared.lock().topics.get(topic).map(|t| t.spec.partitions))
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
        let positions = {
            let mut state = self.shared.lock();
            let partitions = state.destinations(&records)?;
            state.write(records, partitions)
        };
        self.shared.changed.notify_waiters();
        Ok(positions)
    }

    async fn read(&self, tp: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let state = self.shared.lock();
        let records = state.partition(tp)?;
        let start = (offset as usize).min(records.len());
        Ok(records[start..].iter().take(max).cloned().collect())
    }

    async fn end_offset(&self, tp: &TopicPartition) -> Result<u64, LogError> {
        Ok(self.shared.lock().partition(tp)?.len() as u64)
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        Ok(self.shared.lock().groups.get(group).and_then(|g| g.committed.get(tp).copied()))
    }

    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        let id = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.lock();
            let topics: Vec<Arc<str>> = topics
                .iter()
                .map(|t| state.topic(t).map(|t| t.name.clone()))
                .collect::<Result<_, _>>()?;
            let entry = state.groups.entry(group.to_owned()).or_default();
            entry.members.insert(id, topics);
            entry.generation += 1;
        }
        self.shared.changed.notify_waiters();
        Ok(Box::new(MemoryMember {
            shared: self.shared.clone(),
            id,
            group: group.to_owned(),
            start,
            generation: 0,
            assigned: Vec::new(),
            positions: HashMap::new(),
            origins: HashMap::new(),
            turn: 0,
        }))
    }
}

/// A member of a consumer group on the memory log.
struct MemoryMember {
    shared: Arc<Shared>,
    id: u64,
    group: String,
    start: StartFrom,
    /// The generation of the current assignment (0: none yet).
    generation: u64,
    assigned: Vec<TopicPartition>,
    /// The next offset to hand out per assigned partition.
    positions: HashMap<TopicPartition, u64>,
    /// Where each assigned partition started, for a rewind when nothing was committed yet.
    origins: HashMap<TopicPartition, u64>,
    /// Which partition the next poll starts with, so that no partition starves.
    turn: usize,
}

impl MemoryMember {
    fn fenced(&self, reason: impl Into<String>) -> LogError {
        LogError::Fenced { group: self.group.clone(), reason: reason.into() }
    }

    /// Applies a new generation's assignment (eager: revoke all, assign all) under the lock.
    fn rebalance(&mut self, state: &State, generation: u64) -> Polled {
        let revoked = std::mem::take(&mut self.assigned);
        self.assigned = state.assignment(&self.group, self.id);
        self.generation = generation;
        self.positions.clear();
        let committed = &state.groups[&self.group].committed;
        for tp in &self.assigned {
            let position = match (committed.get(tp), self.start) {
                (Some(offset), _) => *offset,
                (None, StartFrom::Beginning) => 0,
                (None, StartFrom::End) => state.partition(tp).map_or(0, |r| r.len() as u64),
            };
            self.positions.insert(tp.clone(), position);
        }
        self.origins = self.positions.clone();
        Polled { revoked, assigned: self.assigned.clone(), records: Vec::new() }
    }

    fn take_records(&mut self, state: &State, max: usize) -> Vec<Record> {
        let mut records = Vec::new();
        let count = self.assigned.len();
        for i in 0..count {
            if records.len() >= max {
                break;
            }
            let tp = &self.assigned[(self.turn + i) % count];
            let Ok(log) = state.partition(tp) else { continue };
            let position = self.positions.get_mut(tp).expect("every assigned partition has a position");
            let start = *position as usize;
            let take = (log.len().saturating_sub(start)).min(max - records.len());
            records.extend_from_slice(&log[start..start + take]);
            *position += take as u64;
        }
        self.turn = self.turn.wrapping_add(1);
        records
    }
}

#[async_trait]
impl GroupMember for MemoryMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let shared = self.shared.clone();
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = shared.lock();
                let generation = state
                    .groups
                    .get(&self.group)
                    .filter(|g| g.members.contains_key(&self.id))
                    .map(|g| g.generation)
                    .ok_or_else(|| self.fenced("this member has left the group"))?;
                if generation != self.generation {
                    return Ok(self.rebalance(&state, generation));
                }
                let records = self.take_records(&state, max);
                if !records.is_empty() {
                    return Ok(Polled { records, ..Polled::default() });
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(Polled::default());
            }
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.clone()
    }

    fn has_assignment(&self) -> bool {
        self.generation != 0
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.positions.get(partition).copied()
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        let shared = self.shared.clone();
        let state = shared.lock();
        let group = state.groups.get(&self.group).ok_or_else(|| self.fenced("this member has left the group"))?;
        for tp in &self.assigned {
            let position = group.committed.get(tp).or_else(|| self.origins.get(tp)).copied().unwrap_or(0);
            self.positions.insert(tp.clone(), position);
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        let written = {
            let mut state = self.shared.lock();
            let generation = state.groups.get(&self.group).map(|g| g.generation);
            if generation != Some(self.generation) {
                return Err(self.fenced(format!(
                    "the group rebalanced (generation {:?}, this member has {})",
                    generation, self.generation
                )));
            }
            if let Some((tp, _)) = positions.iter().find(|(tp, _)| !self.assigned.contains(tp)) {
                return Err(self.fenced(format!("partition {tp} is not assigned to this member")));
            }
            let partitions = state.destinations(&outputs)?;
            let written = state.write(outputs, partitions);
            let group = state.groups.get_mut(&self.group).expect("checked above");
            group.committed.extend(positions);
            written
        };
        self.shared.changed.notify_waiters();
        Ok(written)
    }

    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        Ok(()) // Drop does the work, so a member that panics also leaves.
    }
}

impl Drop for MemoryMember {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(group) = state.groups.get_mut(&self.group)
            && group.members.remove(&self.id).is_some()
        {
            group.generation += 1;
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }
}
