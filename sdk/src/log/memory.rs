//! The in-memory log: every semantic of the port, nothing durable. For tests, benchmarks and
//! demos. One lock guards everything, which makes the atomic write trivially atomic.
//!
//! Consumer groups rebalance eagerly: when a member joins or leaves, every member's partitions
//! are revoked and the new assignment is handed out; a write by a member of an older generation
//! is fenced (the coordination is shared with the embedded log, in `group.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::group::{Coordinator, Cursor};
use super::partitioner::destination;
use super::wakeup::Wakeups;
use super::{
    Cleanup, EventLog, GroupMember, LogError, OutRecord, Polled, Record, StartFrom, TopicPartition, TopicSpec,
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
    wakeups: Wakeups,
}

#[derive(Default)]
struct State {
    topics: HashMap<Arc<str>, Topic>,
    groups: Coordinator,
    /// Group -> its committed positions.
    committed: HashMap<String, HashMap<TopicPartition, u64>>,
    /// Round-robin counter for records with neither key nor partition.
    unkeyed: u32,
}

struct Topic {
    spec: TopicSpec,
    name: Arc<str>,
    partitions: Vec<Segments>,
}

/// A partition's records in fixed-size segments: appending never moves the records already
/// stored, where one growing `Vec` would copy the whole partition at every doubling.
#[derive(Default)]
struct Segments {
    segments: Vec<Vec<Record>>,
    len: usize,
    /// The offset of the first record kept (see [`EventLog::delete_before`]): the segments
    /// wholly below it are freed.
    first: usize,
}

impl Segments {
    const SIZE: usize = 4096;

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, record: Record) {
        // Told by the count, not by the last segment's length: a freed segment is empty.
        if self.len.is_multiple_of(Self::SIZE) {
            self.segments.push(Vec::with_capacity(Self::SIZE));
        }
        self.segments.last_mut().expect("a segment for the record").push(record);
        self.len += 1;
    }

    /// Deletes the records below `offset` (at most the end).
    fn delete_before(&mut self, offset: usize) {
        self.first = self.first.max(offset);
        for segment in &mut self.segments[..self.first / Self::SIZE] {
            *segment = Vec::new();
        }
    }

    /// Copies up to `max` records from offset `start` (or the first kept) on to `out`; returns
    /// how many.
    fn copy_to(&self, start: usize, max: usize, out: &mut Vec<Record>) -> usize {
        let start = start.max(self.first);
        let end = self.len.min(start.saturating_add(max));
        let mut at = start;
        while at < end {
            let segment = &self.segments[at / Self::SIZE];
            let from = at % Self::SIZE;
            let to = segment.len().min(from + (end - at));
            out.extend_from_slice(&segment[from..to]);
            at += to - from;
        }
        end.saturating_sub(start)
    }
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

    /// The names of the topics, in no particular order.
    pub fn topics(&self) -> Vec<String> {
        self.shared.lock().topics.keys().map(|name| name.to_string()).collect()
    }
}

impl State {
    fn topic(&self, name: &str) -> Result<&Topic, LogError> {
        self.topics.get(name).ok_or_else(|| LogError::UnknownTopic(name.to_owned()))
    }

    fn partition(&self, tp: &TopicPartition) -> Result<&Segments, LogError> {
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
        // A batch's records mostly go to a few topics in runs: one look-up per run.
        let mut last: Option<(&str, u32, Cleanup)> = None;
        for record in records {
            let (count, cleanup) = match last {
                Some((topic, count, cleanup)) if topic == &*record.topic => (count, cleanup),
                _ => {
                    let spec = &self.topic(&record.topic)?.spec;
                    let (count, cleanup) = (spec.partitions, spec.cleanup);
                    last = Some((&record.topic, count, cleanup));
                    (count, cleanup)
                }
            };
            let partition = destination(record, count, cleanup, &mut self.unkeyed)?;
            partitions.push(partition);
        }
        Ok(partitions)
    }

