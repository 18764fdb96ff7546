//! The projection processor and the handle that reads a projection.
//!
//! A projection's state lives in memory and is rebuilt from the beginning of the log when the
//! process starts: each instance uses a consumer group of its own and reads every partition.
//! A checkpointed projection writes its state now and then with its input positions, in one
//! atomic write, and a restart goes on from there.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::processor::{LastWrite, Processor};
use super::progress::ProgressBoard;
use super::{RuntimeError, dead_letter};
use crate::log::{
    EventLog, GroupMember, Headers, LogError, OutRecord, Record, StartFrom, TopicPartition, TopicSpec, murmur2,
};
use crate::model::{Position, Projection};

/// The projection's name within the platform: `payment.orders`, or `order-history` for a
/// function module's projection of the same name.
pub(crate) fn id_of<P: Projection>() -> String {
    match P::MODULE == P::NAME {
        true => P::NAME.to_owned(),
        false => format!("{}.{}", P::MODULE, P::NAME),
    }
}

pub(crate) struct ProjectionProcessor<P: Projection> {
    state: Arc<RwLock<P>>,
    group: String,
    id: String,
    dead_letters: Arc<str>,
    /// Records already dead-lettered by an earlier instance: a projection replays from the
    /// beginning on every start, and must not letter them again.
    lettered: Option<HashSet<(String, u32, u64)>>,
    /// Dead letters handed to a write that has not been committed yet. The records they are
    /// about count as applied (the read model keeps them), so a batch written again after a
    /// failed write skips those records: these letters go with it instead.
    unwritten: Vec<OutRecord>,
    /// The next offset to apply per topic and partition. A projection commits no positions (a
    /// checkpointed one only with a checkpoint), so partitions it gets back after losing them
    /// (Kafka's group session lost in a broker restart) start from the beginning (or the last
    /// checkpoint) again: what it applied already is skipped.
    applied: Applied,
    checkpoint: Option<Checkpointing<P>>,
}

/// The next offset to apply per topic and partition.
type Applied = Vec<(Arc<str>, Vec<u64>)>;

/// The next offset to apply of `topic`'s `partition`, 0 when nothing of it was.
fn next_mut<'a>(applied: &'a mut Applied, topic: &Arc<str>, partition: u32) -> &'a mut u64 {
    let index = match applied.iter().position(|(t, _)| Arc::ptr_eq(t, topic) || t == topic) {
        Some(index) => index,
        None => {
            applied.push((topic.clone(), Vec::new()));
            applied.len() - 1
        }
    };
    let partitions = &mut applied[index].1;
    let partition = partition as usize;
    if partitions.len() <= partition {
        partitions.resize(partition + 1, 0);
    }
    &mut partitions[partition]
}

/// The next offset to apply of `tp`, 0 when nothing of it was.
fn next_of(applied: &Applied, tp: &TopicPartition) -> u64 {
    let partitions = applied.iter().find(|(topic, _)| *topic == tp.topic).map(|(_, p)| p);
    partitions.and_then(|p| p.get(tp.partition as usize).copied()).unwrap_or(0)
}

/// How a projection's read model is checkpointed
/// ([`App::checkpointed_projection`](crate::App::checkpointed_projection)): its state and the
/// positions it has applied are written with its input positions in one atomic write, so that a
/// restart reads only what came after the last checkpoint instead of the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoints {
    /// The version of the read model: of its state's shape and of what its handlers make of the
    /// events. Raise it when either changes: a checkpoint of another version is not restored,
    /// and the read model is rebuilt from the beginning of the log.
    pub version: u32,
    /// How often a checkpoint is written while events come: at the first batch after each
    /// interval. A restart reads again at most what came in the last interval.
    pub interval: Duration,
}

impl Checkpoints {
    /// Checkpoints of `version`, every 10 seconds.
    pub fn version(version: u32) -> Self {
        Checkpoints { version, interval: Duration::from_secs(10) }
    }

    /// The same, written every `interval`.
    pub fn every(self, interval: Duration) -> Self {
        Checkpoints { interval, ..self }
    }
}

/// The largest checkpoint written, well below the 1 MB a Kafka client and topic take by default
/// (key and batch overhead count too): a larger read model is not checkpointed any more (with a
/// warning), and a restart goes on from the last checkpoint written. A log that refuses a
/// smaller one as too large stops the checkpoints the same way.
const LARGEST_CHECKPOINT: usize = 900_000;

