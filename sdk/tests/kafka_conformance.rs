//! The Kafka adapter against a real broker: the backend conformance suite
//! (`tramline::testing::conformance`), then what only Kafka has (transactions seen by a raw
//! `read_committed` consumer, transactional-id fencing, aborted transactions, open transactions
//! below the high watermark, topic configs).
//!
//! The broker: `TRAMLINE_KAFKA_BOOTSTRAP` when set, otherwise `scripts/kafka start` (once per test
//! process; it does nothing when the broker already runs) and the address it prints. When neither
//! gives a broker, every test fails with the script's output: these tests are never skipped.
//!
//! Run: `cargo test -p tramline --features kafka --test kafka_conformance`
#![cfg(feature = "kafka")]

use std::sync::Arc;
use std::time::Duration;

use tramline::log::kafka::{KafkaConfig, KafkaLog};
use tramline::log::{EventLog, GroupMember, LogError, OutRecord, Record, StartFrom, TopicPartition};
use tramline::testing::conformance::ConformanceTarget;

fn config() -> KafkaConfig {
    KafkaConfig::new(tramline::testing::kafka::bootstrap()).with_instance_id("conformance")
}

async fn connect(config: KafkaConfig) -> KafkaLog {
    KafkaLog::connect(config).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Kafka as a conformance target: a fresh log is a new client of the broker (the checks use
/// unique topic and group names); a restart drops the client and connects again.
struct KafkaTarget;

#[async_trait::async_trait]
impl ConformanceTarget for KafkaTarget {
    async fn fresh(&self) -> Arc<dyn EventLog> {
        Arc::new(connect(config()).await)
    }

    async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>> {
        drop(log);
        Some(Arc::new(connect(config()).await))
    }
}

mod conformance {
    tramline::conformance_tests!(super::KafkaTarget);
}

// -------------------------------------------------------------------------------------------------
// Kafka specifics

const PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

fn unique(name: &str) -> String {
    format!("kafka-{name}-{}", uuid::Uuid::now_v7().simple())
}

async fn topic(log: &KafkaLog, name: &str, partitions: u32) -> Arc<str> {
    let spec = tramline::log::TopicSpec::keep(unique(name), partitions);
    log.create_topic(&spec).await.unwrap_or_else(|e| panic!("create {}: {e}", spec.name));
    Arc::from(spec.name)
}

fn record(topic: &Arc<str>, key: &str, value: &[u8]) -> OutRecord {
    OutRecord {
        topic: topic.clone(),
        partition: None,
        key: Some(bytes::Bytes::copy_from_slice(key.as_bytes())),
        value: Some(bytes::Bytes::copy_from_slice(value)),
        headers: Default::default(),
        timestamp: None,
    }
}

/// Polls until `count` records came.
async fn collect(member: &mut dyn GroupMember, count: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "got {} of {count} records", records.len());
        records.extend(member.poll(count - records.len(), POLL).await.expect("poll").records);
    }
    assert_eq!(records.len(), count);
    records
}

/// Every committed record of a partition, read the way a restore does.
async fn restore(log: &dyn EventLog, tp: &TopicPartition) -> Vec<Record> {
    let end = log.end_offset(tp).await.expect("end_offset");
    let mut offset = 0;
    let mut records = Vec::new();
    while offset < end {
        let page = log.read(tp, offset, 100).await.expect("read");
        let Some(last) = page.last() else { break };
        offset = last.offset + 1;
        records.extend(page.into_iter().filter(|r| r.offset < end));
    }
    records
}

fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// A raw librdkafka consumer on `read_committed`, outside tramline: what every other Kafka client
/// would see of a partition.
fn raw_read_committed(topic: &str, partition: i32) -> Vec<String> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", tramline::testing::kafka::bootstrap())
        .set("group.id", unique("raw"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a raw consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "the raw consumer never reached the end");
        match consumer.poll(POLL) {
            Some(Ok(m)) => values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return values,
            Some(Err(e)) => panic!("raw consumer: {e}"),
            None => {}
        }
    }
}