    fn write(&mut self, records: Vec<OutRecord>, partitions: Vec<u32>) -> Vec<Position> {
        let now = jiff::Timestamp::now().as_millisecond();
        let mut positions = Vec::with_capacity(records.len());
        let mut records = records.into_iter().zip(partitions).peekable();
        while let Some((first, _)) = records.peek() {
            // One look-up per run of records to the same topic.
            let topic = self.topics.get_mut(&first.topic).expect("checked by destinations");
            let name = topic.name.clone();
            while let Some((record, partition)) = records.next_if(|(record, _)| record.topic == name) {
                let log = &mut topic.partitions[partition as usize];
                let offset = log.len() as u64;
                log.push(Record {
                    topic: name.clone(),
                    partition,
                    offset,
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                    timestamp: record.timestamp.unwrap_or(now),
                });
                positions.push(Position { topic: name.clone(), partition, offset });
            }
        }
        positions
    }

    fn committed(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.committed.get(group).and_then(|c| c.get(tp).copied())
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        spec.check_partitions(super::LOCAL_MAX_PARTITIONS, "the memory log")?;
        let mut state = self.shared.lock();
        if let Some(existing) = state.topics.get(spec.name.as_str()) {
            return spec.check(existing.spec.partitions, existing.spec.cleanup);
        }
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let partitions = (0..spec.partitions).map(|_| Segments::default()).collect();
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
        self.shared.wakeups.records_written(positions.iter().map(|p| &*p.topic));
        Ok(positions)
    }

    async fn read(&self, tp: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let state = self.shared.lock();
        let mut records = Vec::new();
        state.partition(tp)?.copy_to(offset as usize, max, &mut records);
        Ok(records)
    }

    async fn end_offset(&self, tp: &TopicPartition) -> Result<u64, LogError> {
        Ok(self.shared.lock().partition(tp)?.len() as u64)
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        Ok(self.shared.lock().committed(group, tp))
    }

    async fn delete_before(&self, tp: &TopicPartition, offset: u64) -> Result<(), LogError> {
        let mut state = self.shared.lock();
        let end = state.partition(tp)?.len() as u64;
        if offset > end {
            let (topic, partition) = (tp.topic.to_string(), tp.partition);
            return Err(LogError::OffsetPastEnd { topic, partition, offset, end });
        }
        let topic = state.topics.get_mut(&*tp.topic).expect("the partition was found");
        topic.partitions[tp.partition as usize].delete_before(offset as usize);
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let mut state = self.shared.lock();
        state.topics.remove(topic);
        for positions in state.committed.values_mut() {
            positions.retain(|tp, _| &*tp.topic != topic);
        }
        Ok(())
    }

    async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        let mut state = self.shared.lock();
        state.groups.check_deletable(group)?;
        state.committed.remove(group);
        Ok(())
    }

    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        super::check_subscription(group, topics)?;
        let (id, waker) = {
            let mut state = self.shared.lock();
            let topics: Vec<Arc<str>> =
                topics.iter().map(|t| state.topic(t).map(|t| t.name.clone())).collect::<Result<_, _>>()?;
            let waker = self.shared.wakeups.register(group, &topics);
            (state.groups.join(group, topics), waker)
        };
        self.shared.wakeups.group_changed(group);
        Ok(Box::new(MemoryMember { shared: self.shared.clone(), cursor: Cursor::new(id, group, start), waker }))
    }
}

/// A member of a consumer group on the memory log.
struct MemoryMember {
    shared: Arc<Shared>,
    cursor: Cursor,
    /// Woken when records arrive on its topics or its group changes.
    waker: Arc<Notify>,
}

impl MemoryMember {
    /// Applies a new generation's assignment (eager: revoke all, assign all) under the lock.
    fn rebalance(&mut self, state: &State, generation: u64) -> Polled {
        let cursor = &mut self.cursor;
        let assignment = state
            .groups
            .assignment(&cursor.group, cursor.id, |t| state.topics.get(t).map_or(0, |t| t.spec.partitions));
        let group = cursor.group.clone();
        cursor.rebalance(
            generation,
            assignment,
            |tp| state.committed(&group, tp),
            |tp| state.partition(tp).map_or((0, 0), |r| (r.first as u64, r.len() as u64)),
        )
    }