/// A checkpoint as it is written: JSON, keyed by the instance's group.
#[derive(Serialize)]
struct CheckpointOut<'a, P> {
    version: u32,
    applied: Vec<(&'a str, u32, u64)>,
    state: &'a P,
}

#[derive(Deserialize)]
struct CheckpointVersion {
    version: u32,
}

#[derive(Deserialize)]
struct CheckpointIn<P> {
    applied: Vec<(String, u32, u64)>,
    state: P,
}

fn encode_checkpoint<P: Serialize>(version: u32, applied: &Applied, state: &P) -> serde_json::Result<Vec<u8>> {
    let applied = (applied.iter())
        .flat_map(|(topic, next)| {
            next.iter().enumerate().map(move |(partition, next)| (&**topic, partition as u32, *next))
        })
        .filter(|(_, _, next)| *next > 0)
        .collect();
    serde_json::to_vec(&CheckpointOut { version, applied, state })
}

/// Where a checkpointed projection keeps its checkpoints, and when it writes the next.
pub(crate) struct Checkpointing<P> {
    tp: TopicPartition,
    key: Bytes,
    checkpoints: Checkpoints,
    encode: fn(u32, &Applied, &P) -> serde_json::Result<Vec<u8>>,
    last: Instant,
    /// Records applied since the last checkpoint.
    applied_since: bool,
    /// The batch being written carries a checkpoint: its input positions go with it.
    writing: bool,
    /// The read model could not be written (too large, or not JSON): no more checkpoints in
    /// this run; a restart goes on from the last one written.
    given_up: bool,
    /// Deleting older checkpoints failed once (said once, not at every checkpoint).
    delete_failed: bool,
}

/// The checkpoint of an instance's projection: its topic (one partition, compacted, one per
/// instance so that the older checkpoints can be deleted) and its key.
pub(crate) struct CheckpointPlace {
    pub(crate) topic: String,
    pub(crate) group: String,
}

impl CheckpointPlace {
    /// The checkpoint topic: one partition, compacted, and its records deletable (Kafka deletes
    /// records below an offset only in a topic with the `delete` policy), kept for a century
    /// so that an idle projection's last checkpoint stays.
    pub(crate) fn topic_spec(&self) -> TopicSpec {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
        TopicSpec::compact_and_expire(self.topic.clone(), 1, CENTURY)
    }

    /// The place of projection `id`'s checkpoints for this instance (`instance`: the log's
    /// [`instance_id`](EventLog::instance_id), where processes share the log).
    pub(crate) fn of(id: &str, instance: Option<&str>) -> Self {
        match instance {
            None => CheckpointPlace { topic: format!("{id}.checkpoint"), group: format!("{id}@checkpointed") },
            Some(instance) => {
                // A topic name takes letters, digits, `.`, `_` and `-` only. Where a character
                // had to be replaced, a hash of the whole id keeps `a/b` and `a-b` apart: two
                // instances on one topic would delete each other's checkpoints.
                let safe: String = (instance.chars())
                    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
                    .collect();
                let topic = match safe == instance {
                    true => format!("{id}.checkpoint.{safe}"),
                    false => format!("{id}.checkpoint.{safe}-{:08x}", murmur2(instance.as_bytes())),
                };
                CheckpointPlace { topic, group: format!("{id}@{instance}") }
            }
        }
    }
}

/// What the last checkpoint of a projection holds.
pub(crate) enum Restored<P> {
    /// The read model and the positions it has applied.
    Found(P, Applied),
    /// No checkpoint yet.
    None,
    /// One that cannot be restored, and why: the read model is rebuilt from the beginning.
    Unusable(String),
}

/// Reads the last checkpoint at `place`, if it is one of `version` that reads as a `P`.
pub(crate) async fn restore<P: DeserializeOwned>(
    log: &dyn EventLog,
    place: &CheckpointPlace,
    version: u32,
) -> Result<Restored<P>, RuntimeError> {
    Ok(match last_checkpoint(log, &place.topic, place.group.as_bytes()).await? {
        Some(record) => decode_checkpoint(&record, version),
        None => Restored::None,
    })
}

/// The last checkpoint record under `key` on `topic`.
async fn last_checkpoint(log: &dyn EventLog, topic: &str, key: &[u8]) -> Result<Option<Record>, LogError> {
    let mut last: Option<Record> = None;
    dead_letter::read_all(log, topic, |records| {
        if let Some(record) = records.iter().rev().find(|r| r.key.as_deref() == Some(key)) {
            last = Some(record.clone());
        }
    })
    .await?;
    Ok(last)
}

