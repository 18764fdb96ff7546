//! The log port: one trait with Kafka's semantics, so that every backend behaves the same.
//!
//! Topics have a fixed number of partitions; a key always lands on the same partition (Kafka's
//! murmur2); consumer groups keep committed positions; and [`GroupMember::commit`] writes output
//! records together with the input positions they were computed from, atomically.

#[cfg(feature = "embedded")]
pub mod embedded;
mod group;
mod headers;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
mod namespace;
mod partitioner;
mod record;
mod wakeup;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use headers::{Headers, HeadersBuilder, InvalidHeaders};
pub use namespace::{InvalidNamespace, Namespaced};
pub use partitioner::{murmur2, partition_for};
pub use record::{OutRecord, Record};

use crate::model::Position;

/// How a topic discards old records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cleanup {
    /// Records are kept forever (event topics: the source of truth).
    Keep,
    /// Only the latest record per key is guaranteed to be kept (state snapshots).
    Compact,
    /// Compacted, and a record whose timestamp is older than the retention may be deleted
    /// whatever its key (Kafka's `cleanup.policy=compact,delete` with `retention.ms`): the rows
    /// of a windowed table, whose old windows are done with.
    CompactAndExpire {
        /// How long a record is kept at least, from its timestamp.
        retention: Duration,
    },
}

impl Cleanup {
    /// Whether the topic keeps only the latest record per key (a record for it needs a key).
    pub fn compacts(self) -> bool {
        !matches!(self, Cleanup::Keep)
    }

    /// Whether this policy keeps every record `other` keeps, and more: `Keep` keeps longer than
    /// the others, `Compact` longer than `CompactAndExpire`.
    pub fn keeps_longer_than(self, other: Cleanup) -> bool {
        let rank = |cleanup| match cleanup {
            Cleanup::CompactAndExpire { .. } => 0,
            Cleanup::Compact => 1,
            Cleanup::Keep => 2,
        };
        rank(self) > rank(other)
    }

    /// Whether an existing topic cleaned up as `existing` serves as this: the same policy. A
    /// retention that differs is the operator's to set.
    pub fn fits(self, existing: Cleanup) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&existing)
    }
}

impl std::fmt::Display for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cleanup::Keep => f.write_str("every record kept forever"),
            Cleanup::Compact => f.write_str("compaction (the latest record per key kept)"),
            Cleanup::CompactAndExpire { retention } => write!(
                f,
                "compaction (the latest record per key kept), and records older than {:#} deleted",
                jiff::SignedDuration::try_from(*retention).unwrap_or(jiff::SignedDuration::MAX)
            ),
        }
    }
}

/// A topic's name, partition count and cleanup policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicSpec {
    /// The name (`payment.events`).
    pub name: String,
    /// The number of partitions, fixed at creation.
    pub partitions: u32,
    /// What happens to old records.
    pub cleanup: Cleanup,
}

/// The most partitions a topic of a log on one machine (memory, embedded) takes: every open
/// and every assignment walks them.
pub(crate) const LOCAL_MAX_PARTITIONS: u32 = 100_000;

impl TopicSpec {
    /// A topic that keeps every record.
    pub fn keep(name: impl Into<String>, partitions: u32) -> Self {
        TopicSpec { name: name.into(), partitions, cleanup: Cleanup::Keep }
    }

    /// A compacted topic.
    pub fn compact(name: impl Into<String>, partitions: u32) -> Self {
        TopicSpec { name: name.into(), partitions, cleanup: Cleanup::Compact }
    }

    /// A compacted topic whose records older than `retention` (by their timestamp) may go.
    pub fn compact_and_expire(name: impl Into<String>, partitions: u32, retention: Duration) -> Self {
        TopicSpec { name: name.into(), partitions, cleanup: Cleanup::CompactAndExpire { retention } }
    }

    /// Refuses a partition count outside `1..=most` ([`LogError::InvalidTopic`]), before the
    /// backend stores anything: a count it cannot hold must not make it unusable.
    pub(crate) fn check_partitions(&self, most: u32, backend: &str) -> Result<(), LogError> {
        match (1..=most).contains(&self.partitions) {
            true => Ok(()),
            false => Err(LogError::InvalidTopic {
                topic: self.name.clone(),
                problem: format!("{backend} takes 1 to {most} partitions per topic, not {}", self.partitions),
            }),
        }
    }