    fn take_records(&mut self, state: &State, max: usize) -> Vec<Record> {
        let mut records = Vec::new();
        for (tp, position) in self.cursor.reads() {
            if records.len() >= max {
                break;
            }
            let Ok(log) = state.partition(&tp) else {
                continue;
            };
            if position < log.first as u64 {
                self.cursor.skip_to(&tp, log.first as u64);
            }
            log.copy_to(position as usize, max - records.len(), &mut records);
        }
        self.cursor.consumed(&records);
        records
    }
}

#[async_trait]
impl GroupMember for MemoryMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let shared = self.shared.clone();
        let waker = self.waker.clone();
        loop {
            {
                let state = shared.lock();
                let generation = state
                    .groups
                    .generation(&self.cursor.group, self.cursor.id)
                    .ok_or_else(|| self.cursor.fenced("this member has left the group"))?;
                if generation != self.cursor.generation() {
                    return Ok(self.rebalance(&state, generation));
                }
                let records = self.take_records(&state, max);
                if !records.is_empty() {
                    return Ok(Polled { records, ..Polled::default() });
                }
            }
            if tokio::time::timeout_at(deadline, waker.notified()).await.is_err() {
                return Ok(Polled::default());
            }
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.cursor.assigned().to_vec()
    }

    fn has_assignment(&self) -> bool {
        self.cursor.has_assignment()
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.cursor.position(partition)
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        let shared = self.shared.clone();
        let state = shared.lock();
        if state.groups.generation(&self.cursor.group, self.cursor.id).is_none() {
            return Err(self.cursor.fenced("this member has left the group"));
        }
        let group = self.cursor.group.clone();
        self.cursor
            .rewind(|tp| state.committed(&group, tp), |tp| state.partition(tp).map_or(0, |r| r.first as u64));
        Ok(())
    }

    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        let written = {
            let mut state = self.shared.lock();
            state.groups.check_commit(&self.cursor, &positions)?;
            let partitions = state.destinations(&outputs)?;
            let written = state.write(outputs, partitions);
            state.committed.entry(self.cursor.group.clone()).or_default().extend(positions);
            written
        };
        self.shared.wakeups.records_written(written.iter().map(|p| &*p.topic));
        Ok(written)
    }

    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        Ok(()) // Drop does the work, so a member that panics also leaves.
    }
}