/// What a checkpoint record holds, if it is one of `version` that reads as a `P`.
fn decode_checkpoint<P: DeserializeOwned>(record: &Record, version: u32) -> Restored<P> {
    let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    let Some(value) = &record.value else { return Restored::None };
    match serde_json::from_slice::<CheckpointVersion>(value) {
        Ok(found) if found.version == version => {}
        Ok(found) => {
            return Restored::Unusable(format!(
                "the checkpoint at {at} is of version {}, the projection's is {version}",
                found.version
            ));
        }
        Err(error) => return Restored::Unusable(format!("the checkpoint at {at} is not one: {error}")),
    }
    match serde_json::from_slice::<CheckpointIn<P>>(value) {
        Ok(CheckpointIn { applied, state }) => {
            let mut restored: Applied = Vec::new();
            for (topic, partition, next) in applied {
                *next_mut(&mut restored, &Arc::from(topic), partition) = next;
            }
            Restored::Found(state, restored)
        }
        Err(error) => Restored::Unusable(format!(
            "the checkpoint at {at} does not read as the projection's state ({error}); raise the version of its \
             checkpoints when the state's shape changes"
        )),
    }
}

impl<P: Projection> ProjectionProcessor<P> {
    /// Whether the record is new to the projection; notes it as applied.
    fn first_time(&mut self, record: &Record) -> bool {
        let next = next_mut(&mut self.applied, &record.topic, record.partition);
        let fresh = record.offset >= *next;
        if fresh {
            *next = record.offset + 1;
        }
        fresh
    }
}

impl<P: Projection> ProjectionProcessor<P> {
    pub(crate) fn new(state: Arc<RwLock<P>>, group: String) -> Self {
        let id = id_of::<P>();
        ProjectionProcessor {
            state,
            group,
            dead_letters: Arc::from(dead_letter::topic_of(&id)),
            id,
            lettered: None,
            unwritten: Vec::new(),
            applied: Vec::new(),
            checkpoint: None,
        }
    }

    /// The processor of a checkpointed projection, restored to `applied` (the positions of its
    /// state), writing its checkpoints to `place`.
    pub(crate) fn checkpointed(
        state: Arc<RwLock<P>>,
        place: &CheckpointPlace,
        checkpoints: Checkpoints,
        applied: Applied,
    ) -> Self
    where
        P: Serialize,
    {
        let checkpoint = Checkpointing {
            tp: TopicPartition::new(place.topic.as_str(), 0),
            key: Bytes::copy_from_slice(place.group.as_bytes()),
            checkpoints,
            encode: encode_checkpoint::<P>,
            last: Instant::now(),
            applied_since: false,
            writing: false,
            given_up: false,
            delete_failed: false,
        };
        ProjectionProcessor { applied, checkpoint: Some(checkpoint), ..Self::new(state, place.group.clone()) }
    }

    /// The positions after what has been applied, of the `assigned` partitions.
    fn applied_positions(&self, assigned: &[TopicPartition]) -> Vec<(TopicPartition, u64)> {
        let next = |tp: &TopicPartition| Some(next_of(&self.applied, tp)).filter(|next| *next > 0);
        assigned.iter().filter_map(|tp| Some((tp.clone(), next(tp)?))).collect()
    }

    /// The checkpoint to write with this batch, if one is due (at once when `now`).
    fn checkpoint_due(&mut self, state: &P, now: bool) -> Option<OutRecord> {
        let checkpoint = self.checkpoint.as_mut()?;
        let due = now || checkpoint.last.elapsed() >= checkpoint.checkpoints.interval;
        if !checkpoint.applied_since || checkpoint.given_up || !due {
            return None;
        }
        let value = match (checkpoint.encode)(checkpoint.checkpoints.version, &self.applied, state) {
            Ok(value) if value.len() <= LARGEST_CHECKPOINT => value,
            Ok(value) => {
                checkpoint.given_up = true;
                tracing::warn!(
                    projection = self.id,
                    bytes = value.len(),
                    "the read model is too large to checkpoint; a restart goes on from the last checkpoint written"
                );
                return None;
            }
            Err(error) => {
                checkpoint.given_up = true;
                tracing::warn!(projection = self.id, %error, "the read model cannot be written as JSON; a restart goes on from the last checkpoint written");
                return None;
            }
        };
        checkpoint.writing = true;
        Some(OutRecord {
            topic: checkpoint.tp.topic.clone(),
            partition: Some(0),
            key: Some(checkpoint.key.clone()),
            value: Some(Bytes::from(value)),
            headers: Headers::new(),
            timestamp: None,
        })
    }
}

