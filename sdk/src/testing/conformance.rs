//! The backend conformance suite: one set of checks, generic over the log port, that every adapter
//! of [`EventLog`] runs, so that every backend behaves the same.
//!
//! An adapter provides a [`ConformanceTarget`] (how to make a fresh log, and how to reopen one as
//! a restarted process would), then runs the checks: all in one go with [`run_all`], or one test
//! per check with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```
//! # mod wrapper {
//! use tramline::testing::conformance::MemoryTarget;
//!
//! tramline::conformance_tests!(MemoryTarget);
//! # }
//! ```
//!
//! Every check uses topic and group names of its own (a unique suffix), so checks can share a
//! log, run in parallel, and run against a broker that has other topics. Each check panics with a
//! message saying what differed; waits are bounded (generously: [`PATIENCE`]) and never busy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::log::memory::MemoryLog;
use crate::log::{
    Cleanup, EventLog, GroupMember, Headers, LogError, OutRecord, Record, StartFrom, TopicPartition, TopicSpec,
    partition_for,
};

/// How long a check waits for something that should happen (an assignment, records) before it
/// fails. Far above what any backend needs, so a slow machine does not fail a check.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The timeout of each poll inside a check's waiting loops.
const POLL: Duration = Duration::from_millis(100);

/// What the suite needs from a backend.
#[async_trait]
pub trait ConformanceTarget: Send + Sync {
    /// A log for one check. It need not be empty (checks use names of their own), but must be
    /// usable at once.
    async fn fresh(&self) -> Arc<dyn EventLog>;

    /// What a restart of the process does: drops `log` (made by [`fresh`](Self::fresh) of this
    /// target, with every member of it already dropped) and opens the same storage again. `None`
    /// when the backend keeps nothing across a restart; a log that lives beyond its handles (the
    /// memory log) may return `log` itself.
    async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>>;
}

/// The memory log as a [`ConformanceTarget`]: a new log per check; a "restart" keeps the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryTarget;

#[async_trait]
impl ConformanceTarget for MemoryTarget {
    async fn fresh(&self) -> Arc<dyn EventLog> {
        Arc::new(MemoryLog::new())
    }

    async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>> {
        Some(log)
    }
}

#[cfg(feature = "embedded")]
pub use self::embedded::EmbeddedTarget;

#[cfg(feature = "embedded")]
mod embedded {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::ConformanceTarget;
    use crate::log::EventLog;
    use crate::log::embedded::{EmbeddedLog, EmbeddedOptions};

    /// The embedded log as a [`ConformanceTarget`]: each fresh log in a new directory under
    /// `root`; a restart drops the log and opens its directory again.
    #[derive(Debug)]
    pub struct EmbeddedTarget {
        root: PathBuf,
        options: EmbeddedOptions,
        next: AtomicU64,
        /// The directory of each log made, by the address of the log.
        dirs: Mutex<HashMap<usize, PathBuf>>,
    }

    impl EmbeddedTarget {
        /// Logs in directories under `root` (which the caller creates and removes), with default
        /// options.
        pub fn new(root: impl Into<PathBuf>) -> Self {
            Self::with_options(root, EmbeddedOptions::default())
        }

        /// Logs in directories under `root`, opened with `options`.
        pub fn with_options(root: impl Into<PathBuf>, options: EmbeddedOptions) -> Self {
            EmbeddedTarget { root: root.into(), options, next: AtomicU64::new(0), dirs: Mutex::default() }
        }

        fn key(log: &Arc<dyn EventLog>) -> usize {
            Arc::as_ptr(log).cast::<()>() as usize
        }

        async fn open(&self, dir: PathBuf) -> Arc<dyn EventLog> {
            // The previous handle may still be closing: opening waits for it.
            let log = (EmbeddedLog::open_async(dir.clone(), self.options.clone()).await)
                .unwrap_or_else(|e| panic!("cannot open the embedded log in {}: {e}", dir.display()));
            let log: Arc<dyn EventLog> = Arc::new(log);
            self.dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(Self::key(&log), dir);
            log
        }
    }

    #[async_trait]
    impl ConformanceTarget for EmbeddedTarget {
        async fn fresh(&self) -> Arc<dyn EventLog> {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            self.open(self.root.join(format!("log-{n}"))).await
        }

        async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>> {
            let dir = self.dirs.lock().unwrap_or_else(|p| p.into_inner()).remove(&Self::key(&log));
            let dir = dir.expect("reopen is given a log made by this target");
            drop(log);
            Some(self.open(dir).await)
        }
    }
}

/// Runs every check, one after the other, each on its own fresh log.
pub async fn run_all(target: &dyn ConformanceTarget) {
    topics(target).await;
    read_bounds(target).await;
    order_per_key(target).await;
    kafka_partitioner(target).await;
    explicit_partitions(target).await;
    record_fields_and_tombstones(target).await;
    group_resumes_after_commit(target).await;
    deleted_group_keeps_no_positions(target).await;
    start_without_committed_position(target).await;
    rewind(target).await;
    fenced_commit_writes_nothing(target).await;
    failed_commit_writes_nothing(target).await;
    keyless_records_for_compacted_topics_are_refused(target).await;
    replay_by_new_group(target).await;
    members_split_partitions(target).await;
    poll_wakes_promptly(target).await;
    restart_resumes_after_commit(target).await;
    deleted_records_stay_deleted(target).await;
    deleted_topic_is_gone(target).await;
}