impl Drop for MemoryMember {
    fn drop(&mut self) {
        self.shared.lock().groups.leave(&self.cursor.group, self.cursor.id);
        self.shared.wakeups.group_changed(&self.cursor.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64) -> Record {
        Record {
            topic: Arc::from("t"),
            partition: 0,
            offset,
            key: None,
            value: None,
            headers: crate::log::Headers::new(),
            timestamp: 0,
        }
    }

    #[test]
    fn deleting_frees_the_segments_wholly_below() {
        let mut partition = Segments::default();
        (0..10_000).for_each(|offset| partition.push(record(offset)));
        partition.delete_before(9_000);
        let freed: Vec<usize> = partition.segments.iter().map(Vec::capacity).collect();
        assert_eq!(freed, [0, 0, Segments::SIZE], "segments 0 and 1 end below 9000, the third holds it");
        let mut out = Vec::new();
        partition.copy_to(0, 3, &mut out);
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), [9_000, 9_001, 9_002]);
        partition.delete_before(10);
        out.clear();
        partition.copy_to(8_999, 1, &mut out);
        assert_eq!(out[0].offset, 9_000, "an earlier offset does not bring records back");
        partition.push(record(10_000));
        assert_eq!(partition.len(), 10_001);
    }

    /// A member whose position falls below the first record kept (another group deleted what
    /// it had not read) moves up to it, and so to the end when nothing is left.
    #[tokio::test]
    async fn a_member_below_the_deleted_records_moves_up_to_the_first_kept() {
        let log = MemoryLog::new();
        log.create_topic(&TopicSpec::keep("t", 1)).await.unwrap();
        let record = OutRecord {
            topic: Arc::from("t"),
            partition: Some(0),
            key: None,
            value: None,
            headers: crate::log::Headers::new(),
            timestamp: None,
        };
        log.append(vec![record.clone(), record.clone(), record]).await.unwrap();
        let tp = TopicPartition::new("t", 0);
        let mut member = log.join("slow", &["t"], StartFrom::Beginning).await.unwrap();
        while member.assignment().is_empty() {
            member.poll(0, Duration::from_millis(10)).await.unwrap();
        }
        assert_eq!(member.position(&tp), Some(0));
        log.delete_before(&tp, 3).await.unwrap();
        let polled = member.poll(10, Duration::from_millis(10)).await.unwrap();
        assert!(polled.records.is_empty());
        assert_eq!(member.position(&tp), Some(3), "at the end, where nothing is left to read");
    }

    /// Deleting up to the end of a full segment frees it too: the next record starts a new one.
    #[tokio::test]
    async fn a_record_after_a_whole_full_segment_was_deleted_is_read_back() {
        let log = MemoryLog::new();
        log.create_topic(&TopicSpec::keep("t", 1)).await.unwrap();
        let record = |i: usize| OutRecord {
            topic: Arc::from("t"),
            partition: Some(0),
            key: Some(bytes::Bytes::from(format!("k{i}"))),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: crate::log::Headers::new(),
            timestamp: None,
        };
        log.append((0..Segments::SIZE).map(record).collect()).await.unwrap();
        let tp = TopicPartition::new("t", 0);
        log.delete_before(&tp, Segments::SIZE as u64).await.unwrap();
        log.append(vec![record(Segments::SIZE)]).await.unwrap();
        let read = log.read(&tp, 0, 10).await.unwrap();
        assert_eq!(read.iter().map(|r| r.offset).collect::<Vec<_>>(), [Segments::SIZE as u64]);
        assert_eq!(read[0].key.as_deref(), Some(format!("k{}", Segments::SIZE).as_bytes()));
    }
}

/// For the crate's tests: a memory log whose calls fail as a test chooses, while it says so.
#[cfg(test)]
pub(crate) mod flaky {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;

    use super::MemoryLog;
    use crate::log::{EventLog, GroupMember, LogError, OutRecord, Record, StartFrom, TopicPartition, TopicSpec};
    use crate::model::Position;

    /// Which calls fail.
    pub(crate) enum Fails {
        /// Every `append`.
        Appends,
        /// `end_offset` of this topic's partitions.
        EndOffsetOf(&'static str),
    }

    /// A memory log whose `fails` calls fail while `failing` is set.
    pub(crate) struct Flaky {
        pub(crate) log: Arc<MemoryLog>,
        pub(crate) fails: Fails,
        pub(crate) failing: AtomicBool,
    }

    impl Flaky {
        pub(crate) fn over(log: Arc<MemoryLog>, fails: Fails, failing: bool) -> Arc<Self> {
            Arc::new(Flaky { log, fails, failing: AtomicBool::new(failing) })
        }

        pub(crate) fn set_failing(&self, failing: bool) {
            self.failing.store(failing, Ordering::SeqCst);
        }

        fn away(&self) -> LogError {
            LogError::Backend("the broker is away".into())
        }

        fn failing(&self) -> bool {
            self.failing.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl EventLog for Flaky {
        async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
            self.log.create_topic(spec).await
        }
        async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
            self.log.partition_count(topic).await
        }
        async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
            match (&self.fails, self.failing()) {
                (Fails::Appends, true) => Err(self.away()),
                _ => self.log.append(records).await,
            }
        }
        async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
            self.log.read(partition, offset, max).await
        }
        async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError> {
            match (&self.fails, self.failing()) {
                (Fails::EndOffsetOf(topic), true) if *topic == &*partition.topic => Err(self.away()),
                _ => self.log.end_offset(partition).await,
            }
        }
        async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError> {
            self.log.committed(group, partition).await
        }
        async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError> {
            self.log.delete_before(partition, offset).await
        }
        async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
            self.log.delete_topic(topic).await
        }
        async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
            self.log.join(group, topics, start).await
        }
    }
}