impl<P: Projection> Processor for ProjectionProcessor<P> {
    fn group(&self) -> &str {
        &self.group
    }

    fn topics(&self) -> Vec<&'static str> {
        P::subscriptions().iter().map(|s| s.topic).collect()
    }

    fn start(&self) -> StartFrom {
        StartFrom::Beginning
    }

    fn positions_to_commit(&self, _: &[(TopicPartition, u64)], member: &dyn GroupMember) -> Vec<(TopicPartition, u64)> {
        match &self.checkpoint {
            Some(checkpoint) if checkpoint.writing => self.applied_positions(&member.assignment()),
            _ => Vec::new(),
        }
    }

    /// The state is the truth of a checkpointed projection: where the group's positions are
    /// past it (another incarnation under the same instance id committed meanwhile, or wrote a
    /// checkpoint this one could not restore), the records since are read again. Already
    /// applied ones are skipped, so moving back never applies a record twice.
    fn behind(&self, member: &dyn GroupMember) -> Vec<(TopicPartition, u64)> {
        if self.checkpoint.is_none() {
            return Vec::new();
        }
        let behind = |tp: TopicPartition| {
            let next = next_of(&self.applied, &tp);
            (member.position(&tp)? > next).then_some((tp, next))
        };
        member.assignment().into_iter().filter_map(behind).collect()
    }

    fn drops_too_large(&mut self, topic: &str) -> bool {
        let Some(checkpoint) = self.checkpoint.as_mut().filter(|c| *c.tp.topic == *topic) else {
            return false;
        };
        checkpoint.given_up = true;
        tracing::warn!(
            projection = self.id,
            topic,
            "the log refuses the checkpoint as too large; no more checkpoints in this run, and a restart goes on from the last one written"
        );
        true
    }

    fn one_off_group(&self) -> bool {
        self.checkpoint.is_none()
    }

    fn revoked(&mut self, _: &[TopicPartition]) {
        // The batch with the checkpoint was not written: the next one carries it.
        if let Some(checkpoint) = &mut self.checkpoint {
            checkpoint.writing = false;
        }
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    /// A checkpoint of everything applied, as the app stops: the next start reads nothing again.
    fn closing(&mut self, assigned: &[TopicPartition]) -> Option<LastWrite> {
        let state = self.state.clone();
        let checkpoint = self.checkpoint_due(&state.read().unwrap_or_else(|p| p.into_inner()), true)?;
        let positions = self.applied_positions(assigned);
        // Letters of a batch whose write failed go with it: its records count as applied.
        let mut outputs = std::mem::take(&mut self.unwritten);
        outputs.push(checkpoint);
        Some(LastWrite { outputs, positions })
    }

    async fn assigned(&mut self, log: &dyn EventLog, _: &[TopicPartition]) -> Result<(), RuntimeError> {
        if self.lettered.is_none() {
            self.lettered = Some(dead_letter::origins(log, &self.dead_letters).await?);
        }
        Ok(())
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        outputs.extend(self.unwritten.iter().cloned());
        let state = self.state.clone();
        let mut state = state.write().unwrap_or_else(|p| p.into_inner());
        for record in records {
            if !self.first_time(record) {
                continue;
            }
            if let Some(checkpoint) = &mut self.checkpoint {
                checkpoint.applied_since = true;
            }
            // A panicking handler is contained like a record that cannot be decoded; the read
            // model keeps what the handler did before it panicked.
            let error = match std::panic::catch_unwind(AssertUnwindSafe(|| state.apply(record))) {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(panic) => format!("the handler panicked: {}", super::aggregate::panic_message(&*panic)),
            };
            let origin = (record.topic.to_string(), record.partition, record.offset);
            if self.lettered.as_mut().is_none_or(|lettered| lettered.insert(origin)) {
                let letter = dead_letter::letter(&self.dead_letters, &self.id, record, &error);
                self.unwritten.push(letter.clone());
                outputs.push(letter);
            }
        }
        outputs.extend(self.checkpoint_due(&*state, false));
    }

    async fn committed(&mut self, log: &dyn EventLog, written: Vec<Position>, _: &[(TopicPartition, u64)]) {
        self.unwritten.clear();
        let Some(checkpoint) = self.checkpoint.as_mut().filter(|c| c.writing) else { return };
        checkpoint.writing = false;
        checkpoint.applied_since = false;
        checkpoint.last = Instant::now();
        // The older checkpoints go (compaction would take them too, later).
        let Some(at) = written.iter().find(|p| p.topic == checkpoint.tp.topic) else { return };
        match log.delete_before(&checkpoint.tp, at.offset).await {
            Ok(()) => checkpoint.delete_failed = false,
            Err(error) if !checkpoint.delete_failed => {
                checkpoint.delete_failed = true;
                tracing::warn!(projection = self.id, %error, "older checkpoints could not be deleted; compaction removes them");
            }
            Err(error) => tracing::debug!(projection = self.id, %error, "older checkpoints could not be deleted"),
        }
    }
}