/// A committed transaction's outputs and input positions become visible together: to a raw
/// `read_committed` consumer, to `read`, and as the group's committed offsets. Its commit marker
/// takes an offset: `end_offset` counts it, and a restore up to `end_offset` still terminates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_is_visible_with_its_offsets() {
    let log = connect(config()).await;
    let input = topic(&log, "txn-in", 2).await;
    let output = topic(&log, "txn-out", 1).await;
    let group = unique("txn");
    log.append((0..4).map(|i| record(&input, &format!("k{i}"), format!("in{i}").as_bytes())).collect())
        .await
        .expect("append");

    let mut member = log.join(&group, &[&*input], StartFrom::Beginning).await.expect("join");
    let records = collect(&mut *member, 4).await;
    let mut positions: Vec<(TopicPartition, u64)> = Vec::new();
    for r in &records {
        let tp = TopicPartition::new(r.topic.clone(), r.partition);
        match positions.iter_mut().find(|(t, _)| *t == tp) {
            Some((_, next)) => *next = (*next).max(r.offset + 1),
            None => positions.push((tp, r.offset + 1)),
        }
    }
    let outputs = vec![record(&output, "a", b"out-a"), record(&output, "b", b"out-b")];
    let written = member.commit(outputs, positions.clone()).await.expect("commit");
    assert_eq!(written.iter().map(|p| p.offset).collect::<Vec<_>>(), [0, 1], "positions from the delivery reports");

    assert_eq!(raw_read_committed(&output, 0), ["out-a", "out-b"], "a read_committed consumer sees the outputs");
    for (tp, next) in &positions {
        assert_eq!(log.committed(&group, tp).await.unwrap(), Some(*next), "the input position of {tp}");
    }
    let out = TopicPartition::new(output.clone(), 0);
    assert_eq!(log.end_offset(&out).await.unwrap(), 3, "two records and the commit marker");
    assert!(log.read(&out, 2, 10).await.unwrap().is_empty(), "only the marker is left: an empty page");
    assert!(log.read(&out, 2, 10).await.unwrap().is_empty(), "a known marker is skipped, still an empty page");
    assert_eq!(values(&restore(&log, &out).await), ["out-a", "out-b"], "a restore terminates");
    log.append(vec![record(&output, "c", b"later")]).await.expect("append");
    let page = log.read(&out, 2, 10).await.unwrap();
    assert_eq!(page.iter().map(|r| r.offset).collect::<Vec<_>>(), [3], "a record after the skipped marker comes");
    assert_eq!(values(&page), ["later"]);
    member.leave().await.unwrap();
}

/// A member whose transactional id (`<group>.<instance id>`) is taken over by a newer member (a
/// restarted instance) is fenced: its commit fails with `Fenced` and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_member_with_the_same_transactional_id_fences_the_older() {
    let instance = unique("instance");
    let old_log = connect(config().with_instance_id(&instance)).await;
    let input = topic(&old_log, "zombie-in", 1).await;
    let output = topic(&old_log, "zombie-out", 1).await;
    let group = unique("zombie");
    old_log.append(vec![record(&input, "k", b"in")]).await.expect("append");
    let mut old = old_log.join(&group, &[&*input], StartFrom::Beginning).await.expect("join");
    collect(&mut *old, 1).await;

    // The same instance id on another client: `init_transactions` bumps the producer epoch.
    let new_log = connect(config().with_instance_id(&instance)).await;
    let new = new_log.join(&group, &[&*input], StartFrom::Beginning).await.expect("join the newer member");

    let tp = TopicPartition::new(input.clone(), 0);
    let result = old.commit(vec![record(&output, "k", b"zombie")], vec![(tp.clone(), 1)]).await;
    match result {
        Err(LogError::Fenced { group: fenced, reason }) => {
            assert_eq!(fenced, group);
            assert!(reason.contains(&format!("{group}.{instance}")), "the reason names the transactional id: {reason}");
        }
        other => panic!("the older member must be fenced, got {other:?}"),
    }
    let out = TopicPartition::new(output.clone(), 0);
    assert!(restore(&new_log, &out).await.is_empty(), "a fenced member writes nothing");
    assert!(raw_read_committed(&output, 0).is_empty(), "a fenced member writes nothing");
    assert_eq!(new_log.committed(&group, &tp).await.unwrap(), None, "a fenced member commits no position");
    drop(new);
    drop(old);
}