/// One `#[tokio::test]` per conformance check, on the [`ConformanceTarget`] that `$target`
/// makes (evaluated once per test). Needs `tokio` (features `macros`, `rt-multi-thread`) in the
/// calling crate. Put it in a module of its own per target.
#[macro_export]
macro_rules! conformance_tests {
    ($target:expr) => {
        $crate::conformance_tests!(@each $target;
            topics,
            read_bounds,
            order_per_key,
            kafka_partitioner,
            explicit_partitions,
            record_fields_and_tombstones,
            group_resumes_after_commit,
            deleted_group_keeps_no_positions,
            start_without_committed_position,
            rewind,
            fenced_commit_writes_nothing,
            failed_commit_writes_nothing,
            keyless_records_for_compacted_topics_are_refused,
            replay_by_new_group,
            members_split_partitions,
            poll_wakes_promptly,
            restart_resumes_after_commit,
            deleted_records_stay_deleted,
            deleted_topic_is_gone,
        );
    };
    (@each $target:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let target = $target;
                $crate::testing::conformance::$check(&target).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A name no other check (or earlier run on a shared broker) uses.
fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

/// Creates a topic with a unique name and returns the name.
async fn new_topic(log: &dyn EventLog, name: &str, partitions: u32) -> Arc<str> {
    let spec = TopicSpec::keep(unique(name), partitions);
    log.create_topic(&spec).await.unwrap_or_else(|e| panic!("create_topic({}): {e}", spec.name));
    Arc::from(spec.name)
}

fn record(topic: &Arc<str>, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> OutRecord {
    OutRecord {
        topic: topic.clone(),
        partition: None,
        key: Some(Bytes::copy_from_slice(key.as_ref())),
        value: Some(Bytes::copy_from_slice(value.as_ref())),
        headers: Headers::new(),
        timestamp: None,
    }
}

fn text(bytes: &Option<Bytes>) -> String {
    bytes.as_ref().map_or_else(|| "<none>".to_owned(), |b| String::from_utf8_lossy(b).into_owned())
}

async fn append(log: &dyn EventLog, records: Vec<OutRecord>) -> Vec<crate::model::Position> {
    let count = records.len();
    let positions = log.append(records).await.unwrap_or_else(|e| panic!("append: {e}"));
    assert_eq!(positions.len(), count, "append returns one position per record");
    positions
}

/// Every record of a partition, read in pages.
async fn read_all(log: &dyn EventLog, tp: &TopicPartition) -> Vec<Record> {
    let end = log.end_offset(tp).await.unwrap_or_else(|e| panic!("end_offset({tp}): {e}"));
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < end {
        let page = log.read(tp, offset, 7).await.unwrap_or_else(|e| panic!("read({tp}, {offset}): {e}"));
        let Some(last) = page.last() else { break };
        offset = last.offset + 1;
        records.extend(page);
    }
    records
}

async fn end_offsets(log: &dyn EventLog, topic: &Arc<str>, partitions: u32) -> Vec<u64> {
    let mut ends = Vec::new();
    for partition in 0..partitions {
        let tp = TopicPartition::new(topic.clone(), partition);
        ends.push(log.end_offset(&tp).await.unwrap_or_else(|e| panic!("end_offset({tp}): {e}")));
    }
    ends
}

async fn join(log: &dyn EventLog, group: &str, topics: &[&Arc<str>], start: StartFrom) -> Box<dyn GroupMember> {
    let names: Vec<&str> = topics.iter().map(|t| &***t).collect();
    log.join(group, &names, start).await.unwrap_or_else(|e| panic!("join({group}, {names:?}): {e}"))
}

/// Polls until the member has an assignment that is not empty. Returns the records that came
/// along (a backend may hand out records in the poll that assigns).
async fn await_assignment(member: &mut dyn GroupMember) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut records = Vec::new();
    while !member.has_assignment() || member.assignment().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no assignment after {PATIENCE:?}");
        records.extend(member.poll(100, POLL).await.unwrap_or_else(|e| panic!("poll: {e}")).records);
    }
    records
}

/// Polls until `count` records came (more is a failure), with no commit.
async fn collect(member: &mut dyn GroupMember, count: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut records = await_assignment(member).await;
    while records.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} records within {PATIENCE:?}, got {}: {:?}",
            records.len(),
            offsets(&records)
        );
        records.extend(member.poll(count - records.len(), POLL).await.unwrap_or_else(|e| panic!("poll: {e}")).records);
    }
    assert_eq!(records.len(), count, "more records than expected: {:?}", offsets(&records));
    records
}

/// Polls briefly and checks that nothing more comes.
async fn assert_quiet(member: &mut dyn GroupMember) {
    for _ in 0..3 {
        let polled = member.poll(100, POLL).await.unwrap_or_else(|e| panic!("poll: {e}"));
        assert!(polled.records.is_empty(), "unexpected records: {:?}", offsets(&polled.records));
    }
}

/// (partition, offset) of each record, for messages.
fn offsets(records: &[Record]) -> Vec<(u32, u64)> {
    records.iter().map(|r| (r.partition, r.offset)).collect()
}