    /// Whether an existing topic with this partition count and cleanup policy is this one (its
    /// retention, if any, may differ: see [`Cleanup::fits`]).
    pub(crate) fn check(&self, partitions: u32, cleanup: Cleanup) -> Result<(), LogError> {
        if partitions != self.partitions {
            return Err(LogError::PartitionMismatch {
                topic: self.name.clone(),
                existing: partitions,
                requested: self.partitions,
            });
        }
        if !self.cleanup.fits(cleanup) {
            return Err(LogError::CleanupMismatch {
                topic: self.name.clone(),
                existing: cleanup.to_string(),
                requested: self.cleanup,
            });
        }
        Ok(())
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// The position of `offset` in this partition.
    pub fn at(&self, offset: u64) -> Position {
        Position { topic: self.topic.clone(), partition: self.partition, offset }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a consumer group starts on a partition it has no committed position for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartFrom {
    /// The first record still on the log.
    Beginning,
    /// The end of the partition when the group hands it to this member (as Kafka's
    /// `auto.offset.reset=latest`); the runtime pins that position by committing it at once.
    End,
}

/// What a poll returned: assignment changes first, then records of assigned partitions.
#[derive(Debug, Default)]
pub struct Polled {
    /// Partitions taken from this member since the last poll. Their state must be dropped.
    pub revoked: Vec<TopicPartition>,
    /// Partitions given to this member since the last poll. Their state must be restored
    /// before their records are processed.
    pub assigned: Vec<TopicPartition>,
    /// Records, in offset order per partition.
    pub records: Vec<Record>,
}

/// Errors of the log port. Each names the topic or group concerned.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic does not exist.
    #[error("topic `{0}` does not exist; create it (runtime start creates the topics it owns)")]
    UnknownTopic(String),
    /// A partition outside the topic's range.
    #[error("topic `{topic}` has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
    /// An existing topic has another partition count than requested.
    #[error("topic `{topic}` exists with {existing} partitions, but {requested} were requested")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Its partition count.
        existing: u32,
        /// The requested count.
        requested: u32,
    },
    /// An existing topic discards old records otherwise than requested: a source of truth that
    /// expires, or state that is never compacted (a forgotten subject's key kept).
    #[error(
        "topic `{topic}` exists with {existing}, but it needs {requested}: change the topic's configuration or delete it"
    )]
    CleanupMismatch {
        /// The topic.
        topic: String,
        /// What the backend found.
        existing: String,
        /// The requested policy.
        requested: Cleanup,
    },
    /// A topic that cannot be made as asked: a name the backend refuses, or a partition count out
    /// of range. Asking again does not help.
    #[error("topic `{topic}` cannot be created: {problem}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong, and the backend's rule.
        problem: String,
    },
    /// A member that would join a group with no topics to read (Kafka's consumer refuses an
    /// empty subscription): asking again does not help.
    #[error("group `{group}`: a member subscribes to at least one topic")]
    NoTopics {
        /// The consumer group.
        group: String,
    },
    /// Records to delete up to an offset past the partition's end.
    #[error("cannot delete the records of {topic}/{partition} below offset {offset}: its end is {end}")]
    OffsetPastEnd {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's end.
        end: u64,
    },
    /// A record without a key for a compacted topic, which keeps the last record per key (Kafka's
    /// broker refuses one too): nothing of the write was applied.
    #[error("topic `{topic}` is compacted (the last record per key is kept): a record for it needs a key")]
    KeyRequired {
        /// The topic.
        topic: String,
    },
    /// A record larger than the log accepts (Kafka's `message.max.bytes`, the topic's
    /// `max.message.bytes`): asking again does not help. Nothing of a member's write was
    /// applied; of an `append` on Kafka, which is not atomic, the records before it may have
    /// been (the reason says how many).
    #[error("a record for topic `{topic}` is larger than the log accepts: {reason}")]
    TooLarge {
        /// The record's topic.
        topic: String,
        /// Its size and the backend's words.
        reason: String,
    },
    /// This member lost partitions to another one (a rebalance) or left the group: the write was
    /// not applied.
    #[error("group `{group}`: this member was fenced ({reason}); nothing of the write was applied")]
    Fenced {
        /// The consumer group.
        group: String,
        /// Why.
        reason: String,
    },
    /// The backend failed (I/O, broker, database).
    #[error("log backend failed: {0}")]
    Backend(String),
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
}

/// Refuses a subscription to no topics ([`LogError::NoTopics`]), as Kafka's consumer does, so
/// that every log tells a processor with nothing to read the same thing.
pub(crate) fn check_subscription(group: &str, topics: &[&str]) -> Result<(), LogError> {
    match topics.is_empty() {
        true => Err(LogError::NoTopics { group: group.to_owned() }),
        false => Ok(()),
    }
}