/// A transaction that fails half-way (a record the producer refuses after another was sent) is
/// aborted: nothing of it is visible, and after `rewind` the batch comes again and can be
/// committed. The aborted records and markers below the high watermark do not stop a restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_after_an_aborted_transaction_redelivers_the_batch() {
    let log = connect(config()).await;
    let input = topic(&log, "abort-in", 1).await;
    let output = topic(&log, "abort-out", 1).await;
    let group = unique("abort");
    let tp = TopicPartition::new(input.clone(), 0);
    log.append((0..3).map(|i| record(&input, "k", format!("in{i}").as_bytes())).collect())
        .await
        .expect("append");

    let mut member = log.join(&group, &[&*input], StartFrom::Beginning).await.expect("join");
    let first = collect(&mut *member, 3).await;
    let too_large = vec![0u8; 2 * 1024 * 1024];
    let outputs = vec![record(&output, "k", b"sent, then aborted"), record(&output, "k", &too_large)];
    let result = member.commit(outputs, vec![(tp.clone(), 3)]).await;
    assert!(matches!(result, Err(LogError::TooLarge { .. })), "a refused record fails the write: {result:?}");
    assert_eq!(log.committed(&group, &tp).await.unwrap(), None, "the aborted transaction commits no position");
    let out = TopicPartition::new(output.clone(), 0);
    assert!(restore(&log, &out).await.is_empty(), "nothing of the aborted transaction is visible");

    member.rewind().await.expect("rewind");
    assert_eq!(member.position(&tp), Some(0));
    let again = collect(&mut *member, 3).await;
    assert_eq!(again, first, "the same batch comes again");
    member
        .commit(vec![record(&output, "k", b"committed")], vec![(tp.clone(), 3)])
        .await
        .expect("commit");
    assert_eq!(values(&restore(&log, &out).await), ["committed"], "only the committed output");
    assert_eq!(raw_read_committed(&output, 0), ["committed"]);
    assert_eq!(log.committed(&group, &tp).await.unwrap(), Some(3));
    member.leave().await.unwrap();
}

/// Keys appended without a partition land where Java's producer puts them
/// (`toPositive(murmur2(key)) % partitions`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_javas_partition() {
    let log = connect(config()).await;
    let partitions = 7;
    let topic = topic(&log, "java", partitions).await;
    let keys: Vec<String> = (0..300).map(|i| format!("customer-{i:04}-{}", i * 7919)).collect();
    let positions = log.append(keys.iter().map(|k| record(&topic, k, b"v")).collect()).await.expect("append");
    for (key, position) in keys.iter().zip(&positions) {
        assert_eq!(position.partition, tramline::log::partition_for(key.as_bytes(), partitions), "partition of {key}");
    }
    let used: std::collections::BTreeSet<u32> = positions.iter().map(|p| p.partition).collect();
    assert_eq!(used.len(), partitions as usize, "the keys spread over every partition");
}

/// A transaction left open below the high watermark (another producer's) makes `read` wait until
/// it ends, instead of stopping at the last stable offset: a restore must not miss it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_waits_for_an_open_transaction() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

    let log = connect(config()).await;
    let topic = topic(&log, "open", 1).await;
    log.append(vec![record(&topic, "k", b"before")]).await.expect("append");
    let name = topic.to_string();
    let producer = tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", tramline::testing::kafka::bootstrap())
            .set("transactional.id", unique("open-txn"))
            .create()
            .expect("a transactional producer");
        producer.init_transactions(PATIENCE).unwrap();
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::<[u8], [u8]>::to(&name).partition(0).payload(b"inside".as_slice()))
            .unwrap();
        producer.flush(PATIENCE).unwrap();
        producer
    })
    .await
    .unwrap();

    let tp = TopicPartition::new(topic.clone(), 0);
    assert_eq!(log.end_offset(&tp).await.unwrap(), 2, "the open transaction's record is below the high watermark");
    let committer = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(1500));
        producer.commit_transaction(PATIENCE).unwrap();
    });
    let started = tokio::time::Instant::now();
    let page = log.read(&tp, 1, 10).await.expect("read");
    assert!(started.elapsed() >= Duration::from_millis(1000), "read returned before the transaction ended");
    assert_eq!(values(&page), ["inside"], "the read waited for the transaction's record");
    committer.await.unwrap();
    assert_eq!(values(&restore(&log, &tp).await), ["before", "inside"]);
}