/// The next offset per partition after `records`.
fn next_positions(records: &[Record]) -> Vec<(TopicPartition, u64)> {
    let mut next: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    for r in records {
        let slot = next.entry(TopicPartition::new(r.topic.clone(), r.partition)).or_default();
        *slot = (*slot).max(r.offset + 1);
    }
    next.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Topics: creating is idempotent for the same partition count and cleanup policy and an error
/// for another; a partition count out of range is refused and nothing made; the partition count
/// is known; unknown topics and partitions are errors that say so.
pub async fn topics(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let none = unique("no-partitions");
    let refused = log.create_topic(&TopicSpec::keep(&none, 0)).await;
    assert!(matches!(refused, Err(LogError::InvalidTopic { .. })), "no partitions must be refused, got {refused:?}");
    assert_eq!(log.partition_count(&none).await.expect("a partition count"), None, "nothing made");
    let name = unique("topics");
    log.create_topic(&TopicSpec::keep(&name, 3)).await.expect("create a topic");
    log.create_topic(&TopicSpec::keep(&name, 3)).await.expect("create the same topic again");
    let mismatch = log.create_topic(&TopicSpec::keep(&name, 4)).await;
    assert!(
        matches!(mismatch, Err(LogError::PartitionMismatch { existing: 3, requested: 4, .. })),
        "another partition count must be refused, got {mismatch:?}"
    );
    let mismatch = log.create_topic(&TopicSpec::compact(&name, 3)).await;
    assert!(
        matches!(mismatch, Err(LogError::CleanupMismatch { requested: Cleanup::Compact, .. })),
        "another cleanup policy must be refused, got {mismatch:?}"
    );
    let state = unique("state");
    log.create_topic(&TopicSpec::compact(&state, 1)).await.expect("create a compacted topic");
    log.create_topic(&TopicSpec::compact(&state, 1))
        .await
        .expect("create the same compacted topic again");
    let mismatch = log.create_topic(&TopicSpec::keep(&state, 1)).await;
    assert!(
        matches!(mismatch, Err(LogError::CleanupMismatch { requested: Cleanup::Keep, .. })),
        "a compacted topic is no source of truth, got {mismatch:?}"
    );
    let day = Duration::from_secs(86_400);
    let mismatch = log.create_topic(&TopicSpec::compact_and_expire(&state, 1, day)).await;
    assert!(
        matches!(mismatch, Err(LogError::CleanupMismatch { requested: Cleanup::CompactAndExpire { .. }, .. })),
        "a compacted topic is not one whose records expire, got {mismatch:?}"
    );
    let rows = unique("rows");
    log.create_topic(&TopicSpec::compact_and_expire(&rows, 1, day))
        .await
        .expect("create an expiring topic");
    log.create_topic(&TopicSpec::compact_and_expire(&rows, 1, 2 * day))
        .await
        .expect("an existing retention is the operator's: the topic is taken as it is");
    let mismatch = log.create_topic(&TopicSpec::compact(&rows, 1)).await;
    assert!(
        matches!(mismatch, Err(LogError::CleanupMismatch { requested: Cleanup::Compact, .. })),
        "a topic whose records expire is no compacted state, got {mismatch:?}"
    );
    let keyless = OutRecord { key: None, ..record(&Arc::from(rows.as_str()), "", "v") };
    let refused = log.append(vec![keyless]).await;
    assert!(matches!(refused, Err(LogError::KeyRequired { .. })), "a keyless record for it, got {refused:?}");
    assert_eq!(log.partition_count(&name).await.unwrap(), Some(3));
    let missing = unique("missing");
    assert_eq!(log.partition_count(&missing).await.unwrap(), None);

    let topic: Arc<str> = Arc::from(name);
    let appended = log.append(vec![record(&Arc::from(missing.as_str()), "k", "v")]).await;
    assert!(matches!(appended, Err(LogError::UnknownTopic(_))), "append to a missing topic: {appended:?}");
    let read = log.read(&TopicPartition::new(missing.as_str(), 0), 0, 10).await;
    assert!(matches!(read, Err(LogError::UnknownTopic(_))), "read of a missing topic: {read:?}");
    let read = log.read(&TopicPartition::new(topic.clone(), 3), 0, 10).await;
    assert!(
        matches!(read, Err(LogError::UnknownPartition { partition: 3, partitions: 3, .. })),
        "read of a missing partition: {read:?}"
    );
    assert_eq!(end_offsets(&*log, &topic, 3).await, [0, 0, 0], "a new topic is empty");
    let joined = log.join(&unique("group"), &[missing.as_str()], StartFrom::Beginning).await;
    assert!(joined.is_err(), "joining a missing topic must fail");
    let joined = log.join(&unique("group"), &[], StartFrom::Beginning).await.err();
    assert!(matches!(joined, Some(LogError::NoTopics { .. })), "joining with no topics must fail, got {joined:?}");
}

/// `read` and `end_offset`: pages of at most `max`, from any offset; nothing at or past the end.
pub async fn read_bounds(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "bounds", 1).await;
    let tp = TopicPartition::new(topic.clone(), 0);
    append(&*log, (0..10).map(|i| record(&topic, "k", format!("v{i}")).to_partition(0)).collect()).await;
    assert_eq!(log.end_offset(&tp).await.unwrap(), 10);
    let page = log.read(&tp, 3, 4).await.unwrap();
    assert_eq!(page.iter().map(|r| r.offset).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(text(&page[0].value), "v3");
    assert_eq!(log.read(&tp, 8, 100).await.unwrap().len(), 2, "a page stops at the end");
    assert!(log.read(&tp, 10, 100).await.unwrap().is_empty(), "nothing at the end");
    assert!(log.read(&tp, 50, 100).await.unwrap().is_empty(), "nothing past the end");
    assert_eq!(read_all(&*log, &tp).await.len(), 10);
}

/// Order per key: many records for a few keys, in many batches, come back in the order written on
/// the key's partition, at the positions `append` returned.
pub async fn order_per_key(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let partitions = 4;
    let topic = new_topic(&*log, "order", partitions).await;
    let keys: Vec<String> = (0..5).map(|k| format!("key-{k}")).collect();
    let mut written: HashMap<String, Vec<(String, u32, u64)>> = HashMap::new();
    let mut seq = 0;
    for _batch in 0..10 {
        let batch: Vec<OutRecord> = (0..25)
            .map(|i| {
                seq += 1;
                let key = &keys[(seq + i / 3) % keys.len()];
                record(&topic, key, format!("{key}:{seq}"))
            })
            .collect();
        let values: Vec<(String, String)> = batch.iter().map(|r| (text(&r.key), text(&r.value))).collect();
        for ((key, value), position) in values.into_iter().zip(append(&*log, batch).await) {
            assert_eq!(position.topic, topic);
            assert_eq!(position.partition, partition_for(key.as_bytes(), partitions), "partition of {key}");
            written.entry(key).or_default().push((value, position.partition, position.offset));
        }
    }
    for (key, expected) in &written {
        let partition = partition_for(key.as_bytes(), partitions);
        let read: Vec<(String, u32, u64)> = read_all(&*log, &TopicPartition::new(topic.clone(), partition))
            .await
            .into_iter()
            .filter(|r| text(&r.key) == *key)
            .map(|r| (text(&r.value), r.partition, r.offset))
            .collect();
        assert_eq!(&read, expected, "records of {key} in order on partition {partition}");
    }
    let total: usize = written.values().map(Vec::len).sum();
    let ends = end_offsets(&*log, &topic, partitions).await;
    assert_eq!(ends.iter().sum::<u64>(), total as u64, "offsets are dense: end offsets {ends:?}");
}

/// Kafka's Java partitioner: `toPositive(murmur2(key)) % partitions`, with the hashes of
/// Kafka's own `UtilsTest.testMurmur2`.
pub async fn kafka_partitioner(target: &dyn ConformanceTarget) {
    const VECTORS: [(&str, i32); 6] = [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ];
    let log = target.fresh().await;
    for partitions in [3u32, 10, 12] {
        let topic = new_topic(&*log, "murmur", partitions).await;
        let records = VECTORS.iter().map(|(key, _)| record(&topic, key, *key)).collect();
        let positions = append(&*log, records).await;
        for ((key, hash), position) in VECTORS.iter().zip(positions) {
            let expected = ((*hash as u32) & 0x7fff_ffff) % partitions;
            assert_eq!(position.partition, expected, "partition of {key:?} among {partitions}");
            assert_eq!(partition_for(key.as_bytes(), partitions), expected);
            let on_disk = log.read(&TopicPartition::new(topic.clone(), expected), 0, 100).await.unwrap();
            assert!(on_disk.iter().any(|r| text(&r.key) == *key), "{key:?} is on partition {expected}");
        }
    }
}

/// An explicit partition is used as given; one out of range (or a missing topic) fails the whole
/// batch and writes nothing of it.
pub async fn explicit_partitions(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "explicit", 3).await;
    let other = new_topic(&*log, "explicit-other", 1).await;
    // "21" hashes to partition 0 of 3; the explicit partition wins.
    let positions = append(&*log, vec![record(&topic, "21", "a").to_partition(2)]).await;
    assert_eq!(positions[0].partition, 2);
    let before = end_offsets(&*log, &topic, 3).await;

    let batch = vec![record(&topic, "x", "1").to_partition(0), record(&topic, "y", "2").to_partition(3)];
    let result = log.append(batch).await;
    assert!(
        matches!(result, Err(LogError::UnknownPartition { partition: 3, partitions: 3, .. })),
        "partition 3 of 3 must be refused, got {result:?}"
    );
    let missing: Arc<str> = Arc::from(unique("missing"));
    let batch = vec![record(&other, "x", "1"), record(&topic, "x", "2"), record(&missing, "x", "3")];
    let result = log.append(batch).await;
    assert!(matches!(result, Err(LogError::UnknownTopic(_))), "a missing topic must be refused, got {result:?}");
    assert_eq!(end_offsets(&*log, &topic, 3).await, before, "nothing of a failed batch is written");
    assert_eq!(end_offsets(&*log, &other, 1).await, [0], "nothing of a failed batch is written");
}