/// The event log: topics, appends, and consumer groups.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Creates a topic, or checks that an existing one has the requested partition count.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError>;

    /// The partition count of a topic, or `None` when it does not exist.
    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError>;

    /// Appends records outside any consumer group. Records without a partition go to the
    /// partition of their key. Returns each record's position, in order.
    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError>;

    /// Reads up to `max` records of one partition from `offset` on, outside any group.
    async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError>;

    /// The offset the next record appended to the partition will get (the high watermark).
    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError>;

    /// The position committed by a group for a partition, if any.
    async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError>;

    /// Deletes the partition's records below `offset` (Kafka's `DeleteRecords`), for a topic
    /// whose records are not needed once read, such as a query's repartition topic. A read, or
    /// a member starting from the beginning, starts at the first record left; offsets are never
    /// reused, so the partition's end stays. `offset` is at most the end (an error otherwise).
    /// The embedded log keeps a partition's last record, which tells its end when it is opened.
    async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError>;

    /// Joins a consumer group subscribed to `topics` (at least one: [`LogError::NoTopics`]
    /// otherwise). Partitions are shared among the group's members; each is read from the
    /// group's committed position, or from `start`.
    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError>;

    /// Deletes a topic with its records and every group's committed positions on it (Kafka's
    /// `DeleteTopics`), for a stream query started over. No member may read it meanwhile. A
    /// topic the log does not know is not an error; a topic made again under the name starts
    /// empty, at offset 0.
    async fn delete_topic(&self, topic: &str) -> Result<(), LogError>;

    /// Deletes a group that has no members left, with its committed positions: a group made
    /// for one run of one process (a new one at each start) would otherwise stay for good.
    /// A group the log does not know is not an error. By default nothing is kept to delete.
    async fn delete_group(&self, _group: &str) -> Result<(), LogError> {
        Ok(())
    }

    /// The prefix of every topic and group name on the backend, if the log is a [`Namespaced`]
    /// one: the runtime's logs carry it, so that their names can be found with the backend's
    /// own tools.
    fn namespace(&self) -> Option<&str> {
        None
    }

    /// This process's stable name among the processes of the app that share the log (Kafka's
    /// `KafkaConfig::instance_id`); `None` for a log that one
    /// process holds. What an instance keeps for itself across restarts (a projection's
    /// checkpoint) goes under it.
    fn instance_id(&self) -> Option<&str> {
        None
    }
}

/// A member of a consumer group.
#[async_trait]
pub trait GroupMember: Send {
    /// Waits up to `timeout` for records (at most `max`) or for an assignment change.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError>;

    /// The partitions currently assigned to this member.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Whether the group has handed this member its assignment yet (possibly an empty one).
    fn has_assignment(&self) -> bool;

    /// The offset of the next record this member will receive from an assigned partition.
    fn position(&self, partition: &TopicPartition) -> Option<u64>;

    /// Moves every assigned partition back to the group's committed position (or the start),
    /// after a write that failed: the records since then will be received again.
    async fn rewind(&mut self) -> Result<(), LogError>;

    /// Appends `outputs` and commits `positions` (the next offset to read, per partition) as one
    /// atomic write: all become visible together or none does. Returns the outputs' positions.
    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError>;

    /// Leaves the group; its partitions go to the remaining members.
    async fn leave(self: Box<Self>) -> Result<(), LogError>;
}

/// A shared handle to any log.
pub type SharedLog = Arc<dyn EventLog>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policies_say_what_they_keep() {
        let week = Cleanup::CompactAndExpire { retention: Duration::from_secs(7 * 24 * 3600 + 90) };
        assert_eq!(
            week.to_string(),
            "compaction (the latest record per key kept), and records older than 168h 1m 30s deleted"
        );
        assert!(Cleanup::Keep.keeps_longer_than(Cleanup::Compact) && Cleanup::Compact.keeps_longer_than(week));
        assert!(!week.keeps_longer_than(Cleanup::Compact) && !Cleanup::Compact.keeps_longer_than(Cleanup::Compact));
        assert!(week.fits(Cleanup::CompactAndExpire { retention: Duration::ZERO }) && !week.fits(Cleanup::Compact));
        assert!(week.compacts() && Cleanup::Compact.compacts() && !Cleanup::Keep.compacts());
    }
}
