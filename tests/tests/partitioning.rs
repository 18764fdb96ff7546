//! Partitioning and consumer groups on the memory log: a key keeps its partition and its order,
//! the partitioner is Kafka's, and a group's members share the partitions and are fenced when
//! they write after a rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use customer_contract::CustomerId;
use order_contract::{OrderCommand, OrderId};
use product_contract::{Money, ProductId};
use tramline::log::{
    EventLog, Headers, LogError, OutRecord, Polled, StartFrom, TopicPartition, TopicSpec, murmur2, partition_for,
};
use tramline::{MemoryLog, ReferenceId};
use tramline_platform_tests::{Running, ScriptedProvider, records_of, start_platform, within};

const POLL: Duration = Duration::from_millis(50);

fn record(topic: &str, key: &str, value: String) -> OutRecord {
    OutRecord {
        topic: topic.into(),
        partition: None,
        key: Some(Bytes::from(key.to_owned())),
        value: Some(Bytes::from(value)),
        headers: Headers::new(),
        timestamp: None,
    }
}

async fn log_with_topic(topic: &str, partitions: u32) -> MemoryLog {
    let log = MemoryLog::new();
    log.create_topic(&TopicSpec::keep(topic, partitions)).await.expect("topic created");
    log
}

#[tokio::test]
async fn records_of_one_key_stay_on_one_partition_in_order() {
    let log = log_with_topic("rides", 8).await;
    let keys = ["ord_a", "ord_b", "ord_c", "ord_d", "ord_e", "ord_f"];
    // Interleaved over several appends, so that order within a key is not a batch artefact.
    for round in 0..10 {
        let batch: Vec<OutRecord> = (0..5)
            .flat_map(|i| keys.map(|key| record("rides", key, format!("{key}:{}", round * 5 + i))))
            .collect();
        let positions = log.append(batch.clone()).await.expect("appended");
        for (record, position) in batch.iter().zip(&positions) {
            let key = record.key.as_ref().unwrap();
            assert_eq!(position.partition, partition_for(key, 8), "{position}");
        }
    }

    let records = records_of(&log, "rides").await;
    assert_eq!(records.len(), 6 * 50);
    let mut by_key: BTreeMap<String, Vec<(u32, u64, String)>> = BTreeMap::new();
    for r in &records {
        let value = String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap();
        by_key.entry(r.key_text().into_owned()).or_default().push((r.partition, r.offset, value));
    }
    for key in keys {
        let seen = &by_key[key];
        let partitions: BTreeSet<u32> = seen.iter().map(|(p, _, _)| *p).collect();
        assert_eq!(partitions, BTreeSet::from([partition_for(key.as_bytes(), 8)]), "{key} on one partition");
        let values: Vec<&str> = seen.iter().map(|(_, _, v)| v.as_str()).collect();
        let expected: Vec<String> = (0..50).map(|n| format!("{key}:{n}")).collect();
        assert_eq!(values, expected, "{key} in the order written");
        assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{key}: offsets increase");
    }
    let used: BTreeSet<u32> = records.iter().map(|r| r.partition).collect();
    assert!(used.len() > 1, "six keys do not all hash to one partition: {used:?}");
}

#[tokio::test]
async fn an_explicit_partition_wins_and_a_bad_one_writes_nothing_of_the_batch() {
    let log = log_with_topic("rides", 4).await;
    let key = b"ord_a";
    let other = (partition_for(key, 4) + 1) % 4;
    let pinned = OutRecord { partition: Some(other), ..record("rides", "ord_a", "pinned".into()) };
    let positions = log.append(vec![pinned]).await.unwrap();
    assert_eq!(positions[0].partition, other);

    let good = record("rides", "ord_b", "good".into());
    let bad = OutRecord { partition: Some(4), ..record("rides", "ord_c", "bad".into()) };
    match log.append(vec![good, bad]).await {
        Err(LogError::UnknownPartition { topic, partition: 4, partitions: 4 }) => assert_eq!(topic, "rides"),
        other => panic!("expected UnknownPartition, got {other:?}"),
    }
    assert_eq!(records_of(&log, "rides").await.len(), 1, "nothing of the failed batch was written");
}