/// Every field round-trips: keys, values (empty is not a tombstone), tombstones (`None`), headers
/// in order with duplicates and non-UTF-8 values, and timestamps; through `read` and `poll`.
pub async fn record_fields_and_tombstones(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "fields", 1).await;
    let out = vec![
        OutRecord {
            headers: [
                ("ce_type", &b"OrderConfirmed"[..]),
                ("binary", &[0xff, 0x00, 0xfe, 0x80]),
                ("ce_type", b"again"),
                ("empty", b""),
            ]
            .into_iter()
            .collect(),
            timestamp: Some(1_700_000_000_123),
            ..record(&topic, "entity-1", r#"{"n":1}"#)
        },
        OutRecord { value: None, ..record(&topic, "entity-1", "") },
        OutRecord { value: Some(Bytes::new()), ..record(&topic, "entity-2", "") },
        OutRecord { key: None, ..record(&topic, "", [0u8, 159, 146, 150]) }.to_partition(0),
        OutRecord { key: Some(Bytes::new()), value: None, ..record(&topic, "", "") },
    ];
    let before = jiff::Timestamp::now().as_millisecond();
    append(&*log, out.clone()).await;
    let after = jiff::Timestamp::now().as_millisecond();

    let tp = TopicPartition::new(topic.clone(), 0);
    let read = read_all(&*log, &tp).await;
    let check = |read: &[Record], how: &str| {
        assert_eq!(read.len(), out.len(), "{how}: every record comes back");
        for (i, (got, sent)) in read.iter().zip(&out).enumerate() {
            assert_eq!(got.offset, i as u64, "{how}: offset");
            assert_eq!(got.topic, topic, "{how}: topic");
            assert_eq!(got.key, sent.key, "{how}: key of record {i}");
            assert_eq!(got.value, sent.value, "{how}: value of record {i} (None is a tombstone)");
            assert_eq!(got.headers, sent.headers, "{how}: headers of record {i}");
            match sent.timestamp {
                Some(timestamp) => {
                    assert_eq!(got.timestamp, timestamp, "{how}: timestamp of record {i}")
                }
                None => assert!(
                    (before - 1000..=after + 1000).contains(&got.timestamp),
                    "{how}: record {i} gets the time of the append, got {}",
                    got.timestamp
                ),
            }
        }
    };
    check(&read, "read");
    assert_eq!(read[1].value, None, "a tombstone is kept and reads as None");

    let mut member = join(&*log, &unique("fields"), &[&topic], StartFrom::Beginning).await;
    let polled = collect(&mut *member, out.len()).await;
    check(&polled, "poll");
    member.leave().await.unwrap();
}

/// A group commits positions; a new member of the group resumes right after them, whatever its
/// `StartFrom`, and a position is per partition.
pub async fn group_resumes_after_commit(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "resume", 2).await;
    let group = unique("resume");
    let mut batch: Vec<OutRecord> = (0..4).map(|i| record(&topic, "a", format!("a{i}")).to_partition(0)).collect();
    batch.extend((0..3).map(|i| record(&topic, "b", format!("b{i}")).to_partition(1)));
    append(&*log, batch).await;
    let p0 = TopicPartition::new(topic.clone(), 0);
    let p1 = TopicPartition::new(topic.clone(), 1);

    let mut first = join(&*log, &group, &[&topic], StartFrom::Beginning).await;
    let records = collect(&mut *first, 7).await;
    assert_eq!(records.iter().filter(|r| r.partition == 0).map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2, 3]);
    first.commit(Vec::new(), vec![(p0.clone(), 2), (p1.clone(), 3)]).await.expect("commit positions");
    assert_eq!(log.committed(&group, &p0).await.unwrap(), Some(2));
    assert_eq!(log.committed(&group, &p1).await.unwrap(), Some(3));
    assert_eq!(log.committed(&unique("other"), &p0).await.unwrap(), None, "another group has no position");
    first.leave().await.unwrap();

    let mut second = join(&*log, &group, &[&topic], StartFrom::End).await;
    let records = collect(&mut *second, 2).await;
    assert_eq!(offsets(&records), [(0, 2), (0, 3)], "the group resumes after its committed positions");
    assert_eq!(second.position(&p1), Some(3));
    append(&*log, vec![record(&topic, "b", "b3").to_partition(1)]).await;
    let records = collect(&mut *second, 1).await;
    assert_eq!(offsets(&records), [(1, 3)]);
    assert_eq!(second.position(&p1), Some(4));
    second.leave().await.unwrap();
}