/// Read access to a running projection, and "wait until caught up".
pub struct ProjectionHandle<P> {
    pub(crate) state: Arc<RwLock<P>>,
    pub(crate) group: String,
    /// Whether it is built in this process (see `App::run_only`).
    pub(crate) here: bool,
    pub(crate) topics: Vec<&'static str>,
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) log: Arc<dyn EventLog>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        ProjectionHandle {
            state: self.state.clone(),
            group: self.group.clone(),
            here: self.here,
            topics: self.topics.clone(),
            board: self.board.clone(),
            log: self.log.clone(),
        }
    }
}

impl<P> std::fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle").field("group", &self.group).finish()
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// Whether waiting for the projection can end: it is built here, by a started app.
    fn is_running_here(&self) -> Result<(), RuntimeError> {
        if !self.here {
            return Err(RuntimeError::Elsewhere(self.group.clone()));
        }
        match self.board.is_started() {
            true => Ok(()),
            false => Err(RuntimeError::NotStarted(format!("waiting for projection `{}`", id_of::<P>()))),
        }
    }

    /// Reads the projection's current state (its initial state when it runs in another process).
    pub fn read<T>(&self, read: impl FnOnce(&P) -> T) -> T {
        read(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until the projection has processed every record up to and including these
    /// positions (read-your-writes after a command: pass `accepted.positions()`). Positions
    /// of topics the projection does not read are ignored.
    /// Fails when the projection's processor has stopped, and at once when it runs in another
    /// process or its app has not been started.
    pub async fn wait_for(&self, positions: &[Position]) -> Result<(), RuntimeError> {
        self.is_running_here()?;
        for position in positions.iter().filter(|p| self.topics.iter().any(|t| **t == *p.topic)) {
            let tp = TopicPartition { topic: position.topic.clone(), partition: position.partition };
            self.board
                .reached(&self.group, &tp, position.offset + 1)
                .await
                .map_err(|_| RuntimeError::Stopped(self.group.clone()))?;
        }
        Ok(())
    }

    /// Waits until the projection has processed everything on its topics at the time of the
    /// call. What the app's other processors write after it (a reaction's commands turned into
    /// events) is not waited for: [`App::settle`](crate::App::settle) waits until the whole app
    /// is quiet. Fails as [`ProjectionHandle::wait_for`] does.
    pub async fn caught_up(&self) -> Result<(), RuntimeError> {
        self.is_running_here()?;
        let mut ends = HashMap::new();
        for topic in &self.topics {
            let partitions = self.log.partition_count(topic).await?.unwrap_or(0);
            for partition in 0..partitions {
                let tp = TopicPartition::new(*topic, partition);
                let end = self.log.end_offset(&tp).await?;
                ends.insert(tp, end);
            }
        }
        self.board
            .wait_until(|board| {
                board.is_stopped(&self.group)
                    || ends
                        .iter()
                        .all(|(tp, end)| *end == 0 || board.position(&self.group, tp).is_some_and(|p| p >= *end))
            })
            .await;
        match self.board.is_stopped(&self.group) {
            true => Err(RuntimeError::Stopped(self.group.clone())),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_whose_ids_read_alike_as_topic_names_checkpoint_apart() {
        let topic = |instance| CheckpointPlace::of("accounting", Some(instance)).topic;
        assert_eq!(topic("ticketing-3"), "accounting.checkpoint.ticketing-3");
        let (slashed, dashed) = (topic("a/b"), topic("a-b"));
        assert_ne!(slashed, dashed);
        assert!(slashed.starts_with("accounting.checkpoint.a-b-"), "{slashed}");
        assert_eq!(CheckpointPlace::of("accounting", Some("a/b")).group, "accounting@a/b");
    }
}