/// A poll whose future is dropped (a `select!`, a timeout) loses nothing: the records it fetched
/// come with the next poll, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_poll_loses_no_record() {
    let log = connect(config()).await;
    let topic = topic(&log, "dropped", 1).await;
    let mut member = log.join(&unique("dropped"), &[&*topic], StartFrom::Beginning).await.expect("join");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while member.assignment().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no assignment");
        assert!(member.poll(10, POLL).await.unwrap().records.is_empty());
    }
    log.append((0..20).map(|i| record(&topic, "k", format!("v{i}").as_bytes())).collect())
        .await
        .expect("append");
    let mut offsets = Vec::new();
    for _ in 0..5 {
        // Most of these are cancelled while the member's thread is fetching.
        if let Ok(polled) = tokio::time::timeout(Duration::from_millis(3), member.poll(4, PATIENCE)).await {
            offsets.extend(polled.unwrap().records.iter().map(|r| r.offset));
        }
    }
    while offsets.len() < 20 {
        assert!(tokio::time::Instant::now() < deadline, "got {offsets:?}");
        offsets.extend(member.poll(20, POLL).await.unwrap().records.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..20).collect::<Vec<u64>>(), "every record once, in order");
    member.leave().await.unwrap();
}

/// A poll smaller than what the member read ahead hands out the first records only, and the
/// member's position stays right after them, not where the consumer already stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_stays_after_what_a_smaller_poll_handed_out() {
    let log = connect(config()).await;
    let topic = topic(&log, "smaller", 1).await;
    let mut member = log.join(&unique("smaller"), &[&*topic], StartFrom::Beginning).await.expect("join");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while member.assignment().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no assignment");
        assert!(member.poll(10, POLL).await.unwrap().records.is_empty());
    }
    log.append((0..10).map(|i| record(&topic, "k", format!("v{i}").as_bytes())).collect())
        .await
        .expect("append");
    let tp = TopicPartition::new(topic.clone(), 0);
    while member.poll(4, POLL).await.unwrap().records.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no record");
    }
    // Meanwhile the member reads up to 4 records ahead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polled = member.poll(1, POLL).await.unwrap();
    let last = polled.records.last().expect("records").offset;
    assert_eq!(member.position(&tp), Some(last + 1), "the position runs ahead of what was handed out");
    member.leave().await.unwrap();
}

/// A member whose application polls nothing for longer than `max.poll.interval.ms` (a long
/// batch, a restore) stays in its group: its commit afterwards succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stays_in_its_group_through_a_batch_longer_than_the_poll_interval() {
    // The broker's least session timeout, and librdkafka's least poll interval with it.
    let config = config().set("session.timeout.ms", "6000").set("max.poll.interval.ms", "6000");
    let log = connect(config).await;
    let topic = topic(&log, "long-batch", 1).await;
    log.append((0..3).map(|i| record(&topic, "k", format!("v{i}").as_bytes())).collect())
        .await
        .expect("append");
    let mut member = log.join(&unique("long-batch"), &[&*topic], StartFrom::Beginning).await.expect("join");
    // A batch of one: the member reads one more ahead and then waits for the next poll.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let first = loop {
        assert!(tokio::time::Instant::now() < deadline, "no record");
        if let Some(record) = member.poll(1, POLL).await.unwrap().records.pop() {
            break record;
        }
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let position = (TopicPartition::new(topic.clone(), 0), first.offset + 1);
    member.commit(Vec::new(), vec![position]).await.expect("the member is still in its group");
    member.leave().await.unwrap();
}