/// A group deleted once its last member left keeps no positions: joined again, it starts as a
/// new group. A group with a member is not deleted; one the log does not know is no error.
pub async fn deleted_group_keeps_no_positions(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "delete", 1).await;
    let group = unique("delete");
    append(&*log, (0..3).map(|i| record(&topic, "a", format!("a{i}")).to_partition(0)).collect()).await;
    let p0 = TopicPartition::new(topic.clone(), 0);
    let mut member = join(&*log, &group, &[&topic], StartFrom::Beginning).await;
    collect(&mut *member, 3).await;
    member.commit(Vec::new(), vec![(p0.clone(), 3)]).await.expect("commit positions");
    // As Kafka's DeleteGroups: not while a member is in it (it would read from the start again).
    let refused = log.delete_group(&group).await;
    assert!(refused.is_err(), "a group with a member must not be deleted");
    assert_eq!(log.committed(&group, &p0).await.unwrap(), Some(3), "its positions stay");
    member.leave().await.unwrap();
    assert_eq!(log.committed(&group, &p0).await.unwrap(), Some(3));
    log.delete_group(&group).await.expect("delete the group");
    assert_eq!(log.committed(&group, &p0).await.unwrap(), None, "no position left");
    let mut again = join(&*log, &group, &[&topic], StartFrom::Beginning).await;
    assert_eq!(offsets(&collect(&mut *again, 3).await), [(0, 0), (0, 1), (0, 2)], "a new group reads from the start");
    again.leave().await.unwrap();
    log.delete_group(&unique("never-made")).await.expect("an unknown group is no error");
}

/// A group without a committed position starts at the beginning or at the end, as asked.
pub async fn start_without_committed_position(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "start", 2).await;
    append(&*log, (0..6).map(|i| record(&topic, format!("k{i}"), format!("old{i}"))).collect()).await;

    let mut beginning = join(&*log, &unique("beginning"), &[&topic], StartFrom::Beginning).await;
    let records = collect(&mut *beginning, 6).await;
    assert!(records.iter().all(|r| text(&r.value).starts_with("old")));

    let mut end = join(&*log, &unique("end"), &[&topic], StartFrom::End).await;
    let early = await_assignment(&mut *end).await;
    assert!(early.is_empty(), "a group starting at the end gets no old record: {:?}", offsets(&early));
    let ends = end_offsets(&*log, &topic, 2).await;
    for tp in end.assignment() {
        assert_eq!(end.position(&tp), Some(ends[tp.partition as usize]), "{tp} starts at its end");
    }
    append(&*log, (0..3).map(|i| record(&topic, format!("k{i}"), format!("new{i}"))).collect()).await;
    let records = collect(&mut *end, 3).await;
    assert!(
        records.iter().all(|r| text(&r.value).starts_with("new")),
        "only the new records: {:?}",
        records.iter().map(|r| text(&r.value)).collect::<Vec<_>>()
    );
    let more = collect(&mut *beginning, 3).await;
    assert!(more.iter().all(|r| text(&r.value).starts_with("new")));
    assert_quiet(&mut *end).await;
    beginning.leave().await.unwrap();
    end.leave().await.unwrap();
}

/// `rewind` moves back to the committed position, or to where the member started.
pub async fn rewind(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "rewind", 1).await;
    let tp = TopicPartition::new(topic.clone(), 0);
    append(&*log, (0..5).map(|i| record(&topic, "k", format!("v{i}"))).collect()).await;
    let mut member = join(&*log, &unique("rewind"), &[&topic], StartFrom::Beginning).await;
    collect(&mut *member, 5).await;
    member.rewind().await.expect("rewind");
    assert_eq!(member.position(&tp), Some(0), "nothing committed: back to the start");
    let again = collect(&mut *member, 5).await;
    assert_eq!(again[0].offset, 0);
    member.commit(Vec::new(), vec![(tp.clone(), 2)]).await.expect("commit");
    member.rewind().await.expect("rewind");
    assert_eq!(member.position(&tp), Some(2), "back to the committed position");
    let again = collect(&mut *member, 3).await;
    assert_eq!(offsets(&again), [(0, 2), (0, 3), (0, 4)]);
    member.leave().await.unwrap();
}

/// The atomic write under a rebalance: a member whose partitions moved is fenced, and neither its
/// outputs nor its positions become visible.
pub async fn fenced_commit_writes_nothing(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let input = new_topic(&*log, "fence-in", 2).await;
    let output = new_topic(&*log, "fence-out", 1).await;
    let group = unique("fence");
    append(&*log, vec![record(&input, "a", "1").to_partition(0), record(&input, "b", "2").to_partition(1)]).await;

    let mut first = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    let records = collect(&mut *first, 2).await;
    assert_eq!(first.assignment().len(), 2, "a lone member has every partition");
    let positions = next_positions(&records);

    let mut second = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !second.has_assignment() {
        assert!(tokio::time::Instant::now() < deadline, "the second member got no assignment");
        second.poll(100, POLL).await.expect("poll");
        if !second.has_assignment() {
            // A broker rebalances only when the old member polls too.
            first.poll(100, POLL).await.ok();
        }
    }

    let result = first.commit(vec![record(&output, "a", "out")], positions.clone()).await;
    assert!(matches!(result, Err(LogError::Fenced { .. })), "a stale member must be fenced, got {result:?}");
    assert_eq!(end_offsets(&*log, &output, 1).await, [0], "a fenced write leaves no output");
    for (tp, _) in &positions {
        assert_eq!(log.committed(&group, tp).await.unwrap(), None, "a fenced write leaves no position on {tp}");
    }
    drop(first);
    drop(second);
}