/// Kafka's `UtilsTest.testMurmur2` vectors: input and Java's `Utils.murmur2`.
const KAFKA_MURMUR2: [(&[u8], i32); 6] = [
    (b"21", -973_932_308),
    (b"foobar", -790_332_482),
    (b"a-little-bit-long-string", -985_981_536),
    (b"a-little-bit-longer-string", -1_486_304_829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
    (b"abc", 479_470_107),
];

#[test]
fn partition_for_agrees_with_kafkas_java_partitioner() {
    for (key, java) in KAFKA_MURMUR2 {
        assert_eq!(murmur2(key), java, "murmur2({})", String::from_utf8_lossy(key));
        // Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions.
        let positive = (java & 0x7fff_ffff) as u32;
        for partitions in [1, 2, 3, 4, 6, 7, 10, 12, 16, 100] {
            assert_eq!(
                partition_for(key, partitions),
                positive % partitions,
                "{} on {partitions}",
                String::from_utf8_lossy(key)
            );
        }
    }
    // Worked by hand: toPositive(-973932308) = 1173551340.
    assert_eq!(partition_for(b"21", 10), 0);
    assert_eq!(partition_for(b"21", 7), 3);
    assert_eq!(partition_for(b"foobar", 10), 6);
    assert_eq!(partition_for(b"abc", 7), 4);
    assert_eq!(partition_for(b"a-little-bit-longer-string", 100), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entitys_command_event_and_state_share_the_partition_kafka_would_choose() {
    let Running { platform, log, .. } = start_platform(ScriptedProvider::new()).await;
    for _ in 0..12 {
        let order_id = OrderId::generate();
        let expected = partition_for(order_id.to_string().as_bytes(), 4);
        let place = OrderCommand::Place {
            order_id,
            customer_id: CustomerId::generate(),
            product_id: ProductId::generate(),
            quantity: 1,
            unit_price: Money::cents(100),
        };
        let placed = within("an order", platform.orders.send(place)).await.expect("placed");
        assert_eq!(placed.events[0].position.as_ref().map(|p| p.partition), Some(expected), "{order_id}");
        for topic in ["order.commands", "order.state"] {
            let partitions: BTreeSet<u32> = records_of(&*log, topic)
                .await
                .iter()
                .filter(|r| r.key.as_deref() == Some(order_id.to_string().as_bytes()))
                .map(|r| r.partition)
                .collect();
            assert_eq!(partitions, BTreeSet::from([expected]), "{topic} of {order_id}");
        }
    }
    platform.app.shutdown().await.expect("clean shutdown");
}

/// Polls until the member reports an assignment change.
async fn poll_assignment(member: &mut dyn tramline::log::GroupMember) -> Polled {
    within("an assignment", async {
        loop {
            let polled = member.poll(100, POLL).await.expect("polled");
            if !polled.assigned.is_empty() || !polled.revoked.is_empty() {
                return polled;
            }
        }
    })
    .await
}

fn partitions(tps: &[TopicPartition]) -> BTreeSet<u32> {
    tps.iter().map(|tp| tp.partition).collect()
}

#[tokio::test]
async fn two_members_of_a_group_split_the_partitions_and_a_stale_one_is_fenced() {
    let log = log_with_topic("rides", 4).await;
    let mut first = log.join("riders", &["rides"], StartFrom::Beginning).await.unwrap();
    let polled = poll_assignment(&mut *first).await;
    assert_eq!(partitions(&polled.assigned), BTreeSet::from([0, 1, 2, 3]), "alone, it has them all");

    let mut second = log.join("riders", &["rides"], StartFrom::Beginning).await.unwrap();
    let rebalanced = poll_assignment(&mut *first).await;
    assert_eq!(partitions(&rebalanced.revoked), BTreeSet::from([0, 1, 2, 3]), "eager rebalance revokes all");
    let mine = partitions(&rebalanced.assigned);
    let theirs = partitions(&poll_assignment(&mut *second).await.assigned);
    assert_eq!(mine.len(), 2);
    assert!(mine.is_disjoint(&theirs), "{mine:?} and {theirs:?} overlap");
    assert_eq!(mine.union(&theirs).copied().collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2, 3]));

    // Each member receives the records of its own partitions only.
    let all: Vec<OutRecord> =
        (0..4).map(|p| OutRecord { partition: Some(p), ..record("rides", "k", format!("p{p}")) }).collect();
    log.append(all).await.unwrap();
    let got = within("records", first.poll(100, POLL)).await.unwrap();
    assert_eq!(got.records.iter().map(|r| r.partition).collect::<BTreeSet<_>>(), mine);

    // A third member joins; the first writes before it has seen the rebalance: fenced, and
    // nothing of the write is applied, neither the output nor the position.
    let mine_tp = TopicPartition::new("rides", *mine.first().unwrap());
    let _third = log.join("riders", &["rides"], StartFrom::Beginning).await.unwrap();
    let output = OutRecord { partition: Some(0), ..record("rides", "out", "stale".into()) };
    let end_before = log.end_offset(&TopicPartition::new("rides", 0)).await.unwrap();
    match first.commit(vec![output], vec![(mine_tp.clone(), 1)]).await {
        Err(LogError::Fenced { group, reason }) => {
            assert_eq!(group, "riders");
            assert!(reason.contains("rebalanced"), "{reason}");
        }
        other => panic!("a write after a rebalance must be fenced, got {other:?}"),
    }
    assert_eq!(log.end_offset(&TopicPartition::new("rides", 0)).await.unwrap(), end_before);
    assert_eq!(log.committed("riders", &mine_tp).await.unwrap(), None);

    // Once it has taken its new assignment, it writes again, but only for its own partitions.
    let now_mine = poll_assignment(&mut *first).await.assigned;
    let owned = now_mine[0].clone();
    let written = first.commit(Vec::new(), vec![(owned.clone(), 1)]).await;
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(log.committed("riders", &owned).await.unwrap(), Some(1));
    let foreign = (0..4).find(|p| !partitions(&now_mine).contains(p)).unwrap();
    match first.commit(Vec::new(), vec![(TopicPartition::new("rides", foreign), 1)]).await {
        Err(LogError::Fenced { reason, .. }) => {
            assert!(reason.contains("not assigned"), "{reason}")
        }
        other => {
            panic!("a position for a partition of another member must be fenced, got {other:?}")
        }
    }
}

#[tokio::test]
async fn a_group_starting_at_the_end_skips_the_past_and_one_starting_at_the_beginning_reads_it() {
    let log = log_with_topic("rides", 2).await;
    let before: Vec<OutRecord> = (0..2)
        .map(|p| OutRecord { partition: Some(p), ..record("rides", "k", format!("before {p}")) })
        .collect();
    log.append(before).await.unwrap();
    let mut late = log.join("late", &["rides"], StartFrom::End).await.unwrap();
    let mut early = log.join("early", &["rides"], StartFrom::Beginning).await.unwrap();
    assert_eq!(poll_assignment(&mut *late).await.assigned.len(), 2);
    assert_eq!(poll_assignment(&mut *early).await.assigned.len(), 2);
    let after: Vec<OutRecord> = (0..2)
        .map(|p| OutRecord { partition: Some(p), ..record("rides", "k", format!("after {p}")) })
        .collect();
    log.append(after).await.unwrap();

    let values = |polled: Polled| -> Vec<String> {
        polled
            .records
            .iter()
            .map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap())
            .collect()
    };
    let mut late_values = Vec::new();
    let mut early_values = Vec::new();
    for _ in 0..2 {
        late_values.extend(values(late.poll(100, POLL).await.unwrap()));
        early_values.extend(values(early.poll(100, POLL).await.unwrap()));
    }
    late_values.sort();
    early_values.sort();
    assert_eq!(late_values, ["after 0", "after 1"]);
    assert_eq!(early_values, ["after 0", "after 1", "before 0", "before 1"]);
}