/// `Keep` topics keep records forever; `Compact` topics are compacted, and a replaced record
/// (a forgotten subject's key) is gone within the configured bound; `CompactAndExpire` topics
/// are compacted and deleted after their retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_follow_the_cleanup_policy() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use tramline::log::TopicSpec;

    let log = connect(config().with_max_compaction_lag(Duration::from_secs(3600))).await;
    let keep = unique("keep");
    let compact = unique("compact");
    let expire = unique("expire");
    log.create_topic(&TopicSpec::keep(&keep, 2)).await.unwrap();
    log.create_topic(&TopicSpec::compact(&compact, 2)).await.unwrap();
    log.create_topic(&TopicSpec::compact_and_expire(&expire, 2, Duration::from_secs(86_400)))
        .await
        .unwrap();
    // Another retention is the operator's: the topic is taken as it is.
    log.create_topic(&TopicSpec::compact_and_expire(&expire, 2, Duration::from_secs(60))).await.unwrap();
    let refused = log.create_topic(&TopicSpec::compact(&expire, 2)).await;
    assert!(matches!(refused, Err(LogError::CleanupMismatch { .. })), "{refused:?}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", tramline::testing::kafka::bootstrap())
        .create()
        .expect("an admin client");
    let topics =
        [&ResourceSpecifier::Topic(&keep), &ResourceSpecifier::Topic(&compact), &ResourceSpecifier::Topic(&expire)];
    let described = admin.describe_configs(topics, &AdminOptions::new()).await.expect("describe");
    let value = |i: usize, name: &str| {
        let resource = described[i].as_ref().expect("a topic's config");
        resource.get(name).and_then(|e| e.value.clone()).unwrap_or_default()
    };
    assert_eq!(value(0, "retention.ms"), "-1", "the source of truth is kept forever");
    assert_eq!(value(0, "cleanup.policy"), "delete");
    assert_eq!(value(1, "cleanup.policy"), "compact");
    assert_eq!(value(1, "max.compaction.lag.ms"), "3600000");
    assert_eq!(value(2, "cleanup.policy"), "compact,delete");
    assert_eq!(value(2, "retention.ms"), "86400000");
    assert_eq!(value(2, "max.compaction.lag.ms"), "3600000");
}

/// A topic someone else created with the broker's defaults (a week's retention) is no source
/// of truth: creating it as one is refused, naming what it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_made_elsewhere_with_a_retention_is_refused_as_a_source_of_truth() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let log = connect(config()).await;
    let name = unique("elsewhere");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", tramline::testing::kafka::bootstrap())
        .create()
        .expect("an admin client");
    let created = admin
        .create_topics([&NewTopic::new(&name, 2, TopicReplication::Fixed(-1))], &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(created[0].is_ok(), "{created:?}");
    let refused = log.create_topic(&tramline::log::TopicSpec::keep(&name, 2)).await;
    let Err(error @ LogError::CleanupMismatch { .. }) = refused else {
        panic!("accepted: {refused:?}")
    };
    assert!(error.to_string().contains("retention.ms=604800000"), "{error}");
}

/// No broker at the address: `connect` fails at once, naming the address and how to start one.
#[tokio::test]
async fn connect_names_the_address_when_no_broker_answers() {
    let config = KafkaConfig::new("127.0.0.1:1").with_connect_timeout(Duration::from_secs(1));
    let error = KafkaLog::connect(config).await.expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(matches!(error, LogError::Backend(_)), "{error:?}");
    assert!(message.contains("127.0.0.1:1") && message.contains("scripts/kafka start"), "{message}");
}

/// A name Kafka refuses is refused with the name and the rule, not the broker's bare
/// "Invalid topic".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_name_kafka_refuses_is_named_with_the_rule() {
    let log = connect(config()).await;
    for name in ["x".repeat(250), "orders/2030".to_owned()] {
        let error = log.create_topic(&tramline::log::TopicSpec::keep(name.clone(), 1)).await.unwrap_err();
        // Not a backend failure, which the runtime would ask again for as for a broker away.
        assert!(matches!(error, LogError::InvalidTopic { .. }), "{error:?}");
        let error = error.to_string();
        assert!(error.contains(&format!("`{name}`")) && error.contains("1 to 249 ASCII letters"), "{error}");
    }
}