/// The atomic write when part of it cannot be written (a missing topic, a partition out of
/// range): nothing of it becomes visible, and the member can go on.
pub async fn failed_commit_writes_nothing(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let input = new_topic(&*log, "atomic-in", 1).await;
    let output = new_topic(&*log, "atomic-out", 2).await;
    let missing: Arc<str> = Arc::from(unique("missing"));
    let group = unique("atomic");
    let tp = TopicPartition::new(input.clone(), 0);
    append(&*log, vec![record(&input, "k", "in")]).await;

    let mut member = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    collect(&mut *member, 1).await;
    let result = member
        .commit(vec![record(&output, "k", "out"), record(&missing, "k", "lost")], vec![(tp.clone(), 1)])
        .await;
    assert!(matches!(result, Err(LogError::UnknownTopic(_))), "a write to a missing topic fails, got {result:?}");
    assert_eq!(end_offsets(&*log, &output, 2).await, [0, 0], "no output of the failed write is visible");
    assert_eq!(log.committed(&group, &tp).await.unwrap(), None, "no position of the failed write is visible");

    let result = member
        .commit(vec![record(&output, "k", "out"), record(&output, "k", "bad").to_partition(2)], vec![(tp.clone(), 1)])
        .await;
    assert!(matches!(result, Err(LogError::UnknownPartition { .. })), "partition 2 of 2 fails, got {result:?}");
    assert_eq!(end_offsets(&*log, &output, 2).await, [0, 0], "no output of the failed write is visible");
    assert_eq!(log.committed(&group, &tp).await.unwrap(), None, "no position of the failed write is visible");

    member.rewind().await.expect("rewind after a failed write");
    let again = collect(&mut *member, 1).await;
    assert_eq!(offsets(&again), [(0, 0)], "the batch comes again");
    let written = member.commit(vec![record(&output, "k", "out")], vec![(tp.clone(), 1)]).await.expect("commit");
    assert_eq!(written.len(), 1);
    assert_eq!(log.committed(&group, &tp).await.unwrap(), Some(1));
    let out = TopicPartition::new(output.clone(), written[0].partition);
    assert_eq!(log.read(&out, written[0].offset, 1).await.unwrap()[0].value.as_deref(), Some(&b"out"[..]));
    member.leave().await.unwrap();
}

/// A record without a key for a compacted topic is refused, by `append` and in the atomic write,
/// as Kafka's broker refuses it: memory and embedded logs must not accept what Kafka will not.
pub async fn keyless_records_for_compacted_topics_are_refused(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let input = new_topic(&*log, "keyless-in", 1).await;
    let state: Arc<str> = Arc::from(unique("keyless-state"));
    log.create_topic(&TopicSpec::compact(&*state, 1)).await.expect("create a compacted topic");
    let keyless = || OutRecord { key: None, ..record(&state, "", "v") };
    let appended = log.append(vec![keyless()]).await;
    assert!(matches!(appended, Err(LogError::KeyRequired { .. })), "append: {appended:?}");
    assert_eq!(end_offsets(&*log, &state, 1).await, [0], "nothing was written");

    let tp = TopicPartition::new(input.clone(), 0);
    append(&*log, vec![record(&input, "k", "in")]).await;
    let group = unique("keyless");
    let mut member = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    collect(&mut *member, 1).await;
    // A keyless output for a topic that takes it comes first: the error names the other one.
    let fine = OutRecord { key: None, ..record(&input, "", "keyless and fine") };
    let written = member.commit(vec![fine, keyless()], vec![(tp.clone(), 1)]).await;
    assert!(
        matches!(&written, Err(LogError::KeyRequired { topic }) if *topic == *state),
        "commit: {written:?} (expected KeyRequired for `{state}`)"
    );
    // (Kafka's abort marker takes an offset: what counts is that nothing can be read.)
    let visible = read_all(&*log, &TopicPartition::new(state.clone(), 0)).await;
    assert!(visible.is_empty(), "no output of the refused write is visible: {visible:?}");
    let visible = read_all(&*log, &tp).await;
    assert_eq!(visible.len(), 1, "only the input is on the input topic: {visible:?}");
    assert_eq!(log.committed(&group, &tp).await.unwrap(), None, "no position of the refused write is visible");
    member.leave().await.unwrap();
}

/// A new group replays a topic from the beginning, whatever other groups committed.
pub async fn replay_by_new_group(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "replay", 3).await;
    append(&*log, (0..30).map(|i| record(&topic, format!("k{i}"), format!("v{i}"))).collect()).await;

    let mut first = join(&*log, &unique("first"), &[&topic], StartFrom::Beginning).await;
    let records = collect(&mut *first, 30).await;
    first.commit(Vec::new(), next_positions(&records)).await.expect("commit");
    first.leave().await.unwrap();

    let mut replay = join(&*log, &unique("replay"), &[&topic], StartFrom::Beginning).await;
    let replayed = collect(&mut *replay, 30).await;
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in &replayed {
        per_partition.entry(r.partition).or_default().push(r.offset);
    }
    let ends = end_offsets(&*log, &topic, 3).await;
    for (partition, got) in per_partition {
        let expected: Vec<u64> = (0..ends[partition as usize]).collect();
        assert_eq!(got, expected, "partition {partition} replays in order from offset 0");
    }
    replay.leave().await.unwrap();
}

/// Two members of one group split the partitions; each record reaches exactly one of them,
/// exactly once; when one leaves, the other takes over from its committed positions.
pub async fn members_split_partitions(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let partitions = 4;
    let topic = new_topic(&*log, "split", partitions).await;
    let group = unique("split");
    let mut a = join(&*log, &group, &[&topic], StartFrom::Beginning).await;
    let mut b = join(&*log, &group, &[&topic], StartFrom::Beginning).await;

    let all: BTreeSet<u32> = (0..partitions).collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (pa, pb) = tokio::join!(a.poll(100, POLL), b.poll(100, POLL));
        let (pa, pb) = (pa.expect("poll"), pb.expect("poll"));
        assert!(pa.records.is_empty() && pb.records.is_empty(), "nothing was appended yet");
        let mine: BTreeSet<u32> = a.assignment().iter().map(|tp| tp.partition).collect();
        let theirs: BTreeSet<u32> = b.assignment().iter().map(|tp| tp.partition).collect();
        let split = !mine.is_empty() && !theirs.is_empty() && mine.is_disjoint(&theirs);
        if split && mine.union(&theirs).copied().collect::<BTreeSet<_>>() == all {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no split after {PATIENCE:?}: {mine:?} / {theirs:?}");
    }

    let positions =
        append(&*log, (0..100).map(|i| record(&topic, format!("key-{i}"), format!("v{i}"))).collect()).await;
    let expected: BTreeSet<(u32, u64)> = positions.iter().map(|p| (p.partition, p.offset)).collect();
    let mut seen: Vec<(u32, u64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < expected.len() {
        assert!(tokio::time::Instant::now() < deadline, "got {} of 100 records", seen.len());
        let (pa, pb) = tokio::join!(a.poll(100, POLL), b.poll(100, POLL));
        for (member, polled) in [(&mut a, pa.expect("poll")), (&mut b, pb.expect("poll"))] {
            if polled.records.is_empty() {
                continue;
            }
            let assignment = member.assignment();
            for r in &polled.records {
                assert!(assignment.iter().any(|tp| tp.partition == r.partition), "a record of an unassigned partition");
            }
            member.commit(Vec::new(), next_positions(&polled.records)).await.expect("commit");
            seen.extend(offsets(&polled.records));
        }
    }
    let distinct: BTreeSet<(u32, u64)> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a record reached the group twice");
    assert_eq!(distinct, expected, "every record reached the group");

    b.leave().await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a.assignment().len() != partitions as usize {
        assert!(tokio::time::Instant::now() < deadline, "the remaining member did not take over");
        let polled = a.poll(100, POLL).await.expect("poll");
        assert!(polled.records.is_empty(), "records already committed came again: {:?}", offsets(&polled.records));
    }
    append(&*log, (0..10).map(|i| record(&topic, format!("late-{i}"), "late")).collect()).await;
    let late = collect(&mut *a, 10).await;
    assert!(late.iter().all(|r| text(&r.value) == "late"), "only the new records after the takeover");
    a.leave().await.unwrap();
}

/// A waiting `poll` returns promptly when a record is appended, and an idle one returns when its
/// timeout ends.
pub async fn poll_wakes_promptly(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "wake", 1).await;
    let mut member = join(&*log, &unique("wake"), &[&topic], StartFrom::Beginning).await;
    await_assignment(&mut *member).await;

    let started = tokio::time::Instant::now();
    let polled = member.poll(10, Duration::from_millis(200)).await.expect("poll");
    let idle = started.elapsed();
    assert!(polled.records.is_empty());
    assert!(idle < Duration::from_secs(5), "an idle poll returns after its timeout, took {idle:?}");

    let writer = log.clone();
    let appender = topic.clone();
    let appended = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at = tokio::time::Instant::now();
        writer.append(vec![record(&appender, "k", "wake up")]).await.expect("append");
        at
    });
    let waiting = tokio::time::Instant::now();
    let mut records = Vec::new();
    while records.is_empty() {
        assert!(waiting.elapsed() < PATIENCE, "the appended record never came");
        records = member.poll(10, PATIENCE).await.expect("poll").records;
    }
    let received = tokio::time::Instant::now();
    let at = appended.await.expect("the appender");
    let latency = received.saturating_duration_since(at);
    assert!(
        latency < Duration::from_secs(2),
        "a poll waiting {PATIENCE:?} must wake when a record arrives; it took {latency:?}"
    );
    member.leave().await.unwrap();
}

/// A restart (the backend reopened on the same storage) keeps topics, records and committed
/// positions: the group resumes exactly after its last committed position.
pub async fn restart_resumes_after_commit(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let input = new_topic(&*log, "restart-in", 2).await;
    let output = new_topic(&*log, "restart-out", 1).await;
    let group = unique("restart");
    let mut batch: Vec<OutRecord> = (0..3).map(|i| record(&input, "a", format!("a{i}")).to_partition(0)).collect();
    batch.extend((0..3).map(|i| record(&input, "b", format!("b{i}")).to_partition(1)));
    batch.push(OutRecord { value: None, ..record(&input, "a", "") }.to_partition(1));
    append(&*log, batch).await;
    let p0 = TopicPartition::new(input.clone(), 0);
    let p1 = TopicPartition::new(input.clone(), 1);

    let mut member = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    collect(&mut *member, 7).await;
    let outputs = vec![record(&output, "a", "out-1"), record(&output, "b", "out-2")];
    member.commit(outputs, vec![(p0.clone(), 2), (p1.clone(), 4)]).await.expect("commit");
    member.leave().await.unwrap();
    let before: Vec<Vec<Record>> = vec![read_all(&*log, &p0).await, read_all(&*log, &p1).await];

    let Some(log) = target.reopen(log).await else {
        return;
    };
    assert_eq!(log.partition_count(&input).await.unwrap(), Some(2), "topics survive a restart");
    assert_eq!(log.partition_count(&output).await.unwrap(), Some(1), "topics survive a restart");
    let after: Vec<Vec<Record>> = vec![read_all(&*log, &p0).await, read_all(&*log, &p1).await];
    assert_eq!(after, before, "records survive a restart unchanged");
    assert_eq!(after[1][3].value, None, "a tombstone survives a restart");
    // Counted, not taken from the end offset: on Kafka a transaction's commit marker takes an
    // offset too.
    let outputs = read_all(&*log, &TopicPartition::new(output.clone(), 0)).await;
    assert_eq!(outputs.len(), 2, "outputs survive a restart");
    assert_eq!(log.committed(&group, &p0).await.unwrap(), Some(2), "positions survive a restart");
    assert_eq!(log.committed(&group, &p1).await.unwrap(), Some(4), "positions survive a restart");

    let mut member = join(&*log, &group, &[&input], StartFrom::Beginning).await;
    let resumed = collect(&mut *member, 1).await;
    assert_eq!(offsets(&resumed), [(0, 2)], "the group resumes exactly after its committed positions");
    assert_quiet(&mut *member).await;
    let positions = append(&*log, vec![record(&input, "a", "a3").to_partition(0)]).await;
    assert_eq!(positions[0].offset, 3, "offsets go on after a restart");
    let next = collect(&mut *member, 1).await;
    assert_eq!(offsets(&next), [(0, 3)]);
    member.leave().await.unwrap();
}