/// A record over the broker's size limit (1 MB by default) is refused for good, as
/// `LogError::TooLarge` naming its topic: by `append` (first in its batch or not), and by a
/// member's commit, whose member then writes the next transaction as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_kafka_accepts_is_refused_as_too_large() {
    let log = connect(config()).await;
    let input = topic(&log, "large-in", 1).await;
    let output = topic(&log, "large-out", 1).await;
    let large = vec![b'x'; 2 * 1024 * 1024];
    match log.append(vec![record(&output, "k", &large)]).await {
        Err(LogError::TooLarge { topic, reason }) => {
            assert_eq!(topic, *output);
            assert!(reason.contains("bytes"), "{reason}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // After a record that was written: still too large, and said to be so.
    match log.append(vec![record(&output, "k", b"small"), record(&output, "k", &large)]).await {
        Err(LogError::TooLarge { reason, .. }) => {
            assert!(reason.contains("1 of the batch's 2 records were written"), "{reason}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    log.append(vec![record(&input, "k", b"in")]).await.expect("append");
    let group = unique("large");
    let mut member = log.join(&group, &[&*input], StartFrom::Beginning).await.expect("join");
    let records = collect(&mut *member, 1).await;
    let positions = vec![(TopicPartition::new(input.clone(), 0), records[0].offset + 1)];
    let outputs = vec![record(&output, "a", b"small"), record(&output, "b", &large)];
    match member.commit(outputs, positions.clone()).await {
        Err(LogError::TooLarge { topic, .. }) => assert_eq!(topic, *output),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    member.rewind().await.expect("rewind");
    let again = collect(&mut *member, 1).await;
    assert_eq!(again[0].offset, records[0].offset, "nothing of the refused write was applied");
    member
        .commit(vec![record(&output, "a", b"small")], positions)
        .await
        .expect("the next write goes through");
    assert_eq!(raw_read_committed(&output, 0), ["small", "small"], "the append's, and the commit's");
    member.leave().await.unwrap();
}

/// A note whose text its event repeats: a long text makes an event over Kafka's size limit.
mod notes {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use tramline::{Aggregate, Command, Event, ReferenceId};

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "note")]
    pub struct NoteId(uuid::Uuid);

    #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[command(module = "note", key = id)]
    pub enum NoteCommand {
        /// Writes the text `repeat` times.
        Write { id: NoteId, text: String, repeat: usize },
    }

    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "note", key = id)]
    pub enum NoteEvent {
        Written { id: NoteId, text: String },
    }

    #[derive(Debug, thiserror::Error, Serialize, Deserialize)]
    #[error("never")]
    pub struct Never;

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Note {
        pub writes: u32,
    }

    impl Aggregate for Note {
        type Command = NoteCommand;
        type Event = NoteEvent;
        type Error = Never;
        type Services = ();
        fn decide(&self, command: &NoteCommand, _: &()) -> Result<Vec<NoteEvent>, Never> {
            let NoteCommand::Write { id, text, repeat } = command;
            Ok(vec![NoteEvent::Written { id: *id, text: text.repeat(*repeat) }])
        }
        fn evolve(&mut self, _: &NoteEvent) {
            self.writes += 1;
        }
    }
}

/// On Kafka, a command whose event is over the broker's size limit fails alone, to the
/// dead-letter topic, and the module goes on: before, it retried the batch for ever and every
/// later command to the module timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_event_is_too_large_for_kafka_fails_alone() {
    use notes::{Note, NoteCommand, NoteId};
    use tramline::ReferenceId;
    use tramline::runtime::{CommandError, Settings};

    let namespace = format!("large{}", uuid::Uuid::now_v7().simple());
    let kafka: Arc<dyn EventLog> = Arc::new(connect(config()).await);
    let log = Arc::new(tramline::log::Namespaced::new(kafka, &namespace).expect("a namespace"));
    let settings = Settings { command_timeout: PATIENCE, ..Settings::default() };
    let mut app = tramline::App::new(log).with_settings(settings);
    let notes = app.aggregate::<Note>(()).await.expect("the module");
    app.start().await.expect("start");
    let id = NoteId::generate();
    let write = |repeat| NoteCommand::Write { id, text: "x".repeat(1024), repeat };
    notes.send(write(1)).await.expect("a small note");
    match notes.send(write(2048)).await {
        Err(error @ CommandError::Failed { .. }) => {
            assert!(error.to_string().contains("larger than the log accepts"), "{error}");
            assert!(!error.is_transient());
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    notes.send(write(1)).await.expect("the module goes on");
    assert_eq!(app.dead_letters().await.expect("dead letters"), 1);
    app.shutdown().await.expect("shutdown");
}