/// `delete_before` deletes a partition's records below an offset: reads and a new group start
/// at the first record left, offsets go on from the end, and a restart keeps both. Deleting up
/// to the end is allowed (the embedded log keeps the last record); past it is an error.
pub async fn deleted_records_stay_deleted(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let topic = new_topic(&*log, "delete-before", 2).await;
    let mut batch: Vec<OutRecord> = (0..6).map(|i| record(&topic, "a", format!("a{i}")).to_partition(0)).collect();
    batch.push(record(&topic, "b", "b0").to_partition(1));
    append(&*log, batch).await;
    let p0 = TopicPartition::new(topic.clone(), 0);
    let p1 = TopicPartition::new(topic.clone(), 1);

    log.delete_before(&p0, 4).await.expect("delete below offset 4");
    log.delete_before(&p0, 2).await.expect("deleting below an offset already deleted is no error");
    let left = read_all(&*log, &p0).await;
    assert_eq!(offsets(&left), [(0, 4), (0, 5)], "the records below offset 4 are gone");
    assert_eq!(log.end_offset(&p0).await.unwrap(), 6, "the end stays");
    log.delete_before(&p1, 1).await.expect("delete up to the end");
    assert_eq!(log.end_offset(&p1).await.unwrap(), 1, "the end stays");
    match log.delete_before(&p0, 7).await {
        Err(LogError::OffsetPastEnd { offset: 7, end: 6, partition: 0, .. }) => {}
        other => panic!("deleting past the end: expected OffsetPastEnd, got {other:?}"),
    }
    let unknown = TopicPartition::new(topic.clone(), 2);
    match log.delete_before(&unknown, 0).await {
        Err(LogError::UnknownPartition { partition: 2, .. }) => {}
        other => panic!("deleting in a partition that does not exist: expected UnknownPartition, got {other:?}"),
    }

    // A new group reads what is left, and gets to the ends even where nothing is left.
    let mut member = join(&*log, &unique("delete-before"), &[&topic], StartFrom::Beginning).await;
    let read = read_to_ends(&mut *member, &[(p0.clone(), 6), (p1.clone(), 1)]).await;
    assert_eq!(read.iter().filter(|r| r.partition == 0).map(|r| r.offset).collect::<Vec<_>>(), [4, 5]);
    member.leave().await.unwrap();
    let positions = append(&*log, vec![record(&topic, "b", "b1").to_partition(1)]).await;
    assert_eq!(positions[0].offset, 1, "offsets go on from the end");

    let Some(log) = target.reopen(log).await else {
        return;
    };
    assert_eq!(offsets(&read_all(&*log, &p0).await), [(0, 4), (0, 5)], "deleted records stay deleted after a restart");
    let positions = append(&*log, vec![record(&topic, "a", "a6").to_partition(0)]).await;
    assert_eq!(positions[0].offset, 6, "offsets go on after a restart");
}

/// `delete_topic` deletes a topic with its records and the positions groups committed on it;
/// made again, the topic starts empty at offset 0. Deleting a topic the log does not know is
/// no error. Other topics and positions stay, across a restart too.
pub async fn deleted_topic_is_gone(target: &dyn ConformanceTarget) {
    let log = target.fresh().await;
    let doomed = new_topic(&*log, "doomed", 2).await;
    let other = new_topic(&*log, "other", 1).await;
    append(&*log, (0..4).map(|i| record(&doomed, format!("k{i}"), "v")).collect()).await;
    append(&*log, vec![record(&other, "k", "v")]).await;
    let group = unique("doomed");
    let mut member = join(&*log, &group, &[&doomed, &other], StartFrom::Beginning).await;
    let read = collect(&mut *member, 5).await;
    member.commit(Vec::new(), next_positions(&read)).await.expect("commit positions");
    member.leave().await.unwrap();
    let (p0, kept) = (TopicPartition::new(doomed.clone(), 0), TopicPartition::new(other.clone(), 0));

    log.delete_topic(&doomed).await.expect("delete the topic");
    assert_eq!(log.partition_count(&doomed).await.unwrap(), None, "the topic is gone");
    let read = log.read(&p0, 0, 10).await;
    assert!(matches!(read, Err(LogError::UnknownTopic(_))), "read of a deleted topic: {read:?}");
    assert_eq!(log.committed(&group, &kept).await.unwrap(), Some(1), "positions on other topics stay");
    log.delete_topic(&doomed).await.expect("a topic the log does not know is no error");

    let Some(log) = target.reopen(log).await else {
        return;
    };
    assert_eq!(log.partition_count(&doomed).await.unwrap(), None, "a deleted topic stays deleted");
    log.create_topic(&TopicSpec::keep(&*doomed, 1))
        .await
        .expect("make it again, with another partition count");
    assert_eq!(log.end_offset(&p0).await.unwrap(), 0, "made again, it starts empty");
    assert_eq!(log.committed(&group, &p0).await.unwrap(), None, "no position of the deleted topic stays");
    let positions = append(&*log, vec![record(&doomed, "k", "v").to_partition(0)]).await;
    assert_eq!(positions[0].offset, 0, "made again, it starts at offset 0");
    assert_eq!(read_all(&*log, &kept).await.len(), 1, "other topics keep their records");
}

/// Polls until the member's position on each partition is its end; returns the records.
async fn read_to_ends(member: &mut dyn GroupMember, ends: &[(TopicPartition, u64)]) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut records = await_assignment(member).await;
    while ends.iter().any(|(tp, end)| member.position(tp) != Some(*end)) {
        let positions: Vec<_> = ends.iter().map(|(tp, _)| member.position(tp)).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the member did not get to the ends {ends:?} within {PATIENCE:?}: positions {positions:?}, records {:?}",
            offsets(&records)
        );
        records.extend(member.poll(100, POLL).await.unwrap_or_else(|e| panic!("poll: {e}")).records);
    }
    records
}
